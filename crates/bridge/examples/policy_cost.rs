//! The cost of each stage of the bridge's policy pipeline, in nanoseconds per frame, over a
//! realistic mix of frames (TCP data and ACKs, UDP, ICMP, ARP broadcasts, IPv6, from four
//! ports, and 5 % TCP from an uplink, which skips the port stages): parsing, the spoof
//! check, the rate limit, flood and scan detection, switching, the firewall with 1, 10 and
//! 100 rules (the allowing rule last, so every rule is looked at), and the whole pipeline
//! with every stage on (10 and 100 rules). Each figure is the median of five
//! runs of 10⁶ frames; the table is Markdown.
//!
//! `cargo run --release -p bulkhead-bridge --example policy_cost [FRAMES]`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use bulkhead_bridge::frame::build::{arp, ethernet, icmp, ipv4, ipv6, tcp, udp};
use bulkhead_bridge::frame::{arp_op, ethertype, protocol, tcp_flags, Frame, MacAddr};
use bulkhead_bridge::policy::firewall::{Firewall, FlowKey};
use bulkhead_bridge::policy::ids::{FloodDetector, ScanDetector};
use bulkhead_bridge::policy::rate::RateLimiter;
use bulkhead_bridge::policy::spoof::SpoofCheck;
use bulkhead_bridge::policy::switch::Switch;
use bulkhead_bridge::policy::{
    Attachment, IdsConfig, Pipeline, PolicyConfig, PortPolicy, RateLimit, Rule, UplinkPolicy,
    Verdict,
};
use bulkhead_config::{AlertAction, Cidr, Endpoint, RuleAction};

const PORTS: usize = 4;
const MIX: usize = 1024;
const RUNS: usize = 5;
const NS_PER_FRAME: u64 = 1_000;

fn mac(port: usize) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, port as u8 + 1])
}

fn ip4(port: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, port as u8 + 1)
}

fn ip6(port: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, port as u16 + 1)
}

/// A small deterministic generator (xorshift64*), so every run sees the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One frame of the mix: where it comes from and its bytes.
struct Sample {
    source: Attachment,
    bytes: Vec<u8>,
}

fn mix() -> Vec<Sample> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..MIX)
        .map(|_| {
            let from = rng.below(PORTS as u64) as usize;
            let to = (from + 1 + rng.below(PORTS as u64 - 1) as usize) % PORTS;
            let roll = rng.below(100);
            let data = vec![0x5a; 1460];
            if roll >= 95 {
                // From the uplink: a remote host's TCP data to a port (its MAC is learned).
                let remote = MacAddr([0x02, 0xee, 0, 0, 0, rng.below(8) as u8]);
                let segment = tcp(443, 40000, tcp_flags::ACK, &data[..]);
                let packet = ipv4(Ipv4Addr::new(10, 9, 0, 1), ip4(to), protocol::TCP, &segment);
                return Sample {
                    source: Attachment::Uplink(0),
                    bytes: ethernet(mac(to), remote, None, ethertype::IPV4, &packet),
                };
            }
            let bytes = match roll {
                // TCP over IPv4: ACKs and full segments to a web server.
                0..=54 => {
                    let payload = if rng.below(10) < 4 {
                        &data[..0]
                    } else {
                        &data[..]
                    };
                    let segment = tcp(40000 + from as u16, 80, tcp_flags::ACK, payload);
                    let packet = ipv4(ip4(from), ip4(to), protocol::TCP, &segment);
                    ethernet(mac(to), mac(from), None, ethertype::IPV4, &packet)
                }
                // UDP over IPv4, DNS-sized to large.
                55..=74 => {
                    let len = 64 + rng.below(1300) as usize;
                    let packet = ipv4(
                        ip4(from),
                        ip4(to),
                        protocol::UDP,
                        &udp(5000, 53, &data[..len]),
                    );
                    ethernet(mac(to), mac(from), None, ethertype::IPV4, &packet)
                }
                75..=79 => {
                    let packet = ipv4(ip4(from), ip4(to), protocol::ICMP, &icmp(8, 0, &data[..56]));
                    ethernet(mac(to), mac(from), None, ethertype::IPV4, &packet)
                }
                80..=84 => {
                    let packet = arp(
                        arp_op::REQUEST,
                        mac(from),
                        ip4(from),
                        MacAddr::default(),
                        ip4(to),
                    );
                    ethernet(MacAddr::BROADCAST, mac(from), None, ethertype::ARP, &packet)
                }
                85..=91 => {
                    let segment = tcp(40000, 443, tcp_flags::ACK, &data[..1200]);
                    let packet = ipv6(ip6(from), ip6(to), protocol::TCP, &segment);
                    ethernet(mac(to), mac(from), None, ethertype::IPV6, &packet)
                }
                _ => {
                    let packet = ipv6(
                        ip6(from),
                        ip6(to),
                        protocol::UDP,
                        &udp(546, 547, &data[..200]),
                    );
                    ethernet(mac(to), mac(from), None, ethertype::IPV6, &packet)
                }
            };
            Sample {
                source: Attachment::Port(from),
                bytes,
            }
        })
        .collect()
}

fn cidr(addr: IpAddr, prefix: u8) -> Option<Cidr> {
    Some(Cidr { addr, prefix })
}

/// `count` rules: `count - 1` that the mix never matches (other subnets, other ports), then
/// one that allows all of it.
fn rules(count: usize) -> Vec<Rule> {
    let mut rules: Vec<Rule> = (0..count.saturating_sub(1))
        .map(|i| Rule {
            protocol: Some(if i % 2 == 0 {
                protocol::TCP
            } else {
                protocol::UDP
            }),
            src: cidr(IpAddr::V4(Ipv4Addr::new(172, 16, i as u8, 0)), 24),
            dst_ports: Some((1000 + i as u16, 1000 + i as u16)),
            action: if i % 3 == 0 {
                RuleAction::Deny
            } else {
                RuleAction::Allow
            },
            ..Rule::allow(Endpoint::Any, Endpoint::Any)
        })
        .collect();
    rules.push(Rule::allow(Endpoint::Any, Endpoint::Any));
    rules
}

fn config(rule_count: usize) -> PolicyConfig {
    let ports = (0..PORTS)
        .map(|p| PortPolicy {
            name: format!("p{p}"),
            mac: mac(p),
            ips: vec![
                Cidr {
                    addr: IpAddr::V4(ip4(p)),
                    prefix: 32,
                },
                Cidr {
                    addr: IpAddr::V6(ip6(p)),
                    prefix: 128,
                },
            ],
            vlan: None,
            rate: Some(RateLimit {
                bytes_per_s: Some(100_000_000_000),
                burst_bytes: 1 << 20,
                packets_per_s: Some(100_000_000),
                burst_packets: 1_000,
            }),
        })
        .collect();
    PolicyConfig {
        ports,
        uplinks: vec![UplinkPolicy {
            name: "wan".to_string(),
        }],
        rules: rules(rule_count),
        ids: IdsConfig {
            flood_pps: Some(10_000_000),
            scan_ports: Some(4096),
            scan_window_ms: 1_000,
            on_spoof: AlertAction::Drop,
            on_malformed: AlertAction::Drop,
            on_flood: AlertAction::Log,
            on_scan: AlertAction::Log,
        },
    }
}

/// Median, minimum and maximum ns per frame of `RUNS` runs of `frames` calls of `step(i)`.
fn measure(frames: usize, mut step: impl FnMut(usize)) -> (f64, f64, f64) {
    let mut per_frame: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            (0..frames).for_each(&mut step);
            start.elapsed().as_nanos() as f64 / frames as f64
        })
        .collect();
    per_frame.sort_by(f64::total_cmp);
    (per_frame[RUNS / 2], per_frame[0], per_frame[RUNS - 1])
}

fn main() {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let samples = mix();
    let parsed: Vec<Frame<'_>> = samples
        .iter()
        .map(|s| Frame::parse(&s.bytes).expect("the mix is well formed"))
        .collect();
    let keys: Vec<FlowKey> = parsed.iter().map(FlowKey::of).collect();
    // The port a frame comes from; `None` for the uplink's, which skip the port stages.
    let sources: Vec<Option<usize>> = samples
        .iter()
        .map(|s| match s.source {
            Attachment::Port(p) => Some(p),
            Attachment::Uplink(_) => None,
        })
        .collect();
    // Time runs on across runs, as in the bridge.
    let mut clock = 0u64;
    let mut tick = move || {
        clock += NS_PER_FRAME;
        clock
    };
    let at = |i: usize| i % MIX;
    let mut rows: Vec<(String, (f64, f64, f64))> = Vec::new();

    rows.push((
        "parse (Ethernet, VLAN, IP, transport)".into(),
        measure(frames, |i| {
            black_box(Frame::parse(black_box(&samples[at(i)].bytes)).is_ok());
        }),
    ));

    let checks: Vec<SpoofCheck> = config(1)
        .ports
        .iter()
        .map(|p| SpoofCheck::new(p.mac, &p.ips))
        .collect();
    rows.push((
        "spoof check (MAC, IP, ARP)".into(),
        measure(frames, |i| {
            let i = at(i);
            if let Some(port) = sources[i] {
                black_box(checks[port].check(black_box(&parsed[i])).is_ok());
            }
        }),
    ));

    let mut limiters: Vec<RateLimiter> = config(1)
        .ports
        .iter()
        .map(|p| RateLimiter::new(p.rate.as_ref().expect("every port is limited")))
        .collect();
    rows.push((
        "rate limit (bytes and frames buckets)".into(),
        measure(frames, |i| {
            let now = tick();
            let f = at(i);
            if let Some(port) = sources[f] {
                black_box(limiters[port].admit(parsed[f].len(), now));
            }
        }),
    ));

    let mut floods: Vec<FloodDetector> =
        (0..PORTS).map(|_| FloodDetector::new(10_000_000)).collect();
    let mut scans: Vec<ScanDetector> = (0..PORTS).map(|_| ScanDetector::new(4096, 1_000)).collect();
    rows.push((
        "flood and scan detection".into(),
        measure(frames, |i| {
            let now = tick();
            let f = at(i);
            let Some(port) = sources[f] else { return };
            black_box(floods[port].observe(now));
            if let Some(ip) = keys[f].ip {
                if let Some((_, dport)) = ip.ports {
                    black_box(scans[port].observe(ip.dst, dport, now));
                }
            }
        }),
    ));

    let statics: Vec<(MacAddr, Option<u16>)> = (0..PORTS).map(|p| (mac(p), None)).collect();
    let mut switch = Switch::new(&statics, 1);
    let mut out = Vec::with_capacity(PORTS + 1);
    rows.push((
        "switching (static MACs, flooding)".into(),
        measure(frames, |i| {
            let f = at(i);
            out.clear();
            let frame = &parsed[f];
            switch.forward(
                samples[f].source,
                None,
                frame.dst,
                frame.src,
                tick(),
                &mut out,
            );
            black_box(out.len());
        }),
    ));

    for count in [1, 10, 100] {
        let firewall = Firewall::new(&rules(count));
        rows.push((
            format!(
                "firewall, {count} rule{} (flow key + decision)",
                if count == 1 { "" } else { "s" }
            ),
            measure(frames, |i| {
                let f = at(i);
                let key = FlowKey::of(&parsed[f]);
                let dest = Attachment::Port((sources[f].unwrap_or(0) + 1) % PORTS);
                black_box(firewall.allows(samples[f].source, dest, &key));
            }),
        ));
    }

    for count in [10, 100] {
        let mut pipeline = Pipeline::new(&config(count)).expect("the configuration is valid");
        let mut out = Vec::with_capacity(PORTS + 1);
        let mut forwarded = 0u64;
        rows.push((
            format!("whole pipeline, every stage on, {count} rules"),
            measure(frames, |i| {
                let f = at(i);
                let now = tick();
                let verdict = pipeline.process(samples[f].source, &samples[f].bytes, now, &mut out);
                forwarded += u64::from(matches!(verdict, Verdict::Forward { .. }));
                black_box(out.len());
            }),
        ));
        assert_eq!(
            forwarded,
            (RUNS * frames) as u64,
            "every frame of the mix passes: {}",
            pipeline.counters()
        );
    }

    println!(
        "Policy pipeline cost, {frames} frames of a {MIX}-frame mix per run, median of {RUNS} runs"
    );
    println!();
    println!("| stage | ns/frame (median) | min | max |");
    println!("|---|---:|---:|---:|");
    for (stage, (median, min, max)) in &rows {
        println!("| {stage} | {median:.1} | {min:.1} | {max:.1} |");
    }
}
