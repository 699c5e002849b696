//! The vsock device driven through `virtio-queue`'s mock driver, against real Unix sockets.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::testing::{activate, mem, read32, reg, status, transport, Driver, F_WRITE};
use crate::{Fault, VirtioDevice, FEATURE_VERSION_1};

const GUEST_CID: u64 = 3;
const PORT: u32 = 1234;
const RX_BUF: u32 = 0x1000;

/// A temporary folder holding the test's sockets.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "bulkhead-vsock-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The guest side: queues in guest memory, packets written and read back.
struct Guest<'a> {
    mem: &'a GuestMemoryMmap,
    rx: Driver<'a>,
    tx: Driver<'a>,
    event: Driver<'a>,
    next_tx: std::cell::Cell<u64>,
    rx_posted: std::cell::Cell<u16>,
    rx_read: std::cell::Cell<u16>,
}

impl<'a> Guest<'a> {
    fn new(mem: &'a GuestMemoryMmap) -> Self {
        Guest {
            mem,
            rx: Driver::at(mem, GuestAddress(0), 64),
            tx: Driver::at(mem, GuestAddress(0x2000), 64),
            event: Driver::at(mem, GuestAddress(0x4000), 64),
            next_tx: std::cell::Cell::new(0x10000),
            rx_posted: std::cell::Cell::new(0),
            rx_read: std::cell::Cell::new(0),
        }
    }

    fn queues(&self) -> Vec<virtio_queue::Queue> {
        vec![self.rx.queue(), self.tx.queue(), self.event.queue()]
    }

    fn rx_addr(i: u16) -> u64 {
        0x80000 + u64::from(i) * u64::from(RX_BUF)
    }

    /// Posts `n` receive buffers of [`RX_BUF`] bytes.
    fn post_rx(&self, n: u16) {
        for _ in 0..n {
            let i = self.rx_posted.get();
            self.rx.add(&[(Self::rx_addr(i), RX_BUF, F_WRITE)]);
            self.rx_posted.set(i + 1);
        }
    }

    /// Puts a packet on the transmit queue.
    fn send(&self, header: Header, payload: &[u8]) {
        let addr = self.next_tx.get();
        let header = Header {
            len: payload.len() as u32,
            ..header
        };
        self.mem
            .write_slice(&header.to_bytes(), GuestAddress(addr))
            .unwrap();
        self.mem
            .write_slice(payload, GuestAddress(addr + HEADER_LEN as u64))
            .unwrap();
        let len = (HEADER_LEN + payload.len()) as u32;
        self.next_tx.set(addr + u64::from(len).next_multiple_of(16));
        self.tx.add(&[(addr, len, 0)]);
    }

    /// Packets the device delivered since the last call.
    fn received(&self) -> Vec<(Header, Vec<u8>)> {
        let mut out = Vec::new();
        while self.rx_read.get() < self.rx.used_idx() {
            let (head, len) = self.rx.used_elem(self.rx_read.get());
            let addr = Self::rx_addr(head as u16);
            let mut bytes = [0u8; HEADER_LEN];
            self.mem.read_slice(&mut bytes, GuestAddress(addr)).unwrap();
            let header = Header::parse(&bytes);
            let mut payload = vec![0u8; len as usize - HEADER_LEN];
            self.mem
                .read_slice(&mut payload, GuestAddress(addr + HEADER_LEN as u64))
                .unwrap();
            assert_eq!(header.len as usize, payload.len());
            out.push((header, payload));
            self.rx_read.set(self.rx_read.get() + 1);
        }
        out
    }
}

fn from_guest(guest_port: u32, op: u16) -> Header {
    Header {
        src_cid: GUEST_CID,
        dst_cid: HOST_CID,
        src_port: guest_port,
        dst_port: PORT,
        kind: TYPE_STREAM,
        op,
        buf_alloc: 64 * 1024,
        ..Header::default()
    }
}

fn metric(dev: &Vsock, name: &str) -> u64 {
    dev.metrics()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
}

/// A device with port [`PORT`] joined to a listening socket in `dir`.
fn device(dir: &Dir) -> (Vsock, UnixListener) {
    let path = dir.0.join("service.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let dev = Vsock::new(GUEST_CID, &[(PORT, path)]).unwrap();
    (dev, listener)
}

fn accept(listener: &UnixListener) -> UnixStream {
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Waits for the device's host sockets to report readiness, then serves them.
fn backend(dev: &mut Vsock) -> bool {
    let mut fds = [libc_poll_fd(dev)];
    poll(&mut fds);
    dev.process_backend().unwrap()
}

fn libc_poll_fd(dev: &Vsock) -> std::os::fd::RawFd {
    dev.backend_fd().unwrap()
}

/// Waits (at most 5 s) for `fd` to become readable.
fn poll(fds: &mut [std::os::fd::RawFd; 1]) {
    let epoll = vmm_sys_util::epoll::Epoll::new().unwrap();
    epoll
        .ctl(
            vmm_sys_util::epoll::ControlOperation::Add,
            fds[0],
            vmm_sys_util::epoll::EpollEvent::new(vmm_sys_util::epoll::EventSet::IN, 0),
        )
        .unwrap();
    let mut events = [vmm_sys_util::epoll::EpollEvent::default(); 1];
    epoll.wait(5000, &mut events).unwrap();
}

/// An active device with [`PORT`] declared, and `rx` receive buffers posted.
fn active<'a>(m: &'a GuestMemoryMmap, dir: &Dir, rx: u16) -> (Vsock, Guest<'a>, UnixListener) {
    let (mut dev, listener) = device(dir);
    let guest = Guest::new(m);
    dev.activate(m.clone(), guest.queues(), 0).unwrap();
    guest.post_rx(rx);
    (dev, guest, listener)
}

/// A device with one connection from guest port 5000 established.
fn connected<'a>(m: &'a GuestMemoryMmap, dir: &Dir) -> (Vsock, Guest<'a>, UnixStream) {
    let (mut dev, guest, listener) = active(m, dir, 16);
    guest.send(from_guest(5000, op::REQUEST), &[]);
    dev.process_queue(TX_QUEUE).unwrap();
    let host = accept(&listener);
    let got = guest.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.op, op::RESPONSE);
    (dev, guest, host)
}

#[test]
fn request_to_a_declared_port_connects_its_socket_and_is_answered_response() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, listener) = active(&m, &dir, 4);
    guest.send(from_guest(5000, op::REQUEST), &[]);

    let notify = dev.process_queue(TX_QUEUE).unwrap();

    assert!(notify);
    let _host = accept(&listener);
    let got = guest.received();
    assert_eq!(got.len(), 1);
    let h = got[0].0;
    assert_eq!(
        (h.op, h.src_cid, h.dst_cid, h.src_port, h.dst_port),
        (op::RESPONSE, HOST_CID, GUEST_CID, PORT, 5000)
    );
    assert_eq!(h.buf_alloc, BUF_ALLOC);
    assert_eq!(metric(&dev, "connections_open"), 1);
}

#[test]
fn bytes_flow_both_ways() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, mut host) = connected(&m, &dir);

    guest.send(from_guest(5000, op::RW), b"ping");
    dev.process_queue(TX_QUEUE).unwrap();
    let mut got = [0u8; 4];
    host.read_exact(&mut got).unwrap();
    host.write_all(b"pong!").unwrap();
    let notify = backend(&mut dev);

    assert_eq!(&got, b"ping");
    assert!(notify);
    let packets = guest.received();
    assert_eq!(packets.len(), 1);
    assert_eq!(packets[0].0.op, op::RW);
    assert_eq!(packets[0].0.fwd_cnt, 4);
    assert_eq!(packets[0].1, b"pong!");
    assert_eq!(metric(&dev, "tx_bytes"), 4);
    assert_eq!(metric(&dev, "rx_bytes"), 5);
}

#[test]
fn request_to_an_undeclared_port_is_answered_rst() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, _listener) = active(&m, &dir, 4);
    guest.send(
        Header {
            dst_port: 9999,
            ..from_guest(5000, op::REQUEST)
        },
        &[],
    );

    dev.process_queue(TX_QUEUE).unwrap();

    let got = guest.received();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.op, got[0].0.src_port), (op::RST, 9999));
    assert_eq!(metric(&dev, "connections_refused"), 1);
    assert_eq!(metric(&dev, "connections_open"), 0);
}

#[test]
fn request_to_a_socket_nobody_listens_on_is_answered_rst() {
    let m = mem();
    let dir = Dir::new();
    let mut dev = Vsock::new(GUEST_CID, &[(PORT, dir.0.join("absent.sock"))]).unwrap();
    let guest = Guest::new(&m);
    dev.activate(m.clone(), guest.queues(), 0).unwrap();
    guest.post_rx(4);
    guest.send(from_guest(5000, op::REQUEST), &[]);

    dev.process_queue(TX_QUEUE).unwrap();

    assert_eq!(guest.received()[0].0.op, op::RST);
    assert_eq!(metric(&dev, "connections_refused"), 1);
}

#[test]
fn packet_with_another_source_cid_is_dropped_without_answer() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, _listener) = active(&m, &dir, 4);
    guest.send(
        Header {
            src_cid: 7,
            ..from_guest(5000, op::REQUEST)
        },
        &[],
    );

    dev.process_queue(TX_QUEUE).unwrap();

    assert!(guest.received().is_empty());
    assert_eq!(guest.tx.used_idx(), 1);
    assert_eq!(metric(&dev, "spoofed_dropped"), 1);
    assert_eq!(metric(&dev, "connections_open"), 0);
}

#[test]
fn request_to_another_cid_than_the_host_is_answered_rst() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, _listener) = active(&m, &dir, 4);
    guest.send(
        Header {
            dst_cid: 4,
            ..from_guest(5000, op::REQUEST)
        },
        &[],
    );

    dev.process_queue(TX_QUEUE).unwrap();

    assert_eq!(guest.received()[0].0.op, op::RST);
    assert_eq!(metric(&dev, "unroutable"), 1);
}

#[test]
fn data_on_a_connection_that_does_not_exist_is_answered_rst() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, _listener) = active(&m, &dir, 4);
    guest.send(from_guest(5000, op::RW), b"stray");

    dev.process_queue(TX_QUEUE).unwrap();

    assert_eq!(guest.received()[0].0.op, op::RST);
}

#[test]
fn guest_sending_beyond_its_credit_loses_only_that_connection() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, mut host) = connected(&m, &dir);
    // Nobody reads on the host side: the socket buffer fills, then the device's buffer.
    let chunk = vec![0x55u8; MAX_PAYLOAD as usize];
    let mut sent = 0usize;
    while sent <= 4 * 1024 * 1024 && metric(&dev, "connections_reset_misbehaving") == 0 {
        guest.send(from_guest(5000, op::RW), &chunk);
        dev.process_queue(TX_QUEUE).unwrap();
        sent += chunk.len();
        guest.next_tx.set(0x10000);
    }

    assert_eq!(metric(&dev, "connections_reset_misbehaving"), 1);
    let last = guest.received().pop().unwrap().0;
    assert_eq!(last.op, op::RST);
    assert_eq!(metric(&dev, "connections_open"), 0);
    // Everything up to the advertised buffer was taken before the reset.
    assert!(sent - chunk.len() >= BUF_ALLOC as usize);
    let mut sink = Vec::new();
    host.read_to_end(&mut sink).unwrap();
    assert!(!sink.is_empty());
}

#[test]
fn host_data_beyond_the_guest_credit_waits_for_a_credit_update() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, listener) = active(&m, &dir, 16);
    guest.send(
        Header {
            buf_alloc: 10,
            ..from_guest(5000, op::REQUEST)
        },
        &[],
    );
    dev.process_queue(TX_QUEUE).unwrap();
    let mut host = accept(&listener);
    guest.received();

    host.write_all(&[9u8; 25]).unwrap();
    backend(&mut dev);
    let first: usize = guest.received().iter().map(|(_, p)| p.len()).sum();
    guest.send(
        Header {
            buf_alloc: 10,
            fwd_cnt: 10,
            ..from_guest(5000, op::CREDIT_UPDATE)
        },
        &[],
    );
    dev.process_queue(TX_QUEUE).unwrap();
    let second: usize = guest.received().iter().map(|(_, p)| p.len()).sum();

    assert_eq!(first, 10);
    assert_eq!(second, 10);
}

#[test]
fn credit_request_is_answered_with_a_credit_update() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, _host) = connected(&m, &dir);

    guest.send(from_guest(5000, op::CREDIT_REQUEST), &[]);
    dev.process_queue(TX_QUEUE).unwrap();

    let got = guest.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].0.op, got[0].0.buf_alloc),
        (op::CREDIT_UPDATE, BUF_ALLOC)
    );
}

#[test]
fn host_closing_sends_shutdown_and_the_guest_closing_ends_the_connection() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, host) = connected(&m, &dir);

    drop(host);
    backend(&mut dev);
    let shutdown = guest.received();
    guest.send(
        Header {
            flags: SHUTDOWN_SEND | SHUTDOWN_RECEIVE,
            ..from_guest(5000, op::SHUTDOWN)
        },
        &[],
    );
    dev.process_queue(TX_QUEUE).unwrap();
    let rst = guest.received();

    assert_eq!(shutdown.len(), 1);
    assert_eq!(
        (shutdown[0].0.op, shutdown[0].0.flags),
        (op::SHUTDOWN, SHUTDOWN_SEND)
    );
    assert_eq!(rst.len(), 1);
    assert_eq!(rst[0].0.op, op::RST);
    assert_eq!(metric(&dev, "connections_open"), 0);
}

#[test]
fn guest_done_sending_gives_the_host_reader_end_of_file_after_the_data() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, mut host) = connected(&m, &dir);

    guest.send(from_guest(5000, op::RW), b"last words");
    guest.send(
        Header {
            flags: SHUTDOWN_SEND,
            ..from_guest(5000, op::SHUTDOWN)
        },
        &[],
    );
    dev.process_queue(TX_QUEUE).unwrap();
    let mut got = Vec::new();
    host.read_to_end(&mut got).unwrap();

    assert_eq!(got, b"last words");
    assert_eq!(metric(&dev, "connections_open"), 1);
}

#[test]
fn guest_reset_closes_the_host_socket() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, guest, mut host) = connected(&m, &dir);

    guest.send(from_guest(5000, op::RST), &[]);
    dev.process_queue(TX_QUEUE).unwrap();
    let mut got = Vec::new();
    host.read_to_end(&mut got).unwrap();

    assert!(got.is_empty());
    assert_eq!(metric(&dev, "connections_open"), 0);
    assert!(guest.received().is_empty());
}

#[test]
fn connections_beyond_the_table_size_are_refused() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, listener) = device(&dir);
    let guest = Guest::new(&m);
    dev.activate(m.clone(), guest.queues(), 0).unwrap();
    let mut hosts = Vec::new();
    for port in 0..=MAX_CONNECTIONS as u32 {
        guest.send(from_guest(6000 + port, op::REQUEST), &[]);
        guest.next_tx.set(0x10000);
        dev.process_queue(TX_QUEUE).unwrap();
        if port < MAX_CONNECTIONS as u32 {
            hosts.push(accept(&listener));
        }
    }

    assert_eq!(metric(&dev, "connections_open"), MAX_CONNECTIONS as u64);
    assert_eq!(metric(&dev, "connections_refused"), 1);
}

#[test]
fn reset_closes_every_connection() {
    let m = mem();
    let dir = Dir::new();
    let (mut dev, _guest, mut host) = connected(&m, &dir);

    dev.reset();
    let mut got = Vec::new();
    host.read_to_end(&mut got).unwrap();

    assert_eq!(metric(&dev, "connections_open"), 0);
}

#[test]
fn configuration_space_holds_the_guest_cid() {
    let dev = Vsock::new(0x1_0000_0003, &[]).unwrap();
    let mut config = [0xffu8; 12];

    dev.read_config(0, &mut config);

    assert_eq!(config, [3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
}

/// Drives the device through the transport with one chain on `queue`; returns the fault.
fn fault_after(queue: usize, buffers: &[(u64, u32, u16)], header: Option<Header>) -> Option<Fault> {
    let m = mem();
    let dir = Dir::new();
    let (dev, _listener) = device(&dir);
    let guest = Guest::new(&m);
    let (mut t, irq) = transport(Box::new(dev), &m);
    activate(
        &mut t,
        FEATURE_VERSION_1,
        &[&guest.rx, &guest.tx, &guest.event],
    );
    if let Some(h) = header {
        m.write_slice(&h.to_bytes(), GuestAddress(buffers[0].0))
            .unwrap();
    }
    [&guest.rx, &guest.tx][queue].add(buffers);

    t.queue_notified(queue);

    assert_ne!(read32(&mut t, reg::STATUS) & status::NEEDS_RESET, 0);
    assert_eq!(irq.status(), 2);
    t.needs_reset()
}

#[test]
fn writable_buffer_on_the_transmit_queue_marks_the_device_needs_reset() {
    let fault = fault_after(TX_QUEUE, &[(0x10000, 64, F_WRITE)], None);

    assert_eq!(fault, Some(Fault::WrongDirection));
}

#[test]
fn transmit_buffer_shorter_than_a_header_marks_the_device_needs_reset() {
    let fault = fault_after(TX_QUEUE, &[(0x10000, 43, 0)], None);

    assert_eq!(fault, Some(Fault::MalformedRequest));
}

#[test]
fn header_announcing_more_payload_than_its_chain_marks_the_device_needs_reset() {
    let header = Header {
        len: 100,
        ..from_guest(5000, op::RW)
    };
    let fault = fault_after(TX_QUEUE, &[(0x10000, 44 + 99, 0)], Some(header));

    assert_eq!(fault, Some(Fault::MalformedRequest));
}

#[test]
fn header_announcing_more_than_the_payload_maximum_marks_the_device_needs_reset() {
    let header = Header {
        len: MAX_PAYLOAD + 1,
        ..from_guest(5000, op::RW)
    };
    let fault = fault_after(
        TX_QUEUE,
        &[(0x10000, 44 + MAX_PAYLOAD + 1, 0)],
        Some(header),
    );

    assert_eq!(fault, Some(Fault::MalformedRequest));
}

#[test]
fn receive_buffer_shorter_than_a_header_marks_the_device_needs_reset() {
    let m = mem();
    let dir = Dir::new();
    let (dev, _listener) = device(&dir);
    let guest = Guest::new(&m);
    let (mut t, _irq) = transport(Box::new(dev), &m);
    activate(
        &mut t,
        FEATURE_VERSION_1,
        &[&guest.rx, &guest.tx, &guest.event],
    );
    guest.rx.add(&[(0x80000, 43, F_WRITE)]);
    guest.send(from_guest(5000, op::REQUEST), &[]);

    t.queue_notified(TX_QUEUE);

    assert_eq!(t.needs_reset(), Some(Fault::MalformedRequest));
}
