//! The queuing channel: one sender, one receiver, a FIFO of `depth` messages.
//!
//! The sender owns `head` (messages sent) and the slots; the receiver owns `tail` (messages
//! received), in its own area. Both count modulo 2^32; `head - tail` is the number of messages
//! waiting. The sender writes slot `head % depth` only while fewer than `depth` wait, then
//! publishes it by advancing `head`; the receiver copies slot `tail % depth` out, then frees
//! it by advancing `tail`. A message the receiver took is in its caller's buffer before the
//! sender may reuse the slot.
//!
//! Overflow (ARINC 653 `SEND_QUEUING_MESSAGE` on a full queue) is reported to the sender
//! ([`SendError::Full`], or [`SendError::TimedOut`] after a wait); the receiver never loses a
//! message it was sent.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use vm_memory::{Bytes, MmapRegion, VolatileMemory};

use crate::layout::{
    ChannelKind, Layout, Mapped, OpenError, QUEUING_SLOT_HEADER, SOURCE_INDEX, TAIL,
};
use crate::sys::{futex_wait, futex_wake};
use crate::Anomalies;

/// The sending end of a queuing channel.
pub struct QueueSender {
    map: Mapped,
    anomalies: Anomalies,
}

/// The receiving end of a queuing channel.
pub struct QueueReceiver {
    map: Mapped,
    anomalies: Anomalies,
}

/// Why a message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the queue is full")]
    Full,
    #[error("the queue stayed full until the timeout")]
    TimedOut,
}

/// Why no message was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    #[error("the queue is empty")]
    Empty,
    #[error("the queue stayed empty until the timeout")]
    TimedOut,
}

/// How full a queue is, seen from one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStatus {
    /// Messages waiting to be received.
    pub waiting: u32,
    pub depth: u32,
}

fn queuing(max_message_bytes: u32, depth: u32) -> Layout {
    Layout {
        kind: ChannelKind::Queuing,
        max_message_bytes,
        depth,
    }
}

/// The two indices of a mapped queue.
fn indices<'a>(
    source: &'a MmapRegion,
    destination: &'a MmapRegion,
) -> (&'a AtomicU32, &'a AtomicU32) {
    // Both offsets are in bounds and 4-aligned by construction of the layout (each area is
    // at least a page), so these never fail; vm-memory checks anyway.
    let head = source
        .get_atomic_ref::<AtomicU32>(SOURCE_INDEX)
        .expect("head lies inside the source area");
    let tail = destination
        .get_atomic_ref::<AtomicU32>(TAIL)
        .expect("tail lies inside the destination area");
    (head, tail)
}

/// Waits on `word` (still `seen`) until it changes or `deadline` passes; `false` when the
/// deadline has passed (or there is none).
fn wait_for_change(word: &AtomicU32, seen: u32, deadline: Option<Instant>) -> bool {
    let Some(deadline) = deadline else {
        return false;
    };
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    futex_wait(word, seen, deadline - now);
    true
}

fn deadline(timeout: Duration) -> Option<Instant> {
    (!timeout.is_zero()).then(|| Instant::now() + timeout)
}

impl QueueSender {
    /// Opens the channel file at `path` as its sender.
    pub fn open(path: &Path, max_message_bytes: u32, depth: u32) -> Result<Self, OpenError> {
        let map = Mapped::open(path, queuing(max_message_bytes, depth), true, false)?;
        Ok(QueueSender {
            map,
            anomalies: Anomalies::default(),
        })
    }

    fn indices(&self) -> (&AtomicU32, &AtomicU32) {
        indices(&self.map.source, self.destination())
    }

    fn destination(&self) -> &MmapRegion {
        self.map
            .destination
            .as_ref()
            .expect("a queuing channel has a destination area")
    }

    /// What went wrong with what the receiver left.
    pub fn anomalies(&self) -> &Anomalies {
        &self.anomalies
    }

    /// Queues `message` (1..=the largest bytes: callers check), waiting up to `timeout` for
    /// room (zero: not at all). Callers serialise sends on one channel.
    pub fn send(&self, message: &[u8], timeout: Duration) -> Result<(), SendError> {
        let deadline = deadline(timeout);
        let layout = self.map.layout;
        let (head_word, tail_word) = self.indices();
        loop {
            let head = head_word.load(Ordering::Relaxed);
            let tail = tail_word.load(Ordering::Acquire);
            let waiting = head.wrapping_sub(tail);
            if waiting > layout.depth {
                // The receiver claims to have taken messages never sent: count it, and treat
                // the queue as full rather than overwrite what may still be unread.
                self.anomalies.bad_indices.fetch_add(1, Ordering::Relaxed);
            } else if waiting < layout.depth {
                let base = layout.slot((head % layout.depth) as usize);
                let area = self.map.source.as_volatile_slice();
                let len = message.len().min(layout.max_message_bytes as usize);
                let _ = area.write_obj(len as u32, base);
                let _ = area.write_slice(&message[..len], base + QUEUING_SLOT_HEADER);
                head_word.store(head.wrapping_add(1), Ordering::Release);
                futex_wake(head_word);
                return Ok(());
            }
            if !wait_for_change(tail_word, tail, deadline) {
                return Err(if deadline.is_some() {
                    SendError::TimedOut
                } else {
                    SendError::Full
                });
            }
        }
    }

    /// How many messages wait.
    pub fn status(&self) -> QueueStatus {
        let (head, tail) = self.indices();
        let waiting = head
            .load(Ordering::Relaxed)
            .wrapping_sub(tail.load(Ordering::Acquire));
        QueueStatus {
            waiting: waiting.min(self.map.layout.depth),
            depth: self.map.layout.depth,
        }
    }
}

impl QueueReceiver {
    /// Opens the channel file at `path` as its receiver.
    pub fn open(path: &Path, max_message_bytes: u32, depth: u32) -> Result<Self, OpenError> {
        let map = Mapped::open(path, queuing(max_message_bytes, depth), false, true)?;
        Ok(QueueReceiver {
            map,
            anomalies: Anomalies::default(),
        })
    }

    fn indices(&self) -> (&AtomicU32, &AtomicU32) {
        let destination = self
            .map
            .destination
            .as_ref()
            .expect("a queuing channel has a destination area");
        indices(&self.map.source, destination)
    }

    /// What went wrong with what the sender left.
    pub fn anomalies(&self) -> &Anomalies {
        &self.anomalies
    }

    /// Takes the oldest message into `buf` (at least the largest message long, or the copy
    /// is cut short), waiting up to `timeout` for one (zero: not at all); its length.
    /// Callers serialise receives on one channel.
    pub fn receive(&self, buf: &mut [u8], timeout: Duration) -> Result<usize, ReceiveError> {
        let deadline = deadline(timeout);
        let layout = self.map.layout;
        let (head_word, tail_word) = self.indices();
        loop {
            let tail = tail_word.load(Ordering::Relaxed);
            let head = head_word.load(Ordering::Acquire);
            let waiting = head.wrapping_sub(tail);
            if waiting == 0 {
                if !wait_for_change(head_word, head, deadline) {
                    return Err(if deadline.is_some() {
                        ReceiveError::TimedOut
                    } else {
                        ReceiveError::Empty
                    });
                }
                continue;
            }
            if waiting > layout.depth {
                // The sender claims more messages than the queue holds: keep the newest
                // `depth` slots (the others were overwritten, if the claim were true).
                self.anomalies.bad_indices.fetch_add(1, Ordering::Relaxed);
                tail_word.store(head.wrapping_sub(layout.depth), Ordering::Release);
                futex_wake(tail_word);
                continue;
            }
            let base = layout.slot((tail % layout.depth) as usize);
            let area = self.map.source.as_volatile_slice();
            let len = area.read_obj::<u32>(base).unwrap_or(0) as usize;
            let good = (1..=layout.max_message_bytes as usize).contains(&len);
            let copied = if good {
                let copied = len.min(buf.len());
                let _ = area.read_slice(&mut buf[..copied], base + QUEUING_SLOT_HEADER);
                copied
            } else {
                self.anomalies.bad_lengths.fetch_add(1, Ordering::Relaxed);
                0
            };
            tail_word.store(tail.wrapping_add(1), Ordering::Release);
            futex_wake(tail_word);
            if good {
                return Ok(copied);
            }
        }
    }

    /// How many messages wait.
    pub fn status(&self) -> QueueStatus {
        let (head, tail) = self.indices();
        let waiting = head
            .load(Ordering::Acquire)
            .wrapping_sub(tail.load(Ordering::Relaxed));
        QueueStatus {
            waiting: waiting.min(self.map.layout.depth),
            depth: self.map.layout.depth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::tempdir;
    use crate::{channel_file_name, create_channel_file};

    const NOW: Duration = Duration::ZERO;

    fn channel(max: u32, depth: u32) -> (QueueSender, QueueReceiver) {
        let dir = tempdir();
        let path = dir.join(channel_file_name("q"));
        create_channel_file(&path, &queuing(max, depth)).unwrap();
        (
            QueueSender::open(&path, max, depth).unwrap(),
            QueueReceiver::open(&path, max, depth).unwrap(),
        )
    }

    #[test]
    fn messages_arrive_once_each_in_the_order_sent() {
        let (s, r) = channel(8, 4);
        s.send(b"one", NOW).unwrap();
        s.send(b"two", NOW).unwrap();
        let mut buf = [0u8; 8];

        let first = r.receive(&mut buf, NOW).unwrap();
        assert_eq!(&buf[..first], b"one");
        let second = r.receive(&mut buf, NOW).unwrap();
        assert_eq!(&buf[..second], b"two");
        assert_eq!(r.receive(&mut buf, NOW), Err(ReceiveError::Empty));
    }

    #[test]
    fn a_full_queue_reports_overflow_to_the_sender_and_keeps_every_message() {
        let (s, r) = channel(8, 2);
        s.send(b"a", NOW).unwrap();
        s.send(b"b", NOW).unwrap();

        assert_eq!(s.send(b"c", NOW), Err(SendError::Full));
        assert_eq!(
            s.status(),
            QueueStatus {
                waiting: 2,
                depth: 2
            }
        );
        let mut buf = [0u8; 8];
        let n = r.receive(&mut buf, NOW).unwrap();
        assert_eq!(&buf[..n], b"a");
        s.send(b"c", NOW).unwrap();
        let n = r.receive(&mut buf, NOW).unwrap();
        assert_eq!(&buf[..n], b"b");
        let n = r.receive(&mut buf, NOW).unwrap();
        assert_eq!(&buf[..n], b"c");
    }

    #[test]
    fn a_receive_with_a_timeout_on_an_empty_queue_times_out() {
        let (_s, r) = channel(8, 2);
        let start = Instant::now();

        let got = r.receive(&mut [0; 8], Duration::from_millis(30));

        assert_eq!(got, Err(ReceiveError::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_send_with_a_timeout_on_a_full_queue_times_out() {
        let (s, _r) = channel(8, 1);
        s.send(b"x", NOW).unwrap();

        assert_eq!(
            s.send(b"y", Duration::from_millis(20)),
            Err(SendError::TimedOut)
        );
    }

    #[test]
    fn a_waiting_receiver_wakes_when_a_message_is_sent() {
        let (s, r) = channel(8, 2);
        std::thread::scope(|scope| {
            let receiver = scope.spawn(|| {
                let mut buf = [0u8; 8];
                let n = r.receive(&mut buf, Duration::from_secs(5)).unwrap();
                buf[..n].to_vec()
            });
            std::thread::sleep(Duration::from_millis(20));
            s.send(b"late", NOW).unwrap();

            assert_eq!(receiver.join().unwrap(), b"late");
        });
    }

    #[test]
    fn a_waiting_sender_goes_on_when_the_receiver_makes_room() {
        let (s, r) = channel(8, 1);
        s.send(b"1", NOW).unwrap();
        std::thread::scope(|scope| {
            let sender = scope.spawn(|| s.send(b"2", Duration::from_secs(5)));
            std::thread::sleep(Duration::from_millis(20));
            r.receive(&mut [0; 8], NOW).unwrap();

            assert_eq!(sender.join().unwrap(), Ok(()));
        });
    }

    #[test]
    fn a_sender_index_beyond_the_depth_is_counted_and_resynchronised() {
        let (s, r) = channel(8, 2);
        s.send(b"a", NOW).unwrap();
        // A faulty sender announces 7 messages into a queue of 2.
        let head = s
            .map
            .source
            .get_atomic_ref::<AtomicU32>(SOURCE_INDEX)
            .unwrap();
        head.store(7, Ordering::Release);

        let _ = r.receive(&mut [0; 8], NOW);

        assert_eq!(r.anomalies().bad_indices.load(Ordering::Relaxed), 1);
        assert!(r.status().waiting <= 2);
    }

    #[test]
    fn a_message_of_a_bad_length_is_skipped_and_counted() {
        let (s, r) = channel(8, 2);
        s.send(b"bad", NOW).unwrap();
        s.send(b"good", NOW).unwrap();
        let area = s.map.source.as_volatile_slice();
        area.write_obj(9u32, s.map.layout.slot(0)).unwrap();
        let mut buf = [0u8; 8];

        let n = r.receive(&mut buf, NOW).unwrap();

        assert_eq!(&buf[..n], b"good");
        assert_eq!(r.anomalies().bad_lengths.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_indices_wrap_around_without_losing_a_message() {
        let (s, r) = channel(8, 3);
        let head = s
            .map
            .source
            .get_atomic_ref::<AtomicU32>(SOURCE_INDEX)
            .unwrap();
        let tail = r
            .map
            .destination
            .as_ref()
            .unwrap()
            .get_atomic_ref::<AtomicU32>(TAIL)
            .unwrap();
        head.store(u32::MAX - 1, Ordering::Relaxed);
        tail.store(u32::MAX - 1, Ordering::Relaxed);
        let mut buf = [0u8; 8];

        for i in 0..10u8 {
            s.send(&[i], NOW).unwrap();
            let n = r.receive(&mut buf, NOW).unwrap();
            assert_eq!(&buf[..n], &[i]);
        }
    }

    #[test]
    fn a_stream_between_two_threads_arrives_complete_and_in_order() {
        let (s, r) = channel(16, 4);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..5_000u32 {
                    s.send(&i.to_le_bytes(), Duration::from_secs(5)).unwrap();
                }
            });
            let mut buf = [0u8; 16];
            for i in 0..5_000u32 {
                let n = r.receive(&mut buf, Duration::from_secs(5)).unwrap();
                assert_eq!(&buf[..n], &i.to_le_bytes());
            }
        });
    }
}
