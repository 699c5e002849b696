//! The health monitor with the stock Debian kernel's own drivers, inside the KVM test host:
//! busybox's `watchdog` daemon feeds the IB700 watchdog (`ib700wdt`) until it is killed, and
//! the partition is restarted, then halted when its restarts are spent; a kernel panic reaches
//! the monitor through pvpanic (`pvpanic-mmio`) and the partition halts. Each is one bash script
//! in the test host, reading the system's event log afterwards.

mod common;

use common::*;

fn linux(cmd: &str, health: &str, max_restarts: u32) -> String {
    let images = images();
    format!(
        r#"[system]
name = "lh"

[[partition]]
name = "linux"
criticality = "low"
vcpus = 1
cpus = [0]
memory_mib = 512
kernel = "{kernel}"
initrd = "{initrd}"
cmdline = "console=ttyS0 loglevel=4 bh.modules=health bh.action=idle {cmd}"
max_restarts = {max_restarts}

[partition.health]
{health}
"#,
        kernel = images.join("vmlinux").display(),
        initrd = images.join("initramfs.cpio.gz").display(),
        cmd = bh_cmd(cmd),
    )
}

fn run(description: &str, timeout_s: u32) -> String {
    let script = format!(
        r#"set -u
mkdir -p /tmp/t && cd /tmp/t
export XDG_STATE_HOME=/tmp/t/state
cat > system.toml <<'TOML'
{description}
TOML
timeout {timeout_s} {bulkhead} run system.toml > out.txt 2>&1
echo "run-status=$?"
cat out.txt
echo "--- events"
{bulkhead} events system.toml
"#,
        bulkhead = bulkhead().display(),
    );
    let (_, out) = in_test_host(&script, timeout_s + 120);
    out
}

#[test]
fn a_killed_watchdog_daemon_restarts_the_linux_partition_then_halts_it() {
    let cmd = "watchdog -t 1 -F /dev/watchdog & wd=$!; sleep 3; echo wd-feeding; kill -9 $wd; \
               echo wd-killed";

    let out = run(
        &linux(cmd, "watchdog_ms = 3000\non_watchdog = \"restart\"", 1),
        400,
    );

    assert_eq!(out.matches("linux| wd-killed").count(), 2, "{out}");
    assert_eq!(
        out.matches("[bulkhead] linux: stopped: watchdog expired")
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("[bulkhead] linux: restarting (restart 1 of at most 1)"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("partition=linux event=watchdog action=restart")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l
            .contains("partition=linux event=watchdog action=halt (restart limit reached)")
            || l.contains("partition=linux event=watchdog action=halt_(restart_limit_reached)")),
        "{out}"
    );
    assert!(out.contains("run-status=1"), "{out}");
}

#[test]
fn a_kernel_panic_reaches_the_monitor_through_pvpanic_and_halts_the_partition() {
    let cmd = "echo panic-now; echo c > /proc/sysrq-trigger";

    let out = run(&linux(cmd, "on_panic = \"halt\"", 0), 300);

    assert!(out.contains("linux| panic-now"), "{out}");
    assert!(
        out.contains("[bulkhead] linux: stopped: guest panic"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("partition=linux event=panic action=halt")),
        "{out}"
    );
    assert!(out.contains("run-status=1"), "{out}");
}
