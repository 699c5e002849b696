//! The monitor side of the paravirtualization ABI (`docs/pv-abi.md`, crate `bulkhead-pvabi`).
//!
//! Runs on the vCPU thread that rang the doorbell, while that vCPU is stopped. The call block
//! and every buffer it names are guest memory, read and written only through `vm-memory`, and
//! checked before use: a bad call gets an error status, a bad call block is counted and
//! dropped, and nothing a guest passes can make this code panic, block without bound, or touch
//! memory outside the partition. The only blocking call, `WaitNextPeriod`, sleeps until one
//! period from now at most.

mod handler;
mod metrics;

pub use handler::{PvCallHandler, PvIdentity, PvOutcome, PvPlatform, PvVcpuState};
pub use metrics::PvMetrics;
