//! The C memory functions that `core` calls (`memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`),
//! for images linked without a C library (feature `mem`). The host target's
//! `compiler_builtins` does not provide them.
//!
//! Copies and fills use the x86 string instructions, eight bytes per iteration (`rep movsq`,
//! `rep stosq`) and then the remaining bytes: few instructions and few iterations, which
//! matters when ring-0 guest code is emulated instruction by instruction (KVM's emulator
//! steps through a `rep` one iteration at a time). They are written in assembly so that the
//! compiler cannot turn them back into calls to themselves.

use core::arch::asm;

/// # Safety
/// `dest` and `src` are valid for `n` bytes and do not overlap (C `memcpy`).
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid and disjoint; the direction flag is
    // clear, as the ABI requires at every call.
    unsafe {
        asm!("rep movsq", "mov ecx, {tail:e}", "rep movsb",
             tail = in(reg) n & 7,
             inout("rcx") n / 8 => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `dest` and `src` are valid for `n` bytes; they may overlap (C `memmove`).
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // Copying forwards is safe: `dest` does not start inside `src[..n]`.
        // SAFETY: forwarded from the caller.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: the ranges are valid (caller) and `dest` starts inside `src[..n]`, so copy
    // backwards from the last byte, then restore the direction flag.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _,
             inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dest
}

/// # Safety
/// `dest` is valid for `n` bytes (C `memset`).
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    let pattern = u64::from(c as u8) * 0x0101_0101_0101_0101;
    // SAFETY: the caller guarantees the range is valid; the direction flag is clear.
    unsafe {
        asm!("rep stosq", "mov ecx, {tail:e}", "rep stosb",
             tail = in(reg) n & 7,
             inout("rcx") n / 8 => _, inout("rdi") dest => _, in("rax") pattern,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `a` and `b` are valid for `n` bytes (C `memcmp`).
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n` and both ranges are valid for `n` bytes (caller).
        let (x, y) = unsafe { (a.add(i).read(), b.add(i).read()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// `a` and `b` are valid for `n` bytes (C `bcmp`).
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { memcmp(a, b, n) }
}
