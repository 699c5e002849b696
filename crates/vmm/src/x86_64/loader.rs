//! Putting a guest image into memory and choosing how to enter it.
//!
//! | image                                  | protocol                 | entry state         |
//! |----------------------------------------|--------------------------|---------------------|
//! | bzImage                                | Linux 64-bit boot        | long mode, RSI=zero page |
//! | ELF with the `bulkhead` note           | bulkhead native          | long mode at `e_entry`, RSI=RBX=start info |
//! | ELF with a Xen PVH note (e.g. vmlinux) | PVH                      | 32-bit at the note's entry, EBX=start info |
//!
//! The command line, initrd, ACPI tables and memory map are written the same way for all;
//! only the boot-information structure differs (zero page or `hvm_start_info`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::configurator::{linux::LinuxBootConfigurator, BootConfigurator, BootParams};
use linux_loader::loader::bootparam::boot_params;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use super::acpi::{self, AcpiPlatform};
use super::cpu::{self, EntryMode};
use super::layout::*;
use crate::GuestMemory;

/// What to boot.
#[derive(Debug, Clone)]
pub struct GuestImage<'a> {
    /// Kernel file: bzImage or ELF.
    pub kernel: &'a Path,
    /// Optional initrd.
    pub initrd: Option<&'a Path>,
    /// Kernel command line (without NUL).
    pub cmdline: &'a str,
    /// Platform described in ACPI.
    pub platform: AcpiPlatform,
}

/// The boot protocol chosen for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    /// Linux 64-bit boot protocol (bzImage).
    Linux64,
    /// Xen PVH (ELF with a PHYS32_ENTRY note).
    Pvh,
    /// bulkhead native 64-bit entry (ELF with the `bulkhead` note).
    Native,
}

/// The result of loading: where and how the boot vCPU starts.
#[derive(Debug, Clone, Copy)]
pub struct BootSetup {
    /// Protocol in use.
    pub protocol: BootProtocol,
    /// First instruction.
    pub entry: GuestAddress,
    /// Entry state of the boot vCPU.
    pub mode: EntryMode,
}

/// Errors loading a guest.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel or initrd file could not be read.
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    /// linux-loader refused the kernel.
    #[error("cannot load kernel {}", .0.display())]
    Kernel(PathBuf, #[source] linux_loader::loader::Error),
    /// The ELF has neither the bulkhead note nor a PVH entry note.
    #[error("ELF kernel {} has no PVH entry note and no bulkhead note", .0.display())]
    NoEntry(PathBuf),
    /// The command line does not fit.
    #[error("command line is {0} bytes, longer than {max}", max = CMDLINE_MAX - 1)]
    CmdlineTooLong(usize),
    /// The initrd does not fit in RAM beside the kernel.
    #[error("initrd of {size} bytes does not fit in guest memory above the kernel")]
    InitrdTooLarge {
        /// Initrd size.
        size: u64,
    },
    /// Writing boot structures into guest memory failed.
    #[error("cannot write boot structures into guest memory")]
    Memory(#[source] vm_memory::GuestMemoryError),
    /// Writing the zero page failed.
    #[error("cannot write the Linux zero page")]
    ZeroPage(#[source] linux_loader::configurator::Error),
    /// ACPI tables could not be written.
    #[error("cannot write ACPI tables")]
    Acpi(#[source] acpi::AcpiError),
}

/// Loads `image` into `mem` and prepares everything the boot vCPU needs.
pub fn load_guest(mem: &GuestMemory, image: &GuestImage<'_>) -> Result<BootSetup, LoadError> {
    let kernel_path = image.kernel;
    let mut kernel = File::open(kernel_path).map_err(|e| LoadError::Read(kernel_path.into(), e))?;
    let is_elf = read_magic(&mut kernel, kernel_path)? == *b"\x7fELF";
    let highmem = Some(GuestAddress(HIMEM_START));
    let loaded = if is_elf {
        Elf::load(mem, None, &mut kernel, highmem)
    } else {
        BzImage::load(mem, Some(GuestAddress(HIMEM_START)), &mut kernel, highmem)
    }
    .map_err(|e| LoadError::Kernel(kernel_path.into(), e))?;

    if image.cmdline.len() >= CMDLINE_MAX {
        return Err(LoadError::CmdlineTooLong(image.cmdline.len()));
    }
    let mut cmdline = image.cmdline.as_bytes().to_vec();
    cmdline.push(0);
    mem.write_slice(&cmdline, GuestAddress(CMDLINE_ADDR))
        .map_err(LoadError::Memory)?;

    let kernel_end = loaded.kernel_load.0 + loaded.kernel_end;
    let initrd = match image.initrd {
        Some(path) => Some(load_initrd(mem, path, kernel_end)?),
        None => None,
    };
    let rsdp = acpi::write_tables(mem, &image.platform).map_err(LoadError::Acpi)?;
    write_reset_stub(mem, &image.platform)?;
    cpu::write_boot_structures(mem).map_err(LoadError::Memory)?;
    let memmap = memory_map(mem);

    if let Some(header) = loaded.setup_header {
        let mut params = boot_params {
            hdr: header,
            ..Default::default()
        };
        params.hdr.type_of_loader = 0xff;
        params.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
        params.hdr.cmdline_size = cmdline.len() as u32;
        if let Some((addr, size)) = initrd {
            params.hdr.ramdisk_image = addr.0 as u32;
            params.hdr.ramdisk_size = size as u32;
        }
        params.acpi_rsdp_addr = rsdp.0;
        for (slot, (addr, size, type_)) in params.e820_table.iter_mut().zip(&memmap) {
            slot.addr = *addr;
            slot.size = *size;
            slot.r#type = *type_;
        }
        params.e820_entries = memmap.len().min(params.e820_table.len()) as u8;
        LinuxBootConfigurator::write_bootparams(
            &BootParams::new(&params, GuestAddress(ZERO_PAGE_ADDR)),
            mem,
        )
        .map_err(LoadError::ZeroPage)?;
        return Ok(BootSetup {
            protocol: BootProtocol::Linux64,
            // The 64-bit entry point sits 0x200 past the protected-mode code's start.
            entry: loaded.kernel_load.unchecked_add(0x200),
            mode: EntryMode::Long {
                info: GuestAddress(ZERO_PAGE_ADDR),
                with_stack: true,
            },
        });
    }

    write_start_info(mem, rsdp, &memmap, initrd)?;
    let info = GuestAddress(START_INFO_ADDR);
    if has_bulkhead_note(&mut kernel, kernel_path)? {
        let entry = GuestAddress(read_elf_entry(&mut kernel, kernel_path)?);
        return Ok(BootSetup {
            protocol: BootProtocol::Native,
            entry,
            mode: EntryMode::Long {
                info,
                with_stack: false,
            },
        });
    }
    match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(entry) => Ok(BootSetup {
            protocol: BootProtocol::Pvh,
            entry,
            mode: EntryMode::Protected32 { info },
        }),
        _ => Err(LoadError::NoEntry(kernel_path.into())),
    }
}

/// 16-bit code at the reset vector: `mov al, VALUE; mov dx, PORT; out dx, al; 1: hlt; jmp 1b`.
fn reset_stub(port: u16, value: u8) -> [u8; 10] {
    let [lo, hi] = port.to_le_bytes();
    [0xb0, value, 0xba, lo, hi, 0xee, 0xf4, 0xeb, 0xfd, 0x90]
}

fn write_reset_stub(mem: &GuestMemory, platform: &AcpiPlatform) -> Result<(), LoadError> {
    let stub = reset_stub(platform.reset_port, platform.reset_value);
    mem.write_slice(&stub, GuestAddress(RESET_VECTOR_ADDR))
        .map_err(LoadError::Memory)
}

fn read_magic(file: &mut File, path: &Path) -> Result<[u8; 4], LoadError> {
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|e| LoadError::Read(path.into(), e))?;
    file.rewind().map_err(|e| LoadError::Read(path.into(), e))?;
    Ok(magic)
}

/// Places the initrd page-aligned at the top of low RAM, above the kernel.
fn load_initrd(
    mem: &GuestMemory,
    path: &Path,
    kernel_end: u64,
) -> Result<(GuestAddress, u64), LoadError> {
    let mut file = File::open(path).map_err(|e| LoadError::Read(path.into(), e))?;
    let size = file
        .metadata()
        .map_err(|e| LoadError::Read(path.into(), e))?
        .len();
    let low_end = mem
        .iter()
        .next()
        .map(|r| r.len())
        .unwrap_or(0)
        .min(MMIO_GAP_START);
    let start = low_end.checked_sub(size).map(|s| s & !0xfff);
    let start = match start {
        Some(s) if s >= kernel_end.next_multiple_of(0x1000) => GuestAddress(s),
        _ => return Err(LoadError::InitrdTooLarge { size }),
    };
    mem.read_exact_volatile_from(start, &mut file, size as usize)
        .map_err(LoadError::Memory)?;
    Ok((start, size))
}

/// The guest's memory map: (address, size, E820 type).
fn memory_map(mem: &GuestMemory) -> Vec<(u64, u64, u32)> {
    let mut map = vec![(0, EBDA_START, E820_RAM)];
    map.push((EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED));
    for region in mem.iter() {
        let start = region.start_addr().0.max(HIMEM_START);
        let end = region.start_addr().0 + region.len();
        if end > start {
            map.push((start, end - start, E820_RAM));
        }
    }
    map
}

fn write_start_info(
    mem: &GuestMemory,
    rsdp: GuestAddress,
    memmap: &[(u64, u64, u32)],
    initrd: Option<(GuestAddress, u64)>,
) -> Result<(), LoadError> {
    let entries = &memmap[..memmap.len().min(PVH_MEMMAP_MAX)];
    for (i, (addr, size, type_)) in entries.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr: *addr,
            size: *size,
            type_: *type_,
            reserved: 0,
        };
        mem.write_obj(entry, GuestAddress(PVH_MEMMAP_ADDR + 24 * i as u64))
            .map_err(LoadError::Memory)?;
    }
    let mut info = hvm_start_info {
        magic: 0x336e_c578,
        version: 1,
        cmdline_paddr: CMDLINE_ADDR,
        rsdp_paddr: rsdp.0,
        memmap_paddr: PVH_MEMMAP_ADDR,
        memmap_entries: entries.len() as u32,
        ..Default::default()
    };
    if let Some((addr, size)) = initrd {
        let module = hvm_modlist_entry {
            paddr: addr.0,
            size,
            cmdline_paddr: 0,
            reserved: 0,
        };
        mem.write_obj(module, GuestAddress(PVH_MODLIST_ADDR))
            .map_err(LoadError::Memory)?;
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST_ADDR;
    }
    mem.write_obj(info, GuestAddress(START_INFO_ADDR))
        .map_err(LoadError::Memory)?;
    Ok(())
}

/// ELF64 header fields used here (offsets per the System V gABI).
const E_ENTRY: usize = 0x18;
const E_PHOFF: usize = 0x20;
const E_PHENTSIZE: usize = 0x36;
const E_PHNUM: usize = 0x38;
const PT_NOTE: u32 = 4;
/// Upper bound on program headers read, to bound work on hostile files.
const MAX_PHDRS: usize = 64;
/// Upper bound on a note segment read.
const MAX_NOTE_BYTES: u64 = 64 * 1024;

fn read_at(file: &mut File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<(), LoadError> {
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| LoadError::Read(path.into(), e))
}

fn read_elf_entry(file: &mut File, path: &Path) -> Result<u64, LoadError> {
    let mut ehdr = [0u8; 64];
    read_at(file, path, 0, &mut ehdr)?;
    Ok(u64::from_le_bytes(
        ehdr[E_ENTRY..E_ENTRY + 8].try_into().unwrap_or_default(),
    ))
}

/// Whether the ELF carries the `bulkhead` native-guest note in a PT_NOTE segment.
fn has_bulkhead_note(file: &mut File, path: &Path) -> Result<bool, LoadError> {
    let mut ehdr = [0u8; 64];
    read_at(file, path, 0, &mut ehdr)?;
    let phoff = u64::from_le_bytes(ehdr[E_PHOFF..E_PHOFF + 8].try_into().unwrap_or_default());
    let phentsize = u16::from_le_bytes([ehdr[E_PHENTSIZE], ehdr[E_PHENTSIZE + 1]]) as usize;
    let phnum = (u16::from_le_bytes([ehdr[E_PHNUM], ehdr[E_PHNUM + 1]]) as usize).min(MAX_PHDRS);
    if phentsize < 56 {
        return Ok(false);
    }
    for i in 0..phnum {
        let mut phdr = [0u8; 56];
        read_at(file, path, phoff + (i * phentsize) as u64, &mut phdr)?;
        if u32::from_le_bytes(phdr[0..4].try_into().unwrap_or_default()) != PT_NOTE {
            continue;
        }
        let offset = u64::from_le_bytes(phdr[8..16].try_into().unwrap_or_default());
        let size =
            u64::from_le_bytes(phdr[32..40].try_into().unwrap_or_default()).min(MAX_NOTE_BYTES);
        let mut notes = vec![0u8; size as usize];
        read_at(file, path, offset, &mut notes)?;
        if notes_contain(
            &notes,
            bulkhead_pvabi::ELF_NOTE_NAME,
            bulkhead_pvabi::ELF_NOTE_TYPE_NATIVE,
        ) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Walks an ELF note section: namesz, descsz, type, name (4-aligned), desc (4-aligned).
fn notes_contain(mut notes: &[u8], name: &[u8], note_type: u32) -> bool {
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    while let (Some(namesz), Some(descsz), Some(ty)) =
        (word(notes, 0), word(notes, 4), word(notes, 8))
    {
        let name_len = (namesz as usize).next_multiple_of(4);
        let desc_len = (descsz as usize).next_multiple_of(4);
        let Some(note_name) = notes.get(12..12 + namesz as usize) else {
            return false;
        };
        if ty == note_type && note_name.strip_suffix(&[0]).unwrap_or(note_name) == name {
            return true;
        }
        match notes.get(12 + name_len + desc_len..) {
            Some(rest) => notes = rest,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&((name.len() + 1) as u32).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&ty.to_le_bytes());
        n.extend_from_slice(name);
        n.push(0);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend_from_slice(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    #[test]
    fn bulkhead_note_is_found_after_a_xen_note() {
        let mut notes = note(b"Xen", 18, &0x20_0000u32.to_le_bytes());
        notes.extend(note(b"bulkhead", 1, &1u32.to_le_bytes()));

        assert!(notes_contain(&notes, b"bulkhead", 1));
    }

    #[test]
    fn truncated_or_huge_note_sizes_end_the_walk() {
        let mut notes = note(b"Xen", 18, &[0; 4]);
        notes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());

        assert!(!notes_contain(&notes, b"bulkhead", 1));
        assert!(!notes_contain(&notes[..7], b"bulkhead", 1));
    }

    #[test]
    fn reset_stub_writes_the_reset_value_to_the_reset_port_then_halts() {
        let stub = reset_stub(0x602, 0x01);

        assert_eq!(
            stub,
            [0xb0, 0x01, 0xba, 0x02, 0x06, 0xee, 0xf4, 0xeb, 0xfd, 0x90]
        );
        assert!(RESET_VECTOR_ADDR + stub.len() as u64 <= HIMEM_START);
    }

    #[test]
    fn memory_map_reserves_the_legacy_hole_and_lists_ram() {
        let mem = crate::create_guest_memory(64, false, false).unwrap();

        let map = memory_map(&mem);

        assert_eq!(
            map,
            vec![
                (0, EBDA_START, E820_RAM),
                (EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED),
                (HIMEM_START, (64 << 20) - HIMEM_START, E820_RAM),
            ]
        );
    }
}
