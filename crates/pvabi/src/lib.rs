//! The bulkhead paravirtualization ABI: the contract between a partition's guest and its
//! monitor. Shared, byte for byte, by the monitor (`bulkhead-devices`) and the `no_std` guest
//! SDK (`guests/sdk`). Specified in `docs/pv-abi.md`; this crate is its machine-readable form.
//!
//! Architecture-neutral part: a guest owns one *call block* per vCPU (128 bytes, 64-byte
//! aligned, in its own RAM). To make a call it fills `nr` and `args`, then rings the doorbell
//! with the block's guest-physical address divided by 64. The monitor reads the block, performs
//! the call, writes `status` and `values`, and resumes the vCPU. The doorbell is the only trap.
//!
//! x86 binding: the doorbell is a 32-bit `out` to I/O port [`X86_DOORBELL_PORT`].
#![no_std]
#![forbid(unsafe_code)]

/// ABI major version. Incompatible changes bump it.
pub const ABI_MAJOR: u16 = 0;
/// ABI minor version. Compatible additions bump it.
pub const ABI_MINOR: u16 = 3;
/// The version as reported by [`Call::AbiVersion`]: `major << 16 | minor`.
pub const ABI_VERSION: u32 = ((ABI_MAJOR as u32) << 16) | ABI_MINOR as u32;

/// x86 binding: the doorbell I/O port. A 32-bit `out` of `call_block_gpa >> 6` rings it.
pub const X86_DOORBELL_PORT: u16 = 0x0e10;

/// Size of a call block in bytes.
pub const CALL_BLOCK_SIZE: usize = 128;
/// Required alignment of a call block (the doorbell carries the address shifted by this).
pub const CALL_BLOCK_ALIGN_SHIFT: u32 = 6;
/// Number of argument words in a call block.
pub const CALL_ARGS: usize = 6;
/// Number of result words in a call block.
pub const CALL_VALUES: usize = 4;

/// Byte offsets of the call-block fields (all little-endian `u64`; `status` is an `i64`).
pub mod offset {
    /// Call number ([`crate::Call`]), written by the guest.
    pub const NR: usize = 0;
    /// Arguments `args[0..6]`, written by the guest.
    pub const ARGS: usize = 8;
    /// Status, written by the monitor: 0 for success, a negative [`crate::Error`] otherwise.
    pub const STATUS: usize = 56;
    /// Results `values[0..4]`, written by the monitor.
    pub const VALUES: usize = 64;
    /// Reserved to the end of the block: zeroed by the guest, ignored by the monitor.
    pub const RESERVED: usize = 96;
}

/// The value a guest writes to `status` before ringing, so it can tell "no monitor answered"
/// (for example when the same image boots under another hypervisor) from any real status.
pub const STATUS_UNANSWERED: i64 = i64::MIN;

/// Largest buffer accepted by [`Call::ConsoleWrite`].
pub const CONSOLE_WRITE_MAX: u64 = 4096;
/// Largest buffer accepted by [`Call::PartitionId`] for the partition name.
pub const NAME_MAX: u64 = 64;

/// ELF note that marks an image as a bulkhead-native guest entered directly in 64-bit mode at
/// the ELF entry point (see `docs/pv-abi.md`, "Boot"). Note name `"bulkhead"`, type
/// [`ELF_NOTE_TYPE_NATIVE`], descriptor: the `u32` ABI version the guest was built against.
pub const ELF_NOTE_NAME: &[u8] = b"bulkhead";
/// Note type of the native-guest note.
pub const ELF_NOTE_TYPE_NATIVE: u32 = 1;

/// Call numbers (`nr`).
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `values[0]` = [`ABI_VERSION`].
    AbiVersion = 0,
    /// `args[0]` = buffer GPA, `args[1]` = length (≤ [`CONSOLE_WRITE_MAX`]).
    /// `values[0]` = bytes written.
    ConsoleWrite = 1,
    /// `args[0]` = name buffer GPA, `args[1]` = its length (0 for none, ≤ [`NAME_MAX`]).
    /// `values[0]` = partition index in the system description, `values[1]` = calling vCPU
    /// index, `values[2]` = name length (the name is copied if the buffer is large enough,
    /// else [`Error::TooBig`]), `values[3]` = criticality (0 low, 1 high).
    PartitionId = 2,
    /// `values[0]` = nanoseconds since the partition started (monotonic, never goes back),
    /// `values[1]` = the vCPU's TSC frequency in kHz (0 if unknown).
    MonotonicTime = 3,
    /// `args[0]` = period in ns ([`MIN_PERIOD_NS`]..=[`MAX_PERIOD_NS`], else [`Error::Invalid`]). The first call starts a release grid at "now";
    /// each call blocks the vCPU until the next release of that grid.
    /// `values[0]` = release time (ns, as [`Call::MonotonicTime`]), `values[1]` = wake-up
    /// lateness in ns, `values[2]` = releases missed since the previous call.
    /// Changing the period restarts the grid.
    WaitNextPeriod = 4,
    /// `args[0]` = exit code. The partition powers off; the call does not return.
    PowerOff = 5,
    /// Kicks the partition's watchdog (ABI 0.2). The first kick arms it; from then on the
    /// next must come within the timeout or the health monitor acts (`docs/pv-abi.md`).
    /// `values[0]` = the timeout in ms, 0 when the partition has no watchdog (the kick does
    /// nothing).
    WatchdogKick = 6,
    /// Reports `args[0]` deadlines missed since the last report (1..=`u32::MAX`, else
    /// [`Error::Invalid`]) to the health monitor (ABI 0.2). Returns when the monitor lets the
    /// partition go on; does not return when the threshold's action stops it.
    ReportDeadlineMiss = 7,
    /// Reports a guest panic with code `args[0]` to the health monitor (ABI 0.2). Returns only
    /// when the declared action lets the partition go on (`ignore`, `log`).
    ReportPanic = 8,
    /// Opens the port or doorbell named by the `args[1]` bytes at `args[0]` (ABI 0.3): one
    /// the system description gives this partition (`[[partition.port]]`, `[[doorbell]]`).
    /// `values[0]` = its handle (the same for every open of that name), `values[1]` = its
    /// [`PortKind`], `values[2]` = the largest message in bytes (ports; 0 for doorbells),
    /// `values[3]` = the refresh period in ns (sampling destinations), the depth in messages
    /// (queuing ports), else 0. [`Error::InvalidConfig`] when the partition has no port or
    /// doorbell of that name; [`Error::TooBig`] for a name longer than [`PORT_NAME_MAX`].
    PortOpen = 9,
    /// Writes the message of `args[2]` bytes (1..=the port's largest) at `args[1]` to sampling
    /// source `args[0]`, replacing the previous one (ABI 0.3).
    SamplingWrite = 10,
    /// Reads the latest message of sampling destination `args[0]` into the buffer of
    /// `args[2]` bytes (at least the port's largest message) at `args[1]` (ABI 0.3).
    /// `values[0]` = its length, `values[1]` = validity (1 when its age is within the port's
    /// refresh period, else 0), `values[2]` = its age in ns. [`Error::NotAvailable`] when
    /// nothing was ever written.
    SamplingRead = 11,
    /// Queues the message of `args[2]` bytes (1..=the port's largest) at `args[1]` on queuing
    /// source `args[0]`, waiting up to `args[3]` ns (0..=[`MAX_TIMEOUT_NS`]) for room (ABI
    /// 0.3). [`Error::NotAvailable`]: the queue is full and `args[3]` is 0 (overflow);
    /// [`Error::TimedOut`]: still full after the timeout.
    QueuingSend = 12,
    /// Takes the oldest message of queuing destination `args[0]` into the buffer of `args[2]`
    /// bytes (at least the port's largest message) at `args[1]`, waiting up to `args[3]` ns
    /// (0..=[`MAX_TIMEOUT_NS`]) for one (ABI 0.3). `values[0]` = its length.
    /// [`Error::NotAvailable`]: empty and `args[3]` is 0; [`Error::TimedOut`]: still empty.
    QueuingReceive = 13,
    /// The state of port or doorbell `args[0]` (ABI 0.3). Queuing: `values[0]` = messages
    /// waiting, `values[1]` = depth. Sampling: `values[0]` = 1 once a message was written,
    /// `values[1]` = validity, `values[2]` = age in ns. Incoming doorbell: `values[0]` =
    /// rings not yet taken by [`Call::DoorbellWait`].
    PortStatus = 14,
    /// Rings outgoing doorbell `args[0]` (ABI 0.3): the receiving partition's pending count
    /// grows by one and, if it attached a vector, it gets an interrupt.
    DoorbellRing = 15,
    /// Waits up to `args[1]` ns (0..=[`MAX_TIMEOUT_NS`]) for incoming doorbell `args[0]` to
    /// have been rung, and takes every pending ring (ABI 0.3). `values[0]` = rings taken.
    /// [`Error::NotAvailable`]: none and `args[1]` is 0; [`Error::TimedOut`]: none in time.
    DoorbellWait = 16,
    /// Attaches interrupt vector `args[1]` (32..=255; 0 detaches) to incoming doorbell
    /// `args[0]` (ABI 0.3): every later ring raises it on vCPU 0's local APIC (fixed
    /// delivery, edge), besides counting.
    DoorbellAttach = 17,
}

/// What a handle returned by [`Call::PortOpen`] is (`values[1]`).
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    SamplingSource = 0,
    SamplingDestination = 1,
    QueuingSource = 2,
    QueuingDestination = 3,
    /// A doorbell this partition rings.
    DoorbellOut = 4,
    /// A doorbell rung for this partition.
    DoorbellIn = 5,
}

impl PortKind {
    /// Decodes `values[1]` of [`Call::PortOpen`].
    pub fn from_u64(kind: u64) -> Option<PortKind> {
        Some(match kind {
            0 => PortKind::SamplingSource,
            1 => PortKind::SamplingDestination,
            2 => PortKind::QueuingSource,
            3 => PortKind::QueuingDestination,
            4 => PortKind::DoorbellOut,
            5 => PortKind::DoorbellIn,
            _ => return None,
        })
    }
}

/// Longest port or doorbell name (bytes) [`Call::PortOpen`] accepts.
pub const PORT_NAME_MAX: u64 = 32;
/// Largest message of any port, in bytes (a port's own limit is at most this).
pub const MAX_MESSAGE_BYTES: u64 = 8192;
/// Longest wait of one port or doorbell call (10 s); a guest that wants to wait longer calls
/// again.
pub const MAX_TIMEOUT_NS: u64 = 10_000_000_000;
/// Lowest vector [`Call::DoorbellAttach`] accepts (below are the x86 exceptions).
pub const MIN_DOORBELL_VECTOR: u64 = 32;

impl Call {
    /// Decodes a call number; `None` for numbers this ABI version does not define.
    pub fn from_nr(nr: u64) -> Option<Call> {
        Some(match nr {
            0 => Call::AbiVersion,
            1 => Call::ConsoleWrite,
            2 => Call::PartitionId,
            3 => Call::MonotonicTime,
            4 => Call::WaitNextPeriod,
            5 => Call::PowerOff,
            6 => Call::WatchdogKick,
            7 => Call::ReportDeadlineMiss,
            8 => Call::ReportPanic,
            9 => Call::PortOpen,
            10 => Call::SamplingWrite,
            11 => Call::SamplingRead,
            12 => Call::QueuingSend,
            13 => Call::QueuingReceive,
            14 => Call::PortStatus,
            15 => Call::DoorbellRing,
            16 => Call::DoorbellWait,
            17 => Call::DoorbellAttach,
            _ => return None,
        })
    }
}

/// Error codes, returned negated in `status`.
#[repr(i64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The call number is not defined by this ABI version.
    UnknownCall = -1,
    /// A buffer lies (partly) outside the partition's memory.
    Fault = -2,
    /// A length exceeds the call's maximum.
    TooBig = -3,
    /// An argument is out of range.
    Invalid = -4,
    /// No port or doorbell of that name or handle, or not of the kind the call needs (ABI
    /// 0.3; ARINC 653 `INVALID_CONFIG`).
    InvalidConfig = -5,
    /// Nothing to take, or no room, and the call was not to wait (ABI 0.3; ARINC 653
    /// `NOT_AVAILABLE`).
    NotAvailable = -6,
    /// The wait ended with nothing to take, or no room (ABI 0.3; ARINC 653 `TIMED_OUT`).
    TimedOut = -7,
}

impl Error {
    /// Decodes a negative status; `None` for 0, [`STATUS_UNANSWERED`] or unknown codes.
    pub fn from_status(status: i64) -> Option<Error> {
        Some(match status {
            -1 => Error::UnknownCall,
            -2 => Error::Fault,
            -3 => Error::TooBig,
            -4 => Error::Invalid,
            -5 => Error::InvalidConfig,
            -6 => Error::NotAvailable,
            -7 => Error::TimedOut,
            _ => return None,
        })
    }
}

/// Minimum period accepted by [`Call::WaitNextPeriod`], in nanoseconds.
pub const MIN_PERIOD_NS: u64 = 1000;
/// Maximum period accepted by [`Call::WaitNextPeriod`] (10 s), so one call never blocks its
/// vCPU for longer than that.
pub const MAX_PERIOD_NS: u64 = 10_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_numbers_round_trip() {
        for nr in 0..18 {
            assert_eq!(Call::from_nr(nr).map(|c| c as u64), Some(nr));
        }
        assert_eq!(Call::from_nr(18), None);
    }

    #[test]
    fn error_codes_round_trip() {
        for e in [
            Error::UnknownCall,
            Error::Fault,
            Error::TooBig,
            Error::Invalid,
            Error::InvalidConfig,
            Error::NotAvailable,
            Error::TimedOut,
        ] {
            assert_eq!(Error::from_status(e as i64), Some(e));
        }
        assert_eq!(Error::from_status(STATUS_UNANSWERED), None);
    }

    #[test]
    fn port_kinds_round_trip() {
        for kind in 0..6 {
            assert_eq!(PortKind::from_u64(kind).map(|k| k as u64), Some(kind));
        }
        assert_eq!(PortKind::from_u64(6), None);
    }

    #[test]
    fn call_block_fields_fit_the_block() {
        assert_eq!(offset::ARGS + CALL_ARGS * 8, offset::STATUS);
        assert_eq!(offset::VALUES + CALL_VALUES * 8, offset::RESERVED);
        const { assert!(offset::RESERVED < CALL_BLOCK_SIZE) };
    }
}
