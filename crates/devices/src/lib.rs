//! Device models of a partition. They know nothing of KVM or of processes: each receives its
//! interrupt line as a [`vm_superio::Trigger`]-like object and guest memory as a parameter, and
//! is driven by the partition's vCPU or device threads through plain method calls.
//!
//! - [`legacy`]: the 16550 UART (ttyS0) and the power/reset controller (ACPI sleep and reset
//!   registers, i8042 reset line).
//! - [`uart_link`]: the second 16550 (ttyS1) of a partition joined to another by a uart link,
//!   with its flow control.
//! - [`pvcall`]: the monitor side of the paravirtualization ABI (`docs/pv-abi.md`).
//! - [`apex`]: the line protocol a Linux guest speaks over vsock to reach its ports and
//!   doorbells (`docs/ports.md`).
#![forbid(unsafe_code)]

pub mod apex;
pub mod legacy;
pub mod pvcall;
pub mod uart_link;

mod ratelimit;
pub use ratelimit::RateLimitedLog;
