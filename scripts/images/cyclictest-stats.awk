# One cyclictest run (`cyclictest -v -h RANGE ...`) turned into bulkhead's `rt-stats` lines,
# one per reporting window (the format of guests/rt-demo/src/stats.rs), and one `rt-total`
# line over the whole run from cyclictest's own histogram. Runs under busybox awk (the guest's
# only awk); installed as /etc/bulkhead/cyclictest-stats.awk, used by bh-cyclictest.
#
# Input: cyclictest's standard output, optionally followed by a line from bh-cyclictest
#     #bh-end status=<cyclictest's exit status>
#   - with -v, one line per wake-up while it runs: "%8d:%8lu:%8ld" = thread, cycle, latency (µs);
#   - with -h, at the end: "# Histogram", one row per µs ("000012 000003[ 000004...]": bucket,
#     then a count per thread), "# Min Latencies: ...", "# Max Latencies: ...",
#     "# Histogram Overflows: ..." (one field per thread); other lines are ignored.
# Variables: period_us  cyclictest's interval (-i), µs (every thread's: with -h, cyclictest sets
#                       the distance -d to 0)
#            loops      wake-ups per thread in one reporting window (window_s * 10^6 / period_us)
#            threads    measurement threads (-t; default 1)
# Output: one line per window, printed once every thread has gone past it (and the windows
# still open at the end of the input), then the total:
#     rt-stats period_us=P samples=N min_ns=A p50_ns=B p99_ns=C max_ns=D missed=M
#     rt-total period_us=P samples=N min_ns=A p50_ns=B p99_ns=C max_ns=D missed=M
# Window w holds the wake-ups of cycles [w * loops, (w + 1) * loops) of every thread. rt-total
# comes from the histogram when there is one, else from the windows. The histogram is exact;
# the windows miss the wake-ups of cyclictest's last <= 10 ms, whose verbose lines it does not
# print when it stops (so the last window is a little short, and the windows' samples add up
# to a little less than rt-total's).
# Exit status: 1 if the #bh-end line reports a failure, else 0.
#
# Meaning of the fields, as for the Rust RT guest:
#   samples  wake-ups measured
#   min_ns, max_ns  smallest / largest latency, in ns; cyclictest measures in whole µs, so they
#            are multiples of 1000
#   p50_ns, p99_ns  nearest-rank percentiles (rank ceil(n * p / 100), at least 1), reported as the
#            upper bound of the 1 µs bucket holding that rank, clamped to [min, max]; in the
#            total, a percentile among the histogram's overflows (latency >= its range) is max_ns
#   missed   wake-ups one period or more late (latency >= period_us: the next release had come
#            already); in the total, the buckets from period_us up plus the overflows
#            (bh-cyclictest keeps the range >= period_us, so every such wake-up is counted)
# Without samples every latency field is 0.
#
# Busybox awk reads a field with a leading 0 as octal ("000012" is 10, "000019" is 19):
# cyclictest zero-pads the histogram's numbers, so num() strips the zeros first.

function num(s) {
	gsub(/[ \t]/, "", s)
	sub(/^0+/, "", s)
	return s + 0
}

function bound(b, mn, mx,    v) {
	v = (b + 1) * 1000
	if (v < mn) v = mn
	if (v > mx) v = mx
	return v
}

# Prints `name` for n samples, `over` of them beyond the buckets, h[key b] the count of bucket b
# (whole µs) for b in [lo, hi], min/max latency mn_us/mx_us, `missed` wake-ups.
function report(name, h, key, n, over, lo, hi, mn_us, mx_us, missed,    b, k, r50, r99, seen, p50, p99, mn, mx) {
	if (n == 0) {
		printf "%s period_us=%d samples=0 min_ns=0 p50_ns=0 p99_ns=0 max_ns=0 missed=%d\n", name, period_us, missed
		fflush()
		return
	}
	mn = mn_us * 1000
	mx = mx_us * 1000
	r50 = int((n * 50 + 99) / 100)
	r99 = int((n * 99 + 99) / 100)
	if (r50 < 1) r50 = 1
	if (r99 < 1) r99 = 1
	seen = 0
	p50 = -1
	p99 = -1
	for (b = lo; b <= hi; b++) {
		k = key SUBSEP b
		if (!(k in h)) continue
		seen += h[k]
		if (p50 < 0 && seen >= r50) p50 = bound(b, mn, mx)
		if (seen >= r99) { p99 = bound(b, mn, mx); break }
	}
	if (p50 < 0) p50 = mx
	if (p99 < 0) p99 = mx
	printf "%s period_us=%d samples=%d min_ns=%d p50_ns=%d p99_ns=%d max_ns=%d missed=%d\n", name, period_us, n, mn, p50, p99, mx, missed
	fflush()
}

# Reports window w and forgets it.
function emit(w,    k, parts) {
	if (w in wn) {
		report("rt-stats", wh, w, wn[w], 0, wmin[w], wmax[w], wmin[w], wmax[w], wmiss[w])
		for (k in wh) {
			split(k, parts, SUBSEP)
			if (parts[1] == w) delete wh[k]
		}
		delete wn[w]; delete wmin[w]; delete wmax[w]; delete wmiss[w]
	} else {
		report("rt-stats", wh, w, 0, 0, 0, -1, 0, 0, 0)
	}
}

BEGIN {
	period_us += 0
	loops += 0
	threads += 0
	if (threads < 1) threads = 1
	if (period_us <= 0 || loops <= 0) {
		print "cyclictest-stats.awk: needs -v period_us=<interval in us> -v loops=<per window>" > "/dev/stderr"
		bad_usage = 1
		exit 2
	}
	next_w = 0    # the next window to report
	last_w = -1   # the highest window seen
	started = 0   # threads seen
	failed = 0
	samples = 0   # over every window
	hist = 0      # inside the histogram
	hn = 0; hover = 0; hlo = -1; hhi = -1; hmin = -1; hmax = 0; hmiss = 0
	tlo = -1; thi = -1; tmiss = 0
}

# A wake-up (-v): thread:cycle:latency.
/^ *[0-9]+: *[0-9]+: *-?[0-9]+ *$/ {
	split($0, f, ":")
	t = num(f[1])
	c = num(f[2])
	v = num(f[3])
	if (v < 0) v = 0
	w = int(c / loops)
	if (w < next_w) w = next_w # cannot happen with in-order output; never reopen a window
	wh[w, v]++
	wn[w]++
	if (!(w in wmin) || v < wmin[w]) wmin[w] = v
	if (!(w in wmax) || v > wmax[w]) wmax[w] = v
	if (v >= period_us) wmiss[w]++
	else if (!(w in wmiss)) wmiss[w] = 0
	samples++
	tot[0, v]++
	if (tlo < 0 || v < tlo) tlo = v
	if (v > thi) thi = v
	if (v >= period_us) tmiss++
	if (w > last_w) last_w = w
	if (!(t in cur)) started++
	cur[t] = w
	# Every thread is past window next_w: report it (and any others left behind).
	if (started >= threads) {
		low = -1
		for (i in cur) if (low < 0 || cur[i] < low) low = cur[i]
		while (next_w < low) { emit(next_w); next_w++ }
	}
	next
}

/^# Histogram$/ { hist = 1; next }

# A histogram row (-h).
hist && /^[0-9]+[ \t]/ {
	b = num($1)
	n = 0
	for (i = 2; i <= NF; i++) n += num($i)
	if (n > 0) {
		hh[0, b] += n
		hn += n
		if (b >= period_us) hmiss += n
		if (hlo < 0 || b < hlo) hlo = b
		if (b > hhi) hhi = b
	}
	next
}

/^# Min Latencies:/ {
	for (i = 4; i <= NF; i++) { v = num($i); if (hmin < 0 || v < hmin) hmin = v }
	next
}

/^# Max Latencies:/ {
	for (i = 4; i <= NF; i++) { v = num($i); if (v > hmax) hmax = v }
	next
}

/^# Histogram Overflows:/ {
	for (i = 4; i <= NF; i++) hover += num($i)
	next
}

/^#bh-end / {
	st = $2
	sub(/^status=/, "", st)
	if (st != "0") failed = 1
	next
}

END {
	if (bad_usage) exit 2
	while (next_w <= last_w) { emit(next_w); next_w++ }
	if (hist) {
		report("rt-total", hh, 0, hn + hover, hover, hlo, hhi, hmin, hmax, hmiss + hover)
		# cyclictest's verbose printer drops its last batch (<= 10 ms of wake-ups) at exit; more
		# than that missing means the per-window lines lost samples.
		d = samples - (hn + hover)
		if (d < 0) d = -d
		if (d * 20 > hn + hover)
			printf "cyclictest-stats.awk: warning: the windows hold %d wake-ups, the histogram %d\n", samples, hn + hover > "/dev/stderr"
	} else {
		# No histogram (cyclictest was killed): the total of what the windows saw.
		report("rt-total", tot, 0, samples, 0, tlo, thi, tlo, thi, tmiss)
	}
	exit failed
}
