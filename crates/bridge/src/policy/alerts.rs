//! Alerts for the event log, bounded twice over so that a hostile guest cannot flood it:
//!
//! - per (port or uplink, class), at most one alert is queued per [`ALERT_INTERVAL_NS`]
//!   (one second); the ones in between are counted and the next queued alert carries that
//!   count as `suppressed`;
//! - the queue holds at most [`ALERT_QUEUE_CAPACITY`] alerts, preallocated; an alert that
//!   finds it full is lost and counted ([`super::Counters::alerts_lost`], with its
//!   suppressed count).
//!
//! Every alert is counted in the link's counters whether or not it is queued. Queuing does
//! not allocate: names are shared (`Arc<str>`), details are values.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bulkhead_config::AlertAction;

use super::counters::AlertClass;
use super::spoof::Spoofed;
use super::Attachment;
use crate::frame::Malformed;

/// At most one queued alert per link and class in this interval (1 s).
pub const ALERT_INTERVAL_NS: u64 = 1_000_000_000;
/// Alerts held until the I/O layer drains them.
pub const ALERT_QUEUE_CAPACITY: usize = 256;

/// What raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertDetail {
    Malformed(Malformed),
    /// A frame from a port carried an 802.1Q tag naming a VLAN (ports are access ports).
    TaggedFrame {
        vid: u16,
    },
    Spoofed(Spoofed),
    /// Frames within the current one-second window, this one included.
    Flood {
        frames: u32,
    },
    /// Distinct (destination address, destination port) pairs in the scan window (past the
    /// threshold: the threshold + 1).
    Scan {
        pairs: u32,
    },
}

impl fmt::Display for AlertDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertDetail::Malformed(reason) => write!(f, "{reason}"),
            AlertDetail::TaggedFrame { vid } => write!(f, "VLAN {vid} tag on an access port"),
            AlertDetail::Spoofed(spoofed) => write!(f, "{spoofed}"),
            AlertDetail::Flood { frames } => write!(f, "{frames} frames within one second"),
            AlertDetail::Scan { pairs } => {
                write!(
                    f,
                    "{pairs} destination address and port pairs in the window"
                )
            }
        }
    }
}

/// One alert for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub source: Attachment,
    /// The port's or uplink's name.
    pub name: Arc<str>,
    pub class: AlertClass,
    pub detail: AlertDetail,
    /// What was done: the configured action (on an uplink, `Quarantine` is applied as
    /// `Drop`; a frame too broken to switch is dropped even under `Log`).
    pub action: AlertAction,
    pub at_ns: u64,
    /// Alerts of this link and class not queued since the previous one that was.
    pub suppressed: u64,
}

impl fmt::Display for Alert {
    /// `port NAME: spoof alert (source MAC 02:00:00:00:00:09), frame dropped; 41 more
    /// suppressed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            Attachment::Port(_) => "port",
            Attachment::Uplink(_) => "uplink",
        };
        let action = match self.action {
            AlertAction::Log => "frame let through",
            AlertAction::Drop => "frame dropped",
            AlertAction::Quarantine => "frame dropped, port quarantined",
        };
        write!(
            f,
            "{kind} {}: {} alert ({}), {action}",
            self.name,
            self.class.name(),
            self.detail
        )?;
        if self.suppressed > 0 {
            write!(f, "; {} more suppressed", self.suppressed)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Throttle {
    last_ns: Option<u64>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(suppressed since the last)` if an alert may be queued at `now_ns`.
    fn admit(&mut self, now_ns: u64) -> Option<u64> {
        let due = self
            .last_ns
            .is_none_or(|last| now_ns.saturating_sub(last) >= ALERT_INTERVAL_NS);
        if due {
            self.last_ns = Some(now_ns);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// The throttles and the bounded queue.
#[derive(Debug, Clone)]
pub struct AlertQueue {
    queue: VecDeque<Alert>,
    /// Per link (ports, then uplinks), per class.
    throttles: Vec<[Throttle; AlertClass::COUNT]>,
    lost: u64,
}

impl AlertQueue {
    /// For `links` ports and uplinks.
    pub fn new(links: usize) -> AlertQueue {
        AlertQueue {
            queue: VecDeque::with_capacity(ALERT_QUEUE_CAPACITY),
            throttles: vec![[Throttle::default(); AlertClass::COUNT]; links],
            lost: 0,
        }
    }

    /// Queues the alert `make(suppressed)` for link `link` unless the throttle of its class
    /// holds it back or the queue is full.
    pub fn offer(
        &mut self,
        link: usize,
        class: AlertClass,
        now_ns: u64,
        make: impl FnOnce(u64) -> Alert,
    ) {
        let Some(throttle) = self
            .throttles
            .get_mut(link)
            .and_then(|t| t.get_mut(class.index()))
        else {
            return;
        };
        let Some(suppressed) = throttle.admit(now_ns) else {
            return;
        };
        if self.queue.len() >= ALERT_QUEUE_CAPACITY {
            self.lost += 1 + suppressed;
            return;
        }
        self.queue.push_back(make(suppressed));
    }

    /// Takes every queued alert, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = Alert> + '_ {
        self.queue.drain(..)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Alerts lost to a full queue, with their suppressed repeats.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MacAddr;

    const MS: u64 = 1_000_000;

    fn alert(suppressed: u64) -> Alert {
        Alert {
            source: Attachment::Port(0),
            name: Arc::from("web"),
            class: AlertClass::Spoof,
            detail: AlertDetail::Spoofed(Spoofed::SourceMac(MacAddr([2, 0, 0, 0, 0, 9]))),
            action: AlertAction::Drop,
            at_ns: 0,
            suppressed,
        }
    }

    #[test]
    fn one_alert_per_second_is_queued_and_the_rest_counted() {
        let mut queue = AlertQueue::new(1);

        (0..1_000u64).for_each(|i| queue.offer(0, AlertClass::Spoof, i * MS, alert));

        let queued: Vec<u64> = queue.drain().map(|a| a.suppressed).collect();
        assert_eq!(queued, [0]);
    }

    #[test]
    fn next_alert_after_the_interval_carries_the_suppressed_count() {
        let mut queue = AlertQueue::new(1);
        (0..1_000u64).for_each(|i| queue.offer(0, AlertClass::Spoof, i * MS, alert));

        queue.offer(0, AlertClass::Spoof, 1_500 * MS, alert);

        let queued: Vec<u64> = queue.drain().map(|a| a.suppressed).collect();
        assert_eq!(queued, [0, 999]);
    }

    #[test]
    fn classes_and_links_are_throttled_separately() {
        let mut queue = AlertQueue::new(2);

        queue.offer(0, AlertClass::Spoof, 0, alert);
        queue.offer(0, AlertClass::Flood, 0, alert);
        queue.offer(1, AlertClass::Spoof, 0, alert);

        assert_eq!(queue.len(), 3);
    }

    #[test]
    fn full_queue_loses_alerts_and_counts_them() {
        let links = ALERT_QUEUE_CAPACITY + 10;
        let mut queue = AlertQueue::new(links);

        (0..links).for_each(|link| queue.offer(link, AlertClass::Scan, 0, alert));

        assert_eq!((queue.len(), queue.lost()), (ALERT_QUEUE_CAPACITY, 10));
    }

    #[test]
    fn alert_prints_link_class_detail_action_and_suppressed_count() {
        let text = alert(41).to_string();

        assert_eq!(
            text,
            "port web: spoof alert (source MAC 02:00:00:00:00:09), frame dropped; 41 more suppressed"
        );
    }
}
