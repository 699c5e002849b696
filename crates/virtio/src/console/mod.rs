//! The console device, virtio-console (virtio 1.2 §5.3), single port (no
//! `VIRTIO_CONSOLE_F_MULTIPORT`): the guest's `hvc0`. Output (transmitq) goes to a host sink;
//! input (receiveq) comes from a bounded buffer the host fills through [`ConsoleInput`].

mod device;
mod metrics;

pub use device::{
    Console, ConsoleInput, DEFAULT_INPUT_CAPACITY, MAX_TX_BYTES_PER_CHAIN, QUEUE_SIZE, RECEIVEQ,
    TRANSMITQ,
};
