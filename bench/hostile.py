#!/usr/bin/python3
"""Real-time latency beside a hostile neighbour, bulkhead against QEMU, side by side, on this
machine's /dev/kvm (the build machine's software KVM: real, not emulated, time).

  bench/hostile.py [--runs N] [--duration S] [--scenarios a,b,...] [--bulkhead PATH]
                   [--supervisor-cpus LIST]

What is measured: the wake-up latency of the Rust RT guest (guests/rt-demo, a 1000 us periodic
task on the LAPIC TSC-deadline timer, `period_us=1000 duration_s=S`), i.e. how late after each
deadline its timer interrupt handler ran. The guest prints an `rt-total` line at the end of
its run (the whole run's histogram: 1 us buckets below 64 us, then 32 per power of two,
percentiles are bucket upper bounds, max is exact; guests/README.md); its p99_ns and max_ns
are the figures. The RT guest runs on host CPU 1 with SCHED_FIFO priority 50; beside it, on
host CPU 0 at normal priority, the hostile neighbour guest (guests/hostile) runs one scenario:

  alone    no neighbour at all
  cpu      attack=cpu: spins in ring 3, never sleeps
  membw    attack=membw membw_mib=256: ring-3 copies over a 256 MiB buffer (8x the LLC)
  exits    attack=exits exit_kind=mmio: stores to an unmapped guest-physical address from
           ring 3, each one an MMIO exit to the monitor
  console  attack=console: 4 KiB console lines as fast as the console takes them (bulkhead:
           one ConsoleWrite each; QEMU: COM1, one exit per byte)
  pvcalls  attack=pvcalls: paravirtual calls the monitor must refuse, doorbells it must
           ignore (not in the default set)
  crash    attack=crash crash_after_ms=100: a triple fault 100 ms after each boot, restarted
           at once, over and over
  all      attack=all crash_after_ms=1000: every attack but the crash interleaved in 1 ms
           slices, and a triple fault (then a restart) every second

Contenders, the same two ELF images with the same command lines:

  bulkhead  `bulkhead run` of a two-partition description written to a temp dir: `control`
            (criticality high, cpus [1], rt_priority 50, 32 MiB) and `hostile` (criticality
            low, cpus [0], 320 MiB, on_guest_fault = "restart", on_reset = "restart",
            max_restarts 1000000); "alone" has `control` only. The supervisor's stdout goes
            to /dev/null, the RT partition's console to a console_log file. `bulkhead run`
            starts under `taskset -c 0` (--supervisor-cpus; "all": unpinned), so the
            supervisor and the partition processes' other threads stay on the hostile's CPU
            as all of the hostile QEMU's threads do; each vCPU thread then pins itself
            (the RT one to CPU 1, checked in the supervisor's messages). Unpinned, they
            float onto the RT CPU whenever CPU 0 is busy (the console flood's reader
            thread, for one) and delay the RT vCPU's wake-ups there.
  QEMU      Debian's qemu-system-x86_64 -M microvm -accel kvm -cpu host,-arch-capabilities
            -nodefaults -no-user-config -nographic -serial stdio, booting the images through
            their PVH note: the RT guest `taskset -c 1 chrt -f 50` (every QEMU thread on CPU 1
            at SCHED_FIFO 50) -m 32, its COM1 to a file; the hostile one `taskset -c 0` -m 320,
            its COM1 to /dev/null, in a shell loop that starts it again (-no-reboot) whenever
            it exits, so a crash is a cold restart there too.

Each run measures every scenario with both contenders, alternating (the order swaps every
scenario and every run); each figure is the median over N runs (N >= 5) of the per-run p99
and max. Ratios: p99 against the same contender's "alone" p99, and bulkhead p99 / QEMU p99
(< 1.0: bulkhead's RT guest wakes up on time more reliably). A measurement that yields no
rt-total line (the guest or a monitor died, a timeout) is run again, and counted in the
output, never dropped silently. Prints a Markdown table on stdout and progress on stderr.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BULKHEAD = os.path.join(REPO, "target/release/bulkhead")
IMAGES = os.path.join(REPO, "guests/target/x86_64-unknown-linux-gnu/release")
QEMU = "qemu-system-x86_64"
RT_CPU, HOSTILE_CPU = 1, 0
RT_PRIORITY = 50
PERIOD_US = 1000
RT_MIB, HOSTILE_MIB = 32, 320
SCENARIOS = {
    "alone": None,
    "cpu": "attack=cpu",
    "membw": "attack=membw membw_mib=256",
    "exits": "attack=exits exit_kind=mmio",
    "console": "attack=console",
    "pvcalls": "attack=pvcalls",
    "crash": "attack=crash crash_after_ms=100",
    "all": "attack=all crash_after_ms=1000",
}
DEFAULT_SCENARIOS = ["alone", "cpu", "membw", "exits", "console", "crash", "all"]
QEMU_COMMON = ["-M", "microvm", "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-nodefaults",
               "-no-user-config", "-nographic", "-serial", "stdio"]
TOTAL = re.compile(r"rt-total period_us=\d+ samples=(\d+) min_ns=(\d+) p50_ns=(\d+) p99_ns=(\d+) "
                   r"max_ns=(\d+) missed=(\d+)")
DONE_MARK = "rt-demo: done"
ATTEMPTS = 3  # measurements of one (scenario, contender, run) before giving up


def description(tmp, rt_cmdline, hostile_cmdline):
    """The system description: `control`, and `hostile` unless the scenario is "alone"."""
    path = os.path.join(tmp, "system.toml")
    text = (f'[system]\nname = "hostile-bench"\n\n'
            f'[[partition]]\nname = "control"\ncriticality = "high"\nvcpus = 1\ncpus = [{RT_CPU}]\n'
            f'memory_mib = {RT_MIB}\nkernel = "{os.path.join(IMAGES, "rt-demo")}"\n'
            f'cmdline = "{rt_cmdline}"\nrt_priority = {RT_PRIORITY}\nconsole_log = "control.log"\n')
    if hostile_cmdline is not None:
        text += (f'\n[[partition]]\nname = "hostile"\ncriticality = "low"\nvcpus = 1\ncpus = [{HOSTILE_CPU}]\n'
                 f'memory_mib = {HOSTILE_MIB}\nkernel = "{os.path.join(IMAGES, "hostile")}"\n'
                 f'cmdline = "{hostile_cmdline}"\non_reset = "restart"\nmax_restarts = 1000000\n\n'
                 f'[partition.health]\non_guest_fault = "restart"\n')
    with open(path, "w") as f:
        f.write(text)
    return path


def kill_group(proc, sig=signal.SIGKILL):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_for_done(log, procs, timeout):
    """Polls `log` until the RT guest is done; returns its text. Raises if a process in
    `procs` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        text = ""
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                text = f.read()
        if DONE_MARK in text:
            return text
        for name, proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}) before the RT guest was done:\n{text[-1500:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s:\n{text[-1500:]}")
        time.sleep(0.05)


def parse_total(text):
    m = TOTAL.search(text)
    if not m:
        raise RuntimeError(f"no rt-total line:\n{text[-1500:]}")
    samples, _, _, p99, mx, missed = (int(g) for g in m.groups())
    return {"p99_ns": p99, "max_ns": mx, "samples": samples, "missed": missed}


def env(tmp):
    e = dict(os.environ)
    # Event log and run directory of the supervisor into the temp dir, not the user's.
    e["XDG_STATE_HOME"] = os.path.join(tmp, "state")
    e["XDG_RUNTIME_DIR"] = os.path.join(tmp, "run")
    os.makedirs(e["XDG_STATE_HOME"], exist_ok=True)
    os.makedirs(e["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
    return e


def run_bulkhead(args, tmp, rt_cmdline, hostile_cmdline, timeout):
    desc = description(tmp, rt_cmdline, hostile_cmdline)
    log = os.path.join(tmp, "control.log")
    err_path = os.path.join(tmp, "supervisor.err")
    pin = [] if args.supervisor_cpus == "all" else ["taskset", "-c", args.supervisor_cpus]
    with open(err_path, "w") as err:
        proc = subprocess.Popen(pin + [args.bulkhead, "run", desc], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env=env(tmp), start_new_session=True)
    try:
        text = wait_for_done(log, [("bulkhead", proc)], timeout)
    finally:
        # SIGTERM: the supervisor stops every partition (they also die with it).
        kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait()
    with open(err_path, errors="replace") as f:
        err_text = f.read()
    placed = f"control: vCPU 0 placed on host CPU {RT_CPU}, SCHED_FIFO priority {RT_PRIORITY}"
    if placed not in err_text:
        raise RuntimeError(f"the RT partition was not placed as asked ({placed!r} missing):\n{err_text[-1500:]}")
    result = parse_total(text)
    result["restarts"] = err_text.count("hostile: restarting")
    return result


def run_qemu(args, tmp, rt_cmdline, hostile_cmdline, timeout):
    log = os.path.join(tmp, "rt.log")
    loop_err = os.path.join(tmp, "hostile.err")
    procs = []
    hostile = None
    try:
        with open(log, "w") as out:
            rt = subprocess.Popen(["taskset", "-c", str(RT_CPU), "chrt", "-f", str(RT_PRIORITY), QEMU] + QEMU_COMMON
                                  + ["-m", str(RT_MIB), "-kernel", os.path.join(IMAGES, "rt-demo"),
                                     "-append", rt_cmdline],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        procs.append(("QEMU (RT)", rt))
        if hostile_cmdline is not None:
            qemu = " ".join([QEMU] + QEMU_COMMON + ["-no-reboot", "-m", str(HOSTILE_MIB), "-kernel",
                                                    os.path.join(IMAGES, "hostile"),
                                                    "-append", f"'{hostile_cmdline}'"])
            # A cold restart whenever the guest ends (-no-reboot: a triple fault exits QEMU).
            loop = f"while :; do {qemu} </dev/null >/dev/null 2>&1; echo restart >&2; done"
            with open(loop_err, "w") as err:
                hostile = subprocess.Popen(["taskset", "-c", str(HOSTILE_CPU), "sh", "-c", loop],
                                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                           start_new_session=True)
            procs.append(("QEMU (hostile loop)", hostile))
        text = wait_for_done(log, procs, timeout)
    finally:
        for _, p in procs:
            kill_group(p)
            p.wait()
    result = parse_total(text)
    restarts = 0
    if hostile is not None:
        with open(loop_err) as f:
            restarts = f.read().count("restart")
    result["restarts"] = restarts
    return result


CONTENDERS = {"bulkhead": run_bulkhead, "QEMU": run_qemu}


def measure(args, contender, scenario, prefix, failures):
    """One measurement; a failed one is run again (up to ATTEMPTS) and counted."""
    rt_cmdline = f"period_us={PERIOD_US} duration_s={args.duration}"
    hostile_cmdline = SCENARIOS[scenario]
    timeout = args.duration + 60
    for attempt in range(ATTEMPTS):
        tmp = tempfile.mkdtemp(prefix="bench-hostile-")
        try:
            t0 = time.monotonic()
            r = CONTENDERS[contender](args, tmp, rt_cmdline, hostile_cmdline, timeout)
            r["wall"] = time.monotonic() - t0
            return r
        except RuntimeError as e:
            failures[contender][scenario] = failures[contender].get(scenario, 0) + 1
            print(f"{prefix}{contender}/{scenario}: failed (attempt {attempt + 1}): {str(e)[-800:]}",
                  file=sys.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            time.sleep(0.5)  # let the last processes' exit settle before the next measurement
    return None


def fmt_us(ns):
    return f"{ns / 1000:.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10,
                        help="seconds the RT guest measures per measurement (its duration_s; default 10)")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: {','.join(DEFAULT_SCENARIOS)})")
    parser.add_argument("--bulkhead", default=BULKHEAD, help="the bulkhead binary (default: target/release/bulkhead)")
    parser.add_argument("--supervisor-cpus", default=str(HOSTILE_CPU),
                        help=f"host CPUs `bulkhead run` starts on (taskset -c; default {HOSTILE_CPU}, the hostile's; "
                             f"'all': unpinned)")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5 (medians of fewer runs are not reported)")
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    scenarios = args.scenarios.split(",")
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if "alone" not in scenarios:
        scenarios.insert(0, "alone")  # the ratios need it
    for f in (args.bulkhead, os.path.join(IMAGES, "rt-demo"), os.path.join(IMAGES, "hostile")):
        if not os.path.exists(f):
            sys.exit(f"hostile.py: {f} is missing (cargo build --release; cd guests && cargo build --release)")
    for tool in (QEMU, "taskset", "chrt"):
        if shutil.which(tool) is None:
            sys.exit(f"hostile.py: {tool} is not installed (apt-get install qemu-system-x86 util-linux)")
    if os.cpu_count() is None or os.cpu_count() < 2:
        sys.exit("hostile.py: needs host CPUs 0 and 1")

    results = {c: {s: [] for s in scenarios} for c in CONTENDERS}
    failures = {c: {} for c in CONTENDERS}
    order = list(CONTENDERS)
    for run in range(args.runs):
        for scenario in scenarios:
            for contender in order:
                prefix = f"run {run + 1}/{args.runs}: "
                r = measure(args, contender, scenario, prefix, failures)
                if r is None:
                    print(f"{prefix}{contender}/{scenario}: given up after {ATTEMPTS} attempts", file=sys.stderr)
                    continue
                results[contender][scenario].append(r)
                print(f"{prefix}{contender}/{scenario}: p99 {fmt_us(r['p99_ns'])} us, max {fmt_us(r['max_ns'])} us, "
                      f"samples {r['samples']}, missed {r['missed']}, hostile restarts {r['restarts']} "
                      f"({r['wall']:.1f} s)", file=sys.stderr)
            order.reverse()

    def med(contender, scenario, key):
        values = [r[key] for r in results[contender][scenario]]
        return statistics.median(values) if values else None

    print(f"RT guest wake-up latency beside a hostile neighbour on the build machine's /dev/kvm: rt-demo "
          f"(period {PERIOD_US} us, {args.duration} s per measurement, its rt-total line) on host CPU {RT_CPU} at "
          f"SCHED_FIFO {RT_PRIORITY}, the hostile guest on host CPU {HOSTILE_CPU}; median of {args.runs} runs "
          f"of p99 and of max (us). \"x alone\": p99 / the same contender's p99 alone; "
          f"\"bh / QEMU\": bulkhead p99 / QEMU p99.\n")
    print("| scenario | bulkhead p99 | bulkhead max | x alone | QEMU p99 | QEMU max | x alone | bh / QEMU |")
    print("|---|---|---|---|---|---|---|---|")
    base = {c: med(c, "alone", "p99_ns") for c in CONTENDERS}

    def cell(v, fmt=fmt_us):
        return "—" if v is None else fmt(v)

    for scenario in scenarios:
        b99, bmax = med("bulkhead", scenario, "p99_ns"), med("bulkhead", scenario, "max_ns")
        q99, qmax = med("QEMU", scenario, "p99_ns"), med("QEMU", scenario, "max_ns")
        ratio = lambda v, b: None if v is None or not b else v / b
        print(f"| {scenario} | {cell(b99)} | {cell(bmax)} | {cell(ratio(b99, base['bulkhead']), '{:.2f}'.format)} "
              f"| {cell(q99)} | {cell(qmax)} | {cell(ratio(q99, base['QEMU']), '{:.2f}'.format)} "
              f"| {cell(ratio(b99, q99), '{:.2f}'.format)} |")
    print()
    for contender in CONTENDERS:
        for scenario in scenarios:
            rs = results[contender][scenario]
            runs = " ".join(f"{fmt_us(r['p99_ns'])}/{fmt_us(r['max_ns'])}" for r in rs)
            missed = " ".join(str(r["missed"]) for r in rs)
            restarts = " ".join(str(r["restarts"]) for r in rs)
            extra = f"; hostile restarts {restarts}" if scenario in ("crash", "all") else ""
            print(f"Runs, {contender}, {scenario} (p99/max us): {runs}; missed releases {missed}{extra}.  ")

    def failed(c):
        return ", ".join(f"{s} {n}" for s, n in failures[c].items()) or "none"
    print(f"Failed measurements, each run again (not counted above): bulkhead: {failed('bulkhead')}; "
          f"QEMU: {failed('QEMU')}.")


if __name__ == "__main__":
    main()
