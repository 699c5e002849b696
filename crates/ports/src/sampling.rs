//! The sampling channel: one writer, any number of readers, the latest message.
//!
//! Two slots, each a seqlock (`seq` odd while it is written). The writer fills the slot the
//! last write did not use, then publishes the write's number in `published`; a reader takes
//! the slot `published` names, copies it, and keeps the copy only if `seq` did not move
//! meanwhile. With two slots a reader is disturbed only by a writer that writes twice during
//! one copy; it then tries again, a bounded number of times ([`READ_ATTEMPTS`]).

use std::path::Path;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use vm_memory::{Bytes, VolatileMemory};

use crate::layout::{ChannelKind, Layout, Mapped, OpenError, SAMPLING_SLOT_HEADER, SOURCE_INDEX};
use crate::Anomalies;

/// Copies a reader tries before it reports the writer as too busy.
pub const READ_ATTEMPTS: usize = 16;

/// The writing end of a sampling channel (the source partition's monitor).
pub struct SamplingWriter {
    map: Mapped,
}

/// A reading end of a sampling channel (a destination partition's monitor).
pub struct SamplingReader {
    map: Mapped,
    anomalies: Anomalies,
}

/// A message read from a sampling channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampled {
    /// Its length; the bytes are at the front of the caller's buffer.
    pub len: usize,
    /// When it was written (`CLOCK_MONOTONIC`, ns).
    pub stamp_ns: u64,
}

/// Why a read found no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("no message was ever written")]
    Empty,
    #[error("the writer changed the message during every attempt to read it")]
    Busy,
    #[error("the message in the channel is malformed")]
    Malformed,
}

fn sampling(max_message_bytes: u32) -> Layout {
    Layout {
        kind: ChannelKind::Sampling,
        max_message_bytes,
        depth: 1,
    }
}

impl SamplingWriter {
    /// Opens the channel file at `path` as its writer.
    pub fn open(path: &Path, max_message_bytes: u32) -> Result<Self, OpenError> {
        let map = Mapped::open(path, sampling(max_message_bytes), true, false)?;
        Ok(SamplingWriter { map })
    }

    /// Replaces the message with `message` (1..=the largest bytes: callers check), stamped
    /// `stamp_ns`. Callers serialise writes to one channel.
    pub fn write(&self, message: &[u8], stamp_ns: u64) {
        let area = self.map.source.as_volatile_slice();
        let Ok(published) = area.get_atomic_ref::<AtomicU64>(SOURCE_INDEX) else {
            return;
        };
        let number = published.load(Ordering::Relaxed).wrapping_add(1);
        let base = self.map.layout.slot((number % 2) as usize);
        let Ok(seq) = area.get_atomic_ref::<AtomicU64>(base) else {
            return;
        };
        let len = message
            .len()
            .min(self.map.layout.max_message_bytes as usize);
        let before = seq.load(Ordering::Relaxed);
        // Odd: a reader that sees it (or sees it change) drops its copy.
        seq.store(before | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let _ = area.write_obj(stamp_ns, base + 8);
        let _ = area.write_obj(len as u32, base + 16);
        let _ = area.write_slice(&message[..len], base + SAMPLING_SLOT_HEADER);
        seq.store((before | 1).wrapping_add(1), Ordering::Release);
        published.store(number, Ordering::Release);
    }
}

impl SamplingReader {
    /// Opens the channel file at `path` as a reader.
    pub fn open(path: &Path, max_message_bytes: u32) -> Result<Self, OpenError> {
        let map = Mapped::open(path, sampling(max_message_bytes), false, false)?;
        Ok(SamplingReader {
            map,
            anomalies: Anomalies::default(),
        })
    }

    /// What went wrong with what the writer left.
    pub fn anomalies(&self) -> &Anomalies {
        &self.anomalies
    }

    /// Whether a message was ever written.
    pub fn written(&self) -> bool {
        let area = self.map.source.as_volatile_slice();
        area.get_atomic_ref::<AtomicU64>(SOURCE_INDEX)
            .is_ok_and(|p| p.load(Ordering::Acquire) != 0)
    }

    /// Copies the latest message into `buf` (at least the channel's largest message long, or
    /// the copy is cut short).
    pub fn read(&self, buf: &mut [u8]) -> Result<Sampled, ReadError> {
        let area = self.map.source.as_volatile_slice();
        let max = self.map.layout.max_message_bytes as usize;
        let published = area
            .get_atomic_ref::<AtomicU64>(SOURCE_INDEX)
            .map_err(|_| ReadError::Malformed)?;
        for _ in 0..READ_ATTEMPTS {
            let number = published.load(Ordering::Acquire);
            if number == 0 {
                return Err(ReadError::Empty);
            }
            let base = self.map.layout.slot((number % 2) as usize);
            let seq = area
                .get_atomic_ref::<AtomicU64>(base)
                .map_err(|_| ReadError::Malformed)?;
            let first = seq.load(Ordering::Acquire);
            if first & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let stamp_ns: u64 = area.read_obj(base + 8).map_err(|_| ReadError::Malformed)?;
            let len: u32 = area.read_obj(base + 16).map_err(|_| ReadError::Malformed)?;
            let len = len as usize;
            let copied = len.min(max).min(buf.len());
            let _ = area.read_slice(&mut buf[..copied], base + SAMPLING_SLOT_HEADER);
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) != first {
                continue;
            }
            if len == 0 || len > max {
                self.anomalies.bad_lengths.fetch_add(1, Ordering::Relaxed);
                return Err(ReadError::Malformed);
            }
            return Ok(Sampled {
                len: copied,
                stamp_ns,
            });
        }
        Err(ReadError::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::tempdir;
    use crate::{channel_file_name, create_channel_file};

    fn channel(max: u32) -> (SamplingWriter, SamplingReader, std::path::PathBuf) {
        let dir = tempdir();
        let path = dir.join(channel_file_name("s"));
        create_channel_file(&path, &sampling(max)).unwrap();
        (
            SamplingWriter::open(&path, max).unwrap(),
            SamplingReader::open(&path, max).unwrap(),
            path,
        )
    }

    #[test]
    fn a_reader_sees_nothing_before_the_first_write() {
        let (_w, r, _) = channel(16);

        assert_eq!(r.read(&mut [0; 16]), Err(ReadError::Empty));
        assert!(!r.written());
    }

    #[test]
    fn a_reader_gets_the_latest_message_and_its_stamp() {
        let (w, r, _) = channel(16);
        w.write(b"first", 10);
        w.write(b"second", 20);
        let mut buf = [0u8; 16];

        let got = r.read(&mut buf).unwrap();

        assert_eq!(
            got,
            Sampled {
                len: 6,
                stamp_ns: 20
            }
        );
        assert_eq!(&buf[..6], b"second");
        assert!(r.written());
    }

    #[test]
    fn reading_does_not_consume_the_message() {
        let (w, r, _) = channel(8);
        w.write(b"keep", 1);
        let mut buf = [0u8; 8];

        r.read(&mut buf).unwrap();
        let again = r.read(&mut buf).unwrap();

        assert_eq!(again.len, 4);
    }

    #[test]
    fn every_reader_of_a_channel_sees_the_same_message() {
        let (w, r1, path) = channel(8);
        let r2 = SamplingReader::open(&path, 8).unwrap();
        w.write(b"both", 5);

        let (a, b) = (r1.read(&mut [0; 8]).unwrap(), r2.read(&mut [0; 8]).unwrap());

        assert_eq!(a, b);
    }

    #[test]
    fn a_length_beyond_the_largest_message_is_malformed_and_counted() {
        let (w, r, _) = channel(8);
        w.write(b"ok", 1);
        // A faulty writer: the slot of write 1 claims 9 bytes.
        let area = w.map.source.as_volatile_slice();
        area.write_obj(9u32, w.map.layout.slot(1) + 16).unwrap();

        assert_eq!(r.read(&mut [0; 8]), Err(ReadError::Malformed));
        assert_eq!(r.anomalies().bad_lengths.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_slot_left_half_written_reads_as_busy_not_as_garbage() {
        let (w, r, _) = channel(8);
        w.write(b"ok", 1);
        // A writer that died in the middle of its next write: the slot's seq stays odd.
        let area = w.map.source.as_volatile_slice();
        let base = w.map.layout.slot(1);
        area.write_obj(3u64, base).unwrap();

        assert_eq!(r.read(&mut [0; 8]), Err(ReadError::Busy));
    }

    #[test]
    fn concurrent_writes_never_give_a_reader_a_torn_message() {
        let (w, r, _) = channel(64);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Every byte of message n is n's low byte, and its length n % 64 + 1.
                    let byte = n as u8;
                    let len = (n % 64 + 1) as usize;
                    w.write(&vec![byte; len], n);
                }
            });
            let mut buf = [0u8; 64];
            let mut read = 0;
            while read < 20_000 {
                if let Ok(got) = r.read(&mut buf) {
                    let byte = got.stamp_ns as u8;
                    assert_eq!(got.len as u64, got.stamp_ns % 64 + 1);
                    assert!(buf[..got.len].iter().all(|b| *b == byte));
                    read += 1;
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
}
