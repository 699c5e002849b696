//! The guest-physical address map of an x86 partition. One place, so that the loaders, the
//! ACPI tables and the E820/PVH memory maps cannot disagree.
//!
//! ```text
//! 0x0000_0500  GDT (boot segments)          0x0000_9000  PML4
//! 0x0000_0520  IDT (empty)                  0x0000_a000  PDPT
//! 0x0000_6000  hvm_start_info (PVH/native)  0x0000_b000  4 page directories (4 GiB, 2 MiB pages)
//! 0x0000_6040  PVH memory map               0x0002_0000  kernel command line
//! 0x0000_6400  PVH module list (initrd)     0x000e_0000  ACPI: RSDP, XSDT, FADT, MADT, DSDT
//! 0x0000_7000  Linux zero page              0x0010_0000  kernel (bzImage protected-mode part)
//! 0x0000_8ff0  boot stack top               0x000f_fff0  reset-vector stub
//!                                           top of RAM   initrd
//! 0xc000_0000 .. 0x1_0000_0000: MMIO gap (virtio-mmio windows from 0xd000_0000, IOAPIC
//! 0xfec0_0000, LAPIC 0xfee0_0000)
//! ```

/// Boot GDT.
pub const GDT_ADDR: u64 = 0x500;
/// Boot IDT (limit 0: any exception before the guest loads its own is a triple fault).
pub const IDT_ADDR: u64 = 0x520;
/// `hvm_start_info` for PVH and bulkhead-native guests.
pub const START_INFO_ADDR: u64 = 0x6000;
/// PVH memory map (`hvm_memmap_table_entry` array).
pub const PVH_MEMMAP_ADDR: u64 = 0x6040;
/// Maximum number of PVH memory map entries that fit before the module list.
pub const PVH_MEMMAP_MAX: usize = 32;
/// PVH module list (`hvm_modlist_entry`, the initrd).
pub const PVH_MODLIST_ADDR: u64 = 0x6400;
/// Linux zero page (`boot_params`).
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Initial stack pointer for the Linux 64-bit boot protocol.
pub const BOOT_STACK_TOP: u64 = 0x8ff0;
/// Identity page tables built for 64-bit entry.
pub const PML4_ADDR: u64 = 0x9000;
/// Page-directory-pointer table.
pub const PDPT_ADDR: u64 = 0xa000;
/// First of four page directories (0xb000..0xf000).
pub const PD_ADDR: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_ADDR: u64 = 0x20000;
/// Largest command line, including the terminating NUL.
pub const CMDLINE_MAX: usize = 2048;
/// Start of the EBDA: low RAM usable by the guest ends here.
pub const EBDA_START: u64 = 0x9fc00;
/// ACPI tables region (the RSDP first, where Linux scans for it).
pub const ACPI_START: u64 = 0xe0000;
/// End of the ACPI tables region.
pub const ACPI_END: u64 = 0x10_0000;
/// The x86 reset vector (F000:FFF0 in real mode): a firmware-like stub there writes the reset
/// register, so a guest that reboots "through the BIOS" (Linux's fallback on ACPI
/// hardware-reduced platforms without EFI) resets its partition.
pub const RESET_VECTOR_ADDR: u64 = 0xffff0;
/// Start of high memory: kernels load here or above.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO gap.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// 4 GiB: RAM continues here above the gap.
pub const FOUR_GIB: u64 = 0x1_0000_0000;
/// First virtio-mmio register window; device `i` is at `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE`.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
/// Size of one virtio-mmio register window (registers at 0, configuration space at 0x100).
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// GSI of virtio-mmio device 0; device `i` uses `VIRTIO_FIRST_GSI + i` (IOAPIC pins 5..=23, the
/// legacy ISA lines below stay free).
pub const VIRTIO_FIRST_GSI: u32 = 5;
/// How many virtio-mmio devices a partition can have: one IOAPIC pin each.
pub const VIRTIO_MAX_DEVICES: usize = 19;
/// IOAPIC registers (KVM's in-kernel IOAPIC).
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// Local APIC registers.
pub const LAPIC_ADDR: u32 = 0xfee0_0000;
/// Three pages KVM needs for the real-mode TSS on Intel (`KVM_SET_TSS_ADDR`), in the gap.
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// One page for the EPT identity map on Intel (`KVM_SET_IDENTITY_MAP_ADDR`), in the gap.
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;

/// E820 / PVH memory types (ACPI 6.4 §15, "Address Range Types").
pub const E820_RAM: u32 = 1;
/// Reserved range.
pub const E820_RESERVED: u32 = 2;
