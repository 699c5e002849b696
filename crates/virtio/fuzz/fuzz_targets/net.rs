//! virtio-net request path: arbitrary rings and buffers in guest memory, then kicks and host-side
//! input. Input layout: `bulkhead_virtio_fuzz` crate docs.
#![no_main]

use bulkhead_virtio_fuzz::{run_device, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    run_device(Kind::Net, data);
});
