//! The policy pipeline: what happens to one frame between the port or uplink it came from
//! and the ones it goes to. Pure decision logic, run by whichever bridge thread received the
//! frame (the I/O layer keeps the one [`Pipeline`] of a bridge behind a lock): no I/O,
//! no threads, no clock (time comes in as `now_ns`, any monotonic clock in nanoseconds), no
//! allocation per frame, bounded work per frame (the rules once per destination, at most
//! [`switch::PROBES`] MAC-table slots, at most twice the scan threshold of scan-table slots).
//!
//! # Stages
//!
//! A frame from `source` at `now_ns` passes, in order (the first that drops it ends it, and
//! the drop is counted at the source under its [`DropReason`]):
//!
//! 1. **Malformed** ([`crate::frame`]): a broken Ethernet header or VLAN tag is always
//!    dropped (there is nothing to switch); a broken network or transport header raises a
//!    malformed alert and is handled by `on_malformed` (under `Log` it goes on as plain
//!    Ethernet: rules with IP conditions do not match it and the IP spoof check is skipped).
//!    A frame from a port with an 802.1Q tag naming a VLAN is malformed too: ports are access
//!    ports, their VLAN is the port's (a priority tag, VLAN ID 0, is fine).
//! 2. **Spoof** (ports only, [`spoof`]): source MAC, ARP sender, source IP; `on_spoof`.
//! 3. **Quarantine** (ports only): every frame of a quarantined port is dropped, until
//!    [`Pipeline::port_reconnected`].
//! 4. **Rate limit** (ports with `rate`, [`rate`]): byte and frame token buckets.
//! 5. **Flood and scan detection** (ports only, [`ids`]), on frames the rate limit let
//!    through; `on_flood`, `on_scan`.
//! 6. **Switching** ([`switch`]): static port MACs, MACs learned behind uplinks, flooding of
//!    group and unknown destinations within the frame's VLAN; frames from an uplink go to
//!    ports only (split horizon); none: no destination.
//! 7. **Firewall** ([`firewall`]), for each candidate destination: the first matching rule
//!    decides, none: denied. If every candidate is denied, the frame is dropped as denied.
//!
//! An alert is counted in the source's `alert_<class>`, queued for the event log within the
//! limits of [`alerts`], and does what its class's [`AlertAction`] says: `Log` lets the frame
//! go on, `Drop` drops it, `Quarantine` drops it and quarantines the port. Uplinks are not
//! quarantined (one bad frame would cut off a whole host): there `Quarantine` acts as
//! `Drop`. Flood and scan detection, like the spoof check, are per port.
//!
//! # API for the I/O layer
//!
//! ```text
//! let mut pipeline = Pipeline::new(&PolicyConfig::from(&bridge_plan))?;
//! let mut out = Vec::new();                       // reused: no allocation after the first
//! match pipeline.process(source, frame, now_ns, &mut out) {
//!     Verdict::Forward { vlan } => for &dest in &out {
//!         // to a port: the frame without any 802.1Q tag;
//!         // to an uplink: tagged with `vlan` if Some, untagged if None.
//!         if sent { pipeline.delivered(dest, len) }
//!         else { pipeline.dropped_at(dest, DropReason::RingFull) }   // its ring was full
//!     },
//!     Verdict::Drop(_) => {}                      // already counted
//! }
//! for alert in pipeline.drain_alerts() { event_log.append(alert.to_string()) }
//! pipeline.port_reconnected(port);                // a port's frontend connected again
//! println!("{}", pipeline.counters());            // one line per port and uplink
//! ```
//!
//! Drain alerts often (e.g. after every batch of frames): the queue holds
//! [`alerts::ALERT_QUEUE_CAPACITY`] and loses (and counts) what does not fit.

pub mod addr;
pub mod alerts;
pub mod config;
pub mod counters;
pub mod firewall;
pub mod ids;
pub mod rate;
pub mod spoof;
pub mod switch;

use std::sync::Arc;

use bulkhead_config::AlertAction;

use crate::frame::{Frame, Network};
pub use alerts::{Alert, AlertDetail};
pub use config::{ConfigError, IdsConfig, PolicyConfig, PortPolicy, RateLimit, Rule, UplinkPolicy};
pub use counters::{AlertClass, Counters, DropReason, LinkCounters, LinkKind};
use firewall::{FlowKey, IpFlow};

/// A port or an uplink of the bridge, by index into [`PolicyConfig::ports`] or
/// [`PolicyConfig::uplinks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attachment {
    Port(usize),
    Uplink(usize),
}

/// Where a frame comes from.
pub type Source = Attachment;
/// Where a frame goes.
pub type Destination = Attachment;

/// What [`Pipeline::process`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the frame to every destination in `out`; `vlan` is its VLAN (`None`: the
    /// untagged LAN), for the tag on uplinks.
    Forward { vlan: Option<u16> },
    /// Dropped (and counted); `out` is empty.
    Drop(DropReason),
}

#[derive(Debug, Clone)]
struct PortState {
    spoof: spoof::SpoofCheck,
    vlan: Option<u16>,
    rate: Option<rate::RateLimiter>,
    flood: Option<ids::FloodDetector>,
    scan: Option<ids::ScanDetector>,
}

/// The pipeline of one bridge.
#[derive(Debug, Clone)]
pub struct Pipeline {
    ports: Vec<PortState>,
    uplinks: usize,
    switch: switch::Switch,
    firewall: firewall::Firewall,
    ids: IdsConfig,
    counters: Counters,
    alerts: alerts::AlertQueue,
}

impl Pipeline {
    /// Builds the pipeline; refuses a configuration that fails [`PolicyConfig::check`].
    pub fn new(config: &PolicyConfig) -> Result<Pipeline, ConfigError> {
        config.check()?;
        let ids = config.ids;
        let ports = config
            .ports
            .iter()
            .map(|port| PortState {
                spoof: spoof::SpoofCheck::new(port.mac, &port.ips),
                vlan: port.vlan,
                rate: port.rate.as_ref().map(rate::RateLimiter::new),
                flood: ids.flood_pps.map(ids::FloodDetector::new),
                scan: ids
                    .scan_ports
                    .map(|threshold| ids::ScanDetector::new(threshold, ids.scan_window_ms)),
            })
            .collect();
        let statics: Vec<_> = config.ports.iter().map(|p| (p.mac, p.vlan)).collect();
        let counters = Counters {
            ports: config
                .ports
                .iter()
                .map(|p| LinkCounters::new(LinkKind::Port, Arc::from(p.name.as_str())))
                .collect(),
            uplinks: config
                .uplinks
                .iter()
                .map(|u| LinkCounters::new(LinkKind::Uplink, Arc::from(u.name.as_str())))
                .collect(),
            alerts_lost: 0,
            unknown_source: 0,
        };
        Ok(Pipeline {
            ports,
            uplinks: config.uplinks.len(),
            switch: switch::Switch::new(&statics, config.uplinks.len()),
            firewall: firewall::Firewall::new(&config.rules),
            ids,
            counters,
            alerts: alerts::AlertQueue::new(config.ports.len() + config.uplinks.len()),
        })
    }

    /// Runs `frame` from `source` at `now_ns` through every stage; on
    /// [`Verdict::Forward`], `out` holds the destinations (never the source), else it is
    /// empty. A `source` the bridge does not have is dropped as
    /// [`DropReason::NoDestination`] and counted in [`Counters::unknown_source`].
    pub fn process(
        &mut self,
        source: Source,
        frame: &[u8],
        now_ns: u64,
        out: &mut Vec<Destination>,
    ) -> Verdict {
        out.clear();
        out.reserve(self.ports.len() + self.uplinks);
        let Some(link) = self.link_mut(source) else {
            self.counters.unknown_source += 1;
            return Verdict::Drop(DropReason::NoDestination);
        };
        link.count_in(frame.len());
        match self.run(source, frame, now_ns, out) {
            Ok(vlan) => Verdict::Forward { vlan },
            Err(reason) => {
                out.clear();
                if let Some(link) = self.link_mut(source) {
                    link.count_drop(reason);
                }
                Verdict::Drop(reason)
            }
        }
    }

    fn run(
        &mut self,
        source: Source,
        bytes: &[u8],
        now_ns: u64,
        out: &mut Vec<Destination>,
    ) -> Result<Option<u16>, DropReason> {
        let frame = match Frame::parse_lenient(bytes) {
            Ok(frame) => frame,
            Err(reason) => {
                let action = match self.action(source, AlertClass::Malformed) {
                    AlertAction::Log => AlertAction::Drop,
                    action => action,
                };
                let detail = AlertDetail::Malformed(reason);
                self.raise(source, AlertClass::Malformed, detail, action, now_ns)?;
                return Err(DropReason::Malformed);
            }
        };
        if let Network::Malformed(reason) = frame.network {
            let detail = AlertDetail::Malformed(reason);
            self.alert(source, AlertClass::Malformed, detail, now_ns)?;
        }
        let key = FlowKey::of(&frame);
        let vlan = match source {
            Attachment::Uplink(_) => frame.vlan_id(),
            Attachment::Port(p) => {
                if let Some(vid) = frame.vlan_id() {
                    let detail = AlertDetail::TaggedFrame { vid };
                    self.alert(source, AlertClass::Malformed, detail, now_ns)?;
                }
                self.port_stages(p, &frame, &key, now_ns)?
            }
        };
        self.switch
            .forward(source, vlan, frame.dst, frame.src, now_ns, out);
        if out.is_empty() {
            return Err(DropReason::NoDestination);
        }
        out.retain(|&dest| self.firewall.allows(source, dest, &key));
        if out.is_empty() {
            return Err(DropReason::FirewallDenied);
        }
        Ok(vlan)
    }

    /// Spoof check, quarantine, rate limit, flood and scan detection; the port's VLAN.
    fn port_stages(
        &mut self,
        p: usize,
        frame: &Frame<'_>,
        key: &FlowKey,
        now_ns: u64,
    ) -> Result<Option<u16>, DropReason> {
        let source = Attachment::Port(p);
        let Some(port) = self.ports.get(p) else {
            return Err(DropReason::NoDestination);
        };
        let vlan = port.vlan;
        if let Err(spoofed) = port.spoof.check(frame) {
            let detail = AlertDetail::Spoofed(spoofed);
            self.alert(source, AlertClass::Spoof, detail, now_ns)?;
        }
        if self.counters.ports.get(p).is_some_and(|c| c.quarantined) {
            return Err(DropReason::Quarantined);
        }
        let Some(port) = self.ports.get_mut(p) else {
            return Err(DropReason::NoDestination);
        };
        if let Some(rate) = &mut port.rate {
            if !rate.admit(frame.len(), now_ns) {
                return Err(DropReason::RateLimited);
            }
        }
        let flood = port.flood.as_mut().and_then(|f| f.observe(now_ns));
        let scan = match (&mut port.scan, key.ip) {
            (
                Some(scan),
                Some(IpFlow {
                    dst,
                    ports: Some((_, dst_port)),
                    ..
                }),
            ) => scan.observe(dst, dst_port, now_ns),
            _ => None,
        };
        if let Some(frames) = flood {
            let detail = AlertDetail::Flood { frames };
            self.alert(source, AlertClass::Flood, detail, now_ns)?;
        }
        if let Some(pairs) = scan {
            let detail = AlertDetail::Scan { pairs };
            self.alert(source, AlertClass::Scan, detail, now_ns)?;
        }
        Ok(vlan)
    }

    /// The action of `class` as applied at `source` (no quarantine for uplinks).
    fn action(&self, source: Source, class: AlertClass) -> AlertAction {
        let action = match class {
            AlertClass::Malformed => self.ids.on_malformed,
            AlertClass::Spoof => self.ids.on_spoof,
            AlertClass::Flood => self.ids.on_flood,
            AlertClass::Scan => self.ids.on_scan,
        };
        match (source, action) {
            (Attachment::Uplink(_), AlertAction::Quarantine) => AlertAction::Drop,
            _ => action,
        }
    }

    /// Raises an alert with its class's action.
    fn alert(
        &mut self,
        source: Source,
        class: AlertClass,
        detail: AlertDetail,
        now_ns: u64,
    ) -> Result<(), DropReason> {
        let action = self.action(source, class);
        self.raise(source, class, detail, action, now_ns)
    }

    /// Counts, queues (throttled) and applies `action`; `Err` if the frame is dropped.
    fn raise(
        &mut self,
        source: Source,
        class: AlertClass,
        detail: AlertDetail,
        action: AlertAction,
        now_ns: u64,
    ) -> Result<(), DropReason> {
        let index = self.link_index(source);
        let link = match source {
            Attachment::Port(p) => self.counters.ports.get_mut(p),
            Attachment::Uplink(u) => self.counters.uplinks.get_mut(u),
        };
        let Some(link) = link else {
            return Err(class.drop_reason());
        };
        link.count_alert(class);
        if action == AlertAction::Quarantine {
            link.quarantined = true;
        }
        // The name is shared only when the alert is queued: no atomic per throttled alert.
        let name = &link.name;
        self.alerts.offer(index, class, now_ns, |suppressed| Alert {
            source,
            name: Arc::clone(name),
            class,
            detail,
            action,
            at_ns: now_ns,
            suppressed,
        });
        self.counters.alerts_lost = self.alerts.lost();
        match action {
            AlertAction::Log => Ok(()),
            AlertAction::Drop | AlertAction::Quarantine => Err(class.drop_reason()),
        }
    }

    fn link_index(&self, link: Attachment) -> usize {
        match link {
            Attachment::Port(p) => p,
            Attachment::Uplink(u) => self.ports.len().saturating_add(u),
        }
    }

    fn link_mut(&mut self, link: Attachment) -> Option<&mut LinkCounters> {
        match link {
            Attachment::Port(p) => self.counters.ports.get_mut(p),
            Attachment::Uplink(u) => self.counters.uplinks.get_mut(u),
        }
    }

    /// The I/O layer delivered a frame of `bytes` bytes to `dest`.
    pub fn delivered(&mut self, dest: Destination, bytes: usize) {
        if let Some(link) = self.link_mut(dest) {
            link.count_out(bytes);
        }
    }

    /// The I/O layer could not deliver a frame to `dest` (normally
    /// [`DropReason::RingFull`]): counted at `dest`.
    pub fn dropped_at(&mut self, dest: Destination, reason: DropReason) {
        if let Some(link) = self.link_mut(dest) {
            link.count_drop(reason);
        }
    }

    /// The frontend of `port` connected again (its partition restarted): the quarantine
    /// ends, its buckets are full again, its flood and scan windows start over. Counters and
    /// alert throttles carry on.
    pub fn port_reconnected(&mut self, port: usize) {
        if let Some(link) = self.counters.ports.get_mut(port) {
            link.quarantined = false;
        }
        if let Some(state) = self.ports.get_mut(port) {
            if let Some(rate) = &mut state.rate {
                rate.fill();
            }
            if let Some(flood) = &mut state.flood {
                flood.reset();
            }
            if let Some(scan) = &mut state.scan {
                scan.reset();
            }
        }
    }

    /// Whether `port` is quarantined.
    pub fn is_quarantined(&self, port: usize) -> bool {
        self.counters.ports.get(port).is_some_and(|c| c.quarantined)
    }

    /// Every counter.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Takes the queued alerts, oldest first.
    pub fn drain_alerts(&mut self) -> impl Iterator<Item = Alert> + '_ {
        self.alerts.drain()
    }
}

#[cfg(test)]
mod tests {
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
                run(&mut pipeline, A, &frame, i * 100_000).0
                    != Verdict::Drop(DropReason::RateLimited)
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
}
