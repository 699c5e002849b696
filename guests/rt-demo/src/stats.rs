//! Wake-up latency statistics over one reporting window (one second), and the `rt-stats`
//! report line; the same over the whole run, and its `rt-total` line.
//!
//! Latencies go into a fixed log-linear histogram: 1 µs buckets below 64 µs, then 32 buckets
//! per power of two up to 2^22 µs (about 4.2 s), then one overflow bucket — [`BUCKETS`] + 1
//! counters in all. Recording is O(1) and a handful of instructions; the once-a-second
//! summary scans from the minimum's bucket up to the 99th percentile's, and the reset clears
//! only the buckets between minimum and maximum, so the per-window work stays within a few
//! hundred counters whatever the latencies. This matters because ring-0 guest code is
//! emulated instruction by instruction on software KVM (a 1 µs-linear histogram up to 4 ms
//! took milliseconds to scan and clear there, and so disturbed the very next periods).
//!
//! Resolution: `min_ns` and `max_ns` are exact. `p50_ns` and `p99_ns` are the upper bound of
//! the bucket holding that rank — at most 1 µs above the true value below 64 µs, at most
//! 1/32 (3.1 %) of the value above — never above `max_ns` nor below `min_ns`; a percentile in
//! the overflow bucket is reported as `max_ns`.
//!
//! A run-long histogram is just a [`Window`] that is never reset: the task records every
//! wake-up in both (O(1) more per period) and summarises the run-long one once, at the end.

use bulkhead_guest_sdk::line::Line;

/// Latencies below this many µs get 1 µs buckets.
const LINEAR_US: u64 = 64;
/// log2 of [`LINEAR_US`]: the first octave with sub-buckets.
const FIRST_OCTAVE: u32 = 6;
/// log2 of the sub-buckets per octave.
const SUB_BITS: u32 = 5;
/// Latencies of 2^`END_OCTAVE` µs and more go to the overflow bucket.
const END_OCTAVE: u32 = 22;
/// Number of regular buckets; index `BUCKETS` is the overflow bucket.
pub const BUCKETS: usize = LINEAR_US as usize + ((END_OCTAVE - FIRST_OCTAVE) << SUB_BITS) as usize;

/// Latency samples and missed releases of one window.
#[derive(Clone)]
pub struct Window {
    counts: [u32; BUCKETS + 1],
    samples: u64,
    min_ns: u64,
    max_ns: u64,
    missed: u64,
}

/// What a window is reported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Wake-ups recorded.
    pub samples: u64,
    /// Smallest latency (exact), 0 without samples.
    pub min_ns: u64,
    /// Median latency, bucket upper bound.
    pub p50_ns: u64,
    /// 99th-percentile latency, bucket upper bound.
    pub p99_ns: u64,
    /// Largest latency (exact).
    pub max_ns: u64,
    /// Releases skipped because their deadline had passed when the task re-armed.
    pub missed: u64,
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket of a latency of `ns` nanoseconds.
fn bucket(ns: u64) -> usize {
    let us = ns / 1000;
    if us < LINEAR_US {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros();
    if octave >= END_OCTAVE {
        return BUCKETS;
    }
    let sub = (us >> (octave - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR_US as usize + (((octave - FIRST_OCTAVE) as usize) << SUB_BITS) + sub as usize
}

/// The exclusive upper bound, in nanoseconds, of regular bucket `b` (< [`BUCKETS`]).
fn bucket_end_ns(b: usize) -> u64 {
    let b = b as u64;
    if b < LINEAR_US {
        return (b + 1) * 1000;
    }
    let k = b - LINEAR_US;
    let octave = FIRST_OCTAVE + (k >> SUB_BITS) as u32;
    let sub = k & ((1 << SUB_BITS) - 1);
    let width_us = 1u64 << (octave - SUB_BITS);
    (((1 << SUB_BITS) + sub + 1) * width_us) * 1000
}

impl Window {
    /// An empty window.
    pub const fn new() -> Self {
        Window {
            counts: [0; BUCKETS + 1],
            samples: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            missed: 0,
        }
    }

    /// Records one wake-up `ns` nanoseconds after its deadline.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket(ns)] += 1;
        self.samples += 1;
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Records `releases` skipped releases.
    #[inline]
    pub fn record_missed(&mut self, releases: u64) {
        self.missed += releases;
    }

    /// Wake-ups recorded so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Summarises the window.
    pub fn summary(&self) -> Summary {
        if self.samples == 0 {
            return Summary {
                missed: self.missed,
                ..Summary::default()
            };
        }
        let rank50 = rank(self.samples, 50);
        let rank99 = rank(self.samples, 99);
        let (mut p50, mut p99) = (None, None);
        let mut seen = 0u64;
        for (b, &count) in self.counts.iter().enumerate().skip(bucket(self.min_ns)) {
            seen += u64::from(count);
            if p50.is_none() && seen >= rank50 {
                p50 = Some(self.upper_bound(b));
            }
            if seen >= rank99 {
                p99 = Some(self.upper_bound(b));
                break;
            }
        }
        Summary {
            samples: self.samples,
            min_ns: self.min_ns,
            p50_ns: p50.unwrap_or(self.max_ns),
            p99_ns: p99.unwrap_or(self.max_ns),
            max_ns: self.max_ns,
            missed: self.missed,
        }
    }

    /// The value reported for a percentile in bucket `b`.
    fn upper_bound(&self, b: usize) -> u64 {
        if b >= BUCKETS {
            self.max_ns
        } else {
            bucket_end_ns(b).clamp(self.min_ns, self.max_ns)
        }
    }

    /// Empties the window for the next one.
    pub fn reset(&mut self) {
        if self.samples != 0 {
            self.counts[bucket(self.min_ns)..=bucket(self.max_ns)].fill(0);
        }
        self.samples = 0;
        self.min_ns = u64::MAX;
        self.max_ns = 0;
        self.missed = 0;
    }
}

/// The 1-based rank of the `percent`th percentile among `n` samples: `ceil(n * percent / 100)`,
/// at least 1 (nearest-rank definition).
fn rank(n: u64, percent: u64) -> u64 {
    (n * percent).div_ceil(100).max(1)
}

/// Appends the report line for `summary` (no newline):
/// `rt-stats period_us=P samples=N min_ns=A p50_ns=B p99_ns=C max_ns=D missed=M`.
pub fn write_report(line: &mut Line, period_us: u64, summary: &Summary) {
    write_line(line, b"rt-stats", period_us, summary);
}

/// Appends the whole run's line for `summary` (no newline), in the format of
/// [`write_report`]: `rt-total period_us=P samples=N … missed=M`.
pub fn write_total(line: &mut Line, period_us: u64, summary: &Summary) {
    write_line(line, b"rt-total", period_us, summary);
}

fn write_line(line: &mut Line, name: &[u8], period_us: u64, summary: &Summary) {
    line.str(name)
        .str(b" period_us=")
        .u64(period_us)
        .str(b" samples=")
        .u64(summary.samples)
        .str(b" min_ns=")
        .u64(summary.min_ns)
        .str(b" p50_ns=")
        .u64(summary.p50_ns)
        .str(b" p99_ns=")
        .u64(summary.p99_ns)
        .str(b" max_ns=")
        .u64(summary.max_ns)
        .str(b" missed=")
        .u64(summary.missed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_of(samples: &[u64]) -> Window {
        let mut w = Window::new();
        for &ns in samples {
            w.record(ns);
        }
        w
    }

    #[test]
    fn empty_window_reports_zeros_and_its_misses() {
        let mut w = Window::new();
        w.record_missed(3);

        assert_eq!(
            w.summary(),
            Summary {
                missed: 3,
                ..Summary::default()
            }
        );
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let w = window_of(&[45_678]);

        let s = w.summary();

        assert_eq!(
            (s.samples, s.min_ns, s.p50_ns, s.p99_ns, s.max_ns),
            (1, 45_678, 45_678, 45_678, 45_678)
        );
    }

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        // 100 samples: 1.5 µs .. 100.5 µs; the 99th lies in the 2 µs bucket [98, 100) µs.
        let samples: Vec<u64> = (1..=100).map(|i| i * 1000 + 500).collect();
        let w = window_of(&samples);

        let s = w.summary();

        assert_eq!(
            (s.min_ns, s.p50_ns, s.p99_ns, s.max_ns),
            (1_500, 51_000, 100_000, 100_500)
        );
    }

    #[test]
    fn overflow_bucket_percentile_is_the_maximum() {
        let w = window_of(&[10, 20, 7_000_000_000, 9_000_000_000]);

        let s = w.summary();

        assert_eq!(
            (s.p50_ns, s.p99_ns, s.max_ns),
            (1_000, 9_000_000_000, 9_000_000_000)
        );
    }

    #[test]
    fn every_latency_lies_below_its_bucket_end_within_the_resolution() {
        let mut ns = 0u64;
        while ns < (1 << END_OCTAVE) * 1000 {
            let b = bucket(ns);
            let end = bucket_end_ns(b);
            let resolution = (ns / 32).max(1000);

            assert!(
                b < BUCKETS && ns < end && end - ns <= resolution,
                "{ns} -> {b} -> {end}"
            );
            ns = ns * 101 / 100 + 37;
        }
    }

    #[test]
    fn buckets_are_contiguous() {
        let ends: Vec<u64> = (0..BUCKETS).map(bucket_end_ns).collect();

        for b in 1..BUCKETS {
            assert_eq!(bucket(ends[b - 1]), b, "start of bucket {b}");
            assert_eq!(bucket(ends[b - 1] - 1), b - 1, "end of bucket {}", b - 1);
        }
        assert_eq!(bucket(ends[BUCKETS - 1]), BUCKETS);
    }

    #[test]
    fn histogram_is_small() {
        assert_eq!(BUCKETS, 576);
    }

    #[test]
    fn reset_empties_the_histogram_for_the_next_window() {
        let mut w = window_of(&[1_000, 3_999_999, u64::MAX]);
        w.record_missed(1);

        w.reset();
        w.record(2_500);

        assert_eq!(
            w.summary(),
            Summary {
                samples: 1,
                min_ns: 2_500,
                p50_ns: 2_500,
                p99_ns: 2_500,
                max_ns: 2_500,
                missed: 0
            }
        );
    }

    #[test]
    fn report_line_has_the_documented_format() {
        let s = Summary {
            samples: 1000,
            min_ns: 1,
            p50_ns: 2,
            p99_ns: 3,
            max_ns: 4,
            missed: 5,
        };
        let mut line = Line::new();

        write_report(&mut line, 1000, &s);

        assert_eq!(
            line.as_bytes(),
            b"rt-stats period_us=1000 samples=1000 min_ns=1 p50_ns=2 p99_ns=3 max_ns=4 missed=5"
        );
    }

    #[test]
    fn total_line_has_the_report_format_under_its_own_name() {
        let s = Summary {
            samples: 3000,
            min_ns: 1,
            p50_ns: 2,
            p99_ns: 3,
            max_ns: 4,
            missed: 5,
        };
        let mut line = Line::new();

        write_total(&mut line, 250, &s);

        assert_eq!(
            line.as_bytes(),
            b"rt-total period_us=250 samples=3000 min_ns=1 p50_ns=2 p99_ns=3 max_ns=4 missed=5"
        );
    }

    #[test]
    fn run_long_window_summarises_every_window_it_saw() {
        let mut window = Window::new();
        let mut total = Window::new();
        for second in 0..3u64 {
            for i in 0..100u64 {
                let ns = 10_000 + second * 1_000_000 + i;
                window.record(ns);
                total.record(ns);
            }
            window.record_missed(1);
            total.record_missed(1);
            window.reset();
        }

        let s = total.summary();

        assert_eq!(
            (s.samples, s.min_ns, s.max_ns, s.missed),
            (300, 10_000, 2_010_099, 3)
        );
    }
}
