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
//! A device that finishes chains later, off the device thread (block, `block/pool.rs`), takes
//! them with [`Served::InFlight`] and hands each back with [`DeviceQueue::complete`], then asks
//! [`DeviceQueue::notify_needed`] once for all it handed back.
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
    /// Taken: the device returns it later with [`DeviceQueue::complete`].
    InFlight,
}

/// One queue of an active device.
#[derive(Debug)]
pub(crate) struct DeviceQueue {
    queue: Queue,
    indirect_allowed: bool,
    pending: bool,
    /// Chains used or taken in flight by the last [`DeviceQueue::serve`].
    last_served: u32,
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
        }
    }

    /// Chains the last [`DeviceQueue::serve`] returned to the driver or took in flight.
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
                    }
                    Served::InFlight => {
                        self.last_served += 1;
                        budget -= 1;
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

    /// Returns a chain taken with [`Served::InFlight`], `len` bytes written into it.
    pub fn complete(
        &mut self,
        mem: &GuestMemoryMmap,
        head: u16,
        len: u32,
    ) -> Result<(), DeviceError> {
        self.queue
            .add_used(mem, head, len)
            .map_err(DeviceError::QueueAccess)
    }

    /// After [`DeviceQueue::complete`]s: whether the driver must be interrupted.
    pub fn notify_needed(&mut self, mem: &GuestMemoryMmap) -> Result<bool, DeviceError> {
        self.queue
            .needs_notification(mem)
            .map_err(DeviceError::QueueAccess)
    }

    /// Chains the driver has made available and the device not yet taken.
    pub fn available(&self, mem: &GuestMemoryMmap) -> Result<u32, DeviceError> {
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
    fn chains_taken_in_flight_are_returned_when_completed_in_any_order() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        driver.add(&[(0x10000, 8, F_WRITE)]);
        driver.add(&[(0x20000, 8, F_WRITE)]);
        let mut q = DeviceQueue::new(driver.queue(), 0);

        let notify = q.serve(&m, |_| Ok(Served::InFlight)).unwrap();
        let used_before = driver.used_idx();
        q.complete(&m, 1, 8).unwrap();
        q.complete(&m, 0, 4).unwrap();

        assert!(!notify);
        assert_eq!(q.last_served(), 2);
        assert_eq!(used_before, 0);
        assert!(q.notify_needed(&m).unwrap());
        assert_eq!(driver.used_idx(), 2);
        assert_eq!((driver.used_elem(0), driver.used_elem(1)), ((1, 8), (0, 4)));
        assert_eq!(q.available(&m).unwrap(), 0);
    }
}
