//! Encrypted uplinks (`[[bridge.uplink]]`): the bridge's Ethernet frames carried to another
//! bulkhead host's bridge in UDP datagrams, sealed with ChaCha20-Poly1305 (RFC 8439), so the
//! two bridges join into one network.
//!
//! - [`load_key`] ([`key`]): the 32-byte static key shared by both hosts, from its file.
//! - [`Sealer`] ([`sealer`]) and [`Opener`] ([`opener`]): the socket-free record layer.
//! - [`Tunnel`] (here): one uplink's nonblocking UDP socket, a sealer for what this host
//!   sends and an opener for what the peer sends, and the uplink's counters.
//!
//! A [`Tunnel`] belongs to the bridge process's switching loop: its fd goes into the loop's
//! epoll set (level-triggered), [`Tunnel::recv`] runs when it is readable and
//! [`Tunnel::send`] for every frame switched to the uplink. Nothing here blocks or spawns.
//!
//! # Record format, version 1
//!
//! One record per UDP datagram, one Ethernet frame (0 to [`MAX_FRAME`] = 9216 bytes) per
//! record; integers big-endian:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 1 | version, `0x01` |
//! | 1 | 8 | session start: the sender's `CLOCK_REALTIME` in ns since the Unix epoch when the session started |
//! | 9 | 16 | session random: 128 bits from the OS's random source, drawn when the session started |
//! | 25 | 8 | counter: 0 for the session's first record, +1 for each next one |
//! | 33 | n | the frame, encrypted |
//! | 33 + n | 16 | the Poly1305 tag |
//!
//! [`OVERHEAD`] is 49 bytes, a record at most [`MAX_RECORD`] = 9265 bytes. Keys and
//! encryption:
//!
//! ```text
//! K       the static key (32 bytes, the key file)
//! PRK     = HKDF-Extract(salt = "bulkhead tunnel v1", IKM = K)            RFC 5869, SHA-256
//! K_s     = HKDF-Expand(PRK, info, 32)
//! info    = "bulkhead tunnel v1 session key" || A(sender) || A(receiver)
//!           || header[1..25] (session start || session random)
//! A(addr) = 0x04 || IPv4 address (4) || port (2)       for IPv4, and IPv4-mapped IPv6
//!         = 0x06 || IPv6 address (16) || port (2)      for other IPv6 (flow info and scope
//!                                                      id are not part of it)
//! nonce   = 0x00000000 || counter (8)
//! ciphertext || tag = ChaCha20-Poly1305-Encrypt(K_s, nonce, aad = header[0..33], frame)
//! ```
//!
//! The labels are ASCII without terminator. `A(sender)` and `A(receiver)` are the addresses as
//! the two system descriptions write them: the sender's `local` (which is the receiver's
//! `peer`) and the sender's `peer` (the receiver's `local`). Both hosts must therefore name
//! each other by the addresses they bind: a specific address (not `0.0.0.0` or `::`, which
//! [`Tunnel`] refuses) and no NAT between them.
//!
//! A receiver checks, in this order, and drops the datagram at the first failure: the source
//! address is the peer's; the length is at least 49 and at most 9265 bytes; the version is 1;
//! the session is not older than the one it follows (sessions are ordered by start, then by
//! random bits as a big-endian number); the counter is not a replay or below the window (when
//! the session is the one followed); the tag verifies under `K_s`. Only then does it accept
//! the frame, mark the counter received, and — for a newer session — follow that session
//! with a fresh replay window. (Counters are classified before the tag is checked, so a
//! forgery that reuses a received counter is counted as `replayed`: dropped all the same.)
//!
//! # Security argument
//!
//! **Nonce uniqueness.** A (key, nonce) pair is (`K_s`, counter). Within one session the
//! [`Sealer`] takes each counter once, before encrypting, and starts a new session before the
//! counter would reach `u64::MAX`, so the counter never wraps. Across sessions the key
//! changes: `K_s` is a PRF (HKDF) output over the direction and the session's start and 128
//! random bits, drawn from `getrandom` for every session (a failure to draw them is an
//! error, never a fallback). Two sessions share `K_s` only if they share the start and the
//! random bits; sessions of one process also have strictly increasing starts (a process-wide
//! counter keeps them apart even when the clock stands still or steps back). Across
//! restarts, crashes and two copies of the same binary, nothing is remembered, so uniqueness
//! rests on the random bits: any two of n sessions collide with probability below
//! n²/2¹²⁹ (2⁻⁸⁹ for a million sessions), and only sessions that started in the same
//! nanosecond can collide at all. No session state is ever saved or copied (a [`Sealer`] is
//! not `Clone`), so no snapshot or restore can resume a session twice.
//!
//! **Directions.** The two directions of an uplink derive different keys (the sender's and
//! receiver's addresses are in `info`), so a record reflected back to its sender, or
//! delivered to another uplink that shares the key by mistake, fails authentication.
//!
//! **Integrity.** The whole header is associated data and the frame is encrypted and
//! authenticated, so any change to any byte, truncation, extension or splice fails the tag
//! (Poly1305's forgery bound: about 2⁻⁹³ per attempt for a jumbo frame). Records that fail
//! are counted and dropped; a forged record never changes the receiver's state.
//!
//! **Replay within a session.** The receiver remembers the last 2048 counters of the session
//! it follows: a duplicate is dropped (`replayed`), a counter 2048 or more below the newest
//! is dropped (`too_old`); reordering within the window is accepted, each record once.
//!
//! **Replay of old sessions.** A record of a session older than the one followed is dropped
//! (`old_session`) without decryption. The sender's session start is its wall clock, so
//! after the peer restarts and its new session reaches this host, everything recorded
//! before is dead.
//!
//! **What an attacker who records traffic can still do, and other limits:**
//! - *Replay to a freshly started receiver.* A receiver that has just started follows no
//!   session and accepts the first authentic one. Until the peer's current session reaches
//!   it, an attacker can replay recorded records of an older session (each once, as the
//!   window allows); the first record of the peer's real, newer session ends this. A
//!   handshake (a challenge from the receiver) would close this gap; version 1 has none.
//! - *Clock steps.* Session order is the sender's wall clock. If the sender's clock is set
//!   back (or was far ahead once) and its bridge then restarts, its new session looks older
//!   and is dropped as `old_session` until this host's bridge restarts too (or the clock
//!   passes the old start). The `old_session` counter makes this visible.
//! - *No forward secrecy.* All keys derive from the static key and public header fields:
//!   whoever obtains the key file can decrypt all recorded traffic, past and future, and
//!   forge records. There is no handshake, so no ephemeral keys; this is accepted here, and
//!   the key files are protected (mode 0600, checked when loading).
//! - *Metadata.* Frame lengths (no padding), timing, both addresses and the sender's session
//!   start time (its process's start, roughly) are visible. Records can be dropped or delayed
//!   (within the window) by anyone on the path; UDP gives no delivery guarantee anyway.
//! - *Denial of service.* Any host can send datagrams; ones from other addresses are dropped
//!   by address without crypto (and source addresses can be spoofed, which only costs a tag
//!   check), each forgery costs at most one HKDF expansion and one Poly1305 pass, and
//!   [`Tunnel::recv`] looks at no more than [`MAX_DATAGRAMS_PER_RECV`] datagrams per call.
//! - *Size.* A sealed 1500-byte frame is a 1577-byte IPv4 packet (1549 bytes of record, 8 of
//!   UDP, 20 of IP): on a 1500-byte-MTU path the IP layer fragments it (the tunnel has no
//!   fragmentation of its own). Use jumbo frames on the path, or frames of at most 1423
//!   bytes, i.e. an MTU of at most 1405 bytes inside the bridged network (14-byte Ethernet
//!   header and a VLAN tag; 20 bytes less over an IPv6 path).

pub mod key;
pub mod opener;
pub mod record;
pub mod sealer;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

pub use key::{load_key, KeyError, KEY_LEN};
pub use opener::{OpenError, Opener, OpenerStats, RejectCounts, RejectReason, REPLAY_WINDOW};
pub use record::{
    Direction, SessionId, HEADER_LEN, MAX_FRAME, MAX_RECORD, OVERHEAD, TAG_LEN, VERSION,
};
pub use sealer::{SealError, Sealer, MAX_RECORDS_PER_SESSION};

/// Datagrams [`Tunnel::recv`] reads at most per call before it returns `Ok(None)`.
pub const MAX_DATAGRAMS_PER_RECV: usize = 64;

/// Why a tunnel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("uplink {name}: cannot load its key")]
    LoadKey {
        name: String,
        #[source]
        source: KeyError,
    },
    #[error("uplink {name}: {which} address {addr} {problem}")]
    Address {
        name: String,
        which: &'static str,
        addr: SocketAddr,
        problem: &'static str,
    },
    #[error("uplink {name}: cannot bind UDP socket to {addr}")]
    Bind {
        name: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("uplink {name}: cannot set up its socket")]
    Socket {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("uplink {name}: cannot start a session")]
    StartSession {
        name: String,
        #[source]
        source: SealError,
    },
}

/// An uplink's counters, since its [`Tunnel`] was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelCounters {
    /// Records sent to the peer (handed to the kernel whole).
    pub records_sent: u64,
    /// Frame bytes in those records (headers and tags not counted).
    pub bytes_sent: u64,
    /// Frames dropped because the socket's send buffer was full (`send` returned
    /// `WouldBlock`).
    pub send_would_block: u64,
    /// Frames dropped for another error of the socket or of sealing.
    pub send_errors: u64,
    /// Records received from the peer and opened.
    pub records_received: u64,
    /// Frame bytes in those records.
    pub bytes_received: u64,
    /// Sending sessions this tunnel started, the first one included.
    pub sessions_started: u64,
    /// Peer sessions this tunnel followed, the first one included.
    pub peer_sessions: u64,
    /// Datagrams dropped, by reason.
    pub rejected: RejectCounts,
}

/// One uplink: a nonblocking UDP socket bound to `local` that exchanges sealed frames with
/// `peer` and nobody else.
pub struct Tunnel {
    name: String,
    socket: UdpSocket,
    local: SocketAddr,
    peer: SocketAddr,
    sealer: Sealer,
    opener: Opener,
    /// A record being sent.
    outgoing: Box<[u8]>,
    /// A datagram being received: one byte more than a record, to see oversize ones.
    incoming: Box<[u8]>,
    records_sent: u64,
    bytes_sent: u64,
    send_would_block: u64,
    send_errors: u64,
    wrong_peer: u64,
}

impl Tunnel {
    /// The tunnel of a validated uplink: loads its key, binds its socket.
    pub fn from_plan(plan: &bulkhead_config::UplinkPlan) -> Result<Self, TunnelError> {
        let key = load_key(&plan.key).map_err(|source| TunnelError::LoadKey {
            name: plan.name.clone(),
            source,
        })?;
        Self::bind(&plan.name, plan.local, plan.peer, &key)
    }

    /// Binds a nonblocking UDP socket to `local` for a tunnel to `peer`.
    pub fn bind(
        name: &str,
        local: SocketAddr,
        peer: SocketAddr,
        key: &[u8; KEY_LEN],
    ) -> Result<Self, TunnelError> {
        check_address(name, "local", local)?;
        let socket = UdpSocket::bind(local).map_err(|source| TunnelError::Bind {
            name: name.to_owned(),
            addr: local,
            source,
        })?;
        Self::from_socket(name, socket, peer, key)
    }

    /// A tunnel on a socket bound already (to a specific address and port: its address is
    /// part of the keys); makes it nonblocking.
    pub fn from_socket(
        name: &str,
        socket: UdpSocket,
        peer: SocketAddr,
        key: &[u8; KEY_LEN],
    ) -> Result<Self, TunnelError> {
        let socket_error = |source| TunnelError::Socket {
            name: name.to_owned(),
            source,
        };
        let local = socket.local_addr().map_err(socket_error)?;
        check_address(name, "local", local)?;
        check_address(name, "peer", peer)?;
        socket.set_nonblocking(true).map_err(socket_error)?;
        let outbound = Direction::new(local, peer);
        let sealer = Sealer::new(key, outbound).map_err(|source| TunnelError::StartSession {
            name: name.to_owned(),
            source,
        })?;
        Ok(Tunnel {
            name: name.to_owned(),
            socket,
            local,
            peer,
            sealer,
            opener: Opener::new(key, outbound.reversed()),
            outgoing: vec![0u8; MAX_RECORD].into_boxed_slice(),
            incoming: vec![0u8; MAX_RECORD + 1].into_boxed_slice(),
            records_sent: 0,
            bytes_sent: 0,
            send_would_block: 0,
            send_errors: 0,
            wrong_peer: 0,
        })
    }

    /// Seals `frame` (at most [`MAX_FRAME`] bytes, else `InvalidInput`) and sends it to the
    /// peer. A full send buffer is `WouldBlock`: the frame is dropped and counted, never
    /// waited for.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let len = match self.sealer.seal(frame, &mut self.outgoing) {
            Ok(len) => len,
            Err(err) => {
                self.send_errors += 1;
                return Err(err.into_io());
            }
        };
        match self.socket.send_to(&self.outgoing[..len], self.peer) {
            Ok(sent) if sent == len => {
                self.records_sent += 1;
                self.bytes_sent += frame.len() as u64;
                Ok(())
            }
            Ok(sent) => {
                self.send_errors += 1;
                Err(io::Error::other(format!(
                    "sent {sent} bytes of a {len}-byte datagram"
                )))
            }
            Err(err) => {
                if err.kind() == io::ErrorKind::WouldBlock {
                    self.send_would_block += 1;
                } else {
                    self.send_errors += 1;
                }
                Err(err)
            }
        }
    }

    /// The next valid frame from the peer, copied into `buf` (at least [`MAX_FRAME`] bytes,
    /// else `InvalidInput`); returns its length. Datagrams from other addresses and records
    /// that do not open are dropped and counted, and the next one read, up to
    /// [`MAX_DATAGRAMS_PER_RECV`] datagrams; `Ok(None)` when the socket has no more, or after
    /// that many (the socket may still be readable: level-triggered epoll reports it again).
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if buf.len() < MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "receive buffer of {} bytes is smaller than {MAX_FRAME}",
                    buf.len()
                ),
            ));
        }
        for _ in 0..MAX_DATAGRAMS_PER_RECV {
            let (len, source) = match self.socket.recv_from(&mut self.incoming) {
                Ok(received) => received,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                // An ICMP error for an earlier datagram, or a signal: nothing to read here.
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    continue
                }
                Err(err) => return Err(err),
            };
            if !same_endpoint(source, self.peer) {
                self.wrong_peer += 1;
                continue;
            }
            if let Ok(frame) = self.opener.open(&mut self.incoming[..len]) {
                buf[..frame.len()].copy_from_slice(frame);
                return Ok(Some(frame.len()));
            }
        }
        Ok(None)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the socket is bound to.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn counters(&self) -> TunnelCounters {
        let opened = self.opener.stats();
        let mut rejected = opened.rejected;
        rejected.wrong_peer = self.wrong_peer;
        TunnelCounters {
            records_sent: self.records_sent,
            bytes_sent: self.bytes_sent,
            send_would_block: self.send_would_block,
            send_errors: self.send_errors,
            records_received: opened.opened,
            bytes_received: opened.bytes,
            sessions_started: self.sealer.sessions_started(),
            peer_sessions: opened.sessions,
            rejected,
        }
    }
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("name", &self.name)
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("sealer", &self.sealer)
            .field("opener", &self.opener)
            .finish_non_exhaustive()
    }
}

impl AsRawFd for Tunnel {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for Tunnel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Refuses what cannot take part in the keys or cannot be reached.
fn check_address(name: &str, which: &'static str, addr: SocketAddr) -> Result<(), TunnelError> {
    let problem = if addr.ip().is_unspecified() {
        "is unspecified; name the specific address, which both hosts' keys are bound to"
    } else if addr.port() == 0 {
        "has port 0; name the port"
    } else if addr.ip().is_multicast() {
        "is a multicast address"
    } else {
        return Ok(());
    };
    Err(TunnelError::Address {
        name: name.to_owned(),
        which,
        addr,
        problem,
    })
}

/// Same address and port (IPv4-mapped IPv6 as IPv4; flow info and scope id ignored).
fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const KEY: [u8; 32] = [0x33; 32];

    fn socket() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").expect("bind loopback")
    }

    /// Two tunnels on loopback, each the other's peer.
    fn pair() -> (Tunnel, Tunnel) {
        let (a, b) = (socket(), socket());
        let (a_addr, b_addr) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
        (
            Tunnel::from_socket("a", a, b_addr, &KEY).expect("tunnel a"),
            Tunnel::from_socket("b", b, a_addr, &KEY).expect("tunnel b"),
        )
    }

    fn frame(i: usize) -> Vec<u8> {
        let len = 60 + (i * 37) % 1455;
        let mut frame: Vec<u8> = (0..len).map(|b| (b + i) as u8).collect();
        frame[..8].copy_from_slice(&(i as u64).to_be_bytes());
        frame
    }

    /// Receives until `count` frames have come, or a second has passed without one.
    fn receive(tunnel: &mut Tunnel, count: usize) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; MAX_FRAME];
        let mut frames = Vec::new();
        let mut last = Instant::now();
        while frames.len() < count && last.elapsed() < Duration::from_secs(1) {
            match tunnel.recv(&mut buf).expect("recv") {
                Some(len) => {
                    frames.push(buf[..len].to_vec());
                    last = Instant::now();
                }
                None => std::thread::sleep(Duration::from_micros(100)),
            }
        }
        frames
    }

    #[test]
    fn two_tunnels_on_loopback_exchange_10000_frames_each_way_without_loss() {
        let (mut a, mut b) = pair();
        // Batches far below the default receive buffer (~200 KiB), drained before the next:
        // loopback delivers a datagram into the receiver's queue within `send_to`.
        const BATCH: usize = 25;
        let mut to_b = Vec::new();
        let mut to_a = Vec::new();

        for batch in 0..10_000 / BATCH {
            for i in batch * BATCH..(batch + 1) * BATCH {
                a.send(&frame(i)).expect("a sends");
                b.send(&frame(i + 1)).expect("b sends");
            }
            to_b.extend(receive(&mut b, BATCH));
            to_a.extend(receive(&mut a, BATCH));
        }

        assert_eq!(to_b, (0..10_000).map(frame).collect::<Vec<_>>());
        assert_eq!(to_a, (1..10_001).map(frame).collect::<Vec<_>>());
        let (ca, cb) = (a.counters(), b.counters());
        assert_eq!((ca.records_sent, cb.records_received), (10_000, 10_000));
        assert_eq!(
            cb.bytes_received,
            (0..10_000).map(|i| frame(i).len() as u64).sum::<u64>()
        );
        assert_eq!((ca.rejected.total(), cb.rejected.total()), (0, 0));
        assert_eq!((ca.peer_sessions, cb.peer_sessions), (1, 1));
    }

    #[test]
    fn datagram_from_a_third_socket_is_rejected_as_wrong_peer() {
        let (mut a, b) = pair();
        let third = socket();
        // Even a record sealed properly for the direction b → a.
        let mut sealer = Sealer::new(&KEY, Direction::new(b.local(), a.local())).expect("sealer");
        let mut record = vec![0u8; 100];
        let len = sealer.seal(b"from elsewhere", &mut record).expect("sealed");
        third
            .send_to(&record[..len], a.local())
            .expect("third sends");
        let mut buf = vec![0u8; MAX_FRAME];

        let deadline = Instant::now() + Duration::from_secs(1);
        let mut received = None;
        while a.counters().rejected.wrong_peer == 0 && Instant::now() < deadline {
            received = received.or(a.recv(&mut buf).expect("recv"));
        }

        assert_eq!(received, None);
        assert_eq!(a.counters().rejected.wrong_peer, 1);
        assert_eq!(a.counters().records_received, 0);
    }

    #[test]
    fn replayed_datagrams_are_dropped_and_the_next_frame_returned() {
        let (a, mut b) = pair();
        // Records as a's sealer makes them, sent from a's address: the first one three times.
        let mut sealer = Sealer::new(&KEY, Direction::new(a.local(), b.local())).expect("sealer");
        let mut once = vec![0u8; 100];
        let mut next = vec![0u8; 100];
        let once_len = sealer.seal(b"once", &mut once).expect("sealed");
        let next_len = sealer.seal(b"next", &mut next).expect("sealed");
        for record in [
            &once[..once_len],
            &once[..once_len],
            &once[..once_len],
            &next[..next_len],
        ] {
            a.socket.send_to(record, b.local()).expect("send");
        }

        let frames = receive(&mut b, 2);

        assert_eq!(frames, [b"once".to_vec(), b"next".to_vec()]);
        assert_eq!(b.counters().rejected.replayed, 2);
    }

    #[test]
    fn frame_larger_than_the_maximum_is_invalid_input() {
        let (mut a, _b) = pair();

        let err = a.send(&vec![0u8; MAX_FRAME + 1]).expect_err("refused");

        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(a.counters().send_errors, 1);
    }

    #[test]
    fn small_receive_buffer_is_invalid_input() {
        let (_a, mut b) = pair();

        let err = b.recv(&mut [0u8; 1500]).expect_err("refused");

        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn empty_socket_receives_nothing_without_blocking() {
        let (_a, mut b) = pair();

        assert_eq!(b.recv(&mut vec![0u8; MAX_FRAME]).expect("recv"), None);
    }

    #[test]
    fn unspecified_local_address_is_refused() {
        let err = Tunnel::bind(
            "up",
            "0.0.0.0:47000".parse().expect("addr"),
            "192.0.2.2:47000".parse().expect("addr"),
            &KEY,
        )
        .expect_err("refused");

        assert!(
            matches!(err, TunnelError::Address { which: "local", .. }),
            "{err}"
        );
    }

    #[test]
    fn peer_port_zero_is_refused() {
        let err = Tunnel::from_socket("up", socket(), "127.0.0.1:0".parse().expect("addr"), &KEY)
            .expect_err("refused");

        assert!(
            matches!(err, TunnelError::Address { which: "peer", .. }),
            "{err}"
        );
    }

    #[test]
    fn tunnel_exposes_its_sockets_fd() {
        let (a, _b) = pair();

        assert_eq!(a.as_raw_fd(), a.socket.as_raw_fd());
        assert!(a.as_raw_fd() >= 0);
    }

    #[test]
    fn ipv4_mapped_peer_is_the_same_endpoint() {
        assert!(same_endpoint(
            "[::ffff:192.0.2.1]:5".parse().expect("addr"),
            "192.0.2.1:5".parse().expect("addr"),
        ));
        assert!(!same_endpoint(
            "192.0.2.1:6".parse().expect("addr"),
            "192.0.2.1:5".parse().expect("addr"),
        ));
    }
}
