//! COM2 joined to a link: the 16550A (vm-superio's model), the *outbox* of bytes the guest
//! transmitted that have not gone out to the peer yet, the *inbox* of bytes the peer sent that
//! the receive FIFO has no room for yet, and the credit that bounds both.
//!
//! Flow control, per direction (sender S, receiver R, bound B = `buffer_bytes`):
//! - R grants S a *limit*: S may have sent R at most `limit` bytes of the stream. R computes
//!   it as `received + B - inbox.len()`, so whatever S sends within it fits R's inbox; R never
//!   drops a byte the link delivered. The limit grows as R moves bytes into its FIFO (and the
//!   guest reads them); R sends it when it grew by a quarter of B, or the inbox emptied.
//! - S takes a guest byte into its outbox only while `outbox.len() + sent < limit` (before
//!   the peer's first credit: while the outbox holds fewer than B bytes). Otherwise the byte
//!   is dropped and counted (`tx_dropped`): the guest that floods loses its own bytes, and the
//!   vCPU never waits. The bytes S accepted, and no others, reach R's FIFO, in order.
//! - The receive FIFO is refilled from the inbox only where it has room
//!   (`enqueue_raw_bytes` within `fifo_capacity`), so the FIFO never overflows either.
//!
//! Threads: the vCPU threads call [`LinkedUart::read`] and [`LinkedUart::write`] (port I/O
//! exits); the link thread calls everything else. Both hold the caller's lock. The vCPU side
//! does no more than the UART itself plus, at most once per wake-up, a write to the link
//! thread's eventfd: when the outbox stops being empty, or a guest read leaves room in the
//! FIFO while bytes wait in the inbox. Refilling the FIFO and raising its interrupt is the
//! link thread's work.
//!
//! A peer that restarts comes back with a new session (see [`super::wire`]): what was in
//! flight to its old incarnation is gone, both directions start counting again, and the bytes
//! still in this end's inbox count against the new peer's first credit.

use std::collections::VecDeque;
use std::io::Write;

use vm_superio::serial::{Error as SerialError, NoEvents};
use vm_superio::Serial;
use vmm_sys_util::eventfd::EventFd;

use super::metrics::UartLinkMetrics;
use super::wire::{Message, MAX_DATA_BYTES};
use crate::legacy::EventFdLine;

/// Receive buffer / transmit holding register (16550, offset 0 with DLAB clear).
const RBR_THR: u8 = 0;
/// Size of vm-superio's receive FIFO (a 16550A's is 16; vm-superio keeps 64).
const FIFO_BYTES: usize = 64;
/// A guest read that leaves this much room in the FIFO, with bytes waiting in the inbox,
/// wakes the link thread to refill it.
const REFILL_ROOM: usize = FIFO_BYTES / 2;

/// What [`LinkedUart::next_datagram`] encoded, to be committed with [`LinkedUart::sent`] once
/// the datagram went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    Hello,
    /// A credit with this limit.
    Credit(u64),
    /// This many bytes of the outbox.
    Data(usize),
}

/// The transmit side: the UART's output. Owned by the serial model, which writes each byte
/// the guest puts in THR.
struct Outbox {
    bytes: VecDeque<u8>,
    bound: u64,
    /// Bytes sent to the current peer session.
    sent: u64,
    /// The peer's limit; `None` until its first credit.
    limit: Option<u64>,
    dropped: u64,
}

impl Outbox {
    /// How many more bytes the guest may put in.
    fn room(&self) -> u64 {
        let queued = self.bytes.len() as u64;
        let credit = match self.limit {
            Some(limit) => limit.saturating_sub(self.sent),
            None => self.bound,
        };
        credit.min(self.bound).saturating_sub(queued)
    }

    /// How many queued bytes the current credit lets go out now.
    fn sendable(&self) -> usize {
        let credit = self
            .limit
            .map_or(0, |limit| limit.saturating_sub(self.sent));
        let credit = usize::try_from(credit).unwrap_or(usize::MAX);
        self.bytes.len().min(credit).min(MAX_DATA_BYTES)
    }
}

impl Write for Outbox {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &byte in buf {
            if self.room() > 0 {
                self.bytes.push_back(byte);
            } else {
                self.dropped += 1;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The receive side: bytes from the peer that wait for room in the FIFO.
struct Inbox {
    bytes: VecDeque<u8>,
    /// Bytes of the current peer session's stream received so far.
    received: u64,
}

/// COM2 of a partition that is an end of a uart link.
pub struct LinkedUart {
    serial: Serial<EventFdLine, NoEvents, Outbox>,
    inbox: Inbox,
    bound: u64,
    /// This end's session (non-zero).
    session: u64,
    /// The peer's session, once heard from.
    peer: Option<u64>,
    hello_due: bool,
    credit_due: bool,
    keepalive_due: bool,
    /// The last limit sent to the peer.
    credit_sent: u64,
    /// The link thread's wake-up, and whether it is already signalled.
    wake: EventFd,
    wake_pending: bool,
    metrics: UartLinkMetrics,
}

impl LinkedUart {
    /// A UART that raises `irq`, wakes its link thread through `wake`, and keeps at most
    /// `buffer_bytes` in flight per direction; `session` identifies this end's process (a
    /// non-zero number that differs across restarts).
    pub fn new(irq: EventFd, wake: EventFd, buffer_bytes: u32, session: u64) -> Self {
        let bound = usize::try_from(buffer_bytes).unwrap_or(usize::MAX);
        let outbox = Outbox {
            bytes: VecDeque::with_capacity(bound),
            bound: u64::from(buffer_bytes),
            sent: 0,
            limit: None,
            dropped: 0,
        };
        LinkedUart {
            serial: Serial::new(EventFdLine(irq), outbox),
            inbox: Inbox {
                bytes: VecDeque::with_capacity(bound),
                received: 0,
            },
            bound: u64::from(buffer_bytes),
            session: session.max(1),
            peer: None,
            hello_due: true,
            credit_due: false,
            keepalive_due: false,
            credit_sent: 0,
            wake,
            wake_pending: false,
            metrics: UartLinkMetrics::default(),
        }
    }

    /// Guest read of register `offset` (0..8).
    pub fn read(&mut self, offset: u8) -> u8 {
        let value = self.serial.read(offset);
        if offset == RBR_THR
            && self.serial.fifo_capacity() >= REFILL_ROOM
            && !self.inbox.bytes.is_empty()
        {
            self.wake();
        }
        value
    }

    /// Guest write of `value` to register `offset` (0..8). Never waits: a byte beyond the
    /// link's bound is dropped and counted.
    pub fn write(&mut self, offset: u8, value: u8) {
        let was_empty = self.serial.writer().bytes.is_empty();
        // The outbox never fails; a failure to signal the interrupt is not the guest's fault.
        let _ = self.serial.write(offset, value);
        if was_empty && !self.serial.writer().bytes.is_empty() {
            self.wake();
        }
    }

    fn wake(&mut self) {
        if !self.wake_pending {
            self.wake_pending = true;
            let _ = self.wake.write(1);
        }
    }

    /// The link thread starts a round: a later vCPU event wakes it again.
    pub fn start_service(&mut self) {
        self.wake_pending = false;
    }

    /// The link thread's periodic tick: send a HELLO or credit even if nothing changed, so a
    /// peer that restarted, or a credit whose datagram could not be sent, is caught up.
    pub fn keepalive(&mut self) {
        self.keepalive_due = true;
    }

    /// A datagram from the peer's socket.
    pub fn receive(&mut self, datagram: &[u8]) {
        let Ok(message) = Message::decode(datagram) else {
            self.metrics.malformed += 1;
            return;
        };
        let from = message.from();
        if from == self.session {
            self.metrics.malformed += 1;
            return;
        }
        if self.peer != Some(from) {
            self.new_peer(from);
        }
        match message {
            Message::Hello { .. } => self.credit_due = true,
            Message::Credit { to, limit, .. } if to == self.session => {
                let outbox = self.serial.writer_mut();
                outbox.limit = Some(outbox.limit.map_or(limit, |l| l.max(limit)));
            }
            Message::Data { to, seq, bytes, .. }
                if to == self.session && seq == self.inbox.received =>
            {
                self.take(bytes);
            }
            Message::Credit { .. } | Message::Data { .. } => self.metrics.stale += 1,
        }
    }

    /// A datagram that did not come from the peer's socket, discarded.
    pub fn foreign(&mut self) {
        self.metrics.malformed += 1;
    }

    /// The peer's socket went away (a send to it was refused): the peer restarted or
    /// stopped. This end starts a new session of its own, so that whoever answers next, a
    /// new peer or the same one, starts counting both directions afresh with it; bytes the
    /// guest wrote and that did not go out stay in the outbox for the next peer.
    pub fn peer_lost(&mut self) {
        if self.peer.take().is_some() {
            self.metrics.peer_resets += 1;
        }
        // Any other non-zero number would do; this one is as unlikely as the first to be
        // the peer's.
        self.session = self
            .session
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
            .max(1);
        self.reset_counts();
        self.hello_due = true;
    }

    /// The peer's session is `from`, a new one: nothing in flight to or from an earlier
    /// session counts any more.
    fn new_peer(&mut self, from: u64) {
        if self.peer.is_some() {
            self.metrics.peer_resets += 1;
        }
        self.peer = Some(from);
        self.reset_counts();
        self.credit_due = true;
    }

    /// Both directions count from zero (a new pair of sessions).
    fn reset_counts(&mut self) {
        let outbox = self.serial.writer_mut();
        outbox.sent = 0;
        outbox.limit = None;
        self.inbox.received = 0;
        self.credit_sent = 0;
    }

    /// Received data into the inbox, as far as it has room (all of it, from a peer that
    /// keeps to its credit).
    fn take(&mut self, bytes: &[u8]) {
        let room = self.bound.saturating_sub(self.inbox.bytes.len() as u64);
        let taken = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.inbox.bytes.extend(&bytes[..taken]);
        self.inbox.received += bytes.len() as u64;
        self.metrics.rx_bytes += taken as u64;
        self.metrics.rx_overrun += (bytes.len() - taken) as u64;
    }

    /// Moves bytes from the inbox into the receive FIFO, as many as it has room for; the
    /// UART raises its receive interrupt (if the guest enabled it).
    pub fn refill(&mut self) {
        let room = self.serial.fifo_capacity().min(FIFO_BYTES);
        let n = room.min(self.inbox.bytes.len());
        if n == 0 {
            return;
        }
        let mut chunk = [0u8; FIFO_BYTES];
        for (slot, byte) in chunk.iter_mut().zip(self.inbox.bytes.iter()) {
            *slot = *byte;
        }
        let taken = match self.serial.enqueue_raw_bytes(&chunk[..n]) {
            Ok(taken) => taken.min(n),
            Err(SerialError::FullFifo) => 0,
            // The bytes are in the FIFO; only the interrupt could not be signalled.
            Err(_) => n,
        };
        self.inbox.bytes.drain(..taken);
        self.metrics.rx_delivered += taken as u64;
    }

    /// The limit this end grants the peer now.
    fn limit(&self) -> u64 {
        let queued = self.inbox.bytes.len() as u64;
        self.inbox.received + self.bound.saturating_sub(queued)
    }

    /// Whether the limit grew enough since the last credit to be worth a datagram.
    fn credit_worth_sending(&self, limit: u64) -> bool {
        let grown = limit.saturating_sub(self.credit_sent);
        grown > 0 && (grown >= (self.bound / 4).max(1) || self.inbox.bytes.is_empty())
    }

    /// Encodes into `buf` the next datagram to send to the peer, if any is due: a HELLO
    /// until the peer is known, then a credit when one is due, then data within the credit.
    /// Nothing changes until [`LinkedUart::sent`] confirms it went out.
    pub fn next_datagram(&mut self, buf: &mut Vec<u8>) -> Option<Outgoing> {
        buf.clear();
        let from = self.session;
        let Some(peer) = self.peer else {
            if !(self.hello_due || self.keepalive_due) {
                return None;
            }
            Message::Hello { from }.encode(buf);
            return Some(Outgoing::Hello);
        };
        let limit = self.limit();
        if self.credit_due || self.keepalive_due || self.credit_worth_sending(limit) {
            Message::Credit {
                from,
                to: peer,
                limit,
            }
            .encode(buf);
            return Some(Outgoing::Credit(limit));
        }
        let outbox = self.serial.writer_mut();
        let n = outbox.sendable();
        if n == 0 {
            return None;
        }
        let seq = outbox.sent;
        let bytes = &outbox.bytes.make_contiguous()[..n];
        Message::Data {
            from,
            to: peer,
            seq,
            bytes,
        }
        .encode(buf);
        Some(Outgoing::Data(n))
    }

    /// The datagram of `what` went out.
    pub fn sent(&mut self, what: Outgoing) {
        match what {
            Outgoing::Hello => {
                self.hello_due = false;
                self.keepalive_due = false;
            }
            Outgoing::Credit(limit) => {
                self.credit_sent = limit;
                self.credit_due = false;
                self.keepalive_due = false;
            }
            Outgoing::Data(n) => {
                let outbox = self.serial.writer_mut();
                let n = n.min(outbox.bytes.len());
                outbox.bytes.drain(..n);
                outbox.sent += n as u64;
                self.metrics.tx_bytes += n as u64;
            }
        }
    }

    /// The counters so far.
    pub fn metrics(&self) -> UartLinkMetrics {
        UartLinkMetrics {
            tx_dropped: self.serial.writer().dropped,
            ..self.metrics
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 16550 registers the tests use.
    const IER: u8 = 1;
    const LSR: u8 = 5;
    const MSR: u8 = 6;
    const LSR_DATA_READY: u8 = 0x01;

    fn eventfd() -> EventFd {
        EventFd::new(libc_nonblock()).unwrap()
    }

    fn libc_nonblock() -> i32 {
        0o4000 // EFD_NONBLOCK
    }

    /// An end with a bound of `bound` bytes, in session `session`, and a probe on its wake
    /// eventfd.
    fn end(bound: u32, session: u64) -> (LinkedUart, EventFd) {
        let wake = eventfd();
        let probe = wake.try_clone().unwrap();
        (LinkedUart::new(eventfd(), wake, bound, session), probe)
    }

    /// Delivers every datagram `from` has for `to`, as the link thread would, then lets
    /// `to` refill its FIFO. Returns whether anything moved.
    fn deliver(from: &mut LinkedUart, to: &mut LinkedUart) -> bool {
        let mut buf = Vec::new();
        let mut moved = false;
        while let Some(what) = from.next_datagram(&mut buf) {
            from.sent(what);
            to.receive(&buf);
            moved = true;
        }
        to.start_service();
        to.refill();
        moved
    }

    /// Runs both link threads until neither has anything to send.
    fn settle(a: &mut LinkedUart, b: &mut LinkedUart) {
        while deliver(a, b) | deliver(b, a) {}
    }

    /// Two ends that have found each other.
    fn linked(bound: u32) -> (LinkedUart, LinkedUart) {
        let (mut a, _) = end(bound, 1);
        let (mut b, _) = end(bound, 2);
        settle(&mut a, &mut b);
        (a, b)
    }

    fn transmit(uart: &mut LinkedUart, bytes: &[u8]) {
        for byte in bytes {
            uart.write(RBR_THR, *byte);
        }
    }

    /// What the guest reads while the line status says data is ready.
    fn read_fifo(uart: &mut LinkedUart) -> Vec<u8> {
        let mut bytes = Vec::new();
        while uart.read(LSR) & LSR_DATA_READY != 0 {
            bytes.push(uart.read(RBR_THR));
        }
        bytes
    }

    /// The guest reads everything while the link thread keeps refilling the FIFO.
    fn read_all(reader: &mut LinkedUart, writer: &mut LinkedUart) -> Vec<u8> {
        let mut bytes = Vec::new();
        loop {
            let chunk = read_fifo(reader);
            settle(writer, reader);
            if chunk.is_empty() && reader.serial.fifo_capacity() == FIFO_BYTES {
                return bytes;
            }
            bytes.extend(chunk);
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn bytes_cross_the_link_both_ways_in_order() {
        let (mut a, mut b) = linked(4096);

        transmit(&mut a, b"ping from a\n");
        transmit(&mut b, b"pong from b\n");
        settle(&mut a, &mut b);

        assert_eq!(read_fifo(&mut b), b"ping from a\n");
        assert_eq!(read_fifo(&mut a), b"pong from b\n");
        assert_eq!(a.metrics().tx_bytes, 12);
        assert_eq!(b.metrics().rx_delivered, 12);
    }

    #[test]
    fn a_flooding_sender_loses_its_own_bytes_and_the_receiver_gets_an_unbroken_prefix() {
        let (mut a, mut b) = linked(256);
        let flood = pattern(10_000);

        transmit(&mut a, &flood);
        settle(&mut a, &mut b);
        let received = read_all(&mut b, &mut a);

        assert_eq!(received, &flood[..256]);
        assert_eq!(a.metrics().tx_dropped, 10_000 - 256);
        assert_eq!(b.metrics().rx_overrun, 0);
    }

    #[test]
    fn every_byte_the_sender_accepted_arrives_in_order_and_every_other_is_counted_dropped() {
        let (mut a, mut b) = linked(256);
        let flood = pattern(5000);
        let mut received = Vec::new();

        for chunk in flood.chunks(500) {
            transmit(&mut a, chunk);
            settle(&mut a, &mut b);
            received.extend(read_fifo(&mut b));
            settle(&mut a, &mut b);
        }
        received.extend(read_all(&mut b, &mut a));

        let metrics = a.metrics();
        assert_eq!(received.len() as u64, metrics.tx_bytes);
        assert_eq!(metrics.tx_bytes + metrics.tx_dropped, 5000);
        assert!(metrics.tx_dropped > 0);
        assert!(is_subsequence(&received, &flood));
        assert_eq!(b.metrics().rx_overrun, 0);
    }

    /// Whether `part` is `whole` with some bytes left out, the rest in order.
    fn is_subsequence(part: &[u8], whole: &[u8]) -> bool {
        let mut rest = whole.iter();
        part.iter().all(|byte| rest.any(|b| b == byte))
    }

    #[test]
    fn a_flood_in_one_direction_leaves_the_other_direction_whole() {
        let (mut a, mut b) = linked(256);

        transmit(&mut a, &pattern(10_000));
        transmit(&mut b, b"still here\n");
        settle(&mut a, &mut b);

        assert_eq!(read_fifo(&mut a), b"still here\n");
        assert_eq!(b.metrics().tx_dropped, 0);
    }

    #[test]
    fn bytes_beyond_the_fifo_wait_in_the_link_until_the_guest_reads() {
        let (mut a, mut b) = linked(4096);
        let sent = pattern(200);

        transmit(&mut a, &sent);
        settle(&mut a, &mut b);

        assert_eq!(b.serial.fifo_capacity(), 0);
        assert_eq!(b.inbox.bytes.len(), 200 - FIFO_BYTES);
        assert_eq!(read_all(&mut b, &mut a), sent);
    }

    #[test]
    fn a_guest_read_that_frees_the_fifo_wakes_the_link_thread_to_refill_it() {
        let (mut a, _) = end(4096, 1);
        let (mut b, wake) = end(4096, 2);
        settle(&mut a, &mut b);
        transmit(&mut a, &pattern(100));
        settle(&mut a, &mut b);
        let _ = wake.read();

        let first = read_fifo(&mut b);
        let woken = wake.read().is_ok();
        b.start_service();
        b.refill();

        assert_eq!(first.len(), FIFO_BYTES);
        assert!(woken);
        assert_eq!(read_fifo(&mut b), &pattern(100)[FIFO_BYTES..]);
    }

    #[test]
    fn the_sender_gets_its_credit_back_as_the_receiver_reads() {
        let (mut a, mut b) = linked(256);
        transmit(&mut a, &pattern(1000));
        settle(&mut a, &mut b);
        read_all(&mut b, &mut a);

        transmit(&mut a, b"after\n");
        settle(&mut a, &mut b);

        assert_eq!(read_fifo(&mut b), b"after\n");
    }

    #[test]
    fn a_refill_raises_the_receive_interrupt() {
        let irq = eventfd();
        let probe = irq.try_clone().unwrap();
        let mut b = LinkedUart::new(irq, eventfd(), 4096, 2);
        let (mut a, _) = end(4096, 1);
        settle(&mut a, &mut b);
        b.write(IER, 0x01); // received-data interrupt only
        let _ = probe.read();

        transmit(&mut a, b"x");
        settle(&mut a, &mut b);

        assert!(probe.read().is_ok());
    }

    #[test]
    fn bytes_written_before_the_peer_is_there_wait_up_to_the_bound() {
        let (mut a, _) = end(128, 1);
        transmit(&mut a, &pattern(300));
        let (mut b, _) = end(128, 2);

        settle(&mut a, &mut b);

        assert_eq!(read_all(&mut b, &mut a), &pattern(300)[..128]);
        assert_eq!(a.metrics().tx_dropped, 300 - 128);
    }

    #[test]
    fn after_a_peer_restart_the_link_carries_bytes_again() {
        let (mut a, b) = linked(4096);
        transmit(&mut a, b"lost with the old b");
        let mut buf = Vec::new();
        let what = a.next_datagram(&mut buf).unwrap();
        a.sent(what);
        drop(b);
        let (mut b, _) = end(4096, 3);

        settle(&mut a, &mut b);
        transmit(&mut a, b"hello new b\n");
        settle(&mut a, &mut b);

        assert_eq!(read_fifo(&mut b), b"hello new b\n");
        assert_eq!(a.metrics().peer_resets, 1);
    }

    #[test]
    fn after_the_peers_socket_went_away_both_ends_start_afresh_and_bytes_flow_again() {
        let (mut a, mut b) = linked(4096);
        transmit(&mut a, b"before\n");
        settle(&mut a, &mut b);
        read_fifo(&mut b);

        a.peer_lost();
        transmit(&mut a, b"after\n");
        transmit(&mut b, b"and back\n");
        settle(&mut a, &mut b);

        assert_eq!(read_fifo(&mut b), b"after\n");
        assert_eq!(read_fifo(&mut a), b"and back\n");
        assert_eq!(b.metrics().peer_resets, 1);
        assert_eq!(b.metrics().rx_overrun, 0);
    }

    #[test]
    fn bytes_left_from_an_old_sender_count_against_the_new_senders_credit() {
        let (mut a, mut b) = linked(128);
        transmit(&mut a, &pattern(128));
        settle(&mut a, &mut b);
        let (mut a_again, _) = end(128, 3);

        settle(&mut a_again, &mut b);
        transmit(&mut a_again, &pattern(128));
        settle(&mut a_again, &mut b);

        // The inbox holds what the old sender left; the FIFO's 64 bytes were taken from it,
        // so the new sender had 64 bytes of credit.
        assert_eq!(a_again.metrics().tx_dropped, 128 - 64);
        assert_eq!(b.metrics().rx_overrun, 0);
        assert!(b.inbox.bytes.len() as u64 <= 128);
    }

    #[test]
    fn data_for_another_session_or_out_of_sequence_is_discarded() {
        let (_, mut b) = linked(4096);
        let mut stale = Vec::new();
        Message::Data {
            from: 1,
            to: 99,
            seq: 0,
            bytes: b"old",
        }
        .encode(&mut stale);
        let mut gap = Vec::new();
        Message::Data {
            from: 1,
            to: 2,
            seq: 50,
            bytes: b"gap",
        }
        .encode(&mut gap);

        b.receive(&stale);
        b.receive(&gap);
        b.refill();

        assert_eq!(b.metrics().stale, 2);
        assert!(read_fifo(&mut b).is_empty());
    }

    #[test]
    fn data_beyond_the_credit_is_dropped_at_the_receiver_and_counted() {
        let (_, mut b) = linked(64);
        let mut data = Vec::new();
        Message::Data {
            from: 1,
            to: 2,
            seq: 0,
            bytes: &[7u8; 100],
        }
        .encode(&mut data);

        b.receive(&data);

        assert_eq!(b.metrics().rx_overrun, 36);
        assert_eq!(b.inbox.bytes.len(), 64);
    }

    #[test]
    fn malformed_datagrams_are_counted_and_change_nothing() {
        let (mut a, _) = linked(4096);

        a.receive(&[]);
        a.receive(&[2, 1, 2]);
        a.receive(&[1, 1, 0, 0, 0, 0, 0, 0, 0]); // a HELLO claiming a's own session

        assert_eq!(a.metrics().malformed, 3);
        assert_eq!(a.metrics().peer_resets, 0);
    }

    #[test]
    fn modem_status_shows_a_peer_ready_to_talk() {
        let (mut a, _) = end(4096, 1);

        let msr = a.read(MSR);

        // DCD, DSR and CTS: Linux's 8250 driver transmits, and an open does not wait for
        // carrier.
        assert_eq!(msr & 0xb0, 0xb0);
    }

    #[test]
    fn the_first_written_byte_wakes_the_link_thread_once() {
        let (mut a, wake) = end(4096, 1);

        transmit(&mut a, b"abc");

        assert_eq!(wake.read().unwrap(), 1);
    }
}
