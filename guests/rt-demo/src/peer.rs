//! The hardware-free part of the peer side of the ports mode (`ports=peer`): the script the
//! peer runs against a control side (`ports=1`, [`crate::ports`]) and its `rt-peer:` console
//! lines. The image (`main.rs`'s `peer_mode` module) opens the ports and makes the calls of
//! ABI 0.3, through [`PeerCalls`]; the tests here drive the script with a fake.
//!
//! The peer opens the other ends of what the control side opens, by the same names and in
//! the same order ([`crate::ports::OPENED`]): `telemetry` (a sampling destination),
//! `commands` (a queuing source), `replies` (a queuing destination), `kick` (a doorbell it
//! rings) and `tock` (a doorbell rung for it), printing the control side's `rt-ports: open`
//! lines. Then, one [`Step`] per tick of its periodic task ([`crate::ports::Ticks`]), it
//! exercises ARINC 653 Part 1 `READ_SAMPLING_MESSAGE`, `SEND_QUEUING_MESSAGE` and
//! `RECEIVE_QUEUING_MESSAGE` and the doorbells:
//!
//! ```text
//! rt-peer: telemetry valid TEXT            first valid SamplingRead (earlier reads: silent)
//! rt-peer: send cmd-N ok                   N = 1 ..= 5, QueuingSend with timeout 0
//! rt-peer: send cmd-N error=ERR            (the fifth overflows a queue of depth 4)
//! rt-peer: rang kick                       DoorbellRing
//! rt-peer: tock rings=R                    DoorbellWait, 5 s
//! rt-peer: reply TEXT                      four QueuingReceive, 1 s each
//! rt-peer: replies empty error=ERR         one more QueuingReceive, 200 ms
//! rt-peer: telemetry invalid TEXT age_ms=A first invalid SamplingRead (earlier reads: silent)
//! rt-peer: done
//! ```
//!
//! A failed ring, wait or receive prints `rt-peer: ring kick error=ERR`, `rt-peer: tock
//! error=ERR`, `rt-peer: reply error=ERR`; a reply where none should be left prints
//! `rt-peer: replies extra TEXT`; a sampling read that fails prints `rt-peer: telemetry
//! error=ERR` when its error differs from the previous read's (once while the writer has not
//! written yet, not ten times a second). The script goes on after every failure but the two
//! waits for the telemetry, which last until they see what they wait for. `TEXT` is a
//! message's bytes with anything but printable ASCII (spaces too) shown as `?`, `ERR` as
//! `bulkhead_guest_sdk::CallError::name` spells it. The peer is a low-criticality partition:
//! it may block its periodic task inside a step (the waits), which shows as missed releases.

use bulkhead_guest_sdk::line::Line;
use bulkhead_guest_sdk::CallError;

use crate::ports::write_error;

/// What every line of the peer's script starts with.
pub const PREFIX: &[u8] = b"rt-peer: ";
/// How many commands the peer sends: one more than the queue's depth in the tests, so that
/// the last one overflows.
pub const COMMANDS: u64 = 5;
/// What command `N` is: this, then `N` in decimal.
pub const COMMAND: &[u8] = b"cmd-";
/// How many replies the peer waits for: the commands a queue of depth 4 took.
pub const REPLIES: u64 = 4;
/// How long the peer waits for the control side to ring `tock` after it rang `kick`.
pub const TOCK_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long the peer waits for each reply.
pub const REPLY_TIMEOUT_NS: u64 = 1_000_000_000;
/// How long the peer waits for a reply after the last one (none should come).
pub const EMPTY_TIMEOUT_NS: u64 = 200_000_000;

/// A sampling message as [`PeerCalls::read_telemetry`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    /// The message.
    pub text: &'a [u8],
    /// Its age is within the destination's refresh period.
    pub valid: bool,
    /// Nanoseconds since it was written.
    pub age_ns: u64,
}

/// The calls the script makes, each on the port or doorbell of that name (the image makes
/// them through the SDK; the tests fake them).
pub trait PeerCalls {
    /// `SamplingRead` of `telemetry`.
    fn read_telemetry(&mut self) -> Result<Sample<'_>, CallError>;
    /// `QueuingSend` of `message` on `commands`, waiting up to `timeout_ns` for room.
    fn send_command(&mut self, message: &[u8], timeout_ns: u64) -> Result<(), CallError>;
    /// `DoorbellRing` of `kick`.
    fn ring_kick(&mut self) -> Result<(), CallError>;
    /// `DoorbellWait` of `tock`, up to `timeout_ns`: the rings taken.
    fn wait_tock(&mut self, timeout_ns: u64) -> Result<u64, CallError>;
    /// `QueuingReceive` of `replies`, waiting up to `timeout_ns`: the message.
    fn receive_reply(&mut self, timeout_ns: u64) -> Result<&[u8], CallError>;
}

/// One step of the script: what the peer does at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read `telemetry`; again at the next tick until the message is valid.
    AwaitFresh,
    /// Send command `N` (1 ..= [`COMMANDS`]) on `commands` without waiting.
    Send(u64),
    /// Ring `kick`.
    Ring,
    /// Wait up to [`TOCK_TIMEOUT_NS`] for `tock`.
    AwaitTock,
    /// Receive reply `N` (1 ..= [`REPLIES`]) from `replies`, waiting up to
    /// [`REPLY_TIMEOUT_NS`].
    Receive(u64),
    /// Receive from `replies` once more, waiting up to [`EMPTY_TIMEOUT_NS`]: nothing is left.
    ReceiveEmpty,
    /// Read `telemetry`; again at the next tick until the message is invalid.
    AwaitStale,
    /// Print `rt-peer: done`.
    Done,
    /// The script is over.
    Finished,
}

/// Where the peer is in its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    step: Step,
    /// The error of the previous sampling read, if it failed (printed only when it changes).
    read_error: Option<CallError>,
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    /// At the start: waiting for fresh telemetry.
    pub const fn new() -> Self {
        Script {
            step: Step::AwaitFresh,
            read_error: None,
        }
    }

    /// The step the next tick runs.
    pub const fn step(&self) -> Step {
        self.step
    }

    /// Runs one step at a tick: makes its call through `calls` and moves on. Returns the
    /// step's line, or `None` when it prints nothing (a read that is still waiting, the end).
    pub fn tick(&mut self, calls: &mut impl PeerCalls) -> Option<Line> {
        let mut line = line();
        let next = match self.step {
            Step::AwaitFresh | Step::AwaitStale => {
                let want_valid = self.step == Step::AwaitFresh;
                match calls.read_telemetry() {
                    Ok(sample) => {
                        self.read_error = None;
                        if sample.valid != want_valid {
                            return None;
                        }
                        write_sample(&mut line, &sample);
                    }
                    Err(e) => {
                        let repeated = self.read_error == Some(e);
                        self.read_error = Some(e);
                        if repeated {
                            return None;
                        }
                        write_error(line.str(b"telemetry "), e);
                        return Some(line);
                    }
                }
                if want_valid {
                    Step::Send(1)
                } else {
                    Step::Done
                }
            }
            Step::Send(n) => {
                let result = calls.send_command(command_message(n).as_bytes(), 0);
                line.str(b"send ").str(COMMAND).u64(n);
                match result {
                    Ok(()) => line.str(b" ok"),
                    Err(e) => write_error(line.str(b" "), e),
                };
                if n < COMMANDS {
                    Step::Send(n + 1)
                } else {
                    Step::Ring
                }
            }
            Step::Ring => {
                match calls.ring_kick() {
                    Ok(()) => line.str(b"rang kick"),
                    Err(e) => write_error(line.str(b"ring kick "), e),
                };
                Step::AwaitTock
            }
            Step::AwaitTock => {
                match calls.wait_tock(TOCK_TIMEOUT_NS) {
                    Ok(rings) => line.str(b"tock rings=").u64(rings),
                    Err(e) => write_error(line.str(b"tock "), e),
                };
                Step::Receive(1)
            }
            Step::Receive(n) => {
                match calls.receive_reply(REPLY_TIMEOUT_NS) {
                    Ok(reply) => line.str(b"reply ").printable(reply),
                    Err(e) => write_error(line.str(b"reply "), e),
                };
                if n < REPLIES {
                    Step::Receive(n + 1)
                } else {
                    Step::ReceiveEmpty
                }
            }
            Step::ReceiveEmpty => {
                match calls.receive_reply(EMPTY_TIMEOUT_NS) {
                    Ok(reply) => line.str(b"replies extra ").printable(reply),
                    Err(e) => write_error(line.str(b"replies empty "), e),
                };
                Step::AwaitStale
            }
            Step::Done => {
                line.str(b"done");
                Step::Finished
            }
            Step::Finished => return None,
        };
        self.step = next;
        Some(line)
    }
}

/// A line holding just [`PREFIX`].
pub fn line() -> Line {
    let mut line = Line::new();
    line.str(PREFIX);
    line
}

/// Command `n`'s message: `cmd-N`.
pub fn command_message(n: u64) -> Line {
    let mut message = Line::new();
    message.str(COMMAND).u64(n);
    message
}

/// `rt-peer: not started: NAME did not open` (its `rt-ports: open` line says why): the
/// script needs all five ports and doorbells.
pub fn not_started_line(name: &[u8]) -> Line {
    let mut line = line();
    line.str(b"not started: ")
        .printable(name)
        .str(b" did not open");
    line
}

/// Appends `telemetry valid TEXT` or `telemetry invalid TEXT age_ms=A`.
fn write_sample(line: &mut Line, sample: &Sample<'_>) {
    line.str(b"telemetry ");
    if sample.valid {
        line.str(b"valid ").printable(sample.text);
    } else {
        line.str(b"invalid ")
            .printable(sample.text)
            .str(b" age_ms=")
            .u64(sample.age_ns / 1_000_000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_guest_sdk::abi::Error;
    use std::collections::VecDeque;

    const NOT_AVAILABLE: CallError = CallError::Refused(Error::NotAvailable);
    const TIMED_OUT: CallError = CallError::Refused(Error::TimedOut);

    /// A fake of the five ports: answers from queues the test fills, records every call.
    #[derive(Default)]
    struct Fake {
        /// Answers to `read_telemetry`; not available when empty.
        reads: VecDeque<Result<Sample<'static>, CallError>>,
        /// Answers to `send_command`, in order; `Ok` when empty.
        sends: VecDeque<Result<(), CallError>>,
        /// Answers to `receive_reply`, in order; timed out when empty.
        replies: VecDeque<&'static [u8]>,
        /// Every call, as `name(argument)`.
        calls: Vec<String>,
    }

    impl PeerCalls for Fake {
        fn read_telemetry(&mut self) -> Result<Sample<'_>, CallError> {
            self.calls.push("read".into());
            self.reads.pop_front().unwrap_or(Err(NOT_AVAILABLE))
        }

        fn send_command(&mut self, message: &[u8], timeout_ns: u64) -> Result<(), CallError> {
            let message = String::from_utf8_lossy(message);
            self.calls.push(format!("send({message}, {timeout_ns})"));
            self.sends.pop_front().unwrap_or(Ok(()))
        }

        fn ring_kick(&mut self) -> Result<(), CallError> {
            self.calls.push("ring".into());
            Ok(())
        }

        fn wait_tock(&mut self, timeout_ns: u64) -> Result<u64, CallError> {
            self.calls.push(format!("wait({timeout_ns})"));
            Ok(1)
        }

        fn receive_reply(&mut self, timeout_ns: u64) -> Result<&[u8], CallError> {
            self.calls.push(format!("receive({timeout_ns})"));
            self.replies.pop_front().ok_or(TIMED_OUT)
        }
    }

    /// A sampling message `text`, valid or not, `age_ns` old.
    fn sample(text: &'static [u8], valid: bool, age_ns: u64) -> Sample<'static> {
        Sample {
            text,
            valid,
            age_ns,
        }
    }

    /// Runs `ticks` ticks of `script`; returns the lines printed.
    fn run(script: &mut Script, fake: &mut Fake, ticks: usize) -> Vec<String> {
        (0..ticks)
            .filter_map(|_| script.tick(fake))
            .map(|line| String::from_utf8_lossy(line.as_bytes()).into_owned())
            .collect()
    }

    /// A fake whose control side behaves: telemetry fresh at once, four of five commands
    /// queued, four replies, then stale telemetry.
    fn well_behaved() -> Fake {
        Fake {
            reads: VecDeque::from([
                Ok(sample(b"telemetry seq=3", true, 20_000_000)),
                Ok(sample(b"telemetry seq=19", false, 312_900_000)),
            ]),
            sends: VecDeque::from([Ok(()), Ok(()), Ok(()), Ok(()), Err(NOT_AVAILABLE)]),
            replies: VecDeque::from([&b"ack cmd-1"[..], b"ack cmd-2", b"ack cmd-3", b"ack cmd-4"]),
            ..Fake::default()
        }
    }

    #[test]
    fn script_against_a_well_behaved_control_side_prints_one_line_per_step() {
        let mut script = Script::new();
        let mut fake = well_behaved();

        let lines = run(&mut script, &mut fake, 16);

        assert_eq!(
            lines,
            [
                "rt-peer: telemetry valid telemetry?seq=3",
                "rt-peer: send cmd-1 ok",
                "rt-peer: send cmd-2 ok",
                "rt-peer: send cmd-3 ok",
                "rt-peer: send cmd-4 ok",
                "rt-peer: send cmd-5 error=not-available",
                "rt-peer: rang kick",
                "rt-peer: tock rings=1",
                "rt-peer: reply ack?cmd-1",
                "rt-peer: reply ack?cmd-2",
                "rt-peer: reply ack?cmd-3",
                "rt-peer: reply ack?cmd-4",
                "rt-peer: replies empty error=timed-out",
                "rt-peer: telemetry invalid telemetry?seq=19 age_ms=312",
                "rt-peer: done",
            ]
        );
    }

    #[test]
    fn script_makes_its_calls_in_order_with_their_timeouts() {
        let mut script = Script::new();
        let mut fake = well_behaved();

        run(&mut script, &mut fake, 16);

        assert_eq!(
            fake.calls,
            [
                "read",
                "send(cmd-1, 0)",
                "send(cmd-2, 0)",
                "send(cmd-3, 0)",
                "send(cmd-4, 0)",
                "send(cmd-5, 0)",
                "ring",
                "wait(5000000000)",
                "receive(1000000000)",
                "receive(1000000000)",
                "receive(1000000000)",
                "receive(1000000000)",
                "receive(200000000)",
                "read",
            ]
        );
    }

    #[test]
    fn finished_script_makes_no_more_calls_and_prints_nothing() {
        let mut script = Script::new();
        let mut fake = well_behaved();
        run(&mut script, &mut fake, 15);
        let calls = fake.calls.len();

        let lines = run(&mut script, &mut fake, 10);

        assert_eq!(
            (lines.len(), fake.calls.len(), script.step()),
            (0, calls, Step::Finished)
        );
    }

    #[test]
    fn waiting_for_fresh_telemetry_prints_a_read_error_once_until_it_changes() {
        let mut script = Script::new();
        let mut fake = Fake {
            reads: VecDeque::from([
                Err(NOT_AVAILABLE),
                Err(NOT_AVAILABLE),
                Err(NOT_AVAILABLE),
                Err(CallError::NoMonitor),
                Err(NOT_AVAILABLE),
            ]),
            ..Fake::default()
        };

        let lines = run(&mut script, &mut fake, 5);

        assert_eq!(
            (lines, script.step()),
            (
                vec![
                    "rt-peer: telemetry error=not-available".to_string(),
                    "rt-peer: telemetry error=no-monitor".to_string(),
                    "rt-peer: telemetry error=not-available".to_string(),
                ],
                Step::AwaitFresh
            )
        );
    }

    #[test]
    fn stale_telemetry_before_the_first_fresh_message_is_skipped_silently() {
        let mut script = Script::new();
        let mut fake = Fake {
            reads: VecDeque::from([
                Ok(sample(b"old", false, 9_000_000_000)),
                Ok(sample(b"new", true, 1_000)),
            ]),
            ..Fake::default()
        };

        let lines = run(&mut script, &mut fake, 2);

        assert_eq!(
            (lines, script.step()),
            (
                vec!["rt-peer: telemetry valid new".to_string()],
                Step::Send(1)
            )
        );
    }

    #[test]
    fn script_waits_for_stale_telemetry_as_long_as_it_stays_fresh() {
        let mut script = Script {
            step: Step::AwaitStale,
            read_error: None,
        };
        let mut fake = Fake {
            reads: VecDeque::from([
                Ok(sample(b"seq=20", true, 100_000_000)),
                Ok(sample(b"seq=20", true, 200_000_000)),
                Ok(sample(b"seq=20", false, 300_000_001)),
            ]),
            ..Fake::default()
        };

        let lines = run(&mut script, &mut fake, 3);

        assert_eq!(
            (lines, script.step()),
            (
                vec!["rt-peer: telemetry invalid seq=20 age_ms=300".to_string()],
                Step::Done
            )
        );
    }

    #[test]
    fn reply_that_should_not_be_there_is_shown() {
        let mut script = Script {
            step: Step::ReceiveEmpty,
            read_error: None,
        };
        let mut fake = Fake {
            replies: VecDeque::from([&b"ack cmd-5"[..]]),
            ..Fake::default()
        };

        let lines = run(&mut script, &mut fake, 1);

        assert_eq!(
            (lines, script.step()),
            (
                vec!["rt-peer: replies extra ack?cmd-5".to_string()],
                Step::AwaitStale
            )
        );
    }

    #[test]
    fn missing_reply_is_reported_and_the_script_goes_on() {
        let mut script = Script {
            step: Step::Receive(REPLIES),
            read_error: None,
        };
        let mut fake = Fake::default();

        let lines = run(&mut script, &mut fake, 1);

        assert_eq!(
            (lines, script.step()),
            (
                vec!["rt-peer: reply error=timed-out".to_string()],
                Step::ReceiveEmpty
            )
        );
    }

    #[test]
    fn commands_count_from_one() {
        assert_eq!(
            [command_message(1), command_message(12)]
                .each_ref()
                .map(Line::as_bytes),
            [&b"cmd-1"[..], b"cmd-12"]
        );
    }

    #[test]
    fn peer_that_lacks_a_port_says_which() {
        let line = not_started_line(b"tock");

        assert_eq!(line.as_bytes(), b"rt-peer: not started: tock did not open");
    }
}
