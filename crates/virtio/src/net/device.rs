//! The virtio-net device's core: lifecycle, configuration space and processing of both queues
//! (virtio 1.2 §5.1). Runs on the partition's device thread: [`VirtioDevice::process_queue`]
//! after a queue notification, [`VirtioDevice::process_backend`] when the backend's descriptor
//! becomes readable.
//!
//! - transmitq (queue 1): chains of device-readable buffers (a device-writable one is a
//!   [`Fault::WrongDirection`]), a 12-byte `virtio_net_hdr_v1` (§5.1.6) then the frame
//!   (fewer than 12 bytes is a [`Fault::MalformedRequest`]). The header is dropped (no offload
//!   was negotiated, so it carries nothing), the frame goes to the backend. A frame longer than
//!   [`MAX_FRAME_LEN`] or shorter than an Ethernet header, or one the backend refuses, is
//!   dropped and counted; the buffer always goes back to the driver.
//! - receiveq (queue 0): chains of device-writable buffers (a device-readable one is a
//!   [`Fault::WrongDirection`]) of at least 12 bytes (else [`Fault::MalformedRequest`]). Each
//!   gets one frame from the backend behind a zeroed header with `num_buffers` = 1
//!   (§5.1.6.4); a frame that does not fit is dropped and counted, and the next one tried.
//!   A frame is read from the backend only when a receive buffer is at hand: while the guest
//!   has none, frames wait in the backend's own queue (bounded by the host kernel), and the
//!   driver's next receive-queue notification resumes delivery.
//!
//! Work per call: at most the queue size in chains (the queue's cap) and
//! [`MAX_RX_FRAMES_PER_CALL`] frames read from the backend; stopping at either leaves
//! `queue_pending`/`backend_pending` set for the caller to come back.

use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP};
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::backend::NetBackend;
use super::metrics::NetMetrics;
use crate::chain::Chain;
use crate::queue::{DeviceQueue, Served};
use crate::{read_config_bytes, DeviceError, Fault, VirtioDevice, COMMON_FEATURES};

/// Index of the receive queue (host to guest), §5.1.2.
pub const RECEIVEQ: usize = 0;
/// Index of the transmit queue (guest to host), §5.1.2.
pub const TRANSMITQ: usize = 1;
/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// `struct virtio_net_hdr_v1` (§5.1.6): with `VIRTIO_F_VERSION_1` every buffer starts with
/// it, `num_buffers` included.
pub const HEADER_LEN: usize = 12;
/// Largest frame carried, in either direction, without the header: a 65535-byte IP packet
/// behind an Ethernet header with a VLAN tag, rounded as other monitors do (Firecracker's
/// 65562-byte buffer less the header).
pub const MAX_FRAME_LEN: usize = 65550;
/// Frames read from the backend per call, delivered or dropped.
pub const MAX_RX_FRAMES_PER_CALL: u32 = 2 * QUEUE_SIZE as u32;

/// An Ethernet header: destination, source, type.
const ETHERNET_HEADER_LEN: usize = 14;
const QUEUE_SIZES: [u16; 2] = [QUEUE_SIZE, QUEUE_SIZE];
/// `VIRTIO_NET_F_MAC` (§5.1.3): `mac` in configuration space is valid.
const FEATURE_MAC: u64 = 1 << VIRTIO_NET_F_MAC;
/// `VIRTIO_NET_F_STATUS` (§5.1.3): `status` in configuration space is valid.
const FEATURE_STATUS: u64 = 1 << VIRTIO_NET_F_STATUS;
/// `mac` (6 bytes) and `status` (le16) of `struct virtio_net_config` (§5.1.4); the fields
/// after them need features not offered and read as zeros.
const CONFIG_SIZE: usize = 8;
/// Offset of `num_buffers` in the header.
const NUM_BUFFERS_OFFSET: usize = 10;

/// The virtio-net device.
pub struct Net {
    mac: [u8; 6],
    backend: Box<dyn NetBackend>,
    /// Scratch space for one frame, either direction (allocated once).
    frame: Vec<u8>,
    state: State,
    /// The last receive pass stopped at [`MAX_RX_FRAMES_PER_CALL`].
    rx_capped: bool,
    metrics: NetMetrics,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("mac", &self.mac)
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

impl Net {
    /// A network device with address `mac` whose frames go to and come from `backend`.
    pub fn new(mac: [u8; 6], backend: Box<dyn NetBackend>) -> Net {
        Net {
            mac,
            backend,
            frame: vec![0; MAX_FRAME_LEN],
            state: State::Inactive,
            rx_capped: false,
            metrics: NetMetrics::default(),
        }
    }

    fn config(&self) -> [u8; CONFIG_SIZE] {
        let mut config = [0u8; CONFIG_SIZE];
        let status = (VIRTIO_NET_S_LINK_UP as u16).to_le_bytes();
        for (dst, src) in config.iter_mut().zip(self.mac.iter().chain(status.iter())) {
            *dst = *src;
        }
        config
    }

    /// Delivers frames from the backend into receive buffers. `woken_by_backend`: the
    /// backend's descriptor became readable (a pass that finds no buffer is then counted).
    fn receive(&mut self, woken_by_backend: bool) -> Result<bool, DeviceError> {
        let Net {
            backend,
            frame,
            state,
            rx_capped,
            metrics,
            ..
        } = self;
        let State::Active { mem, receiveq, .. } = state else {
            return Ok(false);
        };
        let mut frames_read = 0u32;
        let mut got_buffer = false;
        *rx_capped = false;
        let notify = receiveq.serve(mem, |chain| {
            got_buffer = true;
            receive_one(
                mem,
                chain,
                backend.as_mut(),
                frame,
                metrics,
                &mut frames_read,
                rx_capped,
            )
        })?;
        if woken_by_backend && !got_buffer {
            metrics.rx_no_buffer += 1;
        }
        Ok(notify)
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn avail_features(&self) -> u64 {
        COMMON_FEATURES | FEATURE_MAC | FEATURE_STATUS
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config(), offset, data);
    }

    /// `mac` is read-only in the modern interface (§5.1.4.2), `status` always.
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
        self.rx_capped = false;
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<bool, DeviceError> {
        match index {
            RECEIVEQ => self.receive(false),
            TRANSMITQ => {
                let Net {
                    backend,
                    frame,
                    state,
                    metrics,
                    ..
                } = self;
                let State::Active { mem, transmitq, .. } = state else {
                    return Ok(false);
                };
                transmitq.serve(mem, |chain| {
                    transmit(mem, chain, backend.as_mut(), frame, metrics)
                })
            }
            _ => Ok(false),
        }
    }

    fn queue_pending(&self, index: usize) -> bool {
        match (&self.state, index) {
            (State::Active { receiveq, .. }, RECEIVEQ) => receiveq.pending() || self.rx_capped,
            (State::Active { transmitq, .. }, TRANSMITQ) => transmitq.pending(),
            _ => false,
        }
    }

    fn backend_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.backend.raw_fd())
    }

    fn process_backend(&mut self) -> Result<bool, DeviceError> {
        self.receive(true)
    }

    fn backend_pending(&self) -> bool {
        self.queue_pending(RECEIVEQ)
    }

    fn reset(&mut self) {
        self.state = State::Inactive;
        self.rx_capped = false;
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("tx_frames", m.tx_frames),
            ("tx_bytes", m.tx_bytes),
            ("tx_dropped_too_big", m.tx_dropped_too_big),
            ("tx_dropped_runt", m.tx_dropped_runt),
            ("tx_dropped_backend", m.tx_dropped_backend),
            ("rx_frames", m.rx_frames),
            ("rx_bytes", m.rx_bytes),
            ("rx_dropped_too_big", m.rx_dropped_too_big),
            ("rx_no_buffer", m.rx_no_buffer),
            ("rx_backend_errors", m.rx_backend_errors),
        ]
    }
}

/// Fills one receive buffer with the next frame that fits; leaves it available when the
/// backend has none (or the per-call frame budget is spent).
fn receive_one(
    mem: &GuestMemoryMmap,
    chain: &Chain,
    backend: &mut dyn NetBackend,
    frame: &mut [u8],
    metrics: &mut NetMetrics,
    frames_read: &mut u32,
    capped: &mut bool,
) -> Result<Served, DeviceError> {
    if chain.readable_len() > 0 {
        return Err(Fault::WrongDirection.into());
    }
    let room = chain.writable_len() as usize;
    if room < HEADER_LEN {
        return Err(Fault::MalformedRequest.into());
    }
    loop {
        if *frames_read >= MAX_RX_FRAMES_PER_CALL {
            *capped = true;
            return Ok(Served::Deferred);
        }
        let len = match backend.recv(frame) {
            Ok(Some(len)) => len.min(frame.len()),
            Ok(None) => return Ok(Served::Deferred),
            Err(_) => {
                metrics.rx_backend_errors += 1;
                return Ok(Served::Deferred);
            }
        };
        *frames_read += 1;
        let Some(data) = frame.get(..len).filter(|_| HEADER_LEN + len <= room) else {
            metrics.rx_dropped_too_big += 1;
            continue;
        };
        let mut header = [0u8; HEADER_LEN];
        if let Some(num_buffers) = header.get_mut(NUM_BUFFERS_OFFSET..) {
            num_buffers.copy_from_slice(&1u16.to_le_bytes());
        }
        chain
            .write_at(mem, 0, &header)
            .map_err(DeviceError::GuestMemory)?;
        chain
            .write_at(mem, HEADER_LEN as u64, data)
            .map_err(DeviceError::GuestMemory)?;
        metrics.rx_frames += 1;
        metrics.rx_bytes += len as u64;
        // At most MAX_FRAME_LEN + HEADER_LEN: fits a u32.
        return Ok(Served::Used((HEADER_LEN + len) as u32));
    }
}

/// Hands the frame of one transmit chain to the backend.
fn transmit(
    mem: &GuestMemoryMmap,
    chain: &Chain,
    backend: &mut dyn NetBackend,
    frame: &mut [u8],
    metrics: &mut NetMetrics,
) -> Result<Served, DeviceError> {
    if chain.writable_len() > 0 {
        return Err(Fault::WrongDirection.into());
    }
    let Some(len) = (chain.readable_len() as usize).checked_sub(HEADER_LEN) else {
        return Err(Fault::MalformedRequest.into());
    };
    if len < ETHERNET_HEADER_LEN {
        metrics.tx_dropped_runt += 1;
        return Ok(Served::Used(0));
    }
    let Some(data) = frame.get_mut(..len) else {
        metrics.tx_dropped_too_big += 1;
        return Ok(Served::Used(0));
    };
    chain
        .read_at(mem, HEADER_LEN as u64, data)
        .map_err(DeviceError::GuestMemory)?;
    match backend.send(data) {
        Ok(()) => {
            metrics.tx_frames += 1;
            metrics.tx_bytes += len as u64;
        }
        Err(_) => metrics.tx_dropped_backend += 1,
    }
    Ok(Served::Used(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{activate, mem, raised, read32, reg, status, transport, Driver, F_WRITE};
    use crate::{FEATURE_EVENT_IDX, FEATURE_VERSION_1};
    use std::collections::VecDeque;
    use std::os::fd::RawFd;
    use std::sync::{Arc, Mutex};
    use vm_memory::{Bytes, GuestAddress};

    /// A backend whose sent frames and pending input the test keeps handles on.
    #[derive(Clone, Default)]
    struct FakeBackend {
        sent: Arc<Mutex<Vec<Vec<u8>>>>,
        input: Arc<Mutex<VecDeque<Vec<u8>>>>,
        refuse: bool,
    }

    impl NetBackend for FakeBackend {
        fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
            if self.refuse {
                return Err(std::io::ErrorKind::ConnectionRefused.into());
            }
            self.sent.lock().unwrap().push(frame.to_vec());
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
            let Some(frame) = self.input.lock().unwrap().pop_front() else {
                return Ok(None);
            };
            let n = frame.len().min(buf.len());
            buf[..n].copy_from_slice(&frame[..n]);
            Ok(Some(n))
        }
        fn raw_fd(&self) -> RawFd {
            -1
        }
    }

    impl FakeBackend {
        fn push(&self, frame: Vec<u8>) {
            self.input.lock().unwrap().push_back(frame);
        }
        fn waiting(&self) -> usize {
            self.input.lock().unwrap().len()
        }
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x01];

    fn frame(len: usize) -> Vec<u8> {
        (0..len).map(|i| i as u8).collect()
    }

    fn metric(net: &Net, name: &str) -> u64 {
        net.metrics()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    fn active_net<'a>(
        m: &'a GuestMemoryMmap,
        backend: &FakeBackend,
    ) -> (Net, Driver<'a>, Driver<'a>) {
        let rx = Driver::at(m, GuestAddress(0), 16);
        let tx = Driver::at(m, GuestAddress(0x4000), 16);
        let mut net = Net::new(MAC, Box::new(backend.clone()));
        net.activate(m.clone(), vec![rx.queue(), tx.queue()], 0)
            .unwrap();
        (net, rx, tx)
    }

    #[test]
    fn transmit_strips_the_header_and_hands_the_frame_to_the_backend() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, _rx, tx) = active_net(&m, &backend);
        let data = frame(100);
        m.write_slice(&[0xaa; HEADER_LEN], GuestAddress(0x10000))
            .unwrap();
        m.write_slice(&data[..20], GuestAddress(0x10000 + HEADER_LEN as u64))
            .unwrap();
        m.write_slice(&data[20..], GuestAddress(0x20000)).unwrap();
        tx.add(&[(0x10000, HEADER_LEN as u32 + 20, 0), (0x20000, 80, 0)]);

        let notify = net.process_queue(TRANSMITQ).unwrap();

        assert!(notify);
        assert_eq!(*backend.sent.lock().unwrap(), [data]);
        assert_eq!(tx.used_elem(0), (0, 0));
        assert_eq!(metric(&net, "tx_bytes"), 100);
    }

    #[test]
    fn received_frame_fills_a_buffer_behind_a_zeroed_header_with_one_buffer() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net(&m, &backend);
        m.write_slice(&[0xff; 64], GuestAddress(0x10000)).unwrap();
        rx.add(&[(0x10000, 2048, F_WRITE)]);
        backend.push(frame(60));

        let notify = net.process_backend().unwrap();

        assert!(notify);
        assert_eq!(rx.used_elem(0), (0, HEADER_LEN as u32 + 60));
        let header: [u8; HEADER_LEN] = m.read_obj(GuestAddress(0x10000)).unwrap();
        assert_eq!(header, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        let mut got = vec![0u8; 60];
        m.read_slice(&mut got, GuestAddress(0x10000 + HEADER_LEN as u64))
            .unwrap();
        assert_eq!(got, frame(60));
    }

    #[test]
    fn transmit_frame_longer_than_the_maximum_is_dropped_and_counted() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, _rx, tx) = active_net(&m, &backend);
        tx.add(&[(0x10000, (HEADER_LEN + MAX_FRAME_LEN + 1) as u32, 0)]);

        net.process_queue(TRANSMITQ).unwrap();

        assert!(backend.sent.lock().unwrap().is_empty());
        assert_eq!(tx.used_idx(), 1);
        assert_eq!(metric(&net, "tx_dropped_too_big"), 1);
    }

    #[test]
    fn transmit_frame_shorter_than_an_ethernet_header_is_dropped_and_counted() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, _rx, tx) = active_net(&m, &backend);
        tx.add(&[(0x10000, HEADER_LEN as u32 + 13, 0)]);

        net.process_queue(TRANSMITQ).unwrap();

        assert!(backend.sent.lock().unwrap().is_empty());
        assert_eq!(metric(&net, "tx_dropped_runt"), 1);
    }

    #[test]
    fn frame_the_backend_refuses_is_dropped_and_the_buffer_returned() {
        let m = mem();
        let backend = FakeBackend {
            refuse: true,
            ..FakeBackend::default()
        };
        let (mut net, _rx, tx) = active_net(&m, &backend);
        tx.add(&[(0x10000, HEADER_LEN as u32 + 60, 0)]);

        net.process_queue(TRANSMITQ).unwrap();

        assert_eq!(tx.used_idx(), 1);
        assert_eq!(metric(&net, "tx_dropped_backend"), 1);
    }

    #[test]
    fn without_receive_buffers_frames_wait_in_the_backend_until_the_driver_posts_one() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net(&m, &backend);
        backend.push(frame(60));

        let before = net.process_backend().unwrap();
        let waiting = backend.waiting();
        rx.add(&[(0x10000, 2048, F_WRITE)]);
        let after = net.process_queue(RECEIVEQ).unwrap();

        assert!(!before);
        assert_eq!(waiting, 1);
        assert_eq!(metric(&net, "rx_no_buffer"), 1);
        assert!(after);
        assert_eq!(rx.used_elem(0), (0, HEADER_LEN as u32 + 60));
    }

    #[test]
    fn received_frame_larger_than_the_buffer_is_dropped_and_the_next_one_delivered() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net(&m, &backend);
        rx.add(&[(0x10000, 128, F_WRITE)]);
        backend.push(frame(1500));
        backend.push(frame(100));

        net.process_backend().unwrap();

        assert_eq!(rx.used_elem(0), (0, HEADER_LEN as u32 + 100));
        assert_eq!(metric(&net, "rx_dropped_too_big"), 1);
        assert_eq!(backend.waiting(), 0);
    }

    #[test]
    fn backend_flooding_frames_that_never_fit_is_read_at_most_the_cap_per_call() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net(&m, &backend);
        rx.add(&[(0x10000, 64, F_WRITE)]);
        for _ in 0..MAX_RX_FRAMES_PER_CALL + 10 {
            backend.push(frame(100));
        }

        net.process_backend().unwrap();

        assert_eq!(backend.waiting(), 10);
        assert!(net.backend_pending());
        assert_eq!(rx.used_idx(), 0);
    }

    #[test]
    fn configuration_space_holds_the_mac_and_link_up() {
        let net = Net::new(MAC, Box::new(FakeBackend::default()));
        let mut config = [0xffu8; 12];

        net.read_config(0, &mut config);

        assert_eq!(
            config,
            [0x52, 0x54, 0x00, 0x12, 0x34, 0x01, 1, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn features_offered_are_the_common_ones_with_mac_and_status() {
        let net = Net::new(MAC, Box::new(FakeBackend::default()));

        let features = net.avail_features();

        assert_eq!(features, COMMON_FEATURES | 1 << 5 | 1 << 16);
    }

    /// Drives `net` through the transport with one chain on `queue`; returns the transport's
    /// fault.
    fn fault_after(
        queue: usize,
        buffers: &[(u64, u32, u16)],
        input: Option<Vec<u8>>,
    ) -> Option<Fault> {
        let m = mem();
        let backend = FakeBackend::default();
        if let Some(f) = input {
            backend.push(f);
        }
        let rx = Driver::at(&m, GuestAddress(0), 16);
        let tx = Driver::at(&m, GuestAddress(0x4000), 16);
        let (mut t, irq) = transport(Box::new(Net::new(MAC, Box::new(backend))), &m);
        activate(&mut t, FEATURE_VERSION_1, &[&rx, &tx]);
        [&rx, &tx][queue].add(buffers);

        t.queue_notified(queue);

        assert_ne!(read32(&mut t, reg::STATUS) & status::NEEDS_RESET, 0);
        assert_eq!(irq.status(), 2);
        assert_eq!([&rx, &tx][queue].used_idx(), 0);
        t.needs_reset()
    }

    #[test]
    fn writable_buffer_on_the_transmit_queue_marks_the_device_needs_reset() {
        let fault = fault_after(TRANSMITQ, &[(0x10000, 100, F_WRITE)], None);

        assert_eq!(fault, Some(Fault::WrongDirection));
    }

    #[test]
    fn transmit_chain_shorter_than_the_header_marks_the_device_needs_reset() {
        let fault = fault_after(TRANSMITQ, &[(0x10000, 11, 0)], None);

        assert_eq!(fault, Some(Fault::MalformedRequest));
    }

    #[test]
    fn readable_buffer_on_the_receive_queue_marks_the_device_needs_reset() {
        let fault = fault_after(RECEIVEQ, &[(0x10000, 100, 0)], Some(frame(60)));

        assert_eq!(fault, Some(Fault::WrongDirection));
    }

    #[test]
    fn receive_buffer_shorter_than_the_header_marks_the_device_needs_reset() {
        let fault = fault_after(RECEIVEQ, &[(0x10000, 11, F_WRITE)], Some(frame(60)));

        assert_eq!(fault, Some(Fault::MalformedRequest));
    }

    #[test]
    fn backend_input_through_the_transport_raises_the_used_buffer_interrupt() {
        let m = mem();
        let backend = FakeBackend::default();
        let rx = Driver::at(&m, GuestAddress(0), 16);
        let tx = Driver::at(&m, GuestAddress(0x4000), 16);
        let (mut t, irq) = transport(Box::new(Net::new(MAC, Box::new(backend.clone()))), &m);
        activate(&mut t, FEATURE_VERSION_1 | FEATURE_EVENT_IDX, &[&rx, &tx]);
        rx.add(&[(0x10000, 2048, F_WRITE)]);
        backend.push(frame(60));

        let again = t.backend_ready();

        assert!(!again);
        assert_eq!(raised(&irq), 1);
        assert_eq!(irq.status(), 1);
        assert_eq!(rx.used_idx(), 1);
    }

    #[test]
    fn backend_input_before_driver_ok_waits_in_the_backend() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut t, _irq) = transport(Box::new(Net::new(MAC, Box::new(backend.clone()))), &m);
        backend.push(frame(60));

        t.backend_ready();

        assert_eq!(backend.waiting(), 1);
        let ignored = t
            .metrics()
            .into_iter()
            .find(|(n, _)| *n == "backend_events_ignored")
            .unwrap()
            .1;
        assert_eq!(ignored, 1);
    }
}
