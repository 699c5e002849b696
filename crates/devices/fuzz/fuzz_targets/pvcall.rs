//! Fuzz target: the paravirtual call handler, the monitor's guest-facing ABI parser.
//!
//! Input layout: 4 bytes doorbell value, then up to 64 KiB that become the start of a 64 KiB
//! guest memory (call blocks, buffers), the rest zero. A second doorbell of the same block
//! exercises per-vCPU state (the WaitNextPeriod grid) and the ports' state (a message sent by
//! the first ring can be received by the second). The clock is fake and never sleeps; the
//! ports are `FuzzPorts` (one of each kind, named "s0".."s5"), which assert that the handler
//! hands them only messages and buffers of the port's size.
//! Invariants checked: no panic; nothing outside guest memory is touched (vm-memory would
//! fail); PowerOff only when the call number says so.
#![no_main]

use std::cell::Cell;

use bulkhead_devices::pvcall::{
    PvCallHandler, PvIdentity, PvOutcome, PvPlatform, PvPorts, PvVcpuState,
};
use bulkhead_devices_fuzz::FuzzPorts;
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM: usize = 64 * 1024;

struct FakePlatform {
    now: Cell<u64>,
    ports: FuzzPorts,
}

impl PvPlatform for FakePlatform {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }
    fn sleep_until_ns(&self, deadline_ns: u64) {
        self.now.set(self.now.get().max(deadline_ns).saturating_add(1));
    }
    fn console_write(&self, bytes: &[u8]) {
        assert!(bytes.len() as u64 <= bulkhead_pvabi::CONSOLE_WRITE_MAX);
    }
    fn watchdog_kick(&self) -> u64 {
        100
    }
    fn ports(&self) -> &dyn PvPorts {
        &self.ports
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let doorbell = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM)]).expect("guest memory");
    let image = &data[4..data.len().min(4 + MEM)];
    mem.write_slice(image, GuestAddress(0)).expect("seed guest memory");
    let handler = PvCallHandler::new(PvIdentity {
        partition_index: 1,
        name: "fuzz".into(),
        high_criticality: false,
        tsc_khz: 1_000_000,
    });
    let platform = FakePlatform {
        now: Cell::new(1_000),
        ports: FuzzPorts::default(),
    };
    let mut state = PvVcpuState::default();
    for _ in 0..2 {
        let block = u64::from(doorbell) << bulkhead_pvabi::CALL_BLOCK_ALIGN_SHIFT;
        let nr: Option<u64> = mem.read_obj(GuestAddress(block)).ok();
        let outcome = handler.ring(&mem, doorbell, 0, &mut state, &platform);
        if let PvOutcome::PowerOff(_) = outcome {
            assert_eq!(nr, Some(bulkhead_pvabi::Call::PowerOff as u64));
        }
    }
});
