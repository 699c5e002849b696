//! Legacy PC devices every x86 partition gets: the 16550 UART at COM1 and the power/reset
//! controller. Both are port-I/O devices driven from the vCPU thread that trapped on the access.

mod power;
mod uart;

pub use power::{
    PowerController, PowerEvent, I8042_COMMAND_PORT, POWER_PORT_BASE, POWER_PORT_LEN, RESET_OFFSET,
    RESET_VALUE, S5_SLEEP_TYPE, SLEEP_CONTROL_OFFSET, SLEEP_STATUS_OFFSET,
};
pub use uart::{Uart, COM1_BASE, COM1_GSI, UART_PORT_LEN};
