//! The call block and the one primitive that rings the doorbell with it.

use core::ptr;
use core::sync::atomic::{compiler_fence, Ordering};

use bulkhead_pvabi::{self as abi, offset};

/// One paravirtual call's request and answer, laid out as `docs/pv-abi.md` ("Call block")
/// specifies: `nr` at 0, `args` at 8, `status` at 56, `values` at 64, 128 bytes in all,
/// 64-byte aligned so that its address shifted right by 6 fits the 32-bit doorbell.
#[repr(C, align(64))]
#[derive(Debug, Clone)]
pub struct CallBlock {
    nr: u64,
    args: [u64; abi::CALL_ARGS],
    status: i64,
    values: [u64; abi::CALL_VALUES],
    reserved: [u64; 4],
}

const _: () = {
    assert!(core::mem::size_of::<CallBlock>() == abi::CALL_BLOCK_SIZE);
    assert!(core::mem::align_of::<CallBlock>() == 1 << abi::CALL_BLOCK_ALIGN_SHIFT);
    assert!(core::mem::offset_of!(CallBlock, nr) == offset::NR);
    assert!(core::mem::offset_of!(CallBlock, args) == offset::ARGS);
    assert!(core::mem::offset_of!(CallBlock, status) == offset::STATUS);
    assert!(core::mem::offset_of!(CallBlock, values) == offset::VALUES);
};

impl Default for CallBlock {
    fn default() -> Self {
        Self::new()
    }
}

impl CallBlock {
    /// A zeroed block.
    pub const fn new() -> Self {
        CallBlock {
            nr: 0,
            args: [0; abi::CALL_ARGS],
            status: 0,
            values: [0; abi::CALL_VALUES],
            reserved: [0; 4],
        }
    }

    /// The block's guest-physical address (identity mapping, see the crate docs).
    pub fn gpa(&self) -> u64 {
        self as *const CallBlock as u64
    }

    /// Performs call `nr` with `args` through this block and returns `(status, values)`.
    ///
    /// `status` is [`abi::STATUS_UNANSWERED`] when no monitor answered, or when the block lies
    /// above the 256 GiB the 32-bit doorbell can name (then nothing is rung).
    pub fn call(&mut self, nr: u64, args: [u64; abi::CALL_ARGS]) -> (i64, [u64; abi::CALL_VALUES]) {
        store(&mut self.nr, nr);
        for (slot, value) in self.args.iter_mut().zip(args) {
            store(slot, value);
        }
        store_signed(&mut self.status, abi::STATUS_UNANSWERED);
        if let Ok(doorbell) = u32::try_from(self.gpa() >> abi::CALL_BLOCK_ALIGN_SHIFT) {
            // The monitor reads the block while this vCPU is stopped at the doorbell: every
            // store above must be in memory before it rings, and every load below must come
            // after it.
            compiler_fence(Ordering::SeqCst);
            ring(doorbell);
            compiler_fence(Ordering::SeqCst);
        }
        let mut values = [0; abi::CALL_VALUES];
        for (value, slot) in values.iter_mut().zip(&self.values) {
            *value = load(slot);
        }
        (load_signed(&self.status), values)
    }
}

/// Performs call `nr` with `args` through a fresh block on the stack; returns
/// `(status, values)` unchecked. For tests and for calls newer than this SDK.
pub fn raw_call(nr: u64, args: [u64; abi::CALL_ARGS]) -> (i64, [u64; abi::CALL_VALUES]) {
    CallBlock::new().call(nr, args)
}

#[cfg(target_arch = "x86_64")]
fn ring(doorbell: u32) {
    // SAFETY: a 32-bit write to the bulkhead doorbell port. Under a bulkhead monitor it makes
    // the call described by the block (which the caller has filled); elsewhere the port is
    // unassigned (bulkhead reserves it; see docs/pv-abi.md, "x86 binding") and the write has
    // no effect.
    unsafe { crate::arch::x86::port::outl(abi::X86_DOORBELL_PORT, doorbell) };
}

/// Volatile store: the monitor reads the block behind the compiler's back.
fn store(slot: &mut u64, value: u64) {
    // SAFETY: `slot` is a valid, aligned, exclusive reference.
    unsafe { ptr::write_volatile(slot, value) };
}

fn store_signed(slot: &mut i64, value: i64) {
    // SAFETY: `slot` is a valid, aligned, exclusive reference.
    unsafe { ptr::write_volatile(slot, value) };
}

/// Volatile load: the monitor writes the block behind the compiler's back.
fn load(slot: &u64) -> u64 {
    // SAFETY: `slot` is a valid, aligned reference.
    unsafe { ptr::read_volatile(slot) }
}

fn load_signed(slot: &i64) -> i64 {
    // SAFETY: `slot` is a valid, aligned reference.
    unsafe { ptr::read_volatile(slot) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_block_has_the_abi_size_and_alignment() {
        let block = CallBlock::new();

        assert_eq!(
            (core::mem::size_of_val(&block), block.gpa() % 64),
            (abi::CALL_BLOCK_SIZE, 0)
        );
    }
}
