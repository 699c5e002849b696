//! The window probe (`probe=windows`): instead of the periodic task, spin in ring 3 reading
//! the TSC, so that every stretch of time the vCPU did not run shows up as a jump between two
//! reads. The bookkeeping, what is left out and the report line are `rt_demo::probe`'s; this
//! is the loop. Used to show that ARINC 653 time windows are enforced: a partition given a
//! 5 ms window in a 20 ms frame must report runs of at most ~5 ms and gaps of at least
//! ~15 ms.
//!
//! The first report comes `first_report_ms` after the start, later ones once a second;
//! `duration_s` reports, then the caller powers off (0: for ever). Printing a report and
//! kicking the watchdog (four times per timeout when the partition has one) are the probe's
//! own work: each leaves the run in progress out ([`Probe::interrupt`]). No interrupt is ever
//! armed, so nothing but the host takes the vCPU away.

use bulkhead_guest_kernel::console;
use bulkhead_guest_sdk as sdk;
use bulkhead_guest_sdk::arch::x86::{self, tsc::TscScale};
use bulkhead_guest_sdk::line::Line;
use rt_demo::cmdline::Options;
use rt_demo::probe::Probe;

/// Runs the probe until `options.duration_s` reports have been printed (0: for ever);
/// `monitor`: a bulkhead monitor answers the ABI (for the watchdog).
pub fn run(scale: &TscScale, options: &Options, monitor: bool) {
    let gap = scale.ns_to_ticks(options.gap_us * 1000).max(1);
    let second = scale.ns_to_ticks(1_000_000_000);
    // The first kick arms the watchdog and tells its timeout (0: none).
    let timeout_ms = if monitor {
        sdk::watchdog_kick().unwrap_or(0)
    } else {
        0
    };
    let kick_every = scale.ms_to_ticks(timeout_ms / 4).max(1);

    let start = x86::rdtsc();
    let mut probe = Probe::new(start, gap);
    let mut next_report = start + scale.ms_to_ticks(options.first_report_ms);
    let mut next_kick = if timeout_ms == 0 {
        u64::MAX
    } else {
        start + kick_every
    };
    let mut reports = 0u64;
    loop {
        let now = x86::rdtsc();
        probe.observe(now);
        if now < next_report && now < next_kick {
            continue;
        }
        if now >= next_kick {
            let _ = sdk::watchdog_kick();
            next_kick = now + kick_every;
        }
        if now >= next_report {
            let mut line = Line::new();
            probe.take(&mut line, scale);
            console::println(&mut line);
            reports += 1;
            if options.duration_s != 0 && reports >= options.duration_s {
                return;
            }
            next_report += second;
            if next_report <= now {
                // The vCPU was stopped for over a second: start a fresh report grid.
                next_report = now + second;
            }
        }
        probe.interrupt(x86::rdtsc());
    }
}
