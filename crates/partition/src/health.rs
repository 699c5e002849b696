//! The partition's side of the health monitor: its watchdog, the deadline misses and panics
//! its guest reports, and what each leads to (`[partition.health]`).
//!
//! An error whose action lets the partition go on (`ignore`, `log`) is recorded in the event
//! log here; one whose action stops it (`restart`, `halt`, `stop_system`) stops the partition
//! process with the error's exit code ([`HealthStop::exit_code`]) and the supervisor records
//! it and acts.
//!
//! The watchdog is armed by the guest's first kick (the ABI's `WatchdogKick`); from then on a
//! thread checks that kicks keep coming within `watchdog_ms`. Nothing the guest does disarms
//! it (ARINC 653: a partition cannot turn its own supervision off). After an expiry whose action
//! lets the partition go on, it waits for the next kick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_config::{HealthAction, HealthPlan};

use crate::events::EventLog;

/// `last_kick_ns` while the watchdog is not armed.
const DISARMED: u64 = u64::MAX;

/// An error that stops the partition process (the supervisor applies the action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStop {
    /// The watchdog expired.
    Watchdog,
    /// The guest reported a panic with this code.
    Panic(u64),
    /// The deadline-miss threshold was reached with this many misses.
    DeadlineMisses(u64),
}

impl HealthStop {
    /// The partition process's exit code (documented in `ARCHITECTURE.md`).
    pub fn exit_code(self) -> i32 {
        match self {
            HealthStop::Watchdog => 6,
            HealthStop::Panic(_) => 7,
            HealthStop::DeadlineMisses(_) => 8,
        }
    }
}

impl std::fmt::Display for HealthStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HealthStop::Watchdog => write!(f, "watchdog expired"),
            HealthStop::Panic(code) => write!(f, "guest panic (code {code})"),
            HealthStop::DeadlineMisses(n) => write!(f, "{n} deadline misses reached the threshold"),
        }
    }
}

/// The health state of one partition, shared by its vCPU threads and its watchdog thread.
#[derive(Debug)]
pub struct Health {
    plan: HealthPlan,
    name: String,
    started: Instant,
    /// When the guest last kicked, in ns since `started`; [`DISARMED`] before the first kick.
    last_kick_ns: AtomicU64,
    /// Deadline misses reported since the threshold last fired.
    misses: AtomicU64,
    events: Option<EventLog>,
}

impl Health {
    /// The health monitor of partition `name`, recording into `events`.
    pub fn new(name: &str, plan: HealthPlan, events: Option<EventLog>) -> Health {
        Health {
            plan,
            name: name.to_string(),
            started: Instant::now(),
            last_kick_ns: AtomicU64::new(DISARMED),
            misses: AtomicU64::new(0),
            events,
        }
    }

    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// A kick; returns the timeout in ms (0: the partition has no watchdog).
    pub fn kick(&self) -> u64 {
        let Some(ms) = self.plan.watchdog_ms else {
            return 0;
        };
        self.last_kick_ns.store(self.now_ns(), Ordering::Relaxed);
        u64::from(ms)
    }

    /// The guest reported `count` missed deadlines: `Some` when the threshold's action stops
    /// the partition.
    pub fn deadlines_missed(&self, count: u64) -> Option<HealthStop> {
        let total = self.misses.fetch_add(count, Ordering::Relaxed) + count;
        if total < u64::from(self.plan.deadline_miss_threshold) {
            return None;
        }
        self.misses.store(0, Ordering::Relaxed);
        self.act(
            self.plan.on_deadline_miss,
            HealthStop::DeadlineMisses(total),
            "deadline_miss",
            &format!(
                "misses={total} threshold={}",
                self.plan.deadline_miss_threshold
            ),
        )
    }

    /// The guest reported a panic: `Some` when the action stops the partition.
    pub fn panicked(&self, code: u64) -> Option<HealthStop> {
        self.act(
            self.plan.on_panic,
            HealthStop::Panic(code),
            "panic",
            &format!("code={code}"),
        )
    }

    /// Checks the watchdog at `now_ns`: `Some` when it expired and its action stops the
    /// partition. An expiry that lets the partition go on disarms it until the next kick.
    fn check_watchdog(&self, now_ns: u64) -> Option<HealthStop> {
        let timeout_ns = u64::from(self.plan.watchdog_ms?) * 1_000_000;
        let last = self.last_kick_ns.load(Ordering::Relaxed);
        if last == DISARMED || now_ns.saturating_sub(last) < timeout_ns {
            return None;
        }
        // Only one expiry per missed kick, even if another check races with this one.
        if self
            .last_kick_ns
            .compare_exchange(last, DISARMED, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        self.act(
            self.plan.on_watchdog,
            HealthStop::Watchdog,
            "watchdog",
            &format!(
                "timeout_ms={} last_kick_ms_ago={}",
                timeout_ns / 1_000_000,
                (now_ns - last) / 1_000_000
            ),
        )
    }

    /// Records an error whose action lets the partition go on; returns the stop otherwise.
    fn act(
        &self,
        action: HealthAction,
        stop: HealthStop,
        event: &str,
        detail: &str,
    ) -> Option<HealthStop> {
        match action {
            HealthAction::Ignore | HealthAction::Log => {
                if let Some(log) = &self.events {
                    log.record(&self.name, event, action.as_str(), detail);
                }
                if action == HealthAction::Log {
                    eprintln!("health: {event} ({detail}); action log, the partition goes on");
                }
                None
            }
            HealthAction::Restart | HealthAction::Halt | HealthAction::StopSystem => Some(stop),
        }
    }

    /// Starts the watchdog thread (if the partition has a watchdog): it calls `stop` when an
    /// expiry's action stops the partition.
    pub fn spawn_watchdog(
        self: &Arc<Self>,
        stop: impl FnOnce(HealthStop) + Send + 'static,
    ) -> std::io::Result<()> {
        let Some(ms) = self.plan.watchdog_ms else {
            return Ok(());
        };
        let timeout = Duration::from_millis(u64::from(ms));
        // Checked four times per timeout: an expiry is seen within a quarter of it.
        let tick = (timeout / 4).max(Duration::from_millis(1));
        let health = Arc::clone(self);
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                if let Some(expired) = health.check_watchdog(health.now_ns()) {
                    stop(expired);
                    return;
                }
            })
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(watchdog_ms: u32, on_watchdog: HealthAction) -> HealthPlan {
        let mut plan = HealthPlan::default();
        plan.watchdog_ms = Some(watchdog_ms);
        plan.on_watchdog = on_watchdog;
        plan
    }

    #[test]
    fn watchdog_is_disarmed_until_the_first_kick() {
        let h = Health::new("rt", plan(100, HealthAction::Restart), None);

        assert_eq!(h.check_watchdog(10_000_000_000), None);
    }

    #[test]
    fn watchdog_expires_one_timeout_after_the_last_kick() {
        let h = Health::new("rt", plan(100, HealthAction::Restart), None);
        let timeout = h.kick();
        let kicked = h.last_kick_ns.load(Ordering::Relaxed);

        assert_eq!(timeout, 100);
        assert_eq!(h.check_watchdog(kicked + 99_000_000), None);
        assert_eq!(
            h.check_watchdog(kicked + 100_000_000),
            Some(HealthStop::Watchdog)
        );
    }

    #[test]
    fn a_logged_expiry_lets_the_partition_go_on_and_waits_for_the_next_kick() {
        let h = Health::new("rt", plan(100, HealthAction::Log), None);
        h.kick();
        let kicked = h.last_kick_ns.load(Ordering::Relaxed);

        assert_eq!(h.check_watchdog(kicked + 200_000_000), None);
        assert_eq!(h.last_kick_ns.load(Ordering::Relaxed), DISARMED);
    }

    #[test]
    fn without_a_watchdog_kicks_answer_zero() {
        let h = Health::new("rt", HealthPlan::default(), None);

        assert_eq!(h.kick(), 0);
        assert_eq!(h.check_watchdog(u64::MAX - 1), None);
    }

    #[test]
    fn deadline_misses_act_at_the_threshold_then_count_again() {
        let mut p = HealthPlan::default();
        p.deadline_miss_threshold = 5;
        p.on_deadline_miss = HealthAction::Halt;
        let h = Health::new("rt", p, None);

        assert_eq!(h.deadlines_missed(3), None);
        assert_eq!(h.deadlines_missed(2), Some(HealthStop::DeadlineMisses(5)));
        assert_eq!(h.deadlines_missed(4), None);
    }

    #[test]
    fn a_panic_stops_the_partition_unless_ignored_or_logged() {
        let mut p = HealthPlan::default();
        let halting = Health::new("rt", p.clone(), None);
        p.on_panic = HealthAction::Ignore;
        let ignoring = Health::new("rt", p, None);

        assert_eq!(halting.panicked(9), Some(HealthStop::Panic(9)));
        assert_eq!(ignoring.panicked(9), None);
    }
}
