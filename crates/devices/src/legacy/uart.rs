//! COM1: a 16550A UART (vm-superio's model) whose output goes to the partition's console sink
//! and whose interrupt is an eventfd the KVM layer wires to GSI 4 (an irqfd). COM2, present
//! only in a partition that is an end of a uart link, is in [`crate::uart_link`]; its port and
//! line are here beside COM1's.
//!
//! Runs on whichever vCPU thread traps on ports 0x3f8..=0x3ff, under the caller's lock.

use std::io::Write;

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// First I/O port of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// Number of registers of a 16550.
pub const UART_PORT_LEN: u16 = 8;
/// Legacy interrupt line of COM1 (ISA IRQ 4, identity-mapped to IOAPIC pin 4).
pub const COM1_GSI: u32 = 4;
/// First I/O port of COM2 (the PC's standard second serial port).
pub const COM2_BASE: u16 = 0x2f8;
/// Legacy interrupt line of COM2 (ISA IRQ 3, identity-mapped to IOAPIC pin 3).
pub const COM2_GSI: u32 = 3;

/// Interrupt line of a UART: an eventfd, signalled to raise the interrupt.
pub(crate) struct EventFdLine(pub(crate) EventFd);

impl Trigger for EventFdLine {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// The COM1 UART.
pub struct Uart {
    serial: Serial<EventFdLine, vm_superio::serial::NoEvents, Box<dyn Write + Send>>,
}

impl Uart {
    /// A UART that raises `irq` and writes what the guest transmits to `out`.
    pub fn new(irq: EventFd, out: Box<dyn Write + Send>) -> Self {
        Uart {
            serial: Serial::new(EventFdLine(irq), out),
        }
    }

    /// Guest read of register `offset` (0..8).
    pub fn read(&mut self, offset: u8) -> u8 {
        self.serial.read(offset)
    }

    /// Guest write of `value` to register `offset` (0..8). A failure to signal the interrupt
    /// or to write the output is not the guest's fault and is not reported to it.
    pub fn write(&mut self, offset: u8, value: u8) {
        let _ = self.serial.write(offset, value);
    }

    /// Bytes for the guest to receive (console input). Returns how many were queued.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        self.serial.enqueue_raw_bytes(bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmitted_bytes_reach_the_console_sink() {
        let out = Captured::default();
        let mut uart = Uart::new(EventFd::new(0).unwrap(), Box::new(out.clone()));

        for b in b"hi\n" {
            uart.write(0, *b);
        }

        assert_eq!(out.0.lock().unwrap().as_slice(), b"hi\n");
    }

    #[test]
    fn enabled_transmit_interrupt_signals_the_line() {
        let irq = EventFd::new(libc_nonblock()).unwrap();
        let probe = irq.try_clone().unwrap();
        let mut uart = Uart::new(irq, Box::new(Captured::default()));

        uart.write(1, 0x02); // IER: THR-empty interrupt enabled

        assert!(probe.read().unwrap() >= 1);
    }

    fn libc_nonblock() -> i32 {
        0o4000 // EFD_NONBLOCK
    }
}
