//! The tiny ring-0 kernel that bulkhead's bare-metal guest images (`rt-demo`, `hostile`) run
//! on, and the services it gives their one task in ring 3.
//!
//! An image is a freestanding 64-bit ELF linked at 2 MiB with this crate's `linker.ld`,
//! entered through the bulkhead native note or the Xen PVH note ([`boot`]). The kernel
//! detects the monitor (`AbiVersion`), picks the console (the ABI's, else COM1, masking the
//! 8259s), loads the IDT and a TSS, puts the local APIC timer in TSC-deadline mode when the
//! CPU has one, and drops to ring 3 with IOPL 3, where it calls the image's task. From then
//! on it only runs for interrupts and exceptions ([`interrupts`]) and for the task's system
//! calls and port I/O ([`syscall`]), a few dozen instructions each — ring-0 code is emulated
//! instruction by instruction on software KVM (`shared/reference/build-machine-kvm.md`),
//! ring-3 code runs natively.
//!
//! An image declares itself with [`image!`]: its name (the prefix of the kernel's own
//! messages) and its task. The task then uses [`console`], [`start_info`], [`syscall`],
//! [`tsc_khz`], [`print_banner`] and [`shutdown`]; an image that attaches
//! [`DOORBELL_VECTOR`] to an incoming doorbell watches [`doorbell_interrupts`]. Under a
//! bulkhead monitor the kernel uses the paravirtualization ABI (console, identity, clock,
//! power-off); without one (QEMU) it falls back to COM1, the PIT and ACPI/i8042 ([`pc`]).
//!
//! The plain code the kernel uses (formatting, TSC arithmetic, descriptor encodings) lives in
//! `bulkhead-guest-sdk`, where it is unit-tested on the host; this crate is never linked into
//! a host program, and is empty when built for host tests (`cargo test --workspace --lib`
//! builds every library's test harness: this one has nothing to test and could not link the
//! boot code without the image's linker script).
#![cfg(not(test))]
#![no_std]

mod boot;
pub mod console;
mod cpu;
mod interrupts;
mod pc;
pub mod start_info;
pub mod syscall;
mod timer;

pub use interrupts::DOORBELL_VECTOR;

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use bulkhead_guest_sdk::abi;
use bulkhead_guest_sdk::arch::x86::lapic::Mode;
use bulkhead_guest_sdk::arch::x86::{self, cpuid, tsc};
use bulkhead_guest_sdk::line::Line;
use bulkhead_guest_sdk::{self as sdk, CallError};

/// Exit code: ran for as long as asked and finished.
pub const EXIT_DONE: u64 = 0;
/// Exit code: the platform lacks something the task needs (TSC-deadline timer, a way to
/// calibrate the TSC).
pub const EXIT_UNSUPPORTED: u64 = 1;
/// Exit code: a CPU exception.
pub const EXIT_FAULT: u64 = 2;
/// Exit code: a Rust panic (a bug in the image).
pub const EXIT_PANIC: u64 = 3;

/// What an image tells the kernel about itself; defined by [`image!`].
pub struct Image {
    /// Prefix of the kernel's messages (`NAME: exception …`, `NAME: panic …`, the banner).
    pub name: &'static [u8],
    /// The task, called in ring 3 with the start-info address; never returns.
    pub task: extern "C" fn(u64) -> !,
}

/// Declares the image: `bulkhead_guest_kernel::image!(name: b"rt-demo", task: task_main);`
/// in the binary's root. Defines the [`Image`] the kernel reads, the panic handler (report,
/// then power off with [`EXIT_PANIC`]) and the unwinding personality the precompiled `core`
/// refers to.
#[macro_export]
macro_rules! image {
    (name: $name:expr, task: $task:path $(,)?) => {
        /// Read by the kernel ([`bulkhead_guest_kernel::image`]).
        #[no_mangle]
        static BULKHEAD_GUEST_IMAGE: $crate::Image = $crate::Image {
            name: $name,
            task: $task,
        };

        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo) -> ! {
            $crate::panic(info)
        }

        /// Referenced by the precompiled `core` (built to unwind) when the image is linked
        /// without LTO (both profiles use LTO, see `guests/Cargo.toml`); never called, since
        /// the image aborts on panic.
        #[no_mangle]
        extern "C" fn rust_eh_personality() {}
    };
}

extern "Rust" {
    /// Defined by the image's [`image!`].
    static BULKHEAD_GUEST_IMAGE: Image;
}

/// The image the kernel runs.
pub fn image() -> &'static Image {
    // SAFETY: `image!` defines the static, immutable and initialised at link time; an image
    // that lacks it does not link.
    unsafe { &BULKHEAD_GUEST_IMAGE }
}

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

/// How long to measure the TSC against the monitor's clock when it does not know the
/// frequency.
const CALIBRATION_NS: u64 = 20_000_000;
/// Most clock reads a calibration makes (each is a VM exit of several µs; this is seconds).
const CALIBRATION_READS: u32 = 1_000_000;

/// Whether a bulkhead monitor answered the ABI at boot.
pub fn monitor() -> bool {
    ABI_VERSION.load(Ordering::Relaxed) != NO_MONITOR
}

/// How the local APIC's TSC-deadline timer is reached, `None` if the CPU has none (then
/// [`syscall::wait_until`] must not be used).
pub fn lapic_timer() -> Option<Mode> {
    match TIMER.load(Ordering::Relaxed) {
        TIMER_X2APIC => Some(Mode::X2Apic),
        TIMER_XAPIC => Some(Mode::XApic),
        _ => None,
    }
}

extern "C" {
    /// The end of the image in memory, `.bss` and stacks included (`linker.ld`).
    static __image_end: u8;
}

/// The first address after the image in memory (`.bss` and stacks included): RAM above it is
/// the task's to use.
pub fn image_end() -> u64 {
    // Only the symbol's address is taken (the linker script defines it), never its value.
    core::ptr::addr_of!(__image_end) as u64
}

/// Interrupts on [`DOORBELL_VECTOR`] since boot: attach it to an incoming doorbell
/// (`bulkhead_guest_sdk::doorbell_attach`) and watch this count grow.
pub fn doorbell_interrupts() -> u64 {
    interrupts::DOORBELL_INTERRUPTS.load(Ordering::Relaxed)
}

/// Interrupts that arrived on vectors nobody programmed.
pub fn unexpected_interrupts() -> u64 {
    interrupts::UNEXPECTED_INTERRUPTS.load(Ordering::Relaxed)
}

/// The ring-0 part, entered from [`boot`] on the kernel stack with interrupts disabled:
/// everything that needs privilege, kept short because ring-0 code is emulated on software
/// KVM. Then the image's task takes over in ring 3.
extern "C" fn kernel_main(start_info_addr: u64) -> ! {
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
        let mode = match timer::start(features.x2apic) {
            Mode::X2Apic => TIMER_X2APIC,
            Mode::XApic => TIMER_XAPIC,
        };
        TIMER.store(mode, Ordering::Relaxed);
    }
    cpu::enter_user(image().task, start_info_addr)
}

/// `NAME: abi=<major.minor|none> partition=<index|none> vcpu=<index|none> name=<name|none>
/// tsc_khz=<k>`.
pub fn print_banner(tsc_khz: u64) {
    let mut line = Line::new();
    line.str(image().name).str(b": abi=");
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
        CallError::BadAnswer => line.str(b"bad answer"),
    };
}

/// The TSC frequency in kHz: the monitor's value if it has one, else measured against the
/// monitor's clock, else (no monitor) against the PIT. 0 if nothing worked.
pub fn tsc_khz() -> u64 {
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

/// Powers the partition off with `code`: through the ABI under a monitor, else as a PC can;
/// halts if that did not work. Callable from the task and from the kernel.
pub fn shutdown(code: u64) -> ! {
    if monitor() {
        let _ = sdk::raw_call(abi::Call::PowerOff as u64, [code, 0, 0, 0, 0, 0]);
    } else {
        pc::power_off();
    }
    syscall::halt()
}

/// The panic handler's body (see [`image!`]): prints `NAME: panic at FILE:LINE: MESSAGE`,
/// reports the panic to the health monitor, and powers off with [`EXIT_PANIC`] if the
/// monitor lets the partition go on.
pub fn panic(info: &PanicInfo) -> ! {
    let mut line = Line::new();
    line.str(image().name).str(b": panic");
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
