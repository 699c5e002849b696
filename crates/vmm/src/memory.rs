//! Guest memory: anonymous host mappings laid out around the x86 MMIO gap.

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::x86_64::layout::{FOUR_GIB, MMIO_GAP_START};

/// The guest memory type of a partition.
pub type GuestMemory = GuestMemoryMmap;

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
        source: vm_memory::mmap::FromRangesError,
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

/// Maps `size_mib` MiB of zeroed guest memory.
pub fn create_guest_memory(size_mib: u64) -> Result<GuestMemory, MemoryError> {
    let ranges = ram_ranges(size_mib << 20);
    GuestMemoryMmap::from_ranges(&ranges).map_err(|source| MemoryError::Map { size_mib, source })
}

#[cfg(test)]
mod tests {
    use super::*;

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
