//! Typed wrappers of the port and doorbell calls of ABI 0.3 (`bulkhead_pvabi::Call::PortOpen`
//! ..= `DoorbellAttach`; their doc comments in `crates/pvabi` are the contract), one per call,
//! and the decoding of their answers.
//!
//! A partition reaches only the ports and doorbells its system description gives it
//! (`[[partition.port]]`, `[[doorbell]]`), by name: [`port_open`] returns the handle every
//! other call takes, and what the handle is ([`PortKind`]). The ports follow ARINC 653 Part 1
//! inter-partition communication: a *sampling* port holds the latest message (its source
//! overwrites it, its destination reads it as often as it likes, with its age); a *queuing*
//! port is a bounded FIFO (the source waits for room or overflows, the destination waits for a
//! message or finds none). A *doorbell* carries no data: its ringer raises the receiver's
//! pending count and, when the receiver attached a vector, an interrupt.
//!
//! Timeouts are in nanoseconds, 0 ..= [`abi::MAX_TIMEOUT_NS`]: 0 does not wait
//! ([`Error::NotAvailable`](abi::Error::NotAvailable) when there is nothing to take or no
//! room), anything else blocks the calling vCPU up to that long
//! ([`Error::TimedOut`](abi::Error::TimedOut)).
//!
//! Message buffers are named to the monitor by their address (identity mapping, see the crate
//! docs); a receive buffer must hold the port's largest message
//! ([`PortInfo::max_message_bytes`]) or the monitor refuses the call.

use bulkhead_pvabi::{self as abi, Call, PortKind};

use crate::calls::{args1, args2, call, CallError};

/// What [`port_open`] found under a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInfo {
    /// The handle the other calls take (the same for every open of that name).
    pub handle: u64,
    /// What the handle is.
    pub kind: PortKind,
    /// The port's largest message in bytes; 0 for doorbells.
    pub max_message_bytes: usize,
    /// Sampling destinations: the refresh period in ns; queuing ports: the depth in
    /// messages; else 0.
    pub param: u64,
}

/// The message [`sampling_read`] copied into the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampledMessage {
    /// Its length: the message is `buffer[..len]`.
    pub len: usize,
    /// Whether its age is within the port's refresh period.
    pub valid: bool,
    /// Nanoseconds since it was written.
    pub age_ns: u64,
}

/// The state of a port or doorbell ([`port_status`]), by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortStatus {
    /// A sampling port (either end).
    Sampling {
        /// A message was ever written.
        written: bool,
        /// Its age is within the refresh period.
        valid: bool,
        /// Nanoseconds since it was written.
        age_ns: u64,
    },
    /// A queuing port (either end).
    Queuing {
        /// Messages waiting.
        waiting: u64,
        /// The most that fit.
        depth: u64,
    },
    /// A doorbell rung for this partition.
    DoorbellIn {
        /// Rings not yet taken by [`doorbell_wait`].
        pending: u64,
    },
    /// A doorbell this partition rings (it has no state of its own).
    DoorbellOut,
}

/// How console lines spell a port kind: `sampling-source`, `sampling-destination`,
/// `queuing-source`, `queuing-destination`, `doorbell-out`, `doorbell-in`.
pub const fn port_kind_name(kind: PortKind) -> &'static [u8] {
    match kind {
        PortKind::SamplingSource => b"sampling-source",
        PortKind::SamplingDestination => b"sampling-destination",
        PortKind::QueuingSource => b"queuing-source",
        PortKind::QueuingDestination => b"queuing-destination",
        PortKind::DoorbellOut => b"doorbell-out",
        PortKind::DoorbellIn => b"doorbell-in",
    }
}

/// Opens the port or doorbell `name` (at most [`abi::PORT_NAME_MAX`] bytes, else
/// `Refused(TooBig)`). `Refused(InvalidConfig)`: the partition has none of that name.
pub fn port_open(name: &[u8]) -> Result<PortInfo, CallError> {
    let values = call(
        Call::PortOpen,
        args2(name.as_ptr() as u64, name.len() as u64),
    )?;
    decode_port_info(values)
}

/// Writes `message` (1 ..= the port's largest message bytes) to sampling source `handle`,
/// replacing the previous message.
pub fn sampling_write(handle: u64, message: &[u8]) -> Result<(), CallError> {
    call(
        Call::SamplingWrite,
        [
            handle,
            message.as_ptr() as u64,
            message.len() as u64,
            0,
            0,
            0,
        ],
    )
    .map(drop)
}

/// Copies the latest message of sampling destination `handle` into `buffer` (at least the
/// port's largest message). `Refused(NotAvailable)`: nothing was ever written.
pub fn sampling_read(handle: u64, buffer: &mut [u8]) -> Result<SampledMessage, CallError> {
    let values = call(
        Call::SamplingRead,
        [
            handle,
            buffer.as_mut_ptr() as u64,
            buffer.len() as u64,
            0,
            0,
            0,
        ],
    )?;
    decode_sampled(values, buffer.len())
}

/// Queues `message` (1 ..= the port's largest message bytes) on queuing source `handle`,
/// waiting up to `timeout_ns` for room. `Refused(NotAvailable)`: full and `timeout_ns` is 0
/// (an overflow); `Refused(TimedOut)`: still full after the timeout.
pub fn queuing_send(handle: u64, message: &[u8], timeout_ns: u64) -> Result<(), CallError> {
    call(
        Call::QueuingSend,
        [
            handle,
            message.as_ptr() as u64,
            message.len() as u64,
            timeout_ns,
            0,
            0,
        ],
    )
    .map(drop)
}

/// Takes the oldest message of queuing destination `handle` into `buffer` (at least the
/// port's largest message), waiting up to `timeout_ns` for one; returns its length (the
/// message is `buffer[..len]`). `Refused(NotAvailable)`: empty and `timeout_ns` is 0;
/// `Refused(TimedOut)`: still empty after the timeout.
pub fn queuing_receive(
    handle: u64,
    buffer: &mut [u8],
    timeout_ns: u64,
) -> Result<usize, CallError> {
    let values = call(
        Call::QueuingReceive,
        [
            handle,
            buffer.as_mut_ptr() as u64,
            buffer.len() as u64,
            timeout_ns,
            0,
            0,
        ],
    )?;
    decode_length(values[0], buffer.len())
}

/// The state of the port or doorbell `port` (as [`port_open`] returned it: its kind says how
/// to read the answer).
pub fn port_status(port: &PortInfo) -> Result<PortStatus, CallError> {
    let values = call(Call::PortStatus, args1(port.handle))?;
    Ok(decode_port_status(port.kind, values))
}

/// Rings outgoing doorbell `handle`.
pub fn doorbell_ring(handle: u64) -> Result<(), CallError> {
    call(Call::DoorbellRing, args1(handle)).map(drop)
}

/// Waits up to `timeout_ns` for incoming doorbell `handle` to have been rung and takes every
/// pending ring; returns how many. `Refused(NotAvailable)`: none and `timeout_ns` is 0;
/// `Refused(TimedOut)`: none in time.
pub fn doorbell_wait(handle: u64, timeout_ns: u64) -> Result<u64, CallError> {
    Ok(call(Call::DoorbellWait, args2(handle, timeout_ns))?[0])
}

/// Attaches interrupt `vector` (at least [`abi::MIN_DOORBELL_VECTOR`]; 0 detaches) to
/// incoming doorbell `handle`: every later ring raises it on vCPU 0's local APIC (fixed,
/// edge), so the guest needs a handler for it that signals EOI.
pub fn doorbell_attach(handle: u64, vector: u8) -> Result<(), CallError> {
    call(Call::DoorbellAttach, args2(handle, u64::from(vector))).map(drop)
}

fn decode_port_info(values: [u64; abi::CALL_VALUES]) -> Result<PortInfo, CallError> {
    let kind = PortKind::from_u64(values[1]).ok_or(CallError::BadAnswer)?;
    Ok(PortInfo {
        handle: values[0],
        kind,
        max_message_bytes: usize::try_from(values[2]).map_err(|_| CallError::BadAnswer)?,
        param: values[3],
    })
}

fn decode_sampled(
    values: [u64; abi::CALL_VALUES],
    capacity: usize,
) -> Result<SampledMessage, CallError> {
    Ok(SampledMessage {
        len: decode_length(values[0], capacity)?,
        valid: values[1] != 0,
        age_ns: values[2],
    })
}

/// A message length the monitor reports: never more than the buffer it was offered.
fn decode_length(len: u64, capacity: usize) -> Result<usize, CallError> {
    match usize::try_from(len) {
        Ok(len) if len <= capacity => Ok(len),
        _ => Err(CallError::BadAnswer),
    }
}

fn decode_port_status(kind: PortKind, values: [u64; abi::CALL_VALUES]) -> PortStatus {
    match kind {
        PortKind::SamplingSource | PortKind::SamplingDestination => PortStatus::Sampling {
            written: values[0] != 0,
            valid: values[1] != 0,
            age_ns: values[2],
        },
        PortKind::QueuingSource | PortKind::QueuingDestination => PortStatus::Queuing {
            waiting: values[0],
            depth: values[1],
        },
        PortKind::DoorbellIn => PortStatus::DoorbellIn { pending: values[0] },
        PortKind::DoorbellOut => PortStatus::DoorbellOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_open_answer_is_decoded() {
        let info = decode_port_info([7, 3, 256, 16]);

        assert_eq!(
            info,
            Ok(PortInfo {
                handle: 7,
                kind: PortKind::QueuingDestination,
                max_message_bytes: 256,
                param: 16
            })
        );
    }

    #[test]
    fn port_open_answer_with_an_undefined_kind_is_a_bad_answer() {
        assert_eq!(decode_port_info([7, 6, 0, 0]), Err(CallError::BadAnswer));
    }

    #[test]
    fn every_kind_has_its_own_spelling() {
        let names = [0, 1, 2, 3, 4, 5].map(|k| PortKind::from_u64(k).map(port_kind_name));

        assert_eq!(
            names,
            [
                Some(&b"sampling-source"[..]),
                Some(b"sampling-destination"),
                Some(b"queuing-source"),
                Some(b"queuing-destination"),
                Some(b"doorbell-out"),
                Some(b"doorbell-in")
            ]
        );
    }

    #[test]
    fn sampled_message_is_decoded() {
        assert_eq!(
            decode_sampled([12, 1, 5_000_000, 0], 64),
            Ok(SampledMessage {
                len: 12,
                valid: true,
                age_ns: 5_000_000
            })
        );
    }

    #[test]
    fn stale_sampled_message_is_not_valid() {
        assert_eq!(
            decode_sampled([12, 0, 900_000_000, 0], 64).map(|m| m.valid),
            Ok(false)
        );
    }

    #[test]
    fn message_longer_than_the_buffer_is_a_bad_answer() {
        assert_eq!(
            [
                decode_sampled([65, 1, 0, 0], 64).map(|m| m.len),
                decode_length(65, 64),
                decode_length(64, 64),
            ],
            [Err(CallError::BadAnswer), Err(CallError::BadAnswer), Ok(64)]
        );
    }

    #[test]
    fn port_status_is_read_by_kind() {
        let values = [3, 8, 1_000, 0];

        let statuses = [
            PortKind::SamplingDestination,
            PortKind::QueuingSource,
            PortKind::DoorbellIn,
            PortKind::DoorbellOut,
        ]
        .map(|kind| decode_port_status(kind, values));

        assert_eq!(
            statuses,
            [
                PortStatus::Sampling {
                    written: true,
                    valid: true,
                    age_ns: 1_000
                },
                PortStatus::Queuing {
                    waiting: 3,
                    depth: 8
                },
                PortStatus::DoorbellIn { pending: 3 },
                PortStatus::DoorbellOut
            ]
        );
    }
}
