//! One partition's monitor. Runs inside the partition's own host process (the `bulkhead`
//! binary re-executed by the supervisor), so a fault here takes down this partition only.
//!
//! Threads: the process's main thread builds the VM ([`bulkhead_vmm`]), the devices
//! ([`bulkhead_devices`]) and loads the guest, then starts one thread per vCPU — pinned to its
//! host CPU, SCHED_FIFO for high-criticality partitions — and waits for the first of them to
//! report a [`StopReason`]. The process then exits with that reason's [`StopReason::exit_code`];
//! the supervisor reads it back.
//!
//! Console: everything the guest writes to COM1 or through the paravirtual console goes to
//! standard output (a pipe to the supervisor); monitor messages go to standard error.

#![deny(unsafe_code)]

mod apex;
mod batch;
mod clock;
mod console;
pub mod events;
mod exits;
mod health;
mod link;
mod placement;
mod ports;
mod run;
pub mod shield;
mod tap;
#[cfg(test)]
mod testing;
mod uart_link;
mod virtio;
mod windows;

pub use clock::monotonic_ns;
pub use placement::{
    die_with_parent, place_threads, restrict_current_thread, Placement, PlacementError,
};
pub use run::{run_partition, PartitionError, StopReason, FRAME_EPOCH_ENV};
