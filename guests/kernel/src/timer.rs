//! The local APIC timer in TSC-deadline mode (SDM vol. 3A §11.5.4.1), set up once at boot in
//! ring 0. The task arms it only through the wait system call ([`crate::syscall::wait_until`]),
//! which writes `IA32_TSC_DEADLINE` and halts until [`TIMER_VECTOR`]'s handler has stored the
//! wake-up TSC.

use core::sync::atomic::Ordering;

use bulkhead_guest_sdk::arch::x86::lapic::{self, LocalApic, Mode};

use crate::interrupts::{EOI_X2APIC, SPURIOUS_VECTOR, TIMER_VECTOR};

/// Enables the local APIC (x2APIC mode if `x2apic`) and puts its timer in TSC-deadline mode,
/// disarmed; returns how its registers are reached. The caller has checked CPUID for the
/// APIC and TSC-deadline mode, and the IDT is loaded.
pub fn start(x2apic: bool) -> Mode {
    // SAFETY: the caller checked CPUID.1 for an APIC (and x2APIC if asked); the xAPIC page is
    // identity-mapped uncached by the boot page tables; nothing else uses it.
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
        // SAFETY: writable registers; interrupts are disabled and every vector involved has a
        // handler in the IDT.
        unsafe { apic.write(reg, value) };
    }
    // The SDM asks for a fence between the LVT write (xAPIC MMIO) and the first
    // IA32_TSC_DEADLINE write, so the mode change is seen first.
    // SAFETY: `mfence` only orders memory accesses.
    unsafe { core::arch::asm!("mfence", options(nostack, preserves_flags)) };
    apic.mode()
}
