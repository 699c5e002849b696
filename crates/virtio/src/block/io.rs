//! Positional, vectored I/O between the disk image and guest memory: one `preadv(2)` /
//! `pwritev(2)` per request (more only past `IOV_MAX` buffers or after a short transfer), where
//! `seek` plus one `read`/`write` per guest buffer would take a system call per 4 KiB page of a
//! large request. Called on the device thread or on a worker of the disk's pool (`pool.rs`).
//!
//! The only `unsafe` of the crate: the system calls take the host addresses of guest buffers.

use std::fs::File;
use std::io::{Error, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};

use vm_memory::VolatileSlice;

/// Most buffers per system call (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// Writes `slices`, in order, to `file` starting at `offset` (`write`), or fills them from
/// there.
pub(crate) fn transfer(
    file: &File,
    offset: u64,
    slices: &[VolatileSlice<'_, ()>],
    write: bool,
) -> Result<(), Error> {
    // The guards keep the slices' host addresses valid until the calls are done.
    let guards: Vec<_> = slices.iter().map(VolatileSlice::ptr_guard_mut).collect();
    let mut iovs: Vec<libc::iovec> = guards
        .iter()
        .zip(slices)
        .filter(|(_, s)| !s.is_empty())
        .map(|(g, s)| libc::iovec {
            iov_base: g.as_ptr().cast(),
            iov_len: s.len(),
        })
        .collect();
    move_all(file.as_raw_fd(), offset, &mut iovs, write)
}

/// Moves every byte of `iovs` between `fd` at `offset` and guest memory.
fn move_all(
    fd: RawFd,
    mut offset: u64,
    iovs: &mut [libc::iovec],
    write: bool,
) -> Result<(), Error> {
    let mut first = 0usize;
    while first < iovs.len() {
        let Some(batch) = iovs.get(first..iovs.len().min(first + IOV_MAX)) else {
            break;
        };
        let at = libc::off_t::try_from(offset).map_err(|_| Error::from(ErrorKind::InvalidInput))?;
        // SAFETY: every iovec names a live range of guest memory (inside a mapped region, held
        // by the caller's guards until this returns) of exactly its length; `batch.len()` is at
        // most IOV_MAX. The kernel reads or writes only those ranges.
        let n = unsafe {
            if write {
                libc::pwritev(fd, batch.as_ptr(), batch.len() as libc::c_int, at)
            } else {
                libc::preadv(fd, batch.as_ptr(), batch.len() as libc::c_int, at)
            }
        };
        if n < 0 {
            let err = Error::last_os_error();
            if err.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(Error::from(if write {
                ErrorKind::WriteZero
            } else {
                ErrorKind::UnexpectedEof
            }));
        }
        let mut done = n as usize;
        offset += done as u64;
        while done > 0 {
            let Some(iov) = iovs.get_mut(first) else {
                break;
            };
            if done >= iov.iov_len {
                done -= iov.iov_len;
                first += 1;
            } else {
                // SAFETY: `done < iov_len`: the new base stays inside the same buffer.
                iov.iov_base = unsafe { iov.iov_base.cast::<u8>().add(done) }.cast();
                iov.iov_len -= done;
                done = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{mem, TempImage};
    use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

    fn slices_of(
        m: &vm_memory::GuestMemoryMmap,
        ranges: &[(u64, usize)],
    ) -> Vec<VolatileSlice<'static, ()>> {
        // The memory outlives the test body: leak a clone for 'static slices.
        let m: &'static vm_memory::GuestMemoryMmap = Box::leak(Box::new(m.clone()));
        ranges
            .iter()
            .flat_map(|&(addr, len)| m.get_slices(GuestAddress(addr), len).map(Result::unwrap))
            .collect()
    }

    #[test]
    fn read_fills_scattered_buffers_in_order_from_the_offset() {
        let image = TempImage::new(4096, |i| (i % 251) as u8);
        let file = File::open(&image.path).unwrap();
        let m = mem();

        let slices = slices_of(&m, &[(0x1000, 10), (0x3000, 0), (0x2000, 20)]);

        transfer(&file, 100, &slices, false).unwrap();

        let mut first = [0u8; 10];
        let mut second = [0u8; 20];
        m.read_slice(&mut first, GuestAddress(0x1000)).unwrap();
        m.read_slice(&mut second, GuestAddress(0x2000)).unwrap();
        let expect: Vec<u8> = (100..130).map(|i| (i % 251) as u8).collect();
        assert_eq!(first, expect[..10]);
        assert_eq!(second, expect[10..]);
    }

    #[test]
    fn more_buffers_than_one_call_takes_are_written_in_several_calls() {
        let image = TempImage::new(4096, |_| 0);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&image.path)
            .unwrap();
        let m = mem();
        let ranges: Vec<(u64, usize)> = (0..1500u64).map(|i| (0x1000 + 2 * i, 1)).collect();
        for i in 0..1500u64 {
            m.write_obj((i % 200) as u8 + 1, GuestAddress(0x1000 + 2 * i))
                .unwrap();
        }

        transfer(&file, 8, &slices_of(&m, &ranges), true).unwrap();

        let contents = image.contents();
        let expect: Vec<u8> = (0..1500u64).map(|i| (i % 200) as u8 + 1).collect();
        assert_eq!(contents[8..1508], expect[..]);
        assert_eq!(contents[1508], 0);
    }

    #[test]
    fn reading_past_the_end_of_the_file_is_an_error() {
        let image = TempImage::new(512, |_| 1);
        let file = File::open(&image.path).unwrap();
        let m = mem();

        let err = transfer(&file, 512, &slices_of(&m, &[(0x1000, 512)]), false).unwrap_err();

        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    }
}
