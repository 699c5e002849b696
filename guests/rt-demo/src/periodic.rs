//! The periodic task: the LAPIC timer in TSC-deadline mode (SDM vol. 3A §11.5.4.1), set up by
//! the kernel at boot, drives a release grid `start + k * period`; at each release the task
//! records how late it woke (the TSC stored by the kernel's timer handler minus the deadline)
//! and re-arms the next release.
//!
//! The grid is absolute: each deadline is the previous one plus the period, so lateness does
//! not accumulate. When the next deadline has already passed at re-arm time (the task or the
//! host was too slow), those releases are counted as missed and the task skips ahead to the
//! first grid point still in the future.
//!
//! `first_report_ms` after the start, then once a second of TSC time, the window's
//! statistics are queued as an `rt-stats` line (format and resolution in `rt_demo::stats`),
//! which goes out piecewise in the first half of the following periods
//! (`console::Deferred`), so that printing does not make the task miss releases. Every
//! wake-up also goes into a run-long histogram, printed once as `rt-total` after the last
//! `rt-stats` line when the run has an end (`duration_s`).
//!
//! [`run`] runs in the ring-3 task and reaches the timer only through the wait system call
//! (`syscall::wait_until`), which arms the deadline and halts (`sti; hlt`) until the
//! interrupt. So per period the ring-0 (emulated on software KVM) work is a dozen
//! instructions of system call and a dozen of interrupt handler.
//!
//! With `ports=1` the ports mode (`ports_mode`), with `ports=peer` its peer (`peer_mode`), does
//! its work right after a wake-up has been recorded, every 100 ms ([`PortWork`]): outside the
//! measured wake-up, before the next deadline.

use bulkhead_guest_kernel::console::{self, Deferred};
use bulkhead_guest_kernel::syscall;
use bulkhead_guest_sdk as sdk;
use bulkhead_guest_sdk::arch::x86::{self, tsc::TscScale};
use bulkhead_guest_sdk::line::Line;
use rt_demo::cmdline::Options;
use rt_demo::stats::{self, Window};

/// Work done in the loop right after each wake-up has been recorded: the ports modes.
pub trait PortWork {
    /// One period of the task has passed, `elapsed_us` after its start. `output` holds the
    /// task's pending report; write it out before printing anything.
    fn period(&mut self, elapsed_us: u64, output: &mut Deferred);
}

/// What the loop does for the health monitor (`docs/pv-abi.md`: watchdog, reports).
#[derive(Debug, Clone, Copy)]
pub struct Health {
    /// Kick the watchdog every this many periods (0: the partition has no watchdog).
    kick_every: u64,
    /// Stop kicking after this many reports (0: never).
    stall_after: u64,
    /// Report a panic after this many reports (0: never).
    panic_after: u64,
    /// Report one missed deadline per report from this report on (0: never).
    miss_after: u64,
    /// Report the missed releases of each window to the monitor.
    report_misses: bool,
}

impl Health {
    /// From the command line; `monitor`: a bulkhead monitor answers the ABI.
    pub fn from_options(options: &Options, monitor: bool) -> Health {
        // The first kick arms the watchdog and tells its timeout: kick four times per timeout.
        let timeout_ms = if monitor {
            sdk::watchdog_kick().unwrap_or(0)
        } else {
            0
        };
        let kick_every = if timeout_ms == 0 {
            0
        } else {
            (timeout_ms * 1000 / 4 / options.period_us.max(1)).max(1)
        };
        Health {
            kick_every,
            stall_after: options.stall_after_s,
            panic_after: options.panic_after_s,
            miss_after: options.miss_after_s,
            report_misses: monitor,
        }
    }
}

/// Runs the task with period `period_us` until `duration_s` reports have been printed (0:
/// forever), then prints the run's `rt-total`. Needs the kernel's TSC-deadline timer. With
/// `ports`, does the ports mode's work after each wake-up has been recorded.
pub fn run(
    scale: &TscScale,
    options: &Options,
    health: &Health,
    mut ports: Option<&mut dyn PortWork>,
) {
    let (period_us, duration_s) = (options.period_us, options.duration_s);
    let period = scale.ns_to_ticks(period_us * 1000).max(1);
    let second = scale.ns_to_ticks(1_000_000_000);
    let mut window = Window::new();
    let mut total = Window::new();
    let mut reports = 0u64;
    let mut output = Deferred::new();

    let start = x86::rdtsc();
    let mut deadline = start + period;
    let mut next_report = start + scale.ms_to_ticks(options.first_report_ms);
    let mut periods = 0u64;
    loop {
        let woke = syscall::wait_until(deadline);
        periods += 1;
        let kicking = health.stall_after == 0 || reports < health.stall_after;
        if health.kick_every != 0 && kicking && periods % health.kick_every == 0 {
            let _ = sdk::watchdog_kick();
        }
        // A wake-up before the deadline (a host timer advanced too far) counts as on time.
        let lateness = scale.ticks_to_ns(woke.saturating_sub(deadline));
        window.record(lateness);
        total.record(lateness);
        if let Some(ports) = ports.as_deref_mut() {
            ports.period(
                scale.ticks_to_ns(woke.saturating_sub(start)) / 1000,
                &mut output,
            );
        }

        if woke >= next_report {
            let mut line = Line::new();
            let summary = window.summary();
            stats::write_report(&mut line, period_us, &summary);
            output.push(&line);
            window.reset();
            reports += 1;
            let mut missed = if health.report_misses {
                summary.missed
            } else {
                0
            };
            if health.miss_after != 0 && reports >= health.miss_after {
                missed += 1;
            }
            if missed != 0 {
                let _ = sdk::report_deadline_miss(missed.min(u64::from(u32::MAX)) as u32);
            }
            if health.panic_after != 0 && reports == health.panic_after {
                output.flush();
                let _ = sdk::report_panic(health.panic_after);
            }
            if duration_s != 0 && reports >= duration_s {
                output.flush();
                let mut line = Line::new();
                stats::write_total(&mut line, period_us, &total.summary());
                console::println(&mut line);
                return;
            }
            next_report += second;
            if next_report <= woke {
                // The vCPU was stopped for over a second: start a fresh report grid.
                next_report = woke + second;
            }
        }

        deadline += period;
        // Console output only in the first half of the time left to the next release.
        output.drain_until(deadline - period / 2);
        let now = x86::rdtsc();
        if deadline <= now {
            let behind = (now - deadline) / period + 1;
            window.record_missed(behind);
            total.record_missed(behind);
            deadline += behind * period;
        }
    }
}
