//! Reading the command line and the memory map out of the `hvm_start_info` the loader passes
//! (Xen's `arch-x86/hvm/start_info.h`, used unchanged by the bulkhead boot contract).

use core::ptr;

/// Size of the buffer the images read their command line into (longer ones are truncated).
pub const CMDLINE_MAX: usize = 1024;

/// `hvm_start_info.magic`.
const MAGIC: u32 = 0x336e_c578;
/// Offset of `magic` (u32).
const OFFSET_MAGIC: u64 = 0;
/// Offset of `version` (u32): 1 and later have the memory map.
const OFFSET_VERSION: u64 = 4;
/// Offset of `cmdline_paddr` (u64).
const OFFSET_CMDLINE: u64 = 24;
/// Offset of `memmap_paddr` (u64, version 1).
const OFFSET_MEMMAP: u64 = 40;
/// Offset of `memmap_entries` (u32, version 1).
const OFFSET_MEMMAP_ENTRIES: u64 = 48;
/// Size of the fields read here.
const HEADER_SIZE: u64 = 56;
/// Size of one `hvm_memmap_table_entry`: `addr` (u64), `size` (u64), `type` (u32), reserved.
const MEMMAP_ENTRY_SIZE: u64 = 24;
/// `hvm_memmap_table_entry.type` of usable RAM (the E820 type).
const MEMMAP_RAM: u32 = 1;
/// Most memory-map entries looked at (bulkhead writes a handful, QEMU's E820 too).
const MEMMAP_MAX: u64 = 128;
/// Everything the image can address: the first 4 GiB are identity-mapped.
const MAPPED_END: u64 = 1 << 32;

/// Why there is no command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The start-info address is 0, misaligned or not addressable.
    NoStartInfo,
    /// The structure does not carry the start-info magic.
    BadMagic,
}

/// Copies the NUL-terminated command line named by the start info at `addr` into `buf`
/// (truncated to its length) and returns it; `Ok(&[])` when the loader gave none.
pub fn cmdline(addr: u64, buf: &mut [u8]) -> Result<&[u8], Missing> {
    check(addr)?;
    let cmdline = read_u64(addr + OFFSET_CMDLINE);
    if cmdline == 0 || cmdline >= MAPPED_END {
        return Ok(&[]);
    }
    let room = (MAPPED_END - cmdline).min(buf.len() as u64) as usize;
    let mut len = 0;
    while len < room {
        let b = read_u8(cmdline + len as u64);
        if b == 0 {
            break;
        }
        buf[len] = b;
        len += 1;
    }
    Ok(&buf[..len])
}

/// The usable RAM the memory map names, as `(start, end)` ranges clipped to the identity map,
/// copied into `buf` (as many as fit, in the map's order); empty when the loader gave no map
/// (start info version 0).
pub fn ram(addr: u64, buf: &mut [(u64, u64)]) -> Result<&[(u64, u64)], Missing> {
    check(addr)?;
    if read_u32(addr + OFFSET_VERSION) < 1 {
        return Ok(&[]);
    }
    let map = read_u64(addr + OFFSET_MEMMAP);
    let entries = u64::from(read_u32(addr + OFFSET_MEMMAP_ENTRIES)).min(MEMMAP_MAX);
    let aligned = map % 8 == 0;
    let in_reach = entries
        .checked_mul(MEMMAP_ENTRY_SIZE)
        .and_then(|size| map.checked_add(size))
        .is_some_and(|end| end <= MAPPED_END);
    if map == 0 || !aligned || !in_reach {
        return Ok(&[]);
    }
    let mut found = 0;
    for i in 0..entries {
        let entry = map + i * MEMMAP_ENTRY_SIZE;
        let (start, size) = (read_u64(entry), read_u64(entry + 8));
        let end = start.saturating_add(size).min(MAPPED_END);
        if read_u32(entry + 16) != MEMMAP_RAM || start >= end {
            continue;
        }
        let Some(slot) = buf.get_mut(found) else {
            break;
        };
        *slot = (start, end);
        found += 1;
    }
    Ok(&buf[..found])
}

/// Checks that `addr` can hold a start info and that it carries the magic.
fn check(addr: u64) -> Result<(), Missing> {
    let aligned = addr % 8 == 0;
    if addr == 0
        || !aligned
        || addr
            .checked_add(HEADER_SIZE)
            .is_none_or(|end| end > MAPPED_END)
    {
        return Err(Missing::NoStartInfo);
    }
    if read_u32(addr + OFFSET_MAGIC) != MAGIC {
        return Err(Missing::BadMagic);
    }
    Ok(())
}

// The loader's structures live in guest RAM inside the identity map (checked by the callers
// above against `MAPPED_END`). They are read volatile: they are not Rust objects, and a
// broken address may name MMIO, which then answers rather than the compiler assuming.

fn read_u8(addr: u64) -> u8 {
    // SAFETY: `addr` is below 4 GiB and therefore mapped; any byte there is readable.
    unsafe { ptr::read_volatile(addr as *const u8) }
}

fn read_u32(addr: u64) -> u32 {
    // SAFETY: as `read_u8`; `addr` is 4-aligned (the structure is 8-aligned, checked above,
    // and the offsets are multiples of 4).
    unsafe { ptr::read_volatile(addr as *const u32) }
}

fn read_u64(addr: u64) -> u64 {
    // SAFETY: as `read_u32`, 8-aligned.
    unsafe { ptr::read_volatile(addr as *const u64) }
}
