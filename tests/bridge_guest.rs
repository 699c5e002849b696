//! The network bridge between stock Debian guests, inside the KVM test host: two Linux
//! partitions whose virtio-net devices are ports of a `[[bridge]]` (vhost-user, the bridge a
//! process of its own) ping each other and carry an iperf3 run; what no rule allows is
//! dropped and counted; a spoofed source MAC is dropped and alerted; a configured rate holds;
//! the links survive a `kill -9` of the bridge; a QEMU guest (Debian's QEMU 7.2, `-netdev
//! vhost-user`) on an external port pings a partition. Each test is one bash script in the test
//! host; `bulkhead stats` and `bulkhead events` are read there while or after it runs.

mod common;

use common::*;

/// A Linux partition with one net device on bridge "lan".
fn partition(name: &str, cpu: u32, mac: &str, action: &str, guest: &str) -> String {
    let images = images();
    format!(
        r#"
[[partition]]
name = "{name}"
criticality = "low"
vcpus = 1
cpus = [{cpu}]
memory_mib = 512
kernel = "{kernel}"
initrd = "{initrd}"
cmdline = "console=ttyS0 loglevel=4 ipv6.disable=1 bh.modules=virtio bh.action={action} {cmd}"

[[partition.device]]
kind = "net"
mac = "{mac}"
bridge = "lan"
"#,
        kernel = images.join("vmlinux").display(),
        initrd = images.join("initramfs.cpio.gz").display(),
        cmd = bh_cmd(guest),
    )
}

/// Server "a" (10.0.0.1: iperf3 servers on 5201 and 5202) and client "b" (10.0.0.2) running
/// `client`, then `bridge` (the `[[bridge]]` tables).
fn system(client: &str, bridge: &str) -> String {
    let server = "iperf3 -s -D; iperf3 -s -p 5202 -D; ip addr add 10.0.0.1/24 dev eth0; \
                  ip link set eth0 up; echo net-server-up";
    let client = format!(
        "ip addr add 10.0.0.2/24 dev eth0; ip link set eth0 up; \
         for i in $(seq 1 60); do ping -c 1 -W 1 10.0.0.1 >/dev/null 2>&1 && break; done; \
         {client}; echo net-done"
    );
    format!(
        "[system]\nname = \"br\"\n{}{}{bridge}",
        partition("a", 0, "52:54:00:00:00:0a", "idle", server),
        partition("b", 1, "52:54:00:00:00:0b", "poweroff", &client),
    )
}

/// ARP and ICMP between a and b, and TCP to a's port 5201 (the replies by `both_ways`).
const RULES: &str = r#"
[[bridge]]
name = "lan"

[[bridge.rule]]
from = "a"
to = "b"
ethertype = "arp"

[[bridge.rule]]
from = "a"
to = "b"
protocol = "icmp"

[[bridge.rule]]
from = "b"
to = "a"
protocol = "tcp"
dst_ports = 5201
"#;

/// Runs `description` in the test host until b prints `net-done` (then `after`, a shell
/// snippet run while the system still runs), stops it, prints its output.
fn run(description: &str, during: &str, after: &str) -> String {
    let script = format!(
        r#"set -u
mkdir -p /tmp/t && cd /tmp/t
export XDG_STATE_HOME=/tmp/t/state
cat > system.toml <<'TOML'
{description}
TOML
{bulkhead} run system.toml > out.txt 2>&1 &
sup=$!
{during}
for i in $(seq 1 600); do grep -q "b| net-done" out.txt && break; sleep 0.5; done
{after}
kill -INT $sup 2>/dev/null; wait $sup
echo "run-status=$?"
cat out.txt
"#,
        bulkhead = bulkhead().display(),
    );
    let (_, out) = in_test_host(&script, 900);
    out
}

#[test]
fn partitions_on_a_bridge_talk_as_the_rules_allow_and_nothing_else_passes() {
    let client = r#"echo "net-ping $(ping -c 3 10.0.0.1 | grep transmitted)"
iperf3 -c 10.0.0.1 -t 2 -b 30M > /tmp/i.txt 2>&1; echo "net-iperf3 $(grep receiver /tmp/i.txt)"
timeout 8 iperf3 -c 10.0.0.1 -p 5202 -t 1 >/dev/null 2>&1; echo "net-undeclared status=$?"
ip link set eth0 address 52:54:00:00:00:ee
echo "net-spoof $(ping -c 2 -W 1 10.0.0.1 | grep transmitted)""#;

    let out = run(
        &system(client, RULES),
        "",
        &format!(
            "{bulkhead} stats system.toml; {bulkhead} events system.toml | grep alert_",
            bulkhead = bulkhead().display()
        ),
    );

    assert!(
        out.contains("b| net-ping 3 packets transmitted, 3 packets received, 0% packet loss"),
        "{out}"
    );
    let iperf = out.lines().find(|l| l.starts_with("b| net-iperf3 "));
    assert!(iperf.is_some_and(|l| l.contains("bits/sec")), "{out}");
    // TCP to port 5202 is declared nowhere: the connection never forms.
    assert!(!out.contains("b| net-undeclared status=0"), "{out}");
    assert!(counter(&out, "port b ", "drop_firewall") > 0, "{out}");
    // The spoofed frames are dropped, counted and alerted.
    assert!(
        out.contains("b| net-spoof 2 packets transmitted, 0 packets received"),
        "{out}"
    );
    assert!(counter(&out, "port b ", "drop_spoofed") > 0, "{out}");
    assert!(counter(&out, "port b ", "alert_spoof") > 0, "{out}");
    assert!(
        out.lines().any(
            |l| l.contains("partition=lan/b event=alert_spoof action=drop")
                && l.contains("52:54:00:00:00:ee")
        ),
        "{out}"
    );
    assert!(
        out.contains("[bulkhead] bridge lan: alert: port b: spoof alert"),
        "{out}"
    );
}

#[test]
fn a_configured_rate_holds_within_ten_percent_over_five_seconds() {
    // b may send 250 kB/s (2 Mbit/s); it offers about twice that in UDP (as fast as an
    // emulated guest sends).
    let bridge = format!(
        "{RULES}\n[[bridge.rule]]\nfrom = \"b\"\nto = \"a\"\nprotocol = \"udp\"\ndst_ports = 5201\n\
         \n[[bridge.port]]\npartition = \"b\"\nrate_bytes_per_s = 250000\nburst_bytes = 65554\n"
    );
    let client = r#"iperf3 -u -c 10.0.0.1 -b 5M -l 1200 -t 5 -f k > /tmp/u.txt 2>&1
echo "net-udp $(grep receiver /tmp/u.txt)"
grep -q receiver /tmp/u.txt || sed 's/^/net-udp-log /' /tmp/u.txt"#;

    let out = run(&system(client, &bridge), "", "");

    let line = out
        .lines()
        .find(|l| l.starts_with("b| net-udp ") && l.contains("Kbits/sec"))
        .unwrap_or_else(|| panic!("no UDP result:\n{out}"));
    // `[  5]   0.00-5.00  sec  4.6 MBytes  7554 Kbits/sec  0.03 ms  0/4000 (0%)  receiver`
    let words: Vec<&str> = line.split_whitespace().collect();
    let bits: f64 = words
        .iter()
        .position(|w| *w == "Kbits/sec")
        .and_then(|i| words.get(i.wrapping_sub(1)))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|k| k * 1000.0)
        .unwrap_or_else(|| panic!("unparsable: {line}"));
    // The receiver's rate, in frame bytes (iperf3 counts UDP payload: 1200 of 1242 bytes
    // of each frame, so the configured 2 Mbit/s of frames carries 1.93 Mbit/s of payload).
    let payload_rate = 2_000_000.0 * 1200.0 / 1242.0;
    assert!(
        (bits - payload_rate).abs() <= payload_rate * 0.10,
        "{bits} bit/s received, {payload_rate} expected:\n{out}"
    );
    assert!(out.contains("b| net-done"), "{out}");
}

#[test]
fn links_survive_a_kill_of_the_bridge_process() {
    let client = r#"echo "net-ping-before $(ping -c 2 10.0.0.1 | grep transmitted)"
echo net-kill-now
sleep 3
for i in $(seq 1 60); do ping -c 1 -W 1 10.0.0.1 >/dev/null 2>&1 && break; done
echo "net-ping-after $(ping -c 3 10.0.0.1 | grep transmitted)""#;
    let during = r#"for i in $(seq 1 600); do grep -q "b| net-kill-now" out.txt && break; sleep 0.5; done
pid=$(grep -o 'bridge lan: process [0-9]*' out.txt | head -n 1 | grep -o '[0-9]*$')
kill -9 "$pid"; echo "killed-bridge=$pid""#;

    let out = run(&system(client, RULES), during, "");

    assert!(
        out.contains("b| net-ping-before 2 packets transmitted, 2 packets received"),
        "{out}"
    );
    assert!(out.contains("killed-bridge="), "{out}");
    assert!(out.contains("[bulkhead] bridge lan: stopped"), "{out}");
    assert!(
        out.matches("bridge lan: process ").count() >= 2,
        "the bridge was not restarted:\n{out}"
    );
    assert!(
        out.contains("b| net-ping-after 3 packets transmitted, 3 packets received, 0% packet loss"),
        "{out}"
    );
}

#[test]
fn a_qemu_guest_on_an_external_port_talks_to_a_partition() {
    let images = images();
    let server = "ip addr add 10.0.0.1/24 dev eth0; ip link set eth0 up; echo net-server-up";
    let bridge = r#"
[[bridge]]
name = "lan"

[[bridge.port]]
name = "qemu"
mac = "52:54:00:00:00:0c"
socket = "/tmp/t/qemu.sock"

[[bridge.rule]]
from = "a"
to = "qemu"
ethertype = "arp"

[[bridge.rule]]
from = "a"
to = "qemu"
protocol = "icmp"
"#;
    let description = format!(
        "[system]\nname = \"br\"\n{}{bridge}",
        partition("a", 0, "52:54:00:00:00:0a", "idle", server)
    );
    let guest = "ip addr add 10.0.0.3/24 dev eth0; ip link set eth0 up; \
                 for i in $(seq 1 60); do ping -c 1 -W 1 10.0.0.1 >/dev/null 2>&1 && break; done; \
                 echo \"qemu-ping $(ping -c 3 10.0.0.1 | grep transmitted)\"; echo qemu-done";
    let qemu = format!(
        "qemu-system-x86_64 -M microvm,memory-backend=mem -accel kvm -cpu host -smp 1 -m 512M \
         -object memory-backend-memfd,id=mem,size=512M,share=on -nodefaults -no-user-config \
         -global virtio-mmio.force-legacy=false -nographic -serial file:/tmp/t/qemu.txt -no-reboot -kernel {kernel} -initrd {initrd} \
         -append 'console=ttyS0 loglevel=4 ipv6.disable=1 bh.modules=virtio bh.action=poweroff {cmd}' \
         -chardev socket,id=c0,path=/tmp/t/qemu.sock,reconnect=1 -netdev vhost-user,id=n0,chardev=c0 \
         -device virtio-net-device,netdev=n0,mac=52:54:00:00:00:0c",
        kernel = images.join("vmlinux").display(),
        initrd = images.join("initramfs.cpio.gz").display(),
        cmd = bh_cmd(guest),
    );
    let script = format!(
        r#"set -u
mkdir -p /tmp/t && cd /tmp/t
export XDG_STATE_HOME=/tmp/t/state
cat > system.toml <<'TOML'
{description}
TOML
{bulkhead} run system.toml > out.txt 2>&1 &
sup=$!
for i in $(seq 1 120); do grep -q "port qemu ready" out.txt && [ -S /tmp/t/qemu.sock ] && break; sleep 0.5; done
timeout 300 {qemu} > qemu-stdout.txt 2>&1 &
q=$!
for i in $(seq 1 600); do grep -q "qemu-done\| BUG: \|Kernel panic" qemu.txt 2>/dev/null && break; sleep 0.5; done
{bulkhead} stats system.toml
kill $q 2>/dev/null; kill -INT $sup; wait $sup
# The QEMU guest's console under its own prefix, as bulkhead's partitions have theirs: an
# oops in it is then told apart (tests/common, nested_kernel_oops).
cat out.txt; sed 's/^/qemu| /' qemu.txt; cat qemu-stdout.txt
"#,
        bulkhead = bulkhead().display(),
    );

    let (_, out) = in_test_host(&script, 900);

    assert!(
        out.contains("qemu-ping 3 packets transmitted, 3 packets received, 0% packet loss"),
        "{out}"
    );
    assert!(
        out.contains("[bulkhead] bridge lan: port qemu: frontend connected"),
        "{out}"
    );
    assert!(counter(&out, "port qemu ", "frames_in") > 0, "{out}");
    assert!(counter(&out, "port qemu ", "frames_out") > 0, "{out}");
}
