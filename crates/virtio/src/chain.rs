//! Descriptor chains of split virtqueues (virtio 1.2 §2.7.5), walked and checked once before
//! any byte is used. Runs on the partition's device thread.
//!
//! [`walk`] reads each descriptor of a chain exactly once (a guest rewriting the table behind
//! our back changes nothing afterwards) and refuses, with the [`Fault`] that names the cause:
//! a head or `next` index outside its table, a loop (a bitmap of visited entries, so at most
//! one read per table entry), more descriptors in total (indirect ones included) than the
//! queue's maximum size, a buffer or indirect table not entirely inside guest memory, `addr + len`
//! wrapping or lengths adding up to 2^32 bytes or more, an indirect table when
//! `VIRTIO_F_RING_INDIRECT_DESC` was not negotiated, nested, with `NEXT`, or of a length that is
//! zero or not a multiple of 16, and a device-readable buffer after a device-writable one.
//! Unknown flag bits are ignored. The walk allocates at most one segment and one bit per
//! descriptor the queue size allows.
//!
//! A valid [`Chain`] is two byte streams, the device-readable one then the device-writable
//! one, each a list of [`Segment`]s; devices address them by offset.

use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, GuestMemoryError, GuestMemoryMmap};

use crate::Fault;

/// Size of one split-queue descriptor (§2.7.5).
const DESCRIPTOR_SIZE: u64 = 16;

/// One guest buffer, inside guest memory by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub addr: GuestAddress,
    pub len: u32,
}

/// A checked descriptor chain.
#[derive(Debug, Default)]
pub(crate) struct Chain {
    /// Index of the head descriptor in the queue's descriptor table.
    pub head: u16,
    readable: Vec<Segment>,
    writable: Vec<Segment>,
    readable_len: u32,
    writable_len: u32,
}

/// What [`walk`] needs to know about the queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueLayout {
    pub desc_table: GuestAddress,
    /// The size the driver chose: entries in the descriptor table.
    pub size: u16,
    /// Most descriptors one chain may have, indirect ones included. The spec's bound is the
    /// queue size (§2.7.5.3.1); the queue's maximum size is used so that a driver that shrank
    /// its queue but kept using indirect tables sized for the default still works.
    pub max_descriptors: u16,
    pub indirect_allowed: bool,
}

/// Walks and checks the chain starting at `head`.
pub(crate) fn walk(mem: &GuestMemoryMmap, queue: QueueLayout, head: u16) -> Result<Chain, Fault> {
    if head >= queue.size {
        return Err(Fault::HeadOutOfRange);
    }
    let max_descriptors = u32::from(queue.max_descriptors.max(queue.size));
    let mut chain = Chain {
        head,
        ..Chain::default()
    };
    let mut table = queue.desc_table;
    let mut table_len = u32::from(queue.size);
    let mut visited = Visited::new(table_len);
    let mut in_indirect = false;
    let mut index = u32::from(head);
    let mut count: u32 = 0;
    let mut total: u32 = 0;
    let mut seen_writable = false;

    loop {
        if index >= table_len {
            return Err(Fault::NextOutOfRange);
        }
        if visited.test_and_set(index) {
            return Err(Fault::DescriptorLoop);
        }
        let desc_addr = table
            .checked_add(u64::from(index) * DESCRIPTOR_SIZE)
            .ok_or(Fault::AddressOutOfRange)?;
        let desc: Descriptor = mem
            .read_obj(desc_addr)
            .map_err(|_| Fault::AddressOutOfRange)?;
        let flags = u32::from(desc.flags());

        if flags & VRING_DESC_F_INDIRECT != 0 {
            if !queue.indirect_allowed {
                return Err(Fault::IndirectNotNegotiated);
            }
            if in_indirect {
                return Err(Fault::IndirectNested);
            }
            if flags & VRING_DESC_F_NEXT != 0 {
                return Err(Fault::IndirectWithNext);
            }
            let len = desc.len();
            if len == 0 || !u64::from(len).is_multiple_of(DESCRIPTOR_SIZE) {
                return Err(Fault::IndirectBadLength);
            }
            let entries = len / DESCRIPTOR_SIZE as u32;
            if count.saturating_add(entries) > max_descriptors {
                return Err(Fault::ChainTooLong);
            }
            check_buffer(mem, desc.addr(), len)?;
            table = desc.addr();
            table_len = entries;
            visited = Visited::new(entries);
            in_indirect = true;
            index = 0;
            continue;
        }

        count += 1;
        if count > max_descriptors {
            return Err(Fault::ChainTooLong);
        }
        let len = desc.len();
        check_buffer(mem, desc.addr(), len)?;
        total = total.checked_add(len).ok_or(Fault::LengthOverflow)?;
        let segment = Segment {
            addr: desc.addr(),
            len,
        };
        if flags & VRING_DESC_F_WRITE != 0 {
            seen_writable = true;
            chain.writable_len += len;
            if len > 0 {
                chain.writable.push(segment);
            }
        } else {
            if seen_writable {
                return Err(Fault::ReadableAfterWritable);
            }
            chain.readable_len += len;
            if len > 0 {
                chain.readable.push(segment);
            }
        }

        if flags & VRING_DESC_F_NEXT == 0 {
            return Ok(chain);
        }
        index = u32::from(desc.next());
    }
}

fn check_buffer(mem: &GuestMemoryMmap, addr: GuestAddress, len: u32) -> Result<(), Fault> {
    if len == 0 {
        return Ok(());
    }
    if addr.checked_add(u64::from(len)).is_none() {
        return Err(Fault::LengthOverflow);
    }
    // u32 always fits a usize on the 64-bit hosts this runs on.
    let len = usize::try_from(len).map_err(|_| Fault::LengthOverflow)?;
    if mem.check_range(addr, len, vm_memory::Permissions::ReadWrite) {
        Ok(())
    } else {
        Err(Fault::AddressOutOfRange)
    }
}

/// One bit per entry of a descriptor table.
struct Visited(Vec<u64>);

impl Visited {
    fn new(entries: u32) -> Self {
        Visited(vec![0; entries.div_ceil(64) as usize])
    }

    /// Marks `index`; returns whether it was marked already.
    fn test_and_set(&mut self, index: u32) -> bool {
        let bit = 1u64 << (index % 64);
        match self.0.get_mut((index / 64) as usize) {
            Some(word) => {
                let seen = *word & bit != 0;
                *word |= bit;
                seen
            }
            None => true,
        }
    }
}

impl Chain {
    /// Total bytes the device may read.
    pub fn readable_len(&self) -> u32 {
        self.readable_len
    }

    /// Total bytes the device may write.
    pub fn writable_len(&self) -> u32 {
        self.writable_len
    }

    /// The pieces of the readable stream covering `offset..offset + len` (clipped to the
    /// stream).
    pub fn readable_pieces(&self, offset: u64, len: u64) -> Pieces<'_> {
        Pieces::new(&self.readable, offset, len)
    }

    /// The pieces of the writable stream covering `offset..offset + len` (clipped).
    pub fn writable_pieces(&self, offset: u64, len: u64) -> Pieces<'_> {
        Pieces::new(&self.writable, offset, len)
    }

    /// Fills `buf` from the readable stream at `offset`; returns the bytes copied (fewer than
    /// `buf.len()` only at the end of the stream).
    pub fn read_at(
        &self,
        mem: &GuestMemoryMmap,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, GuestMemoryError> {
        let mut done = 0usize;
        for piece in self.readable_pieces(offset, buf.len() as u64) {
            let n = piece.len as usize;
            let Some(dst) = buf.get_mut(done..done + n) else {
                break;
            };
            mem.read_slice(dst, piece.addr)?;
            done += n;
        }
        Ok(done)
    }

    /// Copies `buf` into the writable stream at `offset`; returns the bytes copied (fewer
    /// than `buf.len()` only at the end of the stream).
    pub fn write_at(
        &self,
        mem: &GuestMemoryMmap,
        offset: u64,
        buf: &[u8],
    ) -> Result<usize, GuestMemoryError> {
        let mut done = 0usize;
        for piece in self.writable_pieces(offset, buf.len() as u64) {
            let n = piece.len as usize;
            let Some(src) = buf.get(done..done + n) else {
                break;
            };
            mem.write_slice(src, piece.addr)?;
            done += n;
        }
        Ok(done)
    }
}

/// Iterator over the parts of a byte stream that cover a range, as guest buffers.
pub(crate) struct Pieces<'a> {
    segments: std::slice::Iter<'a, Segment>,
    skip: u64,
    left: u64,
}

impl<'a> Pieces<'a> {
    fn new(segments: &'a [Segment], offset: u64, len: u64) -> Self {
        Pieces {
            segments: segments.iter(),
            skip: offset,
            left: len,
        }
    }
}

impl Iterator for Pieces<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        while self.left > 0 {
            let seg = self.segments.next()?;
            let seg_len = u64::from(seg.len);
            if self.skip >= seg_len {
                self.skip -= seg_len;
                continue;
            }
            let n = (seg_len - self.skip).min(self.left);
            // Inside the segment, which is inside guest memory: no overflow.
            let addr = seg.addr.unchecked_add(self.skip);
            self.skip = 0;
            self.left -= n;
            return Some(Segment {
                addr,
                len: n as u32,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{desc, mem, F_INDIRECT, F_NEXT, F_WRITE, MEM_SIZE};
    use vm_memory::Bytes;

    const TABLE: GuestAddress = GuestAddress(0x1000);

    fn layout(size: u16, indirect_allowed: bool) -> QueueLayout {
        QueueLayout {
            desc_table: TABLE,
            size,
            max_descriptors: size,
            indirect_allowed,
        }
    }

    fn put(m: &GuestMemoryMmap, table: GuestAddress, index: u16, d: Descriptor) {
        m.write_obj(d, table.unchecked_add(u64::from(index) * 16))
            .unwrap();
    }

    #[test]
    fn readable_then_writable_chain_splits_into_two_streams() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x10000, 16, F_NEXT, 1));
        put(&m, TABLE, 1, desc(0x20000, 512, F_NEXT | F_WRITE, 2));
        put(&m, TABLE, 2, desc(0x30000, 1, F_WRITE, 0));

        let chain = walk(&m, layout(16, false), 0).unwrap();

        assert_eq!((chain.readable_len(), chain.writable_len()), (16, 513));
        assert_eq!(chain.writable.len(), 2);
    }

    #[test]
    fn head_beyond_the_queue_size_is_refused() {
        let m = mem();

        let result = walk(&m, layout(16, false), 16);

        assert_eq!(result.unwrap_err(), Fault::HeadOutOfRange);
    }

    #[test]
    fn self_referencing_descriptor_is_a_loop() {
        let m = mem();
        put(&m, TABLE, 3, desc(0x10000, 16, F_NEXT, 3));

        let result = walk(&m, layout(16, false), 3);

        assert_eq!(result.unwrap_err(), Fault::DescriptorLoop);
    }

    #[test]
    fn two_descriptor_cycle_is_a_loop() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x10000, 16, F_NEXT, 1));
        put(&m, TABLE, 1, desc(0x10000, 16, F_NEXT, 0));

        let result = walk(&m, layout(16, false), 0);

        assert_eq!(result.unwrap_err(), Fault::DescriptorLoop);
    }

    #[test]
    fn next_index_beyond_the_table_is_refused() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x10000, 16, F_NEXT, 200));

        let result = walk(&m, layout(16, false), 0);

        assert_eq!(result.unwrap_err(), Fault::NextOutOfRange);
    }

    #[test]
    fn buffer_past_the_end_of_guest_memory_is_refused() {
        let m = mem();
        put(&m, TABLE, 0, desc(MEM_SIZE - 8, 16, 0, 0));

        let result = walk(&m, layout(16, false), 0);

        assert_eq!(result.unwrap_err(), Fault::AddressOutOfRange);
    }

    #[test]
    fn buffer_whose_end_wraps_the_address_space_is_a_length_overflow() {
        let m = mem();
        put(&m, TABLE, 0, desc(u64::MAX - 4, 16, 0, 0));

        let result = walk(&m, layout(16, false), 0);

        assert_eq!(result.unwrap_err(), Fault::LengthOverflow);
    }

    #[test]
    fn lengths_adding_up_to_4_gib_are_a_length_overflow() {
        // 1 GiB of address space, never touched: six 768 MiB buffers over the same range.
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x4000_0000)]).unwrap();
        for i in 0..5u16 {
            put(&m, TABLE, i, desc(0x1000_0000, 0x3000_0000, F_NEXT, i + 1));
        }
        put(&m, TABLE, 5, desc(0x1000_0000, 0x3000_0000, 0, 0));

        let result = walk(&m, layout(8, false), 0);

        assert_eq!(result.unwrap_err(), Fault::LengthOverflow);
    }

    #[test]
    fn readable_descriptor_after_a_writable_one_is_refused() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x10000, 16, F_WRITE | F_NEXT, 1));
        put(&m, TABLE, 1, desc(0x20000, 16, 0, 0));

        let result = walk(&m, layout(16, false), 0);

        assert_eq!(result.unwrap_err(), Fault::ReadableAfterWritable);
    }

    #[test]
    fn indirect_table_is_followed_when_negotiated() {
        let m = mem();
        let itable = GuestAddress(0x8000);
        put(&m, TABLE, 0, desc(itable.0, 32, F_INDIRECT, 0));
        put(&m, itable, 0, desc(0x10000, 16, F_NEXT, 1));
        put(&m, itable, 1, desc(0x20000, 4, F_WRITE, 0));

        let chain = walk(&m, layout(16, true), 0).unwrap();

        assert_eq!((chain.readable_len(), chain.writable_len()), (16, 4));
    }

    #[test]
    fn indirect_table_without_the_feature_is_refused() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x8000, 32, F_INDIRECT, 0));

        let result = walk(&m, layout(16, false), 0);

        assert_eq!(result.unwrap_err(), Fault::IndirectNotNegotiated);
    }

    #[test]
    fn indirect_table_inside_an_indirect_table_is_refused() {
        let m = mem();
        let itable = GuestAddress(0x8000);
        put(&m, TABLE, 0, desc(itable.0, 16, F_INDIRECT, 0));
        put(&m, itable, 0, desc(0x9000, 16, F_INDIRECT, 0));

        let result = walk(&m, layout(16, true), 0);

        assert_eq!(result.unwrap_err(), Fault::IndirectNested);
    }

    #[test]
    fn indirect_table_length_not_a_multiple_of_16_is_refused() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x8000, 24, F_INDIRECT, 0));

        let result = walk(&m, layout(16, true), 0);

        assert_eq!(result.unwrap_err(), Fault::IndirectBadLength);
    }

    #[test]
    fn indirect_descriptor_with_next_is_refused() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x8000, 32, F_INDIRECT | F_NEXT, 1));

        let result = walk(&m, layout(16, true), 0);

        assert_eq!(result.unwrap_err(), Fault::IndirectWithNext);
    }

    #[test]
    fn indirect_table_outside_guest_memory_is_refused() {
        let m = mem();
        put(&m, TABLE, 0, desc(MEM_SIZE, 32, F_INDIRECT, 0));

        let result = walk(&m, layout(16, true), 0);

        assert_eq!(result.unwrap_err(), Fault::AddressOutOfRange);
    }

    #[test]
    fn indirect_table_with_more_entries_than_the_queue_size_is_too_long() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x8000, 17 * 16, F_INDIRECT, 0));

        let result = walk(&m, layout(16, true), 0);

        assert_eq!(result.unwrap_err(), Fault::ChainTooLong);
    }

    #[test]
    fn loop_inside_an_indirect_table_is_a_loop() {
        let m = mem();
        let itable = GuestAddress(0x8000);
        put(&m, TABLE, 0, desc(itable.0, 32, F_INDIRECT, 0));
        put(&m, itable, 0, desc(0x10000, 16, F_NEXT, 1));
        put(&m, itable, 1, desc(0x10000, 16, F_NEXT, 0));

        let result = walk(&m, layout(16, true), 0);

        assert_eq!(result.unwrap_err(), Fault::DescriptorLoop);
    }

    #[test]
    fn direct_descriptors_plus_an_indirect_table_beyond_the_queue_size_are_too_long() {
        let m = mem();
        let itable = GuestAddress(0x8000);
        put(&m, TABLE, 0, desc(0x10000, 16, F_NEXT, 1));
        put(&m, TABLE, 1, desc(0x10000, 16, F_NEXT, 2));
        put(&m, TABLE, 2, desc(itable.0, 3 * 16, F_INDIRECT, 0));

        let result = walk(&m, layout(4, true), 0);

        assert_eq!(result.unwrap_err(), Fault::ChainTooLong);
    }

    #[test]
    fn pieces_cover_a_range_across_segments() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x10000, 16, F_NEXT, 1));
        put(&m, TABLE, 1, desc(0x20000, 16, 0, 0));
        let chain = walk(&m, layout(16, false), 0).unwrap();

        let pieces: Vec<Segment> = chain.readable_pieces(8, 16).collect();

        assert_eq!(
            pieces,
            [
                Segment {
                    addr: GuestAddress(0x10008),
                    len: 8
                },
                Segment {
                    addr: GuestAddress(0x20000),
                    len: 8
                }
            ]
        );
    }

    #[test]
    fn write_at_stops_at_the_end_of_the_writable_stream() {
        let m = mem();
        put(&m, TABLE, 0, desc(0x10000, 4, F_WRITE, 0));
        let chain = walk(&m, layout(16, false), 0).unwrap();

        let written = chain.write_at(&m, 2, &[1, 2, 3, 4]).unwrap();

        assert_eq!(written, 2);
        assert_eq!(
            m.read_obj::<[u8; 4]>(GuestAddress(0x10000)).unwrap(),
            [0, 0, 1, 2]
        );
    }
}
