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
mod tests;
