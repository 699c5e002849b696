//! The sending side of a tunnel: frames sealed into records, one session key per session,
//! the record counter as the nonce.
//!
//! Invariant: no (session key, nonce) pair is ever used twice. Within a session the counter
//! only grows and is consumed before the record is encrypted, whatever happens to the record
//! afterwards; the session ends before the counter could wrap. A new session (a new
//! [`Sealer`], or the end of one) has a new [`SessionId`], so a new key (see the
//! [module docs](super) for the argument across processes and restarts).
//!
//! Socket-free; runs on whichever thread sends to the uplink (the bridge's switching loop).

use std::io;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use super::record::{Direction, Header, Kdf, SessionId, HEADER_LEN, MAX_FRAME, OVERHEAD, TAG_LEN};

/// Records per session: counters `0..MAX_RECORDS_PER_SESSION`; the session ends before the
/// counter reaches `u64::MAX`, so it never wraps.
pub const MAX_RECORDS_PER_SESSION: u64 = u64::MAX;

/// Why a frame was not sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("frame of {len} bytes is larger than the largest the tunnel carries ({MAX_FRAME})")]
    FrameTooLarge { len: usize },
    #[error("record buffer of {len} bytes is too small for {needed}")]
    BufferTooSmall { len: usize, needed: usize },
    #[error("cannot draw a random session id")]
    Random(#[source] io::Error),
    #[error("the cipher refused the frame")]
    Cipher,
}

impl SealError {
    /// As the I/O error [`super::Tunnel::send`] returns.
    pub fn into_io(self) -> io::Error {
        let kind = match self {
            SealError::FrameTooLarge { .. } | SealError::BufferTooSmall { .. } => {
                io::ErrorKind::InvalidInput
            }
            SealError::Random(_) | SealError::Cipher => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}

fn random_error(err: getrandom::Error) -> SealError {
    SealError::Random(match err.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::other(err.to_string()),
    })
}

/// Seals frames for one direction of an uplink.
pub struct Sealer {
    kdf: Kdf,
    direction: Direction,
    session: SessionId,
    cipher: ChaCha20Poly1305,
    /// The counter of the next record; always below `limit`.
    next: u64,
    limit: u64,
    sealed: u64,
    sessions_started: u64,
}

impl Sealer {
    /// A sealer that starts its first session now (wall clock, random id).
    pub fn new(key: &[u8; 32], direction: Direction) -> Result<Self, SealError> {
        let session = SessionId::fresh().map_err(random_error)?;
        Ok(Self::starting(
            key,
            direction,
            session,
            0,
            MAX_RECORDS_PER_SESSION,
        ))
    }

    fn starting(
        key: &[u8; 32],
        direction: Direction,
        session: SessionId,
        next: u64,
        limit: u64,
    ) -> Self {
        let kdf = Kdf::new(key);
        let cipher = cipher(&kdf, &direction, &session);
        Sealer {
            kdf,
            direction,
            session,
            cipher,
            next,
            limit,
            sealed: 0,
            sessions_started: 1,
        }
    }

    /// Seals `frame` into `out` (at least `frame.len() + OVERHEAD` bytes); returns the
    /// record's length. Starts a new session first when this one has no counter left.
    pub fn seal(&mut self, frame: &[u8], out: &mut [u8]) -> Result<usize, SealError> {
        if frame.len() > MAX_FRAME {
            return Err(SealError::FrameTooLarge { len: frame.len() });
        }
        let len = frame.len() + OVERHEAD;
        let Some(record) = out.get_mut(..len) else {
            return Err(SealError::BufferTooSmall {
                len: out.len(),
                needed: len,
            });
        };
        if self.next >= self.limit {
            self.new_session()?;
        }
        let header = Header {
            session: self.session,
            counter: self.next,
        };
        // Consumed before use: whatever happens next, this counter is never sealed again.
        self.next += 1;
        let (head, rest) = record.split_at_mut(HEADER_LEN);
        let head: &mut [u8; HEADER_LEN] = head.try_into().map_err(|_| SealError::Cipher)?;
        header.write(head);
        let (body, tag) = rest.split_at_mut(frame.len());
        body.copy_from_slice(frame);
        let computed = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&header.nonce()), head, body)
            .map_err(|_| SealError::Cipher)?;
        debug_assert_eq!(tag.len(), TAG_LEN);
        tag.copy_from_slice(&computed);
        self.sealed += 1;
        Ok(len)
    }

    /// Ends the current session and starts a new one (newer than every earlier session of
    /// this process, with a new key).
    pub fn new_session(&mut self) -> Result<(), SealError> {
        let session = SessionId::fresh().map_err(random_error)?;
        self.cipher = cipher(&self.kdf, &self.direction, &session);
        self.session = session;
        self.next = 0;
        self.sessions_started += 1;
        Ok(())
    }

    /// The current session.
    pub fn session(&self) -> SessionId {
        self.session
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Records sealed.
    pub fn sealed(&self) -> u64 {
        self.sealed
    }

    /// Sessions started, the first one included.
    pub fn sessions_started(&self) -> u64 {
        self.sessions_started
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("direction", &self.direction)
            .field("session", &self.session)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

pub(crate) fn cipher(kdf: &Kdf, direction: &Direction, session: &SessionId) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(&kdf.session_key(direction, session)))
}

#[cfg(test)]
impl Sealer {
    /// A sealer in a chosen session, from a chosen counter, ending its sessions at `limit`.
    pub(crate) fn for_test(
        key: &[u8; 32],
        direction: Direction,
        session: SessionId,
        next: u64,
        limit: u64,
    ) -> Self {
        Self::starting(key, direction, session, next, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::Header;
    use super::*;

    fn direction() -> Direction {
        Direction::new(
            "192.0.2.1:47000".parse().expect("addr"),
            "192.0.2.2:47000".parse().expect("addr"),
        )
    }

    fn header_of(record: &[u8]) -> Header {
        Header::read(record[..HEADER_LEN].try_into().expect("header"))
    }

    #[test]
    fn record_is_header_then_ciphertext_then_tag() {
        let mut sealer = Sealer::new(&[1; 32], direction()).expect("sealer");
        let mut out = [0u8; 100];

        let len = sealer.seal(b"hello", &mut out).expect("sealed");

        assert_eq!(len, 5 + OVERHEAD);
        assert_eq!(out[0], 1);
        assert_eq!(header_of(&out).session, sealer.session());
        assert_ne!(&out[HEADER_LEN..HEADER_LEN + 5], b"hello");
    }

    #[test]
    fn counters_count_up_from_zero() {
        let mut sealer = Sealer::new(&[1; 32], direction()).expect("sealer");
        let mut out = [0u8; 100];
        let mut counters = Vec::new();

        for _ in 0..3 {
            sealer.seal(b"x", &mut out).expect("sealed");
            counters.push(header_of(&out).counter);
        }

        assert_eq!(counters, [0, 1, 2]);
    }

    #[test]
    fn session_ends_before_its_counter_would_pass_the_limit() {
        let session = SessionId {
            start_ns: 5,
            random: [0; 16],
        };
        let mut sealer = Sealer::for_test(&[1; 32], direction(), session, u64::MAX - 2, u64::MAX);
        let mut out = [0u8; 100];
        let mut headers = Vec::new();

        for _ in 0..3 {
            sealer.seal(b"x", &mut out).expect("sealed");
            headers.push(header_of(&out));
        }

        assert_eq!(headers[0].counter, u64::MAX - 2);
        assert_eq!(headers[1].counter, u64::MAX - 1);
        assert_eq!(headers[2].counter, 0);
        assert!(headers[2].session > headers[1].session);
        assert_eq!(sealer.sessions_started(), 2);
    }

    #[test]
    fn frame_larger_than_the_maximum_is_refused() {
        let mut sealer = Sealer::new(&[1; 32], direction()).expect("sealer");
        let frame = vec![0u8; MAX_FRAME + 1];
        let mut out = vec![0u8; MAX_FRAME + 1 + OVERHEAD];

        let err = sealer.seal(&frame, &mut out).expect_err("refused");

        assert!(matches!(err, SealError::FrameTooLarge { .. }));
        assert_eq!(err.into_io().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn buffer_too_small_is_refused_without_using_a_counter() {
        let mut sealer = Sealer::new(&[1; 32], direction()).expect("sealer");
        let mut small = [0u8; 10];
        let mut out = [0u8; 100];

        let err = sealer.seal(b"hello", &mut small).expect_err("refused");
        sealer.seal(b"hello", &mut out).expect("sealed");

        assert!(matches!(err, SealError::BufferTooSmall { needed: 54, .. }));
        assert_eq!(header_of(&out).counter, 0);
    }
}
