//! The health monitor on this machine's `/dev/kvm`, with the Rust real-time guest: a watchdog
//! that stops being kicked, a reported panic, reported deadline misses and a crashed partition
//! process each lead to their declared action (restart up to `max_restarts`, then halt; log
//! and go on; stop the whole system), every event lands in the event log, and `bulkhead
//! events` shows it. Boots real guests; fails loudly without KVM or the guest image.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// An RT partition with `health` (the body of its `[partition.health]` table).
fn rt_partition(name: &str, cpu: usize, cmdline: &str, max_restarts: u32, health: &str) -> String {
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
max_restarts = {max_restarts}

[partition.health]
{health}
"#,
        kernel = rt_demo().display()
    )
}

/// Writes the description of system `name` into a fresh scratch folder that also holds the
/// event log (`XDG_STATE_HOME`); returns (description, state folder).
fn setup(test: &str, name: &str, parts: &[String]) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(test);
    let state = dir.join("state");
    let desc = write_description(
        &dir,
        &format!("[system]\nname = \"{name}\"\n{}", parts.concat()),
    );
    (desc, state)
}

/// `bulkhead events` for the description, with the event log under `state`.
fn events(desc: &Path, state: &Path) -> String {
    let out = Command::new(bulkhead())
        .arg("events")
        .arg(desc)
        .env("XDG_STATE_HOME", state)
        .output()
        .expect("run bulkhead events");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn watchdog_that_is_no_longer_kicked_restarts_the_partition_then_halts_it() {
    require_kvm();
    let (desc, state) = setup(
        "health_watchdog",
        "wd",
        &[rt_partition(
            "rt",
            0,
            "period_us=1000 stall_after_s=1",
            1,
            "watchdog_ms = 300\non_watchdog = \"restart\"",
        )],
    );

    let mut sys = RunningSystem::start_with_env(&desc, &[("XDG_STATE_HOME", &state)]);
    sys.wait_for(Duration::from_secs(30), "the restart", |l| {
        l.contains("rt: restarting (restart 1 of at most 1)")
    });
    let (status, _) = sys.finish(Duration::from_secs(60));
    let log = events(&desc, &state);

    assert_eq!(status.code(), Some(1), "not a clean stop:\n{log}");
    let expiries = lines_with(&log, "partition=rt event=watchdog");
    assert_eq!(expiries.len(), 2, "{log}");
    assert!(expiries[0].contains("action=restart"), "{log}");
    assert!(
        expiries[1].contains("action=halt (restart limit reached)"),
        "{log}"
    );
    assert_eq!(lines_with(&log, "event=system_start").len(), 1, "{log}");
    assert_eq!(lines_with(&log, "event=system_stop").len(), 1, "{log}");
}

#[test]
fn reported_panic_halts_by_default_and_is_only_logged_when_declared_so() {
    require_kvm();
    let (desc, state) = setup(
        "health_panic",
        "pn",
        &[
            rt_partition("halts", 0, "panic_after_s=1", 3, ""),
            rt_partition(
                "logs",
                1,
                "panic_after_s=1 duration_s=3",
                3,
                "on_panic = \"log\"",
            ),
        ],
    );

    let (status, lines) = RunningSystem::start_with_env(&desc, &[("XDG_STATE_HOME", &state)])
        .finish(Duration::from_secs(60));
    let log = events(&desc, &state);
    let transcript: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();

    assert_eq!(status.code(), Some(1), "{transcript}");
    assert!(
        transcript.contains("[bulkhead] halts: stopped: guest panic"),
        "{transcript}"
    );
    let halted = lines_with(&log, "partition=halts event=panic");
    assert_eq!(halted.len(), 1, "{log}");
    assert!(halted[0].contains("action=halt"), "{log}");
    // The logging partition went on to its three reports and powered off.
    let logged = lines_with(&log, "partition=logs event=panic");
    assert_eq!(logged.len(), 1, "{log}");
    assert!(logged[0].contains("action=log code=1"), "{log}");
    assert!(
        transcript.contains("[bulkhead] logs: stopped: powered off"),
        "{transcript}"
    );
    let reports = lines
        .iter()
        .filter(|(_, l)| l.starts_with("logs| rt-stats"))
        .count();
    assert_eq!(reports, 3, "{transcript}");
}

#[test]
fn deadline_misses_reaching_the_threshold_take_the_declared_action() {
    require_kvm();
    let (desc, state) = setup(
        "health_misses",
        "dm",
        &[rt_partition(
            "rt",
            0,
            "miss_after_s=1",
            0,
            "deadline_miss_threshold = 2\non_deadline_miss = \"restart\"",
        )],
    );

    let (status, _) = RunningSystem::start_with_env(&desc, &[("XDG_STATE_HOME", &state)])
        .finish(Duration::from_secs(60));
    let log = events(&desc, &state);

    assert_eq!(status.code(), Some(1), "{log}");
    let misses = lines_with(&log, "partition=rt event=deadline_miss");
    assert_eq!(misses.len(), 1, "{log}");
    // max_restarts = 0: the restart the action asks for is already beyond the limit.
    assert!(
        misses[0].contains("action=halt (restart limit reached)"),
        "{log}"
    );
}

#[test]
fn crashed_partition_process_is_restarted_when_declared() {
    require_kvm();
    let (desc, state) = setup(
        "health_crash",
        "cr",
        &[rt_partition(
            "rt",
            0,
            "period_us=1000",
            1,
            "on_crash = \"restart\"",
        )],
    );

    let mut sys = RunningSystem::start_with_env(&desc, &[("XDG_STATE_HOME", &state)]);
    let started = sys.wait_for(Duration::from_secs(30), "the partition process", |l| {
        l.contains("rt: partition process ") && l.contains(" started")
    });
    sys.wait_for(Duration::from_secs(30), "rt-stats", |l| {
        l.starts_with("rt| rt-stats")
    });
    let pid: i32 = started
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("pid in the start line");
    // SAFETY: sending a signal to a process id read from the supervisor's output.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    sys.wait_for(Duration::from_secs(30), "the restart", |l| {
        l.contains("rt: restarting (restart 1 of at most 1)")
    });
    sys.wait_for(Duration::from_secs(30), "rt-stats after the restart", |l| {
        l.starts_with("rt| rt-stats")
    });
    let _ = sys.child.kill();
    let _ = sys.finish(Duration::from_secs(30));
    let log = events(&desc, &state);

    let crashes = lines_with(&log, "partition=rt event=crash");
    assert_eq!(crashes.len(), 1, "{log}");
    assert!(crashes[0].contains("action=restart"), "{log}");
    assert!(crashes[0].contains("SIGKILL"), "{log}");
}

#[test]
fn stop_system_action_stops_every_partition() {
    require_kvm();
    let (desc, state) = setup(
        "health_stop_system",
        "ss",
        &[
            rt_partition("rt", 0, "panic_after_s=1", 0, "on_panic = \"stop_system\""),
            // Would restart after a crash: being stopped is none.
            rt_partition("other", 1, "period_us=1000", 5, "on_crash = \"restart\""),
        ],
    );

    let (status, lines) = RunningSystem::start_with_env(&desc, &[("XDG_STATE_HOME", &state)])
        .finish(Duration::from_secs(60));
    let transcript: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let log = events(&desc, &state);

    assert_eq!(status.code(), Some(1), "{transcript}");
    assert!(
        transcript.contains("rt: health action stop_system: stopping every partition"),
        "{transcript}"
    );
    assert!(
        transcript.contains("[bulkhead] other: stopped: stopped by the supervisor"),
        "{transcript}"
    );
    assert!(
        lines_with(&log, "partition=rt event=panic action=stop_system").len() == 1,
        "{log}"
    );
    assert_eq!(
        lines_with(&log, "partition=other event=stopped").len(),
        1,
        "{log}"
    );
    assert!(!transcript.contains("other: restarting"), "{transcript}");
}

#[test]
fn events_of_a_system_that_never_ran_says_so() {
    let (desc, state) = setup(
        "health_no_log",
        "never",
        &[rt_partition("rt", 0, "", 0, "")],
    );

    let out = Command::new(bulkhead())
        .arg("events")
        .arg(&desc)
        .env("XDG_STATE_HOME", &state)
        .output()
        .expect("run bulkhead events");

    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no event log yet"));
}
