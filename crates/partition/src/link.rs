//! The link backend of virtio-net devices: a direct wire between two partitions
//! (`link = "PEER"` on both sides of the system description), with no process in between.
//!
//! Each side binds a Unix datagram socket `link-<this>-<peer>.sock` in the run directory that
//! the supervisor creates for the run (mode 0700, removed at its end, passed as
//! [`RUN_DIR_ENV`]) and sends its frames to `link-<peer>-<this>.sock`. Datagrams keep frame
//! boundaries. No descriptor is passed between processes, so either side can start, stop and
//! restart on its own: a frame sent while the peer is not bound (not started yet, restarting)
//! is refused and the device drops and counts it, and the link comes back by itself when the
//! peer is there again.
//!
//! The socket is `connect`ed to the peer whenever the peer is bound. Besides restricting who
//! may send to it (only the connected peer), this lifts the kernel's queue limit for
//! unconnected senders (`net.unix.max_dgram_qlen`, 10 datagrams by default): between connected
//! sockets the sender's socket buffer is the bound. A peer that restarted leaves our socket
//! connected to its old, closed socket; the next send fails with `ECONNREFUSED`, which
//! disconnects it, and we connect to the new one and send again.
//!
//! Each side's send buffer is enlarged ([`SEND_BUFFER`]): with segmentation offloads a frame
//! is up to 64 KiB, and the default buffer would hold three. When it is full, `send` reports
//! `WouldBlock` and the device holds the guest's frames back until the socket is writable.
//!
//! The uart links (`uart_link.rs`) use the same sockets under their own names
//! ([`Link::bind`]), carrying their protocol's messages as datagrams.
//!
//! Runs on the partition's device thread (and a uart link's thread); every call is
//! nonblocking.
#![allow(unsafe_code)]

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use bulkhead_virtio::net::NetBackend;

/// The environment variable through which the supervisor names the run directory.
pub const RUN_DIR_ENV: &str = "BULKHEAD_RUN_DIR";

/// One end of a link between two partitions.
#[derive(Debug)]
pub struct Link {
    socket: UnixDatagram,
    own: PathBuf,
    peer: PathBuf,
    connected: bool,
}

/// Why a link could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The partition was not started by `bulkhead run`, which creates the run directory.
    #[error("links need the run directory that `bulkhead run` passes in {RUN_DIR_ENV}")]
    NoRunDir,
    /// A stale socket file could not be removed.
    #[error("cannot remove stale socket {0}")]
    RemoveStale(PathBuf, #[source] std::io::Error),
    /// Binding the socket failed (e.g. its path is longer than a socket address holds).
    #[error("cannot bind {0}")]
    Bind(PathBuf, #[source] std::io::Error),
    /// Making the socket nonblocking failed.
    #[error("cannot make {0} nonblocking")]
    Nonblocking(PathBuf, #[source] std::io::Error),
}

impl Link {
    /// The run directory named by [`RUN_DIR_ENV`].
    pub fn run_dir() -> Result<PathBuf, LinkError> {
        std::env::var_os(RUN_DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .ok_or(LinkError::NoRunDir)
    }

    /// Binds partition `this`'s end of its link to `peer` in `run_dir`.
    pub fn open(run_dir: &Path, this: &str, peer: &str) -> Result<Link, LinkError> {
        Link::bind(
            run_dir,
            &format!("link-{this}-{peer}.sock"),
            &format!("link-{peer}-{this}.sock"),
        )
    }

    /// Binds socket file `own` in `run_dir`, to talk to the one the peer binds as `peer`
    /// there (the uart links use this with their own names).
    pub fn bind(run_dir: &Path, own: &str, peer: &str) -> Result<Link, LinkError> {
        let own = run_dir.join(own);
        let peer = run_dir.join(peer);
        match std::fs::remove_file(&own) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(LinkError::RemoveStale(own, e)),
        }
        let socket = UnixDatagram::bind(&own).map_err(|e| LinkError::Bind(own.clone(), e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| LinkError::Nonblocking(own.clone(), e))?;
        enlarge_send_buffer(&socket);
        let mut link = Link {
            socket,
            own,
            peer,
            connected: false,
        };
        link.connect();
        Ok(link)
    }

    /// Connects to the peer's socket if it is bound (and not still connected to a previous
    /// incarnation of this partition). Returns whether the link is connected.
    fn connect(&mut self) -> bool {
        if !self.connected {
            self.connected = self.socket.connect(&self.peer).is_ok();
        }
        self.connected
    }

    /// Sends one datagram to the peer's socket, connecting first if needed; no second try
    /// when the socket it was connected to is gone (`ConnectionRefused`, and it is then
    /// disconnected: the next call connects to whichever socket is bound now).
    pub fn send_once(&mut self, frame: &[u8]) -> std::io::Result<()> {
        if !self.connect() {
            return Err(ErrorKind::NotConnected.into());
        }
        loop {
            match self.socket.send(frame) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::NotConnected
                    ) {
                        self.connected = false;
                    }
                    return Err(e);
                }
            }
        }
    }
}

impl Link {
    /// Sends one datagram to the peer; `WouldBlock` when the socket buffer is full, another
    /// error when the peer is not bound (not started, restarting).
    pub fn send_datagram(&mut self, datagram: &[u8]) -> std::io::Result<()> {
        match self.send_once(datagram) {
            // The peer restarted: our socket was still connected to its old one. Once more,
            // to the new one.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => self.send_once(datagram),
            other => other,
        }
    }

    /// Receives one datagram, `None` when there is none.
    pub fn recv_datagram(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        loop {
            match self.socket.recv(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives one datagram with whether it came from the peer's socket (and not from
    /// another socket that wrote to ours before it was connected), `None` when there is none.
    pub fn recv_from_peer(&mut self, buf: &mut [u8]) -> std::io::Result<Option<(usize, bool)>> {
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    return Ok(Some((n, from.as_pathname() == Some(self.peer.as_path()))))
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The socket's descriptor, for epoll.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl NetBackend for Link {
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.send_datagram(frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        self.recv_datagram(buf)
    }

    fn raw_fd(&self) -> RawFd {
        self.fd()
    }
}

/// The link's send buffer: what may be in flight towards the peer before `send` reports
/// `WouldBlock` (and the device holds the guest's frames back). 64 KiB segments need room for
/// a TCP window's worth of them.
pub const SEND_BUFFER: usize = 4 << 20;

/// Asks for [`SEND_BUFFER`] bytes of send buffer: `SO_SNDBUFFORCE` where the process may
/// (`CAP_NET_ADMIN`), else `SO_SNDBUF`, which the kernel caps at `net.core.wmem_max`. A
/// refusal leaves the default; the link works, with less in flight.
fn enlarge_send_buffer(socket: &UnixDatagram) {
    let size = SEND_BUFFER as libc::c_int;
    // SAFETY: SO_SNDBUFFORCE reads one `int` from a pointer to a live local of that size; the
    // descriptor is an open socket.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            std::ptr::from_ref(&size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = socket2::SockRef::from(socket).set_send_buffer_size(SEND_BUFFER);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.own);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    fn recv_frame(link: &mut Link) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        link.recv(&mut buf).unwrap().map(|n| buf[..n].to_vec())
    }

    #[test]
    fn frames_cross_a_link_whole_in_both_directions() {
        let dir = TempDir::new("both");
        let mut a = Link::open(&dir.0, "a", "b").unwrap();
        let mut b = Link::open(&dir.0, "b", "a").unwrap();

        a.send(b"from a").unwrap();
        b.send(b"from b, longer").unwrap();

        assert_eq!(recv_frame(&mut b).as_deref(), Some(&b"from a"[..]));
        assert_eq!(recv_frame(&mut a).as_deref(), Some(&b"from b, longer"[..]));
        assert_eq!(recv_frame(&mut a), None);
    }

    #[test]
    fn frame_to_a_peer_not_started_is_refused() {
        let dir = TempDir::new("absent");
        let mut a = Link::open(&dir.0, "a", "b").unwrap();

        let result = a.send(b"nobody there");

        assert!(result.is_err());
    }

    #[test]
    fn link_recovers_after_the_peer_restarts() {
        let dir = TempDir::new("restart");
        let mut a = Link::open(&dir.0, "a", "b").unwrap();
        let b = Link::open(&dir.0, "b", "a").unwrap();
        a.send(b"first").unwrap();
        drop(b);
        let mut b = Link::open(&dir.0, "b", "a").unwrap();

        a.send(b"after restart").unwrap();
        b.send(b"back").unwrap();

        assert_eq!(recv_frame(&mut b).as_deref(), Some(&b"after restart"[..]));
        assert_eq!(recv_frame(&mut a).as_deref(), Some(&b"back"[..]));
    }

    #[test]
    fn a_peer_that_does_not_read_fills_the_link_which_then_reports_would_block() {
        let dir = TempDir::new("full");
        let mut a = Link::open(&dir.0, "a", "b").unwrap();
        let _b = Link::open(&dir.0, "b", "a").unwrap();
        let segment = vec![0u8; 65550];

        let mut sent = 0;
        let err = loop {
            match a.send(&segment) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 10_000, "the link never filled");
        };

        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        // At least the default buffer's worth (three segments) went out first.
        assert!(sent >= 3, "{sent}");
    }

    #[test]
    fn more_frames_than_the_unconnected_queue_limit_wait_for_the_peer() {
        let dir = TempDir::new("burst");
        let mut a = Link::open(&dir.0, "a", "b").unwrap();
        let mut b = Link::open(&dir.0, "b", "a").unwrap();

        let sent = (0..50).filter(|_| a.send(&[0u8; 1514]).is_ok()).count();
        let received = std::iter::from_fn(|| recv_frame(&mut b)).count();

        assert_eq!((sent, received), (50, 50));
    }
}
