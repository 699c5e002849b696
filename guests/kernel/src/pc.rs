//! The legacy PC devices the image uses when no bulkhead monitor answers (under QEMU `-M pc`
//! or `-M microvm`): COM1 for the console, the 8259 PICs (masked), the 8254 PIT to calibrate
//! the TSC, and the ways to power off.

use bulkhead_guest_sdk::arch::x86::tsc;
use bulkhead_guest_sdk::arch::x86::{self, port};

/// Input frequency of the 8254 PIT (ISA standard), in Hz.
const PIT_HZ: u64 = 1_193_182;

/// COM1 base port (16550 UART).
const COM1: u16 = 0x3f8;
/// 16550 registers, offsets from the base (DLAB = 0 unless noted).
const UART_THR: u16 = 0; // transmit holding / divisor latch low (DLAB)
const UART_IER: u16 = 1; // interrupt enable / divisor latch high (DLAB)
const UART_FCR: u16 = 2;
const UART_LCR: u16 = 3;
const UART_MCR: u16 = 4;
const UART_LSR: u16 = 5;
/// LSR bit 5: transmit holding register (and FIFO) empty.
const LSR_THRE: u8 = 1 << 5;
/// Bytes the transmit FIFO takes once THRE is set.
const UART_FIFO: usize = 16;
/// Polls of LSR before giving up on a UART that never drains.
const UART_POLL_LIMIT: u32 = 100_000;

/// 8259 interrupt-mask registers (master, slave).
const PIC1_DATA: u16 = 0x21;
const PIC2_DATA: u16 = 0xa1;

/// 8254 ports.
const PIT_CH0: u16 = 0x40;
const PIT_MODE: u16 = 0x43;
/// Channel 0, lobyte/hibyte access, mode 0 (interrupt on terminal count), binary.
const PIT_CH0_MODE0: u8 = 0x30;
/// Counter-latch command for channel 0.
const PIT_CH0_LATCH: u8 = 0x00;
/// Calibration interval: 20 ms of PIT counts.
const PIT_CALIBRATION_COUNTS: u16 = (PIT_HZ / 50) as u16;
/// Reads of the PIT before giving up on one that does not count.
const PIT_POLL_LIMIT: u32 = 1_000_000;

/// ACPI PM1a control port of QEMU's PIIX4 (`-M pc`) and ICH9 (`-M q35`) as their firmware
/// programs them, and the value for SLP_EN with sleep type S5.
const ACPI_PM1A_CNT: u16 = 0x604;
const ACPI_SLP_S5: u16 = 0x2000;
/// i8042 command port and its "pulse reset line" command.
const I8042_CMD: u16 = 0x64;
const I8042_RESET: u8 = 0xfe;

/// Initialises COM1: 115200 baud, 8N1, FIFOs on, no interrupts.
pub fn com1_init() {
    for (reg, value) in [
        (UART_IER, 0x00),
        (UART_LCR, 0x80), // DLAB
        (UART_THR, 0x01), // divisor 1 = 115200 baud
        (UART_IER, 0x00),
        (UART_LCR, 0x03), // 8N1, DLAB off
        (UART_FCR, 0xc7), // FIFOs on and cleared
        (UART_MCR, 0x03), // DTR, RTS
    ] {
        // SAFETY: COM1 belongs to this guest when no monitor answers; these writes only
        // configure the UART.
        unsafe { port::outb(COM1 + reg, value) };
    }
}

/// Writes bytes of `bytes` to COM1 while the TSC is below `until` (checked before each
/// byte), `\n` as `\r\n`, filling the FIFO each time it drains so that most bytes cost one
/// port write. Returns how many bytes of `bytes` went out.
pub fn com1_write_until(bytes: &[u8], until: u64) -> usize {
    let mut room = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if x86::rdtsc() >= until {
            return i;
        }
        if b == b'\n' {
            com1_put(b'\r', &mut room);
        }
        com1_put(b, &mut room);
    }
    bytes.len()
}

fn com1_put(b: u8, room: &mut usize) {
    if *room == 0 {
        let mut polls = 0;
        // SAFETY: reading LSR has no side effect on the transmitter.
        while unsafe { port::inb(COM1 + UART_LSR) } & LSR_THRE == 0 {
            polls += 1;
            if polls == UART_POLL_LIMIT {
                break;
            }
        }
        *room = UART_FIFO;
    }
    // SAFETY: writing THR transmits one byte.
    unsafe { port::outb(COM1 + UART_THR, b) };
    *room -= 1;
}

/// Masks every line of both 8259 PICs, so that the firmware's timer tick (on a vector that
/// collides with exceptions) never reaches the guest.
pub fn mask_pics() {
    for pic in [PIC1_DATA, PIC2_DATA] {
        // SAFETY: writing an interrupt-mask register only masks legacy interrupt lines.
        unsafe { port::outb(pic, 0xff) };
    }
}

/// Measures the TSC frequency in kHz against PIT channel 0 over 20 ms; 0 if the PIT does not
/// count. Channel 0's interrupt is masked at the PIC (see [`mask_pics`]).
pub fn pit_calibrate_tsc_khz() -> u64 {
    for (port_nr, value) in [(PIT_MODE, PIT_CH0_MODE0), (PIT_CH0, 0xff), (PIT_CH0, 0xff)] {
        // SAFETY: programs PIT channel 0, whose interrupt is masked, for a one-shot count
        // from 0xffff; nothing else uses the PIT.
        unsafe { port::outb(port_nr, value) };
    }
    // Wait for the counter to start moving, then measure from that edge.
    let first = pit_read();
    let mut start = first;
    let mut polls = 0;
    while start == first {
        start = pit_read();
        polls += 1;
        if polls == PIT_POLL_LIMIT {
            return 0;
        }
    }
    let tsc_start = x86::rdtsc();
    loop {
        let now = pit_read();
        let tsc_now = x86::rdtsc();
        let elapsed = start.wrapping_sub(now);
        if elapsed >= PIT_CALIBRATION_COUNTS {
            return tsc::khz_from(tsc_now - tsc_start, u64::from(elapsed), PIT_HZ);
        }
        polls += 1;
        if polls == PIT_POLL_LIMIT {
            return 0;
        }
    }
}

/// Latches and reads PIT channel 0's count.
fn pit_read() -> u16 {
    // SAFETY: latches channel 0's count; the two reads below consume it.
    unsafe { port::outb(PIT_MODE, PIT_CH0_LATCH) };
    // SAFETY: reads the latched count's low byte.
    let lo = unsafe { port::inb(PIT_CH0) };
    // SAFETY: reads the latched count's high byte, leaving the access state as found.
    let hi = unsafe { port::inb(PIT_CH0) };
    u16::from_le_bytes([lo, hi])
}

/// Powers the machine off, as far as a PC lets a guest: ACPI S5 on QEMU's `pc`/`q35`
/// machines, else an i8042 reset (QEMU with `-no-reboot` then exits). Returns if neither
/// exists (`microvm`); the caller then halts.
pub fn power_off() {
    // SAFETY: PM1a_CNT at 0x604 exists on QEMU's pc/q35 firmware set-up; on machines without
    // it the write goes nowhere. Either way the guest is shutting down.
    unsafe { port::outw(ACPI_PM1A_CNT, ACPI_SLP_S5) };
    // SAFETY: as above; pulsing the reset line is what the guest wants now.
    unsafe { port::outb(I8042_CMD, I8042_RESET) };
}
