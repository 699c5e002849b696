//! The power/reset controller: how a guest powers its partition off or resets it.
//!
//! Three doors, all port I/O, all ending in a [`PowerEvent`] for the vCPU loop:
//! - the ACPI hardware-reduced sleep control register (FADT `SLEEP_CONTROL_REG`, ACPI 6.4
//!   §4.8.3.7): a write with `SLP_EN` set and `SLP_TYP` = 5 (our `\_S5` value) powers off;
//! - the ACPI reset register (FADT `RESET_REG`, §4.8.3.6): writing [`RESET_VALUE`] resets;
//! - the i8042 keyboard controller's "pulse reset line" command (`0xfe` to port 0x64), which
//!   Linux tries when the ACPI reset is not taken.

/// First port of the controller: sleep control (+0), sleep status (+1), reset (+2).
pub const POWER_PORT_BASE: u16 = 0x0600;
/// Number of ports of the controller.
pub const POWER_PORT_LEN: u16 = 3;
/// i8042 command/status port.
pub const I8042_COMMAND_PORT: u16 = 0x64;

/// Offset of the sleep control register.
pub const SLEEP_CONTROL_OFFSET: u16 = 0;
/// Offset of the sleep status register.
pub const SLEEP_STATUS_OFFSET: u16 = 1;
/// Offset of the reset register.
pub const RESET_OFFSET: u16 = 2;
/// Value the guest writes to the reset register (advertised in the FADT).
pub const RESET_VALUE: u8 = 0x01;
/// `SLP_TYP` for S5 (soft-off), as advertised in the DSDT's `\_S5` package.
pub const S5_SLEEP_TYPE: u8 = 5;
/// ACPI 6.4 §4.8.3.7: SLP_EN bit of the sleep control register.
const SLP_EN: u8 = 1 << 5;
/// ACPI 6.4 §4.8.3.7: SLP_TYP field (bits 4:2) of the sleep control register.
const SLP_TYP_SHIFT: u8 = 2;
const SLP_TYP_MASK: u8 = 0b111 << SLP_TYP_SHIFT;
/// i8042 command "pulse output line 0" (the CPU reset line).
const I8042_RESET_COMMAND: u8 = 0xfe;

/// What the guest asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerEvent {
    /// Soft-off (ACPI S5).
    PowerOff,
    /// Platform reset.
    Reset,
}

/// The controller. Stateless: each write is judged on its own.
#[derive(Debug, Default)]
pub struct PowerController;

impl PowerController {
    /// Guest write of `value` to port `POWER_PORT_BASE + offset`.
    pub fn write(&self, offset: u16, value: u8) -> Option<PowerEvent> {
        match offset {
            SLEEP_CONTROL_OFFSET
                if value & SLP_EN != 0
                    && (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT == S5_SLEEP_TYPE =>
            {
                Some(PowerEvent::PowerOff)
            }
            RESET_OFFSET if value == RESET_VALUE => Some(PowerEvent::Reset),
            _ => None,
        }
    }

    /// Guest read of port `POWER_PORT_BASE + offset`: all registers read as zero (the
    /// sleep status never reports a completed wake).
    pub fn read(&self, _offset: u16) -> u8 {
        0
    }

    /// Guest write to the i8042 command port.
    pub fn i8042_command(&self, value: u8) -> Option<PowerEvent> {
        (value == I8042_RESET_COMMAND).then_some(PowerEvent::Reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_control_write_of_s5_with_enable_powers_off() {
        let pc = PowerController;

        let event = pc.write(
            SLEEP_CONTROL_OFFSET,
            (S5_SLEEP_TYPE << SLP_TYP_SHIFT) | SLP_EN,
        );

        assert_eq!(event, Some(PowerEvent::PowerOff));
    }

    #[test]
    fn sleep_control_write_without_enable_does_nothing() {
        let pc = PowerController;

        let event = pc.write(SLEEP_CONTROL_OFFSET, S5_SLEEP_TYPE << SLP_TYP_SHIFT);

        assert_eq!(event, None);
    }

    #[test]
    fn reset_register_write_of_reset_value_resets() {
        assert_eq!(
            PowerController.write(RESET_OFFSET, RESET_VALUE),
            Some(PowerEvent::Reset)
        );
        assert_eq!(PowerController.write(RESET_OFFSET, 0x06), None);
    }

    #[test]
    fn i8042_pulse_reset_command_resets() {
        assert_eq!(PowerController.i8042_command(0xfe), Some(PowerEvent::Reset));
        assert_eq!(PowerController.i8042_command(0xd1), None);
    }
}
