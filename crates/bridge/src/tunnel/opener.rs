//! The receiving side of a tunnel: records checked and opened into frames, the peer's current
//! session followed, replays refused.
//!
//! A record is checked in this order, cheapest first, and refused at the first failure:
//! length (at least header and tag: [`OpenError::Truncated`]; at most [`MAX_RECORD`]:
//! [`OpenError::Oversize`]), version ([`OpenError::BadVersion`]), session (older than the one
//! followed: [`OpenError::OldSession`]), replay window for the current session
//! ([`OpenError::Replayed`], [`OpenError::TooOld`]), then the tag ([`OpenError::BadTag`]).
//! Nothing changes state until the tag has verified: only an authentic record moves the
//! window or makes the opener follow a newer session, so forged records cannot desynchronise
//! it.
//!
//! The replay window holds the last [`REPLAY_WINDOW`] counters of the current session (a
//! bitmap of 33 words of 64 bits, one more word than the window spans, after RFC 6479
//! section 2): a counter above the newest is accepted and slides the window; one inside the
//! window is accepted once; one at or below `newest - REPLAY_WINDOW` is too old.
//!
//! Socket-free; runs on the thread that reads the uplink's socket (the bridge's loop).

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};

use super::record::{Direction, Header, Kdf, SessionId, HEADER_LEN, MAX_RECORD, TAG_LEN, VERSION};
use super::sealer::cipher;

/// Counters of the current session that are remembered: a record this far or farther below
/// the newest one is refused as too old.
pub const REPLAY_WINDOW: u64 = 2048;
/// Bitmap words: one more than the window spans, so that sliding it never clears a bit that
/// is still inside.
const WINDOW_WORDS: usize = (REPLAY_WINDOW / 64) as usize + 1;

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("record of {len} bytes is shorter than a header and tag")]
    Truncated { len: usize },
    #[error("record of {len} bytes is longer than the largest record ({MAX_RECORD} bytes)")]
    Oversize { len: usize },
    #[error("record has version {version}; this tunnel speaks version {VERSION}")]
    BadVersion { version: u8 },
    #[error("record failed authentication")]
    BadTag,
    #[error("record {counter} of the current session was received already")]
    Replayed { counter: u64 },
    #[error("record {counter} is below the replay window (newest record {newest})")]
    TooOld { counter: u64, newest: u64 },
    #[error("record belongs to a session older than the peer's current one")]
    OldSession,
}

/// What a record was refused for, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    Truncated,
    Oversize,
    BadVersion,
    BadTag,
    Replayed,
    TooOld,
    OldSession,
    /// A datagram from another address than the uplink's peer (counted by the
    /// [`super::Tunnel`]; the opener never sees addresses).
    WrongPeer,
}

impl OpenError {
    pub fn reason(&self) -> RejectReason {
        match self {
            OpenError::Truncated { .. } => RejectReason::Truncated,
            OpenError::Oversize { .. } => RejectReason::Oversize,
            OpenError::BadVersion { .. } => RejectReason::BadVersion,
            OpenError::BadTag => RejectReason::BadTag,
            OpenError::Replayed { .. } => RejectReason::Replayed,
            OpenError::TooOld { .. } => RejectReason::TooOld,
            OpenError::OldSession => RejectReason::OldSession,
        }
    }
}

/// Records refused, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounts {
    /// Shorter than header and tag (49 bytes).
    pub truncated: u64,
    /// Longer than [`MAX_RECORD`].
    pub oversize: u64,
    /// First byte not [`VERSION`].
    pub bad_version: u64,
    /// The Poly1305 tag did not verify: tampered, forged, or sealed with another key or for
    /// the other direction.
    pub bad_tag: u64,
    /// A counter of the current session received before.
    pub replayed: u64,
    /// A counter of the current session below the replay window.
    pub too_old: u64,
    /// A session older than the one followed (e.g. recorded before the peer restarted).
    pub old_session: u64,
    /// A datagram from another address than the peer's.
    pub wrong_peer: u64,
}

impl RejectCounts {
    pub fn count(&mut self, reason: RejectReason) {
        let field = match reason {
            RejectReason::Truncated => &mut self.truncated,
            RejectReason::Oversize => &mut self.oversize,
            RejectReason::BadVersion => &mut self.bad_version,
            RejectReason::BadTag => &mut self.bad_tag,
            RejectReason::Replayed => &mut self.replayed,
            RejectReason::TooOld => &mut self.too_old,
            RejectReason::OldSession => &mut self.old_session,
            RejectReason::WrongPeer => &mut self.wrong_peer,
        };
        *field += 1;
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.truncated
            + self.oversize
            + self.bad_version
            + self.bad_tag
            + self.replayed
            + self.too_old
            + self.old_session
            + self.wrong_peer
    }
}

/// What an opener has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenerStats {
    /// Records opened.
    pub opened: u64,
    /// Frame bytes opened.
    pub bytes: u64,
    /// Peer sessions followed (the first one included).
    pub sessions: u64,
    pub rejected: RejectCounts,
}

/// Opens records of one direction of an uplink.
pub struct Opener {
    kdf: Kdf,
    direction: Direction,
    current: Option<PeerSession>,
    stats: OpenerStats,
}

struct PeerSession {
    id: SessionId,
    cipher: ChaCha20Poly1305,
    window: ReplayWindow,
}

impl Opener {
    /// An opener that follows no session yet: the first authentic record starts one.
    pub fn new(key: &[u8; 32], direction: Direction) -> Self {
        Opener {
            kdf: Kdf::new(key),
            direction,
            current: None,
            stats: OpenerStats::default(),
        }
    }

    /// Checks `record` and decrypts it in place; returns the frame (a part of `record`).
    /// Refusals are counted in [`Opener::stats`].
    pub fn open<'r>(&mut self, record: &'r mut [u8]) -> Result<&'r [u8], OpenError> {
        match self.try_open(record) {
            Ok(frame) => {
                self.stats.opened += 1;
                self.stats.bytes += frame.len() as u64;
                Ok(frame)
            }
            Err(err) => {
                self.stats.rejected.count(err.reason());
                Err(err)
            }
        }
    }

    fn try_open<'r>(&mut self, record: &'r mut [u8]) -> Result<&'r [u8], OpenError> {
        let len = record.len();
        if len < HEADER_LEN + TAG_LEN {
            return Err(OpenError::Truncated { len });
        }
        if len > MAX_RECORD {
            return Err(OpenError::Oversize { len });
        }
        if record[0] != VERSION {
            return Err(OpenError::BadVersion { version: record[0] });
        }
        let (head, rest) = record.split_at_mut(HEADER_LEN);
        let head: &[u8; HEADER_LEN] = (&*head)
            .try_into()
            .map_err(|_| OpenError::Truncated { len })?;
        let header = Header::read(head);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let tag = Tag::from_slice(tag);
        let nonce = header.nonce();
        match &mut self.current {
            Some(current) if header.session == current.id => {
                current.window.check(header.counter)?;
                current
                    .cipher
                    .decrypt_in_place_detached(Nonce::from_slice(&nonce), head, body, tag)
                    .map_err(|_| OpenError::BadTag)?;
                current.window.accept(header.counter);
            }
            Some(current) if header.session < current.id => return Err(OpenError::OldSession),
            _ => {
                // No session yet, or a newer one: followed only once a record of it is
                // authentic.
                let cipher = cipher(&self.kdf, &self.direction, &header.session);
                cipher
                    .decrypt_in_place_detached(Nonce::from_slice(&nonce), head, body, tag)
                    .map_err(|_| OpenError::BadTag)?;
                self.current = Some(PeerSession {
                    id: header.session,
                    cipher,
                    window: ReplayWindow::starting_at(header.counter),
                });
                self.stats.sessions += 1;
            }
        }
        Ok(body)
    }

    /// The peer session followed, if any.
    pub fn session(&self) -> Option<SessionId> {
        self.current.as_ref().map(|s| s.id)
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn stats(&self) -> &OpenerStats {
        &self.stats
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("direction", &self.direction)
            .field("session", &self.session())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The counters of one session received so far, as far back as the window reaches.
struct ReplayWindow {
    newest: u64,
    /// Bit `c % 64` of word `(c / 64) % WINDOW_WORDS` is set when counter `c` was accepted.
    bits: [u64; WINDOW_WORDS],
}

impl ReplayWindow {
    fn starting_at(counter: u64) -> Self {
        let mut window = ReplayWindow {
            newest: counter,
            bits: [0; WINDOW_WORDS],
        };
        window.set(counter);
        window
    }

    fn check(&self, counter: u64) -> Result<(), OpenError> {
        if counter > self.newest {
            return Ok(());
        }
        if self.newest - counter >= REPLAY_WINDOW {
            return Err(OpenError::TooOld {
                counter,
                newest: self.newest,
            });
        }
        if self.is_set(counter) {
            return Err(OpenError::Replayed { counter });
        }
        Ok(())
    }

    /// Records `counter` (which [`Self::check`] passed) as received.
    fn accept(&mut self, counter: u64) {
        if counter > self.newest {
            let old_word = self.newest / 64;
            let new_word = counter / 64;
            if new_word - old_word >= WINDOW_WORDS as u64 {
                self.bits = [0; WINDOW_WORDS];
            } else {
                // Words past the old newest's: they hold only counters that fell out of the
                // window (or none received yet).
                for word in old_word + 1..=new_word {
                    self.bits[word_index(word)] = 0;
                }
            }
            self.newest = counter;
        }
        self.set(counter);
    }

    fn set(&mut self, counter: u64) {
        self.bits[word_index(counter / 64)] |= 1 << (counter % 64);
    }

    fn is_set(&self, counter: u64) -> bool {
        self.bits[word_index(counter / 64)] & (1 << (counter % 64)) != 0
    }
}

fn word_index(word: u64) -> usize {
    (word % WINDOW_WORDS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::super::record::OVERHEAD;
    use super::super::sealer::Sealer;
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const KEY: [u8; 32] = [0x5a; 32];

    fn there() -> Direction {
        Direction::new(
            "192.0.2.1:47000".parse().expect("addr"),
            "192.0.2.2:47000".parse().expect("addr"),
        )
    }

    fn session(start_ns: u64, byte: u8) -> SessionId {
        SessionId {
            start_ns,
            random: [byte; 16],
        }
    }

    fn seal(sealer: &mut Sealer, frame: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; frame.len() + OVERHEAD];
        let len = sealer.seal(frame, &mut out).expect("sealed");
        out.truncate(len);
        out
    }

    fn open(opener: &mut Opener, record: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut copy = record.to_vec();
        opener.open(&mut copy).map(<[u8]>::to_vec)
    }

    fn frame(i: usize) -> Vec<u8> {
        (0..64 + i % 200).map(|b| (b ^ i) as u8).collect()
    }

    fn pair() -> (Sealer, Opener) {
        (
            Sealer::new(&KEY, there()).expect("sealer"),
            Opener::new(&KEY, there()),
        )
    }

    #[test]
    fn sealed_frame_opens_to_the_same_frame() {
        let (mut sealer, mut opener) = pair();

        let record = seal(&mut sealer, b"an ethernet frame");

        assert_eq!(
            open(&mut opener, &record).expect("opened"),
            b"an ethernet frame"
        );
        assert_eq!(opener.stats().opened, 1);
        assert_eq!(opener.stats().bytes, 17);
    }

    #[test]
    fn empty_and_largest_frames_round_trip() {
        let (mut sealer, mut opener) = pair();
        let largest = vec![0xeeu8; super::super::record::MAX_FRAME];

        let empty = seal(&mut sealer, b"");
        let full = seal(&mut sealer, &largest);

        assert_eq!(open(&mut opener, &empty).expect("opened"), b"");
        assert_eq!(open(&mut opener, &full).expect("opened"), largest);
    }

    #[test]
    fn every_single_bit_flip_anywhere_in_a_record_is_rejected() {
        let (mut sealer, mut opener) = pair();
        let record = seal(&mut sealer, &frame(7));
        let mut rejected = 0;

        for bit in 0..record.len() * 8 {
            let mut flipped = record.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            rejected += usize::from(open(&mut opener, &flipped).is_err());
        }

        assert_eq!(rejected, record.len() * 8);
        assert_eq!(opener.stats().opened, 0);
        assert_eq!(
            open(&mut opener, &record).expect("original still opens"),
            frame(7)
        );
    }

    #[test]
    fn every_bit_flip_of_a_record_in_a_followed_session_is_rejected() {
        let (mut sealer, mut opener) = pair();
        let first = seal(&mut sealer, &frame(1));
        let record = seal(&mut sealer, &frame(2));
        open(&mut opener, &first).expect("session followed");
        let mut rejected = 0;

        for bit in 0..record.len() * 8 {
            let mut flipped = record.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            rejected += usize::from(open(&mut opener, &flipped).is_err());
        }

        assert_eq!(rejected, record.len() * 8);
        assert_eq!(
            open(&mut opener, &record).expect("original still opens"),
            frame(2)
        );
    }

    #[test]
    fn every_truncation_of_a_record_is_rejected() {
        let (mut sealer, mut opener) = pair();
        let record = seal(&mut sealer, &frame(3));
        let mut rejected = 0;

        for len in 0..record.len() {
            rejected += usize::from(open(&mut opener, &record[..len]).is_err());
        }

        assert_eq!(rejected, record.len());
        assert_eq!(
            opener.stats().rejected.truncated,
            HEADER_LEN as u64 + TAG_LEN as u64
        );
        assert_eq!(
            open(&mut opener, &record).expect("original still opens"),
            frame(3)
        );
    }

    #[test]
    fn record_with_a_byte_appended_is_rejected() {
        let (mut sealer, mut opener) = pair();
        let mut record = seal(&mut sealer, &frame(3));
        record.push(0);

        assert_eq!(open(&mut opener, &record), Err(OpenError::BadTag));
    }

    #[test]
    fn another_version_is_rejected_as_bad_version() {
        let (mut sealer, mut opener) = pair();
        let mut record = seal(&mut sealer, &frame(3));
        record[0] = 2;

        assert_eq!(
            open(&mut opener, &record),
            Err(OpenError::BadVersion { version: 2 })
        );
    }

    #[test]
    fn record_longer_than_the_largest_is_rejected_as_oversize() {
        let mut opener = Opener::new(&KEY, there());
        let mut record = vec![0u8; MAX_RECORD + 1];
        record[0] = VERSION;

        assert_eq!(
            open(&mut opener, &record),
            Err(OpenError::Oversize {
                len: MAX_RECORD + 1
            })
        );
    }

    #[test]
    fn replay_of_each_of_1000_records_is_rejected() {
        let (mut sealer, mut opener) = pair();
        let records: Vec<Vec<u8>> = (0..1000).map(|i| seal(&mut sealer, &frame(i))).collect();
        for (i, record) in records.iter().enumerate() {
            assert_eq!(open(&mut opener, record).expect("first time"), frame(i));
        }

        let replays_rejected = records
            .iter()
            .filter(|record| {
                open(&mut opener, record)
                    == Err(OpenError::Replayed {
                        counter: header(record).counter,
                    })
            })
            .count();

        assert_eq!(replays_rejected, 1000);
        assert_eq!(opener.stats().rejected.replayed, 1000);
        assert_eq!(opener.stats().opened, 1000);
    }

    fn header(record: &[u8]) -> Header {
        Header::read(record[..HEADER_LEN].try_into().expect("header"))
    }

    #[test]
    fn out_of_order_records_within_the_window_are_accepted_once() {
        let (mut sealer, mut opener) = pair();
        let records: Vec<Vec<u8>> = (0..REPLAY_WINDOW as usize)
            .map(|i| seal(&mut sealer, &frame(i)))
            .collect();

        let first_pass = records
            .iter()
            .rev()
            .filter(|record| open(&mut opener, record).is_ok())
            .count();
        let second_pass = records
            .iter()
            .filter(|record| open(&mut opener, record).is_ok())
            .count();

        assert_eq!(first_pass, REPLAY_WINDOW as usize);
        assert_eq!(second_pass, 0);
    }

    #[test]
    fn record_just_below_the_window_is_too_old_and_the_lowest_inside_is_accepted() {
        let (mut sealer, mut opener) = pair();
        let records: Vec<Vec<u8>> = (0..=REPLAY_WINDOW as usize)
            .map(|i| seal(&mut sealer, &frame(i)))
            .collect();
        open(&mut opener, &records[REPLAY_WINDOW as usize]).expect("newest");

        let oldest = open(&mut opener, &records[0]);
        let lowest_inside = open(&mut opener, &records[1]);

        assert_eq!(
            oldest,
            Err(OpenError::TooOld {
                counter: 0,
                newest: REPLAY_WINDOW
            })
        );
        assert_eq!(lowest_inside.expect("inside the window"), frame(1));
        assert_eq!(opener.stats().rejected.too_old, 1);
    }

    #[test]
    fn window_slides_over_gaps_without_forgetting_or_inventing_counters() {
        let (mut sealer, mut opener) = pair();
        // 0..=4998: the newest, 4998, is a multiple of 3.
        let records: Vec<Vec<u8>> = (0..4999).map(|i| seal(&mut sealer, &frame(i))).collect();
        // Every third record, then the skipped ones: accepted exactly when inside the window.
        for record in records.iter().step_by(3) {
            open(&mut opener, record).expect("in order with gaps");
        }

        let late: Vec<bool> = (0..4999)
            .filter(|i| i % 3 != 0)
            .map(|i| open(&mut opener, &records[i]).is_ok())
            .collect();
        let expected: Vec<bool> = (0..4999)
            .filter(|i| i % 3 != 0)
            .map(|i| 4998 - i < REPLAY_WINDOW as usize)
            .collect();

        assert_eq!(late, expected);
    }

    #[test]
    fn replay_of_every_record_of_a_stream_longer_than_the_window_is_rejected() {
        let (mut sealer, mut opener) = pair();
        let records: Vec<Vec<u8>> = (0..2700).map(|i| seal(&mut sealer, &frame(i))).collect();
        for record in &records {
            open(&mut opener, record).expect("first time");
        }

        let reopened = records
            .iter()
            .filter(|record| open(&mut opener, record).is_ok())
            .count();

        assert_eq!(reopened, 0);
        let rejected = opener.stats().rejected;
        assert_eq!(
            (rejected.replayed, rejected.too_old),
            (REPLAY_WINDOW, 2700 - REPLAY_WINDOW)
        );
    }

    #[test]
    fn record_skipped_after_the_bitmap_wrapped_is_accepted_late() {
        let (mut sealer, mut opener) = pair();
        let records: Vec<Vec<u8>> = (0..3000).map(|i| seal(&mut sealer, &frame(i))).collect();
        for (i, record) in records.iter().enumerate().filter(|(i, _)| *i != 2990) {
            open(&mut opener, record).unwrap_or_else(|e| panic!("record {i}: {e}"));
        }

        let late = open(&mut opener, &records[2990]);

        assert_eq!(late.expect("skipped record inside the window"), frame(2990));
    }

    #[test]
    fn jump_far_ahead_clears_the_whole_window() {
        let session = session(10, 1);
        let mut sealer = Sealer::for_test(&KEY, there(), session, 0, u64::MAX);
        let mut opener = Opener::new(&KEY, there());
        let early = seal(&mut sealer, &frame(0));
        let mut far = Sealer::for_test(&KEY, there(), session, 1_000_000, u64::MAX);
        let late = seal(&mut far, &frame(1));
        let later = seal(&mut far, &frame(2));

        open(&mut opener, &early).expect("early");
        open(&mut opener, &later).expect("later");

        assert_eq!(
            open(&mut opener, &late).expect("inside the window"),
            frame(1)
        );
        assert!(matches!(
            open(&mut opener, &early),
            Err(OpenError::TooOld { .. })
        ));
    }

    #[test]
    fn restarting_the_sender_1000_times_never_repeats_a_key_and_nonce() {
        let kdf = Kdf::new(&KEY);
        let mut opener = Opener::new(&KEY, there());
        let mut keys = HashSet::new();
        let mut pairs = HashSet::new();
        let mut opened = 0;

        for restart in 0..1000 {
            let mut sealer = Sealer::new(&KEY, there()).expect("sealer");
            keys.insert(kdf.session_key(&there(), &sealer.session()));
            for i in 0..3 {
                let record = seal(&mut sealer, &frame(restart + i));
                let h = header(&record);
                pairs.insert((kdf.session_key(&there(), &h.session), h.nonce()));
                opened += usize::from(open(&mut opener, &record) == Ok(frame(restart + i)));
            }
        }

        assert_eq!(keys.len(), 1000);
        assert_eq!(pairs.len(), 3000);
        assert_eq!(opened, 3000);
        assert_eq!(opener.stats().sessions, 1000);
    }

    #[test]
    fn old_sessions_records_replayed_after_a_newer_session_began_are_rejected() {
        let mut old = Sealer::new(&KEY, there()).expect("sealer");
        let mut new = Sealer::new(&KEY, there()).expect("sealer");
        let mut opener = Opener::new(&KEY, there());
        let old_records: Vec<Vec<u8>> = (0..10).map(|i| seal(&mut old, &frame(i))).collect();
        open(&mut opener, &old_records[0]).expect("old session followed");
        open(&mut opener, &seal(&mut new, &frame(99))).expect("new session followed");

        let rejected = old_records
            .iter()
            .filter(|record| open(&mut opener, record) == Err(OpenError::OldSession))
            .count();

        assert_eq!(rejected, 10);
        assert_eq!(opener.session(), Some(new.session()));
        assert_eq!(
            open(&mut opener, &seal(&mut new, &frame(100))).expect("new session"),
            frame(100)
        );
    }

    #[test]
    fn session_with_the_same_start_and_greater_random_bits_is_newer() {
        let mut low = Sealer::for_test(&KEY, there(), session(50, 1), 0, u64::MAX);
        let mut high = Sealer::for_test(&KEY, there(), session(50, 2), 0, u64::MAX);
        let mut opener = Opener::new(&KEY, there());
        let low_record = seal(&mut low, &frame(0));

        open(&mut opener, &seal(&mut high, &frame(1))).expect("high");

        assert_eq!(open(&mut opener, &low_record), Err(OpenError::OldSession));
    }

    #[test]
    fn forged_newer_session_does_not_displace_the_current_one() {
        let (mut sealer, mut opener) = pair();
        open(&mut opener, &seal(&mut sealer, &frame(0))).expect("followed");
        let mut forged = seal(&mut sealer, &frame(1));
        forged[1] = 0xff; // A session start far in the future.

        let result = open(&mut opener, &forged);

        assert_eq!(result, Err(OpenError::BadTag));
        assert_eq!(opener.session(), Some(sealer.session()));
        assert_eq!(
            open(&mut opener, &seal(&mut sealer, &frame(2))).expect("still followed"),
            frame(2)
        );
    }

    #[test]
    fn record_reflected_back_to_its_sender_is_rejected() {
        let mut sealer = Sealer::new(&KEY, there()).expect("sealer");
        // The sender's own opener receives the other way.
        let mut own_opener = Opener::new(&KEY, there().reversed());

        let record = seal(&mut sealer, &frame(0));

        assert_eq!(open(&mut own_opener, &record), Err(OpenError::BadTag));
    }

    #[test]
    fn the_two_directions_never_share_a_key() {
        let kdf = Kdf::new(&KEY);
        let back = there().reversed();
        let mut shared = 0;

        for _ in 0..100 {
            let a = Sealer::new(&KEY, there()).expect("sealer");
            let b = Sealer::new(&KEY, back).expect("sealer");
            let a_keys = [a.session(), b.session()].map(|s| kdf.session_key(&there(), &s));
            let b_keys = [a.session(), b.session()].map(|s| kdf.session_key(&back, &s));
            shared += a_keys.iter().filter(|k| b_keys.contains(k)).count();
        }

        assert_eq!(shared, 0);
    }

    #[test]
    fn record_sealed_with_another_key_is_rejected() {
        let mut sealer = Sealer::new(&[1; 32], there()).expect("sealer");
        let mut opener = Opener::new(&[2; 32], there());

        let record = seal(&mut sealer, &frame(0));

        assert_eq!(open(&mut opener, &record), Err(OpenError::BadTag));
    }

    #[test]
    fn receiver_follows_a_senders_own_new_session() {
        let (mut sealer, mut opener) = pair();
        let before = seal(&mut sealer, &frame(0));
        open(&mut opener, &before).expect("first session");
        sealer.new_session().expect("new session");

        let after = seal(&mut sealer, &frame(1));

        assert_eq!(open(&mut opener, &after).expect("second session"), frame(1));
        assert_eq!(open(&mut opener, &before), Err(OpenError::OldSession));
        assert_eq!(opener.stats().sessions, 2);
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let (mut sealer, mut opener) = pair();
        let record = seal(&mut sealer, &frame(0));
        let mut bad_version = record.clone();
        bad_version[0] = 9;
        let mut bad_tag = record.clone();
        bad_tag[HEADER_LEN] ^= 1;

        let _ = open(&mut opener, &record[..5]);
        let _ = open(&mut opener, &bad_version);
        let _ = open(&mut opener, &bad_tag);
        let _ = open(&mut opener, &record);
        let _ = open(&mut opener, &record);

        let rejected = opener.stats().rejected;
        assert_eq!(
            (
                rejected.truncated,
                rejected.bad_version,
                rejected.bad_tag,
                rejected.replayed
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(rejected.total(), 4);
    }

    proptest! {
        #[test]
        fn random_byte_strings_never_panic_the_opener(bytes in proptest::collection::vec(any::<u8>(), 0..MAX_RECORD + 10)) {
            let mut opener = Opener::new(&KEY, there());

            let result = open(&mut opener, &bytes);

            prop_assert!(result.is_err());
        }

        #[test]
        fn random_records_with_a_valid_version_never_open(
            tail in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let (mut sealer, mut opener) = pair();
            open(&mut opener, &seal(&mut sealer, b"follow a session")).expect("followed");
            let mut record = vec![VERSION];
            record.extend_from_slice(&tail);

            prop_assert!(open(&mut opener, &record).is_err());
        }

        #[test]
        fn records_in_the_current_session_with_random_bodies_never_open(
            counter in any::<u64>(),
            body in proptest::collection::vec(any::<u8>(), TAG_LEN..600),
        ) {
            let (mut sealer, mut opener) = pair();
            open(&mut opener, &seal(&mut sealer, b"follow a session")).expect("followed");
            let mut head = [0u8; HEADER_LEN];
            Header { session: sealer.session(), counter }.write(&mut head);
            let mut record = head.to_vec();
            record.extend_from_slice(&body);

            prop_assert!(open(&mut opener, &record).is_err());
        }

        #[test]
        fn any_frame_round_trips(frame in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let (mut sealer, mut opener) = pair();

            let record = seal(&mut sealer, &frame);

            prop_assert_eq!(record.len(), frame.len() + OVERHEAD);
            prop_assert_eq!(open(&mut opener, &record), Ok(frame));
        }
    }
}
