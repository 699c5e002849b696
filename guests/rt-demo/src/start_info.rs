//! Reading the command line out of the `hvm_start_info` the loader passes (Xen's
//! `arch-x86/hvm/start_info.h`, used unchanged by the bulkhead boot contract).

use core::ptr;

/// `hvm_start_info.magic`.
const MAGIC: u32 = 0x336e_c578;
/// Offset of `magic` (u32).
const OFFSET_MAGIC: u64 = 0;
/// Offset of `cmdline_paddr` (u64).
const OFFSET_CMDLINE: u64 = 24;
/// Size of the fields read here.
const HEADER_SIZE: u64 = 32;
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
