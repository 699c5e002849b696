//! x86-64 descriptor encodings (Intel SDM vol. 3A §6.14.1, "64-Bit Mode IDT").

/// Type/attribute byte of a present, DPL-0, 64-bit interrupt gate (type 0xE): interrupts stay
/// disabled in the handler.
pub const INTERRUPT_GATE: u8 = 0x8e;

/// The two quadwords of a 64-bit interrupt gate to `handler` in code segment `selector`,
/// with no IST stack.
pub fn interrupt_gate(handler: u64, selector: u16) -> [u64; 2] {
    let low = (handler & 0xffff)
        | (u64::from(selector) << 16)
        | (u64::from(INTERRUPT_GATE) << 40)
        | ((handler >> 16) & 0xffff) << 48;
    [low, handler >> 32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_splits_the_handler_address() {
        let gate = interrupt_gate(0x1234_5678_9abc_def0, 0x08);

        assert_eq!(gate, [0x9abc_8e00_0008_def0, 0x1234_5678]);
    }
}
