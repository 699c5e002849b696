//! The KVM and x86 platform layer of a partition: a VM with its guest memory, its vCPUs, and
//! everything needed to put a guest image into it and start it (kernel loaders, boot
//! protocols, ACPI tables, CPUID). It knows nothing of devices or processes: a vCPU's exits
//! are handed to the caller as [`VcpuExit`] values, interrupts are raised through eventfds the
//! caller registers with [`Vm::register_irqfd`].
//!
//! Threads: [`Vm`] is built on the partition's main thread; each [`Vcpu`] is moved to, and run
//! on, its own thread.
//!
//! This crate (with `bulkhead-partition`'s thread placement) is where the `unsafe` of talking
//! to KVM and to raw memory lives; every block carries its `// SAFETY:` argument.

mod memory;
mod vcpu;
mod vm;
pub mod x86_64;

pub use memory::{create_guest_memory, GuestMemory, MemoryError};
pub use vcpu::{install_kick_signal, Vcpu, VcpuError, VcpuExit};
pub use vm::{HaltMode, Vm, VmError};
pub use x86_64::loader::{load_guest, BootProtocol, BootSetup, GuestImage, LoadError};
