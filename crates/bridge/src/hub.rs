//! What the bridge's threads share: the policy [`Pipeline`] (behind one lock: each frame
//! takes it once), and one [`End`] per port and uplink — a bounded inbox of frames on their
//! way there, an eventfd that wakes whoever delivers them, and, for ports, the receive
//! offloads its driver accepted.
//!
//! Frames travel as `virtio_net_hdr_v1` (12 bytes) + Ethernet frame, as they leave and enter
//! virtio-net rings, so checksum and segmentation offloads cross the bridge between two
//! drivers that both accept them. A destination whose inbox is full loses the frame (counted
//! as `RingFull`): a flooding sender can fill a receiver's inbox, never block the sender or
//! the bridge.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bulkhead_virtio::net::{NetHeader, Offloads, F_NEEDS_CSUM, HEADER_LEN};
use vhost_user_backend::VringT;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::policy::{Alert, Attachment, DropReason, Pipeline, Verdict};
use crate::port::{write_frame, RxRing, Written};
use crate::segment;

/// Frames waiting for one destination, at most.
pub const INBOX_FRAMES: usize = 512;

/// One port or uplink of the bridge.
#[derive(Debug)]
pub struct End {
    inbox: Mutex<VecDeque<Vec<u8>>>,
    /// Written when a frame is queued; the delivering thread waits on it.
    pub wake: EventFd,
    /// What the port's driver accepts on receive (uplinks: nothing, frames are sent whole).
    offloads: Mutex<Offloads>,
    /// The port's receive ring once its connection is up: frames go straight into it.
    rx: Mutex<Option<RxRing>>,
}

impl End {
    fn new() -> std::io::Result<End> {
        Ok(End {
            inbox: Mutex::new(VecDeque::with_capacity(INBOX_FRAMES)),
            wake: EventFd::new(EFD_NONBLOCK)?,
            offloads: Mutex::new(Offloads::default()),
            rx: Mutex::new(None),
        })
    }
}

/// The 802.1Q TPID.
const TPID_8021Q: [u8; 2] = [0x81, 0x00];
/// Where the TPID of a tag would be: after the destination and source MACs.
const TAG_AT: usize = HEADER_LEN + 12;

/// What [`Hub::deliver_now`] did.
enum Delivery {
    /// Written (or refused and counted): nothing more to do.
    Done,
    /// The frame must wait in the inbox.
    Queue,
}

/// Whether `data` (header + frame) carries an 802.1Q tag.
fn is_tagged(data: &[u8]) -> bool {
    data.get(TAG_AT..TAG_AT + 2) == Some(&TPID_8021Q[..])
}

/// `data` (header + frame) without an 802.1Q tag, if it had one.
fn untagged(mut data: Vec<u8>) -> Vec<u8> {
    if data.get(TAG_AT..TAG_AT + 2) == Some(&TPID_8021Q[..]) && data.len() >= TAG_AT + 6 {
        data.drain(TAG_AT..TAG_AT + 4);
        move_checksum_start(&mut data, -4);
    }
    data
}

/// `data` (header + untagged frame) with an 802.1Q tag for `vlan`, if any.
fn tagged(mut data: Vec<u8>, vlan: Option<u16>) -> Vec<u8> {
    if let (Some(vlan), true) = (vlan, data.len() >= TAG_AT) {
        let tci = (vlan & 0x0fff).to_be_bytes();
        data.splice(
            TAG_AT..TAG_AT,
            [TPID_8021Q[0], TPID_8021Q[1], tci[0], tci[1]],
        );
        move_checksum_start(&mut data, 4);
    }
    data
}

/// A partial checksum's start (`csum_start`, counted from the frame's first byte) follows the
/// headers when a tag goes in or out in front of them: without this, completing it later
/// would write the checksum 4 bytes off, over the TCP header's data offset and flags.
fn move_checksum_start(data: &mut [u8], by: i32) {
    let header = NetHeader::parse(data);
    if header.flags & F_NEEDS_CSUM == 0 {
        return;
    }
    let moved = i32::from(header.csum_start) + by;
    if let (Ok(start), Some(field)) = (u16::try_from(moved), data.get_mut(6..8)) {
        field.copy_from_slice(&start.to_le_bytes());
    }
}

/// The shared state of one bridge process.
#[derive(Debug)]
pub struct Hub {
    pipeline: Mutex<Pipeline>,
    ports: Vec<End>,
    uplinks: Vec<End>,
    /// The monotonic clock's start, for the pipeline's `now_ns`.
    started: std::time::Instant,
    /// Each uplink's tunnel counters, as its thread last reported them.
    tunnels: Vec<Mutex<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// A hub for `ports` ports and `uplinks` uplinks around `pipeline`.
    pub fn new(pipeline: Pipeline, ports: usize, uplinks: usize) -> std::io::Result<Hub> {
        Ok(Hub {
            pipeline: Mutex::new(pipeline),
            ports: (0..ports).map(|_| End::new()).collect::<Result<_, _>>()?,
            uplinks: (0..uplinks).map(|_| End::new()).collect::<Result<_, _>>()?,
            started: std::time::Instant::now(),
            tunnels: (0..uplinks).map(|_| Mutex::new(String::new())).collect(),
        })
    }

    /// The end of a port or uplink.
    pub fn end(&self, at: Attachment) -> Option<&End> {
        match at {
            Attachment::Port(i) => self.ports.get(i),
            Attachment::Uplink(i) => self.uplinks.get(i),
        }
    }

    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// A port's driver (re)connected with these receive offloads: quarantine ends, frames
    /// queued for its previous connection are dropped.
    pub fn port_connected(&self, port: usize, offloads: Offloads) {
        if let Some(end) = self.ports.get(port) {
            *lock(&end.offloads) = offloads;
            lock(&end.inbox).clear();
        }
        lock(&self.pipeline).port_reconnected(port);
    }

    /// `data` (header + frame) arrived from `source`: runs the pipeline and hands it to every
    /// destination — straight into a port's receive ring when it can take it now, else into
    /// the destination's inbox (a copy). Returns how many destinations took it.
    pub fn forward(&self, source: Attachment, data: &[u8], dests: &mut Vec<Attachment>) -> usize {
        let Some(frame) = data.get(HEADER_LEN..) else {
            return 0;
        };
        let mut pipeline = lock(&self.pipeline);
        let verdict = pipeline.process(source, frame, self.now_ns(), dests);
        let Verdict::Forward { vlan } = verdict else {
            return 0;
        };
        let header = NetHeader::parse(data);
        let mut taken = 0;
        for &dest in dests.iter() {
            let Some(end) = self.end(dest) else { continue };
            // An uplink's thread cuts TCP super-frames into wire frames (`segment.rs`).
            let fits = match dest {
                Attachment::Port(_) => header.fits(*lock(&end.offloads)),
                Attachment::Uplink(_) => {
                    header.gso_type == bulkhead_virtio::net::GSO_NONE || segment::supported(&header)
                }
            };
            if !fits {
                pipeline.dropped_at(dest, DropReason::NoDestination);
                continue;
            }
            // Ports are access ports (untagged); uplinks carry the VLAN as an 802.1Q tag.
            let copy = match dest {
                Attachment::Port(_) if is_tagged(data) => untagged(data.to_vec()),
                Attachment::Port(_) => match self.deliver_now(dest, end, data, &mut pipeline) {
                    Delivery::Done => {
                        taken += 1;
                        continue;
                    }
                    Delivery::Queue => data.to_vec(),
                },
                Attachment::Uplink(_) => tagged(untagged(data.to_vec()), vlan),
            };
            let mut inbox = lock(&end.inbox);
            if inbox.len() >= INBOX_FRAMES {
                drop(inbox);
                pipeline.dropped_at(dest, DropReason::RingFull);
                continue;
            }
            inbox.push_back(copy);
            drop(inbox);
            let _ = end.wake.write(1);
            taken += 1;
        }
        taken
    }

    /// Writes `data` straight into the port's receive ring, if it has one, nothing is queued
    /// before it, and a buffer is free.
    fn deliver_now(
        &self,
        dest: Attachment,
        end: &End,
        data: &[u8],
        pipeline: &mut Pipeline,
    ) -> Delivery {
        let rx = lock(&end.rx);
        let Some(ring) = rx.as_ref() else {
            return Delivery::Queue;
        };
        if !lock(&end.inbox).is_empty() {
            return Delivery::Queue;
        }
        let offloads = *lock(&end.offloads);
        let mut state = ring.vring.get_mut();
        match write_frame(&mut state, &ring.mem, data, offloads, ring.event_idx) {
            Ok(Written::Delivered(bytes)) => {
                pipeline.delivered(dest, bytes);
            }
            Ok(Written::Refused(_)) | Err(_) => {
                pipeline.dropped_at(dest, DropReason::RingFull);
            }
            Ok(Written::NoBuffer) => return Delivery::Queue,
        }
        if state.needs_notification().unwrap_or(true) {
            let _ = state.signal_used_queue();
        }
        Delivery::Done
    }

    /// The port's receive ring, for direct delivery (its connection is set up).
    pub fn publish_rx(&self, port: usize, ring: RxRing) {
        if let Some(end) = self.ports.get(port) {
            let mut rx = lock(&end.rx);
            if rx.is_none() {
                *rx = Some(ring);
            }
        }
    }

    /// The port's connection ended: no more direct delivery.
    pub fn unpublish_rx(&self, port: usize) {
        if let Some(end) = self.ports.get(port) {
            *lock(&end.rx) = None;
        }
    }

    /// The next frame queued for `at`.
    pub fn take(&self, at: Attachment) -> Option<Vec<u8>> {
        lock(&self.end(at)?.inbox).pop_front()
    }

    /// Puts a frame back at the head of `at`'s inbox (no receive buffer for it yet).
    pub fn put_back(&self, at: Attachment, data: Vec<u8>) {
        if let Some(end) = self.end(at) {
            lock(&end.inbox).push_front(data);
        }
    }

    /// Counts a frame of `bytes` (without header) that reached `at`.
    pub fn delivered(&self, at: Attachment, bytes: usize) {
        lock(&self.pipeline).delivered(at, bytes);
    }

    /// Counts a frame `at` could not take (it did not fit the receive buffer).
    pub fn dropped_at(&self, at: Attachment, reason: DropReason) {
        lock(&self.pipeline).dropped_at(at, reason);
    }

    /// What the port's driver accepts on receive.
    pub fn offloads(&self, port: usize) -> Offloads {
        self.ports
            .get(port)
            .map(|end| *lock(&end.offloads))
            .unwrap_or_default()
    }

    /// The counters, one line per port and uplink, then one per tunnel.
    pub fn counter_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = lock(&self.pipeline).counters().lines().collect();
        lines.extend(
            self.tunnels
                .iter()
                .map(|t| lock(t).clone())
                .filter(|l| !l.is_empty()),
        );
        lines
    }

    /// An uplink's tunnel counters line (its thread reports them now and then).
    pub fn report_tunnel(&self, uplink: usize, line: String) {
        if let Some(slot) = self.tunnels.get(uplink) {
            *lock(slot) = line;
        }
    }

    /// The alerts queued since the last call.
    pub fn drain_alerts(&self) -> Vec<Alert> {
        lock(&self.pipeline).drain_alerts().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_virtio::net::complete_checksum;

    /// Header (NEEDS_CSUM at `csum_start` 34, offset 16) + an untagged Ethernet/IPv4/TCP frame.
    fn tcp_with_partial_checksum() -> Vec<u8> {
        let header = NetHeader {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..NetHeader::default()
        };
        let mut data = header.to_bytes().to_vec();
        data.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
        data.extend_from_slice(&[0x45, 0, 0, 44, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        data.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        // TCP: ports, sequence, ack, data offset 5 / flags ACK|PSH, window, checksum, urgent.
        data.extend_from_slice(&[0x14, 0x51, 0xc0, 0x01, 0, 0, 0, 1, 0, 0, 0, 0]);
        data.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3, 4]);
        data
    }

    #[test]
    fn a_tag_moves_a_partial_checksum_with_the_headers() {
        let plain = tcp_with_partial_checksum();
        let mut expected = plain.clone();
        let header = NetHeader::parse(&plain);
        complete_checksum(&header, &mut expected[HEADER_LEN..]);

        let mut tagged = tagged(plain.clone(), Some(10));
        assert_eq!(NetHeader::parse(&tagged).csum_start, 38);
        let header = NetHeader::parse(&tagged);
        complete_checksum(&header, &mut tagged[HEADER_LEN..]);
        let tcp = HEADER_LEN + 18 + 20;
        assert_eq!(
            tagged[tcp + 12..tcp + 14],
            [0x50, 0x18],
            "data offset and flags intact"
        );
        assert_eq!(
            tagged[tcp + 16..tcp + 18],
            expected[tcp - 4 + 16..tcp - 4 + 18]
        );

        let back = untagged(super::tagged(plain.clone(), Some(10)));
        assert_eq!(back, plain, "untagging restores header and frame");
    }

    #[test]
    fn without_a_partial_checksum_the_header_is_left_alone() {
        let mut plain = tcp_with_partial_checksum();
        plain[0] = 0;
        let tagged = tagged(plain.clone(), Some(10));
        assert_eq!(tagged[..HEADER_LEN], plain[..HEADER_LEN]);
        assert_eq!(untagged(tagged), plain);
    }
}
