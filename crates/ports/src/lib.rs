//! ARINC 653 channels between partitions, in shared memory: the sampling channel (the latest
//! message, overwritten by each write, read with its age) and the queuing channel (a FIFO of
//! bounded depth, each message received once), ARINC 653 Part 1 §2.3.5 (inter-partition
//! communication, services `WRITE_SAMPLING_MESSAGE`, `READ_SAMPLING_MESSAGE`,
//! `SEND_QUEUING_MESSAGE`, `RECEIVE_QUEUING_MESSAGE`).
//!
//! A channel is one file in the supervisor's run directory (`chan-<name>.shm`), created and
//! sized by the supervisor before any partition starts ([`create_channel_file`]) and mapped
//! `MAP_SHARED` by the partition processes at its ends. The file is cut into page-aligned
//! **areas**, each written by exactly one end (the ivshmem-v2 rule): the source's area holds
//! the messages and the index it advances; a queuing destination's area holds the index of
//! what it consumed. Each process maps its own area read-write and the other's read-only, so
//! a faulty end cannot write where it has no business, and what a reader copied out is its
//! own. Guests never see these pages: they reach a port only through their monitor (ABI calls
//! for native guests, the APEX service over vsock for Linux guests), which copies messages
//! between guest memory and the channel.
//!
//! What one end finds in the other's area is checked, never trusted: lengths beyond the
//! channel's largest message, indices that disagree, a sampling slot that keeps changing
//! while it is read. A bad message is skipped and counted; nothing an end writes can make the
//! other panic, block beyond its timeout, or read outside the mapping.
//!
//! Waiting: a queuing receiver with nothing to take waits on the source's index, a sender
//! with no room on the receiver's index, both with `FUTEX_WAIT` on the shared word (a
//! cross-process futex: the mapping is shared), and each end wakes the other after it moved
//! its index. Every wait has a deadline.
//!
//! Layout (all little-endian, offsets in bytes):
//!
//! | area | offset | field |
//! |---|---|---|
//! | source | 0 | magic (`BHSAMPL1` / `BHQUEUE1`) |
//! | source | 8 | largest message, `u32` |
//! | source | 12 | depth, `u32` (1 for sampling) |
//! | source | 16 | sampling: `published`, `u64`, the number of the last complete write; queuing: `head`, `u32`, messages sent |
//! | source | 64 | slots: sampling two of `{seq u64, stamp_ns u64, len u32, 0 u32, data}`, 64-byte aligned; queuing `depth` of `{len u32, 0 u32, data}`, 8-byte aligned |
//! | destination (queuing) | 0 | `tail`, `u32`, messages received |
//!
//! Runs on the threads of the partition process that call it (vCPU threads, the APEX
//! service's connection threads); the types here are `Sync` and keep no state outside the
//! mapping, so callers serialise the use of one end themselves (a mutex per port).
#![deny(unsafe_code)]

mod layout;
mod queuing;
mod sampling;
mod sys;

pub use layout::{channel_file_name, create_channel_file, ChannelKind, Layout, OpenError};
pub use queuing::{QueueReceiver, QueueSender, QueueStatus, ReceiveError, SendError};
pub use sampling::{ReadError, Sampled, SamplingReader, SamplingWriter};
pub use sys::monotonic_ns;

/// What went wrong with what the other end wrote, counted per port.
#[derive(Debug, Default)]
pub struct Anomalies {
    /// Messages whose length was 0 or beyond the channel's largest: skipped.
    pub bad_lengths: std::sync::atomic::AtomicU64,
    /// Indices that disagree (more messages announced than the queue holds): resynchronised.
    pub bad_indices: std::sync::atomic::AtomicU64,
}
