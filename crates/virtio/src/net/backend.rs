//! Where a virtio-net device's frames go: the [`NetBackend`] trait. The device model calls it
//! on the partition's device thread only; implementations live with the host code that owns
//! the file descriptors (`bulkhead-partition`: TAP devices, inter-partition links).

use std::os::fd::RawFd;

/// The host side of a virtio-net device: one buffer per call, each a 12-byte virtio-net header
/// ([`super::NetHeader`], `num_buffers` zero) followed by a whole Ethernet frame. The header
/// carries the checksum and segmentation offloads: a frame may be up to 64 KiB with a partial
/// checksum, to be segmented by whoever takes it (the host kernel behind a TAP opened with
/// `IFF_VNET_HDR`, or the driver of the partition at the other end of a link, which the
/// receiving device checks).
///
/// Contract (the device relies on it to never block the device thread):
/// - [`NetBackend::send`] does not block. A frame it cannot take *for now* (its queue full)
///   is `ErrorKind::WouldBlock`: the device keeps the frame on the guest's transmit queue and
///   tries again when `raw_fd` turns writable. Any other error (peer absent, host error)
///   drops the frame, counted;
/// - [`NetBackend::recv`] does not block: `Ok(None)` means no frame is waiting;
/// - [`NetBackend::raw_fd`] stays the same for the backend's lifetime, becomes readable when a
///   frame arrives and writable when a full queue has room again. The device thread waits on
///   it edge-triggered: after a wake-up the device sends what waited and reads until
///   `Ok(None)`, or stops because the guest has no receive buffer (its next receive-queue
///   notification resumes reading) or at its work cap (it is called again).
///
/// A replacement backend (the inter-partition bridge as a vhost-user process) needs only a
/// socket with frame boundaries behind these three calls.
pub trait NetBackend: Send {
    /// Hands one header and frame to the host.
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()>;
    /// Reads one header and frame into `buf`; returns the length, or `None` when nothing
    /// waits. Anything longer than `buf` is truncated to it (callers pass a buffer of
    /// [`super::HEADER_LEN`] + [`super::MAX_FRAME_LEN`] bytes).
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>>;
    /// A descriptor that is readable while frames wait.
    fn raw_fd(&self) -> RawFd;
    /// The offloads the guest accepts on receive (called at each activation): a backend that
    /// produces frames itself (a TAP) must not hand over segmented frames or partial checksums
    /// beyond them. The default ignores it (a link hands on what the peer's guest sent; the
    /// receiving device checks it).
    fn set_offloads(&mut self, offloads: super::Offloads) -> std::io::Result<()> {
        let _ = offloads;
        Ok(())
    }
}
