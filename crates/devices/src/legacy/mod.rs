//! Legacy PC devices every x86 partition gets: the 16550 UART at COM1, the power/reset
//! controller, and the health devices (IB700 watchdog, pvpanic). All are port-I/O devices
//! driven from the vCPU thread that trapped on the access.

mod health;
mod power;
mod uart;

pub use health::{
    health_read, health_write, HealthSignal, IB700_START_PORT, IB700_STOP_PORT,
    PVPANIC_CRASH_LOADED, PVPANIC_PANICKED, PVPANIC_PORT,
};
pub use power::{
    PowerController, PowerEvent, I8042_COMMAND_PORT, POWER_PORT_BASE, POWER_PORT_LEN, RESET_OFFSET,
    RESET_VALUE, S5_SLEEP_TYPE, SLEEP_CONTROL_OFFSET, SLEEP_STATUS_OFFSET,
};
pub(crate) use uart::EventFdLine;
pub use uart::{Uart, COM1_BASE, COM1_GSI, COM2_BASE, COM2_GSI, UART_PORT_LEN};
