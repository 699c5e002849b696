//! The window probe's bookkeeping (`probe=windows`): from a stream of TSC reads taken as fast
//! as the vCPU runs, find the stretches when it did not run (*gaps*: two consecutive reads
//! further apart than the threshold) and the stretches between them (*runs*), and report
//! their count and extremes once a second:
//!
//! `window-probe runs=N run_min_us=A run_max_us=B gap_min_us=C gap_max_us=D gaps=M run_total_us=T`
//!
//! Under an ARINC 653 schedule that gives the partition a 5 ms window in a 20 ms major frame,
//! runs are at most ~5 ms, gaps at least ~15 ms (unless the host takes the CPU inside a window
//! too) and the runs add up to at most a quarter of the second (`run_total_us`, the counted
//! runs only).
//!
//! What is left out, so that every run and gap reported is whole:
//!
//! * A run is counted when the gap that ends it is seen, in the report of the second in which
//!   that happens; so no run is ever cut by the report boundary.
//! * The first run, which began when the probe did rather than after a gap, is partial and
//!   left out. So is the run in progress whenever the probe does work of its own — printing
//!   its report, kicking the watchdog ([`Probe::interrupt`]): that work takes an exit and
//!   console time, and a gap that fell inside it could not be told from it. The probe then
//!   starts afresh; a gap inside its own work is not seen at all. With one report a second
//!   that leaves out one run per second.
//! * Gaps are measured between two reads of the probe loop, so they are always whole.
//!
//! Times are kept in TSC ticks and converted to microseconds (rounded down) for the report.

use bulkhead_guest_sdk::arch::x86::tsc::TscScale;
use bulkhead_guest_sdk::line::Line;

/// Count and extremes of one kind of stretch (runs or gaps), in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extremes {
    /// Stretches recorded.
    pub count: u64,
    /// Shortest, `u64::MAX` when none.
    pub min: u64,
    /// Longest, 0 when none.
    pub max: u64,
    /// All of them together.
    pub total: u64,
}

impl Extremes {
    const fn new() -> Self {
        Extremes {
            count: 0,
            min: u64::MAX,
            max: 0,
            total: 0,
        }
    }

    fn record(&mut self, ticks: u64) {
        self.count += 1;
        self.min = self.min.min(ticks);
        self.max = self.max.max(ticks);
        self.total = self.total.saturating_add(ticks);
    }

    /// `(min, max)` in µs, `(0, 0)` when none were recorded.
    fn us(&self, scale: &TscScale) -> (u64, u64) {
        if self.count == 0 {
            return (0, 0);
        }
        (
            scale.ticks_to_ns(self.min) / 1000,
            scale.ticks_to_ns(self.max) / 1000,
        )
    }
}

/// The probe's state between two TSC reads.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Two reads further apart than this are a gap.
    gap_ticks: u64,
    /// The previous read.
    last: u64,
    /// Where the current run began.
    run_start: u64,
    /// The current run did not begin after a gap, or was interrupted: it is not counted.
    partial: bool,
    runs: Extremes,
    gaps: Extremes,
}

impl Probe {
    /// A probe whose first read is `now`; gaps are longer than `gap_ticks`.
    pub fn new(now: u64, gap_ticks: u64) -> Self {
        Probe {
            gap_ticks,
            last: now,
            run_start: now,
            partial: true,
            runs: Extremes::new(),
            gaps: Extremes::new(),
        }
    }

    /// Takes the next TSC read. The hot path: a subtraction and a compare when nothing
    /// happened.
    #[inline]
    pub fn observe(&mut self, now: u64) {
        let elapsed = now.wrapping_sub(self.last);
        if elapsed > self.gap_ticks {
            if !self.partial {
                self.runs.record(self.last - self.run_start);
            }
            self.gaps.record(elapsed);
            self.run_start = now;
            self.partial = false;
        }
        self.last = now;
    }

    /// The probe did work of its own until `now`: the run in progress is left out, and
    /// watching starts again from `now`.
    pub fn interrupt(&mut self, now: u64) {
        self.last = now;
        self.run_start = now;
        self.partial = true;
    }

    /// Runs counted since the last [`Probe::take`].
    pub fn runs(&self) -> Extremes {
        self.runs
    }

    /// Gaps counted since the last [`Probe::take`].
    pub fn gaps(&self) -> Extremes {
        self.gaps
    }

    /// Appends the report line of what was counted since the last call (no newline) and
    /// starts counting afresh.
    pub fn take(&mut self, line: &mut Line, scale: &TscScale) {
        let (run_min, run_max) = self.runs.us(scale);
        let (gap_min, gap_max) = self.gaps.us(scale);
        line.str(b"window-probe runs=")
            .u64(self.runs.count)
            .str(b" run_min_us=")
            .u64(run_min)
            .str(b" run_max_us=")
            .u64(run_max)
            .str(b" gap_min_us=")
            .u64(gap_min)
            .str(b" gap_max_us=")
            .u64(gap_max)
            .str(b" gaps=")
            .u64(self.gaps.count)
            .str(b" run_total_us=")
            .u64(scale.ticks_to_ns(self.runs.total) / 1000);
        self.runs = Extremes::new();
        self.gaps = Extremes::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 tick = 1 ns.
    fn scale() -> TscScale {
        TscScale::from_khz(1_000_000).unwrap()
    }

    /// Feeds reads every `step` ticks from `from` up to and including `to`.
    fn spin(probe: &mut Probe, from: u64, to: u64, step: u64) {
        let mut t = from;
        while t <= to {
            probe.observe(t);
            t += step;
        }
    }

    #[test]
    fn five_millisecond_windows_in_a_twenty_millisecond_frame_show_as_such() {
        let ms = 1_000_000;
        let mut probe = Probe::new(0, 200_000);
        for frame in 0..4 {
            spin(&mut probe, frame * 20 * ms, frame * 20 * ms + 5 * ms, 1000);
        }
        let mut line = Line::new();

        probe.take(&mut line, &scale());

        // The first run is partial and the last has not ended: two whole runs of 5 ms
        // between three gaps of 15 ms.
        assert_eq!(
            line.as_bytes(),
            &b"window-probe runs=2 run_min_us=5000 run_max_us=5000 gap_min_us=15000 gap_max_us=15000 gaps=3 run_total_us=10000"[..]
        );
    }

    #[test]
    fn first_run_is_left_out() {
        let mut probe = Probe::new(0, 100);
        spin(&mut probe, 0, 10_000, 10);

        probe.observe(20_000);

        assert_eq!(
            (probe.runs().count, probe.gaps().count, probe.gaps().max),
            (0, 1, 10_000)
        );
    }

    #[test]
    fn jitter_below_the_threshold_is_not_a_gap() {
        let mut probe = Probe::new(0, 200);
        spin(&mut probe, 0, 100_000, 150);

        assert_eq!((probe.runs().count, probe.gaps().count), (0, 0));
    }

    #[test]
    fn run_interrupted_by_the_probe_itself_is_left_out() {
        let mut probe = Probe::new(0, 100);
        spin(&mut probe, 0, 1_000, 10);
        probe.observe(5_000); // gap: a whole run starts at 5000
        spin(&mut probe, 5_000, 6_000, 10);

        probe.interrupt(6_500);
        spin(&mut probe, 6_500, 7_000, 10);
        probe.observe(9_000);

        assert_eq!(
            (probe.runs().count, probe.gaps().count),
            (0, 2),
            "the run 5000..=7000 was interrupted at 6000..6500"
        );
    }

    #[test]
    fn take_starts_counting_afresh() {
        let mut probe = Probe::new(0, 100);
        spin(&mut probe, 0, 1_000, 10);
        probe.observe(5_000);
        probe.take(&mut Line::new(), &scale());
        let mut line = Line::new();

        probe.take(&mut line, &scale());

        assert_eq!(
            line.as_bytes(),
            &b"window-probe runs=0 run_min_us=0 run_max_us=0 gap_min_us=0 gap_max_us=0 gaps=0 run_total_us=0"[..]
        );
    }

    #[test]
    fn run_that_spans_a_report_is_counted_once_whole() {
        let mut probe = Probe::new(0, 100);
        spin(&mut probe, 0, 1_000, 10);
        probe.observe(5_000);
        spin(&mut probe, 5_000, 8_000, 10);
        let before = probe.runs().count;

        // A report that takes no time (take without interrupt) keeps the run going.
        probe.take(&mut Line::new(), &scale());
        spin(&mut probe, 8_000, 12_000, 10);
        probe.observe(20_000);

        assert_eq!(
            (before, probe.runs().count, probe.runs().max),
            (0, 1, 7_000)
        );
    }
}
