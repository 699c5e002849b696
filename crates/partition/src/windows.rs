//! ARINC 653 time windows, enforced on the vCPU threads of a time-partitioned host CPU.
//!
//! The schedule is static: a major frame that repeats from the system's epoch (a
//! `CLOCK_MONOTONIC` time the supervisor chose and passed as `BULKHEAD_FRAME_EPOCH_NS`), and
//! this partition's windows in it. So every vCPU thread can work out alone, from the clock,
//! whether it may run — no scheduler process sits in between, and a partition's windows do
//! not depend on any other partition being alive.
//!
//! Before every `KVM_RUN` the vCPU thread calls [`WindowGate::admit`]: inside one of its
//! windows it returns at once, having armed a per-thread timer for the window's end;
//! outside, it sleeps until its next window starts. At the window's end the timer signals the
//! thread (the vCPU kick, `bulkhead_vmm::install_kick_signal`), which makes `KVM_RUN` return
//! even from a halted vCPU or from a kick that lands just before it; the next `admit` then
//! parks the thread. A vCPU therefore never enters the guest outside its windows, and an
//! idle partition's window is not given to anyone else (ARINC 653: a window belongs to its
//! partition whether or not it uses it).
//!
//! Measured, per vCPU ([`WindowStats`]): how late each window start was seen (the sleep's
//! wake-up: the window-start jitter), how late the guest left after each window end, and the
//! overruns — window ends left later than [`OVERRUN_TOLERANCE_NS`].

use std::sync::{Arc, Mutex, MutexGuard};

use bulkhead_config::CpuWindows;

use crate::clock::{self, ThreadTimer};

/// A window end left later than this counts as an overrun.
pub const OVERRUN_TOLERANCE_NS: u64 = 100_000;

/// Where a time falls in the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Inside a window that runs from `start` to `end` (absolute ns).
    Inside { start: u64, end: u64 },
    /// Outside every window; the next one starts at `next` (absolute ns).
    Outside { next: u64 },
}

/// A partition's windows on one host CPU, in absolute time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    epoch_ns: u64,
    frame_ns: u64,
    /// (start, end) offsets in the frame, ns, sorted, non-empty, within the frame.
    windows: Vec<(u64, u64)>,
}

impl Schedule {
    /// `windows`' schedule from `epoch_ns`. The plan guarantees at least one window, each
    /// inside the frame.
    pub fn new(windows: &CpuWindows, epoch_ns: u64) -> Schedule {
        let frame_ns = u64::from(windows.major_frame_us).max(1) * 1000;
        let windows = windows
            .windows
            .iter()
            .map(|&(offset, duration)| {
                let start = u64::from(offset) * 1000;
                (start, start + u64::from(duration) * 1000)
            })
            .collect();
        Schedule {
            epoch_ns,
            frame_ns,
            windows,
        }
    }

    /// Where `now` falls. Times before the epoch count as the start of frame 0.
    pub fn locate(&self, now: u64) -> Position {
        let since = now.saturating_sub(self.epoch_ns);
        let frame_start = self.epoch_ns + since / self.frame_ns * self.frame_ns;
        let offset = since % self.frame_ns;
        for &(start, end) in &self.windows {
            if offset < start {
                return Position::Outside {
                    next: frame_start + start,
                };
            }
            if offset < end {
                return Position::Inside {
                    start: frame_start + start,
                    end: frame_start + end,
                };
            }
        }
        let first = self.windows.first().map_or(0, |w| w.0);
        Position::Outside {
            next: frame_start + self.frame_ns + first,
        }
    }
}

/// Latencies in µs buckets up to 10 ms, with the exact maximum.
#[derive(Debug, Clone)]
pub struct Latencies {
    counts: Vec<u64>,
    samples: u64,
    max_ns: u64,
}

/// Buckets of 1 µs, the last one for everything from 10 ms up.
const LATENCY_BUCKETS: usize = 10_000;

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            counts: vec![0; LATENCY_BUCKETS + 1],
            samples: 0,
            max_ns: 0,
        }
    }
}

impl Latencies {
    /// One latency.
    pub fn record(&mut self, ns: u64) {
        let bucket = usize::try_from(ns / 1000)
            .unwrap_or(LATENCY_BUCKETS)
            .min(LATENCY_BUCKETS);
        self.counts[bucket] += 1;
        self.samples += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// Latencies recorded.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The `per_mille`-th quantile in µs (the upper end of its bucket, at most the maximum).
    pub fn quantile_us(&self, per_mille: u64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        let rank = (self.samples * per_mille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return (bucket as u64 + 1).min(self.max_ns.div_ceil(1000));
            }
        }
        self.max_ns.div_ceil(1000)
    }

    /// The largest latency, µs (rounded up).
    pub fn max_us(&self) -> u64 {
        self.max_ns.div_ceil(1000)
    }
}

/// What a vCPU's windows looked like.
#[derive(Debug, Clone, Default)]
pub struct WindowStats {
    /// From each window's start to the vCPU thread waking for it.
    pub start_late: Latencies,
    /// From each window's end to the vCPU thread seeing it (out of the guest).
    pub end_late: Latencies,
    /// Window ends left later than [`OVERRUN_TOLERANCE_NS`].
    pub overruns: u64,
}

impl WindowStats {
    /// `window-stats vcpu=… cpu=… frame_us=… windows=… start_late_p50_us=… …`.
    pub fn line(&self, vcpu: u8, cpu: usize, frame_us: u32) -> String {
        format!(
            "window-stats vcpu={vcpu} cpu={cpu} frame_us={frame_us} windows={} \
             start_late_p50_us={} start_late_p99_us={} start_late_max_us={} \
             end_late_p99_us={} end_late_max_us={} overruns={}",
            self.start_late.samples(),
            self.start_late.quantile_us(500),
            self.start_late.quantile_us(990),
            self.start_late.max_us(),
            self.end_late.quantile_us(990),
            self.end_late.max_us(),
            self.overruns
        )
    }
}

/// The gate a vCPU thread passes before each `KVM_RUN` (see the module docs).
pub struct WindowGate {
    schedule: Schedule,
    timer: ThreadTimer,
    /// End of the window the vCPU is in, while it is in one.
    current_end: Option<u64>,
    /// Updated only at window starts and ends; read by whoever reports them.
    stats: Arc<Mutex<WindowStats>>,
}

impl WindowGate {
    /// The gate of the calling thread (the vCPU thread): its timer sends `kick_signal`.
    pub fn for_current_thread(schedule: Schedule, kick_signal: i32) -> std::io::Result<Self> {
        Ok(WindowGate {
            schedule,
            timer: ThreadTimer::for_current_thread(kick_signal)?,
            current_end: None,
            stats: Arc::default(),
        })
    }

    /// The gate's statistics, shared.
    pub fn stats(&self) -> Arc<Mutex<WindowStats>> {
        Arc::clone(&self.stats)
    }

    fn stats_mut(&self) -> MutexGuard<'_, WindowStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns when the vCPU may enter the guest: at once inside one of its windows, else at
    /// the start of the next. `parked` is called each time the thread is about to sleep,
    /// outside its windows.
    pub fn admit(&mut self, mut parked: impl FnMut()) {
        let mut now = clock::monotonic_ns();
        if let Some(end) = self.current_end {
            if now < end {
                return;
            }
            let late = now - end;
            let mut stats = self.stats_mut();
            stats.end_late.record(late);
            if late > OVERRUN_TOLERANCE_NS {
                stats.overruns += 1;
            }
            drop(stats);
            self.current_end = None;
        }
        let mut slept = false;
        loop {
            match self.schedule.locate(now) {
                Position::Inside { start, end } => {
                    if slept {
                        self.stats_mut()
                            .start_late
                            .record(now.saturating_sub(start));
                    }
                    // Should arming fail, the next exit still ends the window at the next
                    // `admit`: the window is then enforced at exit granularity.
                    let _ = self.timer.arm_at_ns(end);
                    self.current_end = Some(end);
                    return;
                }
                Position::Outside { next } => {
                    if !slept {
                        parked();
                    }
                    clock::sleep_until_ns(next);
                    slept = true;
                    now = clock::monotonic_ns();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20 ms frame from t = 1 s with windows 0-5 ms and 10-15 ms.
    fn schedule() -> Schedule {
        Schedule {
            epoch_ns: 1_000_000_000,
            frame_ns: 20_000_000,
            windows: vec![(0, 5_000_000), (10_000_000, 15_000_000)],
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn a_time_inside_a_window_is_located_with_its_bounds() {
        let position = schedule().locate(1_000 * MS + 41 * MS);

        assert_eq!(
            position,
            Position::Inside {
                start: 1_000 * MS + 40 * MS,
                end: 1_000 * MS + 45 * MS
            }
        );
    }

    #[test]
    fn a_time_between_windows_points_at_the_next_one() {
        let position = schedule().locate(1_000 * MS + 7 * MS);

        assert_eq!(
            position,
            Position::Outside {
                next: 1_000 * MS + 10 * MS
            }
        );
    }

    #[test]
    fn a_time_after_the_last_window_points_at_the_next_frame() {
        let position = schedule().locate(1_000 * MS + 17 * MS);

        assert_eq!(
            position,
            Position::Outside {
                next: 1_000 * MS + 20 * MS
            }
        );
    }

    #[test]
    fn a_window_end_is_outside_it() {
        let position = schedule().locate(1_000 * MS + 5 * MS);

        assert_eq!(
            position,
            Position::Outside {
                next: 1_000 * MS + 10 * MS
            }
        );
    }

    #[test]
    fn a_time_before_the_epoch_counts_as_the_first_frame() {
        let position = schedule().locate(10 * MS);

        assert_eq!(
            position,
            Position::Inside {
                start: 1_000 * MS,
                end: 1_005 * MS
            }
        );
    }

    #[test]
    fn quantiles_come_from_microsecond_buckets_capped_by_the_maximum() {
        let mut latencies = Latencies::default();
        for us in 1..=100 {
            latencies.record(us * 1000 - 500);
        }

        assert_eq!(latencies.quantile_us(500), 50);
        assert_eq!(latencies.quantile_us(990), 99);
        assert_eq!(latencies.max_us(), 100);
    }

    #[test]
    fn the_gate_admits_inside_a_window_and_parks_outside_until_the_next() {
        let now = clock::monotonic_ns();
        // Windows of 2 ms at the start of every 4 ms frame, from now.
        let schedule = Schedule {
            epoch_ns: now,
            frame_ns: 4 * MS,
            windows: vec![(0, 2 * MS)],
        };
        let mut gate = WindowGate::for_current_thread(schedule, libc::SIGWINCH).unwrap();
        let mut parked = 0;

        gate.admit(|| parked += 1);
        let inside_first = gate.current_end;
        while clock::monotonic_ns() < now + 2 * MS {}
        gate.admit(|| parked += 1);
        let resumed = clock::monotonic_ns();

        let stats = gate.stats();
        let stats = stats.lock().unwrap();
        assert_eq!(inside_first, Some(now + 2 * MS));
        assert_eq!(parked, 1);
        assert!(resumed >= now + 4 * MS);
        assert_eq!(stats.start_late.samples(), 1);
        assert_eq!(stats.end_late.samples(), 1);
    }
}
