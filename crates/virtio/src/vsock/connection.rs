//! One stream between a guest port and a host Unix socket, and its credit accounting
//! (virtio 1.2 §5.10.6.3).
//!
//! Guest to host: the device advertises [`BUF_ALLOC`] bytes of buffer per connection; bytes
//! the guest sends are written to the socket at once, and what the socket does not take waits
//! in `to_host` (at most [`BUF_ALLOC`] bytes: a guest that sends beyond its credit loses the
//! connection). Bytes written out count in `fwd_cnt`, which goes back to the guest in every
//! header, and in a credit update when the guest's view of the free space runs low.
//!
//! Host to guest: the device never sends more than the guest's credit,
//! `peer_buf_alloc - (tx_cnt - peer_fwd_cnt)`; the rest stays in the socket (the host
//! writer then blocks or sees `EAGAIN`, its own flow control).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::num::Wrapping;
use std::os::unix::net::UnixStream;

use super::packet::{Header, HOST_CID, TYPE_STREAM};

/// Receive buffer advertised to the guest per connection, in bytes.
pub const BUF_ALLOC: u32 = 256 * 1024;
/// A credit update is sent when the guest's view of the free space falls below this.
const CREDIT_LOW: u32 = BUF_ALLOC / 2;

/// Result of moving bytes between the socket and the device.
#[derive(Debug, PartialEq, Eq)]
pub enum Io {
    /// `n` bytes moved (never 0).
    Moved(usize),
    /// The socket has nothing now (or cannot take more now).
    WouldBlock,
    /// The host side closed its end for writing (read returned 0).
    Eof,
    /// The socket failed (peer gone, reset).
    Failed,
}

/// One connection.
#[derive(Debug)]
pub struct Connection {
    pub stream: UnixStream,
    pub guest_cid: u64,
    pub guest_port: u32,
    pub host_port: u32,
    /// Guest bytes not yet taken by the socket (at most [`BUF_ALLOC`]).
    to_host: VecDeque<u8>,
    /// Bytes received from the guest, modulo 2^32.
    rx_cnt: Wrapping<u32>,
    /// Of those, bytes written to the socket.
    fwd_cnt: Wrapping<u32>,
    /// `fwd_cnt` as last told to the guest.
    fwd_cnt_told: Wrapping<u32>,
    /// Bytes sent to the guest, modulo 2^32.
    tx_cnt: Wrapping<u32>,
    peer_buf_alloc: u32,
    peer_fwd_cnt: Wrapping<u32>,
    /// The socket may have bytes to read / room to write (edge-triggered readiness, cleared
    /// on `EAGAIN`).
    pub readable: bool,
    pub writable: bool,
    /// The guest sent `SHUTDOWN` with `SEND`: no more data comes from it.
    pub guest_done_sending: bool,
    /// The guest sent `SHUTDOWN` with `RECEIVE`: it takes no more data.
    pub guest_done_receiving: bool,
    /// The host side's read returned end of file; `SHUTDOWN` with `SEND` is due to the guest.
    pub host_eof: bool,
    /// Whether that `SHUTDOWN` went to the guest.
    pub host_eof_told: bool,
    /// The guest asked for a credit update (`CREDIT_REQUEST`).
    pub credit_requested: bool,
    /// The write half of the socket was shut down (after the guest's `SHUTDOWN` `SEND`).
    write_shut: bool,
}

impl Connection {
    /// A connection for a guest's request `request` (guest as `src`), over `stream`.
    pub fn new(stream: UnixStream, request: &Header) -> Connection {
        Connection {
            stream,
            guest_cid: request.src_cid,
            guest_port: request.src_port,
            host_port: request.dst_port,
            to_host: VecDeque::new(),
            rx_cnt: Wrapping(0),
            fwd_cnt: Wrapping(0),
            fwd_cnt_told: Wrapping(0),
            tx_cnt: Wrapping(0),
            peer_buf_alloc: request.buf_alloc,
            peer_fwd_cnt: Wrapping(request.fwd_cnt),
            readable: true,
            writable: true,
            guest_done_sending: false,
            guest_done_receiving: false,
            host_eof: false,
            host_eof_told: false,
            credit_requested: false,
            write_shut: false,
        }
    }

    /// A header from the host side of this connection to the guest; records that the
    /// current `fwd_cnt` was told.
    pub fn header(&mut self, op: u16, len: u32, flags: u32) -> Header {
        self.fwd_cnt_told = self.fwd_cnt;
        self.credit_requested = false;
        Header {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: self.host_port,
            dst_port: self.guest_port,
            len,
            kind: TYPE_STREAM,
            op,
            flags,
            buf_alloc: BUF_ALLOC,
            fwd_cnt: self.fwd_cnt.0,
        }
    }

    /// Takes the guest's credit fields from one of its packets.
    pub fn peer_credit_from(&mut self, header: &Header) {
        self.peer_buf_alloc = header.buf_alloc;
        self.peer_fwd_cnt = Wrapping(header.fwd_cnt);
    }

    /// Bytes the guest can take now.
    pub fn peer_credit(&self) -> u32 {
        let in_flight = (self.tx_cnt - self.peer_fwd_cnt).0;
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Bytes the guest may still send without exceeding its credit.
    fn own_free(&self) -> usize {
        (BUF_ALLOC as usize).saturating_sub(self.to_host.len())
    }

    /// Whether a credit update should go to the guest: it asked, or its view of our free
    /// space is low and more is free now.
    pub fn credit_update_due(&self) -> bool {
        let seen_free = BUF_ALLOC.saturating_sub((self.rx_cnt - self.fwd_cnt_told).0);
        self.credit_requested || (seen_free < CREDIT_LOW && self.fwd_cnt != self.fwd_cnt_told)
    }

    /// Queues `data` from the guest for the socket; `false` (nothing queued) when it exceeds
    /// the credit the guest was given.
    pub fn queue_to_host(&mut self, data: &[u8]) -> bool {
        if data.len() > self.own_free() {
            return false;
        }
        self.to_host.extend(data);
        self.rx_cnt += Wrapping(data.len() as u32);
        true
    }

    /// Whether guest bytes wait for the socket.
    pub fn has_pending(&self) -> bool {
        !self.to_host.is_empty()
    }

    /// Writes waiting guest bytes to the socket until it would block; then, once all are out
    /// and the guest is done sending, shuts the socket's write half (the host reader sees end
    /// of file).
    pub fn flush(&mut self) -> Io {
        let mut moved = 0usize;
        while !self.to_host.is_empty() && self.writable {
            let (front, _) = self.to_host.as_slices();
            match self.stream.write(front) {
                Ok(0) => return Io::Failed,
                Ok(n) => {
                    self.to_host.drain(..n);
                    self.fwd_cnt += Wrapping(n as u32);
                    moved += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Io::Failed,
            }
        }
        if self.to_host.is_empty() && self.guest_done_sending && !self.write_shut {
            self.write_shut = true;
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
        }
        if moved > 0 {
            Io::Moved(moved)
        } else {
            Io::WouldBlock
        }
    }

    /// Reads at most `buf.len()` bytes (callers bound it by [`Connection::peer_credit`]) for
    /// the guest.
    pub fn read_for_guest(&mut self, buf: &mut [u8]) -> Io {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Io::Eof,
                Ok(n) => {
                    self.tx_cnt += Wrapping(n as u32);
                    return Io::Moved(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Io::WouldBlock;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Io::Failed,
            }
        }
    }

    /// Whether the socket may have data for the guest and the guest can take some.
    pub fn can_send_data(&self) -> bool {
        self.readable && !self.host_eof && !self.guest_done_receiving && self.peer_credit() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsock::packet::op;

    fn request() -> Header {
        Header {
            src_cid: 3,
            dst_cid: HOST_CID,
            src_port: 5000,
            dst_port: 1234,
            kind: TYPE_STREAM,
            op: op::REQUEST,
            buf_alloc: 100,
            ..Header::default()
        }
    }

    fn pair() -> (Connection, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (Connection::new(a, &request()), b)
    }

    #[test]
    fn the_guest_is_sent_no_more_than_its_credit() {
        let (mut c, mut host) = pair();
        host.write_all(&[7; 300]).unwrap();
        let mut buf = vec![0u8; c.peer_credit() as usize];

        let first = c.read_for_guest(&mut buf);

        assert_eq!(first, Io::Moved(100));
        assert_eq!(c.peer_credit(), 0);
        assert!(!c.can_send_data());
        c.peer_credit_from(&Header {
            buf_alloc: 100,
            fwd_cnt: 60,
            ..Header::default()
        });
        assert_eq!(c.peer_credit(), 60);
    }

    #[test]
    fn guest_bytes_beyond_the_advertised_buffer_are_refused() {
        let (mut c, _host) = pair();

        let within = c.queue_to_host(&vec![1; BUF_ALLOC as usize]);
        let beyond = c.queue_to_host(&[1]);

        assert!(within);
        assert!(!beyond);
    }

    #[test]
    fn flushed_bytes_reach_the_host_and_count_as_forwarded() {
        let (mut c, mut host) = pair();
        c.queue_to_host(b"hello");

        let io = c.flush();

        assert_eq!(io, Io::Moved(5));
        let mut got = [0u8; 5];
        host.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        assert_eq!(c.header(op::RW, 0, 0).fwd_cnt, 5);
    }

    #[test]
    fn credit_update_is_due_once_the_guest_sees_less_than_half_free_and_more_is_free() {
        let (mut c, mut host) = pair();
        c.queue_to_host(&vec![0; (BUF_ALLOC / 2 + 1) as usize]);
        let before_flush = c.credit_update_due();

        c.flush();
        let mut sink = vec![0u8; BUF_ALLOC as usize];
        let _ = host.read(&mut sink).unwrap();
        let after_flush = c.credit_update_due();
        c.header(op::CREDIT_UPDATE, 0, 0);

        assert!(!before_flush);
        assert!(after_flush);
        assert!(!c.credit_update_due());
    }

    #[test]
    fn host_closing_its_end_reads_as_end_of_file() {
        let (mut c, host) = pair();
        drop(host);
        let mut buf = [0u8; 16];

        assert_eq!(c.read_for_guest(&mut buf), Io::Eof);
    }

    #[test]
    fn after_the_guest_is_done_sending_the_host_reader_sees_end_of_file_once_flushed() {
        let (mut c, mut host) = pair();
        c.queue_to_host(b"bye");
        c.guest_done_sending = true;

        c.flush();
        let mut got = Vec::new();
        host.read_to_end(&mut got).unwrap();

        assert_eq!(got, b"bye");
    }
}
