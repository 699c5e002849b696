//! `rt-demo`, bulkhead's real-time partition guest.
//!
//! A freestanding 64-bit image (linked at 2 MiB, entered through the bulkhead native note or
//! the Xen PVH note, see [`boot`]) that runs one periodic task on the local APIC's
//! TSC-deadline timer and reports, once a second, the distribution of its wake-up latency.
//! A tiny ring-0 kernel (boot, interrupt stubs, two system calls: [`cpu`], [`interrupts`],
//! [`syscall`]) runs the task in ring 3, where software KVM runs it natively:
//!
//! ```text
//! rt-demo: abi=0.1 partition=0 vcpu=0 name=control tsc_khz=2599998
//! rt-demo: lapic=x2apic timer=tsc-deadline task=ring3 period_us=1000 duration_s=3
//! rt-stats period_us=1000 samples=1000 min_ns=16415 p50_ns=21000 p99_ns=27000 max_ns=59487 missed=0
//! rt-demo: done
//! ```
//!
//! Under a bulkhead monitor it uses the paravirtualization ABI (console, identity, clock,
//! power-off); without one (QEMU) it falls back to COM1, the PIT and ACPI/i8042 ([`pc`]).
//! Command line, statistics and formatting live in the `rt_demo` library, unit-tested on the
//! host. See `guests/README.md` for building and running.
#![no_std]
#![no_main]

mod boot;
mod console;
mod cpu;
mod interrupts;
mod pc;
mod periodic;
mod start_info;
mod syscall;

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use bulkhead_guest_sdk::abi::{self, Call};
use bulkhead_guest_sdk::arch::x86::lapic::Mode;
use bulkhead_guest_sdk::arch::x86::{self, cpuid};
use bulkhead_guest_sdk::{self as sdk, CallError};
use rt_demo::cmdline;
use rt_demo::line::Line;
use rt_demo::tsc::{self, TscScale};

/// Exit code: ran for `duration_s` and finished.
pub const EXIT_DONE: u64 = 0;
/// Exit code: the platform lacks something the task needs (TSC-deadline timer, a way to
/// calibrate the TSC).
pub const EXIT_UNSUPPORTED: u64 = 1;
/// Exit code: a CPU exception.
pub const EXIT_FAULT: u64 = 2;
/// Exit code: a Rust panic (a bug in the image).
pub const EXIT_PANIC: u64 = 3;

/// Longest command line read from the start info.
const CMDLINE_MAX: usize = 1024;
/// How long to measure the TSC against the monitor's clock when it does not know the
/// frequency.
const CALIBRATION_NS: u64 = 20_000_000;
/// Most clock reads a calibration makes (each is a VM exit of several µs; this is seconds).
const CALIBRATION_READS: u32 = 1_000_000;
/// An address no partition has memory at, for the self-test's fault cases.
const OUTSIDE_MEMORY: u64 = 0xffff_ffff_0000;
/// A call number ABI v0 does not define.
const UNDEFINED_CALL: u64 = u64::MAX;

/// [`ABI_VERSION`] when no bulkhead monitor answered.
const NO_MONITOR: u64 = u64::MAX;
/// The monitor's ABI version, or [`NO_MONITOR`]; decides console, clock and exit.
static ABI_VERSION: AtomicU64 = AtomicU64::new(NO_MONITOR);
/// How the LAPIC timer was set up at boot: [`TIMER_NONE`] (the CPU lacks TSC-deadline mode),
/// [`TIMER_XAPIC`] or [`TIMER_X2APIC`].
static TIMER: AtomicU8 = AtomicU8::new(TIMER_NONE);
const TIMER_NONE: u8 = 0;
const TIMER_XAPIC: u8 = 1;
const TIMER_X2APIC: u8 = 2;

fn monitor() -> bool {
    ABI_VERSION.load(Ordering::Relaxed) != NO_MONITOR
}

/// The ring-0 part, entered from [`boot`] on the kernel stack with interrupts disabled:
/// everything that needs privilege, kept short because ring-0 code is emulated on software
/// KVM. Then the task takes over in ring 3 ([`task_main`]).
extern "C" fn rt_main(start_info_addr: u64) -> ! {
    if let Ok(version) = sdk::abi_version() {
        ABI_VERSION.store(u64::from(version), Ordering::Relaxed);
        console::use_monitor();
    } else {
        // The firmware's timer tick is routed through the 8259s on a vector that collides
        // with exceptions: mask it before interrupts are ever enabled.
        pc::mask_pics();
        console::use_com1();
    }
    interrupts::install();
    cpu::load_tss();
    let features = cpuid::features();
    if features.apic && features.tsc_deadline {
        let timer = periodic::Timer::start(features.x2apic);
        let mode = if timer.mode() == Mode::X2Apic {
            TIMER_X2APIC
        } else {
            TIMER_XAPIC
        };
        TIMER.store(mode, Ordering::Relaxed);
    }
    cpu::enter_user(task_main, start_info_addr)
}

/// The task, in ring 3 with IOPL 3: console, options, calibration, the periodic loop.
extern "C" fn task_main(start_info_addr: u64) -> ! {
    let mut cmdline_buf = [0u8; CMDLINE_MAX];
    let cmdline = match start_info::cmdline(start_info_addr, &mut cmdline_buf) {
        Ok(cmdline) => cmdline,
        Err(missing) => {
            let mut line = Line::new();
            line.str(b"rt-demo: no usable start info at ")
                .hex(start_info_addr)
                .str(match missing {
                    start_info::Missing::NoStartInfo => b" (bad address)",
                    start_info::Missing::BadMagic => b" (bad magic)",
                });
            line.str(b"; using defaults");
            console::println(&mut line);
            &[]
        }
    };
    let parsed = cmdline::parse(cmdline);
    let options = parsed.options;

    let scale = TscScale::from_khz(tsc_khz()).unwrap_or_else(|| {
        console::print_str(b"rt-demo: cannot determine the TSC frequency");
        shutdown(EXIT_UNSUPPORTED)
    });
    print_banner(scale.khz());
    if let Some(word) = parsed.rejected {
        let mut line = Line::new();
        line.str(b"rt-demo: ignoring invalid option ")
            .printable(word);
        console::println(&mut line);
    }
    if options.selftest {
        selftest();
    }

    let lapic: &[u8] = match TIMER.load(Ordering::Relaxed) {
        TIMER_X2APIC => b"x2apic",
        TIMER_XAPIC => b"xapic",
        _ => {
            console::print_str(b"rt-demo: this CPU has no TSC-deadline local APIC timer");
            shutdown(EXIT_UNSUPPORTED)
        }
    };
    let mut line = Line::new();
    line.str(b"rt-demo: lapic=")
        .str(lapic)
        .str(b" timer=tsc-deadline task=ring3 period_us=")
        .u64(options.period_us)
        .str(b" duration_s=")
        .u64(options.duration_s);
    console::println(&mut line);

    let health = periodic::Health::from_options(&options, monitor());
    periodic::run(&scale, options.period_us, options.duration_s, &health);

    let unexpected = interrupts::UNEXPECTED_INTERRUPTS.load(Ordering::Relaxed);
    if unexpected != 0 {
        let mut line = Line::new();
        line.str(b"rt-demo: unexpected_interrupts=").u64(unexpected);
        console::println(&mut line);
    }
    console::print_str(b"rt-demo: done");
    shutdown(EXIT_DONE)
}

/// `rt-demo: abi=<major.minor|none> partition=<index|none> vcpu=<index|none>
/// name=<name|none> tsc_khz=<k>`.
fn print_banner(tsc_khz: u64) {
    let mut line = Line::new();
    line.str(b"rt-demo: abi=");
    let version = ABI_VERSION.load(Ordering::Relaxed);
    if version == NO_MONITOR {
        line.str(b"none partition=none vcpu=none name=none tsc_khz=")
            .u64(tsc_khz);
        console::println(&mut line);
        return;
    }
    line.u64(version >> 16).str(b".").u64(version & 0xffff);
    let mut name = [0u8; abi::NAME_MAX as usize];
    match sdk::partition_id(&mut name) {
        Ok(id) => {
            line.str(b" partition=")
                .u64(id.partition)
                .str(b" vcpu=")
                .u64(id.vcpu)
                .str(b" name=");
            match name.get(..id.name_len) {
                Some(name) if !name.is_empty() => line.printable(name),
                _ => line.str(b"none"),
            };
        }
        Err(e) => {
            line.str(b" partition=? vcpu=? name=? (PartitionId: ");
            write_call_error(&mut line, e);
            line.str(b")");
        }
    }
    line.str(b" tsc_khz=").u64(tsc_khz);
    console::println(&mut line);
}

fn write_call_error(line: &mut Line, e: CallError) {
    match e {
        CallError::NoMonitor => line.str(b"no monitor"),
        CallError::Refused(e) => line.str(b"status ").i64(e as i64),
        CallError::UnknownStatus(s) => line.str(b"status ").i64(s),
    };
}

/// The TSC frequency in kHz: the monitor's value if it has one, else measured against the
/// monitor's clock, else (no monitor) against the PIT. 0 if nothing worked.
fn tsc_khz() -> u64 {
    if !monitor() {
        return pc::pit_calibrate_tsc_khz();
    }
    match sdk::monotonic_time() {
        Ok(time) if time.tsc_khz != 0 => time.tsc_khz,
        Ok(_) => calibrate_against_monitor_clock().unwrap_or(0),
        Err(_) => 0,
    }
}

/// Measures the TSC over [`CALIBRATION_NS`] of the monitor's clock. Each clock read is
/// bracketed by two TSC reads and paired with their midpoint. `None` if the clock fails or
/// does not advance within [`CALIBRATION_READS`] reads.
fn calibrate_against_monitor_clock() -> Option<u64> {
    let sample = || -> Option<(u64, u64)> {
        let before = x86::rdtsc();
        let ns = sdk::monotonic_time().ok()?.ns;
        let after = x86::rdtsc();
        Some((before + (after - before) / 2, ns))
    };
    let (tsc0, ns0) = sample()?;
    for _ in 0..CALIBRATION_READS {
        let (tsc1, ns1) = sample()?;
        let elapsed = ns1.saturating_sub(ns0);
        if elapsed >= CALIBRATION_NS {
            return Some(tsc::khz_from(tsc1 - tsc0, elapsed, 1_000_000_000));
        }
    }
    None
}

/// Makes the calls ABI v0 must refuse and prints one line with their statuses:
/// `abi-selftest unknown=-1 fault=-2 too_big=-3 invalid=-4 name_fault=-2 result=pass`.
fn selftest() {
    if !monitor() {
        console::print_str(b"abi-selftest skipped: no bulkhead monitor");
        return;
    }
    let buffer = b"abi-selftest";
    let cases: [(&[u8], u64, [u64; abi::CALL_ARGS], abi::Error); 5] = [
        (b"unknown", UNDEFINED_CALL, [0; 6], abi::Error::UnknownCall),
        (
            b"fault",
            Call::ConsoleWrite as u64,
            [OUTSIDE_MEMORY, 16, 0, 0, 0, 0],
            abi::Error::Fault,
        ),
        (
            b"too_big",
            Call::ConsoleWrite as u64,
            [buffer.as_ptr() as u64, 1 << 20, 0, 0, 0, 0],
            abi::Error::TooBig,
        ),
        (
            b"invalid",
            Call::WaitNextPeriod as u64,
            [0; 6],
            abi::Error::Invalid,
        ),
        (
            b"name_fault",
            Call::PartitionId as u64,
            [OUTSIDE_MEMORY, abi::NAME_MAX, 0, 0, 0, 0],
            abi::Error::Fault,
        ),
    ];
    let mut line = Line::new();
    line.str(b"abi-selftest");
    let mut pass = true;
    for (name, nr, args, expected) in cases {
        let (status, _) = sdk::raw_call(nr, args);
        pass &= status == expected as i64;
        line.str(b" ").str(name).str(b"=");
        if status == abi::STATUS_UNANSWERED {
            line.str(b"unanswered");
        } else {
            line.i64(status);
        }
    }
    line.str(if pass {
        b" result=pass"
    } else {
        b" result=fail"
    });
    console::println(&mut line);
}

/// Powers the partition off with `code`: through the ABI under a monitor, else as a PC can;
/// halts if that did not work. Callable from the task and from the kernel.
pub fn shutdown(code: u64) -> ! {
    if monitor() {
        let _ = sdk::raw_call(Call::PowerOff as u64, [code, 0, 0, 0, 0, 0]);
    } else {
        pc::power_off();
    }
    syscall::halt()
}

/// Referenced by the precompiled `core` (built to unwind) when the image is linked without
/// LTO (both profiles use LTO, see `guests/Cargo.toml`); never called, since the image aborts
/// on panic.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let mut line = Line::new();
    line.str(b"rt-demo: panic");
    if let Some(location) = info.location() {
        line.str(b" at ")
            .str(location.file().as_bytes())
            .str(b":")
            .u64(u64::from(location.line()));
    }
    if let Some(message) = info.message().as_str() {
        line.str(b": ").str(message.as_bytes());
    }
    console::println(&mut line);
    if monitor() {
        // The health monitor decides (halt by default); if it lets us go on, power off.
        let _ = sdk::report_panic(EXIT_PANIC);
    }
    shutdown(EXIT_PANIC)
}
