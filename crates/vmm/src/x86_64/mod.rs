//! x86-64 specifics: the guest-physical layout, kernel loading and boot protocols, ACPI
//! tables, and the initial CPU state (CPUID, registers, page tables).

pub mod acpi;
pub mod cpu;
pub mod layout;
pub mod loader;
