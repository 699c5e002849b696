//! ARINC 653 ports and doorbells between two Rust RT guests on this machine's `/dev/kvm`, both
//! ends through the ABI 0.3 calls. The high-criticality `control` partition runs
//! `rt-demo ports=1` (writes a sampling port, answers commands on queuing ports, rings a
//! doorbell when its own rings); the low-criticality `peer` runs `rt-demo ports=peer`, which
//! opens the other ends and runs a fixed script against it (`guests/rt-demo/src/peer.rs`).
//! Checked, from what the guests print: each end opens with its kind and an undeclared name
//! does not; a sampling message is valid while fresh and invalid once its writer stops
//! (validity expiry); a queuing port of depth 4 takes four commands and reports the fifth's
//! overflow to its sender; commands and replies arrive once each, in order; a ring raises the
//! control side's interrupt and its ring wakes the peer's wait; a receive on an empty queue
//! times out; and the control partition's periodic task goes on reporting throughout. Boots
//! real guests; fails loudly without KVM or the guest image.

mod common;

use std::time::Duration;

use common::*;

/// How long the control side writes telemetry before it stops (`ports_stop_s`).
const TELEMETRY_S: u32 = 3;
/// The peer's refresh period: a message older than this is invalid.
const REFRESH_MS: u64 = 300;

/// One partition running rt-demo with `cmdline`, followed by its ports.
fn partition(name: &str, criticality: &str, cpu: usize, cmdline: &str, ports: &str) -> String {
    format!(
        r#"
[[partition]]
name = "{name}"
criticality = "{criticality}"
vcpus = 1
cpus = [{cpu}]
memory_mib = 32
kernel = "{kernel}"
cmdline = "{cmdline}"
{ports}"#,
        kernel = rt_demo().display()
    )
}

/// A port declaration; `extra` is its kind's own key (`depth`, `refresh_period_us`) or empty.
fn port(name: &str, kind: &str, direction: &str, extra: &str) -> String {
    format!(
        r#"
[[partition.port]]
name = "{name}"
kind = "{kind}"
direction = "{direction}"
max_message_bytes = 64
{extra}
"#
    )
}

fn description() -> String {
    let depth = "depth = 4";
    let control = partition(
        "control",
        "high",
        1,
        &format!("period_us=1000 duration_s=0 ports=1 ports_stop_s={TELEMETRY_S}"),
        &[
            port("telemetry", "sampling", "source", ""),
            port("commands", "queuing", "destination", depth),
            port("replies", "queuing", "source", depth),
        ]
        .concat(),
    );
    let peer = partition(
        "peer",
        "low",
        0,
        "period_us=1000 duration_s=0 ports=peer",
        &[
            port(
                "telemetry",
                "sampling",
                "destination",
                &format!("refresh_period_us = {}", REFRESH_MS * 1000),
            ),
            port("commands", "queuing", "source", depth),
            port("replies", "queuing", "destination", depth),
        ]
        .concat(),
    );
    format!(
        r#"[system]
name = "ports-rt"
{control}{peer}
[[channel]]
name = "telemetry"
source = "control.telemetry"
destinations = ["peer.telemetry"]

[[channel]]
name = "commands"
source = "peer.commands"
destinations = ["control.commands"]

[[channel]]
name = "replies"
source = "control.replies"
destinations = ["peer.replies"]

[[doorbell]]
name = "kick"
from = "peer"
to = "control"

[[doorbell]]
name = "tock"
from = "control"
to = "peer"
"#
    )
}

/// The lines that start with `prefix`, without it.
fn said(seen: &[Line], prefix: &str) -> Vec<String> {
    seen.iter()
        .filter_map(|(_, l)| l.strip_prefix(prefix))
        .map(str::to_string)
        .collect()
}

/// Each `open NAME handle=H kind=KIND …` line as `NAME KIND` (handles are the monitor's
/// business); a failed open as `NAME error=ERR`.
fn opens(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("open "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap_or_default();
            let outcome = words
                .find_map(|w| w.strip_prefix("kind="))
                .map_or_else(|| l[name.len()..].trim().to_string(), str::to_string);
            format!("{name} {outcome}")
        })
        .collect()
}

/// The lines that start with any of `prefixes`.
fn about(lines: &[String], prefixes: &[&str]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .cloned()
        .collect()
}

/// The value of `key=` in `line`, as a number.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// The peer's script from its first valid telemetry read on (the read errors before it depend
/// on which partition started first).
fn script(peer: &[String]) -> Vec<String> {
    peer.iter()
        .skip_while(|l| !l.starts_with("telemetry valid "))
        .cloned()
        .collect()
}

/// Where the first line equal to `line` is in the run's output.
fn position(seen: &[Line], line: &str) -> Option<usize> {
    seen.iter().position(|(_, l)| l == line)
}

/// Where the first line starting with `prefix` is in the run's output (`usize::MAX`: nowhere).
fn position_of_prefix(seen: &[Line], prefix: &str) -> usize {
    seen.iter()
        .position(|(_, l)| l.starts_with(prefix))
        .unwrap_or(usize::MAX)
}

#[test]
fn rt_guests_exchange_telemetry_commands_replies_and_doorbells_through_their_ports() {
    require_kvm();
    let dir = scratch("ports_rt");
    let desc = write_description(&dir, &description());
    let mut run = RunningSystem::start(&desc);
    run.wait_for(Duration::from_secs(30), "the peer's script to end", |l| {
        l == "peer| rt-peer: done"
    });
    run.wait_for(
        Duration::from_secs(10),
        "a control rt-stats line after the peer's script",
        |l| l.starts_with("control| rt-stats "),
    );
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .expect("kill -INT");
    let (status, seen) = run.finish(Duration::from_secs(20));
    let text: String = seen.iter().map(|(_, l)| format!("{l}\n")).collect();
    let control = said(&seen, "control| rt-ports: ");
    let peer = script(&said(&seen, "peer| rt-peer: "));
    let control_stats = said(&seen, "control| rt-stats ");
    let done_at = position(&seen, "peer| rt-peer: done");
    let stats_before_done = seen[..done_at.unwrap_or(0)]
        .iter()
        .filter(|(_, l)| l.starts_with("control| rt-stats "))
        .count();
    let last_seq = control
        .iter()
        .find_map(|l| l.strip_prefix("telemetry stopped seq="))
        .unwrap_or("none")
        .to_string();
    let fresh = peer.first().cloned().unwrap_or_default();
    let stale = peer.get(13).cloned().unwrap_or_default();

    assert!(interrupted.success());
    assert_eq!(
        status.code(),
        Some(130),
        "Ctrl-C ends the run with 130:\n{text}"
    );
    assert_eq!(
        opens(&control),
        [
            "telemetry sampling-source",
            "commands queuing-destination",
            "replies queuing-source",
            "kick doorbell-in",
            "tock doorbell-out",
            "nonexistent error=invalid-config",
        ],
        "{text}"
    );
    assert_eq!(
        opens(&said(&seen, "peer| rt-ports: ")),
        [
            "telemetry sampling-destination",
            "commands queuing-source",
            "replies queuing-destination",
            "kick doorbell-out",
            "tock doorbell-in",
            "nonexistent error=invalid-config",
        ],
        "{text}"
    );
    assert_eq!(
        peer,
        [
            fresh.as_str(),
            "send cmd-1 ok",
            "send cmd-2 ok",
            "send cmd-3 ok",
            "send cmd-4 ok",
            "send cmd-5 error=not-available",
            "rang kick",
            "tock rings=1",
            "reply ack?cmd-1",
            "reply ack?cmd-2",
            "reply ack?cmd-3",
            "reply ack?cmd-4",
            "replies empty error=timed-out",
            stale.as_str(),
            "done",
        ],
        "{text}"
    );
    assert!(
        fresh.starts_with("telemetry valid telemetry?seq="),
        "{text}"
    );
    assert!(
        stale.starts_with(&format!(
            "telemetry invalid telemetry?seq={last_seq} age_ms="
        )),
        "the stale message is the last one written:\n{text}"
    );
    assert!(
        field(&stale, "age_ms").unwrap_or(0) >= REFRESH_MS,
        "invalid only once older than the refresh period:\n{text}"
    );
    assert!(
        position_of_prefix(&seen, "control| rt-ports: telemetry stopped seq=")
            < position_of_prefix(&seen, "peer| rt-peer: telemetry invalid "),
        "the telemetry goes stale after its writer stops:\n{text}"
    );
    assert_eq!(
        about(
            &control,
            &["kick ", "command ", "rang tock ", "ring tock ", "reply "]
        ),
        [
            "kick interrupts=1",
            "kick rings=1",
            "command cmd-1",
            "command cmd-2",
            "command cmd-3",
            "command cmd-4",
            "rang tock drained=4",
        ],
        "{text}"
    );
    assert!(
        control.iter().any(|l| l == "attach kick vector=80"),
        "{text}"
    );
    assert!(
        stats_before_done >= 2 && control_stats.len() > stats_before_done,
        "the control partition reports every second throughout:\n{text}"
    );
    assert!(
        control_stats
            .iter()
            .all(|l| field(l, "samples").unwrap_or(0) > 0),
        "{text}"
    );
}
