//! A virtio-mmio device's interrupt line and its `InterruptStatus` register (virtio 1.2
//! §4.2.2, offsets 0x60/0x64). The status lives here, in an atomic, so that raising an
//! interrupt (device thread) and reading or acknowledging it (vCPU threads) never take the
//! transport's lock: a vCPU may serve offsets 0x60 and 0x64 through [`Interrupt::status`] and
//! [`Interrupt::acknowledge`] directly.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use vmm_sys_util::eventfd::EventFd;

/// The interrupt line of one device: an eventfd (wired as a KVM irqfd by the partition) plus
/// the `InterruptStatus` bits.
#[derive(Debug)]
pub struct Interrupt {
    status: AtomicU32,
    irq: EventFd,
    signal_errors: AtomicU64,
    /// The line is raised by another process (a vhost-user backend signals the eventfd
    /// directly), which cannot set bit 0: `InterruptStatus` then always shows it.
    vring_raised_elsewhere: std::sync::atomic::AtomicBool,
}

impl Interrupt {
    /// Wraps the eventfd that raises the device's interrupt.
    pub fn new(irq: EventFd) -> Arc<Interrupt> {
        Arc::new(Interrupt {
            status: AtomicU32::new(0),
            irq,
            signal_errors: AtomicU64::new(0),
            vring_raised_elsewhere: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sets `VIRTIO_MMIO_INT_VRING` (bit 0: a used ring was updated) and raises the line.
    pub fn signal_used_queue(&self) {
        self.raise(VIRTIO_MMIO_INT_VRING);
    }

    /// Sets `VIRTIO_MMIO_INT_CONFIG` (bit 1: the configuration changed, or the device needs a
    /// reset) and raises the line.
    pub fn signal_config_change(&self) {
        self.raise(VIRTIO_MMIO_INT_CONFIG);
    }

    /// The `InterruptStatus` register.
    pub fn status(&self) -> u32 {
        let vring = if self.vring_raised_elsewhere.load(Ordering::Relaxed) {
            VIRTIO_MMIO_INT_VRING
        } else {
            0
        };
        self.status.load(Ordering::SeqCst) | vring
    }

    /// Whether another process raises the line for used buffers (see the field's docs;
    /// Firecracker's vhost-user devices do the same): the driver then checks its queues on
    /// every interrupt, which costs nothing when they have no news.
    pub fn set_vring_raised_elsewhere(&self, elsewhere: bool) {
        self.vring_raised_elsewhere
            .store(elsewhere, Ordering::Relaxed);
    }

    /// The `InterruptACK` register: clears the given bits.
    pub fn acknowledge(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// The eventfd, for wiring it (or reading it back in tests).
    pub fn eventfd(&self) -> &EventFd {
        &self.irq
    }

    /// How many times writing the eventfd failed (its counter saturated).
    pub fn signal_errors(&self) -> u64 {
        self.signal_errors.load(Ordering::Relaxed)
    }

    /// Clears every status bit (device reset).
    pub(crate) fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
    }

    fn raise(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::SeqCst);
        if self.irq.write(1).is_err() {
            self.signal_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    #[test]
    fn used_queue_signal_sets_bit_0_and_writes_the_eventfd() {
        let interrupt = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());

        interrupt.signal_used_queue();

        assert_eq!(interrupt.status(), 1);
        assert_eq!(interrupt.eventfd().read().unwrap(), 1);
    }

    #[test]
    fn acknowledging_clears_only_the_given_bits() {
        let interrupt = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());
        interrupt.signal_used_queue();
        interrupt.signal_config_change();

        interrupt.acknowledge(1);

        assert_eq!(interrupt.status(), 2);
    }
}
