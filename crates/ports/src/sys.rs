//! The two system calls the channels need beyond memory: the shared futex (wait for, and
//! wake, a change of a 32-bit word that several processes map) and the monotonic clock the
//! sampling timestamps use (`CLOCK_MONOTONIC`: one clock for every process of the machine).
#![allow(unsafe_code)]

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// `CLOCK_MONOTONIC` now, in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Sleeps while `word` holds `expected`, at most `timeout` (`FUTEX_WAIT`, shared: the word may
/// live in a mapping of another process). Returns at once if the word differs; may return
/// early (a wake, a signal, or nothing): callers look again.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live, aligned u32 in a mapping this process holds for the call's
    // duration; FUTEX_WAIT only reads it; `ts` is a valid relative timeout; the unused
    // arguments are null/0 as FUTEX_WAIT wants.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}

/// Wakes every waiter on `word` (`FUTEX_WAKE`, shared).
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32 in a mapping this process holds; FUTEX_WAKE reads
    // no memory but the futex key; the unused arguments are null/0.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
}
