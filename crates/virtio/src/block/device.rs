//! The block device's core: opening and locking the image, features and configuration space
//! (virtio 1.2 §5.2.3, §5.2.4), lifecycle. Requests are checked on the partition's device
//! thread inside [`VirtioDevice::process_queue`] (`request.rs`); their host I/O runs there
//! too, or, with [`Block::with_io_threads`], on the disk's pool of workers (`pool.rs`), which
//! hand them back through [`VirtioDevice::process_backend`]. A lone request, with nothing else
//! in flight, still runs on the device thread: a guest that waits for each request does not
//! pay two thread hand-offs per request.
//!
//! The image is a raw file whose size is a multiple of 512 bytes; its size is the capacity.
//! It is locked for as long as the device lives (`flock(2)`): exclusively when writable,
//! shared when read-only, so two partitions cannot write the same image, nor one write an
//! image another reads.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::metrics::BlockMetrics;
use super::pool::{Job, Pool};
use super::request::{Disk, Request};
use crate::queue::{DeviceQueue, Served};
use crate::{read_config_bytes, DeviceError, VirtioDevice, COMMON_FEATURES};

/// Bytes per sector: the unit of `sector` and `capacity` (§5.2.4), and `blk_size`.
pub const SECTOR_SIZE: u64 = 512;
/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 256;
/// `seg_max`: data segments per request, leaving room for the header and the status in a
/// chain of [`QUEUE_SIZE`] descriptors.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// `max_discard_sectors`: 2 GiB per discard segment.
pub const MAX_DISCARD_SECTORS: u32 = 1 << 22;
/// `max_discard_seg`: segments per discard request.
pub const MAX_DISCARD_SEG: u32 = 1;
/// `discard_sector_alignment`: 4 KiB, the granularity at which host file systems free space.
pub const DISCARD_SECTOR_ALIGNMENT: u32 = 8;
/// `max_write_zeroes_sectors`: 2 GiB per write-zeroes segment.
pub const MAX_WRITE_ZEROES_SECTORS: u32 = 1 << 22;
/// `max_write_zeroes_seg`: segments per write-zeroes request.
pub const MAX_WRITE_ZEROES_SEG: u32 = 1;
/// Length of the `GET_ID` string (§5.2.6: `VIRTIO_BLK_ID_BYTES`).
pub const ID_BYTES: usize = 20;

/// Most I/O workers one disk may have.
pub const MAX_IO_THREADS: usize = 64;

const QUEUE_SIZES: [u16; 1] = [QUEUE_SIZE];
/// `struct virtio_blk_config` up to `write_zeroes_may_unmap` and its padding (§5.2.4).
const CONFIG_SIZE: usize = 60;

/// Why a block device could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot open disk image {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "disk image {} is in use: another process or partition has it open {}",
        path.display(),
        if *read_only { "for writing" } else { "for reading or writing" }
    )]
    Locked { path: PathBuf, read_only: bool },
    #[error("cannot lock disk image {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the size of disk image {}", path.display())]
    Metadata {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("disk image {} is not a regular file (only raw image files are supported)", path.display())]
    NotAFile { path: PathBuf },
    #[error("disk image {} is {size} bytes, not a multiple of 512", path.display())]
    Size { path: PathBuf, size: u64 },
    #[error("disk ID {id:?} is longer than 20 bytes")]
    IdTooLong { id: String },
    #[error("cannot create the I/O workers' eventfd for disk image {}", path.display())]
    Pool {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The block device.
#[derive(Debug)]
pub struct Block {
    disk: Arc<Disk>,
    /// The I/O workers (`None`: every request runs on the device thread).
    pool: Option<Pool>,
    /// Requests the workers finished and the used ring has, with no interrupt raised yet.
    unsignalled: usize,
    path: PathBuf,
    avail_features: u64,
    config: [u8; CONFIG_SIZE],
    state: State,
    metrics: BlockMetrics,
}

#[derive(Debug)]
enum State {
    Inactive,
    Active {
        /// Shared with the jobs in flight, which keep it mapped.
        mem: Arc<GuestMemoryMmap>,
        queue: DeviceQueue,
        acked_features: u64,
    },
}

impl Block {
    /// Opens and locks the raw image at `path`; `id` is what `GET_ID` answers (at most 20
    /// bytes, e.g. the disk's name in the system description).
    pub fn new(path: &Path, read_only: bool, id: &str) -> Result<Block, BlockError> {
        let id_bytes = id.as_bytes();
        if id_bytes.len() > ID_BYTES {
            return Err(BlockError::IdTooLong { id: id.to_string() });
        }
        let mut disk_id = [0u8; ID_BYTES];
        if let Some(dst) = disk_id.get_mut(..id_bytes.len()) {
            dst.copy_from_slice(id_bytes);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| BlockError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        lock(&file, path, read_only)?;
        let meta = file.metadata().map_err(|source| BlockError::Metadata {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_file() {
            return Err(BlockError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let capacity = meta.len();
        if !capacity.is_multiple_of(SECTOR_SIZE) {
            return Err(BlockError::Size {
                path: path.to_path_buf(),
                size: capacity,
            });
        }
        let mut avail_features = COMMON_FEATURES
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_BLK_SIZE
            | 1 << VIRTIO_BLK_F_FLUSH;
        avail_features |= if read_only {
            1 << VIRTIO_BLK_F_RO
        } else {
            1 << VIRTIO_BLK_F_DISCARD | 1 << VIRTIO_BLK_F_WRITE_ZEROES
        };
        Ok(Block {
            disk: Arc::new(Disk {
                file,
                capacity,
                read_only,
                id: disk_id,
            }),
            pool: None,
            unsignalled: 0,
            path: path.to_path_buf(),
            avail_features,
            config: config_space(capacity / SECTOR_SIZE),
            state: State::Inactive,
            metrics: BlockMetrics::default(),
        })
    }

    /// Runs requests on `threads` I/O workers (at most [`MAX_IO_THREADS`]; 0: every request
    /// on the device thread, the default). The workers start with the first request, on the
    /// thread that serves the queue, and inherit its CPU affinity.
    pub fn with_io_threads(mut self, threads: usize) -> Result<Block, BlockError> {
        self.pool = match threads.min(MAX_IO_THREADS) {
            0 => None,
            n => Some(
                Pool::new(Arc::clone(&self.disk), n).map_err(|source| BlockError::Pool {
                    path: self.path.clone(),
                    source,
                })?,
            ),
        };
        Ok(self)
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.disk.capacity
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn lock(file: &File, path: &Path, read_only: bool) -> Result<(), BlockError> {
    let result = if read_only {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match result {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(BlockError::Locked {
            path: path.to_path_buf(),
            read_only,
        }),
        Err(TryLockError::Error(source)) => Err(BlockError::Lock {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `struct virtio_blk_config` (§5.2.4), little-endian. Fields of features not offered
/// (`size_max`, geometry, topology, `writeback`, `num_queues`, secure erase, zoned) are zero.
fn config_space(capacity_sectors: u64) -> [u8; CONFIG_SIZE] {
    let mut c = [0u8; CONFIG_SIZE];
    let mut put = |offset: usize, bytes: &[u8]| {
        if let Some(dst) = c.get_mut(offset..offset + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(0, &capacity_sectors.to_le_bytes());
    put(12, &SEG_MAX.to_le_bytes());
    put(20, &(SECTOR_SIZE as u32).to_le_bytes());
    put(36, &MAX_DISCARD_SECTORS.to_le_bytes());
    put(40, &MAX_DISCARD_SEG.to_le_bytes());
    put(44, &DISCARD_SECTOR_ALIGNMENT.to_le_bytes());
    put(48, &MAX_WRITE_ZEROES_SECTORS.to_le_bytes());
    put(52, &MAX_WRITE_ZEROES_SEG.to_le_bytes());
    // write_zeroes_may_unmap: a write-zeroes with the UNMAP flag may punch a hole.
    put(56, &[1]);
    c
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn avail_features(&self) -> u64 {
        self.avail_features
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    /// Only `writeback` is ever writable, with `VIRTIO_BLK_F_CONFIG_WCE`, not offered.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), DeviceError> {
        let got = queues.len();
        let Ok([queue]) = <[Queue; 1]>::try_from(queues) else {
            return Err(DeviceError::QueueCount { expected: 1, got });
        };
        self.state = State::Active {
            mem: Arc::new(mem),
            queue: DeviceQueue::new(queue, acked_features),
            acked_features,
        };
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<bool, DeviceError> {
        let Block {
            disk,
            pool,
            state,
            metrics,
            ..
        } = self;
        let State::Active {
            mem,
            queue,
            acked_features,
        } = state
        else {
            return Ok(false);
        };
        if index != 0 {
            return Ok(false);
        }
        let acked = *acked_features;
        // One request alone, nothing in flight: run it here (see the module documentation).
        let alone = pool.as_ref().is_none_or(|p| p.in_flight() == 0) && queue.available(mem)? <= 1;
        let result = queue.serve(mem, |chain| {
            let request = Request::prepare(disk, mem, chain, acked, metrics)?;
            let request = match pool {
                Some(pool) if !(alone && request.moves_data()) && request.needs_io() => {
                    let job = Job {
                        head: chain.head,
                        request,
                        mem: Arc::clone(mem),
                    };
                    match pool.submit(job) {
                        Ok(()) => return Ok(Served::InFlight),
                        Err(job) => job.request,
                    }
                }
                _ => request,
            };
            Ok(Served::Used(request.run(disk, mem, metrics)))
        });
        // The workers get the whole batch at once, with one wake-up each at most.
        if let Some(pool) = pool {
            pool.dispatch();
        }
        result
    }

    fn backend_fd(&self) -> Option<RawFd> {
        self.pool.as_ref().map(Pool::done_fd)
    }

    /// Returns the requests the workers finished to the used ring. The interrupt waits until
    /// at least half of the batch in flight is back (or all of it): the driver then reaps
    /// and refills one half while the workers finish the other, and a batch costs the guest
    /// two interrupts, not one per request.
    fn process_backend(&mut self) -> Result<bool, DeviceError> {
        let Some(pool) = &mut self.pool else {
            return Ok(false);
        };
        let done = pool.take_done();
        let State::Active { mem, queue, .. } = &mut self.state else {
            return Ok(false);
        };
        if done.is_empty() {
            return Ok(false);
        }
        for finished in &done {
            self.metrics.add(&finished.metrics);
            queue.complete(mem, finished.head, finished.used_len)?;
        }
        self.unsignalled += done.len();
        if self.unsignalled < pool.in_flight() {
            return Ok(false);
        }
        self.unsignalled = 0;
        queue.notify_needed(mem)
    }

    fn queue_pending(&self, index: usize) -> bool {
        match &self.state {
            State::Active { queue, .. } => index == 0 && queue.pending(),
            State::Inactive => false,
        }
    }

    fn queue_batch(&self, index: usize) -> Option<u32> {
        match &self.state {
            State::Active { queue, .. } if index == 0 => Some(queue.last_served()),
            _ => None,
        }
    }

    fn reset(&mut self) {
        // No worker may write into guest memory after the reset.
        if let Some(pool) = &mut self.pool {
            pool.drain();
        }
        self.unsignalled = 0;
        self.state = State::Inactive;
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        self.metrics.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::testing::{
        activate, desc, mem, raised, read32, reg, status, transport, Driver, TempImage, F_INDIRECT,
        F_NEXT, F_WRITE, MEM_SIZE,
    };
    use crate::{Fault, MmioTransport, FEATURE_INDIRECT_DESC, FEATURE_VERSION_1};
    use virtio_bindings::virtio_blk::{
        VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD,
        VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
        VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
    };
    use vm_memory::{Bytes, GuestAddress};

    const HEADER: u64 = 0x10000;
    const DATA: u64 = 0x20000;
    const STATUS: u64 = 0x30000;
    const DISK_SIZE: usize = 64 * 1024;
    const ALL_BLOCK_FEATURES: u64 = FEATURE_VERSION_1
        | 1 << VIRTIO_BLK_F_FLUSH
        | 1 << VIRTIO_BLK_F_DISCARD
        | 1 << VIRTIO_BLK_F_WRITE_ZEROES;

    fn pattern(i: usize) -> u8 {
        (i % 251) as u8
    }

    fn header(m: &GuestMemoryMmap, request_type: u32, sector: u64) {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&request_type.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        m.write_slice(&h, GuestAddress(HEADER)).unwrap();
        m.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    }

    fn segment(m: &GuestMemoryMmap, sector: u64, num_sectors: u32, flags: u32) {
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&sector.to_le_bytes());
        s[8..12].copy_from_slice(&num_sectors.to_le_bytes());
        s[12..].copy_from_slice(&flags.to_le_bytes());
        m.write_slice(&s, GuestAddress(DATA)).unwrap();
    }

    fn status_byte(m: &GuestMemoryMmap) -> u32 {
        u32::from(m.read_obj::<u8>(GuestAddress(STATUS)).unwrap())
    }

    fn active_block<'a>(
        m: &'a GuestMemoryMmap,
        image: &TempImage,
        read_only: bool,
        features: u64,
    ) -> (Block, Driver<'a>) {
        let driver = Driver::new(m, 16);
        let mut block = Block::new(&image.path, read_only, "disk0").unwrap();
        block
            .activate(m.clone(), vec![driver.queue()], features)
            .unwrap();
        (block, driver)
    }

    fn metric(b: &Block, name: &str) -> u64 {
        b.metrics().into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn read_request_copies_the_sectors_into_guest_buffers() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, pattern);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_IN, 2);
        driver.add(&[
            (HEADER, 16, 0),
            (DATA, 512, F_WRITE),
            (DATA + 512, 512, F_WRITE),
            (STATUS, 1, F_WRITE),
        ]);

        let notify = block.process_queue(0).unwrap();

        assert!(notify);
        assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
        assert_eq!(driver.used_elem(0), (0, 1025));
        let mut data = vec![0u8; 1024];
        m.read_slice(&mut data, GuestAddress(DATA)).unwrap();
        assert_eq!(data, image.contents()[1024..2048]);
    }

    #[test]
    fn write_request_reaches_the_image() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_OUT, 1);
        m.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
        driver.add(&[(HEADER, 16, 0), (DATA, 512, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
        assert_eq!(driver.used_elem(0), (0, 1));
        let contents = image.contents();
        assert_eq!(contents[512..1024], [0xab; 512]);
        assert_eq!(contents[1024], 0);
        assert_eq!(metric(&block, "bytes_written"), 512);
    }

    #[test]
    fn request_whose_header_spans_two_descriptors_is_served() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, pattern);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_IN, 0);
        driver.add(&[
            (HEADER, 4, 0),
            (HEADER + 4, 12, 0),
            (DATA, 512, F_WRITE),
            (STATUS, 1, F_WRITE),
        ]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
    }

    #[test]
    fn flush_after_a_write_succeeds() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_FLUSH, 0);
        driver.add(&[(HEADER, 16, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
        assert_eq!(metric(&block, "requests_flush"), 1);
    }

    #[test]
    fn get_id_returns_the_configured_id_zero_padded() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_GET_ID, 0);
        m.write_slice(&[0xff; 20], GuestAddress(DATA)).unwrap();
        driver.add(&[(HEADER, 16, 0), (DATA, 20, F_WRITE), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        let id: [u8; 20] = m.read_obj(GuestAddress(DATA)).unwrap();
        assert_eq!(&id[..6], b"disk0\0");
        assert_eq!(id[6..], [0; 14]);
        assert_eq!(driver.used_elem(0), (0, 21));
    }

    #[test]
    fn write_zeroes_makes_the_range_read_as_zeros() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0x55);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_WRITE_ZEROES, 8);
        segment(&m, 8, 16, 0);
        driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
        let contents = image.contents();
        assert_eq!(contents.len(), DISK_SIZE);
        assert!(contents[4096..12288].iter().all(|&b| b == 0));
        assert_eq!(contents[4095], 0x55);
        assert_eq!(contents[12288], 0x55);
    }

    #[test]
    fn discard_frees_the_range_and_keeps_the_size() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0x55);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_DISCARD, 0);
        segment(&m, 8, 8, 0);
        driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
        assert_eq!(image.contents().len(), DISK_SIZE);
    }

    #[test]
    fn discard_with_the_unmap_flag_is_unsupported() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0x55);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_DISCARD, 0);
        segment(&m, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
        driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_UNSUPP);
    }

    #[test]
    fn discard_over_the_sector_limit_is_an_io_error() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0x55);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_DISCARD, 0);
        segment(&m, 0, MAX_DISCARD_SECTORS + 1, 0);
        driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
    }

    #[test]
    fn discard_without_the_feature_negotiated_is_unsupported() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0x55);
        let (mut block, driver) = active_block(&m, &image, false, FEATURE_VERSION_1);
        header(&m, VIRTIO_BLK_T_DISCARD, 0);
        segment(&m, 0, 8, 0);
        driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_UNSUPP);
        assert_eq!(image.contents()[0], 0x55);
    }

    #[test]
    fn read_beyond_the_capacity_is_an_io_error() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, pattern);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_IN, (DISK_SIZE / 512) as u64 - 1);
        driver.add(&[(HEADER, 16, 0), (DATA, 1024, F_WRITE), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
        assert_eq!(driver.used_elem(0), (0, 1));
        assert_eq!(metric(&block, "out_of_range"), 1);
    }

    #[test]
    fn sector_whose_byte_offset_overflows_is_an_io_error() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, pattern);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_IN, u64::MAX / 256);
        driver.add(&[(HEADER, 16, 0), (DATA, 512, F_WRITE), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
    }

    #[test]
    fn data_length_not_a_multiple_of_512_is_an_io_error() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, pattern);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, VIRTIO_BLK_T_OUT, 0);
        driver.add(&[(HEADER, 16, 0), (DATA, 100, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
        assert_eq!(
            image.contents()[..100],
            (0..100).map(pattern).collect::<Vec<_>>()
        );
    }

    #[test]
    fn unknown_request_type_is_unsupported() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, pattern);
        let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
        header(&m, 0x1234, 0);
        driver.add(&[(HEADER, 16, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_UNSUPP);
    }

    #[test]
    fn write_to_a_read_only_disk_is_an_io_error_and_changes_nothing() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0x11);
        let (mut block, driver) = active_block(&m, &image, true, FEATURE_VERSION_1);
        header(&m, VIRTIO_BLK_T_OUT, 0);
        m.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
        driver.add(&[(HEADER, 16, 0), (DATA, 512, 0), (STATUS, 1, F_WRITE)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
        assert!(image.contents().iter().all(|&b| b == 0x11));
        assert_eq!(metric(&block, "read_only_refused"), 1);
    }

    #[test]
    fn read_only_disk_offers_ro_and_neither_discard_nor_write_zeroes() {
        let image = TempImage::new(DISK_SIZE, |_| 0);

        let block = Block::new(&image.path, true, "ro").unwrap();

        let features = block.avail_features();
        assert_ne!(features & 1 << VIRTIO_BLK_F_RO, 0);
        assert_eq!(features & 1 << VIRTIO_BLK_F_DISCARD, 0);
        assert_eq!(features & 1 << VIRTIO_BLK_F_WRITE_ZEROES, 0);
    }

    #[test]
    fn config_space_carries_capacity_limits_and_block_size() {
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let block = Block::new(&image.path, false, "d").unwrap();
        let mut config = [0u8; 60];

        block.read_config(0, &mut config);

        let u32_at = |o: usize| u32::from_le_bytes(config[o..o + 4].try_into().unwrap());
        assert_eq!(
            u64::from_le_bytes(config[..8].try_into().unwrap()),
            (DISK_SIZE / 512) as u64
        );
        assert_eq!(u32_at(12), SEG_MAX);
        assert_eq!(u32_at(20), 512);
        assert_eq!(
            [u32_at(36), u32_at(40), u32_at(44), u32_at(48), u32_at(52)],
            [
                MAX_DISCARD_SECTORS,
                MAX_DISCARD_SEG,
                DISCARD_SECTOR_ALIGNMENT,
                MAX_WRITE_ZEROES_SECTORS,
                MAX_WRITE_ZEROES_SEG
            ]
        );
        assert_eq!(config[56], 1);
    }

    #[test]
    fn image_size_not_a_multiple_of_512_is_refused() {
        let image = TempImage::new(1000, |_| 0);

        let err = Block::new(&image.path, false, "d").unwrap_err();

        assert!(matches!(err, BlockError::Size { size: 1000, .. }));
    }

    #[test]
    fn second_writer_is_refused_with_the_path_in_the_message() {
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let _first = Block::new(&image.path, false, "a").unwrap();

        let err = Block::new(&image.path, false, "b").unwrap_err();

        assert!(matches!(err, BlockError::Locked { .. }));
        assert!(err.to_string().contains(&image.path.display().to_string()));
    }

    #[test]
    fn two_read_only_users_share_an_image() {
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let _first = Block::new(&image.path, true, "a").unwrap();

        let second = Block::new(&image.path, true, "b");

        assert!(second.is_ok());
    }

    #[test]
    fn writer_is_refused_while_a_reader_holds_the_image() {
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let _reader = Block::new(&image.path, true, "a").unwrap();

        let err = Block::new(&image.path, false, "b").unwrap_err();

        assert!(matches!(err, BlockError::Locked { .. }));
    }

    #[test]
    fn id_longer_than_20_bytes_is_refused() {
        let image = TempImage::new(DISK_SIZE, |_| 0);

        let err = Block::new(&image.path, false, "a-very-long-disk-identifier").unwrap_err();

        assert!(matches!(err, BlockError::IdTooLong { .. }));
    }

    #[test]
    fn read_through_an_indirect_table_is_served() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, pattern);
        let (mut block, driver) = active_block(&m, &image, false, FEATURE_INDIRECT_DESC);
        header(&m, VIRTIO_BLK_T_IN, 0);
        let table = GuestAddress(0x8000);
        driver.put_table(
            table,
            &[
                desc(HEADER, 16, F_NEXT, 1),
                desc(DATA, 512, F_NEXT | F_WRITE, 2),
                desc(STATUS, 1, F_WRITE, 0),
            ],
        );
        driver.add(&[(table.0, 48, F_INDIRECT)]);

        block.process_queue(0).unwrap();

        assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
        assert_eq!(driver.used_elem(0), (0, 513));
    }

    // The I/O workers: a batch goes to them and comes back through `process_backend`.

    /// A request at slot `i`: its header, data and status each at their own address.
    fn slot(i: u64) -> (u64, u64, u64) {
        (HEADER + i * 16, DATA + i * 0x1000, STATUS + i)
    }

    fn header_at(m: &GuestMemoryMmap, at: u64, request_type: u32, sector: u64) {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&request_type.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        m.write_slice(&h, GuestAddress(at)).unwrap();
    }

    /// Waits for the workers and returns what they finished to the used ring until `used`
    /// chains are back; returns whether any of those calls asked for an interrupt.
    fn complete_until(block: &mut Block, driver: &Driver<'_>, used: u16) -> bool {
        assert!(
            block.backend_fd().is_some(),
            "a block device with workers has a backend fd"
        );
        let mut notify = false;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while driver.used_idx() < used {
            assert!(
                std::time::Instant::now() < deadline,
                "workers did not finish"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
            notify |= block.process_backend().unwrap();
        }
        notify
    }

    #[test]
    fn a_batch_of_reads_runs_on_the_workers_and_completes_through_the_backend() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, pattern);
        let driver = Driver::new(&m, 16);
        let mut block = Block::new(&image.path, false, "disk0")
            .unwrap()
            .with_io_threads(2)
            .unwrap();
        block
            .activate(m.clone(), vec![driver.queue()], ALL_BLOCK_FEATURES)
            .unwrap();
        for i in 0..4 {
            let (header, data, status) = slot(i);
            header_at(&m, header, VIRTIO_BLK_T_IN, 2 * i);
            m.write_obj(0xffu8, GuestAddress(status)).unwrap();
            driver.add(&[(header, 16, 0), (data, 1024, F_WRITE), (status, 1, F_WRITE)]);
        }

        let notify_at_once = block.process_queue(0).unwrap();
        let used_at_once = driver.used_idx();
        let notify_later = complete_until(&mut block, &driver, 4);

        assert!(!notify_at_once);
        assert_eq!(used_at_once, 0);
        assert!(notify_later);
        let mut lens: Vec<_> = (0..4).map(|i| driver.used_elem(i)).collect();
        lens.sort();
        assert_eq!(lens, [(0, 1025), (3, 1025), (6, 1025), (9, 1025)]);
        for i in 0..4u64 {
            let (_, data, status) = slot(i);
            let mut got = vec![0u8; 1024];
            m.read_slice(&mut got, GuestAddress(data)).unwrap();
            let at = (i as usize) * 1024;
            assert_eq!(got, image.contents()[at..at + 1024], "request {i}");
            assert_eq!(
                u32::from(m.read_obj::<u8>(GuestAddress(status)).unwrap()),
                VIRTIO_BLK_S_OK
            );
        }
        assert_eq!(metric(&block, "bytes_read"), 4096);
        assert_eq!(metric(&block, "requests_in"), 4);
    }

    #[test]
    fn writes_on_the_workers_reach_the_image() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let driver = Driver::new(&m, 16);
        let mut block = Block::new(&image.path, false, "disk0")
            .unwrap()
            .with_io_threads(3)
            .unwrap();
        block
            .activate(m.clone(), vec![driver.queue()], ALL_BLOCK_FEATURES)
            .unwrap();
        for i in 0..3 {
            let (header, data, status) = slot(i);
            header_at(&m, header, VIRTIO_BLK_T_OUT, i);
            m.write_slice(&[0x10 + i as u8; 512], GuestAddress(data))
                .unwrap();
            driver.add(&[(header, 16, 0), (data, 512, 0), (status, 1, F_WRITE)]);
        }

        block.process_queue(0).unwrap();
        complete_until(&mut block, &driver, 3);

        let contents = image.contents();
        for i in 0..3usize {
            assert!(contents[i * 512..(i + 1) * 512]
                .iter()
                .all(|&b| b == 0x10 + i as u8));
        }
        assert_eq!(metric(&block, "bytes_written"), 1536);
    }

    #[test]
    fn a_lone_read_runs_on_the_device_thread_even_with_workers() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, pattern);
        let driver = Driver::new(&m, 16);
        let mut block = Block::new(&image.path, false, "disk0")
            .unwrap()
            .with_io_threads(2)
            .unwrap();
        block
            .activate(m.clone(), vec![driver.queue()], ALL_BLOCK_FEATURES)
            .unwrap();
        header(&m, VIRTIO_BLK_T_IN, 0);
        driver.add(&[(HEADER, 16, 0), (DATA, 512, F_WRITE), (STATUS, 1, F_WRITE)]);

        let notify = block.process_queue(0).unwrap();

        assert!(notify);
        assert_eq!(driver.used_elem(0), (0, 513));
        assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
    }

    #[test]
    fn a_lone_flush_goes_to_the_workers() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let driver = Driver::new(&m, 16);
        let mut block = Block::new(&image.path, false, "disk0")
            .unwrap()
            .with_io_threads(1)
            .unwrap();
        block
            .activate(m.clone(), vec![driver.queue()], ALL_BLOCK_FEATURES)
            .unwrap();
        header(&m, VIRTIO_BLK_T_FLUSH, 0);
        driver.add(&[(HEADER, 16, 0), (STATUS, 1, F_WRITE)]);

        let notify_at_once = block.process_queue(0).unwrap();
        complete_until(&mut block, &driver, 1);

        assert!(!notify_at_once);
        assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
        assert_eq!(metric(&block, "requests_flush"), 1);
    }

    #[test]
    fn reset_waits_for_the_workers_and_nothing_comes_back_after_it() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let driver = Driver::new(&m, 16);
        let mut block = Block::new(&image.path, false, "disk0")
            .unwrap()
            .with_io_threads(2)
            .unwrap();
        block
            .activate(m.clone(), vec![driver.queue()], ALL_BLOCK_FEATURES)
            .unwrap();
        for i in 0..8 {
            let (header, data, status) = slot(i);
            header_at(&m, header, VIRTIO_BLK_T_OUT, i);
            driver.add(&[(header, 16, 0), (data, 512, 0), (status, 1, F_WRITE)]);
        }
        block.process_queue(0).unwrap();

        block.reset();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let notify = block.process_backend().unwrap();

        assert!(!notify);
        assert_eq!(driver.used_idx(), 0);
        assert_eq!(block.pool.as_ref().map(Pool::in_flight), Some(0));
    }

    // Hostile drivers, through the transport: each malformation class marks this device
    // DEVICE_NEEDS_RESET with a configuration interrupt, counts its cause, returns nothing
    // to the used ring, and leaves the disk untouched.

    fn hostile(features: u64, setup: impl FnOnce(&Driver<'_>)) -> (MmioTransport, Vec<u8>) {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0x5a);
        let driver = Driver::new(&m, 16);
        let block = Block::new(&image.path, false, "victim").unwrap();
        let (t, irq) = transport(Box::new(block), &m);
        let mut t = t.with_log_sink(Box::new(std::io::sink()));
        activate(&mut t, FEATURE_VERSION_1 | features, &[&driver]);
        header(&m, VIRTIO_BLK_T_OUT, 0);
        setup(&driver);

        let more = t.queue_notified(0);

        assert!(!more);
        assert_ne!(read32(&mut t, reg::STATUS) & status::NEEDS_RESET, 0);
        assert_eq!(read32(&mut t, reg::INTERRUPT_STATUS), 2);
        assert_eq!(raised(&irq), 1);
        assert_eq!(driver.used_idx(), 0);
        (t, image.contents())
    }

    fn fault_count(t: &MmioTransport, fault: Fault) -> u64 {
        t.metrics()
            .into_iter()
            .find(|(n, _)| *n == fault.metric_name())
            .unwrap()
            .1
    }

    #[test]
    fn descriptor_loop_marks_the_device_needs_reset() {
        let (t, disk) = hostile(0, |d| {
            d.put(0, desc(HEADER, 16, F_NEXT, 1));
            d.put(1, desc(DATA, 512, F_NEXT, 0));
            d.push_avail(0);
        });

        assert_eq!(fault_count(&t, Fault::DescriptorLoop), 1);
        assert!(disk.iter().all(|&b| b == 0x5a));
    }

    #[test]
    fn buffer_outside_guest_memory_marks_the_device_needs_reset() {
        let (t, _) = hostile(0, |d| {
            d.add(&[
                (HEADER, 16, 0),
                (MEM_SIZE + 0x1000, 512, 0),
                (STATUS, 1, F_WRITE),
            ]);
        });

        assert_eq!(fault_count(&t, Fault::AddressOutOfRange), 1);
    }

    #[test]
    fn buffer_length_wrapping_the_address_space_marks_the_device_needs_reset() {
        let (t, _) = hostile(0, |d| {
            d.add(&[
                (HEADER, 16, 0),
                (u64::MAX - 100, 512, 0),
                (STATUS, 1, F_WRITE),
            ]);
        });

        assert_eq!(fault_count(&t, Fault::LengthOverflow), 1);
    }

    #[test]
    fn indirect_table_without_the_feature_marks_the_device_needs_reset() {
        let (t, _) = hostile(0, |d| {
            d.add(&[(0x8000, 48, F_INDIRECT)]);
        });

        assert_eq!(fault_count(&t, Fault::IndirectNotNegotiated), 1);
    }

    #[test]
    fn nested_indirect_table_marks_the_device_needs_reset() {
        let (t, _) = hostile(FEATURE_INDIRECT_DESC, |d| {
            d.put_table(GuestAddress(0x8000), &[desc(0x9000, 16, F_INDIRECT, 0)]);
            d.add(&[(0x8000, 16, F_INDIRECT)]);
        });

        assert_eq!(fault_count(&t, Fault::IndirectNested), 1);
    }

    #[test]
    fn indirect_table_length_not_a_multiple_of_16_marks_the_device_needs_reset() {
        let (t, _) = hostile(FEATURE_INDIRECT_DESC, |d| {
            d.add(&[(0x8000, 40, F_INDIRECT)]);
        });

        assert_eq!(fault_count(&t, Fault::IndirectBadLength), 1);
    }

    #[test]
    fn read_request_with_a_device_readable_data_buffer_marks_the_device_needs_reset() {
        let (t, _) = hostile(0, |d| {
            let m = mem_of(d);
            header(m, VIRTIO_BLK_T_IN, 0);
            d.add(&[(HEADER, 16, 0), (DATA, 512, 0), (STATUS, 1, F_WRITE)]);
        });

        assert_eq!(fault_count(&t, Fault::WrongDirection), 1);
    }

    #[test]
    fn request_without_a_writable_status_byte_marks_the_device_needs_reset() {
        let (t, _) = hostile(0, |d| {
            d.add(&[(HEADER, 16, 0)]);
        });

        assert_eq!(fault_count(&t, Fault::MalformedRequest), 1);
    }

    #[test]
    fn chain_longer_than_the_queue_allows_marks_the_device_needs_reset() {
        let (t, _) = hostile(FEATURE_INDIRECT_DESC, |d| {
            let entries: Vec<_> = (0..=QUEUE_SIZE)
                .map(|i| desc(DATA, 512, F_NEXT, i + 1))
                .collect();
            d.put_table(GuestAddress(0x8000), &entries);
            d.add(&[(0x8000, (u32::from(QUEUE_SIZE) + 1) * 16, F_INDIRECT)]);
        });

        assert_eq!(fault_count(&t, Fault::ChainTooLong), 1);
    }

    #[test]
    fn head_index_beyond_the_queue_marks_the_device_needs_reset() {
        let (t, _) = hostile(0, |d| d.push_avail(40));

        assert_eq!(fault_count(&t, Fault::HeadOutOfRange), 1);
    }

    #[test]
    fn avail_index_running_ahead_marks_the_device_needs_reset() {
        let (t, _) = hostile(0, |d| d.set_avail_idx(100));

        assert_eq!(fault_count(&t, Fault::AvailIndex), 1);
    }

    fn mem_of<'a>(d: &Driver<'a>) -> &'a GuestMemoryMmap {
        d.memory()
    }

    #[test]
    fn broken_block_device_leaves_its_neighbour_working() {
        let m = mem();
        let image = TempImage::new(DISK_SIZE, |_| 0);
        let blk_queue = Driver::at(&m, GuestAddress(0), 16);
        let rng_queue = Driver::at(&m, GuestAddress(0x4000), 16);
        let block = Block::new(&image.path, false, "victim").unwrap();
        let (blk, _) = transport(Box::new(block), &m);
        let mut blk = blk.with_log_sink(Box::new(std::io::sink()));
        let (mut rng, rng_irq) = transport(Box::new(Rng::new(64)), &m);
        activate(&mut blk, FEATURE_VERSION_1, &[&blk_queue]);
        activate(&mut rng, FEATURE_VERSION_1, &[&rng_queue]);
        blk_queue.put(0, desc(HEADER, 16, F_NEXT, 0));
        blk_queue.push_avail(0);
        rng_queue.add(&[(0x50000, 32, F_WRITE)]);

        blk.queue_notified(0);
        rng.queue_notified(0);

        assert_eq!(blk.needs_reset(), Some(Fault::DescriptorLoop));
        assert_eq!(rng.needs_reset(), None);
        assert_eq!(read32(&mut rng, reg::STATUS) & status::NEEDS_RESET, 0);
        assert_eq!(rng_queue.used_elem(0), (0, 32));
        assert_eq!(raised(&rng_irq), 1);
    }
}
