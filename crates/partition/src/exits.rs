//! Dispatch of vCPU exits to the partition's devices. Runs on each vCPU thread, with the vCPU
//! stopped. Guest-triggered and unbounded in number, so it never logs without a rate limit
//! and never fails on anything the guest chose: unknown ports read as all-ones and ignore
//! writes, like an empty ISA bus.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_devices::legacy::{
    health_read, health_write, HealthSignal, PowerController, PowerEvent, Uart, COM1_BASE,
    COM2_BASE, I8042_COMMAND_PORT, POWER_PORT_BASE, POWER_PORT_LEN, UART_PORT_LEN,
};
use bulkhead_devices::pvcall::{
    NoPorts, PvCallHandler, PvOutcome, PvPlatform, PvPorts, PvVcpuState,
};
use bulkhead_devices::uart_link::LinkedUart;
use bulkhead_devices::RateLimitedLog;
use bulkhead_vmm::GuestMemory;

use crate::console::Console;
use crate::health::{Health, HealthStop};
use crate::ports::PartitionPorts;
use crate::virtio::VirtioDevices;

/// Ports guests probe that no partition has, and that are not worth a log line: the POST/delay
/// port 0x80 (Linux's I/O delay), the CMOS/RTC index and data ports, the PCI configuration
/// mechanism #1 ports (there is no PCI bus: reads are all-ones, "no device"), the LPC Super
/// I/O configuration ports that hardware-monitor and watchdog drivers probe, and the other
/// legacy UARTs (COM2-COM4) that the 8250 driver probes (COM2 is there only in a partition
/// with a uart link, which is served before this is asked).
fn is_quietly_absent(port: u16) -> bool {
    matches!(
        port,
        0x80 | 0x70 | 0x71 | 0xcf8..=0xcff | 0x2e | 0x2f | 0x4e | 0x4f | 0x2f8..=0x2ff | 0x3e8..=0x3ef | 0x2e8..=0x2ef
    )
}

/// The devices of a partition, shared by its vCPU threads.
pub struct Devices {
    pub uart: Mutex<Uart>,
    /// COM2, in a partition that is an end of a uart link (shared with its link thread).
    pub com2: Option<Arc<Mutex<LinkedUart>>>,
    pub power: PowerController,
    pub pv: PvCallHandler,
    pub console: Console,
    pub started: Instant,
    pub virtio: VirtioDevices,
    pub unhandled_log: RateLimitedLog,
    /// Debugging aid (`BULKHEAD_TRACE_IO=1`): print every port write except COM1's.
    pub trace_io: bool,
    pub health: std::sync::Arc<Health>,
    /// The partition's ports and doorbells, when it has any.
    pub ports: Option<Arc<PartitionPorts>>,
}

/// What the vCPU loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep running the guest.
    Continue,
    /// The guest asked for power-off (code 0 for ACPI S5).
    PowerOff(u64),
    /// The guest asked for a reset.
    Reset,
    /// The health monitor stops the partition.
    Health(HealthStop),
}

impl From<PowerEvent> for Next {
    fn from(e: PowerEvent) -> Next {
        match e {
            PowerEvent::PowerOff => Next::PowerOff(0),
            PowerEvent::Reset => Next::Reset,
        }
    }
}

/// Per-vCPU context for the paravirtual calls.
pub struct VcpuCtx<'a> {
    pub index: u8,
    pub pv_state: PvVcpuState,
    pub mem: &'a GuestMemory,
}

impl Devices {
    fn uart(&self) -> std::sync::MutexGuard<'_, Uart> {
        self.uart.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// COM2 and the register `port` is, if the partition has COM2 and `port` is one of its.
    fn com2_at(&self, port: u16) -> Option<(std::sync::MutexGuard<'_, LinkedUart>, u8)> {
        let com2 = self.com2.as_ref()?;
        let offset = port.checked_sub(COM2_BASE).filter(|o| *o < UART_PORT_LEN)?;
        Some((com2.lock().unwrap_or_else(|e| e.into_inner()), offset as u8))
    }

    /// A guest `in` from `port`.
    pub fn io_in(&self, port: u16, data: &mut [u8]) {
        let value = match port {
            p if (COM1_BASE..COM1_BASE + UART_PORT_LEN).contains(&p) => {
                self.uart().read((p - COM1_BASE) as u8)
            }
            p if self.com2.is_some() && (COM2_BASE..COM2_BASE + UART_PORT_LEN).contains(&p) => self
                .com2_at(p)
                .map_or(0xff, |(mut com2, offset)| com2.read(offset)),
            p if (POWER_PORT_BASE..POWER_PORT_BASE + POWER_PORT_LEN).contains(&p) => {
                self.power.read(p - POWER_PORT_BASE)
            }
            p => health_read(p).unwrap_or(0xff),
        };
        data.fill(0xff);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    /// A guest `out` to `port`.
    pub fn io_out(&self, port: u16, data: &[u8], vcpu: &mut VcpuCtx<'_>) -> Next {
        let byte = data.first().copied().unwrap_or(0);
        if self.trace_io && !(COM1_BASE..COM1_BASE + UART_PORT_LEN).contains(&port) {
            eprintln!("trace: vCPU {} out {port:#x} <- {data:02x?}", vcpu.index);
        }
        if let Some(signal) = health_write(port, byte) {
            return match signal {
                HealthSignal::WatchdogKick => {
                    self.health.kick();
                    Next::Continue
                }
                // A partition cannot turn its own supervision off.
                HealthSignal::WatchdogStop => Next::Continue,
                HealthSignal::Panic(event) => self
                    .health
                    .panicked(u64::from(event))
                    .map_or(Next::Continue, Next::Health),
            };
        }
        match port {
            p if (COM1_BASE..COM1_BASE + UART_PORT_LEN).contains(&p) => {
                self.uart().write((p - COM1_BASE) as u8, byte);
                Next::Continue
            }
            p if self.com2.is_some() && (COM2_BASE..COM2_BASE + UART_PORT_LEN).contains(&p) => {
                if let Some((mut com2, offset)) = self.com2_at(p) {
                    com2.write(offset, byte);
                }
                Next::Continue
            }
            p if (POWER_PORT_BASE..POWER_PORT_BASE + POWER_PORT_LEN).contains(&p) => self
                .power
                .write(p - POWER_PORT_BASE, byte)
                .map_or(Next::Continue, Next::from),
            I8042_COMMAND_PORT => self
                .power
                .i8042_command(byte)
                .map_or(Next::Continue, Next::from),
            bulkhead_pvabi::X86_DOORBELL_PORT if data.len() == 4 => {
                let doorbell = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                let platform = PlatformImpl { devices: self };
                match self.pv.ring(
                    vcpu.mem,
                    doorbell,
                    u64::from(vcpu.index),
                    &mut vcpu.pv_state,
                    &platform,
                ) {
                    PvOutcome::Resume => Next::Continue,
                    PvOutcome::PowerOff(code) => Next::PowerOff(code),
                    PvOutcome::DeadlinesMissed(n) => self
                        .health
                        .deadlines_missed(n)
                        .map_or(Next::Continue, Next::Health),
                    PvOutcome::Panic(code) => self
                        .health
                        .panicked(code)
                        .map_or(Next::Continue, Next::Health),
                }
            }
            p if is_quietly_absent(p) => Next::Continue,
            _ => {
                self.unhandled_log.emit(format_args!(
                    "vCPU {}: write to unhandled I/O port {port:#x} ignored",
                    vcpu.index
                ));
                Next::Continue
            }
        }
    }

    /// A guest MMIO read outside RAM: a virtio-mmio window, or nothing (reads as all-ones).
    pub fn mmio_read(&self, addr: u64, data: &mut [u8], vcpu: u8) {
        if !self.virtio.mmio_read(addr, data) {
            self.unhandled_log.emit(format_args!(
                "vCPU {vcpu}: read of unhandled MMIO address {addr:#x}"
            ));
            data.fill(0xff);
        }
    }

    /// A guest MMIO write outside RAM: a virtio-mmio window, or nothing (ignored).
    pub fn mmio_write(&self, addr: u64, data: &[u8], vcpu: u8) {
        if !self.virtio.mmio_write(addr, data) {
            self.unhandled_log.emit(format_args!(
                "vCPU {vcpu}: write to unhandled MMIO address {addr:#x} ignored"
            ));
        }
    }
}

/// The paravirtual calls' view of the world: the partition's clock and console.
struct PlatformImpl<'a> {
    devices: &'a Devices,
}

impl PvPlatform for PlatformImpl<'_> {
    fn now_ns(&self) -> u64 {
        self.devices.started.elapsed().as_nanos() as u64
    }

    fn sleep_until_ns(&self, deadline_ns: u64) {
        let now = self.now_ns();
        if deadline_ns > now {
            std::thread::sleep(Duration::from_nanos(deadline_ns - now));
        }
    }

    fn console_write(&self, bytes: &[u8]) {
        self.devices.console.write_guest(bytes);
    }

    fn watchdog_kick(&self) -> u64 {
        self.devices.health.kick()
    }

    fn ports(&self) -> &dyn PvPorts {
        match &self.devices.ports {
            Some(ports) => ports.as_ref(),
            None => &NoPorts,
        }
    }
}
