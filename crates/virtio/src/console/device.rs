//! The console device's core: lifecycle, the input buffer, and processing of both queues
//! (virtio 1.2 §5.3). Queues are served on the partition's device thread inside
//! [`VirtioDevice::process_queue`]; [`ConsoleInput::push`] may be called from any thread.
//!
//! - transmitq (queue 1): chains of device-readable buffers (a device-writable one is a
//!   [`Fault::WrongDirection`]); at most [`MAX_TX_BYTES_PER_CHAIN`] bytes of each go to the
//!   sink, 4 KiB at a time through a stack buffer, the rest is dropped and counted. A failing
//!   sink drops the output, never the device.
//! - receiveq (queue 0): chains of device-writable buffers (a device-readable one is a
//!   [`Fault::WrongDirection`]), filled from the input buffer while it has bytes. With no
//!   input pending, buffers stay available; after pushing input, the host calls
//!   `queue_notified(RECEIVEQ)` on the transport to deliver it.
//!
//! The input buffer holds at most its capacity; bytes pushed beyond it are dropped and
//! counted, so a host side that writes faster than the guest reads cannot grow memory.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_ids::VIRTIO_ID_CONSOLE;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::metrics::ConsoleMetrics;
use crate::chain::Chain;
use crate::queue::{DeviceQueue, Served};
use crate::{read_config_bytes, DeviceError, Fault, VirtioDevice, COMMON_FEATURES};

/// Index of the receive queue (host to guest), §5.3.2.
pub const RECEIVEQ: usize = 0;
/// Index of the transmit queue (guest to host), §5.3.2.
pub const TRANSMITQ: usize = 1;
/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// Input bytes buffered by default until the guest takes them.
pub const DEFAULT_INPUT_CAPACITY: usize = 64 * 1024;
/// Bytes of one transmit chain written to the sink; the rest is dropped.
pub const MAX_TX_BYTES_PER_CHAIN: u32 = 64 * 1024;

const QUEUE_SIZES: [u16; 2] = [QUEUE_SIZE, QUEUE_SIZE];
/// `struct virtio_console_config` (§5.3.4): cols, rows, max_nr_ports, emerg_wr. None of the
/// features that give them meaning is offered; they read as zeros.
const CONFIG_SIZE: usize = 12;
const CHUNK: usize = 4096;

/// The host side of the console's input: bytes waiting for the guest's receive buffers.
#[derive(Clone, Debug)]
pub struct ConsoleInput {
    inner: Arc<InputBuffer>,
}

#[derive(Debug)]
struct InputBuffer {
    bytes: Mutex<VecDeque<u8>>,
    capacity: usize,
    dropped: AtomicU64,
}

impl ConsoleInput {
    fn new(capacity: usize) -> Self {
        ConsoleInput {
            inner: Arc::new(InputBuffer {
                bytes: Mutex::new(VecDeque::new()),
                capacity,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Queues `bytes` for the guest; returns how many fit (the rest is dropped and counted).
    /// Call the transport's `queue_notified(RECEIVEQ)` afterwards to deliver them.
    pub fn push(&self, bytes: &[u8]) -> usize {
        let mut buf = self.lock();
        let room = self.inner.capacity.saturating_sub(buf.len());
        let n = room.min(bytes.len());
        buf.extend(bytes.iter().take(n));
        let dropped = (bytes.len() - n) as u64;
        if dropped > 0 {
            self.inner.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        n
    }

    /// Bytes waiting for the guest.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Bytes dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<u8>> {
        self.inner.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The console device.
pub struct Console {
    out: Box<dyn Write + Send>,
    input: ConsoleInput,
    state: State,
    metrics: ConsoleMetrics,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("input", &self.input)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum State {
    Inactive,
    Active {
        mem: GuestMemoryMmap,
        receiveq: DeviceQueue,
        transmitq: DeviceQueue,
    },
}

impl Console {
    /// A console whose output goes to `out`, with [`DEFAULT_INPUT_CAPACITY`] bytes of input
    /// buffering.
    pub fn new(out: Box<dyn Write + Send>) -> Console {
        Self::with_input_capacity(out, DEFAULT_INPUT_CAPACITY)
    }

    /// A console buffering at most `capacity` input bytes.
    pub fn with_input_capacity(out: Box<dyn Write + Send>, capacity: usize) -> Console {
        Console {
            out,
            input: ConsoleInput::new(capacity),
            state: State::Inactive,
            metrics: ConsoleMetrics::default(),
        }
    }

    /// The handle through which the host queues input for the guest.
    pub fn input(&self) -> ConsoleInput {
        self.input.clone()
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn avail_features(&self) -> u64 {
        COMMON_FEATURES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&[0u8; CONFIG_SIZE], offset, data);
    }

    /// `emerg_wr` is only writable with `VIRTIO_CONSOLE_F_EMERG_WRITE`, not offered.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), DeviceError> {
        let got = queues.len();
        let Ok([rx, tx]) = <[Queue; 2]>::try_from(queues) else {
            return Err(DeviceError::QueueCount { expected: 2, got });
        };
        self.state = State::Active {
            mem,
            receiveq: DeviceQueue::new(rx, acked_features),
            transmitq: DeviceQueue::new(tx, acked_features),
        };
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<bool, DeviceError> {
        let Console {
            out,
            input,
            state,
            metrics,
        } = self;
        let State::Active {
            mem,
            receiveq,
            transmitq,
        } = state
        else {
            return Ok(false);
        };
        match index {
            RECEIVEQ => receiveq.serve(mem, |chain| receive(mem, chain, input, metrics)),
            TRANSMITQ => transmitq.serve(mem, |chain| transmit(mem, chain, out, metrics)),
            _ => Ok(false),
        }
    }

    fn queue_pending(&self, index: usize) -> bool {
        match (&self.state, index) {
            (State::Active { receiveq, .. }, RECEIVEQ) => receiveq.pending(),
            (State::Active { transmitq, .. }, TRANSMITQ) => transmitq.pending(),
            _ => false,
        }
    }

    fn reset(&mut self) {
        self.state = State::Inactive;
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("tx_chains", m.tx_chains),
            ("tx_bytes", m.tx_bytes),
            ("tx_bytes_dropped", m.tx_bytes_dropped),
            ("tx_errors", m.tx_errors),
            ("rx_chains", m.rx_chains),
            ("rx_bytes", m.rx_bytes),
            ("rx_bytes_dropped", self.input.dropped()),
            ("rx_bytes_pending", self.input.pending() as u64),
        ]
    }
}

/// Fills one receive buffer from the input, or leaves it available when there is none.
fn receive(
    mem: &GuestMemoryMmap,
    chain: &Chain,
    input: &ConsoleInput,
    metrics: &mut ConsoleMetrics,
) -> Result<Served, DeviceError> {
    if chain.readable_len() > 0 {
        return Err(Fault::WrongDirection.into());
    }
    let mut buf = input.lock();
    if buf.is_empty() {
        return Ok(Served::Deferred);
    }
    let n = buf.len().min(chain.writable_len() as usize);
    let (front, back) = buf.as_slices();
    let front_n = front.len().min(n);
    let (Some(front), Some(back)) = (front.get(..front_n), back.get(..n - front_n)) else {
        return Ok(Served::Deferred);
    };
    chain
        .write_at(mem, 0, front)
        .map_err(DeviceError::GuestMemory)?;
    chain
        .write_at(mem, front_n as u64, back)
        .map_err(DeviceError::GuestMemory)?;
    buf.drain(..n);
    metrics.rx_chains += 1;
    metrics.rx_bytes += n as u64;
    Ok(Served::Used(n as u32))
}

/// Writes one transmit buffer to the sink, up to the per-chain cap.
fn transmit(
    mem: &GuestMemoryMmap,
    chain: &Chain,
    out: &mut Box<dyn Write + Send>,
    metrics: &mut ConsoleMetrics,
) -> Result<Served, DeviceError> {
    if chain.writable_len() > 0 {
        return Err(Fault::WrongDirection.into());
    }
    let len = chain.readable_len();
    let take = len.min(MAX_TX_BYTES_PER_CHAIN);
    let mut buf = [0u8; CHUNK];
    let mut done: u32 = 0;
    while done < take {
        let n = ((take - done) as usize).min(CHUNK);
        let Some(chunk) = buf.get_mut(..n) else {
            break;
        };
        chain
            .read_at(mem, u64::from(done), chunk)
            .map_err(DeviceError::GuestMemory)?;
        if out.write_all(chunk).is_err() {
            metrics.tx_errors += 1;
            break;
        }
        done += n as u32;
    }
    if done > 0 && out.flush().is_err() {
        metrics.tx_errors += 1;
    }
    metrics.tx_chains += 1;
    metrics.tx_bytes += u64::from(done);
    metrics.tx_bytes_dropped += u64::from(len - done);
    Ok(Served::Used(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        activate, mem, read32, reg, status, transport, Driver, SharedSink, F_WRITE,
    };
    use crate::FEATURE_VERSION_1;
    use vm_memory::{Bytes, GuestAddress};

    struct FailingSink;

    impl Write for FailingSink {
        fn write(&mut self, _buf: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("closed"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn metric(c: &Console, name: &str) -> u64 {
        c.metrics().into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    fn active_console<'a>(
        m: &'a GuestMemoryMmap,
        out: Box<dyn Write + Send>,
        capacity: usize,
    ) -> (Console, Driver<'a>, Driver<'a>) {
        let rx = Driver::at(m, GuestAddress(0), 16);
        let tx = Driver::at(m, GuestAddress(0x4000), 16);
        let mut console = Console::with_input_capacity(out, capacity);
        console
            .activate(m.clone(), vec![rx.queue(), tx.queue()], 0)
            .unwrap();
        (console, rx, tx)
    }

    #[test]
    fn transmitted_bytes_reach_the_sink() {
        let m = mem();
        let sink = SharedSink::default();
        let (mut console, _rx, tx) = active_console(&m, Box::new(sink.clone()), 16);
        m.write_slice(b"hello, ", GuestAddress(0x10000)).unwrap();
        m.write_slice(b"world\n", GuestAddress(0x20000)).unwrap();
        tx.add(&[(0x10000, 7, 0), (0x20000, 6, 0)]);

        let notify = console.process_queue(TRANSMITQ).unwrap();

        assert!(notify);
        assert_eq!(sink.contents(), b"hello, world\n");
        assert_eq!(tx.used_elem(0), (0, 0));
    }

    #[test]
    fn transmit_chain_beyond_the_cap_is_truncated_and_counted() {
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        let sink = SharedSink::default();
        let (mut console, _rx, tx) = active_console(&m, Box::new(sink.clone()), 16);
        tx.add(&[(0x10_0000, 0x2_0000, 0)]);

        console.process_queue(TRANSMITQ).unwrap();

        assert_eq!(sink.contents().len(), MAX_TX_BYTES_PER_CHAIN as usize);
        assert_eq!(
            metric(&console, "tx_bytes_dropped"),
            0x2_0000 - u64::from(MAX_TX_BYTES_PER_CHAIN)
        );
    }

    #[test]
    fn failing_sink_drops_output_but_returns_the_buffer() {
        let m = mem();
        let (mut console, _rx, tx) = active_console(&m, Box::new(FailingSink), 16);
        tx.add(&[(0x10000, 8, 0)]);

        console.process_queue(TRANSMITQ).unwrap();

        assert_eq!(tx.used_idx(), 1);
        assert_eq!(metric(&console, "tx_errors"), 1);
        assert_eq!(metric(&console, "tx_bytes_dropped"), 8);
    }

    #[test]
    fn queued_input_fills_receive_buffers() {
        let m = mem();
        let (mut console, rx, _tx) = active_console(&m, Box::new(SharedSink::default()), 16);
        rx.add(&[(0x10000, 4, F_WRITE)]);
        rx.add(&[(0x20000, 4, F_WRITE)]);
        console.input().push(b"abcdef");

        let notify = console.process_queue(RECEIVEQ).unwrap();

        assert!(notify);
        assert_eq!((rx.used_elem(0), rx.used_elem(1)), ((0, 4), (1, 2)));
        assert_eq!(
            m.read_obj::<[u8; 4]>(GuestAddress(0x10000)).unwrap(),
            *b"abcd"
        );
        assert_eq!(
            m.read_obj::<[u8; 2]>(GuestAddress(0x20000)).unwrap(),
            *b"ef"
        );
    }

    #[test]
    fn receive_buffers_wait_while_there_is_no_input() {
        let m = mem();
        let (mut console, rx, _tx) = active_console(&m, Box::new(SharedSink::default()), 16);
        rx.add(&[(0x10000, 4, F_WRITE)]);

        let before = console.process_queue(RECEIVEQ).unwrap();
        console.input().push(b"x");
        let after = console.process_queue(RECEIVEQ).unwrap();

        assert!(!before);
        assert!(after);
        assert_eq!(rx.used_elem(0), (0, 1));
    }

    #[test]
    fn input_beyond_the_capacity_is_dropped_and_counted() {
        let m = mem();
        let (console, _rx, _tx) = active_console(&m, Box::new(SharedSink::default()), 4);

        let accepted = console.input().push(b"abcdef");

        assert_eq!(accepted, 4);
        assert_eq!(metric(&console, "rx_bytes_dropped"), 2);
        assert_eq!(metric(&console, "rx_bytes_pending"), 4);
    }

    #[test]
    fn input_wrapping_around_the_buffer_is_delivered_in_order() {
        let m = mem();
        let (mut console, rx, _tx) = active_console(&m, Box::new(SharedSink::default()), 4);
        let input = console.input();
        input.push(b"abc");
        rx.add(&[(0x10000, 2, F_WRITE)]);
        console.process_queue(RECEIVEQ).unwrap();
        input.push(b"def");
        rx.add(&[(0x20000, 8, F_WRITE)]);

        console.process_queue(RECEIVEQ).unwrap();

        assert_eq!(rx.used_elem(1), (1, 4));
        assert_eq!(
            m.read_obj::<[u8; 4]>(GuestAddress(0x20000)).unwrap(),
            *b"cdef"
        );
    }

    #[test]
    fn writable_buffer_on_the_transmit_queue_marks_the_device_needs_reset() {
        let m = mem();
        let rx = Driver::at(&m, GuestAddress(0), 16);
        let tx = Driver::at(&m, GuestAddress(0x4000), 16);
        tx.add(&[(0x10000, 8, F_WRITE)]);
        let console = Console::new(Box::new(SharedSink::default()));
        let (mut t, _) = transport(Box::new(console), &m);
        activate(&mut t, FEATURE_VERSION_1, &[&rx, &tx]);

        t.queue_notified(TRANSMITQ);

        assert_ne!(read32(&mut t, reg::STATUS) & status::NEEDS_RESET, 0);
        assert_eq!(t.needs_reset(), Some(Fault::WrongDirection));
    }

    #[test]
    fn readable_buffer_on_the_receive_queue_marks_the_device_needs_reset() {
        let m = mem();
        let (mut console, rx, _tx) = active_console(&m, Box::new(SharedSink::default()), 16);
        rx.add(&[(0x10000, 8, 0)]);
        console.input().push(b"x");

        let err = console.process_queue(RECEIVEQ).unwrap_err();

        assert_eq!(err.fault(), Fault::WrongDirection);
    }
}
