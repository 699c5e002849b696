//! The `pvcalls` attack's repertoire: every kind of paravirtual request the monitor must
//! refuse (`docs/pv-abi.md` §2–3: each answered with an error status and no effect) or
//! ignore (a doorbell whose block is not all in RAM, a doorbell `out` of the wrong width),
//! made over and over. Nothing here is a valid call with an effect: no `PowerOff`, no
//! `WatchdogKick` (the first would arm a watchdog), no `ReportPanic`, no valid
//! `ReportDeadlineMiss`, no `WaitNextPeriod` that would block.

use bulkhead_guest_sdk::abi::{self, Call};

/// An address no partition has memory at.
pub const OUTSIDE_MEMORY: u64 = 0xffff_ffff_0000;
/// A call number the ABI does not define.
pub const UNDEFINED_CALL: u64 = u64::MAX;

/// One hostile request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadCall {
    /// A call through a well-formed block: `(nr, args)`, and the status the ABI mandates.
    Call(u64, [u64; abi::CALL_ARGS], abi::Error),
    /// A 32-bit doorbell `out` of this value, naming no block in RAM.
    Doorbell(u32),
    /// A byte `out` to the doorbell port (only 32-bit writes ring it).
    DoorbellByte(u8),
}

/// How many requests [`repertoire`] holds.
pub const REPERTOIRE: usize = 12;

/// The requests, in the order they are made. `buffer` is a valid buffer of the guest (for the
/// cases where only a length is wrong), `ram_end` the end of the RAM range the image runs in
/// (for a block that straddles it).
pub fn repertoire(buffer: u64, ram_end: u64) -> [BadCall; REPERTOIRE] {
    let console = Call::ConsoleWrite as u64;
    let name = Call::PartitionId as u64;
    let wait = Call::WaitNextPeriod as u64;
    let miss = Call::ReportDeadlineMiss as u64;
    let straddling =
        ram_end.saturating_sub(abi::CALL_BLOCK_SIZE as u64 / 2) >> abi::CALL_BLOCK_ALIGN_SHIFT;
    [
        BadCall::Call(UNDEFINED_CALL, [0; 6], abi::Error::UnknownCall),
        BadCall::Call(console, [OUTSIDE_MEMORY, 16, 0, 0, 0, 0], abi::Error::Fault),
        BadCall::Call(console, [u64::MAX - 8, 16, 0, 0, 0, 0], abi::Error::Fault),
        BadCall::Call(
            console,
            [buffer, abi::CONSOLE_WRITE_MAX + 1, 0, 0, 0, 0],
            abi::Error::TooBig,
        ),
        BadCall::Call(
            name,
            [OUTSIDE_MEMORY, abi::NAME_MAX, 0, 0, 0, 0],
            abi::Error::Fault,
        ),
        BadCall::Call(
            name,
            [buffer, abi::NAME_MAX + 1, 0, 0, 0, 0],
            abi::Error::TooBig,
        ),
        BadCall::Call(wait, [0; 6], abi::Error::Invalid),
        BadCall::Call(
            wait,
            [abi::MAX_PERIOD_NS + 1, 0, 0, 0, 0, 0],
            abi::Error::Invalid,
        ),
        BadCall::Call(miss, [0; 6], abi::Error::Invalid),
        BadCall::Call(miss, [1 << 32, 0, 0, 0, 0, 0], abi::Error::Invalid),
        BadCall::Doorbell(u32::try_from(straddling).unwrap_or(u32::MAX)),
        BadCall::DoorbellByte(0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_request_is_a_call_with_an_effect() {
        let harmless = [
            Call::AbiVersion as u64,
            Call::ConsoleWrite as u64,
            Call::PartitionId as u64,
            Call::WaitNextPeriod as u64,
            Call::ReportDeadlineMiss as u64,
            UNDEFINED_CALL,
        ];

        for request in repertoire(0x20_0000, 32 << 20) {
            if let BadCall::Call(nr, _, _) = request {
                assert!(harmless.contains(&nr), "call {nr}");
            }
        }
    }

    #[test]
    fn straddling_block_begins_in_ram_and_ends_past_it() {
        let ram_end: u64 = 32 << 20;
        let calls = repertoire(0x20_0000, ram_end);

        let BadCall::Doorbell(doorbell) = calls[10] else {
            panic!("{:?}", calls[10]);
        };
        let block = u64::from(doorbell) << abi::CALL_BLOCK_ALIGN_SHIFT;

        assert!(block < ram_end && block + abi::CALL_BLOCK_SIZE as u64 > ram_end);
    }
}
