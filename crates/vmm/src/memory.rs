//! Guest memory: host mappings laid out around the x86 MMIO gap. Private anonymous memory by
//! default; with `shared`, one sealed-size memfd mapped `MAP_SHARED`, so that another process
//! (a vhost-user backend: the network bridge) can map the same pages — each region then
//! carries its `FileOffset`, which vhost-user's memory table needs.
//!
//! With huge pages asked for (`huge_pages = true` in the description), each range is mapped at
//! a host address aligned to 2 MiB, like its guest-physical start, so that transparent huge
//! pages back it and KVM can map it with 2 MiB pages in the nested page tables (KVM uses a large
//! page only where the guest frame and the host address agree modulo the page size), and the
//! ranges are advised (`MADV_HUGEPAGE`, for hosts whose THP policy is `madvise`). Without, the
//! mapping starts where the kernel puts it and KVM maps 4 KiB pages.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::ptr::null_mut;
use std::sync::Arc;

use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use crate::x86_64::layout::{FOUR_GIB, MMIO_GAP_START};

/// The guest memory type of a partition.
pub type GuestMemory = GuestMemoryMmap;

/// Alignment of the host mappings: the x86 large page.
pub const HUGE_PAGE: usize = 2 << 20;

/// Errors creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The host refused the mapping.
    #[error("cannot map {size_mib} MiB of guest memory")]
    Map {
        /// Requested size.
        size_mib: u64,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The mapping could not be described to vm-memory (overlapping or empty ranges).
    #[error("cannot describe {size_mib} MiB of guest memory: {reason}")]
    Layout {
        /// Requested size.
        size_mib: u64,
        /// What vm-memory refused.
        reason: String,
    },
}

/// The guest-physical RAM ranges for `size` bytes: below the MMIO gap first, the rest above
/// 4 GiB.
pub fn ram_ranges(size: u64) -> Vec<(GuestAddress, usize)> {
    let low = size.min(MMIO_GAP_START);
    let mut ranges = vec![(GuestAddress(0), low as usize)];
    if size > low {
        ranges.push((GuestAddress(FOUR_GIB), (size - low) as usize));
    }
    ranges
}

/// Maps `size_mib` MiB of zeroed guest memory, on huge pages if `huge_pages`, in a memfd that
/// other processes can map if `shared` (see the module docs).
pub fn create_guest_memory(
    size_mib: u64,
    huge_pages: bool,
    shared: bool,
) -> Result<GuestMemory, MemoryError> {
    let layout = |reason: String| MemoryError::Layout { size_mib, reason };
    let map_error = |source| MemoryError::Map { size_mib, source };
    let ranges = ram_ranges(size_mib << 20);
    let file = if shared {
        Some(Arc::new(memfd(&ranges).map_err(map_error)?))
    } else {
        None
    };
    let mut regions = Vec::new();
    let mut offset = 0u64;
    for (start, size) in ranges {
        let region = match &file {
            None => {
                let host = map(size, huge_pages).map_err(map_error)?;
                // SAFETY: `host..host + size` lies inside a private anonymous mapping made for
                // it by `map`, readable and writable, never unmapped (guest memory lives as
                // long as the partition process).
                unsafe { MmapRegionBuilder::new(size).with_raw_mmap_pointer(host) }
                    .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
                    .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE)
                    .build()
            }
            Some(file) => {
                let host = map_shared(file, offset, size, huge_pages).map_err(map_error)?;
                // SAFETY: `host..host + size` is a shared mapping of `file` at `offset` made
                // for it by `map_shared`, readable and writable, never unmapped.
                unsafe { MmapRegionBuilder::new(size).with_raw_mmap_pointer(host) }
                    .with_file_offset(FileOffset::from_arc(Arc::clone(file), offset))
                    .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
                    .with_mmap_flags(libc::MAP_SHARED | libc::MAP_NORESERVE)
                    .build()
            }
        }
        .map_err(|e| layout(e.to_string()))?;
        let region: MmapRegion = region;
        regions.push(
            GuestRegionMmap::new(region, start)
                .ok_or_else(|| layout("a range wraps the address space".into()))?,
        );
        offset = next_offset(offset, size);
    }
    GuestMemoryMmap::from_regions(regions).map_err(|e| layout(e.to_string()))
}

/// Where the range after one of `size` bytes at `offset` starts in the memfd: on a
/// [`HUGE_PAGE`] boundary, so that a huge page of the file is one of the guest.
fn next_offset(offset: u64, size: usize) -> u64 {
    (offset + size as u64).next_multiple_of(HUGE_PAGE as u64)
}

/// A memfd large enough for `ranges` (each starting on a huge-page boundary of the file),
/// its size sealed.
fn memfd(ranges: &[(GuestAddress, usize)]) -> std::io::Result<File> {
    let total = ranges
        .iter()
        .fold(0u64, |offset, (_, size)| next_offset(offset, *size));
    let name = c"bulkhead-guest-ram";
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new fd or -1.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(total)?;
    // SAFETY: fcntl on our own fd with a seal mask; failure leaves the file unsealed.
    let rc = unsafe {
        libc::fcntl(
            fd,
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// A shared mapping of `size` bytes of `file` at `offset`, at a [`HUGE_PAGE`]-aligned host
/// address when `huge_pages` (and advised for huge pages: shmem follows
/// `/sys/kernel/mm/transparent_hugepage/shmem_enabled`).
fn map_shared(file: &File, offset: u64, size: usize, huge_pages: bool) -> std::io::Result<*mut u8> {
    use std::os::fd::AsRawFd;
    // Reserve room for an aligned start, then map the file over the reservation.
    let reserved = map(size, huge_pages)?;
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: MAP_FIXED over `reserved..reserved + size`, which lies inside the private
    // anonymous reservation `map` just made for it and nothing else uses.
    let host = unsafe {
        libc::mmap(
            reserved.cast(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_NORESERVE,
            file.as_raw_fd(),
            offset,
        )
    };
    if host == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    if huge_pages {
        // SAFETY: advice on the range just mapped; failure only means small pages.
        unsafe { libc::madvise(host, size, libc::MADV_HUGEPAGE) };
    }
    Ok(host.cast())
}

/// A private anonymous mapping of `size` bytes. With `huge_pages`, it starts at a
/// [`HUGE_PAGE`] boundary (the mapping is made `HUGE_PAGE` larger and its start rounded up; the
/// slack is never touched) and is advised for transparent huge pages.
fn map(size: usize, huge_pages: bool) -> std::io::Result<*mut u8> {
    let slack = if huge_pages { HUGE_PAGE } else { 0 };
    let total = size
        .checked_add(slack)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
    // SAFETY: a new anonymous mapping at an address of the kernel's choosing (no MAP_FIXED):
    // nothing existing is touched.
    let base = unsafe {
        libc::mmap(
            null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    if !huge_pages {
        return Ok(base.cast());
    }
    let offset = (HUGE_PAGE - (base as usize % HUGE_PAGE)) % HUGE_PAGE;
    // SAFETY: `offset < HUGE_PAGE`, so `base + offset + size` stays inside the `total` bytes.
    let host = unsafe { base.cast::<u8>().add(offset) };
    // SAFETY: advice on a range of the mapping just made; failure (THP compiled out) only means
    // small pages.
    unsafe { libc::madvise(host.cast(), size, libc::MADV_HUGEPAGE) };
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_mappings_start_on_a_huge_page_boundary() {
        use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

        let mem = create_guest_memory(6, true, false).unwrap();

        for region in mem.iter() {
            let host = region
                .get_host_address(vm_memory::MemoryRegionAddress(0))
                .unwrap();
            assert_eq!(host as usize % HUGE_PAGE, 0);
        }
        assert_eq!(mem.last_addr(), GuestAddress((6 << 20) - 1));
    }

    #[test]
    fn shared_memory_is_one_memfd_that_a_second_mapping_sees() {
        use std::os::unix::fs::FileExt;
        use vm_memory::{Bytes, GuestMemoryBackend, GuestMemoryRegion};

        let mem = create_guest_memory(4, true, true).unwrap();
        mem.write_obj(0xdead_beef_u32, GuestAddress(0x1000))
            .unwrap();

        let region = mem.iter().next().unwrap();
        let file = region.file_offset().unwrap();
        let mut seen = [0u8; 4];
        file.file()
            .read_exact_at(&mut seen, file.start() + 0x1000)
            .unwrap();
        assert_eq!(u32::from_le_bytes(seen), 0xdead_beef);
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .unwrap();
        assert_eq!(host as usize % HUGE_PAGE, 0);
    }

    #[test]
    fn memory_below_the_gap_is_one_range() {
        assert_eq!(ram_ranges(512 << 20), vec![(GuestAddress(0), 512 << 20)]);
    }

    #[test]
    fn memory_beyond_the_gap_continues_above_four_gib() {
        let ranges = ram_ranges(4 << 30);

        assert_eq!(
            ranges,
            vec![
                (GuestAddress(0), MMIO_GAP_START as usize),
                (GuestAddress(FOUR_GIB), 1 << 30)
            ]
        );
    }
}
