//! ARINC 653 ports and doorbells between the Rust RT guest and a stock Debian guest, inside the
//! KVM test host. The RT partition (`rt-demo ports=1`) writes a sampling port, receives a
//! queuing port, answers on another and rings a doorbell, through ABI 0.3 calls; the Linux
//! partition reaches its ends through the APEX service on vsock port 653 with Debian's socat.
//! Checked: a sampling message is valid while fresh (the RT guest writes it every 100 ms of its
//! task, and once more each time it handled the doorbell) and invalid once its writer stopped
//! for longer than the refresh period (validity expiry); a queuing port reports overflow to
//! its sender and keeps what it holds; a receive with a timeout on an empty queue times out; a doorbell rung by Linux raises an
//! interrupt in the RT guest and one rung by the RT guest wakes a waiting Linux request;
//! a name the description does not give a partition cannot be opened, by either guest, and an
//! undeclared vsock port reaches nothing.

mod common;

use common::*;

/// How long the RT guest writes its sampling port before it stops (so the Linux side sees
/// the message go stale).
const TELEMETRY_S: u32 = 40;

fn description(linux_script: &str) -> String {
    let images = images();
    format!(
        r#"[system]
name = "apex"

[[partition]]
name = "control"
criticality = "high"
vcpus = 1
cpus = [1]
memory_mib = 32
# The RT vCPU polls between periods: a test-host CPU that halts sometimes sleeps through its
# own timer under TCG (docs/test-host.md, "Known flakiness").
halt_poll_us = 100000
kernel = "{rt}"
cmdline = "period_us=1000 duration_s=0 ports=1 ports_stop_s={TELEMETRY_S}"

[[partition.port]]
name = "telemetry"
kind = "sampling"
direction = "source"
max_message_bytes = 64

[[partition.port]]
name = "commands"
kind = "queuing"
direction = "destination"
max_message_bytes = 64
depth = 4

[[partition.port]]
name = "replies"
kind = "queuing"
direction = "source"
max_message_bytes = 64
depth = 4

[[partition]]
name = "linux"
criticality = "low"
vcpus = 1
cpus = [0]
memory_mib = 512
kernel = "{kernel}"
initrd = "{initrd}"
cmdline = "console=ttyS0 loglevel=4 bh.modules=virtio bh.action=poweroff {cmd}"

[[partition.device]]
kind = "vsock"
cid = 3

[[partition.port]]
name = "telemetry"
kind = "sampling"
direction = "destination"
max_message_bytes = 64
refresh_period_us = 2000000

[[partition.port]]
name = "commands"
kind = "queuing"
direction = "source"
max_message_bytes = 64
depth = 4

[[partition.port]]
name = "replies"
kind = "queuing"
direction = "destination"
max_message_bytes = 64
depth = 4

[[channel]]
name = "telemetry"
source = "control.telemetry"
destinations = ["linux.telemetry"]

[[channel]]
name = "commands"
source = "linux.commands"
destinations = ["control.commands"]

[[channel]]
name = "replies"
source = "control.replies"
destinations = ["linux.replies"]

[[doorbell]]
name = "kick"
from = "linux"
to = "control"

[[doorbell]]
name = "tock"
from = "control"
to = "linux"
"#,
        rt = rt_demo().display(),
        kernel = images.join("vmlinux").display(),
        initrd = images.join("initramfs.cpio.gz").display(),
        cmd = bh_cmd(linux_script),
    )
}

/// The Linux side, busybox sh: `apex REQUEST` sends one request line to the APEX service and
/// prints the answer; each step prints `ports-STEP ANSWER`.
const LINUX: &str = r#"apex() { echo "$1" | socat -t 12 - VSOCK-CONNECT:2:653 2>&1; }
hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
echo "ports-open $(apex 'open telemetry')"
for i in 1 2 3 4 5; do echo "ports-send-$i $(apex "send commands 0 $(hex cmd-$i)")"; done
echo "ports-ring $(apex 'ring kick')"
echo "ports-tock $(apex 'wait tock 8000')"
echo "ports-fresh $(apex 'read telemetry')"
for i in 1 2 3 4; do echo "ports-reply-$i $(apex 'recv replies 2000')"; done
echo "ports-empty $(apex 'recv replies 500')"
echo "ports-other $(apex 'read other')"
echo "ports-wrong $(apex 'write telemetry 41')"
if echo hello | socat -t 2 - VSOCK-CONNECT:2:654 >/dev/null 2>&1; then echo ports-undeclared=connected; else echo ports-undeclared=refused; fi
n=0; until [ $n -ge 240 ]; do a=$(apex 'read telemetry'); case $a in 'ok invalid '*) break;; esac; n=$((n+1)); sleep 0.5; done
echo "ports-stale $a"
echo ports-done"#;

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn an_rt_guest_and_a_linux_guest_exchange_messages_over_sampling_and_queuing_ports() {
    let script = format!(
        r#"set -u
mkdir -p /tmp/t && cd /tmp/t
export XDG_STATE_HOME=/tmp/t/state
cat > system.toml <<'TOML'
{description}
TOML
{bulkhead} run system.toml > out.txt 2>&1 &
sup=$!
for i in $(seq 1 400); do grep -q "linux| ports-done" out.txt && break; grep -q "every partition has stopped" out.txt && break; sleep 0.5; done
sleep 1
kill -INT $sup 2>/dev/null; wait $sup
echo "run-status=$?"
cat out.txt
"#,
        description = description(LINUX),
        bulkhead = bulkhead().display(),
    );

    let (_, out) = in_test_host(&script, 600);

    // The RT guest: its ports opened with the declared kinds, the undeclared one refused.
    for line in [
        "control| rt-ports: open telemetry handle=0 kind=sampling-source max=64 param=0",
        "control| rt-ports: open commands handle=1 kind=queuing-destination max=64 param=4",
        "control| rt-ports: open replies handle=2 kind=queuing-source max=64 param=4",
        "control| rt-ports: open kick handle=3 kind=doorbell-in max=0 param=0",
        "control| rt-ports: open tock handle=4 kind=doorbell-out max=0 param=0",
        "control| rt-ports: open nonexistent error=invalid-config",
        "control| rt-ports: commands empty error=timed-out",
    ] {
        assert!(out.contains(line), "missing {line:?}:\n{out}");
    }
    // Linux: its ends, a fresh sampling message.
    assert!(
        out.contains("linux| ports-open ok sampling-destination 64 2000000000"),
        "{out}"
    );
    let fresh = out
        .lines()
        .find(|l| l.starts_with("linux| ports-fresh "))
        .unwrap_or_else(|| panic!("no fresh read:\n{out}"));
    assert!(
        fresh.starts_with("linux| ports-fresh ok valid ") && fresh.contains(&hex("telemetry seq=")),
        "{fresh}\n{out}"
    );
    // Four commands fit the queue of 4; the fifth is refused to its sender.
    for i in 1..=4 {
        assert!(out.contains(&format!("linux| ports-send-{i} ok")), "{out}");
    }
    assert!(
        out.contains("linux| ports-send-5 err not-available"),
        "{out}"
    );
    // The doorbell raised the RT guest's interrupt; it took the four commands in order,
    // answered each and rang back.
    assert!(out.contains("linux| ports-ring ok"), "{out}");
    assert!(out.contains("control| rt-ports: kick interrupts="), "{out}");
    for i in 1..=4 {
        assert!(
            out.contains(&format!("control| rt-ports: command cmd-{i}")),
            "{out}"
        );
    }
    assert!(
        out.contains("control| rt-ports: rang tock drained=4"),
        "{out}"
    );
    assert!(out.contains("linux| ports-tock ok 1"), "{out}");
    for i in 1..=4 {
        let reply = format!("linux| ports-reply-{i} ok {}", hex(&format!("ack cmd-{i}")));
        assert!(out.contains(&reply), "missing {reply:?}:\n{out}");
    }
    // Nothing more: the receive waits its 500 ms and times out.
    assert!(out.contains("linux| ports-empty err timed-out"), "{out}");
    // Undeclared names and ports.
    assert!(
        out.contains("linux| ports-other err invalid-config"),
        "{out}"
    );
    assert!(
        out.contains("linux| ports-wrong err invalid-config"),
        "{out}"
    );
    assert!(out.contains("linux| ports-undeclared=refused"), "{out}");
    // Once the writer stopped (after its 40 s, or earlier if the test host's emulation stalls
    // its timer), the last message goes stale: invalid, older than the refresh period.
    let stale = out
        .lines()
        .find(|l| l.starts_with("linux| ports-stale "))
        .unwrap_or_else(|| panic!("no stale read:\n{out}"));
    let age_us: u64 = stale
        .strip_prefix("linux| ports-stale ok invalid ")
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("not an invalid message: {stale}\n{out}"));
    assert!(age_us > 2_000_000, "{stale}\n{out}");
    assert!(stale.contains(&hex("telemetry seq=")), "{stale}\n{out}");
    // The RT guest kept its period throughout.
    assert!(out.contains("control| rt-stats period_us=1000"), "{out}");
}
