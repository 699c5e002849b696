//! Block requests (virtio 1.2 §5.2.6): layout checks and execution against the image. Pure
//! request processing, with no queue or thread, in two steps: [`Request::prepare`] checks one
//! chain on the device thread (faults, ranges, refusals: everything that needs no host I/O)
//! and [`Request::run`] does the host I/O and writes the status byte, on the device thread or
//! on a worker of the disk's pool (`pool.rs`). A prepared request owns what it needs (the
//! guest buffers as addresses, not borrowed from the chain), so it can move to a worker.
//!
//! A request is `struct virtio_blk_req`: a 16-byte device-readable header (`type`, `reserved`,
//! `sector`), data, and a device-writable status byte at the very end. The chain's readable
//! stream starts with the header; its writable stream ends with the status byte.
//!
//! Driver faults (the device then needs a reset): no device-writable byte for the status, or a
//! header that is not 16 device-readable bytes ([`Fault::MalformedRequest`], or
//! [`Fault::WrongDirection`] when the bytes are there in the wrong direction); data in the
//! wrong direction for the request type (`IN`/`GET_ID` data must be device-writable,
//! `OUT`/`DISCARD`/`WRITE_ZEROES` data device-readable).
//!
//! Everything else is answered through the status byte (§5.2.6.2):
//! - `VIRTIO_BLK_S_UNSUPP`: unknown type; `DISCARD`/`WRITE_ZEROES` without the feature
//!   negotiated or with an unknown flag (or `UNMAP` on a discard);
//! - `VIRTIO_BLK_S_IOERR`: data not a multiple of 512 bytes, sector arithmetic overflowing,
//!   any byte beyond the capacity, a discard/write-zeroes over its segment or sector limits,
//!   a write/discard/write-zeroes on a read-only disk, a failed host I/O call.
//!
//! The used length is the bytes written into the chain: data read for `IN`, the ID bytes for
//! `GET_ID`, plus the status byte.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};
use vmm_sys_util::fallocate::{fallocate, FallocateMode};

use super::device::{
    ID_BYTES, MAX_DISCARD_SECTORS, MAX_DISCARD_SEG, MAX_WRITE_ZEROES_SECTORS, MAX_WRITE_ZEROES_SEG,
    SECTOR_SIZE,
};
use super::io;
use super::metrics::BlockMetrics;
use crate::chain::{Chain, Segment};
use crate::{DeviceError, Fault};

/// `struct virtio_blk_req`'s header (§5.2.6).
const HEADER_SIZE: u32 = 16;
/// `struct virtio_blk_discard_write_zeroes` (§5.2.6).
const SEGMENT_SIZE: u32 = 16;
/// Zeros for writing zeroes where the file system cannot `fallocate` them.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

const S_OK: u8 = VIRTIO_BLK_S_OK as u8;
const S_IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
const S_UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

/// The disk image behind a block device.
#[derive(Debug)]
pub(crate) struct Disk {
    pub file: File,
    /// Bytes; a multiple of [`SECTOR_SIZE`].
    pub capacity: u64,
    pub read_only: bool,
    pub id: [u8; ID_BYTES],
}

/// A checked request: where its status byte goes and what is left to do.
#[derive(Debug)]
pub(crate) struct Request {
    status_at: GuestAddress,
    work: Work,
}

/// What a checked request still has to do.
#[derive(Debug)]
enum Work {
    /// Nothing: it was answered while checking (refused, unsupported, `GET_ID`).
    Answered { status: u8, data_written: u32 },
    /// Move `len` bytes between the image at `offset` and these guest buffers: read into
    /// them (`IN`) or write them out (`OUT`).
    Data(Transfer),
    /// `fdatasync(2)`.
    Flush,
    /// Discard or zero these checked spans.
    Spans {
        discard: bool,
        spans: [Span; MAX_SEGMENTS],
        count: usize,
    },
}

impl Request {
    /// Checks the request `chain` carries. `Err`: the driver broke the protocol (the device
    /// then needs a reset); everything else is a request, answered or with I/O to do.
    pub fn prepare(
        disk: &Disk,
        mem: &GuestMemoryMmap,
        chain: &Chain,
        acked_features: u64,
        metrics: &mut BlockMetrics,
    ) -> Result<Request, DeviceError> {
        let readable = chain.readable_len();
        let writable = chain.writable_len();
        if writable == 0 {
            return Err(if readable > HEADER_SIZE {
                Fault::WrongDirection
            } else {
                Fault::MalformedRequest
            }
            .into());
        }
        if readable < HEADER_SIZE {
            return Err(if readable + writable > HEADER_SIZE {
                Fault::WrongDirection
            } else {
                Fault::MalformedRequest
            }
            .into());
        }
        // The status byte is the last writable one; the walk checked it is in guest memory.
        let status_at = chain
            .writable_pieces(u64::from(writable - 1), 1)
            .next()
            .map(|piece| piece.addr)
            .ok_or(DeviceError::DriverFault(Fault::MalformedRequest))?;
        let mut header = [0u8; HEADER_SIZE as usize];
        chain
            .read_at(mem, 0, &mut header)
            .map_err(DeviceError::GuestMemory)?;
        let check = Check {
            disk,
            mem,
            chain,
            metrics,
        };
        let work = check.work(le_u32(&header, 0), le_u64(&header, 8), acked_features)?;
        Ok(Request { status_at, work })
    }

    /// Whether host I/O is left to do (it was not answered while checking).
    pub fn needs_io(&self) -> bool {
        !matches!(self.work, Work::Answered { .. })
    }

    /// Whether this is a read or a write of data (not answered, not a flush or a discard).
    pub fn moves_data(&self) -> bool {
        matches!(self.work, Work::Data(_))
    }

    /// Does the host I/O, then writes the status byte. Returns the used length: the bytes
    /// written into the chain (data read or ID, and the status byte).
    pub fn run(self, disk: &Disk, mem: &GuestMemoryMmap, metrics: &mut BlockMetrics) -> u32 {
        let (status, data_written) = self.work.run(disk, mem, metrics);
        match status {
            S_IOERR => metrics.status_ioerr += 1,
            S_UNSUPP => metrics.status_unsupp += 1,
            _ => {}
        }
        // Inside guest memory (checked by the walk): this cannot fail while the memory is
        // mapped, and the caller keeps it mapped.
        let _ = mem.write_obj(status, self.status_at);
        data_written + 1
    }
}

/// A read or a write: data between the image and guest buffers.
#[derive(Debug)]
struct Transfer {
    /// `OUT` (guest buffers to the image) rather than `IN` (the image into guest buffers).
    write: bool,
    offset: u64,
    len: u32,
    buffers: Vec<Segment>,
}

impl Transfer {
    fn move_data(&self, disk: &Disk, slices: &[VolatileSlice<'_, ()>]) -> std::io::Result<()> {
        io::transfer(&disk.file, self.offset, slices, self.write)
    }

    /// Counts the bytes moved, once they are.
    fn count(&self, metrics: &mut BlockMetrics) {
        if self.write {
            metrics.bytes_written += u64::from(self.len);
        } else {
            metrics.bytes_read += u64::from(self.len);
        }
    }

    /// The bytes it writes into the chain.
    fn data_written(&self) -> u32 {
        if self.write {
            0
        } else {
            self.len
        }
    }
}

impl Work {
    /// Returns the status and the data bytes written into the chain.
    fn run(self, disk: &Disk, mem: &GuestMemoryMmap, metrics: &mut BlockMetrics) -> (u8, u32) {
        match self {
            Work::Answered {
                status,
                data_written,
            } => (status, data_written),
            Work::Data(transfer) => {
                let done = slices(mem, &transfer.buffers)
                    .and_then(|slices| transfer.move_data(disk, &slices));
                if done.is_err() {
                    metrics.host_io_errors += 1;
                    return (S_IOERR, 0);
                }
                transfer.count(metrics);
                (S_OK, transfer.data_written())
            }
            Work::Flush => match disk.file.sync_data() {
                Ok(()) => (S_OK, 0),
                Err(_) => {
                    metrics.host_io_errors += 1;
                    (S_IOERR, 0)
                }
            },
            Work::Spans {
                discard,
                spans,
                count,
            } => {
                for span in spans.iter().take(count) {
                    let done = if discard {
                        punch(disk, span.offset, span.len)
                    } else {
                        write_zeroes(disk, span.offset, span.len, span.unmap)
                    };
                    if !done {
                        metrics.host_io_errors += 1;
                        return (S_IOERR, 0);
                    }
                }
                (S_OK, 0)
            }
        }
    }
}

/// The host mappings of guest buffers, in order.
fn slices<'m>(
    mem: &'m GuestMemoryMmap,
    buffers: &[Segment],
) -> Result<Vec<VolatileSlice<'m, ()>>, std::io::Error> {
    let mut slices = Vec::new();
    for &piece in buffers {
        for slice in guest_slices(mem, piece) {
            slices.push(slice.map_err(|e| std::io::Error::other(e.to_string()))?);
        }
    }
    Ok(slices)
}

/// Checking one request (device thread).
struct Check<'a> {
    disk: &'a Disk,
    mem: &'a GuestMemoryMmap,
    chain: &'a Chain,
    metrics: &'a mut BlockMetrics,
}

const fn answered(status: u8) -> Work {
    Work::Answered {
        status,
        data_written: 0,
    }
}

impl Check<'_> {
    fn work(
        self,
        request_type: u32,
        sector: u64,
        acked_features: u64,
    ) -> Result<Work, DeviceError> {
        let data_in = self.chain.writable_len() - 1;
        let data_out = self.chain.readable_len() - HEADER_SIZE;
        match request_type {
            VIRTIO_BLK_T_IN => {
                self.expect_data_out(0)?;
                self.metrics.requests_in += 1;
                Ok(self.read(sector, data_in))
            }
            VIRTIO_BLK_T_OUT => {
                self.expect_data_in(0)?;
                self.metrics.requests_out += 1;
                Ok(self.write(sector, data_out))
            }
            VIRTIO_BLK_T_FLUSH => {
                self.metrics.requests_flush += 1;
                // Nothing of a read-only disk can be dirty.
                Ok(if self.disk.read_only {
                    answered(S_OK)
                } else {
                    Work::Flush
                })
            }
            VIRTIO_BLK_T_GET_ID => {
                self.expect_data_out(0)?;
                self.metrics.requests_get_id += 1;
                let n = data_in.min(ID_BYTES as u32);
                let id = self.disk.id.get(..n as usize).unwrap_or_default();
                let written = self
                    .chain
                    .write_at(self.mem, 0, id)
                    .map_err(DeviceError::GuestMemory)?;
                Ok(Work::Answered {
                    status: S_OK,
                    data_written: written as u32,
                })
            }
            VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => {
                let discard = request_type == VIRTIO_BLK_T_DISCARD;
                if discard {
                    self.metrics.requests_discard += 1;
                } else {
                    self.metrics.requests_write_zeroes += 1;
                }
                let feature = if discard {
                    VIRTIO_BLK_F_DISCARD
                } else {
                    VIRTIO_BLK_F_WRITE_ZEROES
                };
                if acked_features & (1u64 << feature) == 0 {
                    return Ok(answered(S_UNSUPP));
                }
                self.expect_data_in(0)?;
                self.discard_or_zero(discard, data_out)
            }
            _ => {
                self.metrics.requests_unsupported += 1;
                Ok(answered(S_UNSUPP))
            }
        }
    }

    /// The request carries no device-readable data beyond the header (`want` = 0).
    fn expect_data_out(&self, want: u32) -> Result<(), Fault> {
        if self.chain.readable_len() - HEADER_SIZE == want {
            Ok(())
        } else {
            Err(Fault::WrongDirection)
        }
    }

    /// The request has no device-writable byte besides the status (`want` = 0).
    fn expect_data_in(&self, want: u32) -> Result<(), Fault> {
        if self.chain.writable_len() - 1 == want {
            Ok(())
        } else {
            Err(Fault::WrongDirection)
        }
    }

    /// The byte range of `len` bytes at `sector`, if it is whole sectors inside the disk.
    fn range(&mut self, sector: u64, len: u64) -> Option<u64> {
        let offset = sector
            .checked_mul(SECTOR_SIZE)
            .filter(|_| len.is_multiple_of(SECTOR_SIZE))
            .and_then(|offset| offset.checked_add(len).map(|end| (offset, end)))
            .filter(|&(_, end)| end <= self.disk.capacity)
            .map(|(offset, _)| offset);
        if offset.is_none() {
            self.metrics.out_of_range += 1;
        }
        offset
    }

    fn read(mut self, sector: u64, len: u32) -> Work {
        let Some(offset) = self.range(sector, u64::from(len)) else {
            return answered(S_IOERR);
        };
        Work::Data(Transfer {
            write: false,
            offset,
            len,
            buffers: self.chain.writable_pieces(0, u64::from(len)).collect(),
        })
    }

    fn write(mut self, sector: u64, len: u32) -> Work {
        if self.disk.read_only {
            self.metrics.read_only_refused += 1;
            return answered(S_IOERR);
        }
        let Some(offset) = self.range(sector, u64::from(len)) else {
            return answered(S_IOERR);
        };
        Work::Data(Transfer {
            write: true,
            offset,
            len,
            buffers: self
                .chain
                .readable_pieces(u64::from(HEADER_SIZE), u64::from(len))
                .collect(),
        })
    }

    fn discard_or_zero(mut self, discard: bool, data_len: u32) -> Result<Work, DeviceError> {
        let max_segments = if discard {
            MAX_DISCARD_SEG
        } else {
            MAX_WRITE_ZEROES_SEG
        };
        let segments = data_len / SEGMENT_SIZE;
        if data_len == 0 || !data_len.is_multiple_of(SEGMENT_SIZE) || segments > max_segments {
            self.metrics.out_of_range += 1;
            return Ok(answered(S_IOERR));
        }
        // Check every segment before touching the disk.
        let mut spans = [Span::default(); MAX_SEGMENTS];
        for (i, span) in spans.iter_mut().take(segments as usize).enumerate() {
            let mut raw = [0u8; SEGMENT_SIZE as usize];
            self.chain
                .read_at(
                    self.mem,
                    u64::from(HEADER_SIZE + SEGMENT_SIZE * i as u32),
                    &mut raw,
                )
                .map_err(DeviceError::GuestMemory)?;
            let sector = le_u64(&raw, 0);
            let num_sectors = le_u32(&raw, 8);
            let flags = le_u32(&raw, 12);
            let allowed_flags = if discard {
                0
            } else {
                VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
            };
            if flags & !allowed_flags != 0 {
                return Ok(answered(S_UNSUPP));
            }
            let max_sectors = if discard {
                MAX_DISCARD_SECTORS
            } else {
                MAX_WRITE_ZEROES_SECTORS
            };
            if num_sectors > max_sectors {
                self.metrics.out_of_range += 1;
                return Ok(answered(S_IOERR));
            }
            let len = u64::from(num_sectors) * SECTOR_SIZE;
            let Some(offset) = self.range(sector, len) else {
                return Ok(answered(S_IOERR));
            };
            *span = Span {
                offset,
                len,
                unmap: flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0,
            };
        }
        if self.disk.read_only {
            self.metrics.read_only_refused += 1;
            return Ok(answered(S_IOERR));
        }
        Ok(Work::Spans {
            discard,
            spans,
            count: segments as usize,
        })
    }
}

/// Deallocates the range. A file system that cannot punch holes makes this a no-op, which a
/// discard allows (§5.2.6.2: the device may ignore it).
fn punch(disk: &Disk, offset: u64, len: u64) -> bool {
    match fallocate(&disk.file, FallocateMode::PunchHole, true, offset, len) {
        Ok(()) => true,
        Err(e) => std::io::Error::from_raw_os_error(e.errno()).kind() == ErrorKind::Unsupported,
    }
}

/// Makes the range read as zeros: a hole when the driver allows unmapping, else zero-range,
/// else plain writes of zeros.
fn write_zeroes(disk: &Disk, offset: u64, len: u64, unmap: bool) -> bool {
    let mode = if unmap {
        FallocateMode::PunchHole
    } else {
        FallocateMode::ZeroRange
    };
    if fallocate(&disk.file, mode, true, offset, len).is_ok() {
        return true;
    }
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(ZEROS.len() as u64) as usize;
        let Some(zeros) = ZEROS.get(..n) else {
            return false;
        };
        if disk.file.write_all_at(zeros, offset + done).is_err() {
            return false;
        }
        done += n as u64;
    }
    true
}

/// One checked discard or write-zeroes segment, in bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    offset: u64,
    len: u64,
    unmap: bool,
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Largest segment count of a discard or write-zeroes request.
const MAX_SEGMENTS: usize = if MAX_DISCARD_SEG > MAX_WRITE_ZEROES_SEG {
    MAX_DISCARD_SEG as usize
} else {
    MAX_WRITE_ZEROES_SEG as usize
};

/// The host mappings of one guest buffer, which may span memory regions.
fn guest_slices(
    mem: &GuestMemoryMmap,
    piece: Segment,
) -> impl Iterator<Item = Result<vm_memory::VolatileSlice<'_, ()>, vm_memory::GuestMemoryError>> + '_
{
    GuestMemoryBackend::get_slices(mem, piece.addr, piece.len as usize)
}
