//! CPUID feature bits the guest cares about (Intel SDM vol. 2A, "CPUID").

use core::arch::x86_64::{__cpuid_count, CpuidResult};

/// Executes CPUID for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    __cpuid_count(leaf, subleaf)
}

/// The features a periodic real-time guest needs to know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// CPUID.1:EDX bit 9: an on-chip local APIC.
    pub apic: bool,
    /// CPUID.1:ECX bit 21: x2APIC mode.
    pub x2apic: bool,
    /// CPUID.1:ECX bit 24: the LAPIC timer's TSC-deadline mode.
    pub tsc_deadline: bool,
    /// CPUID.1:ECX bit 31: running under a hypervisor.
    pub hypervisor: bool,
}

/// Reads [`Features`] from CPUID leaf 1.
pub fn features() -> Features {
    let leaf1 = cpuid(1, 0);
    Features {
        apic: leaf1.edx & (1 << 9) != 0,
        x2apic: leaf1.ecx & (1 << 21) != 0,
        tsc_deadline: leaf1.ecx & (1 << 24) != 0,
        hypervisor: leaf1.ecx & (1 << 31) != 0,
    }
}
