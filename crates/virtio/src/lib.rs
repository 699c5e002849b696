//! VirtIO 1.2 devices (modern interface only) over the virtio-mmio transport, for guests that
//! drive them with their own drivers (Debian 12's `virtio_mmio`, `virtio_blk`, `virtio_rng`,
//! `virtio_console`, `virtio_net`). Design notes and limits: `docs/virtio.md`.
//!
//! Like the other device crates this one knows nothing of KVM, processes or ACPI. A device gets
//! guest memory ([`vm_memory::GuestMemoryMmap`]) and an interrupt line ([`Interrupt`], an
//! eventfd the partition wires as a KVM irqfd) as parameters.
//!
//! - [`MmioTransport`] (virtio 1.2 §4.2.2): the register window, the device status state machine
//!   (§2.1, §3.1.1), feature negotiation (§2.2), queue configuration. vCPU threads call
//!   [`MmioTransport::read`]/[`MmioTransport::write`]; the partition's device thread calls
//!   [`MmioTransport::queue_notified`], and [`MmioTransport::backend_ready`] when a device's
//!   host-side input ([`VirtioDevice::backend_fd`]) is readable. No queue is ever processed
//!   inside `write`.
//! - [`block`] (§5.2), [`rng`] (§5.4), [`console`] (§5.3), [`net`] (§5.1): the devices, each
//!   behind [`VirtioDevice`].
//!
//! The guest is hostile. Every descriptor chain is walked and checked once, before any byte of
//! it is used (`chain.rs`); a driver that breaks the protocol breaks only its device: the
//! transport sets `DEVICE_NEEDS_RESET`, raises a configuration-change interrupt, counts the
//! cause ([`Fault`]) and logs one rate-limited line per cause. Nothing a guest does panics,
//! hangs, allocates without bound or reaches memory outside the guest.
// `unsafe` is denied everywhere but `block::io` (vectored positional I/O on guest buffers).
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod block;
mod chain;
pub mod console;
mod fault;
mod interrupt;
mod mmio;
pub mod net;
mod queue;
mod ratelimit;
pub mod rng;
pub mod vsock;

#[cfg(test)]
mod testing;

pub use fault::Fault;
pub use interrupt::Interrupt;
pub use mmio::{MmioTransport, MMIO_WINDOW_SIZE, QUEUE_NOTIFY_OFFSET};

use std::os::fd::RawFd;

use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

/// Feature bits every device offers (virtio 1.2 §6): `VIRTIO_F_VERSION_1` (bit 32, modern
/// interface only), `VIRTIO_F_RING_EVENT_IDX` (bit 29, §2.7.7/§2.7.10 notification
/// suppression) and `VIRTIO_F_RING_INDIRECT_DESC` (bit 28, §2.7.5.3 indirect tables).
pub const COMMON_FEATURES: u64 =
    (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_RING_F_EVENT_IDX) | (1 << VIRTIO_RING_F_INDIRECT_DESC);

/// `VIRTIO_F_VERSION_1` as a feature mask.
pub const FEATURE_VERSION_1: u64 = 1 << VIRTIO_F_VERSION_1;
/// `VIRTIO_F_RING_EVENT_IDX` as a feature mask.
pub const FEATURE_EVENT_IDX: u64 = 1 << VIRTIO_RING_F_EVENT_IDX;
/// `VIRTIO_F_RING_INDIRECT_DESC` as a feature mask.
pub const FEATURE_INDIRECT_DESC: u64 = 1 << VIRTIO_RING_F_INDIRECT_DESC;

/// Why a device stopped serving its queues (the transport then sets `DEVICE_NEEDS_RESET`).
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The driver broke the virtio protocol; the cause is counted under its own name.
    #[error("driver broke the virtio protocol: {0}")]
    DriverFault(#[from] Fault),
    /// The device declared a queue maximum size that is not a power of two in 1..=32768.
    #[error("device queue maximum size {0} is not a power of two up to 32768")]
    QueueMaxSize(u16),
    /// `activate` was handed a different number of queues than the device has.
    #[error("activation with {got} queues, the device has {expected}")]
    QueueCount { expected: usize, got: usize },
    /// Accessing a ring of a queue that passed validation failed.
    #[error("queue ring access failed")]
    QueueAccess(#[source] virtio_queue::Error),
    /// Accessing a buffer of a chain that passed validation failed.
    #[error("guest memory access failed")]
    GuestMemory(#[source] vm_memory::GuestMemoryError),
}

impl DeviceError {
    /// The counter this error is recorded under.
    pub fn fault(&self) -> Fault {
        match self {
            DeviceError::DriverFault(fault) => *fault,
            DeviceError::QueueAccess(virtio_queue::Error::InvalidAvailRingIndex) => {
                Fault::AvailIndex
            }
            DeviceError::QueueMaxSize(_)
            | DeviceError::QueueCount { .. }
            | DeviceError::QueueAccess(_)
            | DeviceError::GuestMemory(_) => Fault::DeviceError,
        }
    }
}

/// A VirtIO device model behind a transport. Called with the transport's lock held: from vCPU
/// threads for configuration space accesses, from the partition's device thread for
/// `process_queue` and `process_backend`.
pub trait VirtioDevice: Send {
    /// The device ID (virtio 1.2 §5: 1 network, 2 block, 3 console, 4 entropy).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue (each a power of two, at most 32768); the length is the
    /// number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits offered; must include [`COMMON_FEATURES`].
    fn avail_features(&self) -> u64;
    /// Reads `data.len()` bytes of the device configuration space at `offset`; bytes beyond
    /// the configuration structure read as zeros.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes the configuration space; writes to read-only fields are ignored.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Starts the device (the driver set `DRIVER_OK`). `queues` has one entry per queue, in
    /// order; a queue the driver did not enable is not ready and is never served.
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), DeviceError>;
    /// Serves queue `index`. `Ok(true)`: used buffers were added and the queue's notification
    /// suppression state (`VIRTIO_F_RING_EVENT_IDX`) asks for an interrupt. `Err`: the device
    /// is broken until the driver resets it.
    fn process_queue(&mut self, index: usize) -> Result<bool, DeviceError>;
    /// Whether the last `process_queue(index)` stopped at its work cap with chains still
    /// available: the caller must call it again (after serving its other sources).
    fn queue_pending(&self, index: usize) -> bool {
        let _ = index;
        false
    }
    /// Chains the last `process_queue(index)` returned to the driver, for a caller that
    /// batches notifications (it holds a notification back while that makes batches larger);
    /// `None` (the default) when the device does not count them, which disables batching.
    fn queue_batch(&self, index: usize) -> Option<u32> {
        let _ = index;
        None
    }
    /// A descriptor that becomes readable when host-side input waits for the device (a network
    /// backend's socket), or `None` (the default). The same for the device's lifetime; the
    /// device thread waits on it edge-triggered and then calls
    /// [`VirtioDevice::process_backend`] (through [`MmioTransport::backend_ready`]).
    fn backend_fd(&self) -> Option<RawFd> {
        None
    }
    /// Serves host-side input after `backend_fd` became readable. Same result as
    /// [`VirtioDevice::process_queue`]. Must read the input until none is left, or stop for a
    /// reason that brings it back: no guest buffer (the driver's next notification of that
    /// queue resumes it), or the work cap ([`VirtioDevice::backend_pending`]).
    fn process_backend(&mut self) -> Result<bool, DeviceError> {
        Ok(false)
    }
    /// Whether the last `process_backend` stopped at its work cap: call it again (after
    /// serving the other sources).
    fn backend_pending(&self) -> bool {
        false
    }
    /// Whether the device's configuration space changed on the host side since the last call
    /// (e.g. a network link went down): the transport then raises a configuration-change
    /// interrupt. Asked after activation and after every `process_backend`.
    fn take_config_change(&mut self) -> bool {
        false
    }
    /// A line for the monitor's log about the device's host side (e.g. its backend could not
    /// be reached), at most one per call; the transport rate-limits them. Asked after every
    /// `process_backend`.
    fn take_log_line(&mut self) -> Option<String> {
        None
    }
    /// The eventfds the queues' notifications must go to, one per queue, when the device takes
    /// them itself (a vhost-user device hands them to its backend): the partition registers
    /// these as the queues' ioeventfds and never waits on them. `None` (the default): the
    /// partition creates its own and calls `process_queue`.
    fn kick_eventfds(&self) -> Option<Vec<vmm_sys_util::eventfd::EventFd>> {
        None
    }
    /// The device's interrupt line, given once when the transport is made, for a device whose
    /// backend raises it itself (vhost-user).
    fn set_interrupt(&mut self, interrupt: std::sync::Arc<Interrupt>) {
        let _ = interrupt;
    }
    /// Back to the state before activation (the driver wrote 0 to the status register).
    fn reset(&mut self);
    /// Counters, by name (each device documents its fields in its `metrics.rs`).
    fn metrics(&self) -> Vec<(&'static str, u64)>;
}

/// Copies the part of `config` that `offset..offset + data.len()` overlaps into `data`; the
/// rest of `data` is zeroed.
pub(crate) fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if let Some(src) = config.get(start..) {
        let n = src.len().min(data.len());
        if let (Some(dst), Some(src)) = (data.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_read_past_the_end_gives_zeros() {
        let config = [1u8, 2, 3, 4];
        let mut data = [0xffu8; 4];

        read_config_bytes(&config, 2, &mut data);

        assert_eq!(data, [3, 4, 0, 0]);
    }

    #[test]
    fn config_read_far_beyond_the_structure_gives_zeros() {
        let config = [1u8, 2, 3, 4];
        let mut data = [0xffu8; 8];

        read_config_bytes(&config, u64::MAX, &mut data);

        assert_eq!(data, [0; 8]);
    }
}
