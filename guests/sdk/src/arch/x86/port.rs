//! Port I/O (`in`/`out`).

use core::arch::asm;

/// Reads a byte from `port`.
///
/// # Safety
/// Reading a device register may have side effects on that device; the caller owns it.
#[inline(always)]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: forwarded to the caller; `in` touches no memory.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a byte to `port`.
///
/// # Safety
/// The caller owns the device behind `port` and knows what the write does.
#[inline(always)]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded to the caller; `out` touches no memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 16-bit word to `port`.
///
/// # Safety
/// The caller owns the device behind `port` and knows what the write does.
#[inline(always)]
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: forwarded to the caller; `out` touches no memory.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 32-bit word to `port`.
///
/// Deliberately not `nomem`: a device (the bulkhead doorbell, for one) may read or write
/// guest memory while the vCPU is stopped at the `out`.
///
/// # Safety
/// The caller owns the device behind `port` and knows what the write does, including any
/// memory the device may access as a result.
#[inline(always)]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, preserves_flags))
    };
}
