//! The bridge's policy pipeline (`bulkhead_bridge::policy::Pipeline`) with every stage on —
//! spoof checks with quarantine, rate limits, flood and scan detection, VLANs, MAC learning on
//! an uplink, a firewall with deny and allow rules — fed arbitrary frames from arbitrary
//! sources at arbitrary times. Checks, besides never panicking: no frame goes back to its
//! source, a forwarded frame has a destination and a dropped one none, and every frame is
//! counted once, in or as unknown source.
//!
//! Input: records, until the input ends:
//!
//! ```text
//! [0]      source: byte % 5 — 0..=2 port a, b, c; 3 uplink wan; 4 control (below)
//! [1]      time step: now += byte³ µs (0 … 16.6 s), so MAC ageing (300 s) is reachable
//! [2..4]   frame length, little-endian (cut to what is left of the input)
//! [4..]    the frame (Ethernet header first, no virtio header)
//! ```
//!
//! A control record (source 4) has no length or frame: its time byte picks
//! `port_reconnected(byte % 3)` when even, draining the alerts when odd. The unit tests in
//! `src/frame.rs` write the seeds (`corpus/policy/seed-*`): frames from port a
//! (02:00:00:00:00:0a, 10.0.0.1) to port b (02:00:00:00:00:0b, 10.0.0.2).
#![no_main]

use std::net::IpAddr;

use bulkhead_bridge::frame::{ethertype, protocol, MacAddr};
use bulkhead_bridge::policy::{
    Attachment, IdsConfig, Pipeline, PolicyConfig, PortPolicy, RateLimit, Rule, UplinkPolicy,
    Verdict,
};
use bulkhead_config::{AlertAction, Cidr, Endpoint};
use libfuzzer_sys::fuzz_target;

const PORTS: usize = 3;

fn cidr(addr: &str, prefix: u8) -> Cidr {
    Cidr {
        addr: addr.parse::<IpAddr>().unwrap(),
        prefix,
    }
}

fn config() -> PolicyConfig {
    let port = |name: &str, last: u8, ips: Vec<Cidr>, vlan, rate| PortPolicy {
        name: name.to_string(),
        mac: MacAddr([0x02, 0, 0, 0, 0, last]),
        ips,
        vlan,
        rate,
    };
    let limit = RateLimit {
        bytes_per_s: Some(1_000_000),
        burst_bytes: 65_550,
        packets_per_s: Some(1_000),
        burst_packets: 50,
    };
    PolicyConfig {
        ports: vec![
            port(
                "a",
                0x0a,
                vec![cidr("10.0.0.1", 32), cidr("fd00::", 64)],
                None,
                Some(limit),
            ),
            port(
                "b",
                0x0b,
                vec![cidr("10.0.0.2", 32), cidr("fd00::2", 128)],
                None,
                None,
            ),
            port("c", 0x0c, Vec::new(), Some(10), Some(limit)),
        ],
        uplinks: vec![UplinkPolicy {
            name: "wan".to_string(),
        }],
        rules: vec![
            Rule {
                protocol: Some(protocol::TCP),
                dst_ports: Some((22, 22)),
                ..Rule::deny(Endpoint::Any, Endpoint::Any)
            },
            Rule {
                ethertype: Some(ethertype::ARP),
                ..Rule::allow(Endpoint::Any, Endpoint::Any)
            },
            Rule {
                protocol: Some(protocol::TCP),
                dst: Some(cidr("10.0.0.0", 24)),
                dst_ports: Some((80, 443)),
                ..Rule::allow(Endpoint::Port(0), Endpoint::Port(1))
            },
            Rule {
                both_ways: false,
                protocol: Some(protocol::UDP),
                dst_ports: Some((53, 53)),
                ..Rule::allow(Endpoint::Any, Endpoint::Uplink(0))
            },
            Rule {
                ethertype: Some(ethertype::IPV6),
                src: Some(cidr("fd00::", 16)),
                ..Rule::allow(Endpoint::Port(0), Endpoint::Any)
            },
            Rule::allow(Endpoint::Port(2), Endpoint::Uplink(0)),
        ],
        ids: IdsConfig {
            flood_pps: Some(100),
            scan_ports: Some(16),
            scan_window_ms: 500,
            on_spoof: AlertAction::Quarantine,
            on_malformed: AlertAction::Log,
            on_flood: AlertAction::Drop,
            on_scan: AlertAction::Log,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let mut pipeline = Pipeline::new(&config()).expect("the fixed configuration is valid");
    let mut out = Vec::new();
    let mut now: u64 = 0;
    let mut frames: u64 = 0;
    let mut rest = data;
    while let [selector, step, tail @ ..] = rest {
        now = now.saturating_add(u64::from(*step).pow(3) * 1_000);
        let source = match selector % 5 {
            n @ 0..=2 => Attachment::Port(usize::from(n)),
            3 => Attachment::Uplink(0),
            _ => {
                if step % 2 == 0 {
                    pipeline.port_reconnected(usize::from(*step) % PORTS);
                } else {
                    pipeline
                        .drain_alerts()
                        .for_each(|alert| drop(alert.to_string()));
                }
                rest = tail;
                continue;
            }
        };
        let [lo, hi, body @ ..] = tail else { break };
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(body.len());
        let (frame, after) = body.split_at(len);
        rest = after;

        let verdict = pipeline.process(source, frame, now, &mut out);
        frames += 1;

        assert!(
            !out.contains(&source),
            "{verdict:?}: {out:?} includes {source:?}"
        );
        assert_eq!(matches!(verdict, Verdict::Forward { .. }), !out.is_empty());
        for &dest in &out {
            pipeline.delivered(dest, frame.len());
        }
    }
    let counters = pipeline.counters();
    let frames_in: u64 = counters
        .ports
        .iter()
        .chain(&counters.uplinks)
        .map(|l| l.frames_in)
        .sum();
    assert_eq!(frames_in + counters.unknown_source, frames);
    drop(counters.to_string());
    pipeline
        .drain_alerts()
        .for_each(|alert| drop(alert.to_string()));
});
