#!/bin/bash
# The KVM test host: a QEMU TCG microVM (-cpu max: emulated AMD-V with nested paging) running
# Debian's stock kernel with kvm_amd, so /dev/kvm inside it is real KVM that boots stock Linux
# guests. The build machine's / is shared read-only (virtio-9p) and chrooted into, so every
# path is the same inside and outside. See docs/test-host.md.
#
# usage:
#   scripts/testhost.sh run [OPTIONS] -- CMD [ARGS...]
#       Boot the test host, run CMD in the current directory inside it, stream its
#       stdout+stderr (merged, via the serial console) to stdout, exit with CMD's status.
#   scripts/testhost.sh shell [OPTIONS]
#       Boot the test host and open an interactive bash in the chroot (exit = power off;
#       Ctrl-A x kills QEMU).
#
# options:
#   --mem MiB        test host memory (default 3072, or $BULKHEAD_TESTHOST_MEM)
#   --smp N          test host vCPUs (default 2)
#   --timeout S      kill the test host after S seconds, exit 124 (default 1800, 0 = none;
#                    or $BULKHEAD_TESTHOST_TIMEOUT); `run` only
#   --stall S        kill the test host, exit 125, when its heartbeat (written every 5 s while
#                    CMD runs) is older than S seconds, or CMD has not started S*3 seconds
#                    after QEMU did, or its kernel reports a CPU in a soft lockup for 100 s
#                    or more: it hung (default 90, 0 = never; or
#                    $BULKHEAD_TESTHOST_STALL); `run` only
#   --share DIR      share DIR read-write at the same path inside (repeatable; created if
#                    missing). Everything else is read-only; /tmp, /var/tmp, /run are tmpfs.
#   --env NAME[=VAL] pass environment variable NAME (its current value, or VAL) (repeatable)
#   --kmsg           let kernel messages of the test host interleave with CMD's output (by
#                    default they are kept off the console while CMD runs)
#   --verbose, -v    also print the test host's boot log and the markers (implies --kmsg)
#   --keep           keep the run directory (console log, job script) even on success
#
# exit status of `run`: CMD's status; 124 timeout; 125 the test host failed (boot, KVM or
# mounts: the console log is printed to stderr); 2 usage error.
# Environment: BULKHEAD_CACHE (default ~/.cache/bulkhead), QEMU (the emulator; default Debian's
# QEMU 10.0 from bookworm-backports, unpacked into the cache by scripts/testhost-qemu.sh),
# BULKHEAD_TESTHOST_TCG_THREAD (TCG's thread=: multi, the default, or single),
# BULKHEAD_TESTHOST_APPEND (more words for the test host's kernel command line).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${BULKHEAD_CACHE:-$HOME/.cache/bulkhead}
IMAGES=$CACHE/images
QEMU=${QEMU:-}

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
	exit "${1:-2}"
}
err() { printf 'testhost.sh: %s\n' "$*" >&2; }

[ $# -ge 1 ] || usage 2
MODE=$1
shift
case $MODE in
run | shell) ;;
-h | --help | help) usage 0 ;;
*)
	err "unknown command '$MODE' (run or shell)"
	usage 2
	;;
esac

MEM=${BULKHEAD_TESTHOST_MEM:-3072}
SMP=2
TIMEOUT=${BULKHEAD_TESTHOST_TIMEOUT:-1800}
STALL=${BULKHEAD_TESTHOST_STALL:-90}
VERBOSE=0
KMSG=0
KEEP=0
SHARES=()
ENVS=()
while [ $# -gt 0 ]; do
	case $1 in
	--mem) MEM=${2:?--mem needs a value}; shift 2 ;;
	--mem=*) MEM=${1#*=}; shift ;;
	--smp) SMP=${2:?--smp needs a value}; shift 2 ;;
	--smp=*) SMP=${1#*=}; shift ;;
	--timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
	--timeout=*) TIMEOUT=${1#*=}; shift ;;
	--stall) STALL=${2:?--stall needs a value}; shift 2 ;;
	--stall=*) STALL=${1#*=}; shift ;;
	--share) SHARES+=("${2:?--share needs a directory}"); shift 2 ;;
	--share=*) SHARES+=("${1#*=}"); shift ;;
	--env) ENVS+=("${2:?--env needs a name}"); shift 2 ;;
	--env=*) ENVS+=("${1#*=}"); shift ;;
	-v | --verbose) VERBOSE=1; KMSG=1; shift ;;
	--kmsg) KMSG=1; shift ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	*)
		if [ "$MODE" = run ]; then
			err "unknown option '$1' (the command goes after --)"
		else
			err "unknown option '$1'"
		fi
		exit 2
		;;
	esac
done
for n in "$MEM" "$SMP" "$TIMEOUT" "$STALL"; do
	[[ $n =~ ^[0-9]+$ ]] || { err "not a number: '$n'"; exit 2; }
done
if [ "$MODE" = run ]; then
	[ $# -ge 1 ] || { err "run: no command given (usage: testhost.sh run [OPTIONS] -- CMD ARGS...)"; exit 2; }
else
	[ $# -eq 0 ] || { err "shell takes no command"; exit 2; }
fi

# --- prerequisites ---------------------------------------------------------------------------
# Debian 12's own QEMU: the peer that benchmarks run inside the test host; it also brings the
# SeaBIOS firmware that the emulator below boots the microVM with.
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
	err "installing qemu-system-x86 (apt-get)"
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	{ $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y \
		--no-install-recommends qemu-system-x86 ||
		{ $SUDO apt-get -o DPkg::Lock::Timeout=600 -qq update &&
			$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y \
				--no-install-recommends qemu-system-x86; }; } >/dev/null ||
		{ err "cannot install qemu-system-x86"; exit 125; }
fi
if [ -z "$QEMU" ]; then
	QEMU=$("$SCRIPT_DIR/testhost-qemu.sh") || { err "no emulator for the test host"; exit 125; }
fi
# Builds on first use; a no-op (well under a second) when the cache is current.
"$SCRIPT_DIR/build-images.sh" --quiet || { err "build-images.sh failed"; exit 125; }
for f in testhost-vmlinux testhost-initramfs.cpio.gz; do
	[ -s "$IMAGES/$f" ] || { err "missing $IMAGES/$f"; exit 125; }
done

# --- one test host at a time ------------------------------------------------------------------
# Each keeps both of a 2-core machine's cores busy, and two at once more than double each other's
# times (and make TCG's nested AMD-V flakier): a second caller waits for the first.
mkdir -p "$CACHE/testhost"
exec 8>>"$CACHE/testhost/lock"
if ! flock -n 8; then
	err "another test host is running; waiting for it"
	flock 8
fi

# --- the run directory (the read-write control share) -----------------------------------------
mkdir -p "$CACHE/testhost/runs"
# Run directories of failed runs are kept for inspection; drop those older than two days.
find "$CACHE/testhost/runs" -mindepth 1 -maxdepth 1 -name 'run.*' -mtime +2 -exec rm -rf {} + 2>/dev/null || true
RUN_DIR=$(mktemp -d "$CACHE/testhost/runs/run.XXXXXX")
RUN_ID=${RUN_DIR##*.}-$$
cleanup() {
	local rc=$?
	if [ "$KEEP" = 0 ] && [ "${KEEP_ON_FAIL:-0}" = 0 ]; then
		rm -rf "$RUN_DIR"
	else
		err "run directory kept: $RUN_DIR"
	fi
	return $rc
}
trap cleanup EXIT

q() { printf '%q' "$1"; } # bash quoting; job.sh is run by the chroot's /bin/bash

CWD=$(pwd -P)
# The test host mounts its own tmpfs on /tmp, /var/tmp and /run: a working directory under one
# of them (a clone in /tmp, say) would be invisible there, so it is shared read-write.
case $CWD/ in
/tmp/* | /var/tmp/* | /run/*) SHARES+=("$CWD") ;;
esac
{
	echo '#!/bin/bash'
	echo "# generated by scripts/testhost.sh ($MODE)"
	echo "export PATH=$(q "${PATH:-/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin}")"
	echo "export HOME=$(q "${HOME:-/root}")"
	echo "export USER=$(q "${USER:-$(id -un)}")"
	echo "export LANG=$(q "${LANG:-C.UTF-8}")"
	echo "export BULKHEAD_TESTHOST=1"
	[ "$MODE" = shell ] && echo "export TERM=$(q "${TERM:-vt100}")"
	[ -n "${BULKHEAD_CACHE:-}" ] && echo "export BULKHEAD_CACHE=$(q "$BULKHEAD_CACHE")"
	for e in ${ENVS[@]+"${ENVS[@]}"}; do
		name=${e%%=*}
		[[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { err "--env: bad variable name '$name'"; exit 2; }
		if [[ $e == *=* ]]; then
			echo "export $name=$(q "${e#*=}")"
		elif [ -n "${!name+set}" ]; then
			echo "export $name=$(q "${!name}")"
		fi
	done
	echo "cd -- $(q "$CWD") 2>/dev/null || { echo \"testhost: $(q "$CWD") is not visible in the test host (under /tmp?); running in /\" >&2; cd /; }"
	if [ "$MODE" = run ]; then
		printf 'exec'
		for a in "$@"; do printf ' %s' "$(q "$a")"; done
		printf '\n'
	else
		echo 'PS1="[testhost \w]# "; export PS1'
		echo 'exec /bin/bash --norc -i'
	fi
} >"$RUN_DIR/job.sh"

SHARE_ARGS=()
: >"$RUN_DIR/shares"
i=0
for d in ${SHARES[@]+"${SHARES[@]}"}; do
	mkdir -p -- "$d"
	d=$(cd -- "$d" && pwd -P)
	case $d in *$'\n'*) err "--share: newline in path"; exit 2 ;; esac
	SHARE_ARGS+=(-fsdev "local,id=share$i,path=${d//,/,,},security_model=none,multidevs=remap"
		-device "virtio-9p-device,fsdev=share$i,mount_tag=share$i")
	printf 'share%d %s\n' "$i" "$d" >>"$RUN_DIR/shares"
	i=$((i + 1))
done

ROWS='' COLS=''
if [ "$MODE" = shell ] && [ -t 0 ]; then
	read -r ROWS COLS < <(stty size 2>/dev/null || echo "")
fi
cat >"$RUN_DIR/config" <<EOF
MODE=$MODE
RUN_ID=$RUN_ID
ROWS=$ROWS
COLS=$COLS
KMSG=$KMSG
EOF

# TCG's guest TSC runs at the host TSC's rate. The kernel's PIT calibration of it is flaky under
# TCG (when it fails the boot hangs with no clock at all), so pass the frequency explicitly.
TSC_KHZ=${BULKHEAD_TESTHOST_TSC_KHZ:-$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo 2>/dev/null)}
[[ ${TSC_KHZ:-} =~ ^[0-9]+$ ]] && [ "$TSC_KHZ" -gt 100000 ] || TSC_KHZ=2600000

QEMU_ARGS=(
	-M microvm -accel "tcg,thread=${BULKHEAD_TESTHOST_TCG_THREAD:-multi}" -cpu max -smp "$SMP" -m "$MEM"
	-nographic -no-reboot
	-kernel "$IMAGES/testhost-vmlinux" -initrd "$IMAGES/testhost-initramfs.cpio.gz"
	# no `quiet`: Debian's kernel was seen to hang at boot with it; loglevel=4 is fine.
	-append "console=ttyS0 loglevel=4 panic=-1 tsc_early_khz=$TSC_KHZ tsc=reliable ${BULKHEAD_TESTHOST_APPEND:-}"
	-fsdev "local,id=bhctl,path=${RUN_DIR//,/,,},security_model=none,multidevs=remap"
	-device virtio-9p-device,fsdev=bhctl,mount_tag=bhctl
	-fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
	-device virtio-9p-device,fsdev=hostroot,mount_tag=hostroot
	${SHARE_ARGS[@]+"${SHARE_ARGS[@]}"}
)

if [ "$MODE" = shell ]; then
	set +e
	"$QEMU" "${QEMU_ARGS[@]}"
	rc=$?
	set -e
	status=$(cat "$RUN_DIR/status" 2>/dev/null || echo)
	[[ $status =~ ^[0-9]+$ ]] && exit "$status"
	[ "$rc" = 0 ] || err "QEMU exited with status $rc"
	exit "$rc"
fi

# --- run: stream the console, keep only CMD's output (unless --verbose) -------------------------
LOG=$RUN_DIR/console.log
# mawk (Debian's default awk) reads pipes in big blocks unless -W interactive: no streaming.
AWK=(awk)
if command -v mawk >/dev/null 2>&1; then AWK=(mawk -W interactive); fi
TIMEOUT_CMD=()
[ "$TIMEOUT" = 0 ] || TIMEOUT_CMD=(timeout -k 10 "$TIMEOUT")

# The stall watchdog: TCG's emulated AMD-V now and then hangs the whole test host (no console
# output, one host thread spinning). The test host's init writes /ctl/heartbeat every 5 s while
# CMD runs; a heartbeat older than STALL seconds (or none STALL*3 seconds after QEMU started)
# kills QEMU, and the run reports the hang (exit 125) instead of waiting for its timeout.
watch_stall() {
	local started=$SECONDS beat age
	while sleep 5; do
		beat=$RUN_DIR/heartbeat
		if [ -e "$beat" ]; then
			age=$(($(date +%s) - $(stat -c %Y "$beat")))
		else
			age=$(((SECONDS - started) / 3))
		fi
		if [ "$age" -gt "$STALL" ]; then
			echo "no heartbeat for ${age}s" >"$RUN_DIR/stalled"
			pkill -KILL -f -- "id=bhctl,path=$RUN_DIR," 2>/dev/null
			return
		fi
		# One CPU of the test host stuck in its kernel while the other still writes the
		# heartbeat: the test host's own watchdog says so on the console (a line of its
		# kernel, not a partition's `NAME| [...]`); no process should be able to cause that.
		if grep -qE '^\[ *[0-9.]+\] watchdog: BUG: soft lockup - CPU#[0-9]+ stuck for [0-9]{3,}s' "$LOG" 2>/dev/null; then
			echo "one of its CPUs stuck in its kernel for over 100 s (soft lockup)" >"$RUN_DIR/stalled"
			pkill -KILL -f -- "id=bhctl,path=$RUN_DIR," 2>/dev/null
			return
		fi
	done
}
watcher=
if [ "$STALL" != 0 ]; then
	watch_stall &
	watcher=$!
fi
set +e
${TIMEOUT_CMD[@]+"${TIMEOUT_CMD[@]}"} "$QEMU" "${QEMU_ARGS[@]}" </dev/null 2>&1 |
	tee "$LOG" |
	"${AWK[@]}" -v start="testhost-cmd-start run=$RUN_ID" -v endm="testhost-exit-status=" \
		-v runid="run=$RUN_ID" -v verbose="$VERBOSE" '
	{ sub(/\r$/, "") }
	state == 0 {
		if (index($0, start)) { state = 1; if (verbose) { print; fflush() } }
		else if (verbose) { print; fflush() }
		next
	}
	state == 1 {
		i = index($0, endm)
		if (i && index($0, runid)) {
			if (i > 1) print substr($0, 1, i - 1)
			if (verbose) print substr($0, i)
			fflush(); state = 2; next
		}
		print; fflush(); next
	}
	state == 2 { if (verbose) { print; fflush() } }'
codes=("${PIPESTATUS[@]}")
[ -z "$watcher" ] || kill "$watcher" 2>/dev/null
set -e
qrc=${codes[0]}

if [ -e "$RUN_DIR/stalled" ]; then
	err "the test host hung: $(cat "$RUN_DIR/stalled"); killed (docs/test-host.md, \"Known flakiness\")"
	[ "$VERBOSE" = 1 ] || { err "last console lines:"; tail -n 30 "$LOG" | tr -d '\r' >&2; }
	KEEP_ON_FAIL=1
	exit 125
fi

status=$(cat "$RUN_DIR/status" 2>/dev/null || echo)
if [[ ! $status =~ ^[0-9]+$ ]] && [ "$status" != fatal ]; then
	# Fall back to the console marker.
	status=$(tr -d '\r' <"$LOG" | sed -n "s/.*testhost-exit-status=\([0-9]*\) run=$RUN_ID\$/\1/p" | tail -n1)
fi
if [ "$qrc" = 124 ] || { [ "$qrc" = 137 ] && [ "$TIMEOUT" != 0 ]; }; then
	err "timeout: the test host did not finish within ${TIMEOUT}s"
	[ "$VERBOSE" = 1 ] || { err "last console lines:"; tail -n 30 "$LOG" | tr -d '\r' >&2; }
	KEEP_ON_FAIL=1
	exit 124
fi
if [[ $status =~ ^[0-9]+$ ]]; then
	exit "$status" # CMD's own status (a set-up failure writes "fatal" instead)
fi
err "the test host failed (QEMU exit status $qrc); console log:"
[ "$VERBOSE" = 1 ] || tr -d '\r' <"$LOG" | tail -n 60 >&2
KEEP_ON_FAIL=1
exit 125
