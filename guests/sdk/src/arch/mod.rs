//! Architecture helpers. Only x86-64 exists today; another architecture adds a sibling module
//! and its own doorbell (see `docs/pv-abi.md`, "Binding another architecture").

#[cfg(target_arch = "x86_64")]
pub mod x86;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("bulkhead-guest-sdk has an x86-64 binding only");
