//! The network device, virtio-net (virtio 1.2 §5.1): one receive and one transmit queue (no
//! control queue, no multiqueue), the MAC address and link status in configuration space,
//! checksum and TCP segmentation offloads both ways. Frames, each behind its virtio-net header,
//! go to and come from a [`NetBackend`], the seam between the device model and the host (a TAP
//! device, a direct link to another partition, later a vhost-user bridge process).

mod backend;
mod device;
mod header;
mod metrics;
mod vhost_user;

pub use backend::NetBackend;
pub use device::{Net, HEADER_LEN, MAX_FRAME_LEN, QUEUE_SIZE, RECEIVEQ, TRANSMITQ};
pub use header::{
    complete_checksum, fold_sum, ones_complement_sum, NetHeader, Offloads, F_NEEDS_CSUM, GSO_NONE,
    GSO_TCPV4, GSO_TCPV6,
};
pub use vhost_user::{
    VhostUserNet, VhostUserNetError, VhostUserNetMetrics, FEATURES as VHOST_USER_FEATURES,
    RETRY_INTERVAL,
};
