//! The guest side of the bulkhead paravirtualization ABI (`docs/pv-abi.md`, crate
//! `bulkhead-pvabi`), for `no_std` bare-metal guests, plus the few x86 helpers such a guest
//! needs ([`arch::x86`]).
//!
//! A call fills a 128-byte [`CallBlock`] and rings the doorbell with the block's address; the
//! monitor answers in the same block while the vCPU is stopped. The typed wrappers, one per
//! call — [`abi_version`], [`console_write`], [`partition_id`], [`monotonic_time`],
//! [`wait_next_period`], [`power_off`]; the health calls of ABI 0.2 ([`watchdog_kick`],
//! [`report_deadline_miss`], [`report_panic`]); the port and doorbell calls of ABI 0.3
//! ([`port_open`], [`sampling_write`], [`sampling_read`], [`queuing_send`],
//! [`queuing_receive`], [`port_status`], [`doorbell_ring`], [`doorbell_wait`],
//! [`doorbell_attach`]: module `ports`) — place a fresh block on the caller's stack, so they
//! are reentrant (an interrupt handler may call them while the interrupted code is in a call)
//! and need no per-vCPU set-up. Each returns its results typed or a [`CallError`], which
//! [`CallError::name`] spells for console lines.
//!
//! Invariant the whole crate relies on: the guest runs identity-mapped (virtual address ==
//! guest-physical address), as the bulkhead boot contract establishes. Every buffer passed to
//! a call is named to the monitor by its virtual address.
//!
//! On x86 the doorbell is an `out` instruction, so calls are made from ring 0 or from code
//! with I/O permission (IOPL 3 or the TSS I/O bitmap). Software KVM ignores a guest's ring-3
//! IOPL and raises #GP instead; a guest that calls from ring 3 there performs the `out` in
//! its #GP handler (as `rt-demo` does).
//!
//! Besides the ABI, the plain code every bulkhead bare-metal image shares, unit-tested on the
//! host: the command-line convention ([`cmdline`]), console lines without `core::fmt`
//! ([`line`]), TSC arithmetic and descriptor encodings ([`arch::x86::tsc`],
//! [`arch::x86::descriptor`]). The ring-0 kernel those images run on is the crate
//! `bulkhead-guest-kernel` (`guests/kernel`).
//!
//! Detecting the monitor: every call first sets `status` to
//! [`STATUS_UNANSWERED`](bulkhead_pvabi::STATUS_UNANSWERED). If it is still that after the
//! doorbell, no bulkhead monitor is present (under QEMU, say, the doorbell port is unassigned
//! and the write vanishes); the wrappers return [`CallError::NoMonitor`].
#![cfg_attr(not(test), no_std)]

pub mod arch;
mod block;
mod calls;
pub mod cmdline;
pub mod line;
#[cfg(feature = "mem")]
mod mem;
mod ports;

pub use block::{raw_call, CallBlock};
pub use calls::{
    abi_version, console_write, decode, monotonic_time, partition_id, power_off,
    report_deadline_miss, report_panic, wait_next_period, watchdog_kick, CallError, PartitionInfo,
    Release, Time,
};
pub use ports::{
    doorbell_attach, doorbell_ring, doorbell_wait, port_kind_name, port_open, port_status,
    queuing_receive, queuing_send, sampling_read, sampling_write, PortInfo, PortStatus,
    SampledMessage,
};

/// The ABI contract this SDK was built against, re-exported for guests.
pub use bulkhead_pvabi as abi;
