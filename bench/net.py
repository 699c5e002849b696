#!/usr/bin/python3
"""VirtIO network throughput between two partitions, bulkhead against QEMU, side by side inside
the KVM test host.

  bench/net.py [--runs N] [--seconds S] [--contenders A,B,...]

Each measurement boots two guests, the stock Debian kernel (vmlinux through PVH) with the
project's initramfs, 1 vCPU and 512 MiB each, joined by a network, and runs iperf3 from the
second to the first for S seconds (one TCP stream); the receiver's throughput is reported,
and before it the mean round trip of 20 pings (0.2 s apart) from the second to the first.

  bulkhead       two partitions of one `bulkhead run`, their virtio-net devices joined by a
                 direct link (`link = "PEER"`: Unix datagram sockets between the two partition
                 processes, offloads passed through); vCPUs pinned to test-host CPUs 0 and 1;
                 guest RAM on 4 KiB pages
  bridge         the same two partitions as ports of a bulkhead bridge (its own process,
                 vhost-user) with every policy stage on: both ports in VLAN 10, source IPs
                 declared (spoof checks), token buckets (10 GB/s, so they never limit), flood and
                 scan detection, and the firewall (ARP, ICMP and TCP to port 5201 allowed,
                 default deny); guest RAM in a shared memfd
  tunnel         (only with --contenders) two bulkhead hosts: network namespaces h1 and h2 of
                 the test host joined by a veth pair (MTU 9000), each running `bulkhead run`
                 with one of the partitions on its own bridge (the same port settings as
                 `bridge`), the two bridges joined by an encrypted uplink (UDP,
                 ChaCha20-Poly1305); the frames cross both bridges and the tunnel, the
                 sending uplink cutting the guest's TCP super-frames into wire frames
  QEMU           two `qemu-system-x86_64 -M microvm` guests, each with virtio-net-device on a
                 TAP device, both TAPs on a Linux bridge in the test host: userspace virtio-net
                 (vhost=off)
  QEMU+vhost     the same with the in-kernel vhost-net data path (vhost=on)

On the build machine every run boots a test host of its own (scripts/testhost.sh run --
bench/net.py --one-run) and measures the four contenders there, in an order that rotates
from run to run; a test host that dies is booted again and counted. Each figure is the median
of N runs (N >= 5); ratios are bulkhead / QEMU, so >= 1.0 means bulkhead carried at least as
many bits. Prints a Markdown table on stdout and progress on stderr. Timings inside the test
host are emulated (TCG): only the ratios mean anything. Transparent huge pages are off in the
test host for every contender (QEMU would get 2 MiB pages from them): with 2 MiB-backed guest
RAM the emulated AMD-V broke the test host or a nested guest in 3 of the first 4 test hosts
of this benchmark on 2026-12-06 (without them, test hosts still hang now and then).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from block import BULKHEAD, INITRD, QEMU, REPO, VMLINUX, bh_encode  # noqa: E402

GUEST_MIB = 512
BASE_CMDLINE = "console=ttyS0 loglevel=4 bh.modules=virtio"
CONTENDERS = ["bulkhead", "bridge", "QEMU", "QEMU+vhost"]
KNOWN = CONTENDERS + ["tunnel"]
TUNNEL_HOSTS = (("h1", "192.168.77.1"), ("h2", "192.168.77.2"))
TUNNEL_PORT = 47000
MACS = ("52:54:00:00:00:0a", "52:54:00:00:00:0b")
RESULT_MARK = "bench-net-result "
RUN_MARK = "bench-net-run "
HOST_ATTEMPTS = 15  # broken test hosts in all before giving up (the TCG test host breaks often under nested QEMU)
GUEST_ATTEMPTS = 3


def server_script():
    # The server stays up (bh.action=idle) until the client has printed its result: a server
    # that powers off after one test (`iperf3 -s -1`) left clients whose test it had ended
    # early waiting for a peer that was gone, until the measurement timed out.
    return "ip addr add 10.0.0.1/24 dev eth0; ip link set eth0 up; iperf3 -s >/dev/null 2>&1 &"


def client_script(seconds):
    return ("ip addr add 10.0.0.2/24 dev eth0; ip link set eth0 up; "
            "for i in $(seq 1 60); do ping -c 1 -W 1 10.0.0.1 >/dev/null 2>&1 && break; done; "
            "echo \"bench-net-rtt $(ping -c 20 -i 0.2 10.0.0.1 | tail -n 1)\"; "
            f"for i in 1 2 3 4 5; do iperf3 -c 10.0.0.1 -t {seconds} -f m > /tmp/iperf3.txt 2>&1 && break; "
            "sleep 1; done; "
            "echo \"bench-net-iperf3 $(grep receiver /tmp/iperf3.txt)\"")


def cmdline(script, action):
    return f"{BASE_CMDLINE} bh.action={action} bh.cmd={bh_encode(script)}"


def guests(seconds):
    """(name, peer, command line) of the server and the client."""
    return (("a", "b", cmdline(server_script(), "idle")), ("b", "a", cmdline(client_script(seconds), "poweroff")))


def bulkhead_pair(tmp, seconds):
    path = os.path.join(tmp, "net.toml")
    parts = []
    for i, (name, peer, line) in enumerate(guests(seconds)):
        parts.append(f'[[partition]]\nname = "{name}"\ncriticality = "low"\nvcpus = 1\ncpus = [{i}]\n'
                     f'memory_mib = {GUEST_MIB}\nkernel = "{VMLINUX}"\ninitrd = "{INITRD}"\n'
                     f'cmdline = "{line}"\non_reset = "stop"\n\n'
                     f'[[partition.device]]\nkind = "net"\nmac = "{MACS[i]}"\nlink = "{peer}"\n')
    with open(path, "w") as f:
        f.write('[system]\nname = "bench-net"\n\n' + "\n".join(parts))
    return [[BULKHEAD, "run", path]]


def bridged_partition(i, name, line):
    """Guest `name` (the i-th) with its net device on bridge "lan"."""
    return (f'[[partition]]\nname = "{name}"\ncriticality = "low"\nvcpus = 1\ncpus = [{i}]\n'
            f'memory_mib = {GUEST_MIB}\nkernel = "{VMLINUX}"\ninitrd = "{INITRD}"\n'
            f'cmdline = "{line} ipv6.disable=1"\non_reset = "stop"\n\n'
            f'[[partition.device]]\nkind = "net"\nmac = "{MACS[i]}"\nbridge = "lan"\n')


# Every policy stage on: flood and scan detection (thresholds never reached), and per port
# spoof checks (declared source IPs), VLAN 10, token buckets that never limit.
BRIDGE_HEAD = '[[bridge]]\nname = "lan"\nflood_pps = 10000000\nscan_ports = 1000\n\n'


def port_settings(i, name):
    return (f'[[bridge.port]]\npartition = "{name}"\nips = ["10.0.0.{i + 1}"]\nvlan = 10\n'
            f'rate_bytes_per_s = 10000000000\nrate_packets_per_s = 10000000\n\n')


def rules(a, b):
    """ARP and ICMP between a and b, TCP from b to a's port 5201 (and the replies)."""
    return (f'[[bridge.rule]]\nfrom = "{a}"\nto = "{b}"\nethertype = "arp"\n\n'
            f'[[bridge.rule]]\nfrom = "{a}"\nto = "{b}"\nprotocol = "icmp"\n\n'
            f'[[bridge.rule]]\nfrom = "{b}"\nto = "{a}"\nprotocol = "tcp"\ndst_ports = 5201\n')


def bridge_pair(tmp, seconds):
    """The bulkhead pair as ports of a bridge with every policy stage enabled."""
    path = os.path.join(tmp, "bridge.toml")
    parts = [bridged_partition(i, name, line) for i, (name, _, line) in enumerate(guests(seconds))]
    bridge = BRIDGE_HEAD + port_settings(0, "a") + port_settings(1, "b") + rules("a", "b")
    with open(path, "w") as f:
        f.write('[system]\nname = "bench-bridge"\n\n' + "\n".join(parts) + "\n" + bridge)
    return [[BULKHEAD, "run", path]]


def tunnel_network():
    """Namespaces h1 and h2 joined by a veth pair (made once per test host)."""
    if os.path.exists("/run/netns/h1"):
        return
    (h1, ip1), (h2, ip2) = TUNNEL_HOSTS
    sh(f"ip netns add {h1} && ip netns add {h2} && ip link add bhv1 type veth peer name bhv2 && "
       f"ip link set bhv1 netns {h1} && ip link set bhv2 netns {h2} && "
       f"ip -n {h1} link set lo up && ip -n {h2} link set lo up && "
       f"ip -n {h1} link set bhv1 mtu 9000 up && ip -n {h2} link set bhv2 mtu 9000 up && "
       f"ip -n {h1} addr add {ip1}/24 dev bhv1 && ip -n {h2} addr add {ip2}/24 dev bhv2")


def tunnel_pair(tmp, seconds):
    """Each guest on its own host's bridge; the bridges joined by the encrypted uplink."""
    tunnel_network()
    key = os.path.join(tmp, "site.key")
    with open(key, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(key, 0o600)
    cmds = []
    for i, (name, _, line) in enumerate(guests(seconds)):
        (host, local), (_, peer) = TUNNEL_HOSTS[i], TUNNEL_HOSTS[1 - i]
        a, b = ("a", "site") if name == "a" else ("site", "b")
        bridge = (BRIDGE_HEAD + port_settings(i, name)
                  + f'[[bridge.uplink]]\nname = "site"\nlocal = "{local}:{TUNNEL_PORT}"\n'
                    f'peer = "{peer}:{TUNNEL_PORT}"\nkey = "{key}"\n\n'
                  + rules(a, b))
        path = os.path.join(tmp, f"tunnel-{host}.toml")
        with open(path, "w") as f:
            f.write(f'[system]\nname = "bench-tunnel-{host}"\n\n' + bridged_partition(i, name, line)
                    + "\n" + bridge)
        cmds.append(["ip", "netns", "exec", host, "env", f"XDG_STATE_HOME={tmp}/state-{host}",
                     BULKHEAD, "run", path])
    return cmds


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def qemu_network():
    """A bridge with two TAPs in the test host (made once per test host)."""
    if os.path.exists("/sys/class/net/bhbr0"):
        return
    sh("ip link add bhbr0 type bridge && ip link set bhbr0 up")
    for tap in ("bhtap0", "bhtap1"):
        sh(f"ip tuntap add {tap} mode tap && ip link set {tap} master bhbr0 && ip link set {tap} up")


def qemu_pair(vhost, seconds):
    qemu_network()
    cmds = []
    for i, (_, _, line) in enumerate(guests(seconds)):
        cmds.append([QEMU, "-M", "microvm", "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", str(GUEST_MIB),
                     "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
                     "-kernel", VMLINUX, "-initrd", INITRD, "-append", line,
                     "-netdev", f"tap,id=n0,ifname=bhtap{i},script=no,downscript=no,vhost={'on' if vhost else 'off'}",
                     "-device", f"virtio-net-device,netdev=n0,mac={MACS[i]}"])
    return cmds


IPERF = re.compile(r"bench-net-iperf3 .*?([\d.]+) Mbits/sec\s+receiver")
# busybox: `round-trip min/avg/max = 0.351/0.432/0.612 ms`
RTT = re.compile(r"bench-net-rtt .*= [\d.]+/([\d.]+)/[\d.]+ ms")


def measure(name, seconds):
    """One measurement of `name`: (Mbit/s received, mean ping round trip in µs)."""
    tmp = tempfile.mkdtemp(prefix="bench-net-")
    try:
        if name == "bulkhead":
            cmds = bulkhead_pair(tmp, seconds)
        elif name == "bridge":
            cmds = bridge_pair(tmp, seconds)
        elif name == "tunnel":
            cmds = tunnel_pair(tmp, seconds)
        else:
            cmds = qemu_pair(name == "QEMU+vhost", seconds)
        logs = [os.path.join(tmp, f"out{i}.txt") for i in range(len(cmds))]
        procs = []
        for c, log in zip(cmds, logs):
            with open(log, "w") as out:
                procs.append(subprocess.Popen(c, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

        def text():
            parts = []
            for log in logs:
                with open(log, errors="replace") as f:
                    parts.append(f.read())
            return "\n".join(parts)

        # Until the client has printed its iperf3 line (the server guest never powers off).
        deadline = time.monotonic() + 120 + 3 * seconds
        while "bench-net-iperf3 " not in text():
            if time.monotonic() > deadline or all(p.poll() is not None for p in procs):
                break
            time.sleep(0.5)
        # Then until the client has powered off (its line is whole by then), 10 s at most.
        settle = time.monotonic() + 10
        while time.monotonic() < settle and not (procs[-1].poll() is not None if len(procs) > 1
                                                 else "b: stopped" in text()):
            time.sleep(0.2)
        for p in procs:
            p.send_signal(signal.SIGINT)  # bulkhead run stops its partitions; QEMU exits
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        out = text()
        m = IPERF.search(out)
        rtt = RTT.search(out)
        if not m or not rtt:
            raise RuntimeError(f"{name}: no iperf3 or ping result:\n{out[-4000:]}")
        return float(m.group(1)), float(rtt.group(1)) * 1000.0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def one_run(order, seconds):
    """Every contender once, in this test host; prints one result line."""
    # No transparent huge pages in the test host, for either contender: with 2 MiB-backed
    # guest RAM the emulated AMD-V broke a test host or a nested guest more often.
    for knob in ("enabled", "shmem_enabled"):
        with open(f"/sys/kernel/mm/transparent_hugepage/{knob}", "w") as f:
            f.write("never")
    results = {}
    for name in order:
        for attempt in range(GUEST_ATTEMPTS):
            try:
                results[name] = measure(name, seconds)
                break
            except RuntimeError as e:
                # What the guests reported and what went wrong, not the whole transcript.
                said = [l for l in str(e).splitlines()
                        if any(k in l for k in ("bench-net-", "alert", "fault", "Oops", "BUG", "iperf3"))]
                why = "\n".join(said[-8:]) or str(e)[-300:]
                print(f"{name}: guests failed ({why}), once more", file=sys.stderr, flush=True)
        else:
            print(f"bench-net-failed {name}", flush=True)
            sys.exit(1)
    print(RESULT_MARK + json.dumps(results), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10, help="iperf3 run length (default 10)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help=f"comma-separated, from {', '.join(KNOWN)} (default: all but tunnel)")
    parser.add_argument("--one-run", metavar="ORDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run:
        one_run(args.one_run.split(","), args.seconds)
        return
    if args.runs < 5:
        parser.error("--runs must be at least 5 (medians of fewer runs are not reported)")
    contenders = args.contenders.split(",")
    unknown = [c for c in contenders if c not in KNOWN]
    if unknown or not contenders:
        parser.error(f"unknown contender(s) {', '.join(unknown)}; known: {', '.join(KNOWN)}")
    results = {name: [] for name in contenders}
    rtts = {name: [] for name in contenders}
    failures = 0
    for run in range(args.runs):
        k = run % len(contenders)
        order = contenders[k:] + contenders[:k]
        cmd = [os.path.join(REPO, "scripts/testhost.sh"), "run", "--timeout", str(600 + 12 * args.seconds), "--",
               "/usr/bin/python3", os.path.abspath(__file__), "--one-run", ",".join(order),
               "--seconds", str(args.seconds)]
        while True:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            out = proc.stdout.decode(errors="replace")
            line = next((l for l in out.splitlines() if l.startswith(RESULT_MARK)), None)
            if line:
                r = json.loads(line[len(RESULT_MARK):])
                break
            failures += 1
            if failures >= HOST_ATTEMPTS:
                sys.exit(f"net.py: {failures} failed test hosts; last output:\n{out[-3000:]}")
            print(f"run {run + 1}: test host failed (exit {proc.returncode}), in a fresh one again", file=sys.stderr)
        for name in contenders:
            results[name].append(r[name][0])
            rtts[name].append(r[name][1])
        print(f"run {run + 1}/{args.runs} ({', '.join(order)}): "
              + ", ".join(f"{n} {r[n][0]:.0f} Mbit/s {r[n][1]:.0f} us" for n in contenders),
              file=sys.stderr, flush=True)

    print(f"virtio-net between two guests inside the KVM test host: iperf3, one TCP stream, {args.seconds} s, "
          f"receiver's figure; median of {args.runs} (emulated time: compare side by side only; "
          f"ratio = bulkhead / peer, >= 1.0 means bulkhead is at least as fast):\n")
    refs = [(n, label) for n, label in (("bulkhead", "bulkhead link"), ("bridge", "bulkhead bridge"))
            if n in contenders]
    med = {n: statistics.median(results[n]) for n in contenders}
    rtt = {n: statistics.median(rtts[n]) for n in contenders}
    print("| contender | Mbit/s | " + "".join(f"{label} / this | " for _, label in refs)
          + "ping round trip, µs | " + "".join(f"this / {label} | " for _, label in refs))
    print("|---|---|" + "---|" * (1 + 2 * len(refs)))
    for name in contenders:
        print(f"| {name} | {med[name]:.0f} | " + "".join(f"{med[r] / med[name]:.2f} | " for r, _ in refs)
              + f"{rtt[name]:.0f} | " + "".join(f"{rtt[name] / rtt[r]:.2f} | " for r, _ in refs))
    print()
    for name in contenders:
        print(f"Runs, {name}: " + " ".join(f"{v:.0f}" for v in results[name]) + " Mbit/s; "
              + " ".join(f"{v:.0f}" for v in rtts[name]) + " µs.  ")
    print(f"Test hosts that died and were booted again (not counted above): {failures}.")


if __name__ == "__main__":
    main()
