//! The ports mode (`ports=1`): the calls of ABI 0.3 beside the periodic task. What is opened,
//! when, and the `rt-ports:` lines are in `rt_demo::ports`; this module makes the calls, in
//! ring 3 like the rest of the task (the doorbell `out` goes through the kernel's #GP path on
//! software KVM).
//!
//! [`Ports::open`] runs before the periodic loop starts; its [`PortWork::period`] runs in it
//! right after a wake-up has been recorded, so its calls and lines delay neither that measurement
//! nor the re-arming (a tick that takes longer than the rest of its period shows as missed
//! releases, as any overrun does). A port that did not open is left alone: without a monitor,
//! or with a monitor that does not know the calls yet (`unknown-call`), the task just prints
//! the failed opens and goes on measuring.

use bulkhead_guest_kernel::console::{self, Deferred};
use bulkhead_guest_kernel::{self as kernel, DOORBELL_VECTOR};
use bulkhead_guest_sdk::abi::{self, Error};
use bulkhead_guest_sdk::line::Line;
use bulkhead_guest_sdk::{self as sdk, CallError, PortInfo};
use rt_demo::ports::{self, Schedule, Telemetry};

use crate::periodic::PortWork;

/// The ports that opened, and the mode's state in the periodic loop.
pub struct Ports {
    telemetry: Option<PortInfo>,
    commands: Option<PortInfo>,
    replies: Option<PortInfo>,
    kick: Option<PortInfo>,
    tock: Option<PortInfo>,
    schedule: Schedule,
    /// The doorbell interrupt count when it was last looked at.
    interrupts_seen: u64,
    /// A telemetry write failed (reported once).
    telemetry_failed: bool,
}

/// A command buffer's size: room for [`ports::ACK`] and the largest message any port has.
const COMMAND_BUFFER: usize = ports::ACK.len() + abi::MAX_MESSAGE_BYTES as usize;

impl Ports {
    /// Opens the ports (one line each), proves an undeclared name does not open, attaches
    /// [`DOORBELL_VECTOR`] to the incoming doorbell, and waits for a command once.
    pub fn open(period_us: u64, stop_s: u64) -> Ports {
        let [telemetry, commands, replies, kick, tock] = ports::OPENED.map(open);
        open(ports::UNDECLARED);
        let mut output = Deferred::new();
        let this = Ports {
            telemetry,
            commands,
            replies,
            kick,
            tock,
            schedule: Schedule::new(period_us, stop_s),
            interrupts_seen: 0,
            telemetry_failed: false,
        };
        if let Some(kick) = this.kick {
            let result = sdk::doorbell_attach(kick.handle, DOORBELL_VECTOR);
            console::println(&mut ports::attach_line(
                ports::KICK,
                DOORBELL_VECTOR,
                result,
            ));
        }
        if let Some(commands) = this.commands {
            let mut buffer = [0u8; COMMAND_BUFFER];
            let (ack, message) = buffer.split_at_mut(ports::ACK.len());
            ack.copy_from_slice(ports::ACK);
            match sdk::queuing_receive(commands.handle, message, ports::FIRST_RECEIVE_TIMEOUT_NS) {
                Ok(len) => this.answer(&buffer[..ports::ACK.len() + len], &mut output),
                Err(e) => {
                    let mut line = ports::line();
                    line.str(b"commands empty ");
                    ports::write_error(&mut line, e);
                    console::println(&mut line);
                }
            }
        }
        this
    }

    fn telemetry(&mut self, port: PortInfo, telemetry: Telemetry, output: &mut Deferred) {
        match telemetry {
            Telemetry::Write(seq) => {
                let message = ports::telemetry_message(seq);
                let result = sdk::sampling_write(port.handle, message.as_bytes());
                if let Err(e) = result {
                    if !self.telemetry_failed {
                        self.telemetry_failed = true;
                        let mut line = ports::line();
                        line.str(b"telemetry ");
                        ports::write_error(&mut line, e).str(b" seq=").u64(seq);
                        say(output, &mut line);
                    }
                }
            }
            Telemetry::Stopped(seq) => {
                let mut line = ports::line();
                line.str(b"telemetry stopped seq=").u64(seq);
                say(output, &mut line);
            }
            Telemetry::Idle => {}
        }
    }

    /// The doorbell interrupt count grew to `interrupts`: take the rings, drain the
    /// commands, write the telemetry once more (fresh for whoever rang), ring back.
    fn kicked(&mut self, interrupts: u64, output: &mut Deferred) {
        let mut line = ports::line();
        line.str(b"kick interrupts=").u64(interrupts);
        say(output, &mut line);
        if let Some(kick) = self.kick {
            let mut line = ports::line();
            match sdk::doorbell_wait(kick.handle, 0) {
                Ok(rings) => line.str(b"kick rings=").u64(rings),
                Err(CallError::Refused(Error::NotAvailable)) => line.str(b"kick rings=0"),
                Err(e) => ports::write_error(line.str(b"kick "), e),
            };
            say(output, &mut line);
        }
        let drained = match self.commands {
            Some(commands) => self.drain(commands, output),
            None => 0,
        };
        if let (Some(port), Some(seq)) = (self.telemetry, self.schedule.extra()) {
            self.telemetry(port, Telemetry::Write(seq), output);
        }
        if let Some(tock) = self.tock {
            let mut line = ports::line();
            match sdk::doorbell_ring(tock.handle) {
                Ok(()) => line.str(b"rang tock"),
                Err(e) => ports::write_error(line.str(b"ring tock "), e),
            };
            line.str(b" drained=").u64(drained);
            say(output, &mut line);
        }
    }

    /// Takes and answers the waiting commands, at most [`ports::MAX_DRAIN`]; returns how many.
    fn drain(&self, commands: PortInfo, output: &mut Deferred) -> u64 {
        let mut buffer = [0u8; COMMAND_BUFFER];
        buffer[..ports::ACK.len()].copy_from_slice(ports::ACK);
        let mut drained = 0;
        while drained < ports::MAX_DRAIN {
            let message = &mut buffer[ports::ACK.len()..];
            match sdk::queuing_receive(commands.handle, message, 0) {
                Ok(len) => {
                    drained += 1;
                    self.answer(&buffer[..ports::ACK.len() + len], output);
                }
                Err(CallError::Refused(Error::NotAvailable)) => break,
                Err(e) => {
                    let mut line = ports::line();
                    ports::write_error(line.str(b"commands "), e);
                    say(output, &mut line);
                    break;
                }
            }
        }
        drained
    }

    /// Prints the command in `reply` (which is [`ports::ACK`] and the command) and sends
    /// `reply` on the reply queue without waiting.
    fn answer(&self, reply: &[u8], output: &mut Deferred) {
        say(output, &mut ports::command_line(&reply[ports::ACK.len()..]));
        let Some(replies) = self.replies else {
            return;
        };
        let mut line = ports::line();
        match sdk::queuing_send(replies.handle, reply, 0) {
            Ok(()) => return,
            Err(CallError::Refused(Error::NotAvailable)) => line.str(b"reply overflow"),
            Err(e) => ports::write_error(line.str(b"reply "), e),
        };
        say(output, &mut line);
    }
}

impl PortWork for Ports {
    /// At a tick: writes the telemetry, and handles the doorbell when its interrupt count
    /// grew. `output` is written out before any line of this mode.
    fn period(&mut self, elapsed_us: u64, output: &mut Deferred) {
        let Some(telemetry) = self.schedule.period(elapsed_us) else {
            return;
        };
        if let Some(port) = self.telemetry {
            self.telemetry(port, telemetry, output);
        }
        let interrupts = kernel::doorbell_interrupts();
        if interrupts != self.interrupts_seen {
            self.interrupts_seen = interrupts;
            self.kicked(interrupts, output);
        }
    }
}

/// Opens `name` and prints the outcome.
pub fn open(name: &[u8]) -> Option<PortInfo> {
    let result = sdk::port_open(name);
    console::println(&mut ports::open_line(name, result));
    result.ok()
}

/// Prints `line` now, after whatever `output` still holds.
pub fn say(output: &mut Deferred, line: &mut Line) {
    output.flush();
    console::println(line);
}
