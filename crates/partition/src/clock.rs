//! The host's monotonic clock as the time windows use it: reading it, sleeping until an
//! absolute time, and a per-thread timer that sends the calling thread a signal at an absolute
//! time (`timer_create(2)` with `SIGEV_THREAD_ID`). All times are `CLOCK_MONOTONIC`
//! nanoseconds, which every process of the host shares, so the supervisor and the partition
//! processes agree on when a major frame starts.
#![allow(unsafe_code)]

use std::io;

/// `CLOCK_MONOTONIC` now, in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    timespec_ns(&ts)
}

fn timespec_ns(ts: &libc::timespec) -> u64 {
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

fn ns_timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline_ns`. Returns early (`false`) when a signal
/// interrupts the sleep; the caller looks at the clock again.
pub fn sleep_until_ns(deadline_ns: u64) -> bool {
    let ts = ns_timespec(deadline_ns);
    // SAFETY: `ts` is a valid timespec; no remaining time is asked for (absolute sleep).
    let rc = unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
    rc == 0
}

/// A timer that signals the thread that created it, at absolute monotonic times.
#[derive(Debug)]
pub struct ThreadTimer {
    id: libc::timer_t,
}

// The timer id is a kernel handle; arming it from another thread is allowed, but the timer
// is only ever used by the thread that made it.

impl ThreadTimer {
    /// A disarmed timer that will send `signal` to the calling thread.
    pub fn for_current_thread(signal: i32) -> io::Result<ThreadTimer> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
        // SAFETY: an all-zero sigevent is valid plain data; the fields that matter are set
        // below.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = signal;
        event.sigev_notify_thread_id = tid;
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `event` and `id` are valid for the call; the timer is deleted on drop.
        let rc = unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut id) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ThreadTimer { id })
    }

    /// Fires once at `deadline_ns` (replacing any earlier setting).
    pub fn arm_at_ns(&self, deadline_ns: u64) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: ns_timespec(0),
            // A zero value would disarm it: a deadline at 0 is in the past anyway.
            it_value: ns_timespec(deadline_ns.max(1)),
        };
        // SAFETY: `self.id` is a live timer of this process; `spec` is valid.
        let rc = unsafe {
            libc::timer_settime(self.id, libc::TIMER_ABSTIME, &spec, std::ptr::null_mut())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        // SAFETY: `self.id` is a live timer created by `timer_create`; deleted once.
        unsafe { libc::timer_delete(self.id) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeping_until_a_deadline_returns_at_or_after_it() {
        let deadline = monotonic_ns() + 2_000_000;

        while !sleep_until_ns(deadline) {}

        assert!(monotonic_ns() >= deadline);
    }

    #[test]
    fn a_thread_timer_can_be_made_armed_and_dropped() {
        // SIGWINCH is ignored by default: firing does no harm to the test process.
        let timer = ThreadTimer::for_current_thread(libc::SIGWINCH).unwrap();

        let armed = timer.arm_at_ns(monotonic_ns() + 1_000);

        assert!(armed.is_ok());
    }
}
