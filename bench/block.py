#!/usr/bin/python3
"""VirtIO block throughput, bulkhead against QEMU, side by side inside the KVM test host.

  bench/block.py [--runs N] [--runtime S] [--ramp S] [--disk-mib M]

On the build machine (bench/run.sh does this), each run boots both contenders one after the
other in one KVM test host of its own (scripts/testhost.sh run -- bench/block.py --pair
A,B), so that they are compared side by side on the same emulated machine: the speed of a
TCG test host differs by 2x and more from one boot of it to the next, far more than the
contenders differ. A run whose test host dies is run again, both contenders, in a fresh one;
a guest that dies is booted again in the same test host: under TCG the emulated AMD-V now and
then triple-faults, in the nested guest or in the test host itself, while the guest does
heavy I/O. Started inside a test host (scripts/testhost.sh run -- bench/block.py), it boots
everything there instead. Either way, failed boots are counted in the output, never dropped
silently.

Each measurement boots, for one contender, the stock Debian kernel (vmlinux through PVH) with
the project's initramfs, 2 vCPUs and 512 MiB, with a fresh raw image in the test host's /tmp
(tmpfs) as a virtio-blk disk (virtio-mmio), and runs fio on /dev/vda in the guest: sequential
read and write (1 MiB blocks, iodepth 16), 4 KiB random read and write (iodepth 32), and
4 KiB random reads one at a time (iodepth 1: the mean completion latency is the
notify-to-interrupt round trip, guest block layer and host page-cache read included),
direct I/O through libaio, time-based. The guest prints fio's terse output on its serial
console; it is parsed here.

  bulkhead  `bulkhead run` of a one-partition description with
            [[partition.device]] kind = "block" (buffered reads and writes of the image, checked
            on the partition's device thread and run by the disk's io_threads = 4 workers,
            fdatasync on a flush; low criticality, so the default adaptive batching window of
            100 us applies; huge_pages = true, which takes effect only where THP is on)
  QEMU      Debian's qemu-system-x86_64 -M microvm with -device virtio-blk-device on a drive
            with cache=writeback,aio=threads: the same host I/O model (buffered I/O through the
            host page cache, fdatasync on a flush), from QEMU's pool of worker threads

The contenders swap order every run; each figure is the median of N runs (N >= 5); ratios
are bulkhead / QEMU (QEMU / bulkhead for the round trip), so >= 1.0 means bulkhead moved at
least as many bytes or I/Os: the ratio of the medians, and the median of the N ratios of
the two contenders within one run (one test host). Prints a Markdown table on stdout and
progress on stderr. Timings inside the test host are emulated (TCG): only the ratios mean
anything. Transparent huge pages are off in the test host for both contenders (both guests' RAM
on 4 KiB pages): with them on, the emulated AMD-V killed test hosts several times as often
(docs/benchmarks.md, "virtio-blk on the QEMU 10.0 test host").
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("BULKHEAD_CACHE", os.path.expanduser("~/.cache/bulkhead"))
IMAGES = os.path.join(CACHE, "images")
BULKHEAD = os.path.join(REPO, "target/release/bulkhead")
QEMU = "qemu-system-x86_64"
VMLINUX = os.path.join(IMAGES, "vmlinux")
INITRD = os.path.join(IMAGES, "initramfs.cpio.gz")
GUEST_MIB = 512
VCPUS = 2
BASE_CMDLINE = "console=ttyS0 loglevel=4 bh.modules=virtio bh.action=poweroff"
QEMU_DRIVE_OPTS = "format=raw,if=none,id=d0,cache=writeback,aio=threads"
MAX_ATTEMPTS = 4  # guest boots per measurement when all run in one test host

# (job name, fio options, what is reported)
WORKLOADS = [
    ("seq-read", "--rw=read --bs=1M --iodepth=16", "MiB/s"),
    ("seq-write", "--rw=write --bs=1M --iodepth=16", "MiB/s"),
    ("rand-read", "--rw=randread --bs=4k --iodepth=32", "IOPS"),
    ("rand-write", "--rw=randwrite --bs=4k --iodepth=32", "IOPS"),
    ("round-trip", "--rw=randread --bs=4k --iodepth=1", "µs"),
]
LABELS = {
    "seq-read": "sequential read, 1 MiB, iodepth 16",
    "seq-write": "sequential write, 1 MiB, iodepth 16",
    "rand-read": "random read, 4 KiB, iodepth 32",
    "rand-write": "random write, 4 KiB, iodepth 32",
    "round-trip": "notify-to-interrupt round trip: 4 KiB random read at iodepth 1, mean completion latency",
}
# Jobs whose figure is a latency (lower is better): their ratio is QEMU / bulkhead.
LATENCY_JOBS = {"round-trip"}
# fio --terse-version=3: field 2 is the job name, 4 the error, 6/7 read KiB/s and IOPS, 47/48
# write KiB/s and IOPS.
TERSE = re.compile(r"3;fio-[^;\s]*;(?:" + "|".join(w[0] for w in WORKLOADS) + r");[^\r\n]*")


def fio_command(runtime, ramp):
    common = (f"--output-format=terse --terse-version=3 --filename=/dev/vda --direct=1 --ioengine=libaio "
              f"--clocksource=clock_gettime --time_based --runtime={runtime} --ramp_time={ramp} "
              f"--group_reporting")
    jobs = " ".join(f"--name={name} --stonewall {opts}" for name, opts, _ in WORKLOADS)
    # The queue set-up the guest driver negotiated, then the jobs, one after the other.
    return ("echo bench-vda queues=$(ls /sys/block/vda/mq | wc -l) "
            "nr_requests=$(cat /sys/block/vda/queue/nr_requests) "
            "max_sectors_kb=$(cat /sys/block/vda/queue/max_sectors_kb) "
            "max_segments=$(cat /sys/block/vda/queue/max_segments); "
            f"fio {common} {jobs}")


def bh_encode(script):
    """The guest init's bh.cmd= encoding: `+` is a space, `%XX` a byte."""
    out = []
    for b in script.encode():
        c = chr(b)
        if c == " ":
            out.append("+")
        elif c.isascii() and (c.isalnum() or c in "./-_=:,"):
            out.append(c)
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def make_disk(path, mib):
    """A raw image of `mib` MiB, every block written (so reads hit real pages of the test
    host's tmpfs, as they would on a used disk)."""
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(chunk)


def bulkhead_cmd(tmp, disk, cmdline):
    path = os.path.join(tmp, "block.toml")
    cpus = ", ".join(str(i) for i in range(VCPUS))
    with open(path, "w") as f:
        f.write(f'[system]\nname = "bench"\n\n[[partition]]\nname = "guest"\ncriticality = "low"\n'
                f'vcpus = {VCPUS}\ncpus = [{cpus}]\nmemory_mib = {GUEST_MIB}\nkernel = "{VMLINUX}"\n'
                f'initrd = "{INITRD}"\ncmdline = "{cmdline}"\non_reset = "stop"\nhuge_pages = true\n\n'
                f'[[partition.device]]\nkind = "block"\npath = "{disk}"\n')
    return [BULKHEAD, "run", path]


def qemu_args(disk, cmdline):
    return ["-M", "microvm", "-accel", "kvm", "-cpu", "host", "-smp", str(VCPUS), "-m", str(GUEST_MIB),
            "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
            "-kernel", VMLINUX, "-initrd", INITRD, "-append", cmdline,
            "-drive", f"file={disk},{QEMU_DRIVE_OPTS}", "-device", "virtio-blk-device,drive=d0"]


def qemu_cmd(tmp, disk, cmdline):
    return [QEMU] + qemu_args(disk, cmdline)


def one_boot(name, make_cmd, cmdline, disk_mib, timeout):
    """Boots one guest on a fresh disk; returns ({job: (KiB/s, IOPS)}, vda line)."""
    tmp = tempfile.mkdtemp(prefix="bench-block-")
    try:
        disk = os.path.join(tmp, "disk.img")
        make_disk(disk, disk_mib)
        cmd = make_cmd(tmp, disk, cmdline)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=timeout)
        wall = time.monotonic() - t0
        out = proc.stdout.decode(errors="replace")
        results = {}
        for m in TERSE.finditer(out):
            f = m.group(0).split(";")
            if len(f) < 49 or f[4] != "0":
                raise RuntimeError(f"{name}: fio job failed: {m.group(0)[:200]}")
            job = f[2]
            if job in LATENCY_JOBS:
                # Read completion latency, mean (terse v3 field 16, microseconds).
                results[job] = (float(f[15]), None)
            elif job.startswith("seq-read") or job.startswith("rand-read"):
                results[job] = (float(f[6]), float(f[7]))
            else:
                results[job] = (float(f[47]), float(f[48]))
        vda = re.search(r"bench-vda [^\r\n]*", out)
        if proc.returncode != 0 or len(results) != len(WORKLOADS):
            raise RuntimeError(f"{name}: exit status {proc.returncode}, {len(results)} of {len(WORKLOADS)} fio "
                               f"results:\n{out[-3000:]}")
        return results, (vda.group(0) if vda else "bench-vda ?"), wall
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def figure(job, first, iops):
    if job in LATENCY_JOBS:
        return first
    return first / 1024 if job.startswith("seq-") else iops


CONTENDERS = {"bulkhead": bulkhead_cmd, "QEMU": qemu_cmd}
RESULT_MARK = "bench-block-result "
FAILED_MARK = "bench-block-failed "
HOST_ATTEMPTS = 8


def no_transparent_huge_pages():
    """Turns THP off in this test host (see the module documentation)."""
    for knob in ("enabled", "shmem_enabled"):
        with open(f"/sys/kernel/mm/transparent_hugepage/{knob}", "w") as f:
            f.write("never")


def boot_with_retries(name, args, log_prefix, attempts=MAX_ATTEMPTS):
    """One measurement of `name` in this (test) host; a guest that dies is booted again.
    Returns (figures by job, vda line, wall seconds, guest boots run again)."""
    fio = fio_command(args.runtime, args.ramp)
    cmdline = f"{BASE_CMDLINE} bh.cmd={bh_encode(fio)}"
    retried = 0
    while True:
        try:
            res, vda, wall = one_boot(name, CONTENDERS[name], cmdline, args.disk_mib, boot_timeout(args))
            return {job: figure(job, *res[job]) for job, _, _ in WORKLOADS}, vda, wall, retried
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            # The nested guest sometimes dies under the emulated AMD-V (a reset with no
            # message); such a boot is run again and counted, never dropped silently.
            if retried + 1 >= attempts:
                raise
            retried += 1
            print(f"{log_prefix}{name}: guest boot failed, booting it again: {str(e)[-600:]}", file=sys.stderr)


def boot_timeout(args):
    """Seconds one guest boot may take (about 15 s of boot and power-off besides fio)."""
    return 90 + len(WORKLOADS) * (args.runtime + args.ramp) * 2


def pair_in_test_host(names, args, log_prefix):
    """One run: the contenders `names`, in that order, in one test host of its own
    (scripts/testhost.sh run -- block.py --pair A,B); a guest that dies is booted again there.
    When the test host dies, or a guest dies MAX_ATTEMPTS times, the whole run goes to a fresh
    test host. Returns ({name: (figures, vda line, wall seconds)}, {failure kind: count})."""
    timeout = len(names) * MAX_ATTEMPTS * boot_timeout(args) + 120
    cmd = [os.path.join(REPO, "scripts/testhost.sh"), "run", "--timeout", str(timeout),
           "--", "/usr/bin/python3", os.path.abspath(__file__), "--pair", ",".join(names), "--runtime",
           str(args.runtime), "--ramp", str(args.ramp), "--disk-mib", str(args.disk_mib)]
    failures = {}
    while True:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out = proc.stdout.decode(errors="replace")
        got = {}
        for line in out.splitlines():
            if line.startswith(RESULT_MARK):
                r = json.loads(line[len(RESULT_MARK):])
                got[r["name"]] = (r["figures"], r["vda"], r["wall"])
                if r["retried"]:
                    failures["guest died"] = failures.get("guest died", 0) + r["retried"]
        if len(got) == len(names):
            return got, failures
        if FAILED_MARK in out:
            kind = "guest died"
        elif proc.returncode == 124:
            kind = "test host timed out"
        else:
            kind = "test host died"
        failures[kind] = failures.get(kind, 0) + 1
        if sum(failures.values()) >= HOST_ATTEMPTS:
            raise RuntimeError(f"{names}: {HOST_ATTEMPTS} failed runs ({failures}); last output:\n{out[-3000:]}")
        print(f"{log_prefix}{kind} (testhost.sh exit {proc.returncode}), the run again in a fresh test host",
              file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--runtime", type=int, default=6, help="seconds each fio job measures (default 6)")
    parser.add_argument("--ramp", type=int, default=1, help="seconds each fio job runs before measuring (default 1)")
    parser.add_argument("--disk-mib", type=int, default=256, help="size of the raw image (default 256)")
    parser.add_argument("--pair", help=argparse.SUPPRESS)
    args = parser.parse_args()
    inside = os.environ.get("BULKHEAD_TESTHOST") == "1"
    if inside or args.pair:
        for f in (BULKHEAD, VMLINUX, INITRD):
            if not os.path.exists(f):
                sys.exit(f"block.py: {f} is missing (cargo build --release; scripts/build-images.sh)")
        no_transparent_huge_pages()
    if args.pair:  # one run, inside a test host started by pair_in_test_host
        for name in args.pair.split(","):
            try:
                figures, vda, wall, retried = boot_with_retries(name, args, "")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"{FAILED_MARK}{str(e)[-1500:]}", flush=True)
                sys.exit(1)
            print(RESULT_MARK + json.dumps({"name": name, "figures": figures, "vda": vda, "wall": wall,
                                            "retried": retried}), flush=True)
        return
    if args.runs < 5:
        parser.error("--runs must be at least 5 (medians of fewer runs are not reported)")

    fio = fio_command(args.runtime, args.ramp)
    print(f"guest: fio {fio.split('fio ', 1)[1]}", file=sys.stderr)
    print(f"QEMU: {QEMU} {' '.join(qemu_args('DISK', 'CMDLINE'))}", file=sys.stderr)
    print("mode: " + ("all boots in this test host" if inside else "each run in a test host of its own"),
          file=sys.stderr)

    results = {name: {job: [] for job, _, _ in WORKLOADS} for name in CONTENDERS}
    vda = {}
    order = list(CONTENDERS)
    run_failures = {}
    for run in range(args.runs):
        prefix = f"run {run + 1}/{args.runs}: "
        if inside:
            got = {}
            for name in order:
                figures, vda_line, wall, retried = boot_with_retries(name, args, prefix)
                got[name] = (figures, vda_line, wall)
                if retried:
                    run_failures["guest died"] = run_failures.get("guest died", 0) + retried
        else:
            got, failed = pair_in_test_host(order, args, prefix)
            for kind, n in failed.items():
                run_failures[kind] = run_failures.get(kind, 0) + n
        for name in order:
            figures, vda[name], wall = got[name]
            for job, _, _ in WORKLOADS:
                results[name][job].append(figures[job])
            summary = ", ".join(f"{job} {figures[job]:.0f}" for job, _, _ in WORKLOADS)
            print(f"{prefix}{name}: {summary} ({wall:.0f} s; {vda[name]})", file=sys.stderr)
        order.reverse()

    print(f"virtio-blk inside the KVM test host: fio in the guest on /dev/vda, direct I/O, libaio, "
          f"{args.runtime} s per job after {args.ramp} s ramp; {args.disk_mib} MiB raw image on the test "
          f"host's tmpfs; median of {args.runs} (emulated time: compare side by side only; "
          f"ratio = bulkhead / QEMU for throughput, QEMU / bulkhead for latency: >= 1.0 means bulkhead is at least "
          f"as fast):\n")
    def ratio(job, b, q):
        return q / b if job in LATENCY_JOBS else b / q

    print("| workload | unit | bulkhead | QEMU -M microvm | ratio of medians | median of run ratios |")
    print("|---|---|---|---|---|---|")
    for job, _, unit in WORKLOADS:
        b = statistics.median(results["bulkhead"][job])
        q = statistics.median(results["QEMU"][job])
        per_run = statistics.median(ratio(job, rb, rq) for rb, rq in zip(results["bulkhead"][job], results["QEMU"][job]))
        print(f"| {LABELS[job]} | {unit} | {b:.0f} | {q:.0f} | {ratio(job, b, q):.2f} | {per_run:.2f} |")
    print()
    for name in CONTENDERS:
        runs = "; ".join(f"{job} " + " ".join(f"{v:.0f}" for v in results[name][job]) for job, _, _ in WORKLOADS)
        print(f"Runs, {name}: {runs}.  ")
    print(f"Guest queue set-up: bulkhead `{vda.get('bulkhead')}`; QEMU `{vda.get('QEMU')}`.  ")
    failed = ", ".join(f"{kind} {n}" for kind, n in sorted(run_failures.items())) or "none"
    print(f"Failed boots and test hosts, each run again (not counted above): {failed}.")


if __name__ == "__main__":
    main()
