//! Typed wrappers, one per call of ABI 0.1 and 0.2 (`docs/pv-abi.md`, "Calls"), and the
//! decoding of every call's answer ([`decode`], [`CallError`]). The port and doorbell calls of
//! ABI 0.3 are in [`crate::ports`].

use bulkhead_pvabi::{self as abi, Call, Error};

use crate::block::raw_call;

/// Why a call did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// Nothing answered the doorbell: no bulkhead monitor is present.
    NoMonitor,
    /// The monitor refused the call.
    Refused(Error),
    /// The monitor answered with a status this ABI version does not define.
    UnknownStatus(i64),
    /// The monitor answered success with results the call's contract rules out (a port kind
    /// this ABI version does not define, a message longer than the buffer offered).
    BadAnswer,
}

impl CallError {
    /// How console lines spell the error: `no-monitor`; `unknown-call`, `fault`, `too-big`,
    /// `invalid`, `invalid-config`, `not-available`, `timed-out` (the [`Error`] codes);
    /// `unknown-status`; `bad-answer`.
    pub const fn name(self) -> &'static [u8] {
        match self {
            CallError::NoMonitor => b"no-monitor",
            CallError::Refused(Error::UnknownCall) => b"unknown-call",
            CallError::Refused(Error::Fault) => b"fault",
            CallError::Refused(Error::TooBig) => b"too-big",
            CallError::Refused(Error::Invalid) => b"invalid",
            CallError::Refused(Error::InvalidConfig) => b"invalid-config",
            CallError::Refused(Error::NotAvailable) => b"not-available",
            CallError::Refused(Error::TimedOut) => b"timed-out",
            CallError::UnknownStatus(_) => b"unknown-status",
            CallError::BadAnswer => b"bad-answer",
        }
    }
}

pub(crate) fn call(
    nr: Call,
    args: [u64; abi::CALL_ARGS],
) -> Result<[u64; abi::CALL_VALUES], CallError> {
    let (status, values) = raw_call(nr as u64, args);
    decode(status, values)
}

/// Interprets a call's answer.
pub fn decode(
    status: i64,
    values: [u64; abi::CALL_VALUES],
) -> Result<[u64; abi::CALL_VALUES], CallError> {
    match status {
        0 => Ok(values),
        abi::STATUS_UNANSWERED => Err(CallError::NoMonitor),
        other => {
            Err(Error::from_status(other)
                .map_or(CallError::UnknownStatus(other), CallError::Refused))
        }
    }
}

pub(crate) fn args1(a0: u64) -> [u64; abi::CALL_ARGS] {
    [a0, 0, 0, 0, 0, 0]
}

pub(crate) fn args2(a0: u64, a1: u64) -> [u64; abi::CALL_ARGS] {
    [a0, a1, 0, 0, 0, 0]
}

/// The monitor's ABI version (`major << 16 | minor`); the usual way to detect a monitor.
pub fn abi_version() -> Result<u32, CallError> {
    let values = call(Call::AbiVersion, args1(0))?;
    Ok(values[0] as u32)
}

/// Writes `bytes` to the partition's console, in pieces of at most
/// [`abi::CONSOLE_WRITE_MAX`] bytes. Returns the number of bytes the monitor accepted.
pub fn console_write(bytes: &[u8]) -> Result<usize, CallError> {
    let mut written = 0;
    for chunk in bytes.chunks(abi::CONSOLE_WRITE_MAX as usize) {
        let values = call(
            Call::ConsoleWrite,
            args2(chunk.as_ptr() as u64, chunk.len() as u64),
        )?;
        written += values[0] as usize;
    }
    Ok(written)
}

/// Who the calling partition and vCPU are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Index of the partition in the system description.
    pub partition: u64,
    /// Index of the calling vCPU within the partition.
    pub vcpu: u64,
    /// Length of the partition's name; the name fills `name[..name_len]` when it fitted.
    pub name_len: usize,
    /// Whether the partition is high-criticality.
    pub high_criticality: bool,
}

/// Asks who we are. The partition's name is copied into `name` (at most
/// [`abi::NAME_MAX`] bytes are offered); a buffer shorter than the name yields
/// `Refused(TooBig)`, an empty one asks for no name.
pub fn partition_id(name: &mut [u8]) -> Result<PartitionInfo, CallError> {
    let len = name.len().min(abi::NAME_MAX as usize);
    let values = call(
        Call::PartitionId,
        args2(name.as_mut_ptr() as u64, len as u64),
    )?;
    Ok(PartitionInfo {
        partition: values[0],
        vcpu: values[1],
        name_len: values[2] as usize,
        high_criticality: values[3] != 0,
    })
}

/// The partition's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Nanoseconds since the partition started.
    pub ns: u64,
    /// The vCPU's TSC frequency in kHz, 0 when the monitor does not know it.
    pub tsc_khz: u64,
}

/// Reads the partition's monotonic clock.
pub fn monotonic_time() -> Result<Time, CallError> {
    let values = call(Call::MonotonicTime, args1(0))?;
    Ok(Time {
        ns: values[0],
        tsc_khz: values[1],
    })
}

/// One release of a `WaitNextPeriod` grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// When the release was due, in monotonic nanoseconds.
    pub release_ns: u64,
    /// How late the vCPU woke after it, in nanoseconds.
    pub lateness_ns: u64,
    /// Releases skipped since the previous call because they were already in the past.
    pub missed: u64,
}

/// Blocks the vCPU until the next release of a grid of period `period_ns` (at least
/// [`abi::MIN_PERIOD_NS`]). The first call, and any call with a different period, starts the
/// grid at "now".
pub fn wait_next_period(period_ns: u64) -> Result<Release, CallError> {
    let values = call(Call::WaitNextPeriod, args1(period_ns))?;
    Ok(Release {
        release_ns: values[0],
        lateness_ns: values[1],
        missed: values[2],
    })
}

/// Kicks the partition's watchdog (ABI 0.2); returns its timeout in ms, 0 when the partition
/// has none. The first kick arms it.
pub fn watchdog_kick() -> Result<u64, CallError> {
    Ok(call(Call::WatchdogKick, args1(0))?[0])
}

/// Tells the health monitor that `count` deadlines were missed since the last report (ABI
/// 0.2). Returns when the monitor lets the partition go on.
pub fn report_deadline_miss(count: u32) -> Result<(), CallError> {
    call(Call::ReportDeadlineMiss, args1(u64::from(count))).map(drop)
}

/// Tells the health monitor the guest panicked with `code` (ABI 0.2). Returns only when the
/// declared action lets the partition go on.
pub fn report_panic(code: u64) -> Result<(), CallError> {
    call(Call::ReportPanic, args1(code)).map(drop)
}

/// Powers the partition off with exit `code`. Without a monitor there is nobody to tell, so
/// the vCPU halts with interrupts disabled.
pub fn power_off(code: u64) -> ! {
    let _ = raw_call(Call::PowerOff as u64, args1(code));
    crate::arch::x86::halt_forever()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_zero_returns_the_values() {
        assert_eq!(decode(0, [1, 2, 3, 4]), Ok([1, 2, 3, 4]));
    }

    #[test]
    fn unanswered_status_means_no_monitor() {
        assert_eq!(
            decode(abi::STATUS_UNANSWERED, [0; 4]),
            Err(CallError::NoMonitor)
        );
    }

    #[test]
    fn defined_errors_are_decoded() {
        assert_eq!(
            [-1, -2, -3, -4].map(|s| decode(s, [0; 4])),
            [
                Error::UnknownCall,
                Error::Fault,
                Error::TooBig,
                Error::Invalid
            ]
            .map(|e| Err(CallError::Refused(e)))
        );
    }

    #[test]
    fn port_errors_of_abi_0_3_are_decoded() {
        assert_eq!(
            [-5, -6, -7].map(|s| decode(s, [0; 4])),
            [Error::InvalidConfig, Error::NotAvailable, Error::TimedOut]
                .map(|e| Err(CallError::Refused(e)))
        );
    }

    #[test]
    fn every_error_has_its_own_spelling() {
        let names = [
            CallError::NoMonitor,
            CallError::Refused(Error::UnknownCall),
            CallError::Refused(Error::Fault),
            CallError::Refused(Error::TooBig),
            CallError::Refused(Error::Invalid),
            CallError::Refused(Error::InvalidConfig),
            CallError::Refused(Error::NotAvailable),
            CallError::Refused(Error::TimedOut),
            CallError::UnknownStatus(-99),
            CallError::BadAnswer,
        ]
        .map(CallError::name);

        assert_eq!(
            names,
            [
                &b"no-monitor"[..],
                b"unknown-call",
                b"fault",
                b"too-big",
                b"invalid",
                b"invalid-config",
                b"not-available",
                b"timed-out",
                b"unknown-status",
                b"bad-answer"
            ]
        );
    }

    #[test]
    fn undefined_statuses_are_reported_as_such() {
        assert_eq!(
            [decode(-99, [0; 4]), decode(-8, [0; 4]), decode(7, [0; 4])],
            [
                Err(CallError::UnknownStatus(-99)),
                Err(CallError::UnknownStatus(-8)),
                Err(CallError::UnknownStatus(7))
            ]
        );
    }
}
