//! virtio-net driven by the stock Debian kernel's own `virtio_net` driver, inside the KVM test
//! host: two Linux partitions joined by a direct link (ping, the MAC the guest sees, an iperf3
//! run between them), and a partition on a TAP interface of the test host (ping to the host).
//! Each test is one bash script run inside the test host; only addresses inside the test host
//! are used.

mod common;

use common::*;

/// One `[[partition]]` table of a Linux guest with one net device.
fn linux_partition(name: &str, cpu: u32, action: &str, guest: &str, net: &str) -> String {
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
cmdline = "console=ttyS0 loglevel=4 bh.modules=virtio bh.action={action} {cmd}"

[[partition.device]]
kind = "net"
{net}
"#,
        kernel = images.join("vmlinux").display(),
        initrd = images.join("initramfs.cpio.gz").display(),
        cmd = bh_cmd(guest),
    )
}

/// Waits (in the guest) until `addr` answers one ping, at most about a minute.
fn wait_for_ping(addr: &str) -> String {
    format!("for i in $(seq 1 60); do ping -c 1 -W 1 {addr} >/dev/null 2>&1 && break; done")
}

#[test]
fn two_partitions_joined_by_a_link_ping_each_other_and_carry_an_iperf3_run() {
    let server = r#"echo "net-mac=$(cat /sys/class/net/eth0/address)"
command -v iperf3 >/dev/null && iperf3 -s -1 -D
ip addr add 10.0.0.1/24 dev eth0
ip link set eth0 up
echo net-server-up"#;
    let client = format!(
        r#"echo "net-mac=$(cat /sys/class/net/eth0/address)"
ip addr add 10.0.0.2/24 dev eth0
ip link set eth0 up
{wait}
echo "net-ping $(ping -c 3 10.0.0.1 | grep 'packets transmitted')"
if command -v iperf3 >/dev/null; then
for i in 1 2 3 4 5; do iperf3 -c 10.0.0.1 -t 3 > /tmp/iperf3.txt 2>&1 && break; sleep 1; done
echo "net-iperf3 $(grep receiver /tmp/iperf3.txt)"
else
echo net-iperf3-missing
fi
echo net-done"#,
        wait = wait_for_ping("10.0.0.1"),
    );
    let description = format!(
        "[system]\nname = \"net\"\n{}{}",
        linux_partition(
            "a",
            0,
            "idle",
            server,
            "mac = \"52:54:00:00:00:0a\"\nlink = \"b\""
        ),
        linux_partition(
            "b",
            1,
            "poweroff",
            &client,
            "mac = \"52:54:00:00:00:0b\"\nlink = \"a\""
        ),
    );
    let script = format!(
        r#"set -u
mkdir -p /tmp/t && cd /tmp/t
cat > system.toml <<'TOML'
{description}
TOML
{bulkhead} run system.toml > out.txt 2>&1 &
sup=$!
for i in $(seq 1 1200); do grep -q "b| net-done" out.txt && break; sleep 0.5; done
sleep 1
kill -INT $sup
wait $sup
echo "run-status=$?"
cat out.txt
echo "run-dirs-left=$(ls /run/bulkhead 2>/dev/null | wc -l)"
"#,
        bulkhead = bulkhead().display(),
    );

    let (_, out) = in_test_host(&script, 1200);

    assert!(out.contains("a| net-mac=52:54:00:00:00:0a"), "{out}");
    assert!(out.contains("b| net-mac=52:54:00:00:00:0b"), "{out}");
    assert!(
        out.contains("b| net-ping 3 packets transmitted, 3 packets received, 0% packet loss"),
        "{out}"
    );
    assert!(
        !out.contains("net-iperf3-missing"),
        "iperf3 is not in the guest image (scripts/build-images.sh):\n{out}"
    );
    let iperf = out
        .lines()
        .find(|l| l.contains("b| net-iperf3 ") && l.contains("receiver"));
    assert!(
        iperf.is_some_and(|l| l.contains("bits/sec")),
        "no iperf3 result:\n{out}"
    );
    assert!(out.contains("run-status=130"), "{out}");
    assert!(out.contains("run-dirs-left=0"), "{out}");
}

#[test]
fn partition_on_a_tap_interface_pings_the_test_host() {
    let guest = format!(
        r#"echo "net-mac=$(cat /sys/class/net/eth0/address)"
ip addr add 10.1.0.2/24 dev eth0
ip link set eth0 up
{wait}
echo "net-ping $(ping -c 3 10.1.0.1 | grep 'packets transmitted')""#,
        wait = wait_for_ping("10.1.0.1"),
    );
    let description = format!(
        "[system]\nname = \"tap\"\n{}",
        linux_partition(
            "linux",
            0,
            "poweroff",
            &guest,
            "mac = \"52:54:00:00:01:02\"\ntap = \"bhtap0\""
        ),
    );
    let script = format!(
        r#"set -u
mkdir -p /tmp/t && cd /tmp/t
cat > system.toml <<'TOML'
{description}
TOML
ip tuntap add dev bhtap0 mode tap
ip addr add 10.1.0.1/24 dev bhtap0
ip link set bhtap0 up
timeout 600 {bulkhead} run system.toml; echo "run-status=$?"
"#,
        bulkhead = bulkhead().display(),
    );

    let (_, out) = in_test_host(&script, 900);

    assert!(out.contains("linux| net-mac=52:54:00:00:01:02"), "{out}");
    assert!(
        out.contains("linux| net-ping 3 packets transmitted, 3 packets received, 0% packet loss"),
        "{out}"
    );
    assert!(out.contains("run-status=0"), "{out}");
}
