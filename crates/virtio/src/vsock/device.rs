//! The virtio-vsock device's core (virtio 1.2 §5.10): lifecycle, configuration space, the
//! transmit queue (packets from the guest), the receive queue (packets to the guest), and the
//! host sockets behind the connections. Runs on the partition's device thread.
//!
//! Connections are opened by the guest: a `REQUEST` to the host (CID 2) on a port declared in
//! the system description connects to that port's Unix socket and is answered `RESPONSE`; any
//! other port, a socket nobody listens on, or a full table ([`MAX_CONNECTIONS`]) is answered
//! `RST`. Only the host is reachable (another CID is answered `RST`), and a packet whose
//! source is not the guest's own CID is dropped and counted.
//!
//! Host sockets are non-blocking and wait, edge-triggered, in the device's own epoll set, whose
//! descriptor is the device's [`VirtioDevice::backend_fd`]: the device thread wakes when any of
//! them becomes readable or writable.
//!
//! The guest breaking the queue protocol (a transmit buffer that is device-writable, a header
//! that does not fit its chain or announces more payload than the chain holds or than
//! [`MAX_PAYLOAD`], a receive buffer shorter than a header) breaks the device (NEEDS_RESET).
//! The guest breaking a connection's rules (data beyond its credit, data after it said it was
//! done sending, an unexpected operation) resets only that connection.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use socket2::{Domain, SockAddr, Socket, Type};
use virtio_bindings::virtio_ids::VIRTIO_ID_VSOCK;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use super::connection::{Connection, Io};
use super::metrics::VsockMetrics;
use super::packet::TYPE_STREAM;
use super::packet::{op, Header, HEADER_LEN, HOST_CID, SHUTDOWN_RECEIVE, SHUTDOWN_SEND};
use crate::chain::Chain;
use crate::queue::{DeviceQueue, Served};
use crate::{read_config_bytes, DeviceError, Fault, VirtioDevice, COMMON_FEATURES};

/// Receive queue (device to driver), §5.10.2.
pub const RX_QUEUE: usize = 0;
/// Transmit queue (driver to device).
pub const TX_QUEUE: usize = 1;
/// Event queue: the device posts no events (they concern migration), its buffers stay.
pub const EVENT_QUEUE: usize = 2;
/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// Most payload bytes in one packet, either direction (Linux's
/// `VIRTIO_VSOCK_MAX_PKT_BUF_SIZE`).
pub const MAX_PAYLOAD: u32 = 64 * 1024;
/// Open connections per device, draining ones included.
pub const MAX_CONNECTIONS: usize = 64;
/// Control packets (`RESPONSE`, `RST`) waiting for a receive buffer; beyond it they are
/// dropped and counted (a guest that floods requests without posting buffers).
pub const MAX_CONTROL: usize = 256;

const QUEUE_SIZES: [u16; 3] = [QUEUE_SIZE; 3];
/// `guest_cid` (le64), the whole `struct virtio_vsock_config` (§5.10.4).
const CONFIG_SIZE: usize = 8;
/// Epoll events read per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 64;

/// A connection's key: (guest port, host port).
type Key = (u32, u32);

fn token(key: Key) -> u64 {
    (u64::from(key.0) << 32) | u64::from(key.1)
}

fn key_of(token: u64) -> Key {
    ((token >> 32) as u32, token as u32)
}

/// The virtio-vsock device.
pub struct Vsock {
    guest_cid: u64,
    /// Host port → the Unix socket a guest connection to it is joined to.
    ports: BTreeMap<u32, PathBuf>,
    epoll: Epoll,
    conns: BTreeMap<Key, Connection>,
    /// Connections the guest closed whose bytes are still going out to the host.
    draining: Vec<Connection>,
    /// Packets without payload waiting for a receive buffer.
    control: VecDeque<Header>,
    /// The connection served last (receive-side round robin).
    cursor: Key,
    /// Payload of one packet, either direction (allocated once).
    scratch: Vec<u8>,
    state: State,
    metrics: VsockMetrics,
}

impl std::fmt::Debug for Vsock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vsock")
            .field("guest_cid", &self.guest_cid)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum State {
    Inactive,
    Active {
        mem: GuestMemoryMmap,
        rx: DeviceQueue,
        tx: DeviceQueue,
    },
}

impl Vsock {
    /// A device for the guest `guest_cid` whose host ports are `ports` (port, Unix socket).
    pub fn new(guest_cid: u64, ports: &[(u32, PathBuf)]) -> std::io::Result<Vsock> {
        Ok(Vsock {
            guest_cid,
            ports: ports.iter().cloned().collect(),
            epoll: Epoll::new()?,
            conns: BTreeMap::new(),
            draining: Vec::new(),
            control: VecDeque::new(),
            cursor: (0, 0),
            scratch: vec![0; MAX_PAYLOAD as usize],
            state: State::Inactive,
            metrics: VsockMetrics::default(),
        })
    }

    /// Open connections (draining ones included).
    pub fn connections(&self) -> usize {
        self.conns.len() + self.draining.len()
    }

    fn push_control(&mut self, header: Header) {
        if self.control.len() >= MAX_CONTROL {
            self.metrics.control_dropped += 1;
            return;
        }
        self.control.push_back(header);
    }

    /// Answers `to` (a packet from the guest) with `RST`, unless it is one.
    fn reply_rst(&mut self, to: &Header) {
        if to.op == op::RST {
            return;
        }
        self.metrics.rst_sent += 1;
        self.push_control(Header {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: to.dst_port,
            dst_port: to.src_port,
            kind: TYPE_STREAM,
            op: op::RST,
            ..Header::default()
        });
    }

    /// Tears a connection down and tells the guest.
    fn reset(&mut self, key: Key) {
        if let Some(mut conn) = self.conns.remove(&key) {
            self.metrics.rst_sent += 1;
            let rst = conn.header(op::RST, 0, 0);
            self.push_control(rst);
        }
    }

    /// Connects a guest's `REQUEST`.
    fn open(&mut self, request: &Header) {
        let key = (request.src_port, request.dst_port);
        if self.conns.contains_key(&key) {
            // A second request on an open connection: the old one is gone for the guest.
            self.conns.remove(&key);
        }
        let Some(path) = self.ports.get(&request.dst_port) else {
            self.metrics.connections_refused += 1;
            self.reply_rst(request);
            return;
        };
        if self.connections() >= MAX_CONNECTIONS {
            self.metrics.connections_refused += 1;
            self.reply_rst(request);
            return;
        }
        let stream = match connect(path) {
            Ok(stream) => stream,
            Err(_) => {
                self.metrics.connections_refused += 1;
                self.reply_rst(request);
                return;
            }
        };
        let events =
            EventSet::IN | EventSet::OUT | EventSet::READ_HANG_UP | EventSet::EDGE_TRIGGERED;
        if self
            .epoll
            .ctl(
                ControlOperation::Add,
                stream.as_raw_fd(),
                EpollEvent::new(events, token(key)),
            )
            .is_err()
        {
            self.metrics.connections_refused += 1;
            self.reply_rst(request);
            return;
        }
        let mut conn = Connection::new(stream, request);
        let response = conn.header(op::RESPONSE, 0, 0);
        self.conns.insert(key, conn);
        self.metrics.connections_opened += 1;
        self.push_control(response);
    }

    /// Handles one packet from the guest's transmit queue.
    fn transmit(&mut self, mem: &GuestMemoryMmap, chain: &Chain) -> Result<Served, DeviceError> {
        if chain.writable_len() > 0 {
            return Err(Fault::WrongDirection.into());
        }
        let mut bytes = [0u8; HEADER_LEN];
        let got = chain
            .read_at(mem, 0, &mut bytes)
            .map_err(DeviceError::GuestMemory)?;
        if got < HEADER_LEN {
            return Err(Fault::MalformedRequest.into());
        }
        let header = Header::parse(&bytes);
        let payload_fits =
            u64::from(header.len) + HEADER_LEN as u64 <= u64::from(chain.readable_len());
        if header.len > MAX_PAYLOAD || !payload_fits {
            return Err(Fault::MalformedRequest.into());
        }
        self.metrics.tx_packets += 1;
        if header.src_cid != self.guest_cid {
            self.metrics.spoofed_dropped += 1;
            return Ok(Served::Used(0));
        }
        if header.kind != TYPE_STREAM || header.dst_cid != HOST_CID {
            self.metrics.unroutable += 1;
            self.reply_rst(&header);
            return Ok(Served::Used(0));
        }
        let key = (header.src_port, header.dst_port);
        if header.op == op::REQUEST {
            self.open(&header);
            return Ok(Served::Used(0));
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            self.reply_rst(&header);
            return Ok(Served::Used(0));
        };
        conn.peer_credit_from(&header);
        match header.op {
            op::RW => {
                let len = header.len as usize;
                let Some(data) = self.scratch.get_mut(..len) else {
                    return Err(Fault::MalformedRequest.into());
                };
                chain
                    .read_at(mem, HEADER_LEN as u64, data)
                    .map_err(DeviceError::GuestMemory)?;
                if conn.guest_done_sending || !conn.queue_to_host(data) {
                    self.metrics.connections_reset_misbehaving += 1;
                    self.reset(key);
                    return Ok(Served::Used(0));
                }
                self.metrics.tx_bytes += len as u64;
                self.flush(key);
            }
            op::SHUTDOWN => {
                conn.guest_done_sending |= header.flags & SHUTDOWN_SEND != 0;
                conn.guest_done_receiving |= header.flags & SHUTDOWN_RECEIVE != 0;
                self.flush(key);
                self.close_if_done(key);
            }
            op::CREDIT_UPDATE => {}
            op::CREDIT_REQUEST => conn.credit_requested = true,
            op::RST => {
                self.conns.remove(&key);
                self.metrics.connections_closed += 1;
            }
            _ => {
                self.metrics.connections_reset_misbehaving += 1;
                self.reset(key);
            }
        }
        Ok(Served::Used(0))
    }

    /// Writes a connection's waiting guest bytes to its socket; a socket that failed resets
    /// the connection.
    fn flush(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        if conn.flush() == Io::Failed {
            self.metrics.connections_reset_host += 1;
            self.reset(key);
        }
    }

    /// Once the guest closed both directions, or the host and guest are both done sending, the
    /// connection ends: `RST` to the guest, and what the guest sent last still goes out.
    fn close_if_done(&mut self, key: Key) {
        let Some(conn) = self.conns.get(&key) else {
            return;
        };
        let guest_closed = conn.guest_done_sending && conn.guest_done_receiving;
        let both_done = conn.guest_done_sending && conn.host_eof_told;
        if !(guest_closed || both_done) {
            return;
        }
        if let Some(mut conn) = self.conns.remove(&key) {
            self.metrics.connections_closed += 1;
            self.metrics.rst_sent += 1;
            let rst = conn.header(op::RST, 0, 0);
            self.push_control(rst);
            if conn.has_pending() {
                self.draining.push(conn);
            }
        }
    }

    /// Flushes every connection that has bytes waiting and a writable socket; drops drained
    /// ones that are done.
    fn flush_all(&mut self) {
        let keys: Vec<Key> = self
            .conns
            .iter()
            .filter(|(_, c)| c.has_pending() && c.writable)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.flush(key);
        }
        self.draining
            .retain_mut(|c| c.flush() != Io::Failed && c.has_pending());
    }

    /// Takes the readiness the host sockets reported.
    fn collect_events(&mut self) {
        let mut events = [EpollEvent::default(); EVENTS_PER_WAIT];
        loop {
            let n = match self.epoll.wait(0, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            for event in events.iter().take(n) {
                let key = key_of(event.data());
                let set = event.event_set();
                let readable = set.intersects(
                    EventSet::IN | EventSet::READ_HANG_UP | EventSet::HANG_UP | EventSet::ERROR,
                );
                let writable = set.intersects(EventSet::OUT | EventSet::HANG_UP | EventSet::ERROR);
                let conn = match self.conns.get_mut(&key) {
                    Some(conn) => conn,
                    None => match self
                        .draining
                        .iter_mut()
                        .find(|c| (c.guest_port, c.host_port) == key)
                    {
                        Some(conn) => conn,
                        None => continue,
                    },
                };
                conn.readable |= readable;
                conn.writable |= writable;
            }
            if n < events.len() {
                return;
            }
        }
    }

    /// The next packet for the guest that fits `room` bytes: a waiting control packet, else
    /// the next connection (round robin) with data, a shutdown or a credit update to tell.
    /// The payload, if any, is in `scratch`.
    fn next_packet(&mut self, room: usize) -> Option<Header> {
        if let Some(header) = self.control.pop_front() {
            return Some(header);
        }
        let max_payload = room.saturating_sub(HEADER_LEN).min(MAX_PAYLOAD as usize);
        let after = (Bound::Excluded(self.cursor), Bound::Unbounded);
        let keys: Vec<Key> = self
            .conns
            .range(after)
            .chain(self.conns.range(..=self.cursor))
            .filter(|(_, c)| {
                c.can_send_data() || (c.host_eof && !c.host_eof_told) || c.credit_update_due()
            })
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(&key) else {
                continue;
            };
            if conn.can_send_data() && max_payload > 0 {
                let n = max_payload.min(conn.peer_credit() as usize);
                let Some(buf) = self.scratch.get_mut(..n) else {
                    continue;
                };
                match conn.read_for_guest(buf) {
                    Io::Moved(n) => {
                        self.cursor = key;
                        self.metrics.rx_bytes += n as u64;
                        return Some(conn.header(op::RW, n as u32, 0));
                    }
                    Io::WouldBlock => {}
                    Io::Eof => conn.host_eof = true,
                    Io::Failed => {
                        self.metrics.connections_reset_host += 1;
                        self.conns.remove(&key);
                        self.metrics.rst_sent += 1;
                        return Some(Header {
                            src_cid: HOST_CID,
                            dst_cid: self.guest_cid,
                            src_port: key.1,
                            dst_port: key.0,
                            kind: TYPE_STREAM,
                            op: op::RST,
                            ..Header::default()
                        });
                    }
                }
            }
            let Some(conn) = self.conns.get_mut(&key) else {
                continue;
            };
            if conn.host_eof && !conn.host_eof_told {
                conn.host_eof_told = true;
                let shutdown = conn.header(op::SHUTDOWN, 0, SHUTDOWN_SEND);
                self.cursor = key;
                self.close_if_done(key);
                return Some(shutdown);
            }
            if conn.credit_update_due() {
                self.cursor = key;
                return Some(conn.header(op::CREDIT_UPDATE, 0, 0));
            }
        }
        None
    }

    /// Fills receive buffers with packets for the guest.
    fn deliver(&mut self) -> Result<bool, DeviceError> {
        let mut state = std::mem::replace(&mut self.state, State::Inactive);
        let result = match &mut state {
            State::Active { mem, rx, .. } => rx.serve(mem, |chain| {
                if chain.readable_len() > 0 {
                    return Err(Fault::WrongDirection.into());
                }
                let room = chain.writable_len() as usize;
                if room < HEADER_LEN {
                    return Err(Fault::MalformedRequest.into());
                }
                let Some(header) = self.next_packet(room) else {
                    return Ok(Served::Deferred);
                };
                chain
                    .write_at(mem, 0, &header.to_bytes())
                    .map_err(DeviceError::GuestMemory)?;
                let len = header.len as usize;
                if let Some(payload) = self.scratch.get(..len) {
                    chain
                        .write_at(mem, HEADER_LEN as u64, payload)
                        .map_err(DeviceError::GuestMemory)?;
                }
                self.metrics.rx_packets += 1;
                // At most MAX_PAYLOAD + HEADER_LEN: fits a u32.
                Ok(Served::Used((HEADER_LEN + len) as u32))
            }),
            State::Inactive => Ok(false),
        };
        self.state = state;
        result
    }

    fn rx_pending(&self) -> bool {
        matches!(&self.state, State::Active { rx, .. } if rx.pending())
    }
}

/// Connects to a host Unix socket without blocking (a listener whose backlog is full answers
/// `EAGAIN` rather than making the device thread wait).
fn connect(path: &std::path::Path) -> std::io::Result<UnixStream> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&SockAddr::unix(path)?)?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(socket)))
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn avail_features(&self) -> u64 {
        COMMON_FEATURES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config: [u8; CONFIG_SIZE] = self.guest_cid.to_le_bytes();
        read_config_bytes(&config, offset, data);
    }

    /// `guest_cid` is read-only.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), DeviceError> {
        let got = queues.len();
        let Ok([rx, tx, _event]) = <[Queue; 3]>::try_from(queues) else {
            return Err(DeviceError::QueueCount { expected: 3, got });
        };
        self.state = State::Active {
            mem,
            rx: DeviceQueue::new(rx, acked_features),
            tx: DeviceQueue::new(tx, acked_features),
        };
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<bool, DeviceError> {
        match index {
            RX_QUEUE => self.deliver(),
            TX_QUEUE => {
                let mut state = std::mem::replace(&mut self.state, State::Inactive);
                let sent = match &mut state {
                    State::Active { mem, tx, .. } => {
                        tx.serve(mem, |chain| self.transmit(mem, chain))
                    }
                    State::Inactive => Ok(false),
                };
                self.state = state;
                // Answers (RESPONSE, RST) and the data a credit update let through go out now.
                let received = self.deliver()?;
                Ok(sent? || received)
            }
            _ => Ok(false),
        }
    }

    fn queue_pending(&self, index: usize) -> bool {
        match (&self.state, index) {
            (State::Active { tx, .. }, TX_QUEUE) => tx.pending() || self.rx_pending(),
            (State::Active { .. }, RX_QUEUE) => self.rx_pending(),
            _ => false,
        }
    }

    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.epoll.as_raw_fd())
    }

    fn process_backend(&mut self) -> Result<bool, DeviceError> {
        self.collect_events();
        self.flush_all();
        self.deliver()
    }

    fn backend_pending(&self) -> bool {
        self.rx_pending()
    }

    fn reset(&mut self) {
        self.state = State::Inactive;
        self.metrics.connections_closed += self.conns.len() as u64;
        self.conns.clear();
        self.draining.clear();
        self.control.clear();
        self.cursor = (0, 0);
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        self.metrics.list(self.connections())
    }
}
