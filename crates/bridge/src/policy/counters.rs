//! Counters per port and per uplink, and their one-line text form for the CLI.
//!
//! Fields, each a running total since the bridge started (a reconnect keeps them):
//!
//! - `frames_in`, `bytes_in`: frames the attachment sent into the bridge, dropped or not;
//! - `frames_out`, `bytes_out`: frames the I/O layer delivered to it
//!   ([`super::Pipeline::delivered`]);
//! - `drop_<reason>`: frames from it that the pipeline dropped, by [`DropReason`]; and
//!   `drop_ring_full`: frames to it that the I/O layer could not deliver
//!   ([`super::Pipeline::dropped_at`]);
//! - `alert_<class>`: frames from it that raised an alert of that [`AlertClass`], whatever
//!   the action, including those whose event-log record was suppressed;
//! - `quarantined` (ports): whether the port is quarantined now.

use std::fmt;
use std::sync::Arc;

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    Malformed,
    Spoofed,
    Quarantined,
    RateLimited,
    Flood,
    Scan,
    FirewallDenied,
    /// The switch found nowhere to send it (e.g. unicast to the sender's own MAC, or from an
    /// uplink to a MAC behind an uplink).
    NoDestination,
    /// The destination's receive ring had no room (reported by the I/O layer).
    RingFull,
}

impl DropReason {
    pub const COUNT: usize = 9;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::Spoofed,
        DropReason::Quarantined,
        DropReason::RateLimited,
        DropReason::Flood,
        DropReason::Scan,
        DropReason::FirewallDenied,
        DropReason::NoDestination,
        DropReason::RingFull,
    ];

    /// The name in counter lines (`drop_<name>`).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Spoofed => "spoofed",
            DropReason::Quarantined => "quarantined",
            DropReason::RateLimited => "rate_limited",
            DropReason::Flood => "flood",
            DropReason::Scan => "scan",
            DropReason::FirewallDenied => "firewall",
            DropReason::NoDestination => "no_destination",
            DropReason::RingFull => "ring_full",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// The intrusion-detection alert classes (`IdsPlan`'s `on_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertClass {
    Malformed,
    Spoof,
    Flood,
    Scan,
}

impl AlertClass {
    pub const COUNT: usize = 4;
    pub const ALL: [AlertClass; AlertClass::COUNT] = [
        AlertClass::Malformed,
        AlertClass::Spoof,
        AlertClass::Flood,
        AlertClass::Scan,
    ];

    /// The name in counter lines (`alert_<name>`) and alerts.
    pub const fn name(self) -> &'static str {
        match self {
            AlertClass::Malformed => "malformed",
            AlertClass::Spoof => "spoof",
            AlertClass::Flood => "flood",
            AlertClass::Scan => "scan",
        }
    }

    /// What a dropping action counts the frame as.
    pub const fn drop_reason(self) -> DropReason {
        match self {
            AlertClass::Malformed => DropReason::Malformed,
            AlertClass::Spoof => DropReason::Spoofed,
            AlertClass::Flood => DropReason::Flood,
            AlertClass::Scan => DropReason::Scan,
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// Whether counters belong to a port or an uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Port,
    Uplink,
}

/// The counters of one port or uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCounters {
    pub kind: LinkKind,
    pub name: Arc<str>,
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    drops: [u64; DropReason::COUNT],
    alerts: [u64; AlertClass::COUNT],
    pub quarantined: bool,
}

impl LinkCounters {
    pub(crate) fn new(kind: LinkKind, name: Arc<str>) -> LinkCounters {
        LinkCounters {
            kind,
            name,
            frames_in: 0,
            bytes_in: 0,
            frames_out: 0,
            bytes_out: 0,
            drops: [0; DropReason::COUNT],
            alerts: [0; AlertClass::COUNT],
            quarantined: false,
        }
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    pub fn alerts(&self, class: AlertClass) -> u64 {
        self.alerts.get(class.index()).copied().unwrap_or(0)
    }

    /// Frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub(crate) fn count_in(&mut self, bytes: usize) {
        self.frames_in += 1;
        self.bytes_in += bytes as u64;
    }

    pub(crate) fn count_out(&mut self, bytes: usize) {
        self.frames_out += 1;
        self.bytes_out += bytes as u64;
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        if let Some(n) = self.drops.get_mut(reason.index()) {
            *n += 1;
        }
    }

    pub(crate) fn count_alert(&mut self, class: AlertClass) {
        if let Some(n) = self.alerts.get_mut(class.index()) {
            *n += 1;
        }
    }
}

impl fmt::Display for LinkCounters {
    /// `port NAME frames_in=… bytes_in=… frames_out=… bytes_out=… drop_malformed=… …
    /// alert_scan=… quarantined=yes|no` (uplinks: `uplink NAME …`, no `quarantined`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            LinkKind::Port => "port",
            LinkKind::Uplink => "uplink",
        };
        write!(
            f,
            "{kind} {} frames_in={} bytes_in={} frames_out={} bytes_out={}",
            self.name, self.frames_in, self.bytes_in, self.frames_out, self.bytes_out
        )?;
        for reason in DropReason::ALL {
            write!(f, " drop_{}={}", reason.name(), self.drops(reason))?;
        }
        for class in AlertClass::ALL {
            write!(f, " alert_{}={}", class.name(), self.alerts(class))?;
        }
        if self.kind == LinkKind::Port {
            let quarantined = if self.quarantined { "yes" } else { "no" };
            write!(f, " quarantined={quarantined}")?;
        }
        Ok(())
    }
}

/// The counters of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// In port order.
    pub ports: Vec<LinkCounters>,
    /// In uplink order.
    pub uplinks: Vec<LinkCounters>,
    /// Alerts (with their suppressed repeats) lost because the queue was full.
    pub alerts_lost: u64,
    /// Frames handed in with a port or uplink index the bridge does not have (an I/O-layer
    /// bug, never a guest's doing).
    pub unknown_source: u64,
}

impl Counters {
    /// One line per port, then one per uplink (see [`LinkCounters`]'s `Display`).
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.ports
            .iter()
            .chain(&self.uplinks)
            .map(|link| link.to_string())
    }
}

impl fmt::Display for Counters {
    /// Every line of [`Counters::lines`], each ended by a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for link in self.ports.iter().chain(&self.uplinks) {
            writeln!(f, "{link}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_line_names_every_counter_in_order() {
        let mut port = LinkCounters::new(LinkKind::Port, Arc::from("web"));
        port.count_in(60);
        port.count_drop(DropReason::Spoofed);
        port.count_alert(AlertClass::Spoof);

        let line = port.to_string();

        assert_eq!(
            line,
            "port web frames_in=1 bytes_in=60 frames_out=0 bytes_out=0 drop_malformed=0 \
             drop_spoofed=1 drop_quarantined=0 drop_rate_limited=0 drop_flood=0 drop_scan=0 \
             drop_firewall=0 drop_no_destination=0 drop_ring_full=0 alert_malformed=0 \
             alert_spoof=1 alert_flood=0 alert_scan=0 quarantined=no"
        );
    }

    #[test]
    fn uplink_line_has_no_quarantine_field() {
        let uplink = LinkCounters::new(LinkKind::Uplink, Arc::from("wan"));

        let line = uplink.to_string();

        assert!(line.starts_with("uplink wan frames_in=0") && !line.contains(" quarantined="));
    }

    #[test]
    fn reason_and_class_names_follow_their_index() {
        let reasons: Vec<usize> = DropReason::ALL.iter().map(|r| r.index()).collect();
        let classes: Vec<usize> = AlertClass::ALL.iter().map(|c| c.index()).collect();

        assert_eq!((reasons, classes), ((0..9).collect(), (0..4).collect()));
    }
}
