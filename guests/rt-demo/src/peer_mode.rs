//! The peer side of the ports mode (`ports=peer`): opens the other ends of what `ports=1`
//! opens and runs the script of `rt_demo::peer` against it, one step per tick, making the
//! calls of ABI 0.3 in ring 3 like the rest of the task. The script, its steps and the
//! `rt-peer:` lines are in `rt_demo::peer`; this module only opens and calls.
//!
//! [`Peer::open`] runs before the periodic loop starts; its [`PortWork::period`] runs in it
//! right after a wake-up has been recorded. Unlike the control side, a step may block the task
//! (waiting up to 5 s for a doorbell, 1 s for a reply): the peer is the low-criticality end,
//! and a step that blocks shows as missed releases in its `rt-stats`. When any of the five
//! ports and doorbells did not open, the peer prints why once and only measures.

use bulkhead_guest_kernel::console::{self, Deferred};
use bulkhead_guest_sdk::abi;
use bulkhead_guest_sdk::{self as sdk, CallError, PortInfo};
use rt_demo::peer::{self, PeerCalls, Sample, Script};
use rt_demo::ports::{self, Ticks};

use crate::periodic::PortWork;
use crate::ports_mode::{open, say};

/// The five ends, opened, and a buffer for what the peer reads and receives.
struct Opened {
    telemetry: PortInfo,
    commands: PortInfo,
    replies: PortInfo,
    kick: PortInfo,
    tock: PortInfo,
    /// Holds any port's largest message (the monitor refuses a shorter receive buffer).
    buffer: [u8; abi::MAX_MESSAGE_BYTES as usize],
}

/// The peer in the periodic loop: its ports (`None` when one did not open), its ticks and
/// where it is in the script.
pub struct Peer {
    opened: Option<Opened>,
    ticks: Ticks,
    script: Script,
}

impl Peer {
    /// Opens the five ends (one `rt-ports: open` line each) and proves an undeclared name does
    /// not open, as the control side does.
    pub fn open(period_us: u64) -> Peer {
        let [telemetry, commands, replies, kick, tock] = ports::OPENED.map(open);
        open(ports::UNDECLARED);
        let opened = match (telemetry, commands, replies, kick, tock) {
            (Some(telemetry), Some(commands), Some(replies), Some(kick), Some(tock)) => {
                Some(Opened {
                    telemetry,
                    commands,
                    replies,
                    kick,
                    tock,
                    buffer: [0; abi::MAX_MESSAGE_BYTES as usize],
                })
            }
            _ => {
                let missing = [telemetry, commands, replies, kick, tock]
                    .iter()
                    .position(Option::is_none)
                    .map_or(ports::TELEMETRY, |i| ports::OPENED[i]);
                console::println(&mut peer::not_started_line(missing));
                None
            }
        };
        Peer {
            opened,
            ticks: Ticks::new(period_us),
            script: Script::new(),
        }
    }
}

impl PortWork for Peer {
    /// At a tick: one step of the script. `output` is written out before its line.
    fn period(&mut self, _elapsed_us: u64, output: &mut Deferred) {
        if !self.ticks.period() {
            return;
        }
        let Some(opened) = self.opened.as_mut() else {
            return;
        };
        if let Some(mut line) = self.script.tick(opened) {
            say(output, &mut line);
        }
    }
}

impl PeerCalls for Opened {
    fn read_telemetry(&mut self) -> Result<Sample<'_>, CallError> {
        let message = sdk::sampling_read(self.telemetry.handle, &mut self.buffer)?;
        Ok(Sample {
            text: &self.buffer[..message.len],
            valid: message.valid,
            age_ns: message.age_ns,
        })
    }

    fn send_command(&mut self, message: &[u8], timeout_ns: u64) -> Result<(), CallError> {
        sdk::queuing_send(self.commands.handle, message, timeout_ns)
    }

    fn ring_kick(&mut self) -> Result<(), CallError> {
        sdk::doorbell_ring(self.kick.handle)
    }

    fn wait_tock(&mut self, timeout_ns: u64) -> Result<u64, CallError> {
        sdk::doorbell_wait(self.tock.handle, timeout_ns)
    }

    fn receive_reply(&mut self, timeout_ns: u64) -> Result<&[u8], CallError> {
        let len = sdk::queuing_receive(self.replies.handle, &mut self.buffer, timeout_ns)?;
        Ok(&self.buffer[..len])
    }
}
