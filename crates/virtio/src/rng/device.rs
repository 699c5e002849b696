//! The entropy device's core: lifecycle and request processing (virtio 1.2 §5.4). Requests
//! are served on the partition's device thread, inside [`VirtioDevice::process_queue`].
//!
//! Each request is a chain of device-writable buffers (§5.4.6.1: the driver must not place
//! device-readable buffers on the queue; a chain with one is a [`Fault::WrongDirection`]). The
//! device fills at most `max_bytes_per_request` bytes of it, 4 KiB at a time through a stack
//! buffer, and returns the count as the used length (§5.4.6.2 allows filling less than the
//! whole buffer).

use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::metrics::RngMetrics;
use crate::chain::Chain;
use crate::queue::{DeviceQueue, Served};
use crate::{DeviceError, Fault, VirtioDevice, COMMON_FEATURES};

/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 64;
const QUEUE_SIZES: [u16; 1] = [QUEUE_SIZE];
/// Bytes drawn from the host per `getrandom` call.
const CHUNK: usize = 4096;

/// The entropy device.
#[derive(Debug)]
pub struct Rng {
    max_bytes_per_request: u32,
    state: State,
    metrics: RngMetrics,
}

#[derive(Debug)]
enum State {
    Inactive,
    Active {
        mem: GuestMemoryMmap,
        queue: DeviceQueue,
    },
}

impl Rng {
    /// An entropy device that gives at most `max_bytes_per_request` bytes per buffer.
    pub fn new(max_bytes_per_request: u32) -> Rng {
        Rng {
            max_bytes_per_request,
            state: State::Inactive,
            metrics: RngMetrics::default(),
        }
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn avail_features(&self) -> u64 {
        COMMON_FEATURES
    }

    /// §5.4.4: no configuration space.
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), DeviceError> {
        let got = queues.len();
        let Ok([queue]) = <[Queue; 1]>::try_from(queues) else {
            return Err(DeviceError::QueueCount { expected: 1, got });
        };
        self.state = State::Active {
            mem,
            queue: DeviceQueue::new(queue, acked_features),
        };
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<bool, DeviceError> {
        let State::Active { mem, queue } = &mut self.state else {
            return Ok(false);
        };
        if index != 0 {
            return Ok(false);
        }
        let max = self.max_bytes_per_request;
        let metrics = &mut self.metrics;
        queue.serve(mem, |chain| fill(mem, chain, max, metrics))
    }

    fn queue_pending(&self, index: usize) -> bool {
        match &self.state {
            State::Active { queue, .. } => index == 0 && queue.pending(),
            State::Inactive => false,
        }
    }

    fn reset(&mut self) {
        self.state = State::Inactive;
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        self.metrics.snapshot()
    }
}

/// Serves one request: fills the writable buffers with random bytes, up to `max`.
fn fill(
    mem: &GuestMemoryMmap,
    chain: &Chain,
    max: u32,
    metrics: &mut RngMetrics,
) -> Result<Served, DeviceError> {
    if chain.readable_len() > 0 {
        return Err(Fault::WrongDirection.into());
    }
    let want = chain.writable_len().min(max);
    if chain.writable_len() > max {
        metrics.requests_capped += 1;
    }
    let mut buf = [0u8; CHUNK];
    let mut done: u32 = 0;
    while done < want {
        let n = ((want - done) as usize).min(CHUNK);
        let Some(chunk) = buf.get_mut(..n) else {
            break;
        };
        if getrandom::fill(chunk).is_err() {
            metrics.entropy_errors += 1;
            break;
        }
        chain
            .write_at(mem, u64::from(done), chunk)
            .map_err(DeviceError::GuestMemory)?;
        done += n as u32;
    }
    metrics.requests += 1;
    metrics.bytes += u64::from(done);
    Ok(Served::Used(done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{activate, mem, raised, read32, reg, status, transport, Driver, F_WRITE};
    use crate::FEATURE_VERSION_1;
    use vm_memory::{Bytes, GuestAddress};

    fn metric(rng: &Rng, name: &str) -> u64 {
        rng.metrics()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    #[test]
    fn writable_buffer_is_filled_and_its_length_returned() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        driver.add(&[(0x10000, 64, F_WRITE)]);
        let mut rng = Rng::new(4096);
        rng.activate(m.clone(), vec![driver.queue()], 0).unwrap();

        let notify = rng.process_queue(0).unwrap();

        assert!(notify);
        assert_eq!(driver.used_elem(0), (0, 64));
        let mut bytes = [0u8; 64];
        m.read_slice(&mut bytes, GuestAddress(0x10000)).unwrap();
        assert_ne!(bytes, [0u8; 64]);
        assert_eq!(metric(&rng, "bytes"), 64);
    }

    #[test]
    fn buffer_larger_than_the_cap_gets_only_the_cap() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        driver.add(&[(0x10000, 0x8000, F_WRITE), (0x20000, 0x8000, F_WRITE)]);
        let mut rng = Rng::new(5000);
        rng.activate(m.clone(), vec![driver.queue()], 0).unwrap();

        rng.process_queue(0).unwrap();

        assert_eq!(driver.used_elem(0), (0, 5000));
        let past_cap: [u8; 16] = m.read_obj(GuestAddress(0x10000 + 5000)).unwrap();
        assert_eq!(past_cap, [0u8; 16]);
        assert_eq!(metric(&rng, "requests_capped"), 1);
    }

    #[test]
    fn every_available_buffer_is_served_in_one_call() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        for i in 0..5 {
            driver.add(&[(0x10000 + i * 0x100, 16, F_WRITE)]);
        }
        let mut rng = Rng::new(4096);
        rng.activate(m.clone(), vec![driver.queue()], 0).unwrap();

        rng.process_queue(0).unwrap();

        assert_eq!(driver.used_idx(), 5);
        assert_eq!(metric(&rng, "requests"), 5);
    }

    #[test]
    fn device_readable_buffer_marks_the_device_needs_reset() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        driver.add(&[(0x10000, 16, 0)]);
        let (mut t, irq) = transport(Box::new(Rng::new(4096)), &m);
        activate(&mut t, FEATURE_VERSION_1, &[&driver]);

        t.queue_notified(0);

        assert_ne!(read32(&mut t, reg::STATUS) & status::NEEDS_RESET, 0);
        assert_eq!(read32(&mut t, reg::INTERRUPT_STATUS), 2);
        assert_eq!(raised(&irq), 1);
        assert_eq!(driver.used_idx(), 0);
        let faults: u64 = t
            .metrics()
            .iter()
            .filter(|(n, _)| *n == "fault_wrong_direction")
            .map(|(_, v)| *v)
            .sum();
        assert_eq!(faults, 1);
    }

    #[test]
    fn activation_with_the_wrong_number_of_queues_is_refused() {
        let m = mem();
        let mut rng = Rng::new(16);

        let err = rng.activate(m, vec![], 0).unwrap_err();

        assert_eq!(err.fault(), Fault::DeviceError);
    }

    #[test]
    fn reset_device_serves_nothing() {
        let m = mem();
        let driver = Driver::new(&m, 16);
        driver.add(&[(0x10000, 16, F_WRITE)]);
        let mut rng = Rng::new(16);
        rng.activate(m.clone(), vec![driver.queue()], 0).unwrap();
        rng.reset();

        let notify = rng.process_queue(0).unwrap();

        assert!(!notify);
        assert_eq!(driver.used_idx(), 0);
    }
}
