//! The hardware-free part of the ports mode (`ports=1`): which ports and doorbells the task
//! opens, when it does its port work, and the `rt-ports:` console lines. The calls themselves
//! (ABI 0.3, `bulkhead_guest_sdk::port_open` and the rest) are made by the image's
//! `ports_mode` module; the other end of all this is the peer mode ([`crate::peer`]).
//!
//! At the start the task opens [`TELEMETRY`] (a sampling source), [`COMMANDS`] (a queuing
//! destination), [`REPLIES`] (a queuing source), [`KICK`] (an incoming doorbell) and [`TOCK`]
//! (an outgoing one), then [`UNDECLARED`], which no system description gives it. Every
//! [`TICK_US`] of its periodic task ([`Schedule`]) it writes `telemetry seq=N` to the sampling
//! port, until `ports_stop_s` seconds have passed, and looks whether the doorbell interrupt
//! counter grew: if so it takes the doorbell's rings, drains the command queue (answering
//! each command with [`ACK`] and the command on the reply queue) and rings the outgoing
//! doorbell. Lines, each one event (the monitor's tests grep for them):
//!
//! ```text
//! rt-ports: open NAME handle=H kind=KIND max=M param=P
//! rt-ports: open NAME error=ERR
//! rt-ports: attach kick vector=80
//! rt-ports: commands empty error=timed-out
//! rt-ports: telemetry stopped seq=N
//! rt-ports: kick interrupts=TOTAL
//! rt-ports: kick rings=R
//! rt-ports: command TEXT
//! rt-ports: reply overflow
//! rt-ports: rang tock drained=COUNT
//! ```
//!
//! `KIND` as `bulkhead_guest_sdk::port_kind_name` spells it, `ERR` as
//! `bulkhead_guest_sdk::CallError::name` does.

use bulkhead_guest_sdk::line::Line;
use bulkhead_guest_sdk::{port_kind_name, CallError, PortInfo};

/// What every line of the ports mode starts with.
pub const PREFIX: &[u8] = b"rt-ports: ";
/// The sampling source the task writes its telemetry to.
pub const TELEMETRY: &[u8] = b"telemetry";
/// The queuing destination the task takes commands from.
pub const COMMANDS: &[u8] = b"commands";
/// The queuing source the task answers commands on.
pub const REPLIES: &[u8] = b"replies";
/// The incoming doorbell that tells the task commands are waiting.
pub const KICK: &[u8] = b"kick";
/// The outgoing doorbell the task rings once it has drained the commands.
pub const TOCK: &[u8] = b"tock";
/// A name no system description declares: opening it must fail (`invalid-config`).
pub const UNDECLARED: &[u8] = b"nonexistent";
/// The ports and doorbells the task opens, in order.
pub const OPENED: [&[u8]; 5] = [TELEMETRY, COMMANDS, REPLIES, KICK, TOCK];
/// How often the task does its port work, in µs of its periodic task.
pub const TICK_US: u64 = 100_000;
/// How long the task waits for a command once at the start.
pub const FIRST_RECEIVE_TIMEOUT_NS: u64 = 50_000_000;
/// What a reply is: this, then the command's bytes.
pub const ACK: &[u8] = b"ack ";
/// Most commands taken per drain, so that a sender that keeps the queue full cannot hold the
/// task in the drain for ever; the rest wait for the next ring.
pub const MAX_DRAIN: u64 = 256;

/// A line holding just [`PREFIX`].
pub fn line() -> Line {
    let mut line = Line::new();
    line.str(PREFIX);
    line
}

/// Appends `error=ERR`.
pub fn write_error(line: &mut Line, error: CallError) -> &mut Line {
    line.str(b"error=").str(error.name())
}

/// `rt-ports: open NAME handle=H kind=KIND max=M param=P` or `rt-ports: open NAME error=ERR`.
pub fn open_line(name: &[u8], result: Result<PortInfo, CallError>) -> Line {
    let mut line = line();
    line.str(b"open ").printable(name).str(b" ");
    match result {
        Ok(port) => line
            .str(b"handle=")
            .u64(port.handle)
            .str(b" kind=")
            .str(port_kind_name(port.kind))
            .str(b" max=")
            .u64(port.max_message_bytes as u64)
            .str(b" param=")
            .u64(port.param),
        Err(e) => write_error(&mut line, e),
    };
    line
}

/// `rt-ports: attach NAME vector=V` (V in decimal) or `rt-ports: attach NAME error=ERR`.
pub fn attach_line(name: &[u8], vector: u8, result: Result<(), CallError>) -> Line {
    let mut line = line();
    line.str(b"attach ").printable(name).str(b" ");
    match result {
        Ok(()) => line.str(b"vector=").u64(u64::from(vector)),
        Err(e) => write_error(&mut line, e),
    };
    line
}

/// `rt-ports: command TEXT`, anything but printable ASCII in the command shown as `?`.
pub fn command_line(command: &[u8]) -> Line {
    let mut line = line();
    line.str(b"command ").printable(command);
    line
}

/// The sampling message of the `seq`th telemetry write: `telemetry seq=N`.
pub fn telemetry_message(seq: u64) -> Line {
    let mut message = Line::new();
    message.str(b"telemetry seq=").u64(seq);
    message
}

/// What to do with the telemetry at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Telemetry {
    /// Write message number `seq` (counting from 1).
    Write(u64),
    /// The time to stop has come, once: `seq` messages were written.
    Stopped(u64),
    /// Stopped earlier: nothing.
    Idle,
}

/// Every [`TICK_US`] of a periodic task's periods: every `TICK_US / period_us` periods (every
/// period when the period is longer). Counts wake-ups, not time: after a stretch in which the
/// task missed releases, the next tick is still that many wake-ups away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    /// Periods per tick.
    every: u64,
    /// Periods until the next tick.
    countdown: u64,
}

impl Ticks {
    /// For a task of period `period_us` (0 counts as 1).
    pub fn new(period_us: u64) -> Self {
        let every = (TICK_US / period_us.max(1)).max(1);
        Ticks {
            every,
            countdown: every,
        }
    }

    /// One period has passed: whether it is a tick.
    pub fn period(&mut self) -> bool {
        self.countdown -= 1;
        if self.countdown != 0 {
            return false;
        }
        self.countdown = self.every;
        true
    }
}

/// When the ports mode works: every [`TICK_US`] of the task's periods ([`Ticks`]), and whether
/// it still writes telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    ticks: Ticks,
    /// Stop writing telemetry this many µs after the start; 0: never.
    stop_us: u64,
    /// Telemetry messages written.
    seq: u64,
    stopped: bool,
}

impl Schedule {
    /// For a task of period `period_us` (at least 1) that stops writing telemetry `stop_s`
    /// seconds after its start (0: never).
    pub fn new(period_us: u64, stop_s: u64) -> Self {
        Schedule {
            ticks: Ticks::new(period_us),
            stop_us: stop_s.saturating_mul(1_000_000),
            seq: 0,
            stopped: false,
        }
    }

    /// One period has passed, `elapsed_us` after the start. `None` between ticks; at a tick,
    /// what to do with the telemetry (the doorbell is looked at every tick).
    pub fn period(&mut self, elapsed_us: u64) -> Option<Telemetry> {
        if !self.ticks.period() {
            return None;
        }
        if self.stopped {
            return Some(Telemetry::Idle);
        }
        if self.stop_us != 0 && elapsed_us >= self.stop_us {
            self.stopped = true;
            return Some(Telemetry::Stopped(self.seq));
        }
        self.seq += 1;
        Some(Telemetry::Write(self.seq))
    }

    /// A write out of the tick order (after a doorbell was handled, so whoever rang it finds a
    /// fresh message whatever the timer did): the next sequence number, `None` once stopped.
    pub fn extra(&mut self) -> Option<u64> {
        if self.stopped {
            return None;
        }
        self.seq += 1;
        Some(self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_guest_sdk::abi::{Error, PortKind};

    /// Runs `periods` periods of `period_us` through `schedule`; returns the ticks' answers.
    fn run(schedule: &mut Schedule, period_us: u64, periods: u64) -> Vec<Telemetry> {
        (1..=periods)
            .filter_map(|n| schedule.period(n * period_us))
            .collect()
    }

    #[test]
    fn opened_port_is_described_by_handle_kind_size_and_parameter() {
        let port = PortInfo {
            handle: 3,
            kind: PortKind::QueuingDestination,
            max_message_bytes: 64,
            param: 8,
        };

        let line = open_line(COMMANDS, Ok(port));

        assert_eq!(
            line.as_bytes(),
            b"rt-ports: open commands handle=3 kind=queuing-destination max=64 param=8"
        );
    }

    #[test]
    fn refused_open_shows_the_error() {
        let line = open_line(UNDECLARED, Err(CallError::Refused(Error::InvalidConfig)));

        assert_eq!(
            line.as_bytes(),
            b"rt-ports: open nonexistent error=invalid-config"
        );
    }

    #[test]
    fn open_without_the_port_calls_shows_unknown_call() {
        let line = open_line(TELEMETRY, Err(CallError::Refused(Error::UnknownCall)));

        assert_eq!(
            line.as_bytes(),
            b"rt-ports: open telemetry error=unknown-call"
        );
    }

    #[test]
    fn attach_shows_the_vector_in_decimal_or_the_error() {
        let lines = [
            attach_line(KICK, 0x50, Ok(())),
            attach_line(KICK, 0x50, Err(CallError::NoMonitor)),
        ];

        assert_eq!(
            lines.each_ref().map(Line::as_bytes),
            [
                &b"rt-ports: attach kick vector=80"[..],
                b"rt-ports: attach kick error=no-monitor"
            ]
        );
    }

    #[test]
    fn command_text_is_shown_printable() {
        let line = command_line(b"set mode\x07");

        assert_eq!(line.as_bytes(), b"rt-ports: command set?mode?");
    }

    #[test]
    fn error_suffix_follows_the_text() {
        let mut line = line();
        line.str(b"commands empty ");

        write_error(&mut line, CallError::Refused(Error::TimedOut));

        assert_eq!(line.as_bytes(), b"rt-ports: commands empty error=timed-out");
    }

    #[test]
    fn bare_ticks_of_a_one_millisecond_task_come_every_hundred_periods() {
        let mut ticks = Ticks::new(1000);

        let at: Vec<u64> = (1..=250).filter(|_| ticks.period()).collect();

        assert_eq!(at, [100, 200]);
    }

    #[test]
    fn telemetry_message_counts_from_one() {
        let mut schedule = Schedule::new(1000, 0);
        let first = run(&mut schedule, 1000, 100);

        assert_eq!(
            (first, telemetry_message(1).as_bytes()),
            (vec![Telemetry::Write(1)], &b"telemetry seq=1"[..])
        );
    }

    #[test]
    fn one_millisecond_task_ticks_every_hundred_periods() {
        let mut schedule = Schedule::new(1000, 0);

        let ticks = run(&mut schedule, 1000, 1000);

        assert_eq!(ticks, (1..=10).map(Telemetry::Write).collect::<Vec<_>>());
    }

    #[test]
    fn task_slower_than_a_tick_ticks_every_period() {
        let mut schedule = Schedule::new(250_000, 0);

        let ticks = run(&mut schedule, 250_000, 3);

        assert_eq!(
            ticks,
            [
                Telemetry::Write(1),
                Telemetry::Write(2),
                Telemetry::Write(3)
            ]
        );
    }

    #[test]
    fn telemetry_stops_once_after_the_stop_time() {
        let mut schedule = Schedule::new(1000, 1);

        let ticks = run(&mut schedule, 1000, 1200);

        // Ticks at 100, 200, ... 900 ms write; the one at 1 s stops; 1.1 and 1.2 s are idle.
        let mut expected: Vec<Telemetry> = (1..=9).map(Telemetry::Write).collect();
        expected.extend([Telemetry::Stopped(9), Telemetry::Idle, Telemetry::Idle]);
        assert_eq!(ticks, expected);
    }

    #[test]
    fn stop_time_counts_elapsed_time_not_periods() {
        let mut schedule = Schedule::new(1000, 1);

        // The first tick comes 100 periods in, but the task was stopped for 2 s meanwhile.
        let ticks: Vec<_> = (1..=100)
            .filter_map(|n| schedule.period(2_000_000 + n * 1000))
            .collect();

        assert_eq!(ticks, [Telemetry::Stopped(0)]);
    }

    #[test]
    fn an_extra_write_takes_the_next_number_until_the_telemetry_stopped() {
        let mut schedule = Schedule::new(100_000, 1);
        assert_eq!(schedule.period(100_000), Some(Telemetry::Write(1)));

        assert_eq!(schedule.extra(), Some(2));
        assert_eq!(schedule.period(1_000_000), Some(Telemetry::Stopped(2)));
        assert_eq!(schedule.extra(), None);
    }
}
