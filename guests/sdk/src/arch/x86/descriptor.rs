//! x86-64 descriptor encodings (Intel SDM vol. 3A §6.14.1, "64-Bit Mode IDT"; §7.2.3,
//! "TSS Descriptor in 64-bit mode").

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

/// Size of the 64-bit TSS (SDM vol. 3A §7.7, figure 7-11).
pub const TSS_SIZE: usize = 104;

/// The two quadwords of an available 64-bit TSS descriptor (type 0x9, present, DPL 0) for a
/// TSS of [`TSS_SIZE`] bytes at `base`.
pub fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = TSS_SIZE as u64 - 1;
    let low = (limit & 0xffff)
        | (base & 0xff_ffff) << 16
        | 0x89 << 40
        | ((limit >> 16) & 0xf) << 48
        | ((base >> 24) & 0xff) << 56;
    [low, base >> 32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_splits_the_handler_address() {
        let gate = interrupt_gate(0x1234_5678_9abc_def0, 0x08);

        assert_eq!(gate, [0x9abc_8e00_0008_def0, 0x1234_5678]);
    }

    #[test]
    fn tss_descriptor_splits_the_base_address() {
        let descriptor = tss_descriptor(0x1234_5678_9abc_def0);

        assert_eq!(descriptor, [0x9a00_89bc_def0_0067, 0x1234_5678]);
    }
}
