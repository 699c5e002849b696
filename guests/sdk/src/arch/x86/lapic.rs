//! The local APIC (Intel SDM vol. 3A ch. 11), in x2APIC mode (registers are MSRs
//! `0x800 + offset / 16`, §11.12.1) when the CPU offers it, else in xAPIC mode (registers are
//! 32-bit MMIO at [`XAPIC_BASE`] + offset, with the page identity-mapped).

use core::ptr;

use super::msr::{self, APIC_BASE_ENABLE, APIC_BASE_X2APIC, IA32_APIC_BASE};

/// Default xAPIC MMIO base (§11.4.1).
pub const XAPIC_BASE: u64 = 0xfee0_0000;

/// Register offsets in the xAPIC page (§11.4.1, table 11-1).
pub mod reg {
    /// Local APIC ID.
    pub const ID: u32 = 0x020;
    /// Task priority.
    pub const TPR: u32 = 0x080;
    /// End of interrupt.
    pub const EOI: u32 = 0x0b0;
    /// Spurious-interrupt vector; bit 8 software-enables the APIC.
    pub const SVR: u32 = 0x0f0;
    /// Error status.
    pub const ESR: u32 = 0x280;
    /// LVT timer.
    pub const LVT_TIMER: u32 = 0x320;
    /// LVT LINT0.
    pub const LVT_LINT0: u32 = 0x350;
    /// LVT error.
    pub const LVT_ERROR: u32 = 0x370;
    /// Timer initial count.
    pub const TIMER_INITIAL: u32 = 0x380;
    /// Timer current count.
    pub const TIMER_CURRENT: u32 = 0x390;
    /// Timer divide configuration.
    pub const TIMER_DIVIDE: u32 = 0x3e0;
}

/// SVR bit 8: APIC software enable.
pub const SVR_ENABLE: u32 = 1 << 8;
/// LVT bit 16: masked.
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT timer mode bits 18:17 = 0b10: TSC-deadline (§11.5.4.1).
pub const LVT_TIMER_TSC_DEADLINE: u32 = 0b10 << 17;

/// How the registers are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Memory-mapped at [`XAPIC_BASE`].
    XApic,
    /// MSRs `0x800..0x8ff`.
    X2Apic,
}

/// The calling vCPU's local APIC, enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalApic {
    mode: Mode,
}

impl LocalApic {
    /// Enables the local APIC globally (IA32_APIC_BASE), in x2APIC mode if `x2apic`, and
    /// returns a handle to it. Does not software-enable it (see [`reg::SVR`]).
    ///
    /// # Safety
    /// The CPU has a local APIC (CPUID.1:EDX bit 9) and, if `x2apic`, x2APIC support
    /// (CPUID.1:ECX bit 21); for xAPIC mode the page at [`XAPIC_BASE`] is identity-mapped
    /// uncached and the base has not been moved. Nothing else uses the APIC concurrently.
    pub unsafe fn enable(x2apic: bool) -> LocalApic {
        // SAFETY: IA32_APIC_BASE exists when the CPU has an APIC (caller).
        let mut base = unsafe { msr::rdmsr(IA32_APIC_BASE) };
        if base & APIC_BASE_ENABLE == 0 {
            base |= APIC_BASE_ENABLE;
            // SAFETY: setting the global enable bit is always valid (§11.4.3).
            unsafe { msr::wrmsr(IA32_APIC_BASE, base) };
        }
        let mode = if x2apic {
            if base & APIC_BASE_X2APIC == 0 {
                // SAFETY: xAPIC-enabled to x2APIC is a valid transition (§11.12.5) and the
                // CPU supports x2APIC (caller).
                unsafe { msr::wrmsr(IA32_APIC_BASE, base | APIC_BASE_X2APIC) };
            }
            Mode::X2Apic
        } else {
            Mode::XApic
        };
        LocalApic { mode }
    }

    /// The mode the registers are reached in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Reads the register at xAPIC offset `offset` (see [`reg`]).
    ///
    /// # Safety
    /// `offset` names a readable register of this APIC.
    pub unsafe fn read(&self, offset: u32) -> u32 {
        match self.mode {
            // SAFETY: x2APIC registers are MSRs 0x800 + offset/16 (§11.12.1.2); caller vouches
            // for the register.
            Mode::X2Apic => unsafe { msr::rdmsr(0x800 + (offset >> 4)) as u32 },
            // SAFETY: the xAPIC page is mapped (see `enable`); aligned 32-bit MMIO read.
            Mode::XApic => unsafe {
                ptr::read_volatile((XAPIC_BASE + u64::from(offset)) as *const u32)
            },
        }
    }

    /// Writes `value` to the register at xAPIC offset `offset` (see [`reg`]).
    ///
    /// # Safety
    /// `offset` names a writable register, and the write's effect (interrupts, timer) is one
    /// the caller has prepared for.
    pub unsafe fn write(&self, offset: u32, value: u32) {
        match self.mode {
            // SAFETY: see `read`.
            Mode::X2Apic => unsafe { msr::wrmsr(0x800 + (offset >> 4), u64::from(value)) },
            // SAFETY: see `read`; aligned 32-bit MMIO write.
            Mode::XApic => unsafe {
                ptr::write_volatile((XAPIC_BASE + u64::from(offset)) as *mut u32, value)
            },
        }
    }

    /// Signals end of interrupt.
    ///
    /// # Safety
    /// Called from the handler of an interrupt this APIC delivered (not a spurious one).
    pub unsafe fn eoi(&self) {
        // SAFETY: EOI is writable; the caller is in a handler.
        unsafe { self.write(reg::EOI, 0) };
    }

    /// Arms the TSC-deadline timer to fire when the TSC reaches `tsc` (0 disarms it).
    ///
    /// # Safety
    /// The LVT timer is in TSC-deadline mode and its vector has a handler.
    pub unsafe fn set_tsc_deadline(&self, tsc: u64) {
        // SAFETY: IA32_TSC_DEADLINE exists when CPUID.1:ECX bit 24 is set, which the caller
        // checked before choosing TSC-deadline mode.
        unsafe { msr::wrmsr(msr::IA32_TSC_DEADLINE, tsc) };
    }
}
