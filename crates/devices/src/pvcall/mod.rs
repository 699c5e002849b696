//! The monitor side of the paravirtualization ABI (`docs/pv-abi.md`, crate `bulkhead-pvabi`).
//!
//! Runs on the vCPU thread that rang the doorbell, while that vCPU is stopped. The call block
//! and every buffer it names are guest memory, read and written only through `vm-memory`, and
//! checked before use: a bad call gets an error status, a bad call block is counted and
//! dropped, and nothing a guest passes can make this code panic, block without bound, or touch
//! memory outside the partition. The blocking calls wait a bounded time: `WaitNextPeriod` one
//! period at most, the port and doorbell calls (ABI 0.3) their timeout, at most
//! `MAX_TIMEOUT_NS` (10 s).

mod handler;
mod metrics;
mod ports;

pub use handler::{PvCallHandler, PvIdentity, PvOutcome, PvPlatform, PvVcpuState};
pub use metrics::PvMetrics;
pub use ports::{NoPorts, PortError, PortInfo, PvPorts, SampledMessage};
