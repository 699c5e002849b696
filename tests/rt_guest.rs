//! The Rust real-time guest on this machine's `/dev/kvm`: it runs, measures, reports
//! `rt-stats`, survives bad paravirtual calls, powers off; and partitions are isolated
//! processes. Boots real guests; fails loudly without KVM or the guest image.

mod common;

use std::time::Duration;

use common::*;

fn rt_partition(name: &str, cpu: usize, cmdline: &str) -> String {
    format!(
        r#"
[[partition]]
name = "{name}"
criticality = "low"
vcpus = 1
cpus = [{cpu}]
memory_mib = 16
kernel = "{kernel}"
cmdline = "{cmdline}"
"#,
        kernel = rt_demo().display()
    )
}

fn system(parts: &[String]) -> String {
    format!("[system]\nname = \"test\"\n{}", parts.concat())
}

#[test]
fn rt_guest_prints_rt_stats_with_samples_and_powers_off_cleanly() {
    require_kvm();
    let dir = scratch("rt_stats");
    let desc = write_description(
        &dir,
        &system(&[rt_partition("rt", 0, "period_us=1000 duration_s=3")]),
    );

    let (status, lines) = RunningSystem::start(&desc).finish(Duration::from_secs(60));
    let stats: Vec<&String> = lines
        .iter()
        .map(|(_, l)| l)
        .filter(|l| l.starts_with("rt| rt-stats "))
        .collect();

    assert!(status.success(), "exit {status:?}; output:\n{lines:#?}");
    assert!(
        stats.len() >= 2,
        "expected an rt-stats line a second: {lines:#?}"
    );
    assert!(
        stats
            .iter()
            .all(|l| rt_stats_field(l, "samples").unwrap_or(0) > 0),
        "{stats:#?}"
    );
    assert!(
        stats
            .iter()
            .all(|l| rt_stats_field(l, "period_us") == Some(1000)),
        "{stats:#?}"
    );
    assert!(
        stats
            .iter()
            .all(|l| rt_stats_field(l, "p99_ns") >= rt_stats_field(l, "p50_ns")),
        "{stats:#?}"
    );
}

#[test]
fn guest_issuing_bad_hypercalls_gets_errors_back_and_keeps_running() {
    require_kvm();
    let dir = scratch("bad_calls");
    let desc = write_description(
        &dir,
        &system(&[rt_partition("rt", 0, "duration_s=2 selftest=1")]),
    );

    let (status, lines) = RunningSystem::start(&desc).finish(Duration::from_secs(60));
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let selftest = text
        .lines()
        .find(|l| l.contains("abi-selftest"))
        .unwrap_or_default();

    assert!(status.success(), "exit {status:?}; output:\n{text}");
    assert!(
        selftest.contains("unknown=-1 fault=-2 too_big=-3 invalid=-4 name_fault=-2 result=pass"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("rt| rt-stats ")),
        "guest stopped reporting after bad calls:\n{text}"
    );
}

#[test]
fn killing_one_partition_process_leaves_the_other_running() {
    require_kvm();
    let dir = scratch("kill_one");
    let desc = write_description(
        &dir,
        &system(&[
            rt_partition("victim", 0, "duration_s=0"),
            rt_partition("survivor", 1, "duration_s=0"),
        ]),
    );
    let mut run = RunningSystem::start(&desc);
    let started = run.wait_for(Duration::from_secs(30), "victim's process id", |l| {
        l.contains("victim: partition process") && l.ends_with("started")
    });
    let pid: i32 = started
        .split_whitespace()
        .rev()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("pid");
    run.wait_for(Duration::from_secs(30), "victim's first rt-stats", |l| {
        l.starts_with("victim| rt-stats")
    });
    run.wait_for(Duration::from_secs(30), "survivor's first rt-stats", |l| {
        l.starts_with("survivor| rt-stats")
    });

    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    run.wait_for(Duration::from_secs(10), "the victim's crash report", |l| {
        l.contains("victim: stopped: partition process crashed: killed by signal 9")
    });
    for n in 0..2 {
        run.wait_for(
            Duration::from_secs(10),
            &format!("survivor rt-stats #{n} after the kill"),
            |l| l.starts_with("survivor| rt-stats"),
        );
    }
    let pid_of_supervisor = run.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid_of_supervisor])
        .status()
        .expect("kill -INT");
    let (status, _) = run.finish(Duration::from_secs(20));

    assert!(killed.success());
    assert_eq!(status.code(), Some(130), "Ctrl-C ends the run with 130");
}
