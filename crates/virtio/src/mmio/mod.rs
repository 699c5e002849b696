//! The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2).

mod metrics;
mod transport;

pub use transport::{MmioTransport, MMIO_WINDOW_SIZE, QUEUE_NOTIFY_OFFSET};
