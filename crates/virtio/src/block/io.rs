//! Positional, vectored I/O between the disk image and guest memory: one `preadv(2)` /
//! `pwritev(2)` per request (more only past `IOV_MAX` buffers or after a short transfer), where
//! `seek` plus one `read`/`write` per guest buffer would take a system call per 4 KiB page of a
//! large request.
//!
//! A read of at least [`SPLIT_BYTES`] is cut in two at a byte boundary: a helper thread moves
//! the second half while the device thread moves the first, and the request completes when
//! both are done. Copying a large request is what bounds sequential throughput, and a host
//! page-cache copy on two cores goes nearly twice as fast. (Callers do not split writes:
//! buffered writes to one file serialize on its inode lock.)
//!
//! The only `unsafe` of the crate: the system calls take the host addresses of guest buffers.

use std::fs::File;
use std::io::{Error, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::{self, Receiver, Sender};

use vm_memory::VolatileSlice;

/// Most buffers per system call (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// Requests at least this large are split between the device thread and the helper.
pub(crate) const SPLIT_BYTES: usize = 256 * 1024;

/// One guest buffer, as the system calls take it.
#[derive(Clone, Copy)]
struct Iovec(libc::iovec);

// SAFETY: an `Iovec` is an address and a length. The helper thread that receives some only
// uses them while the device thread that built them waits for it, with the guest memory they
// point into mapped and held (the `PtrGuardMut`s live across the wait).
unsafe impl Send for Iovec {}

/// Half of a request, for the helper.
struct Job {
    fd: RawFd,
    offset: u64,
    iovs: Vec<Iovec>,
    write: bool,
}

/// The helper thread of one disk.
#[derive(Debug)]
pub(crate) struct Helper {
    jobs: Sender<Job>,
    done: Receiver<Result<(), Error>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Helper {
    /// Starts the helper thread; it ends when the helper is dropped.
    pub(crate) fn spawn() -> std::io::Result<Helper> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("blk-io".into())
            .spawn(move || {
                for mut job in job_rx {
                    let result = move_all(job.fd, job.offset, &mut job.iovs, job.write);
                    if done_tx.send(result).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Helper { jobs, done })
    }
}

/// Fills `slices`, in order, from `file` starting at `offset`.
pub(crate) fn read_into(
    file: &File,
    offset: u64,
    slices: &[VolatileSlice<'_, ()>],
    helper: Option<&Helper>,
) -> Result<(), Error> {
    transfer(file, offset, slices, false, helper)
}

/// Writes `slices`, in order, to `file` starting at `offset`.
pub(crate) fn write_from(
    file: &File,
    offset: u64,
    slices: &[VolatileSlice<'_, ()>],
    helper: Option<&Helper>,
) -> Result<(), Error> {
    transfer(file, offset, slices, true, helper)
}

fn transfer(
    file: &File,
    offset: u64,
    slices: &[VolatileSlice<'_, ()>],
    write: bool,
    helper: Option<&Helper>,
) -> Result<(), Error> {
    // The guards keep the slices' host addresses valid until the calls are done.
    let guards: Vec<_> = slices.iter().map(VolatileSlice::ptr_guard_mut).collect();
    let mut iovs: Vec<Iovec> = guards
        .iter()
        .zip(slices)
        .filter(|(_, s)| !s.is_empty())
        .map(|(g, s)| {
            Iovec(libc::iovec {
                iov_base: g.as_ptr().cast(),
                iov_len: s.len(),
            })
        })
        .collect();
    let total: usize = iovs.iter().map(|v| v.0.iov_len).sum();
    let fd = file.as_raw_fd();
    let Some(helper) = helper.filter(|_| total >= SPLIT_BYTES) else {
        return move_all(fd, offset, &mut iovs, write);
    };
    let (mut first, second) = split(iovs, total / 2);
    let sent = helper.jobs.send(Job {
        fd,
        offset: offset + (total / 2) as u64,
        iovs: second,
        write,
    });
    if let Err(mpsc::SendError(mut job)) = sent {
        // No helper thread (it could not run): both halves here.
        move_all(fd, job.offset, &mut job.iovs, write)?;
        return move_all(fd, offset, &mut first, write);
    }
    let mine = move_all(fd, offset, &mut first, write);
    // Wait for the helper whatever happened here: the guards must outlive its use of them.
    let theirs = helper
        .done
        .recv()
        .unwrap_or_else(|_| Err(Error::other("block I/O helper thread ended")));
    mine.and(theirs)
}

/// Splits `iovs` after `at` bytes.
fn split(mut iovs: Vec<Iovec>, at: usize) -> (Vec<Iovec>, Vec<Iovec>) {
    let mut left = at;
    for i in 0..iovs.len() {
        let Some(v) = iovs.get_mut(i) else { break };
        if left >= v.0.iov_len {
            left -= v.0.iov_len;
            continue;
        }
        let mut tail = *v;
        v.0.iov_len = left;
        // SAFETY: `left < iov_len`: the new base stays inside the same buffer.
        tail.0.iov_base = unsafe { tail.0.iov_base.cast::<u8>().add(left) }.cast();
        tail.0.iov_len -= left;
        let mut second = iovs.split_off(i + 1);
        second.insert(0, tail);
        iovs.retain(|v| v.0.iov_len > 0);
        return (iovs, second);
    }
    (iovs, Vec::new())
}

/// Moves every byte of `iovs` between `fd` at `offset` and guest memory.
fn move_all(fd: RawFd, mut offset: u64, iovs: &mut [Iovec], write: bool) -> Result<(), Error> {
    let mut first = 0usize;
    while first < iovs.len() {
        let Some(batch) = iovs.get(first..iovs.len().min(first + IOV_MAX)) else {
            break;
        };
        // `Iovec` is a transparent wrapper of `libc::iovec`.
        let batch: Vec<libc::iovec> = batch.iter().map(|v| v.0).collect();
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
            let Some(Iovec(iov)) = iovs.get_mut(first) else {
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

        read_into(
            &file,
            100,
            &slices_of(&m, &[(0x1000, 10), (0x3000, 0), (0x2000, 20)]),
            None,
        )
        .unwrap();

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

        write_from(&file, 8, &slices_of(&m, &ranges), None).unwrap();

        let contents = image.contents();
        let expect: Vec<u8> = (0..1500u64).map(|i| (i % 200) as u8 + 1).collect();
        assert_eq!(contents[8..1508], expect[..]);
        assert_eq!(contents[1508], 0);
    }

    #[test]
    fn large_request_split_with_the_helper_reads_and_writes_every_byte_in_place() {
        let len = SPLIT_BYTES + 3 * 512;
        let image = TempImage::new(len + 4096, |i| (i % 253) as u8);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&image.path)
            .unwrap();
        let m = vm_memory::GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        // Three uneven buffers, so the split falls inside one of them.
        let ranges = [
            (0x10_0000, 1000),
            (0x20_0000, len - 3000),
            (0x80_0000, 2000),
        ];
        let helper = Helper::spawn().unwrap();

        read_into(&file, 512, &slices_of(&m, &ranges), Some(&helper)).unwrap();

        let mut got = Vec::new();
        for &(addr, n) in &ranges {
            let mut part = vec![0u8; n];
            m.read_slice(&mut part, GuestAddress(addr)).unwrap();
            got.extend(part);
        }
        let expect: Vec<u8> = (512..512 + len).map(|i| (i % 253) as u8).collect();
        assert!(got == expect, "read back differs");

        write_from(&file, 4096, &slices_of(&m, &ranges), Some(&helper)).unwrap();
        let contents = image.contents();
        assert!(
            contents[4096..4096 + len] == expect[..],
            "written back differs"
        );
    }

    #[test]
    fn split_cuts_inside_a_buffer_at_the_byte_asked() {
        let mut bytes = vec![0u8; 300];
        let base = bytes.as_mut_ptr();
        let iov = |off: usize, len: usize| {
            Iovec(libc::iovec {
                // SAFETY: inside `bytes`.
                iov_base: unsafe { base.add(off) }.cast(),
                iov_len: len,
            })
        };

        let (a, b) = split(vec![iov(0, 100), iov(100, 200)], 150);

        let lens = |v: &[Iovec]| v.iter().map(|v| v.0.iov_len).collect::<Vec<_>>();
        assert_eq!((lens(&a), lens(&b)), (vec![100, 50], vec![150]));
        assert_eq!(b[0].0.iov_base as usize - base as usize, 150);
    }

    #[test]
    fn reading_past_the_end_of_the_file_is_an_error() {
        let image = TempImage::new(512, |_| 1);
        let file = File::open(&image.path).unwrap();
        let m = mem();

        let err = read_into(&file, 512, &slices_of(&m, &[(0x1000, 512)]), None).unwrap_err();

        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    }
}
