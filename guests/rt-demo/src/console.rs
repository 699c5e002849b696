//! Console output: through the ABI's `ConsoleWrite` when a bulkhead monitor answers, else
//! through the PC's COM1 UART (QEMU and other PVH loaders).

use core::sync::atomic::{AtomicU8, Ordering};

use rt_demo::line::Line;

use crate::pc;

const NONE: u8 = 0;
const MONITOR: u8 = 1;
const COM1: u8 = 2;

static BACKEND: AtomicU8 = AtomicU8::new(NONE);

/// Sends output to the monitor's console.
pub fn use_monitor() {
    BACKEND.store(MONITOR, Ordering::Relaxed);
}

/// Sends output to COM1, initialising it.
pub fn use_com1() {
    pc::com1_init();
    BACKEND.store(COM1, Ordering::Relaxed);
}

/// Writes `line` and a newline, as one console write.
pub fn println(line: &mut Line) {
    line.str(b"\n");
    match BACKEND.load(Ordering::Relaxed) {
        MONITOR => {
            // Nothing useful to do if the monitor refuses console output.
            let _ = bulkhead_guest_sdk::console_write(line.as_bytes());
        }
        COM1 => pc::com1_write(line.as_bytes()),
        _ => {}
    }
}

/// Writes a line made of `text` alone.
pub fn print_str(text: &[u8]) {
    let mut line = Line::new();
    line.str(text);
    println(&mut line);
}
