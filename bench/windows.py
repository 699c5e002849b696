#!/usr/bin/python3
"""ARINC 653 time windows on this machine's /dev/kvm: how late windows start and end.

  bench/windows.py [--runs N] [--seconds S] [--bulkhead PATH]

One `bulkhead run` per run: two RT guests (guests/rt-demo, probe=windows: they spin, so the
vCPU is always runnable inside its window) share host CPU 1 in a 20 ms major frame, "a" from
0 to 5 ms (high criticality, SCHED_FIFO 50) and "b" from 10 to 15 ms (low criticality). Each
vCPU thread reports, when its partition stops, a `window-stats` line: how late it woke for
its windows' starts (the window-start jitter: the host timer's lateness plus the switch) and
how late it left the guest after their ends, and the overruns (ends left more than 100 us
late). Prints the median over the runs of each figure, per partition, as a Markdown table.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RT_DEMO = os.path.join(REPO, "guests/target/x86_64-unknown-linux-gnu/release/rt-demo")
STATS = re.compile(r"\[bulkhead\] (\w+): window-stats vcpu=0 cpu=1 frame_us=20000 windows=(\d+) "
                   r"start_late_p50_us=(\d+) start_late_p99_us=(\d+) start_late_max_us=(\d+) "
                   r"end_late_p99_us=(\d+) end_late_max_us=(\d+) overruns=(\d+)")
FIELDS = ["windows", "start_p50", "start_p99", "start_max", "end_p99", "end_max", "overruns"]


def one_run(bulkhead, seconds):
    with tempfile.TemporaryDirectory(prefix="bench-windows-") as tmp:
        probe = f"probe=windows gap_us=1000 duration_s={seconds}"
        desc = os.path.join(tmp, "w.toml")
        with open(desc, "w") as f:
            f.write('[system]\nname = "bench-windows"\n')
            for name, crit in (("a", "high"), ("b", "low")):
                f.write(f'\n[[partition]]\nname = "{name}"\ncriticality = "{crit}"\nvcpus = 1\ncpus = [1]\n'
                        f'memory_mib = 32\nkernel = "{RT_DEMO}"\ncmdline = "{probe}"\n')
            f.write('\n[[schedule]]\ncpus = [1]\nmajor_frame_us = 20000\nwindow = [\n'
                    '  { partition = "a", offset_us = 0, duration_us = 5000 },\n'
                    '  { partition = "b", offset_us = 10000, duration_us = 5000 },\n]\n')
        out = subprocess.run([bulkhead, "run", desc], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, timeout=seconds + 60,
                             env=dict(os.environ, XDG_STATE_HOME=tmp)).stdout.decode(errors="replace")
        found = {m.group(1): [int(g) for g in m.groups()[1:]] for m in STATS.finditer(out)}
        if set(found) != {"a", "b"}:
            raise RuntimeError(f"no window statistics:\n{out[-2000:]}")
        return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--bulkhead", default=os.path.join(REPO, "target/release/bulkhead"))
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    runs = {"a": [], "b": []}
    for run in range(args.runs):
        r = one_run(args.bulkhead, args.seconds)
        for name in runs:
            runs[name].append(r[name])
        print(f"run {run + 1}/{args.runs}: " + "; ".join(f"{n} {dict(zip(FIELDS, v))}" for n, v in r.items()),
              file=sys.stderr)
    print(f"Time windows on host CPU 1 (20 ms frame, two 5 ms windows), {args.seconds} s per run, median of "
          f"{args.runs} runs, build machine /dev/kvm (real time), µs:\n")
    print("| partition | windows | start late p50 | start late p99 | start late max | end late p99 | "
          "end late max | overruns (> 100 µs) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label in (("a", "a (high, SCHED_FIFO)"), ("b", "b (low, SCHED_OTHER)")):
        med = [statistics.median(v[i] for v in runs[name]) for i in range(len(FIELDS))]
        print(f"| {label} | " + " | ".join(f"{m:.0f}" for m in med) + " |")


if __name__ == "__main__":
    main()
