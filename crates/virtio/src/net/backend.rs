//! Where a virtio-net device's frames go: the [`NetBackend`] trait. The device model calls it
//! on the partition's device thread only; implementations live with the host code that owns
//! the file descriptors (`bulkhead-partition`: TAP devices, inter-partition links).

use std::os::fd::RawFd;

/// The host side of a virtio-net device: whole Ethernet frames, without the virtio-net header,
/// one per call.
///
/// Contract (the device relies on it to never block the device thread):
/// - [`NetBackend::send`] does not block; a frame it cannot take now (queue full, peer absent)
///   is an error, and the device drops the frame and counts it;
/// - [`NetBackend::recv`] does not block: `Ok(None)` means no frame is waiting;
/// - [`NetBackend::raw_fd`] stays the same for the backend's lifetime and becomes readable
///   when a frame arrives. The device thread waits on it edge-triggered: after a wake-up the
///   device reads until `Ok(None)`, or stops because the guest has no receive buffer (its next
///   receive-queue notification resumes reading) or at its work cap (it is called again).
///
/// A replacement backend (the inter-partition bridge as a vhost-user process) needs only a
/// socket with frame boundaries behind these three calls.
pub trait NetBackend: Send {
    /// Hands one frame to the host.
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()>;
    /// Reads one frame into `buf`; returns its length, or `None` when nothing waits. A frame
    /// longer than `buf` is truncated to it (callers pass a buffer of [`super::MAX_FRAME_LEN`]
    /// bytes).
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>>;
    /// A descriptor that is readable while frames wait.
    fn raw_fd(&self) -> RawFd;
}
