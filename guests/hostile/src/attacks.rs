//! The attacks themselves, each run in ring 3 until a TSC deadline (its slice). What each
//! does and why is in `hostile::attack`; the counts go into `hostile::report::Counters`.

use core::ptr;

use bulkhead_guest_kernel::console;
use bulkhead_guest_sdk as sdk;
use bulkhead_guest_sdk::abi;
use bulkhead_guest_sdk::arch::x86::{self, cpuid, port};
use hostile::attack::{Attack, ExitKind};
use hostile::pvcalls::{self, BadCall, REPERTOIRE};
use hostile::report::Counters;

/// A guest-physical address nothing is mapped at, in every partition bulkhead builds (the
/// start of the MMIO gap below 4 GiB; the virtio-mmio windows begin at 0xd000_0000) and in
/// QEMU's `microvm`: stores there leave the guest as MMIO exits. The boot page tables map it
/// uncached and user-accessible.
const UNMAPPED_MMIO: u64 = 0xc000_0000;
/// The POST/delay port: no device in either monitor, and bulkhead does not log it.
const POST_PORT: u16 = 0x80;
/// The bandwidth hog copies this much at a time.
const COPY_CHUNK: u64 = 256 << 10;
/// What the bandwidth hog's buffer is filled with first.
const FILL: u8 = 0x5a;
/// Length of one console-flood line, newline included: the most one `ConsoleWrite` takes.
const FLOOD_LEN: usize = abi::CONSOLE_WRITE_MAX as usize;
/// The console flood's line: a prefix, then filler up to [`FLOOD_LEN`].
static FLOOD_LINE: [u8; FLOOD_LEN] = flood_line();

const fn flood_line() -> [u8; FLOOD_LEN] {
    let prefix = b"hostile: flood ";
    let mut line = [b'x'; FLOOD_LEN];
    let mut i = 0;
    while i < prefix.len() {
        line[i] = prefix[i];
        i += 1;
    }
    line[FLOOD_LEN - 1] = b'\n';
    line
}

/// The attacks' state between slices.
pub struct Attacks {
    /// What they did so far.
    pub counters: Counters,
    exit_kind: ExitKind,
    /// The next exit of [`ExitKind::Mix`].
    mix: usize,
    /// The bandwidth hog's buffer, `(start, length)`, if the partition has room for one.
    buffer: Option<(u64, u64)>,
    /// Where the next copy starts, as an offset into each half of the buffer.
    copy_at: u64,
    /// The console flood's text: [`FLOOD_LINE`], without its newline for an endless line.
    flood: &'static [u8],
    /// How much of `flood` the console has taken (COM1 may stop mid-line).
    flood_at: usize,
    /// The bad calls, and the next one to make.
    bad_calls: [BadCall; REPERTOIRE],
    next_bad: usize,
    /// Keeps the CPU hog's sums alive.
    sink: u64,
}

impl Attacks {
    /// `buffer`: the bandwidth hog's memory; `ram_end`: the end of the RAM the image runs in;
    /// `newline`: whether flood lines end. Fills the buffer first: RAM the guest never wrote
    /// may all be one shared zero page on the host, which would make the copies cache hits.
    pub fn new(
        exit_kind: ExitKind,
        buffer: Option<(u64, u64)>,
        ram_end: u64,
        newline: bool,
    ) -> Self {
        if let Some((start, len)) = buffer {
            // SAFETY: the buffer is RAM of this partition above the image that nothing else
            // uses (`hostile::membw::place`), identity-mapped and user-accessible.
            unsafe { ptr::write_bytes(start as *mut u8, FILL, len as usize) };
        }
        Attacks {
            counters: Counters::default(),
            exit_kind,
            mix: 0,
            buffer,
            copy_at: 0,
            flood: if newline {
                &FLOOD_LINE
            } else {
                &FLOOD_LINE[..FLOOD_LEN - 1]
            },
            flood_at: 0,
            bad_calls: pvcalls::repertoire(FLOOD_LINE.as_ptr() as u64, ram_end),
            next_bad: 0,
            sink: 0,
        }
    }

    /// Runs `attack` until the TSC reaches `until` (each attack checks between steps, so it
    /// may overrun by one step: an exit, a 256 KiB copy, a console write).
    pub fn run(&mut self, attack: Attack, until: u64) {
        match attack {
            Attack::Cpu => self.cpu(until),
            Attack::Membw => self.membw(until),
            Attack::Exits => self.exits(until),
            Attack::Console => self.console(until),
            Attack::Pvcalls => self.pvcalls(until),
            Attack::Crash => idle(until),
        }
    }

    /// Spins on additions, never leaving ring 3.
    fn cpu(&mut self, until: u64) {
        while x86::rdtsc() < until {
            let mut sum = self.sink;
            for i in 0..1024u64 {
                sum = core::hint::black_box(sum.wrapping_add(i));
            }
            self.sink = sum;
            self.counters.spins += 1;
        }
    }

    /// Copies the first half of the buffer over the second, 256 KiB at a time, round and
    /// round (`rep movsq` in ring 3, see the SDK's `memcpy`).
    fn membw(&mut self, until: u64) {
        let Some((start, len)) = self.buffer else {
            return idle(until);
        };
        let half = len / 2;
        while x86::rdtsc() < until {
            let offset = self.copy_at;
            let chunk = COPY_CHUNK.min(half - offset);
            // SAFETY: both ranges lie inside the buffer, RAM of this partition above the
            // image that nothing else uses (`hostile::membw::place`), identity-mapped and
            // user-accessible; they do not overlap (one in each half).
            unsafe {
                ptr::copy_nonoverlapping(
                    (start + offset) as *const u8,
                    (start + half + offset) as *mut u8,
                    chunk as usize,
                );
            }
            self.copy_at = if offset + chunk >= half {
                0
            } else {
                offset + chunk
            };
            self.counters.bytes_copied += chunk;
        }
    }

    /// Leaves the guest as often as it can, the way [`ExitKind`] says.
    fn exits(&mut self, until: u64) {
        while x86::rdtsc() < until {
            let kind = match self.exit_kind {
                ExitKind::Mix => {
                    self.mix = (self.mix + 1) % 4;
                    ExitKind::ALL[self.mix]
                }
                kind => kind,
            };
            exit(kind, self.counters.exits);
            self.counters.exits += 1;
        }
    }

    /// Writes the flood line as fast as the console takes it.
    fn console(&mut self, until: u64) {
        while x86::rdtsc() < until {
            let sent = console::write_until(&self.flood[self.flood_at..], until);
            self.counters.console_bytes += sent as u64;
            self.flood_at = (self.flood_at + sent) % self.flood.len();
        }
    }

    /// Ends a flood line cut short by the end of a slice (COM1 takes a byte at a time), so
    /// that what is printed next starts a line of its own. An endless flood stays endless.
    pub fn end_flood_line(&mut self) {
        if self.flood_at != 0 && self.flood.len() == FLOOD_LEN {
            console::write(b"\n");
            self.counters.console_bytes += 1;
            self.flood_at = 0;
        }
    }

    /// Makes the bad calls in turn.
    fn pvcalls(&mut self, until: u64) {
        while x86::rdtsc() < until {
            match self.bad_calls[self.next_bad] {
                BadCall::Call(nr, args, _) => {
                    let _ = sdk::raw_call(nr, args);
                }
                // SAFETY: a doorbell that names no block in RAM, or of the wrong width: the
                // monitor ignores it (and nothing else listens on the port).
                BadCall::Doorbell(value) => unsafe { port::outl(abi::X86_DOORBELL_PORT, value) },
                // SAFETY: as above.
                BadCall::DoorbellByte(value) => unsafe {
                    port::outb(abi::X86_DOORBELL_PORT, value)
                },
            }
            self.next_bad = (self.next_bad + 1) % REPERTOIRE;
            self.counters.bad_calls += 1;
        }
    }
}

/// One VM exit of `kind` (not [`ExitKind::Mix`]); `n` is written where a value is needed.
fn exit(kind: ExitKind, n: u64) {
    match kind {
        // SAFETY: nothing is mapped at the address (see `UNMAPPED_MMIO`): the store goes to
        // the monitor, which ignores it; the page is mapped, so no page fault.
        ExitKind::Mmio => unsafe { ptr::write_volatile(UNMAPPED_MMIO as *mut u32, n as u32) },
        // SAFETY: no device answers the POST port; the write has no effect.
        ExitKind::Port => unsafe { port::outb(POST_PORT, n as u8) },
        ExitKind::Doorbell => {
            let _ = sdk::abi_version();
        }
        ExitKind::Cpuid | ExitKind::Mix => {
            core::hint::black_box(cpuid::cpuid(0, 0));
        }
    }
}

/// Waits for the TSC to reach `until` without doing anything hostile.
pub fn idle(until: u64) {
    while x86::rdtsc() < until {
        core::hint::spin_loop();
    }
}
