//! The socket device, virtio-vsock (virtio 1.2 §5.10): stream connections from the guest to
//! host services, each guest-visible host port joined to a Unix socket declared in the system
//! description (Firecracker's scheme for guest-initiated connections). Design and limits:
//! `docs/virtio.md`.

mod connection;
mod device;
mod metrics;
mod packet;

pub use connection::BUF_ALLOC;
pub use device::{
    Vsock, EVENT_QUEUE, MAX_CONNECTIONS, MAX_CONTROL, MAX_PAYLOAD, QUEUE_SIZE, RX_QUEUE, TX_QUEUE,
};
pub use packet::{op, Header, HEADER_LEN, HOST_CID, SHUTDOWN_RECEIVE, SHUTDOWN_SEND, TYPE_STREAM};

#[cfg(test)]
mod tests;
