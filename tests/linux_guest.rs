//! The stock Debian kernel in a bulkhead partition, booted inside the KVM test host
//! (`scripts/testhost.sh`: QEMU TCG with nested AMD-V, real KVM inside), asserting on what
//! the guest's own init prints. Fails loudly when the images or QEMU are missing.

mod common;

use std::path::Path;

use common::*;

fn linux_partition(kernel: &str, cmdline: &str, extra: &str) -> String {
    let images = images();
    format!(
        r#"
[[partition]]
name = "linux"
criticality = "low"
vcpus = 2
cpus = [0]
memory_mib = 512
kernel = "{kernel}"
initrd = "{initrd}"
cmdline = "console=ttyS0 loglevel=4 {cmdline}"
{extra}
"#,
        kernel = images.join(kernel).display(),
        initrd = images.join("initramfs.cpio.gz").display(),
    )
}

fn run_in_test_host(desc: &Path) -> (Option<i32>, String) {
    let script = format!("{} run {}", bulkhead().display(), desc.display());
    let (status, output) = in_test_host(&script, 600);
    (status.code(), output)
}

#[test]
fn bzimage_reaches_userspace_with_every_vcpu_online_and_poweroff_exits_0() {
    let dir = scratch("linux_bzimage");
    let desc = write_description(
        &dir,
        &format!(
            "[system]\nname = \"t\"\n{}",
            linux_partition("vmlinuz", "bh.action=poweroff", "")
        ),
    );

    let (code, out) = run_in_test_host(&desc);

    assert!(
        out.contains("linux| bulkhead-init: userspace reached cpus=2 "),
        "{out}"
    );
    assert!(out.contains("linux: stopped: powered off"), "{out}");
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn vmlinux_boots_through_its_pvh_entry() {
    let dir = scratch("linux_pvh");
    let desc = write_description(
        &dir,
        &format!(
            "[system]\nname = \"t\"\n{}",
            linux_partition("vmlinux", "bh.action=poweroff", "")
        ),
    );

    let (code, out) = run_in_test_host(&desc);

    assert!(out.contains("(Pvh boot"), "{out}");
    assert!(
        out.contains("linux| bulkhead-init: userspace reached cpus=2 "),
        "{out}"
    );
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn guest_reboot_restarts_the_partition() {
    let dir = scratch("linux_reboot");
    let part = linux_partition(
        "vmlinuz",
        "bh.action=reboot",
        "on_reset = \"restart\"\nmax_restarts = 1",
    );
    let desc = write_description(&dir, &format!("[system]\nname = \"t\"\n{part}"));

    let (code, out) = run_in_test_host(&desc);
    let boots = out
        .matches("linux| bulkhead-init: userspace reached")
        .count();

    assert_eq!(boots, 2, "one boot, a reset, a second boot:\n{out}");
    assert!(out.contains("linux: stopped: guest reset"), "{out}");
    assert!(
        out.contains("linux: restarting (restart 1 of at most 1)"),
        "{out}"
    );
    assert_eq!(
        code,
        Some(1),
        "the run ends on a reset, not a clean power-off:\n{out}"
    );
}

#[test]
fn rt_partition_reports_while_linux_boots_beside_it() {
    let dir = scratch("linux_beside_rt");
    // halt_poll_us: the RT vCPU's thread polls for its next period instead of sleeping, as on a
    // dedicated core it may; a test-host CPU that halts sometimes sleeps through its own timer
    // under TCG (docs/test-host.md, "Known flakiness").
    let rt = format!(
        "[[partition]]\nname = \"control\"\ncriticality = \"high\"\nvcpus = 1\ncpus = [1]\nmemory_mib = 32\nhalt_poll_us = 100000\nkernel = \"{}\"\ncmdline = \"period_us=1000 duration_s=0\"\n",
        rt_demo().display()
    );
    let desc = write_description(
        &dir,
        &format!(
            "[system]\nname = \"t\"\n{rt}{}",
            linux_partition("vmlinuz", "bh.action=poweroff", "")
        ),
    );
    // The RT partition runs until stopped: once Linux has powered off, Ctrl-C ends the run.
    let script = format!(
        r#"{bulkhead} run {desc} > /tmp/out.txt 2>&1 &
for i in $(seq 1 800); do grep -q "linux: stopped" /tmp/out.txt && break; sleep 0.5; done
kill -INT $!
wait $!
echo "run-status=$?"
cat /tmp/out.txt"#,
        bulkhead = bulkhead().display(),
        desc = desc.display()
    );

    let (_, out) = in_test_host(&script, 600);
    let lines: Vec<&str> = out.lines().collect();
    // Linux's boot starts when its partition has loaded the kernel. Not at Linux's first
    // console line: at loglevel 4 that can come a moment before init (a warning at 7.3 s of
    // an 8 s boot), leaving no room for the once-a-second rt-stats line.
    let linux_start = lines
        .iter()
        .position(|l| l.starts_with("[bulkhead] linux: loaded "))
        .unwrap_or(usize::MAX);
    let linux_init = lines
        .iter()
        .position(|l| l.contains("linux| bulkhead-init: userspace reached"))
        .unwrap_or(0);
    let stats_during_boot = lines[..linux_init.max(1)]
        .iter()
        .enumerate()
        .filter(|(i, l)| *i > linux_start && l.starts_with("control| rt-stats "))
        .count();

    assert!(linux_init > 0, "Linux did not reach userspace:\n{out}");
    assert!(
        stats_during_boot >= 1,
        "no rt-stats between Linux's kernel being loaded and its init:\n{out}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("control| rt-stats "))
            .all(|l| rt_stats_field(l, "samples").unwrap_or(0) > 0),
        "{out}"
    );
    assert!(out.contains("linux: stopped: powered off"), "{out}");
    assert!(out.contains("run-status=130"), "stopped by Ctrl-C:\n{out}");
}
