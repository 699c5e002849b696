//! Adaptive batching of queue notifications on the device thread (block devices).
//!
//! Every notification a guest sends is a VM exit, and every completion interrupt one more; a
//! device that serves each request the moment it is notified and completes it at once sees
//! one notification and up to one interrupt per request, and a guest streaming requests
//! spends its time in exits. Holding a notification for a short while lets the requests the
//! guest adds meanwhile join the batch: with `VIRTIO_F_RING_EVENT_IDX` the guest does not
//! notify again until the device has caught up, and the whole batch is completed with one
//! interrupt. Holding costs latency, so it adapts (like QEMU's adaptive polling): a hold that
//! gathered more than one request doubles, up to the device's `batch_us`; one that gathered
//! only its own halves, and below an eighth of the maximum the queue is served at once again,
//! probing with a full hold every [`PROBE_EVERY`] notifications (a short probe would not
//! span the gap between two requests of a guest that is slow to issue them). A guest that sends one
//! request at a time and waits for it (queue depth 1) is served at once nearly always.

use std::time::{Duration, Instant};

/// Notifications served at once between two probes.
pub const PROBE_EVERY: u32 = 32;

/// What to do with a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Serve the queue now.
    ServeNow,
    /// Serve it when the hold ends (already the case when one is running).
    Hold,
}

/// The batching state of one queue.
#[derive(Debug)]
pub struct Batcher {
    max: Duration,
    hold: Duration,
    probe_in: u32,
    due: Option<Instant>,
}

impl Batcher {
    /// A queue whose notifications may be held up to `max` (zero: never held).
    pub fn new(max: Duration) -> Batcher {
        Batcher {
            max,
            hold: Duration::ZERO,
            probe_in: 0,
            due: None,
        }
    }

    fn min_hold(&self) -> Duration {
        self.max / 8
    }

    /// The current hold (zero: notifications are served at once).
    #[cfg(test)]
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// A notification arrived at `now`.
    pub fn notified(&mut self, now: Instant) -> Action {
        if self.due.is_some() {
            return Action::Hold;
        }
        if self.max.is_zero() {
            return Action::ServeNow;
        }
        if self.hold.is_zero() {
            if self.probe_in > 0 {
                self.probe_in -= 1;
                return Action::ServeNow;
            }
            self.hold = self.max;
        }
        self.due = Some(now + self.hold);
        Action::Hold
    }

    /// When the running hold ends.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The queue was served: `batch` requests completed; `held` whether this ended a hold.
    pub fn served(&mut self, batch: u32, held: bool) {
        if !held {
            return;
        }
        self.due = None;
        if batch >= 2 {
            self.hold = (self.hold * 2).min(self.max);
        } else {
            self.hold /= 2;
            if self.hold < self.min_hold() {
                self.hold = Duration::ZERO;
                self.probe_in = PROBE_EVERY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_micros(160);

    #[test]
    fn without_a_window_every_notification_is_served_at_once() {
        let mut b = Batcher::new(Duration::ZERO);

        assert_eq!(b.notified(Instant::now()), Action::ServeNow);
        assert_eq!(b.due(), None);
    }

    #[test]
    fn a_stream_of_requests_grows_the_hold_to_the_maximum() {
        let mut b = Batcher::new(MAX);
        let now = Instant::now();

        for _ in 0..10 {
            assert_eq!(b.notified(now), Action::Hold);
            b.served(5, true);
        }

        assert_eq!(b.hold(), MAX);
    }

    #[test]
    fn holds_that_gather_nothing_shrink_to_serving_at_once_then_probe_again() {
        let mut b = Batcher::new(MAX);
        let now = Instant::now();
        for _ in 0..4 {
            b.notified(now);
            b.served(5, true);
        }

        let mut held = 0;
        while b.notified(now) == Action::Hold {
            held += 1;
            b.served(1, true);
        }
        b.served(1, false);
        assert_eq!(b.hold(), Duration::ZERO);
        // Four halvings from the maximum to below an eighth of it, then served at once.
        assert_eq!(held, 4);

        let served_at_once = (1..PROBE_EVERY)
            .filter(|_| b.notified(now) == Action::ServeNow)
            .count();
        assert_eq!(served_at_once + 1, PROBE_EVERY as usize);
        assert_eq!(b.notified(now), Action::Hold);
        assert_eq!(b.due(), Some(now + MAX));
    }

    #[test]
    fn a_notification_during_a_hold_joins_it() {
        let mut b = Batcher::new(MAX);
        let now = Instant::now();

        b.notified(now);
        let due = b.due();

        assert_eq!(b.notified(now + MAX), Action::Hold);
        assert_eq!(b.due(), due);
    }
}
