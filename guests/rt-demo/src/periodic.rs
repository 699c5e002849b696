//! The periodic task: the LAPIC timer in TSC-deadline mode (SDM vol. 3A §11.5.4.1) drives a
//! release grid `start + k * period`; at each release the task records how late it woke
//! (the TSC stored by the timer handler minus the deadline) and re-arms the next release.
//!
//! The grid is absolute: each deadline is the previous one plus the period, so lateness does
//! not accumulate. When the next deadline has already passed at re-arm time (the task or the
//! host was too slow), those releases are counted as missed and the task skips ahead to the
//! first grid point still in the future.
//!
//! Once a second of TSC time the window's statistics are queued as an `rt-stats` line
//! (format and resolution in `rt_demo::stats`), which goes out piecewise in the first half
//! of the following periods (`console::Deferred`), so that printing does not make the task
//! miss releases.
//!
//! [`Timer::start`] runs in ring 0 at boot; [`run`] runs in the ring-3 task and reaches the
//! timer only through the wait system call (`syscall::wait_until`), which arms the deadline
//! and halts (`sti; hlt`) until the interrupt. So per period the ring-0 (emulated on software
//! KVM) work is a dozen instructions of system call and a dozen of interrupt handler.

use core::sync::atomic::Ordering;

use bulkhead_guest_sdk as sdk;
use bulkhead_guest_sdk::arch::x86::{
    self,
    lapic::{self, LocalApic, Mode},
};
use rt_demo::line::Line;
use rt_demo::stats::{self, Window};
use rt_demo::tsc::TscScale;

use crate::console::Deferred;
use crate::interrupts::{EOI_X2APIC, SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::syscall;

/// The LAPIC, set up with its timer in TSC-deadline mode on [`TIMER_VECTOR`].
pub struct Timer {
    apic: LocalApic,
}

impl Timer {
    /// Enables the local APIC (x2APIC mode if `x2apic`) and puts its timer in TSC-deadline
    /// mode, disarmed. The caller has checked CPUID for the APIC and TSC-deadline mode, and
    /// the IDT is loaded.
    pub fn start(x2apic: bool) -> Timer {
        // SAFETY: the caller checked CPUID.1 for an APIC (and x2APIC if asked); the xAPIC
        // page is identity-mapped uncached by the boot page tables; nothing else uses it.
        let apic = unsafe { LocalApic::enable(x2apic) };
        EOI_X2APIC.store(apic.mode() == Mode::X2Apic, Ordering::Relaxed);
        for (reg, value) in [
            (lapic::reg::TPR, 0),
            (
                lapic::reg::SVR,
                lapic::SVR_ENABLE | u32::from(SPURIOUS_VECTOR),
            ),
            (lapic::reg::LVT_LINT0, lapic::LVT_MASKED),
            (
                lapic::reg::LVT_TIMER,
                lapic::LVT_TIMER_TSC_DEADLINE | u32::from(TIMER_VECTOR),
            ),
        ] {
            // SAFETY: writable registers; interrupts are disabled and every vector involved
            // has a handler in the IDT.
            unsafe { apic.write(reg, value) };
        }
        // The SDM asks for a fence between the LVT write (xAPIC MMIO) and the first
        // IA32_TSC_DEADLINE write, so the mode change is seen first.
        // SAFETY: `mfence` only orders memory accesses.
        unsafe { core::arch::asm!("mfence", options(nostack, preserves_flags)) };
        Timer { apic }
    }

    /// How the LAPIC's registers are reached.
    pub fn mode(&self) -> Mode {
        self.apic.mode()
    }
}

/// Runs the task with period `period_us` until `duration_s` reports have been printed
/// (0: forever). Needs a started [`Timer`].
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
    pub fn from_options(options: &rt_demo::cmdline::Options, monitor: bool) -> Health {
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

pub fn run(scale: &TscScale, period_us: u64, duration_s: u64, health: &Health) {
    let period = scale.ns_to_ticks(period_us * 1000).max(1);
    let second = scale.ns_to_ticks(1_000_000_000);
    let mut window = Window::new();
    let mut reports = 0u64;
    let mut output = Deferred::new();

    let start = x86::rdtsc();
    let mut deadline = start + period;
    let mut next_report = start + second;
    let mut periods = 0u64;
    loop {
        let woke = syscall::wait_until(deadline);
        periods += 1;
        let kicking = health.stall_after == 0 || reports < health.stall_after;
        if health.kick_every != 0 && kicking && periods % health.kick_every == 0 {
            let _ = sdk::watchdog_kick();
        }
        // A wake-up before the deadline (a host timer advanced too far) counts as on time.
        window.record(scale.ticks_to_ns(woke.saturating_sub(deadline)));

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
            deadline += behind * period;
        }
    }
}
