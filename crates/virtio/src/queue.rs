//! The device side of one split virtqueue (virtio 1.2 §2.7), shared by every device: pops
//! available chains through `virtio-queue`, checks each with [`chain::walk`], hands it to the
//! device, publishes the used element, and decides whether the driver must be interrupted
//! (`VIRTIO_F_RING_EVENT_IDX`, §2.7.7 and §2.7.10, through `virtio-queue`'s
//! `enable_notification`/`needs_notification`). Runs on the partition's device thread.
//!
//! Work per call is capped at the queue size in chains: a driver that keeps refilling the ring
//! cannot hold the device thread. When the cap stops a call with chains still available,
//! [`DeviceQueue::pending`] says so and the caller must come back.
//!
//! A device that moves a lot of data per chain (block) can ask for early publication
//! ([`DeviceQueue::publish_early`]): once a call has served half of the chains that were
//! available when it began, and they carried at least the given number of bytes, it publishes
//! them (interrupting the driver if it asked) and ends with the rest pending, so the caller
//! comes straight back. The driver then refills the half it got back while the device works on
//! the other half, instead of waiting for the whole batch: double buffering. Small requests
//! never reach the byte floor, so their batches still complete with one interrupt.
//!
//! `virtio-queue` already refuses an available index more than the queue size ahead
//! (`InvalidAvailRingIndex`, counted as [`Fault::AvailIndex`]); every other check on a chain
//! is ours, because its own iterator ends a malformed chain silently.

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::chain::{self, Chain, QueueLayout};
use crate::{DeviceError, Fault, FEATURE_EVENT_IDX, FEATURE_INDIRECT_DESC};

/// What the device did with a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Served {
    /// Done: return it to the driver with this many bytes written into it.
    Used(u32),
    /// Not now (e.g. console input is empty): leave it, and every later chain, available.
    Deferred,
}

/// One queue of an active device.
#[derive(Debug)]
pub(crate) struct DeviceQueue {
    queue: Queue,
    indirect_allowed: bool,
    pending: bool,
    /// Chains used by the last [`DeviceQueue::serve`].
    last_served: u32,
    /// Publish half a batch early once it carried this many bytes (`None`: never).
    publish_early: Option<u64>,
}

impl DeviceQueue {
    /// Wraps a queue handed over by the transport at activation.
    pub fn new(mut queue: Queue, acked_features: u64) -> Self {
        queue.set_event_idx(acked_features & FEATURE_EVENT_IDX != 0);
        DeviceQueue {
            queue,
            indirect_allowed: acked_features & FEATURE_INDIRECT_DESC != 0,
            pending: false,
            last_served: 0,
            publish_early: None,
        }
    }

    /// Publishes half of a batch early once its chains carried at least `min_bytes` (see the
    /// module documentation).
    pub fn publish_early(mut self, min_bytes: u64) -> Self {
        self.publish_early = Some(min_bytes);
        self
    }

    /// Chains the last [`DeviceQueue::serve`] returned to the driver.
    pub fn last_served(&self) -> u32 {
        self.last_served
    }

    /// Whether the last [`DeviceQueue::serve`] stopped at its cap with chains left.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// Serves available chains with `handle`, at most the queue size of them. Returns whether
    /// the driver must be interrupted. A [`Fault`] from the walk or from `handle` stops the
    /// queue where it is; the device is then broken until reset.
    pub fn serve<F>(&mut self, mem: &GuestMemoryMmap, mut handle: F) -> Result<bool, DeviceError>
    where
        F: FnMut(&Chain) -> Result<Served, DeviceError>,
    {
        self.pending = false;
        self.last_served = 0;
        if !self.queue.ready() {
            return Ok(false);
        }
        let layout = QueueLayout {
            desc_table: GuestAddress(self.queue.desc_table()),
            size: self.queue.size(),
            max_descriptors: self.queue.max_size(),
            indirect_allowed: self.indirect_allowed,
        };
        let mut budget = self.queue.size();
        let mut used_any = false;
        // Early publication: after `half` chains carrying `min_bytes` (see the module docs).
        let early = match self.publish_early {
            Some(min_bytes) => Some((self.available(mem)?.div_ceil(2), min_bytes)),
            None => None,
        };
        let mut moved = 0u64;
        loop {
            self.queue
                .disable_notification(mem)
                .map_err(DeviceError::QueueAccess)?;
            let mut deferred = false;
            let budget_at_pass = budget;
            while budget > 0 {
                let Some(head) = self.next_head(mem)? else {
                    break;
                };
                let chain = chain::walk(mem, layout, head)?;
                match handle(&chain)? {
                    Served::Used(len) => {
                        self.queue
                            .add_used(mem, chain.head, len)
                            .map_err(DeviceError::QueueAccess)?;
                        used_any = true;
                        self.last_served += 1;
                        budget -= 1;
                        moved += u64::from(chain.readable_len()) + u64::from(chain.writable_len());
                        if early.is_some_and(|(half, min_bytes)| {
                            self.last_served >= half && moved >= min_bytes
                        }) {
                            // Notifications stay disabled: the caller comes straight back.
                            self.pending = true;
                            return self
                                .queue
                                .needs_notification(mem)
                                .map_err(DeviceError::QueueAccess);
                        }
                    }
                    Served::Deferred => {
                        self.queue.go_to_previous_position();
                        deferred = true;
                        break;
                    }
                }
            }
            let more = self
                .queue
                .enable_notification(mem)
                .map_err(DeviceError::QueueAccess)?;
            if deferred || !more {
                break;
            }
            // Chains are left: stop at the cap, or when this pass served none (a ring that
            // would not give one up), and let the caller come back.
            if budget == 0 || budget == budget_at_pass {
                self.pending = true;
                break;
            }
        }
        if !used_any {
            return Ok(false);
        }
        self.queue
            .needs_notification(mem)
            .map_err(DeviceError::QueueAccess)
    }

    /// Chains the driver has made available and the device not yet taken.
    fn available(&self, mem: &GuestMemoryMmap) -> Result<u32, DeviceError> {
        let avail = self
            .queue
            .avail_idx(mem, std::sync::atomic::Ordering::Acquire)
            .map_err(DeviceError::QueueAccess)?;
        Ok(u32::from(
            (avail - std::num::Wrapping(self.queue.next_avail())).0,
        ))
    }

    fn next_head(&mut self, mem: &GuestMemoryMmap) -> Result<Option<u16>, DeviceError> {
        let mut iter = self.queue.iter(mem).map_err(|e| match e {
            virtio_queue::Error::InvalidAvailRingIndex => {
                DeviceError::DriverFault(Fault::AvailIndex)
            }
            other => DeviceError::QueueAccess(other),
        })?;
        Ok(iter.next().map(|chain| chain.head_index()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{mem, Driver, F_WRITE};
    use std::num::Wrapping;
    use std::sync::atomic::Ordering;
    use virtio_queue::QueueT;

    #[test]
    fn each_available_chain_is_served_once_and_returned_used() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        driver.add(&[(0x10000, 8, F_WRITE)]);
        driver.add(&[(0x20000, 8, F_WRITE)]);
        let mut q = DeviceQueue::new(driver.queue(), 0);
        let mut heads = Vec::new();

        let notify = q
            .serve(&m, |c| {
                heads.push(c.head);
                Ok(Served::Used(8))
            })
            .unwrap();

        assert!(notify);
        assert_eq!(heads, [0, 1]);
        assert_eq!(driver.used_idx(), 2);
    }

    #[test]
    fn deferred_chain_stays_available() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        driver.add(&[(0x10000, 8, F_WRITE)]);
        let mut q = DeviceQueue::new(driver.queue(), 0);

        let notify = q.serve(&m, |_| Ok(Served::Deferred)).unwrap();
        let served_later = q.serve(&m, |_| Ok(Served::Used(1))).unwrap();

        assert!(!notify);
        assert!(served_later);
        assert_eq!(driver.used_idx(), 1);
    }

    #[test]
    fn avail_index_more_than_the_queue_size_ahead_is_a_fault() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        driver.set_avail_idx(17);
        let mut q = DeviceQueue::new(driver.queue(), 0);

        let err = q.serve(&m, |_| Ok(Served::Used(0))).unwrap_err();

        assert_eq!(err.fault(), Fault::AvailIndex);
    }

    #[test]
    fn a_driver_refilling_the_ring_is_served_at_most_queue_size_chains_per_call() {
        let m = mem();
        let driver = Driver::new(&m, 4);
        for _ in 0..4 {
            driver.add(&[(0x10000, 8, F_WRITE)]);
        }
        let mut q = DeviceQueue::new(driver.queue(), 0);
        let mut served = 0;

        q.serve(&m, |c| {
            served += 1;
            // The driver hands the chain straight back, as a hostile one may.
            driver.push_avail(c.head);
            Ok(Served::Used(0))
        })
        .unwrap();

        assert_eq!(served, 4);
        assert!(q.pending());
    }

    #[test]
    fn with_event_idx_the_driver_is_interrupted_only_when_it_asked() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        driver.add(&[(0x10000, 8, F_WRITE)]);
        driver.add(&[(0x10000, 8, F_WRITE)]);
        // used_event = 5: the driver wants an interrupt once the used index passes 5.
        driver.set_used_event(5);
        let mut q = DeviceQueue::new(driver.queue(), FEATURE_EVENT_IDX);

        let notify = q.serve(&m, |_| Ok(Served::Used(0))).unwrap();

        assert!(!notify);
        let used = q.queue.used_idx(&m, Ordering::Acquire).unwrap();
        assert_eq!(used, Wrapping(2));
    }

    #[test]
    fn a_batch_of_large_chains_is_published_half_at_a_time() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        for i in 0..4u64 {
            driver.add(&[(0x10000 + i * 0x1000, 0x1000, F_WRITE)]);
        }
        let mut q = DeviceQueue::new(driver.queue(), 0).publish_early(0x2000);

        let first = q.serve(&m, |_| Ok(Served::Used(0x1000))).unwrap();
        let used_after_first = driver.used_idx();
        let pending_after_first = q.pending();
        q.serve(&m, |_| Ok(Served::Used(0x1000))).unwrap();

        assert!(first);
        assert_eq!(used_after_first, 2);
        assert!(pending_after_first);
        assert_eq!(driver.used_idx(), 4);
    }

    #[test]
    fn a_batch_of_small_chains_is_published_whole() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        for i in 0..4u64 {
            driver.add(&[(0x10000 + i * 0x1000, 0x100, F_WRITE)]);
        }
        let mut q = DeviceQueue::new(driver.queue(), 0).publish_early(0x2000);

        q.serve(&m, |_| Ok(Served::Used(0x100))).unwrap();

        assert_eq!(driver.used_idx(), 4);
        assert!(!q.pending());
    }
}
