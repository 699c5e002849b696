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
mod tests;
