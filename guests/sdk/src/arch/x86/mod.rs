//! x86-64 helpers for a bare-metal guest running in ring 0: port I/O, MSRs, CPUID, the TSC
//! (and converting its ticks, [`tsc`]), interrupt-flag control, the local APIC, and the
//! encodings of the descriptors a kernel loads ([`descriptor`]). Thin wrappers over single
//! instructions; each `unsafe fn` states what the caller must guarantee. The arithmetic
//! modules ([`descriptor`], [`tsc`]) are plain code, unit-tested on the host.

use core::arch::asm;

pub mod cpuid;
pub mod descriptor;
pub mod lapic;
pub mod msr;
pub mod port;
pub mod tsc;

/// Reads the time-stamp counter (`rdtsc`). Not serialising: it may be taken a few
/// instructions early, which is far below anything a guest measures with it.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` only reads the TSC; bulkhead and QEMU never set CR4.TSD for guests,
    // and the guest itself does not either.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Disables maskable interrupts (`cli`).
#[inline(always)]
pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety; at worst it delays handlers.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Enables interrupts just long enough to halt until the next one arrives (`sti; hlt; cli`),
/// then returns with interrupts disabled. `sti` takes effect only after `hlt` has started, so
/// an interrupt that is already pending wakes the halt instead of being lost before it.
///
/// # Safety
/// An IDT must be loaded whose entries for every vector that can arrive point to handlers
/// that preserve the interrupted context.
#[inline(always)]
pub unsafe fn wait_for_interrupt() {
    // SAFETY: handlers are in place (caller); the asm reads and writes memory only through
    // those handlers, which the compiler must assume, so no `nomem`.
    unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
}

/// Halts this vCPU for good: interrupts disabled, `hlt` in a loop (an NMI may still wake it;
/// it halts again).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: `cli; hlt` only stops the vCPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
