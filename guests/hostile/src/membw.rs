//! Where the memory-bandwidth hog's buffer goes: RAM above the image, as the boot loader's
//! memory map describes it. The hog copies one half of the buffer over the other, so its
//! working set is the whole buffer; it should be well above the last-level cache (32 MiB on
//! the build machines) for every copy to reach memory.

/// The buffer is aligned to, and a multiple of, this (a large page of the boot page tables).
pub const ALIGN: u64 = 2 << 20;

/// The buffer: `(start, length)`, `length` a non-zero multiple of [`ALIGN`], inside one RAM
/// range of `ram` (as `(start, end)`), above `image_end`, at most `ceiling` bytes; the range
/// with the most room wins. `None` when no range has [`ALIGN`] bytes to spare.
pub fn place(ram: &[(u64, u64)], image_end: u64, ceiling: u64) -> Option<(u64, u64)> {
    ram.iter()
        .filter_map(|&(start, end)| {
            let start = start.max(image_end).checked_next_multiple_of(ALIGN)?;
            let room = end.checked_sub(start)?;
            let len = room.min(ceiling) / ALIGN * ALIGN;
            (len != 0).then_some((start, len))
        })
        .max_by_key(|&(_, len)| len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn buffer_starts_above_the_image_on_a_large_page() {
        let ram = [(0, 0x9fc00), (MIB, 128 * MIB)];

        assert_eq!(
            place(&ram, 2 * MIB + 150_000, 64 * MIB),
            Some((4 * MIB, 64 * MIB))
        );
    }

    #[test]
    fn small_partition_gets_what_it_has() {
        let ram = [(MIB, 32 * MIB)];

        assert_eq!(place(&ram, 3 * MIB, 64 * MIB), Some((4 * MIB, 28 * MIB)));
    }

    #[test]
    fn range_with_the_most_room_wins() {
        let ram = [(MIB, 16 * MIB), (4096 * MIB, 8192 * MIB)];

        assert_eq!(place(&ram, 3 * MIB, 64 * MIB), Some((4096 * MIB, 64 * MIB)));
    }

    #[test]
    fn no_room_means_no_buffer() {
        assert_eq!(place(&[(MIB, 3 * MIB)], 3 * MIB, 64 * MIB), None);
        assert_eq!(place(&[], 0, 64 * MIB), None);
    }
}
