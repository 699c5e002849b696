#!/usr/bin/python3
"""Boot-time and monitor-memory benchmarks, bulkhead against QEMU, side by side.

  bench/boot.py linux [--runs N]   inside the KVM test host (bench/run.sh does that): stock
                                   Debian kernel + initramfs, from process start to the first
                                   line the guest's init prints; bulkhead (bzImage, vmlinux/PVH)
                                   against QEMU -M microvm (vmlinux/PVH) and -M pc (bzImage);
                                   plus each monitor's own memory (RSS minus guest RAM).
  bench/boot.py rt [--runs N]      on this machine's /dev/kvm: the Rust RT guest, from process
                                   start to its first rt-stats line; bulkhead against QEMU
                                   -M microvm booting the same ELF through its PVH note.

Runs alternate between the contenders; each figure is the median of N runs (N >= 5). Prints a
Markdown table. Timings inside the test host are emulated (TCG): only ratios mean anything.
"""

import argparse
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("BULKHEAD_CACHE", os.path.expanduser("~/.cache/bulkhead"))
IMAGES = os.path.join(CACHE, "images")
BULKHEAD = os.path.join(REPO, "target/release/bulkhead")
RT_DEMO = os.path.join(REPO, "guests/target/x86_64-unknown-linux-gnu/release/rt-demo")
QEMU = "qemu-system-x86_64"
GUEST_MIB = 512
LINUX_CMDLINE = "console=ttyS0 loglevel=4 bh.action=idle"
INIT_MARK = "bulkhead-init: userspace reached"
RT_MARK = "rt-stats "
TIMEOUT_S = 300


def description(tmp, label, kernel, initrd, cmdline, mem, vcpus):
    """A one-partition description; vCPU i on host CPU i (QEMU's threads float over both)."""
    path = os.path.join(tmp, f"{label}.toml")
    cpus = ", ".join(str(i) for i in range(vcpus))
    with open(path, "w") as f:
        f.write(f'[system]\nname = "bench"\n\n[[partition]]\nname = "guest"\ncriticality = "low"\n'
                f'vcpus = {vcpus}\ncpus = [{cpus}]\nmemory_mib = {mem}\nkernel = "{kernel}"\n'
                + (f'initrd = "{initrd}"\n' if initrd else "")
                + f'cmdline = "{cmdline}"\n')
    return path


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def monitor_rss_kib(pid, guest_mib):
    """RSS of `pid` minus the resident part of its guest-RAM mapping(s)."""
    total, guest = 0, 0
    size = rss = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
                total += rss
                if size is not None and size >= guest_mib * 1024 * 9 // 10:
                    guest += rss
    return total - guest


def time_to_mark(cmd, mark, guest_mib=None, pick_pid=lambda p: p):
    """Starts `cmd`, returns (seconds to the first stdout line containing `mark`, monitor KiB)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    buf = b""
    try:
        while True:
            left = TIMEOUT_S - (time.monotonic() - t0)
            if left <= 0:
                raise RuntimeError(f"timed out waiting for {mark!r}: {' '.join(cmd)}")
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"exited before {mark!r}: {' '.join(cmd)}\n{buf[-2000:].decode(errors='replace')}")
            buf += chunk
            if mark.encode() in buf:
                elapsed = time.monotonic() - t0
                break
        rss = None
        if guest_mib is not None:
            time.sleep(0.5)
            rss = monitor_rss_kib(pick_pid(proc.pid), guest_mib)
        return elapsed, rss
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def partition_pid(supervisor_pid):
    kids = children(supervisor_pid)
    if not kids:
        raise RuntimeError("no partition process under the supervisor")
    return kids[0]


def linux(runs):
    vmlinuz, vmlinux = os.path.join(IMAGES, "vmlinuz"), os.path.join(IMAGES, "vmlinux")
    initrd = os.path.join(IMAGES, "initramfs.cpio.gz")
    tmp = tempfile.mkdtemp()
    qemu_common = ["-accel", "kvm", "-cpu", "host", "-smp", "2", "-m", str(GUEST_MIB), "-nodefaults",
                   "-no-user-config", "-nographic", "-serial", "stdio", "-initrd", initrd,
                   "-append", LINUX_CMDLINE]
    contenders = {
        "bulkhead, bzImage": (
            [BULKHEAD, "run", description(tmp, "bz", vmlinuz, initrd, LINUX_CMDLINE, GUEST_MIB, 2)], partition_pid),
        "bulkhead, vmlinux (PVH)": (
            [BULKHEAD, "run", description(tmp, "pvh", vmlinux, initrd, LINUX_CMDLINE, GUEST_MIB, 2)], partition_pid),
        "QEMU -M microvm, vmlinux (PVH)": ([QEMU, "-M", "microvm", "-kernel", vmlinux] + qemu_common, lambda p: p),
        "QEMU -M pc, bzImage": ([QEMU, "-M", "pc", "-kernel", vmlinuz] + qemu_common, lambda p: p),
    }
    results = {name: ([], []) for name in contenders}
    for run in range(runs):
        for name, (cmd, pick) in contenders.items():
            secs, rss = time_to_mark(cmd, INIT_MARK, GUEST_MIB, pick)
            results[name][0].append(secs)
            results[name][1].append(rss)
            print(f"run {run + 1}/{runs}: {name}: {secs:.3f} s to init, monitor {rss} KiB", file=sys.stderr)
    base_t = statistics.median(results["QEMU -M microvm, vmlinux (PVH)"][0])
    base_m = statistics.median(results["QEMU -M microvm, vmlinux (PVH)"][1])
    print(f"Linux partition boot, process start to the first line of the guest's init "
          f"(median of {runs}, emulated time inside the KVM test host; ratio against QEMU -M microvm):\n")
    print("| contender | boot to init (s) | ratio | monitor memory (MiB, RSS minus guest RAM) | ratio |")
    print("|---|---|---|---|---|")
    for name, (times, rsss) in results.items():
        t, m = statistics.median(times), statistics.median(rsss)
        print(f"| {name} | {t:.2f} | {t / base_t:.2f} | {m / 1024:.1f} | {m / base_m:.2f} |")


def rt(runs):
    tmp = tempfile.mkdtemp()
    cmdline = "period_us=1000 duration_s=0"
    contenders = {
        "bulkhead": [BULKHEAD, "run", description(tmp, "rt", RT_DEMO, None, cmdline, 32, 1)],
        # This machine's software KVM makes QEMU abort on MSR 0x10a with a plain -cpu host.
        "QEMU -M microvm": [QEMU, "-M", "microvm", "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-m", "32", "-nodefaults",
                            "-no-user-config", "-nographic", "-serial", "stdio", "-kernel", RT_DEMO,
                            "-append", cmdline],
    }
    results = {name: [] for name in contenders}
    for run in range(runs):
        for name, cmd in contenders.items():
            secs, _ = time_to_mark(cmd, RT_MARK)
            results[name].append(secs)
            print(f"run {run + 1}/{runs}: {name}: {secs:.3f} s to the first rt-stats", file=sys.stderr)
    base = statistics.median(results["QEMU -M microvm"])
    print(f"RT guest, process start to its first rt-stats line, on the build machine's /dev/kvm "
          f"(median of {runs}; ratio against QEMU -M microvm):\n")
    print("| contender | boot to first rt-stats (s) | ratio |")
    print("|---|---|---|")
    for name, times in results.items():
        t = statistics.median(times)
        print(f"| {name} | {t:.3f} | {t / base:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["linux", "rt"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5 (medians of fewer runs are not reported)")
    {"linux": linux, "rt": rt}[args.what](args.runs)


if __name__ == "__main__":
    main()
