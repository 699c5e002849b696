//! The network device, virtio-net (virtio 1.2 §5.1): one receive and one transmit queue (no
//! control queue, no multiqueue), the MAC address and link status in configuration space, no
//! checksum or segmentation offloads. Frames go to and come from a [`NetBackend`], the seam
//! between the device model and the host (a TAP device, a direct link to another partition,
//! later a vhost-user bridge process).

mod backend;
mod device;
mod metrics;

pub use backend::NetBackend;
pub use device::{Net, HEADER_LEN, MAX_FRAME_LEN, QUEUE_SIZE, RECEIVEQ, TRANSMITQ};
