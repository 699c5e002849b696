//! The record format and the key schedule of the tunnel (version 1, specified in the
//! [module docs](super)): the header layout, the session identity that orders a sender's
//! sessions, the direction label, and the derivation of a session key from the static key.
//!
//! Pure functions and plain data: no sockets, no state beyond the process-wide last session
//! start (which keeps the sessions this process starts strictly increasing).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hkdf::Hkdf;
use sha2::Sha256;

/// The record format's version, the first byte of every record.
pub const VERSION: u8 = 1;
/// Header bytes: version (1), session start (8), session random (16), counter (8).
pub const HEADER_LEN: usize = 33;
/// The Poly1305 tag at the end of every record (RFC 8439 section 2.8).
pub const TAG_LEN: usize = 16;
/// What sealing adds to a frame.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The largest Ethernet frame the tunnel carries (a jumbo frame, headers included).
pub const MAX_FRAME: usize = 9216;
/// The largest record: one UDP datagram, never fragmented by the tunnel.
pub const MAX_RECORD: usize = MAX_FRAME + OVERHEAD;
/// The largest UDP payload over IPv4: 65535 − 20 (IP header) − 8 (UDP header).
const MAX_UDP_PAYLOAD: usize = 65_507;
const _: () = assert!(
    MAX_RECORD <= MAX_UDP_PAYLOAD,
    "a record must fit one UDP datagram"
);

/// HKDF-Extract salt (RFC 5869 section 2.2).
const EXTRACT_SALT: &[u8] = b"bulkhead tunnel v1";
/// The first part of HKDF-Expand's info (RFC 5869 section 2.3).
const EXPAND_LABEL: &[u8] = b"bulkhead tunnel v1 session key";

const START: std::ops::Range<usize> = 1..9;
const RANDOM: std::ops::Range<usize> = 9..25;
const COUNTER: std::ops::Range<usize> = 25..33;

/// A sender's session: when it started and 128 random bits. Sessions are ordered by start,
/// then by the random bits; a receiver follows a new session only when it is greater than the
/// one it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId {
    /// The sender's wall clock (`CLOCK_REALTIME`) when the session started, in nanoseconds
    /// since the Unix epoch; strictly greater than every earlier session of the same process.
    pub start_ns: u64,
    /// From the operating system's random source (`getrandom`).
    pub random: [u8; 16],
}

/// The last `start_ns` handed out by [`SessionId::fresh`] in this process.
static LAST_START_NS: AtomicU64 = AtomicU64::new(0);

impl SessionId {
    /// A new session: the wall clock now, but strictly after every session this process
    /// started before (the clock may stand still or step back), and fresh random bits.
    pub(crate) fn fresh() -> Result<Self, getrandom::Error> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)?;
        let now = wall_clock_ns();
        let next = |last: u64| now.max(last.saturating_add(1));
        let previous = LAST_START_NS
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(next(last))
            })
            .unwrap_or_else(|last| last);
        let start_ns = next(previous);
        Ok(SessionId { start_ns, random })
    }
}

fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Which way records travel: from the sender's address to the receiver's, as the two
/// system descriptions write them (this host's `local`, the other's `peer`). Part of every
/// session key, so the two directions of an uplink, and uplinks that share a key by mistake,
/// never share a session key, and a record reflected back to its sender does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction {
    pub from: SocketAddr,
    pub to: SocketAddr,
}

impl Direction {
    pub fn new(from: SocketAddr, to: SocketAddr) -> Self {
        Direction { from, to }
    }

    /// The other way.
    pub fn reversed(self) -> Self {
        Direction {
            from: self.to,
            to: self.from,
        }
    }
}

/// `A(addr)` of the module docs: family tag, address, port (big-endian); IPv4-mapped IPv6
/// addresses as IPv4.
fn encode_addr(addr: SocketAddr, out: &mut [u8; 19]) -> &[u8] {
    let port = addr.port().to_be_bytes();
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&ip.octets());
            out[5..7].copy_from_slice(&port);
            &out[..7]
        }
        IpAddr::V6(ip) => {
            out[0] = 6;
            out[1..17].copy_from_slice(&ip.octets());
            out[17..19].copy_from_slice(&port);
            &out[..19]
        }
    }
}

/// The static key after HKDF-Extract: what session keys are expanded from.
#[derive(Clone)]
pub(crate) struct Kdf(Hkdf<Sha256>);

impl Kdf {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Kdf(Hkdf::new(Some(EXTRACT_SALT), key))
    }

    /// The ChaCha20-Poly1305 key of one session in one direction.
    pub(crate) fn session_key(&self, direction: &Direction, session: &SessionId) -> [u8; 32] {
        let (mut from, mut to) = ([0u8; 19], [0u8; 19]);
        let start = session.start_ns.to_be_bytes();
        let info = [
            EXPAND_LABEL,
            encode_addr(direction.from, &mut from),
            encode_addr(direction.to, &mut to),
            &start,
            &session.random,
        ];
        let mut key = [0u8; 32];
        self.0
            .expand_multi_info(&info, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }
}

impl std::fmt::Debug for Kdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kdf(..)")
    }
}

/// The authenticated header of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) session: SessionId,
    pub(crate) counter: u64,
}

impl Header {
    pub(crate) fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = VERSION;
        out[START].copy_from_slice(&self.session.start_ns.to_be_bytes());
        out[RANDOM].copy_from_slice(&self.session.random);
        out[COUNTER].copy_from_slice(&self.counter.to_be_bytes());
    }

    /// The header's fields (the version byte is the caller's to check).
    pub(crate) fn read(header: &[u8; HEADER_LEN]) -> Self {
        let mut start = [0u8; 8];
        let mut random = [0u8; 16];
        let mut counter = [0u8; 8];
        start.copy_from_slice(&header[START]);
        random.copy_from_slice(&header[RANDOM]);
        counter.copy_from_slice(&header[COUNTER]);
        Header {
            session: SessionId {
                start_ns: u64::from_be_bytes(start),
                random,
            },
            counter: u64::from_be_bytes(counter),
        }
    }

    /// The 96-bit ChaCha20-Poly1305 nonce: four zero bytes, then the counter (big-endian).
    pub(crate) fn nonce(&self) -> [u8; 12] {
        nonce(self.counter)
    }
}

pub(crate) fn nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    fn session(start_ns: u64, byte: u8) -> SessionId {
        SessionId {
            start_ns,
            random: [byte; 16],
        }
    }

    #[test]
    fn header_reads_back_what_was_written() {
        let header = Header {
            session: session(0x0102_0304_0506_0708, 0xab),
            counter: 0x1122_3344_5566_7788,
        };
        let mut bytes = [0u8; HEADER_LEN];

        header.write(&mut bytes);

        assert_eq!(bytes[0], VERSION);
        assert_eq!(bytes[1..9], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            bytes[25..33],
            [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
        assert_eq!(Header::read(&bytes), header);
    }

    #[test]
    fn nonce_is_four_zero_bytes_then_the_big_endian_counter() {
        assert_eq!(nonce(0x0102), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn sessions_order_by_start_then_random_bits() {
        assert!(session(2, 0) > session(1, 0xff));
        assert!(session(1, 2) > session(1, 1));
    }

    #[test]
    fn fresh_sessions_of_one_process_strictly_increase() {
        let mut previous = SessionId::fresh().expect("random");

        for _ in 0..10_000 {
            let next = SessionId::fresh().expect("random");
            assert!(next.start_ns > previous.start_ns);
            previous = next;
        }
    }

    #[test]
    fn the_two_directions_of_a_link_derive_different_keys() {
        let kdf = Kdf::new(&[7; 32]);
        let there = Direction::new(addr("192.0.2.1:47000"), addr("192.0.2.2:47000"));
        let s = session(1, 1);

        assert_ne!(
            kdf.session_key(&there, &s),
            kdf.session_key(&there.reversed(), &s)
        );
    }

    #[test]
    fn ipv4_mapped_addresses_derive_the_same_key_as_ipv4() {
        let kdf = Kdf::new(&[7; 32]);
        let v4 = Direction::new(addr("192.0.2.1:47000"), addr("192.0.2.2:47000"));
        let mapped = Direction::new(
            addr("[::ffff:192.0.2.1]:47000"),
            addr("[::ffff:192.0.2.2]:47000"),
        );
        let s = session(1, 1);

        assert_eq!(kdf.session_key(&v4, &s), kdf.session_key(&mapped, &s));
    }

    #[test]
    fn another_port_derives_another_key() {
        let kdf = Kdf::new(&[7; 32]);
        let a = Direction::new(addr("192.0.2.1:47000"), addr("192.0.2.2:47000"));
        let b = Direction::new(addr("192.0.2.1:47000"), addr("192.0.2.2:47001"));
        let s = session(1, 1);

        assert_ne!(kdf.session_key(&a, &s), kdf.session_key(&b, &s));
    }

    #[test]
    fn session_key_matches_an_independent_hkdf_computation() {
        // HKDF-SHA256 by hand (RFC 5869): PRK = HMAC(salt, IKM); OKM = HMAC(PRK, info || 1).
        use hkdf::hmac::{Hmac, Mac};
        let key = [0x42u8; 32];
        let direction = Direction::new(addr("10.0.0.1:1"), addr("[2001:db8::2]:258"));
        let s = session(0x0102_0304_0506_0708, 9);
        let mut prk_mac = Hmac::<Sha256>::new_from_slice(b"bulkhead tunnel v1").expect("hmac");
        prk_mac.update(&key);
        let prk = prk_mac.finalize().into_bytes();
        let mut okm_mac = Hmac::<Sha256>::new_from_slice(&prk).expect("hmac");
        okm_mac.update(b"bulkhead tunnel v1 session key");
        okm_mac.update(&[4, 10, 0, 0, 1, 0, 1]);
        okm_mac.update(&[
            6, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2,
        ]);
        okm_mac.update(&[1, 2, 3, 4, 5, 6, 7, 8]);
        okm_mac.update(&[9; 16]);
        okm_mac.update(&[1]);
        let expected: [u8; 32] = okm_mac.finalize().into_bytes().into();

        assert_eq!(Kdf::new(&key).session_key(&direction, &s), expected);
    }
}
