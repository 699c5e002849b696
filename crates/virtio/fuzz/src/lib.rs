//! Fuzz harnesses for `bulkhead-virtio`, shared by the targets in `fuzz_targets/` and the seed
//! generator (`src/bin/make-seeds.rs`). Everything goes through the crate's public API, the
//! way a partition drives it: register writes bring the device up, guest memory holds what a
//! hostile driver put there, `queue_notified` is the kick.
//!
//! Device inputs (`block`, `rng`, `console`, `net`, `vsock`):
//!
//! ```text
//! [0] feature bits the driver acknowledges: bit 0 RING_EVENT_IDX, bit 1 RING_INDIRECT_DESC,
//!     bit 2 the device's own features (block: FLUSH, DISCARD, WRITE_ZEROES), bit 3 read-only
//!     disk (block)
//! [1] queue size: 1 << (byte % 9)
//! [2] rounds: 1 + byte % 4 (console, net: alternating receive and transmit queue, with host
//!     input pushed before each receive kick; vsock: transmit queue, host sockets accepted and
//!     written to then `backend_ready`, receive queue, in turn)
//! [3..] guest memory from address 0 (at most MEM_SIZE bytes); the rest is zero
//! ```
//!
//! Queue `i`'s rings sit at [`ring_layout`]`(i, size)`: descriptor table, then available ring,
//! then used ring, packed from address 0, so the image's first bytes are the rings and the
//! buffers follow.
//!
//! Transport input (`transport`): `[0]` picks the device (0 rng, 1 console, 2 block), then
//! 8-byte operations `[op, width, offset lo, offset hi, value (4 bytes LE)]`, see
//! [`run_transport`].

#![forbid(unsafe_code)]

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::Mutex;

use bulkhead_virtio::block::Block;
use bulkhead_virtio::console::{Console, ConsoleInput, RECEIVEQ, TRANSMITQ};
use bulkhead_virtio::net::{Net, NetBackend};
use bulkhead_virtio::rng::Rng;
use bulkhead_virtio::vsock::Vsock;
use bulkhead_virtio::{
    Interrupt, MmioTransport, VirtioDevice, FEATURE_EVENT_IDX, FEATURE_INDIRECT_DESC,
    FEATURE_VERSION_1,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Guest memory of every run.
pub const MEM_SIZE: usize = 0x10000;
/// Disk image of the block targets.
pub const DISK_SIZE: u64 = 0x10000;
/// Per-request cap of the entropy device.
pub const RNG_MAX_BYTES: u32 = 512;

/// virtio-mmio registers (virtio 1.2 §4.2.2).
pub mod reg {
    pub const DRIVER_FEATURES: u64 = 0x20;
    pub const DRIVER_FEATURES_SEL: u64 = 0x24;
    pub const QUEUE_SEL: u64 = 0x30;
    pub const QUEUE_NUM: u64 = 0x38;
    pub const QUEUE_READY: u64 = 0x44;
    pub const QUEUE_NOTIFY: u64 = 0x50;
    pub const STATUS: u64 = 0x70;
    pub const QUEUE_DESC_LOW: u64 = 0x80;
    pub const QUEUE_AVAIL_LOW: u64 = 0x90;
    pub const QUEUE_USED_LOW: u64 = 0xa0;
}

/// Device kinds a harness can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rng,
    Console,
    Block,
    Net,
    Vsock,
}

/// The guest CID of the vsock targets, and the one host port they may connect to.
pub const VSOCK_CID: u64 = 3;
pub const VSOCK_PORT: u32 = 1234;

/// A network backend inside the harness: frames sent are dropped, frames to receive are
/// pushed by the harness.
#[derive(Clone)]
pub struct LoopBackend {
    input: Arc<Mutex<VecDeque<Vec<u8>>>>,
    ready: Arc<EventFd>,
}

impl LoopBackend {
    fn new() -> Self {
        LoopBackend {
            input: Arc::default(),
            ready: Arc::new(EventFd::new(EFD_NONBLOCK).expect("eventfd")),
        }
    }

    /// Queues a frame for the guest.
    pub fn push(&self, frame: &[u8]) {
        if let Ok(mut input) = self.input.lock() {
            input.push_back(frame.to_vec());
        }
    }
}

impl NetBackend for LoopBackend {
    fn send(&mut self, _frame: &[u8]) -> std::io::Result<()> {
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        let Some(frame) = self.input.lock().ok().and_then(|mut i| i.pop_front()) else {
            return Ok(None);
        };
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok(Some(n))
    }

    fn raw_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }
}

/// The host service behind the vsock targets' port: one listening socket per fuzzing
/// process, non-blocking, in tmpfs when there is one.
fn vsock_listener() -> Option<&'static (PathBuf, UnixListener)> {
    static LISTENER: OnceLock<Option<(PathBuf, UnixListener)>> = OnceLock::new();
    LISTENER
        .get_or_init(|| {
            let dir = PathBuf::from("/dev/shm");
            let dir = if dir.is_dir() {
                dir
            } else {
                std::env::temp_dir()
            };
            let path = dir.join(format!("bulkhead-virtio-fuzz-{}.sock", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).ok()?;
            listener.set_nonblocking(true).ok()?;
            Some((path, listener))
        })
        .as_ref()
}

/// Accepts every connection the device made, writes to each, and closes them (the backlog
/// stays empty from one run to the next).
fn vsock_host_round(t: &mut MmioTransport) {
    let Some((_, listener)) = vsock_listener() else {
        return;
    };
    let mut streams = Vec::new();
    while let Ok((mut stream, _)) = listener.accept() {
        let _ = stream.set_nonblocking(true);
        let _ = stream.write(b"fuzzing from the host");
        streams.push(stream);
    }
    let mut again = 0;
    while t.backend_ready() && again < 4 {
        again += 1;
    }
}

/// Descriptor table, available ring and used ring of queue `index` of `size` entries.
pub fn ring_layout(index: usize, size: u16) -> (u64, u64, u64) {
    let n = u64::from(size);
    let queue_bytes = |start: u64| {
        let avail = start + 16 * n;
        let used = (avail + 6 + 2 * n + 3) & !3;
        (start, avail, used, used + 6 + 8 * n)
    };
    let mut start = 0;
    for _ in 0..index {
        let (_, _, _, end) = queue_bytes(start);
        start = (end + 15) & !15;
    }
    let (desc, avail, used, _) = queue_bytes(start);
    (desc, avail, used)
}

/// Feature bits for the input's feature byte.
pub fn features(kind: Kind, bits: u8) -> u64 {
    let mut f = FEATURE_VERSION_1;
    if bits & 1 != 0 {
        f |= FEATURE_EVENT_IDX;
    }
    if bits & 2 != 0 {
        f |= FEATURE_INDIRECT_DESC;
    }
    if bits & 4 != 0 && kind == Kind::Block {
        // VIRTIO_BLK_F_FLUSH (9), DISCARD (13), WRITE_ZEROES (14).
        f |= 1 << 9 | 1 << 13 | 1 << 14;
    }
    f
}

/// Where the block targets keep their image: tmpfs when there is one (flushes cost nothing).
fn disk_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = PathBuf::from("/dev/shm");
        let dir = if dir.is_dir() {
            dir
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("bulkhead-virtio-fuzz-{}.img", std::process::id()))
    })
}

fn fresh_disk() -> PathBuf {
    let path = disk_path().clone();
    if let Ok(f) = File::create(&path) {
        let _ = f.set_len(DISK_SIZE);
    }
    path
}

/// The handle a harness keeps on a device's host side.
pub enum Host {
    None,
    Console(ConsoleInput),
    Net(LoopBackend),
}

/// A device of `kind` (for the block device, over a fresh sparse image), with the handle on
/// its host side.
pub fn device(kind: Kind, read_only: bool) -> Option<(Box<dyn VirtioDevice>, Host)> {
    Some(match kind {
        Kind::Rng => (Box::new(Rng::new(RNG_MAX_BYTES)), Host::None),
        Kind::Console => {
            let console = Console::with_input_capacity(Box::new(std::io::sink()), 256);
            let input = console.input();
            (Box::new(console), Host::Console(input))
        }
        Kind::Net => {
            let backend = LoopBackend::new();
            let net = Net::new([0x52, 0x54, 0, 0, 0, 1], Box::new(backend.clone()));
            (Box::new(net), Host::Net(backend))
        }
        Kind::Vsock => {
            let (path, _) = vsock_listener()?;
            let vsock = Vsock::new(VSOCK_CID, &[(VSOCK_PORT, path.clone())]).ok()?;
            (Box::new(vsock), Host::None)
        }
        Kind::Block => {
            let path = fresh_disk();
            let block = Block::new(&path, read_only, "fuzz");
            // The open file lives on; the name goes, so no image outlives the fuzzer.
            let _ = std::fs::remove_file(&path);
            (Box::new(block.ok()?), Host::None)
        }
    })
}

/// A transport over `device`, logging nowhere.
pub fn transport(device: Box<dyn VirtioDevice>, mem: &GuestMemoryMmap) -> MmioTransport {
    let irq = EventFd::new(EFD_NONBLOCK).expect("eventfd");
    MmioTransport::new(device, Interrupt::new(irq), mem.clone())
        .with_log_sink(Box::new(std::io::sink()))
}

pub fn write32(t: &mut MmioTransport, offset: u64, value: u32) -> Option<usize> {
    t.write(offset, &value.to_le_bytes())
}

/// The driver's bring-up (virtio 1.2 §3.1.1) with every queue at [`ring_layout`].
pub fn bring_up(t: &mut MmioTransport, features: u64, queue_size: u16) {
    write32(t, reg::STATUS, 1);
    write32(t, reg::STATUS, 1 | 2);
    write32(t, reg::DRIVER_FEATURES_SEL, 0);
    write32(t, reg::DRIVER_FEATURES, features as u32);
    write32(t, reg::DRIVER_FEATURES_SEL, 1);
    write32(t, reg::DRIVER_FEATURES, (features >> 32) as u32);
    write32(t, reg::STATUS, 1 | 2 | 8);
    for q in 0..t.num_queues() {
        let (desc, avail, used) = ring_layout(q, queue_size);
        write32(t, reg::QUEUE_SEL, q as u32);
        write32(t, reg::QUEUE_NUM, u32::from(queue_size));
        write32(t, reg::QUEUE_DESC_LOW, desc as u32);
        write32(t, reg::QUEUE_AVAIL_LOW, avail as u32);
        write32(t, reg::QUEUE_USED_LOW, used as u32);
        write32(t, reg::QUEUE_READY, 1);
    }
    write32(t, reg::STATUS, 1 | 2 | 8 | 4);
}

fn guest_memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).expect("guest memory")
}

/// One run of a device target; returns the device's counters (for the seed generator).
pub fn run_device(kind: Kind, data: &[u8]) -> Vec<(&'static str, u64)> {
    let [feature_bits, size_byte, kicks, image @ ..] = data else {
        return Vec::new();
    };
    let mem = guest_memory();
    let image = image.get(..MEM_SIZE).unwrap_or(image);
    mem.write_slice(image, GuestAddress(0)).expect("image fits");
    let Some((dev, host)) = device(kind, feature_bits & 8 != 0) else {
        return Vec::new();
    };
    let mut t = transport(dev, &mem);
    let queue_size = 1u16 << (size_byte % 9);
    bring_up(&mut t, features(kind, *feature_bits), queue_size);
    for round in 0..=usize::from(kicks % 4) {
        let queue = match (kind, &host) {
            (Kind::Console | Kind::Net, _) if round % 2 == 1 => TRANSMITQ,
            (_, Host::Console(input)) => {
                input.push(b"fuzzed input\n");
                RECEIVEQ
            }
            (_, Host::Net(backend)) => {
                // A plain frame, and a TCP segment to be segmented (the header is
                // virtio_net_hdr_v1: NEEDS_CSUM, GSO_TCPV4, hdr_len 66, gso_size 1448,
                // csum_start 34, csum_offset 16).
                let mut plain = vec![0u8; 12];
                plain.extend([0xff; 60]);
                backend.push(&plain);
                let mut tso = vec![1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0, 0, 0];
                tso.extend([0x11; 3000]);
                backend.push(&tso);
                t.backend_ready();
                RECEIVEQ
            }
            (Kind::Vsock, _) if round % 3 == 0 => 1,
            (Kind::Vsock, _) if round % 3 == 1 => {
                vsock_host_round(&mut t);
                continue;
            }
            _ => 0,
        };
        // A pending result asks for another call: honour it, as the device thread does.
        let mut again = 0;
        while t.queue_notified(queue) && again < 4 {
            again += 1;
        }
    }
    if kind == Kind::Vsock {
        vsock_host_round(&mut t);
    }
    t.metrics()
}

/// One run of the transport target: register traffic, memory pokes and kicks.
///
/// Operations (8 bytes each): `op % 6` =
/// 0 32-bit register write, 1 32-bit read, 2 write of width `1 << (width % 4)` (config space
/// included), 3 `queue_notified(value % 3)`, 4 guest memory poke of `value` at
/// `offset * 4`, 5 console input / host configuration change. Returns the counters.
pub fn run_transport(data: &[u8]) -> Vec<(&'static str, u64)> {
    let [selector, ops @ ..] = data else {
        return Vec::new();
    };
    let kind = match selector % 3 {
        0 => Kind::Rng,
        1 => Kind::Console,
        _ => Kind::Block,
    };
    let mem = guest_memory();
    let Some((dev, host)) = device(kind, selector & 0x80 != 0) else {
        return Vec::new();
    };
    let mut t = transport(dev, &mem);
    let interrupt: Arc<Interrupt> = t.interrupt().clone();
    for op in ops.chunks_exact(8) {
        let [code, width, lo, hi, v0, v1, v2, v3] = op else {
            continue;
        };
        let offset = u64::from(u16::from_le_bytes([*lo, *hi])) % 0x1000;
        let value = u32::from_le_bytes([*v0, *v1, *v2, *v3]);
        match code % 6 {
            0 => {
                if let Some(q) = write32(&mut t, offset & !3, value) {
                    t.queue_notified(q);
                }
            }
            1 => {
                let mut buf = [0u8; 4];
                t.read(offset & !3, &mut buf);
            }
            2 => {
                let n = 1usize << (width % 4);
                let bytes = value.to_le_bytes();
                let mut wide = [0u8; 8];
                wide[..4].copy_from_slice(&bytes);
                let _ = t.write(offset, &wide[..n]);
                let mut back = [0u8; 8];
                t.read(offset, &mut back[..n]);
            }
            3 => {
                t.queue_notified(value as usize % 3);
            }
            4 => {
                let addr = (u64::from(u16::from_le_bytes([*lo, *hi])) * 4) % MEM_SIZE as u64;
                let _ = mem.write_obj(value, GuestAddress(addr));
            }
            _ => {
                if let Host::Console(input) = &host {
                    input.push(&value.to_le_bytes());
                } else {
                    t.config_changed();
                }
                interrupt.acknowledge(value);
            }
        }
    }
    t.metrics()
}
