//! The TAP backend of virtio-net devices: a host TAP interface (`tap = "NAME"` in the system
//! description), opened through `/dev/net/tun` with `TUNSETIFF` (`IFF_TAP | IFF_NO_PI |
//! IFF_VNET_HDR`: whole Ethernet frames, no packet-information prefix, each behind the same
//! 12-byte virtio-net header the device uses, `TUNSETVNETHDRSZ`). The host kernel acts on the
//! offloads the header asks for (checksums, segmentation of 64 KiB TCP frames) and, once
//! `TUNSETOFFLOAD` told it what the guest accepts, hands the guest frames that still need them.
//! An existing interface
//! of that name is attached to (its owner, or `CAP_NET_ADMIN`); a missing one is created
//! (`CAP_NET_ADMIN`) and disappears with the partition process. Bringing the interface up and
//! addressing or bridging it is the host administrator's business.
//!
//! Runs on the partition's device thread: reads and writes are nonblocking, so a host side that
//! does not keep up drops frames (the kernel's TAP queue, then the device's counters) rather
//! than stalling the partition's devices.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use bulkhead_virtio::net::{NetBackend, Offloads, HEADER_LEN};

/// The clone device of the TUN/TAP driver.
const TUN_CLONE_DEVICE: &str = "/dev/net/tun";

/// An open TAP interface.
#[derive(Debug)]
pub struct Tap {
    file: File,
}

/// Why a TAP interface could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name does not fit `IFNAMSIZ` or holds a NUL byte (the description's rules forbid
    /// both).
    #[error("TAP name \"{0}\" is not a valid interface name")]
    Name(String),
    /// `/dev/net/tun` could not be opened.
    #[error("cannot open {TUN_CLONE_DEVICE}")]
    Open(#[source] std::io::Error),
    /// `TUNSETIFF` failed (no `CAP_NET_ADMIN`, an interface of that name that is not a TAP or
    /// belongs to someone else).
    #[error("cannot attach to TAP interface \"{0}\"")]
    Attach(String, #[source] std::io::Error),
}

impl Tap {
    /// Attaches to TAP interface `name`, creating it if missing; nonblocking.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        let bytes = name.as_bytes();
        if bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(TapError::Name(name.to_string()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_CLONE_DEVICE)
            .map_err(TapError::Open)?;
        // SAFETY: `ifreq` is plain integers and a union of plain integers and pointers, for
        // which all-zero bytes are a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is one, NUL-terminated
        // name included (checked above), and lives across the call; `file` is an open
        // descriptor of /dev/net/tun.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(TapError::Attach(
                name.to_string(),
                std::io::Error::last_os_error(),
            ));
        }
        let header_len = HEADER_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer, which points to a live
        // local.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &header_len) };
        if rc < 0 {
            return Err(TapError::Attach(
                name.to_string(),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Tap { file })
    }
}

/// The `TUNSETOFFLOAD` flags for what the guest accepts.
fn tun_offload_flags(offloads: Offloads) -> libc::c_uint {
    let mut flags = 0;
    if offloads.csum {
        flags |= libc::TUN_F_CSUM;
        // Segmented frames always carry a partial checksum: without `csum` none are taken.
        if offloads.tso4 {
            flags |= libc::TUN_F_TSO4;
        }
        if offloads.tso6 {
            flags |= libc::TUN_F_TSO6;
        }
    }
    flags
}

impl NetBackend for Tap {
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        loop {
            match self.file.write(frame) {
                Ok(n) if n == frame.len() => return Ok(()),
                Ok(_) => return Err(std::io::Error::other("short write to the TAP device")),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        loop {
            match self.file.read(buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn set_offloads(&mut self, offloads: Offloads) -> std::io::Result<()> {
        let flags = tun_offload_flags(offloads);
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of flags); no
        // memory is passed.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(flags),
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmentation_is_asked_for_only_with_checksum_offload() {
        let all = Offloads {
            csum: true,
            tso4: true,
            tso6: true,
        };
        let no_csum = Offloads { csum: false, ..all };

        assert_eq!(tun_offload_flags(all), 0x07);
        assert_eq!(tun_offload_flags(no_csum), 0);
        assert_eq!(tun_offload_flags(Offloads::default()), 0);
    }

    #[test]
    fn name_that_does_not_fit_ifnamsiz_is_refused_before_any_system_call() {
        let err = Tap::open("a-name-of-16-chr").unwrap_err();

        assert!(matches!(err, TapError::Name(_)));
    }
}
