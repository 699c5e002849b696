//! The virtio-net device's core: lifecycle, configuration space and processing of both queues
//! (virtio 1.2 §5.1). Runs on the partition's device thread: [`VirtioDevice::process_queue`]
//! after a queue notification, [`VirtioDevice::process_backend`] when the backend's descriptor
//! becomes readable.
//!
//! Offloads (§5.1.6.2): the device offers checksum offload and TCP segmentation both ways
//! (`CSUM`, `HOST_TSO4/6`; `GUEST_CSUM`, `GUEST_TSO4/6`), so frames of up to 64 KiB cross it
//! whole. The 12-byte `virtio_net_hdr_v1` travels with each frame to and from the backend,
//! which either hands it on (a link to another partition's device, a TAP opened with
//! `IFF_VNET_HDR`) or acts on it (the host kernel segments and checksums for a TAP).
//!
//! - transmitq (queue 1): chains of device-readable buffers (a device-writable one is a
//!   [`Fault::WrongDirection`]), the header then the frame (fewer than 12 bytes is a
//!   [`Fault::MalformedRequest`]). Header and frame go to the backend, `num_buffers` zeroed.
//!   A frame longer than [`MAX_FRAME_LEN`] or shorter than an Ethernet header, one whose
//!   header fails [`NetHeader::check`], or one the backend refuses, is dropped and counted;
//!   the buffer goes back to the driver. A backend that is only full for now (`WouldBlock`)
//!   leaves the chain, and the ones after it, on the queue: sending resumes when the backend's
//!   descriptor turns writable, so a sender is slowed down, as by a real NIC's full ring,
//!   rather than losing frames.
//! - receiveq (queue 0): chains of device-writable buffers (a device-readable one is a
//!   [`Fault::WrongDirection`]) of at least 12 bytes (else [`Fault::MalformedRequest`]). Each
//!   gets one header and frame from the backend, with `num_buffers` = 1 (§5.1.6.4). A frame
//!   whose header fails the check, a segmented frame of a kind the driver did not accept, or
//!   one that does not fit the chain is dropped and counted, and the next one tried; a partial
//!   checksum the driver did not accept (`GUEST_CSUM`) is completed here.
//!   A frame is read from the backend only when a receive buffer is at hand: while the guest
//!   has none, frames wait in the backend's own queue (bounded by the host kernel), and the
//!   driver's next receive-queue notification resumes delivery.
//!
//! Work per call: at most the queue size in chains (the queue's cap) and
//! [`MAX_RX_FRAMES_PER_CALL`] frames read from the backend; stopping at either leaves
//! `queue_pending`/`backend_pending` set for the caller to come back.

use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS,
    VIRTIO_NET_S_LINK_UP,
};
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::backend::NetBackend;
use super::header::{complete_checksum, NetHeader, Offloads, F_NEEDS_CSUM};
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
pub use super::header::HEADER_LEN;
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
/// Checksum and segmentation offloads, both directions (§5.1.3).
const FEATURE_OFFLOADS: u64 = (1 << VIRTIO_NET_F_CSUM)
    | (1 << VIRTIO_NET_F_GUEST_CSUM)
    | (1 << VIRTIO_NET_F_GUEST_TSO4)
    | (1 << VIRTIO_NET_F_GUEST_TSO6)
    | (1 << VIRTIO_NET_F_HOST_TSO4)
    | (1 << VIRTIO_NET_F_HOST_TSO6);
/// A header and the largest frame.
const BUFFER_LEN: usize = HEADER_LEN + MAX_FRAME_LEN;
/// `mac` (6 bytes) and `status` (le16) of `struct virtio_net_config` (§5.1.4); the fields
/// after them need features not offered and read as zeros.
const CONFIG_SIZE: usize = 8;

/// The virtio-net device.
pub struct Net {
    mac: [u8; 6],
    backend: Box<dyn NetBackend>,
    /// Scratch space for one header and frame, either direction (allocated once).
    frame: Vec<u8>,
    state: State,
    /// The last receive pass stopped at [`MAX_RX_FRAMES_PER_CALL`].
    rx_capped: bool,
    /// The backend could not take a frame now (`WouldBlock`): the frame's chain stays on the
    /// transmit queue until the backend's descriptor turns writable.
    tx_blocked: bool,
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
        /// What the driver accepts on receive.
        offloads: Offloads,
    },
}

impl Net {
    /// A network device with address `mac` whose frames go to and come from `backend`.
    pub fn new(mac: [u8; 6], backend: Box<dyn NetBackend>) -> Net {
        Net {
            mac,
            backend,
            frame: vec![0; BUFFER_LEN],
            state: State::Inactive,
            rx_capped: false,
            tx_blocked: false,
            metrics: NetMetrics::default(),
        }
    }

    /// Sends what the transmit queue holds, until it is empty or the backend is full.
    fn transmit_all(&mut self) -> Result<bool, DeviceError> {
        let Net {
            backend,
            frame,
            state,
            metrics,
            tx_blocked,
            ..
        } = self;
        let State::Active { mem, transmitq, .. } = state else {
            return Ok(false);
        };
        *tx_blocked = false;
        transmitq.serve(mem, |chain| {
            let served = transmit(mem, chain, backend.as_mut(), frame, metrics)?;
            if served == Served::Deferred {
                *tx_blocked = true;
                metrics.tx_backend_full += 1;
            }
            Ok(served)
        })
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
        let State::Active {
            mem,
            receiveq,
            offloads,
            ..
        } = state
        else {
            return Ok(false);
        };
        let offloads = *offloads;
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
                offloads,
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
        COMMON_FEATURES | FEATURE_MAC | FEATURE_STATUS | FEATURE_OFFLOADS
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
        let acked = |bit: u32| acked_features & (1 << bit) != 0;
        let offloads = Offloads {
            csum: acked(VIRTIO_NET_F_GUEST_CSUM),
            tso4: acked(VIRTIO_NET_F_GUEST_TSO4),
            tso6: acked(VIRTIO_NET_F_GUEST_TSO6),
        };
        // A backend that cannot be told (a TAP refusing TUNSETOFFLOAD) keeps sending plain
        // frames, which every driver takes.
        if self.backend.set_offloads(offloads).is_err() {
            self.metrics.backend_offload_errors += 1;
        }
        self.state = State::Active {
            mem,
            receiveq: DeviceQueue::new(rx, acked_features),
            transmitq: DeviceQueue::new(tx, acked_features),
            offloads,
        };
        self.rx_capped = false;
        self.tx_blocked = false;
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<bool, DeviceError> {
        match index {
            RECEIVEQ => self.receive(false),
            TRANSMITQ => self.transmit_all(),
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

    /// The backend's descriptor became readable (frames for the guest) or writable (room for
    /// frames the guest is waiting to send).
    fn process_backend(&mut self) -> Result<bool, DeviceError> {
        let sent = if self.tx_blocked {
            self.transmit_all()?
        } else {
            false
        };
        Ok(self.receive(true)? || sent)
    }

    fn backend_pending(&self) -> bool {
        self.queue_pending(RECEIVEQ)
    }

    fn reset(&mut self) {
        self.state = State::Inactive;
        self.rx_capped = false;
        self.tx_blocked = false;
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
            ("tx_dropped_bad_header", m.tx_dropped_bad_header),
            ("tx_backend_full", m.tx_backend_full),
            ("rx_dropped_bad_header", m.rx_dropped_bad_header),
            ("rx_dropped_offload", m.rx_dropped_offload),
            ("rx_checksums_completed", m.rx_checksums_completed),
            ("backend_offload_errors", m.backend_offload_errors),
        ]
    }
}

/// Fills one receive buffer with the next frame that fits; leaves it available when the
/// backend has none (or the per-call frame budget is spent).
#[allow(clippy::too_many_arguments)]
fn receive_one(
    mem: &GuestMemoryMmap,
    chain: &Chain,
    backend: &mut dyn NetBackend,
    buffer: &mut [u8],
    offloads: Offloads,
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
        let n = match backend.recv(buffer) {
            Ok(Some(n)) => n.min(buffer.len()),
            Ok(None) => return Ok(Served::Deferred),
            Err(_) => {
                metrics.rx_backend_errors += 1;
                return Ok(Served::Deferred);
            }
        };
        *frames_read += 1;
        let Some((head, frame)) = buffer
            .get_mut(..n)
            .and_then(|b| b.split_at_mut_checked(HEADER_LEN))
        else {
            metrics.rx_dropped_bad_header += 1;
            continue;
        };
        let mut header = NetHeader::parse(head);
        if header.check(frame.len(), false).is_err() {
            metrics.rx_dropped_bad_header += 1;
            continue;
        }
        if !header.fits(offloads) {
            metrics.rx_dropped_offload += 1;
            continue;
        }
        if n > room {
            metrics.rx_dropped_too_big += 1;
            continue;
        }
        if header.flags & F_NEEDS_CSUM != 0 && !offloads.csum {
            complete_checksum(&header, frame);
            header.flags &= !F_NEEDS_CSUM;
            metrics.rx_checksums_completed += 1;
        }
        header.num_buffers = 1;
        head.copy_from_slice(&header.to_bytes());
        let len = frame.len();
        let Some(whole) = buffer.get(..n) else {
            continue;
        };
        chain
            .write_at(mem, 0, whole)
            .map_err(DeviceError::GuestMemory)?;
        metrics.rx_frames += 1;
        metrics.rx_bytes += len as u64;
        // At most MAX_FRAME_LEN + HEADER_LEN: fits a u32.
        return Ok(Served::Used(n as u32));
    }
}

/// Hands the header and frame of one transmit chain to the backend.
fn transmit(
    mem: &GuestMemoryMmap,
    chain: &Chain,
    backend: &mut dyn NetBackend,
    buffer: &mut [u8],
    metrics: &mut NetMetrics,
) -> Result<Served, DeviceError> {
    if chain.writable_len() > 0 {
        return Err(Fault::WrongDirection.into());
    }
    let n = chain.readable_len() as usize;
    let Some(len) = n.checked_sub(HEADER_LEN) else {
        return Err(Fault::MalformedRequest.into());
    };
    if len < ETHERNET_HEADER_LEN {
        metrics.tx_dropped_runt += 1;
        return Ok(Served::Used(0));
    }
    let Some(whole) = buffer.get_mut(..n) else {
        metrics.tx_dropped_too_big += 1;
        return Ok(Served::Used(0));
    };
    chain
        .read_at(mem, 0, whole)
        .map_err(DeviceError::GuestMemory)?;
    let Some((head, _)) = whole.split_at_mut_checked(HEADER_LEN) else {
        return Err(Fault::MalformedRequest.into());
    };
    let mut header = NetHeader::parse(head);
    if header.check(len, true).is_err() {
        metrics.tx_dropped_bad_header += 1;
        return Ok(Served::Used(0));
    }
    header.num_buffers = 0;
    head.copy_from_slice(&header.to_bytes());
    match backend.send(whole) {
        Ok(()) => {
            metrics.tx_frames += 1;
            metrics.tx_bytes += len as u64;
        }
        // Full for now: the chain waits on the queue (the caller counts it).
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Served::Deferred),
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

    /// A backend whose sent frames, pending input and offloads the test keeps handles on.
    #[derive(Clone, Default)]
    struct FakeBackend {
        sent: Arc<Mutex<Vec<Vec<u8>>>>,
        input: Arc<Mutex<VecDeque<Vec<u8>>>>,
        offloads: Arc<Mutex<Option<Offloads>>>,
        refuse: bool,
        full: Arc<std::sync::atomic::AtomicBool>,
    }

    impl NetBackend for FakeBackend {
        fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
            if self.refuse {
                return Err(std::io::ErrorKind::ConnectionRefused.into());
            }
            if self.full.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(std::io::ErrorKind::WouldBlock.into());
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
        fn set_offloads(&mut self, offloads: Offloads) -> std::io::Result<()> {
            *self.offloads.lock().unwrap() = Some(offloads);
            Ok(())
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

    /// `frame(len)` behind `header`.
    fn with_header(header: NetHeader, len: usize) -> Vec<u8> {
        let mut out = header.to_bytes().to_vec();
        out.extend(frame(len));
        out
    }

    /// `frame(len)` behind a header asking for nothing.
    fn plain(len: usize) -> Vec<u8> {
        with_header(NetHeader::default(), len)
    }

    /// A TCP/IPv4 frame to be segmented, with its partial checksum at 34 + 16.
    fn tso4() -> NetHeader {
        NetHeader {
            flags: F_NEEDS_CSUM,
            gso_type: crate::net::GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0,
        }
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
        active_net_with(m, backend, 0)
    }

    fn active_net_with<'a>(
        m: &'a GuestMemoryMmap,
        backend: &FakeBackend,
        features: u64,
    ) -> (Net, Driver<'a>, Driver<'a>) {
        let rx = Driver::at(m, GuestAddress(0), 16);
        let tx = Driver::at(m, GuestAddress(0x4000), 16);
        let mut net = Net::new(MAC, Box::new(backend.clone()));
        net.activate(m.clone(), vec![rx.queue(), tx.queue()], features)
            .unwrap();
        (net, rx, tx)
    }

    #[test]
    fn transmit_hands_header_and_frame_to_the_backend() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, _rx, tx) = active_net(&m, &backend);
        let data = frame(100);
        let mut header = tso4();
        header.num_buffers = 7;
        m.write_slice(&header.to_bytes(), GuestAddress(0x10000))
            .unwrap();
        m.write_slice(&data[..20], GuestAddress(0x10000 + HEADER_LEN as u64))
            .unwrap();
        m.write_slice(&data[20..], GuestAddress(0x20000)).unwrap();
        tx.add(&[(0x10000, HEADER_LEN as u32 + 20, 0), (0x20000, 80, 0)]);

        let notify = net.process_queue(TRANSMITQ).unwrap();

        assert!(notify);
        // num_buffers means nothing on transmit: zeroed.
        assert_eq!(*backend.sent.lock().unwrap(), [with_header(tso4(), 100)]);
        assert_eq!(tx.used_elem(0), (0, 0));
        assert_eq!(metric(&net, "tx_bytes"), 100);
    }

    #[test]
    fn transmitted_header_with_its_checksum_outside_the_frame_drops_the_frame() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, _rx, tx) = active_net(&m, &backend);
        let header = NetHeader {
            csum_start: 90,
            ..tso4()
        };
        m.write_slice(&with_header(header, 100), GuestAddress(0x10000))
            .unwrap();
        tx.add(&[(0x10000, HEADER_LEN as u32 + 100, 0)]);

        net.process_queue(TRANSMITQ).unwrap();

        assert!(backend.sent.lock().unwrap().is_empty());
        assert_eq!(tx.used_idx(), 1);
        assert_eq!(metric(&net, "tx_dropped_bad_header"), 1);
    }

    #[test]
    fn activation_tells_the_backend_the_receive_offloads_the_driver_accepted() {
        let m = mem();
        let backend = FakeBackend::default();

        let _ = active_net_with(&m, &backend, 1 << 1 | 1 << 7);

        assert_eq!(
            *backend.offloads.lock().unwrap(),
            Some(Offloads {
                csum: true,
                tso4: true,
                tso6: false
            })
        );
    }

    #[test]
    fn segmented_frame_reaches_a_driver_that_accepted_it_as_it_is() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net_with(&m, &backend, 1 << 1 | 1 << 7);
        rx.add(&[(0x10000, 0x8000, F_WRITE)]);
        backend.push(with_header(tso4(), 3000));

        net.process_backend().unwrap();

        assert_eq!(rx.used_elem(0), (0, HEADER_LEN as u32 + 3000));
        let mut header = [0u8; HEADER_LEN];
        m.read_slice(&mut header, GuestAddress(0x10000)).unwrap();
        let expect = NetHeader {
            num_buffers: 1,
            ..tso4()
        };
        assert_eq!(NetHeader::parse(&header), expect);
    }

    #[test]
    fn segmented_frame_for_a_driver_that_did_not_accept_it_is_dropped() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net(&m, &backend);
        rx.add(&[(0x10000, 0x8000, F_WRITE)]);
        backend.push(with_header(tso4(), 3000));
        backend.push(plain(60));

        net.process_backend().unwrap();

        assert_eq!(metric(&net, "rx_dropped_offload"), 1);
        assert_eq!(rx.used_elem(0), (0, HEADER_LEN as u32 + 60));
    }

    #[test]
    fn partial_checksum_is_completed_for_a_driver_without_guest_csum() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net(&m, &backend);
        rx.add(&[(0x10000, 2048, F_WRITE)]);
        let header = NetHeader {
            flags: F_NEEDS_CSUM,
            csum_start: 0,
            csum_offset: 8,
            ..NetHeader::default()
        };
        let mut input = header.to_bytes().to_vec();
        input.extend([
            0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0, 0, 0, 0, 0, 0,
        ]);
        backend.push(input);

        net.process_backend().unwrap();

        let mut got = [0u8; HEADER_LEN + 14];
        m.read_slice(&mut got, GuestAddress(0x10000)).unwrap();
        assert_eq!(got[0], 0, "NEEDS_CSUM cleared");
        assert_eq!(&got[HEADER_LEN + 8..HEADER_LEN + 10], &[0x22, 0x0d]);
        assert_eq!(metric(&net, "rx_checksums_completed"), 1);
    }

    #[test]
    fn input_shorter_than_a_header_is_dropped() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net(&m, &backend);
        rx.add(&[(0x10000, 2048, F_WRITE)]);
        backend.push(vec![0; 11]);

        net.process_backend().unwrap();

        assert_eq!(rx.used_idx(), 0);
        assert_eq!(metric(&net, "rx_dropped_bad_header"), 1);
    }

    #[test]
    fn received_frame_fills_a_buffer_behind_a_zeroed_header_with_one_buffer() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net(&m, &backend);
        m.write_slice(&[0xff; 64], GuestAddress(0x10000)).unwrap();
        rx.add(&[(0x10000, 2048, F_WRITE)]);
        backend.push(plain(60));

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
    fn frames_wait_on_the_transmit_queue_while_the_backend_is_full() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, _rx, tx) = active_net(&m, &backend);
        tx.add(&[(0x10000, HEADER_LEN as u32 + 60, 0)]);
        tx.add(&[(0x10000, HEADER_LEN as u32 + 60, 0)]);
        backend
            .full
            .store(true, std::sync::atomic::Ordering::Relaxed);

        net.process_queue(TRANSMITQ).unwrap();
        let used_while_full = tx.used_idx();
        backend
            .full
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let notify = net.process_backend().unwrap();

        assert_eq!(used_while_full, 0);
        assert_eq!(metric(&net, "tx_backend_full"), 1);
        assert!(notify);
        assert_eq!(tx.used_idx(), 2);
        assert_eq!(backend.sent.lock().unwrap().len(), 2);
        assert_eq!(metric(&net, "tx_dropped_backend"), 0);
    }

    #[test]
    fn without_receive_buffers_frames_wait_in_the_backend_until_the_driver_posts_one() {
        let m = mem();
        let backend = FakeBackend::default();
        let (mut net, rx, _tx) = active_net(&m, &backend);
        backend.push(plain(60));

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
        backend.push(plain(1500));
        backend.push(plain(100));

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
            backend.push(plain(100));
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
    fn features_offered_are_the_common_ones_mac_status_and_offloads() {
        let net = Net::new(MAC, Box::new(FakeBackend::default()));

        let features = net.avail_features();

        let offloads = 1 << 0 | 1 << 1 | 1 << 7 | 1 << 8 | 1 << 11 | 1 << 12;
        assert_eq!(features, COMMON_FEATURES | 1 << 5 | 1 << 16 | offloads);
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
        let fault = fault_after(RECEIVEQ, &[(0x10000, 100, 0)], Some(plain(60)));

        assert_eq!(fault, Some(Fault::WrongDirection));
    }

    #[test]
    fn receive_buffer_shorter_than_the_header_marks_the_device_needs_reset() {
        let fault = fault_after(RECEIVEQ, &[(0x10000, 11, F_WRITE)], Some(plain(60)));

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
        backend.push(plain(60));

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
        backend.push(plain(60));

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
