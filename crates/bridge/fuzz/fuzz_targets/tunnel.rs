//! The tunnel's receiving side: arbitrary datagrams fed to an [`Opener`] with a fixed key,
//! interleaved with records that a [`Sealer`] with the same key makes, delays, replays,
//! tampers with and truncates, and with sender restarts, so the replay window and session
//! following see every state.
//!
//! Input: a sequence of operations, each an opcode byte (taken modulo 8) and its operands;
//! `u16` operands are little-endian; an operand past the end of the input reads as zero (or
//! an empty slice).
//!
//! | op | operands | what | asserted |
//! |---|---|---|---|
//! | 0 | `len: u16`, `len` bytes | the bytes as a datagram | refused |
//! | 1 | `len: u16`, `len` bytes | sealed and delivered at once, and kept | opens to the frame |
//! | 2 | `len: u16`, `len` bytes | sealed and kept, not delivered | — |
//! | 3 | `index` | kept record `index % kept` delivered | refused if it was accepted before; else opens to its frame or is refused |
//! | 4 | `index`, `at: u16`, `mask` | kept record with byte `at % len` xor `mask` (0 as 1) | refused |
//! | 5 | `index`, `len: u16` | kept record cut to `len % its length` bytes | refused |
//! | 6 | `which`, `counter: u16`, `len: u16`, `len` bytes | a header of the current (even `which`) or a kept record's session and `counter`, then the bytes | refused |
//! | 7 | — | the sender restarts (a new [`Sealer`], a newer session) | — |
//!
//! At most [`MAX_KEPT`] records are kept (the oldest are forgotten).
#![no_main]

use bulkhead_bridge::tunnel::{
    Direction, Opener, Sealer, HEADER_LEN, MAX_FRAME, MAX_RECORD, OVERHEAD,
};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, SocketAddr};

const KEY: [u8; 32] = [0x6b; 32];
const MAX_KEPT: usize = 64;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn operand(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.operand(), self.operand()])
    }

    fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

struct Kept {
    record: Vec<u8>,
    frame: Vec<u8>,
    accepted: bool,
}

fn direction() -> Direction {
    Direction::new(
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 47000)),
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, 2), 47000)),
    )
}

fn seal(sealer: &mut Sealer, frame: &[u8]) -> Vec<u8> {
    let mut record = vec![0u8; frame.len() + OVERHEAD];
    let len = sealer
        .seal(frame, &mut record)
        .expect("a frame of at most MAX_FRAME seals");
    record.truncate(len);
    record
}

fn keep(kept: &mut Vec<Kept>, kept_record: Kept) {
    if kept.len() == MAX_KEPT {
        kept.remove(0);
    }
    kept.push(kept_record);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut sealer = Sealer::new(&KEY, direction()).expect("random session id");
    let mut opener = Opener::new(&KEY, direction());
    let mut kept: Vec<Kept> = Vec::new();
    while let Some(op) = input.byte() {
        match op % 8 {
            0 => {
                let len = usize::from(input.u16()).min(MAX_RECORD + 16);
                let mut datagram = input.bytes(len).to_vec();
                assert!(
                    opener.open(&mut datagram).is_err(),
                    "arbitrary bytes opened"
                );
            }
            1 | 2 => {
                let len = usize::from(input.u16()).min(MAX_FRAME);
                let frame = input.bytes(len).to_vec();
                let record = seal(&mut sealer, &frame);
                let accepted = op % 8 == 1;
                if accepted {
                    let mut copy = record.clone();
                    assert_eq!(
                        opener.open(&mut copy),
                        Ok(&frame[..]),
                        "fresh record refused"
                    );
                }
                keep(
                    &mut kept,
                    Kept {
                        record,
                        frame,
                        accepted,
                    },
                );
            }
            3 if !kept.is_empty() => {
                let index = usize::from(input.operand()) % kept.len();
                let entry = &mut kept[index];
                let mut copy = entry.record.clone();
                match opener.open(&mut copy) {
                    Ok(frame) => {
                        assert!(!entry.accepted, "record accepted twice");
                        assert_eq!(frame, &entry.frame[..]);
                        entry.accepted = true;
                    }
                    Err(_) => {}
                }
            }
            4 if !kept.is_empty() => {
                let index = usize::from(input.operand()) % kept.len();
                let at = usize::from(input.u16());
                let mask = input.operand().max(1);
                let mut copy = kept[index].record.clone();
                let at = at % copy.len();
                copy[at] ^= mask;
                assert!(opener.open(&mut copy).is_err(), "tampered record opened");
            }
            5 if !kept.is_empty() => {
                let index = usize::from(input.operand()) % kept.len();
                let len = usize::from(input.u16());
                let record = &kept[index].record;
                let mut copy = record[..len % record.len()].to_vec();
                assert!(opener.open(&mut copy).is_err(), "truncated record opened");
            }
            6 => {
                let which = input.operand();
                let counter = u64::from(input.u16());
                let len = usize::from(input.u16()).min(MAX_FRAME + 16);
                let mut forged = match kept.get(usize::from(which / 2) % kept.len().max(1)) {
                    Some(entry) if which % 2 == 1 => entry.record[..HEADER_LEN].to_vec(),
                    _ => seal(&mut sealer, b"")[..HEADER_LEN].to_vec(),
                };
                forged[25..33].copy_from_slice(&counter.to_be_bytes());
                forged.extend_from_slice(input.bytes(len));
                assert!(opener.open(&mut forged).is_err(), "forged record opened");
            }
            7 => sealer = Sealer::new(&KEY, direction()).expect("random session id"),
            _ => {}
        }
    }
});
