#!/usr/bin/python3
"""How fast a real-time partition is back after a health-monitor restart, on this machine's
/dev/kvm (real time, not emulated).

  bench/restart.py [--runs N] [--restarts R] [--bulkhead PATH]

One `bulkhead run` per run of a one-partition system: the RT guest (guests/rt-demo, period
1000 us, first report after `first_report_ms=20`) reports a panic after its first rt-stats
line (`panic_after_s=1`), and `on_panic = "restart"` makes the supervisor start it again, up
to R times. Measured for every restart, as seen by this script reading `bulkhead run`'s output:
from the supervisor's line saying the partition stopped (the old process has exited) to the
new incarnation's first `rt-stats` line. That covers reaping the old process, starting the
new one, validation, guest memory (locked and faulted in: high criticality), loading,
booting the guest, and its first 20 ms reporting window. The high-criticality partition runs
SCHED_FIFO on host CPU 1.

Prints the median, p90 and max over every restart of every run (N runs, at least 5), and each
run's median, as a Markdown table on stdout; progress on stderr.
"""

import argparse
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RT_DEMO = os.path.join(REPO, "guests/target/x86_64-unknown-linux-gnu/release/rt-demo")


def one_run(bulkhead, restarts):
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        desc = os.path.join(tmp, "restart.toml")
        with open(desc, "w") as f:
            f.write(f'[system]\nname = "restart"\n\n[[partition]]\nname = "control"\ncriticality = "high"\n'
                    f'vcpus = 1\ncpus = [1]\nmemory_mib = 32\nkernel = "{RT_DEMO}"\n'
                    f'cmdline = "period_us=1000 first_report_ms=20 panic_after_s=1"\nmax_restarts = {restarts}\n\n'
                    f'[partition.health]\non_panic = "restart"\n')
        env = dict(os.environ, XDG_STATE_HOME=tmp)
        proc = subprocess.Popen([bulkhead, "run", desc], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env)
        sel = selectors.DefaultSelector()
        buffers = {}
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
            sel.register(stream, selectors.EVENT_READ)
            buffers[stream] = b""
        stopped_at = None
        gaps = []
        deadline = time.monotonic() + 60 + restarts * 5
        open_streams = 2
        while open_streams and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                chunk = os.read(key.fileobj.fileno(), 65536)
                now = time.monotonic()
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                buffers[key.fileobj] += chunk
                *lines, buffers[key.fileobj] = buffers[key.fileobj].split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace")
                    if "control: stopped: guest panic" in text:
                        stopped_at = now
                    elif text.startswith("control| rt-stats ") and stopped_at is not None:
                        gaps.append((now - stopped_at) * 1000)
                        stopped_at = None
        proc.kill()
        proc.wait()
        if len(gaps) < restarts:
            raise RuntimeError(f"only {len(gaps)} of {restarts} restarts measured")
        return gaps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--bulkhead", default=os.path.join(REPO, "target/release/bulkhead"))
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    every = []
    medians = []
    for run in range(args.runs):
        gaps = one_run(args.bulkhead, args.restarts)
        every += gaps
        medians.append(statistics.median(gaps))
        print(f"run {run + 1}/{args.runs}: median {medians[-1]:.1f} ms, max {max(gaps):.1f} ms", file=sys.stderr)
    every.sort()
    p90 = every[min(len(every) - 1, int(len(every) * 0.9))]
    print("RT partition: supervisor sees the panic stop -> first rt-stats of the restarted partition "
          f"(ms, {len(every)} restarts over {args.runs} runs, build machine /dev/kvm, real time):\n")
    print("| median | p90 | max | per-run medians |")
    print("|---|---|---|---|")
    print(f"| {statistics.median(every):.1f} | {p90:.1f} | {max(every):.1f} | "
          f"{' '.join(f'{m:.1f}' for m in medians)} |")


if __name__ == "__main__":
    main()
