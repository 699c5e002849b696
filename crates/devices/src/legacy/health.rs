//! The two devices through which a stock Linux kernel reaches the partition's health monitor
//! with its own drivers:
//!
//! - the **IB700 watchdog** (`ib700wdt`, an ISA card with no discovery): a write to
//!   [`IB700_START_PORT`] starts or kicks it, a write to [`IB700_STOP_PORT`] stops it. The
//!   timeout the guest writes is ignored: the partition's `watchdog_ms` applies, and a stop is
//!   ignored too — a partition cannot turn its own supervision off (ARINC 653). The first kick
//!   arms the watchdog, as the ABI's `WatchdogKick` does.
//! - the **pvpanic** device (`pvpanic-mmio`, ACPI `_HID` `QEMU0001` with one I/O port,
//!   [`PVPANIC_PORT`]; QEMU's `docs/specs/pvpanic.rst`): a read tells the guest which events it
//!   may report, a write with [`PVPANIC_PANICKED`] reports a kernel panic.
//!
//! Both are decoded here into [`HealthSignal`]s for the vCPU loop, which hands them to the
//! health monitor; neither keeps state.

/// IB700 "stop" port (Linux `drivers/watchdog/ib700wdt.c`, `WDT_STOP`).
pub const IB700_STOP_PORT: u16 = 0x441;
/// IB700 "start/kick" port (`WDT_START`); the byte written selects a timeout, ignored here.
pub const IB700_START_PORT: u16 = 0x443;
/// The pvpanic I/O port (QEMU's default for the ISA pvpanic device).
pub const PVPANIC_PORT: u16 = 0x505;
/// pvpanic event bit: the guest kernel panicked.
pub const PVPANIC_PANICKED: u8 = 1 << 0;
/// pvpanic event bit: a crash kernel is loaded (not offered: a panic is a panic here).
pub const PVPANIC_CRASH_LOADED: u8 = 1 << 1;

/// What a guest's access to one of the health devices means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthSignal {
    /// The watchdog was started or kicked.
    WatchdogKick,
    /// The guest asked to stop the watchdog (ignored by the monitor).
    WatchdogStop,
    /// The guest kernel panicked (the pvpanic event byte).
    Panic(u8),
}

/// Decodes a guest write of `value` to `port`; `None` for ports that are not these devices'
/// or writes that report nothing.
pub fn health_write(port: u16, value: u8) -> Option<HealthSignal> {
    match port {
        IB700_START_PORT => Some(HealthSignal::WatchdogKick),
        IB700_STOP_PORT => Some(HealthSignal::WatchdogStop),
        PVPANIC_PORT if value & PVPANIC_PANICKED != 0 => Some(HealthSignal::Panic(value)),
        _ => None,
    }
}

/// A guest read of `port`, if it is one of these devices': the pvpanic port reads as the
/// events it may report; the IB700 ports read as all-ones, like an ISA card without
/// read-back.
pub fn health_read(port: u16) -> Option<u8> {
    match port {
        PVPANIC_PORT => Some(PVPANIC_PANICKED),
        IB700_STOP_PORT | IB700_START_PORT => Some(0xff),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_write_to_the_ib700_start_port_kicks_whatever_timeout_it_selects() {
        assert_eq!(
            health_write(IB700_START_PORT, 0x0f),
            Some(HealthSignal::WatchdogKick)
        );
        assert_eq!(
            health_write(IB700_START_PORT, 0),
            Some(HealthSignal::WatchdogKick)
        );
    }

    #[test]
    fn a_write_to_the_ib700_stop_port_is_reported_as_a_stop() {
        assert_eq!(
            health_write(IB700_STOP_PORT, 0),
            Some(HealthSignal::WatchdogStop)
        );
    }

    #[test]
    fn pvpanic_offers_only_the_panicked_event_and_reports_it() {
        assert_eq!(health_read(PVPANIC_PORT), Some(PVPANIC_PANICKED));
        assert_eq!(
            health_write(PVPANIC_PORT, PVPANIC_PANICKED),
            Some(HealthSignal::Panic(1))
        );
        assert_eq!(health_write(PVPANIC_PORT, PVPANIC_CRASH_LOADED), None);
    }

    #[test]
    fn other_ports_are_not_these_devices() {
        assert_eq!(health_write(0x80, 1), None);
        assert_eq!(health_read(0x80), None);
    }
}
