//! virtio-mmio transport: register reads and writes of any width, memory pokes and kicks, in
//! any order. Input layout: `bulkhead_virtio_fuzz::run_transport`.
#![no_main]

use bulkhead_virtio_fuzz::run_transport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    run_transport(data);
});
