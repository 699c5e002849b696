use super::*;
use crate::frame::build::*;
use crate::frame::{arp_op, ethertype, protocol, tcp_flags, MacAddr};
use bulkhead_config::{Cidr, Endpoint};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const A: Attachment = Attachment::Port(0);
const B: Attachment = Attachment::Port(1);
const C: Attachment = Attachment::Port(2);
const D: Attachment = Attachment::Port(3);
const E: Attachment = Attachment::Port(4);
const WAN: Attachment = Attachment::Uplink(0);
const REMOTE: MacAddr = MacAddr([0x02, 0xee, 0, 0, 0, 1]);

fn mac(port: usize) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, port as u8 + 1])
}

fn ip(port: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, port as u8 + 1)
}

fn port(i: usize, name: &str, vlan: Option<u16>) -> PortPolicy {
    PortPolicy {
        name: name.to_string(),
        mac: mac(i),
        ips: vec![Cidr {
            addr: IpAddr::V4(ip(i)),
            prefix: 32,
        }],
        vlan,
        rate: None,
    }
}

/// Ports a, b, c untagged, d and e in VLAN 10, uplink wan; everything allowed.
fn config() -> PolicyConfig {
    PolicyConfig {
        ports: vec![
            port(0, "a", None),
            port(1, "b", None),
            port(2, "c", None),
            port(3, "d", Some(10)),
            port(4, "e", Some(10)),
        ],
        uplinks: vec![UplinkPolicy {
            name: "wan".to_string(),
        }],
        rules: vec![Rule::allow(Endpoint::Any, Endpoint::Any)],
        ids: IdsConfig::default(),
    }
}

fn pipeline(config: &PolicyConfig) -> Pipeline {
    Pipeline::new(config).unwrap()
}

/// TCP from port `from` (its MAC and address) to port `to`.
fn tcp_frame(from: usize, to: usize, dport: u16) -> Vec<u8> {
    let segment = tcp(40000, dport, tcp_flags::SYN, &[]);
    ethernet(
        mac(to),
        mac(from),
        None,
        ethertype::IPV4,
        &ipv4(ip(from), ip(to), protocol::TCP, &segment),
    )
}

fn tcp_reply(from: usize, to: usize, sport: u16) -> Vec<u8> {
    let segment = tcp(sport, 40000, tcp_flags::SYN | tcp_flags::ACK, &[]);
    ethernet(
        mac(to),
        mac(from),
        None,
        ethertype::IPV4,
        &ipv4(ip(from), ip(to), protocol::TCP, &segment),
    )
}

fn broadcast_arp(from: usize) -> Vec<u8> {
    ethernet(
        MacAddr::BROADCAST,
        mac(from),
        None,
        ethertype::ARP,
        &arp(
            arp_op::REQUEST,
            mac(from),
            ip(from),
            MacAddr::default(),
            ip(9),
        ),
    )
}

fn run(
    pipeline: &mut Pipeline,
    source: Attachment,
    frame: &[u8],
    now_ns: u64,
) -> (Verdict, Vec<Attachment>) {
    let mut out = Vec::new();
    let verdict = pipeline.process(source, frame, now_ns, &mut out);
    (verdict, out)
}

fn forward(out: &[Attachment]) -> (Verdict, Vec<Attachment>) {
    (Verdict::Forward { vlan: None }, out.to_vec())
}

fn dropped(reason: DropReason) -> (Verdict, Vec<Attachment>) {
    (Verdict::Drop(reason), Vec::new())
}

fn port_counters(pipeline: &Pipeline, port: usize) -> &LinkCounters {
    &pipeline.counters().ports[port]
}

// ---- malformed ----

#[test]
fn runt_frame_is_dropped_counted_and_alerted() {
    let mut pipeline = pipeline(&config());

    let result = run(&mut pipeline, A, &[0x02; 10], 0);

    assert_eq!(result, dropped(DropReason::Malformed));
    let counters = port_counters(&pipeline, 0);
    assert_eq!(
        (
            counters.drops(DropReason::Malformed),
            counters.alerts(AlertClass::Malformed)
        ),
        (1, 1)
    );
    let alerts: Vec<Alert> = pipeline.drain_alerts().collect();
    assert_eq!(
        alerts[0].detail,
        AlertDetail::Malformed(crate::frame::Malformed::EthernetTruncated { len: 10 })
    );
}

#[test]
fn runt_frame_is_dropped_even_when_malformed_frames_are_only_logged() {
    let mut config = config();
    config.ids.on_malformed = AlertAction::Log;
    let mut pipeline = pipeline(&config);

    let result = run(&mut pipeline, A, &[0x02; 10], 0);

    assert_eq!(result, dropped(DropReason::Malformed));
}

#[test]
fn broken_ip_header_under_log_goes_on_as_plain_ethernet() {
    let mut config = config();
    config.ids.on_malformed = AlertAction::Log;
    let mut pipeline = pipeline(&config);
    let mut frame = tcp_frame(0, 1, 80);
    frame[14] = 0x44;

    let result = run(&mut pipeline, A, &frame, 0);

    assert_eq!(result, forward(&[B]));
    assert_eq!(port_counters(&pipeline, 0).alerts(AlertClass::Malformed), 1);
}

#[test]
fn broken_ip_header_logged_does_not_match_a_rule_with_ip_conditions() {
    let mut config = config();
    config.ids.on_malformed = AlertAction::Log;
    config.rules = vec![Rule {
        protocol: Some(protocol::TCP),
        ..Rule::allow(Endpoint::Any, Endpoint::Any)
    }];
    let mut pipeline = pipeline(&config);
    let mut frame = tcp_frame(0, 1, 80);
    frame[14] = 0x44;

    let result = run(&mut pipeline, A, &frame, 0);

    assert_eq!(result, dropped(DropReason::FirewallDenied));
}

#[test]
fn vlan_tagged_frame_from_an_access_port_is_malformed() {
    let mut pipeline = pipeline(&config());
    let frame = ethernet(
        mac(4),
        mac(3),
        Some(10),
        ethertype::ARP,
        &arp(arp_op::REQUEST, mac(3), ip(3), MacAddr::default(), ip(4)),
    );

    let result = run(&mut pipeline, D, &frame, 0);

    assert_eq!(result, dropped(DropReason::Malformed));
    let alert = pipeline.drain_alerts().next().unwrap();
    assert_eq!(alert.detail, AlertDetail::TaggedFrame { vid: 10 });
}

// ---- spoofing ----

#[test]
fn spoofed_source_mac_is_dropped_counted_and_alerted_with_the_mac() {
    let mut pipeline = pipeline(&config());
    let mut frame = tcp_frame(0, 1, 80);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);

    let result = run(&mut pipeline, A, &frame, 0);

    assert_eq!(result, dropped(DropReason::Spoofed));
    assert_eq!(port_counters(&pipeline, 0).drops(DropReason::Spoofed), 1);
    let alert = pipeline.drain_alerts().next().unwrap();
    assert_eq!((alert.name.as_ref(), alert.class), ("a", AlertClass::Spoof));
    assert_eq!(
        alert.to_string(),
        "port a: spoof alert (source MAC 02:00:00:00:00:77), frame dropped"
    );
}

#[test]
fn spoofed_source_ip_is_dropped() {
    let mut pipeline = pipeline(&config());
    let segment = tcp(1, 80, tcp_flags::SYN, &[]);
    let frame = ethernet(
        mac(1),
        mac(0),
        None,
        ethertype::IPV4,
        &ipv4(Ipv4Addr::new(10, 9, 9, 9), ip(1), protocol::TCP, &segment),
    );

    let result = run(&mut pipeline, A, &frame, 0);

    assert_eq!(result, dropped(DropReason::Spoofed));
}

#[test]
fn arp_claiming_another_port_address_is_dropped() {
    let mut pipeline = pipeline(&config());
    let frame = ethernet(
        MacAddr::BROADCAST,
        mac(0),
        None,
        ethertype::ARP,
        &arp(arp_op::REPLY, mac(0), ip(1), MacAddr::BROADCAST, ip(1)),
    );

    let result = run(&mut pipeline, A, &frame, 0);

    assert_eq!(result, dropped(DropReason::Spoofed));
    let alert = pipeline.drain_alerts().next().unwrap();
    assert_eq!(
        alert.detail,
        AlertDetail::Spoofed(spoof::Spoofed::ArpSenderIp(ip(1)))
    );
}

#[test]
fn spoof_under_log_is_alerted_and_let_through() {
    let mut config = config();
    config.ids.on_spoof = AlertAction::Log;
    let mut pipeline = pipeline(&config);
    let mut frame = tcp_frame(0, 1, 80);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);

    let result = run(&mut pipeline, A, &frame, 0);

    assert_eq!(result, forward(&[B]));
    assert_eq!(port_counters(&pipeline, 0).alerts(AlertClass::Spoof), 1);
}

#[test]
fn frames_from_uplinks_are_not_spoof_checked() {
    let mut pipeline = pipeline(&config());
    let segment = tcp(1, 80, tcp_flags::SYN, &[]);
    let frame = ethernet(
        mac(0),
        REMOTE,
        None,
        ethertype::IPV4,
        &ipv4(
            Ipv4Addr::new(192, 168, 1, 1),
            ip(0),
            protocol::TCP,
            &segment,
        ),
    );

    let result = run(&mut pipeline, WAN, &frame, 0);

    assert_eq!(result, forward(&[A]));
}

#[test]
fn spoofing_ten_thousand_times_a_second_queues_one_alert_and_counts_all() {
    let mut pipeline = pipeline(&config());
    let mut frame = tcp_frame(0, 1, 80);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);

    (0..10_000u64).for_each(|i| {
        run(&mut pipeline, A, &frame, i * 100_000);
    });

    let alerts = pipeline.drain_alerts().count();
    assert_eq!(
        (
            alerts,
            port_counters(&pipeline, 0).alerts(AlertClass::Spoof)
        ),
        (1, 10_000)
    );
}

// ---- quarantine ----

#[test]
fn quarantined_port_loses_every_frame_until_it_reconnects() {
    let mut config = config();
    config.ids.on_spoof = AlertAction::Quarantine;
    let mut pipeline = pipeline(&config);
    let mut spoofed = tcp_frame(0, 1, 80);
    spoofed[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);
    let good = tcp_frame(0, 1, 80);

    let first = run(&mut pipeline, A, &spoofed, 0);
    let during = run(&mut pipeline, A, &good, S);
    let quarantined = pipeline.is_quarantined(0);
    pipeline.port_reconnected(0);
    let after = run(&mut pipeline, A, &good, 2 * S);

    assert_eq!(
        (first, during),
        (
            dropped(DropReason::Spoofed),
            dropped(DropReason::Quarantined)
        )
    );
    assert_eq!((quarantined, after), (true, forward(&[B])));
}

#[test]
fn quarantine_of_one_port_leaves_the_others_alone() {
    let mut config = config();
    config.ids.on_spoof = AlertAction::Quarantine;
    let mut pipeline = pipeline(&config);
    let mut spoofed = tcp_frame(0, 1, 80);
    spoofed[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x77]);
    run(&mut pipeline, A, &spoofed, 0);

    let other = run(&mut pipeline, B, &tcp_frame(1, 2, 80), 0);

    assert_eq!(other, forward(&[C]));
}

#[test]
fn quarantine_action_on_an_uplink_drops_without_quarantining() {
    let mut config = config();
    config.ids.on_malformed = AlertAction::Quarantine;
    let mut pipeline = pipeline(&config);
    let mut broken = tcp_frame(0, 1, 80);
    broken[14] = 0x44;

    let first = run(&mut pipeline, WAN, &broken, 0);
    let next = run(&mut pipeline, WAN, &tcp_frame(0, 1, 80), 0);

    assert_eq!(
        (first, next),
        (dropped(DropReason::Malformed), forward(&[B]))
    );
    assert_eq!(
        pipeline.drain_alerts().next().map(|a| a.action),
        Some(AlertAction::Drop)
    );
}

// ---- rate limiting ----

#[test]
fn rate_limited_port_passes_rate_times_five_seconds_plus_burst_within_one_percent() {
    let mut config = config();
    config.ports[0].rate = Some(RateLimit {
        bytes_per_s: Some(2_000_000),
        burst_bytes: 100_000,
        packets_per_s: None,
        burst_packets: 1,
    });
    let mut pipeline = pipeline(&config);
    let frame = ethernet(
        mac(1),
        mac(0),
        None,
        ethertype::IPV4,
        &ipv4(ip(0), ip(1), protocol::UDP, &udp(1, 2, &[0; 1400])),
    );

    (0..50_000u64).for_each(|i| {
        run(&mut pipeline, A, &frame, i * 100_000);
    });

    let counters = port_counters(&pipeline, 0);
    let passed = (counters.frames_in - counters.dropped()) * frame.len() as u64;
    let expected = 2_000_000.0 * 5.0 + 100_000.0;
    let error = (passed as f64 - expected).abs() / expected;
    assert!(
        error < 0.01,
        "passed {passed} bytes, expected {expected}: {error:.4}"
    );
    assert_eq!(counters.drops(DropReason::RateLimited), counters.dropped());
}

#[test]
fn unlimited_port_passes_every_frame() {
    let mut pipeline = pipeline(&config());
    let frame = ethernet(
        mac(1),
        mac(0),
        None,
        ethertype::IPV4,
        &ipv4(ip(0), ip(1), protocol::UDP, &udp(1, 2, &[0; 1400])),
    );

    let passed = (0..50_000u64)
        .filter(|i| {
            run(&mut pipeline, A, &frame, i * 100_000).0 != Verdict::Drop(DropReason::RateLimited)
        })
        .count();

    assert_eq!(passed, 50_000);
}

// ---- flood and scan ----

#[test]
fn frames_past_the_flood_threshold_are_dropped_and_alerted() {
    let mut config = config();
    config.ids.flood_pps = Some(100);
    let mut pipeline = pipeline(&config);
    let frame = tcp_frame(0, 1, 80);

    let verdicts: Vec<Verdict> = (0..110u64)
        .map(|i| run(&mut pipeline, A, &frame, i * MS).0)
        .collect();

    assert!(verdicts[..100]
        .iter()
        .all(|v| *v == Verdict::Forward { vlan: None }));
    assert!(verdicts[100..]
        .iter()
        .all(|v| *v == Verdict::Drop(DropReason::Flood)));
    assert_eq!(port_counters(&pipeline, 0).alerts(AlertClass::Flood), 10);
}

#[test]
fn rate_limited_frames_do_not_count_towards_a_flood() {
    let mut config = config();
    config.ids.flood_pps = Some(100);
    config.ports[0].rate = Some(RateLimit {
        bytes_per_s: None,
        burst_bytes: 0,
        packets_per_s: Some(50),
        burst_packets: 50,
    });
    let mut pipeline = pipeline(&config);
    let frame = tcp_frame(0, 1, 80);

    (0..1_000u64).for_each(|i| {
        run(&mut pipeline, A, &frame, i * 100_000);
    });

    assert_eq!(port_counters(&pipeline, 0).alerts(AlertClass::Flood), 0);
}

#[test]
fn port_scan_reaching_the_threshold_is_alerted_and_logged_frames_go_on() {
    let mut config = config();
    config.ids.scan_ports = Some(20);
    config.ids.scan_window_ms = 1_000;
    config.ids.on_scan = AlertAction::Log;
    let mut pipeline = pipeline(&config);

    let forwarded = (1..=30u16)
        .filter(|&p| {
            run(&mut pipeline, A, &tcp_frame(0, 1, p), u64::from(p) * MS).0
                == Verdict::Forward { vlan: None }
        })
        .count();

    assert_eq!(
        (
            forwarded,
            port_counters(&pipeline, 0).alerts(AlertClass::Scan)
        ),
        (30, 11)
    );
    let alert = pipeline.drain_alerts().next().unwrap();
    assert_eq!(alert.detail, AlertDetail::Scan { pairs: 20 });
}

#[test]
fn scan_drop_blocks_new_pairs_but_not_known_ones() {
    let mut config = config();
    config.ids.scan_ports = Some(5);
    let mut pipeline = pipeline(&config);
    (1..=10u16).for_each(|p| {
        run(&mut pipeline, A, &tcp_frame(0, 1, p), 0);
    });

    let known = run(&mut pipeline, A, &tcp_frame(0, 1, 1), MS);
    let new = run(&mut pipeline, A, &tcp_frame(0, 1, 99), MS);

    assert_eq!((known, new), (forward(&[B]), dropped(DropReason::Scan)));
}

// ---- switching ----

#[test]
fn unicast_goes_to_the_destination_port_only() {
    let mut pipeline = pipeline(&config());

    let result = run(&mut pipeline, A, &tcp_frame(0, 2, 80), 0);

    assert_eq!(result, forward(&[C]));
}

#[test]
fn broadcast_goes_to_every_other_untagged_port_and_the_uplink() {
    let mut pipeline = pipeline(&config());

    let result = run(&mut pipeline, B, &broadcast_arp(1), 0);

    assert_eq!(result, forward(&[A, C, WAN]));
}

#[test]
fn broadcast_in_a_vlan_reaches_only_that_vlan_and_the_uplink() {
    let mut pipeline = pipeline(&config());

    let result = run(&mut pipeline, D, &broadcast_arp(3), 0);

    assert_eq!(result, (Verdict::Forward { vlan: Some(10) }, vec![E, WAN]));
}

#[test]
fn unicast_across_vlans_does_not_arrive() {
    let mut pipeline = pipeline(&config());

    let (_, out) = run(&mut pipeline, A, &tcp_frame(0, 3, 80), 0);

    assert!(!out.contains(&D));
}

#[test]
fn tagged_frame_from_the_uplink_reaches_ports_of_its_vlan() {
    let mut pipeline = pipeline(&config());
    let frame = ethernet(
        MacAddr::BROADCAST,
        REMOTE,
        Some(10),
        ethertype::ARP,
        &arp(
            arp_op::REQUEST,
            REMOTE,
            Ipv4Addr::new(10, 1, 0, 1),
            MacAddr::default(),
            ip(3),
        ),
    );

    let result = run(&mut pipeline, WAN, &frame, 0);

    assert_eq!(result, (Verdict::Forward { vlan: Some(10) }, vec![D, E]));
}

#[test]
fn mac_learned_from_the_uplink_is_reached_by_unicast_until_it_ages_out() {
    let mut pipeline = pipeline(&config());
    let from_remote = ethernet(
        MacAddr::BROADCAST,
        REMOTE,
        None,
        ethertype::ARP,
        &arp(
            arp_op::REQUEST,
            REMOTE,
            Ipv4Addr::new(10, 1, 0, 1),
            MacAddr::default(),
            ip(0),
        ),
    );
    let to_remote = ethernet(
        REMOTE,
        mac(0),
        None,
        ethertype::IPV4,
        &ipv4(
            ip(0),
            Ipv4Addr::new(10, 1, 0, 1),
            protocol::UDP,
            &udp(1, 2, &[]),
        ),
    );
    run(&mut pipeline, WAN, &from_remote, 0);

    let learned = run(&mut pipeline, A, &to_remote, 10 * S);
    let aged = run(&mut pipeline, A, &to_remote, switch::AGEING_NS + S);

    assert_eq!((learned, aged), (forward(&[WAN]), forward(&[B, C, WAN])));
}

#[test]
fn frame_from_the_uplink_to_a_mac_behind_it_has_no_destination() {
    let mut pipeline = pipeline(&config());
    let frame = ethernet(
        REMOTE,
        MacAddr([0x02, 0xee, 0, 0, 0, 2]),
        None,
        ethertype::IPV4,
        &ipv4(ip(0), ip(1), protocol::UDP, &udp(1, 2, &[])),
    );
    run(&mut pipeline, WAN, &broadcast_from(REMOTE), 0);

    let result = run(&mut pipeline, WAN, &frame, 0);

    assert_eq!(result, dropped(DropReason::NoDestination));
}

fn broadcast_from(source: MacAddr) -> Vec<u8> {
    ethernet(MacAddr::BROADCAST, source, None, 0x88b5, &[0; 46])
}

// ---- firewall ----

#[test]
fn without_a_rule_between_two_ports_their_frames_are_denied_and_counted() {
    let mut config = config();
    config.rules.clear();
    let mut pipeline = pipeline(&config);

    let result = run(&mut pipeline, A, &tcp_frame(0, 1, 80), 0);

    assert_eq!(result, dropped(DropReason::FirewallDenied));
    assert_eq!(
        port_counters(&pipeline, 0).drops(DropReason::FirewallDenied),
        1
    );
}

#[test]
fn allowed_service_answers_through_a_both_ways_rule_but_not_a_one_way_rule() {
    let rule = |both_ways| Rule {
        both_ways,
        protocol: Some(protocol::TCP),
        dst_ports: Some((80, 80)),
        ..Rule::allow(Endpoint::Port(0), Endpoint::Port(1))
    };
    let mut two_way = config();
    two_way.rules = vec![rule(true)];
    let mut one_way = config();
    one_way.rules = vec![rule(false)];
    let (mut two_way, mut one_way) = (pipeline(&two_way), pipeline(&one_way));

    let results = (
        run(&mut two_way, A, &tcp_frame(0, 1, 80), 0),
        run(&mut two_way, B, &tcp_reply(1, 0, 80), 0),
        run(&mut one_way, B, &tcp_reply(1, 0, 80), 0),
    );

    assert_eq!(
        results,
        (
            forward(&[B]),
            forward(&[A]),
            dropped(DropReason::FirewallDenied)
        )
    );
}

#[test]
fn broadcast_reaches_only_the_destinations_a_rule_allows() {
    let mut config = config();
    config.rules = vec![Rule::allow(Endpoint::Port(0), Endpoint::Port(2))];
    let mut pipeline = pipeline(&config);

    let result = run(&mut pipeline, A, &broadcast_arp(0), 0);

    assert_eq!(result, forward(&[C]));
}

// ---- counters and the I/O layer ----

#[test]
fn delivered_and_ring_full_frames_are_counted_at_the_destination() {
    let mut pipeline = pipeline(&config());

    pipeline.delivered(B, 60);
    pipeline.delivered(WAN, 1514);
    pipeline.dropped_at(B, DropReason::RingFull);

    let b = port_counters(&pipeline, 1);
    assert_eq!(
        (b.frames_out, b.bytes_out, b.drops(DropReason::RingFull)),
        (1, 60, 1)
    );
    assert_eq!(pipeline.counters().uplinks[0].bytes_out, 1514);
}

#[test]
fn counters_print_one_line_per_port_and_uplink() {
    let mut pipeline = pipeline(&config());
    run(&mut pipeline, A, &tcp_frame(0, 1, 80), 0);

    let lines: Vec<String> = pipeline.counters().lines().collect();

    assert_eq!(lines.len(), 6);
    assert!(
        lines[0].starts_with("port a frames_in=1 bytes_in=54 frames_out=0"),
        "{}",
        lines[0]
    );
    assert!(
        lines[5].starts_with("uplink wan frames_in=0"),
        "{}",
        lines[5]
    );
}

#[test]
fn unknown_source_index_is_dropped_and_counted_apart() {
    let mut pipeline = pipeline(&config());

    let result = run(&mut pipeline, Attachment::Port(99), &tcp_frame(0, 1, 80), 0);

    assert_eq!(
        (result, pipeline.counters().unknown_source),
        (dropped(DropReason::NoDestination), 1)
    );
}

#[test]
fn invalid_configuration_is_refused() {
    let mut config = config();
    config
        .rules
        .push(Rule::allow(Endpoint::Uplink(3), Endpoint::Any));

    let result = Pipeline::new(&config).map(|_| ());

    assert_eq!(
        result,
        Err(ConfigError::UnknownEndpoint {
            rule: 1,
            endpoint: Endpoint::Uplink(3)
        })
    );
}

/// Every stage on: rate limits, flood and scan detection, quarantine on spoofing.
fn hostile_config() -> PolicyConfig {
    let mut config = config();
    config.ports[0].rate = Some(RateLimit {
        bytes_per_s: Some(1_000_000),
        burst_bytes: 20_000,
        packets_per_s: Some(1_000),
        burst_packets: 20,
    });
    config.ids = IdsConfig {
        flood_pps: Some(50),
        scan_ports: Some(8),
        scan_window_ms: 100,
        on_spoof: AlertAction::Quarantine,
        on_malformed: AlertAction::Log,
        on_flood: AlertAction::Drop,
        on_scan: AlertAction::Log,
    };
    config.rules.insert(
        0,
        Rule {
            protocol: Some(protocol::TCP),
            dst_ports: Some((22, 22)),
            ..Rule::deny(Endpoint::Any, Endpoint::Any)
        },
    );
    config
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_frames_never_panic_and_every_frame_is_forwarded_or_dropped_once(
        frames in prop::collection::vec(
            (0usize..7, 0u64..50_000_000, prop_oneof![
                prop::collection::vec(any::<u8>(), 0..120),
                (0usize..5, 0usize..5, any::<u16>()).prop_map(|(f, t, p)| tcp_frame(f, t, p)),
                prop::collection::vec(any::<u8>(), 0..100).prop_map(|mut tail| {
                    let mut frame = tcp_frame(0, 1, 80);
                    let at = tail.len() % frame.len();
                    frame.truncate(at.max(14));
                    frame.append(&mut tail);
                    frame
                }),
            ]),
            1..24,
        ),
    ) {
        let mut pipeline = pipeline(&hostile_config());
        let mut out = Vec::new();
        let mut now = 0u64;
        let mut forwarded = 0u64;

        for (source, step, frame) in &frames {
            now += step;
            let source = match *source {
                port @ 0..=4 => Attachment::Port(port),
                other => Attachment::Uplink(other - 5),
            };
            let verdict = pipeline.process(source, frame, now, &mut out);
            prop_assert!(!out.contains(&source));
            prop_assert_eq!(matches!(verdict, Verdict::Forward { .. }), !out.is_empty());
            forwarded += u64::from(!out.is_empty());
        }

        let counters = pipeline.counters();
        let links = || counters.ports.iter().chain(&counters.uplinks);
        let frames_in: u64 = links().map(|l| l.frames_in).sum();
        let dropped: u64 = links().map(|l| l.dropped()).sum();
        prop_assert_eq!(frames_in + counters.unknown_source, frames.len() as u64);
        prop_assert_eq!(forwarded + dropped, frames_in);
    }
}
