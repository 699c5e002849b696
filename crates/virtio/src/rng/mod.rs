//! The entropy device, virtio-rng (virtio 1.2 §5.4): one request queue whose device-writable
//! buffers are filled from the host's `getrandom(2)`.

mod device;
mod metrics;

pub use device::{Rng, QUEUE_SIZE};
