//! Counters of the paravirtual call interface, per partition.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters, shared by every vCPU of a partition.
#[derive(Debug, Default)]
pub struct PvMetrics {
    /// Calls answered (any status).
    pub calls: AtomicU64,
    /// Calls answered with a non-zero status.
    pub errors: AtomicU64,
    /// Doorbells whose call block lay outside guest memory (no answer possible).
    pub bad_blocks: AtomicU64,
    /// Bytes written through `ConsoleWrite`.
    pub console_bytes: AtomicU64,
    /// Releases missed, as reported by `WaitNextPeriod`.
    pub missed_releases: AtomicU64,
    /// Deadline misses the guest reported through `ReportDeadlineMiss`.
    pub reported_misses: AtomicU64,
}

impl PvMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A snapshot, for display.
    pub fn snapshot(&self) -> [(&'static str, u64); 6] {
        [
            ("calls", self.calls.load(Ordering::Relaxed)),
            ("errors", self.errors.load(Ordering::Relaxed)),
            ("bad_blocks", self.bad_blocks.load(Ordering::Relaxed)),
            ("console_bytes", self.console_bytes.load(Ordering::Relaxed)),
            (
                "missed_releases",
                self.missed_releases.load(Ordering::Relaxed),
            ),
            (
                "reported_misses",
                self.reported_misses.load(Ordering::Relaxed),
            ),
        ]
    }
}
