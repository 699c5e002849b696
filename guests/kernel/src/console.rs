//! Console output: through the ABI's `ConsoleWrite` when a bulkhead monitor answers, else
//! through the PC's COM1 UART (QEMU and other PVH loaders).
//!
//! [`println`] and [`write`] write at once. A periodic task instead queues its report in a
//! [`Deferred`] and sends it in the idle part of its periods: a COM1 byte costs a VM exit
//! (tens of µs, more on a loaded host), and a whole line written at once would delay the next
//! releases.

use core::sync::atomic::{AtomicU8, Ordering};

use bulkhead_guest_sdk::arch::x86;
use bulkhead_guest_sdk::line::Line;

use crate::pc;

const NONE: u8 = 0;
const MONITOR: u8 = 1;
const COM1: u8 = 2;

static BACKEND: AtomicU8 = AtomicU8::new(NONE);

/// Sends output to the monitor's console.
pub(crate) fn use_monitor() {
    BACKEND.store(MONITOR, Ordering::Relaxed);
}

/// Sends output to COM1, initialising it.
pub(crate) fn use_com1() {
    pc::com1_init();
    BACKEND.store(COM1, Ordering::Relaxed);
}

/// Writes `line` and a newline, as one console write.
pub fn println(line: &mut Line) {
    line.str(b"\n");
    write(line.as_bytes());
}

/// Writes `bytes` as they are: one `ConsoleWrite` per 4 KiB under a monitor, a port write per
/// byte on COM1.
pub fn write(bytes: &[u8]) {
    write_until(bytes, u64::MAX);
}

/// Writes a prefix of `bytes`, stopping once the TSC has reached `until` (checked before
/// each piece: a COM1 byte, or the whole of `bytes` for the monitor). Returns how many bytes
/// went out; at least one if `bytes` is not empty and `until` lies in the future.
pub fn write_until(bytes: &[u8], until: u64) -> usize {
    match BACKEND.load(Ordering::Relaxed) {
        MONITOR => {
            if bytes.is_empty() || x86::rdtsc() >= until {
                return 0;
            }
            // Nothing useful to do if the monitor refuses console output: drop it.
            let _ = bulkhead_guest_sdk::console_write(bytes);
            bytes.len()
        }
        COM1 => pc::com1_write_until(bytes, until),
        _ => bytes.len(),
    }
}

/// One line waiting to be written in pieces.
pub struct Deferred {
    line: Line,
    sent: usize,
}

impl Default for Deferred {
    fn default() -> Self {
        Self::new()
    }
}

impl Deferred {
    /// Nothing queued.
    pub const fn new() -> Self {
        Deferred {
            line: Line::new(),
            sent: 0,
        }
    }

    /// Queues `line` and a newline. A line still pending is first written out at once.
    pub fn push(&mut self, line: &Line) {
        self.flush();
        self.line = line.clone();
        self.line.str(b"\n");
        self.sent = 0;
    }

    /// Writes queued bytes until the TSC reaches `until`.
    pub fn drain_until(&mut self, until: u64) {
        let rest = &self.line.as_bytes()[self.sent..];
        self.sent += write_until(rest, until);
    }

    /// Writes everything queued.
    pub fn flush(&mut self) {
        self.drain_until(u64::MAX);
    }
}

/// Writes a line made of `text` alone.
pub fn print_str(text: &[u8]) {
    let mut line = Line::new();
    line.str(text);
    println(&mut line);
}
