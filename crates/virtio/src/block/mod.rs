//! The block device, virtio-blk (virtio 1.2 §5.2), over a raw disk image file.

mod device;
mod metrics;
mod pool;
// The crate's one use of `unsafe`: system calls on guest buffers.
#[allow(unsafe_code)]
mod io;
mod request;

pub use device::{
    Block, BlockError, DISCARD_SECTOR_ALIGNMENT, ID_BYTES, MAX_DISCARD_SECTORS, MAX_DISCARD_SEG,
    MAX_IO_THREADS, MAX_WRITE_ZEROES_SECTORS, MAX_WRITE_ZEROES_SEG, QUEUE_SIZE, SECTOR_SIZE,
    SEG_MAX,
};
