//! Model-specific registers (`rdmsr`/`wrmsr`). Numbers from the Intel SDM vol. 4.

use core::arch::asm;

/// IA32_APIC_BASE: local APIC base address and enable bits (SDM vol. 3A §11.4.4).
pub const IA32_APIC_BASE: u32 = 0x1b;
/// IA32_APIC_BASE bit 11: the local APIC is enabled.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
/// IA32_APIC_BASE bit 10: x2APIC mode (SDM vol. 3A §11.12.1).
pub const APIC_BASE_X2APIC: u64 = 1 << 10;
/// IA32_TSC_DEADLINE: the LAPIC timer fires when the TSC reaches this value (§11.5.4.1).
pub const IA32_TSC_DEADLINE: u32 = 0x6e0;
/// IA32_EFER (§2.2.1): long mode enable (bit 8) among others.
pub const IA32_EFER: u32 = 0xc000_0080;

/// Reads MSR `msr`.
///
/// # Safety
/// `msr` must exist on this CPU (else #GP), and reading it must have no side effect the
/// caller has not accounted for.
#[inline(always)]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes `value` to MSR `msr`.
///
/// # Safety
/// `msr` must exist and accept `value` (else #GP), and the write's effect on the machine
/// (interrupts, paging, timers) must be one the caller has prepared for.
#[inline(always)]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags));
    }
}
