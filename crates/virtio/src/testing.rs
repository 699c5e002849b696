//! Test support: guest memory and a driver side built on `virtio-queue`'s `MockSplitQueue`.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::{Interrupt, MmioTransport, VirtioDevice};

pub(crate) const MEM_SIZE: u64 = 0x10_0000;
pub(crate) const F_NEXT: u16 = 1;
pub(crate) const F_WRITE: u16 = 2;
pub(crate) const F_INDIRECT: u16 = 4;

pub(crate) fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap()
}

pub(crate) fn desc(addr: u64, len: u32, flags: u16, next: u16) -> Descriptor {
    Descriptor::new(addr, len, flags, next)
}

/// An interrupt whose eventfd the test reads back.
pub(crate) fn interrupt() -> Arc<Interrupt> {
    Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap())
}

/// How many times the line was raised since the last call.
pub(crate) fn raised(interrupt: &Interrupt) -> u64 {
    interrupt.eventfd().read().unwrap_or(0)
}

/// The driver side of one split queue at a given address. Descriptors go through
/// `virtio-queue`'s `MockSplitQueue`; the rings are laid out here, because the mock's own used
/// ring overlaps the tail of its available ring (it places it `size` bytes, not `2 * size`,
/// after the ring's start), which would clobber `used_event` and late avail entries.
pub(crate) struct Driver<'a> {
    mem: &'a GuestMemoryMmap,
    mock: MockSplitQueue<'a, GuestMemoryMmap>,
    size: u16,
    avail: GuestAddress,
    used: GuestAddress,
    next_free: Cell<u16>,
}

impl<'a> Driver<'a> {
    /// A queue of `size` entries at guest address 0.
    pub fn new(mem: &'a GuestMemoryMmap, size: u16) -> Self {
        Self::at(mem, GuestAddress(0), size)
    }

    /// A queue of `size` entries at `start`: descriptor table, available ring, used ring
    /// (§2.7: 16, 6 + 2 * size and 6 + 8 * size bytes, the used ring 4-aligned).
    pub fn at(mem: &'a GuestMemoryMmap, start: GuestAddress, size: u16) -> Self {
        let mock = MockSplitQueue::create(mem, start, size);
        let n = u64::from(size);
        let avail = start.unchecked_add(16 * n);
        let used = GuestAddress((avail.0 + 6 + 2 * n + 3) & !3);
        mem.write_slice(&vec![0u8; (6 + 2 * n) as usize], avail)
            .unwrap();
        mem.write_slice(&vec![0u8; (6 + 8 * n) as usize], used)
            .unwrap();
        Driver {
            mem,
            mock,
            size,
            avail,
            used,
            next_free: Cell::new(0),
        }
    }

    /// The device-side queue, configured and ready, as the transport would hand it over.
    pub fn queue(&self) -> Queue {
        let mut q = Queue::new(self.size).unwrap();
        q.try_set_size(self.size).unwrap();
        q.try_set_desc_table_address(self.desc_table_addr())
            .unwrap();
        q.try_set_avail_ring_address(self.avail).unwrap();
        q.try_set_used_ring_address(self.used).unwrap();
        q.set_ready(true);
        q
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    pub fn memory(&self) -> &'a GuestMemoryMmap {
        self.mem
    }

    pub fn desc_table_addr(&self) -> GuestAddress {
        self.mock.desc_table_addr()
    }

    pub fn avail_addr(&self) -> GuestAddress {
        self.avail
    }

    pub fn used_addr(&self) -> GuestAddress {
        self.used
    }

    /// Writes a chain of buffers `(addr, len, flags)` at the next free descriptors (NEXT links
    /// added) and makes it available. Returns the head index.
    /// Descriptors are taken in order from the table and from its start again once a chain
    /// would not fit (the device must have used the earlier ones by then).
    pub fn add(&self, buffers: &[(u64, u32, u16)]) -> u16 {
        let mut head = self.next_free.get();
        if usize::from(head) + buffers.len() > usize::from(self.size) {
            head = 0;
        }
        for (i, &(addr, len, flags)) in buffers.iter().enumerate() {
            let index = head + i as u16;
            let last = i + 1 == buffers.len();
            let (flags, next) = if last {
                (flags & !F_NEXT, 0)
            } else {
                (flags | F_NEXT, index + 1)
            };
            self.put(index, desc(addr, len, flags, next));
        }
        self.next_free.set(head + buffers.len() as u16);
        self.push_avail(head);
        head
    }

    /// Stores one raw descriptor at `index`.
    pub fn put(&self, index: u16, d: Descriptor) {
        self.mock
            .desc_table()
            .store(index, RawDescriptor::from(d))
            .unwrap();
    }

    /// Writes a descriptor table (e.g. an indirect one) at `table`.
    pub fn put_table(&self, table: GuestAddress, descs: &[Descriptor]) {
        for (i, d) in descs.iter().enumerate() {
            self.mem
                .write_obj(*d, table.unchecked_add(16 * i as u64))
                .unwrap();
        }
    }

    /// Appends `head` to the available ring.
    pub fn push_avail(&self, head: u16) {
        let idx = self.avail_idx();
        let slot = self
            .avail_addr()
            .unchecked_add(4 + 2 * u64::from(idx % self.size));
        self.mem.write_obj(head, slot).unwrap();
        self.set_avail_idx(idx.wrapping_add(1));
    }

    pub fn avail_idx(&self) -> u16 {
        self.mem
            .read_obj(self.avail_addr().unchecked_add(2))
            .unwrap()
    }

    pub fn set_avail_idx(&self, idx: u16) {
        self.mem
            .write_obj(idx, self.avail_addr().unchecked_add(2))
            .unwrap();
    }

    /// The `used_event` field at the end of the available ring (§2.7.10).
    pub fn set_used_event(&self, idx: u16) {
        let at = self
            .avail_addr()
            .unchecked_add(4 + 2 * u64::from(self.size));
        self.mem.write_obj(idx, at).unwrap();
    }

    pub fn used_idx(&self) -> u16 {
        self.mem
            .read_obj(self.used_addr().unchecked_add(2))
            .unwrap()
    }

    /// Used element `i`: (descriptor id, length written).
    pub fn used_elem(&self, i: u16) -> (u32, u32) {
        let at = self
            .used_addr()
            .unchecked_add(4 + 8 * u64::from(i % self.size));
        let id: u32 = self.mem.read_obj(at).unwrap();
        let len: u32 = self.mem.read_obj(at.unchecked_add(4)).unwrap();
        (id, len)
    }
}

/// A `Write` sink the test keeps a handle on.
#[derive(Clone, Default)]
pub(crate) struct SharedSink(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedSink {
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

/// Register offsets (virtio 1.2 §4.2.2) for driving a transport.
pub(crate) mod reg {
    pub const MAGIC: u64 = 0x00;
    pub const VERSION: u64 = 0x04;
    pub const DEVICE_ID: u64 = 0x08;
    pub const DEVICE_FEATURES: u64 = 0x10;
    pub const DEVICE_FEATURES_SEL: u64 = 0x14;
    pub const DRIVER_FEATURES: u64 = 0x20;
    pub const DRIVER_FEATURES_SEL: u64 = 0x24;
    pub const QUEUE_SEL: u64 = 0x30;
    pub const QUEUE_NUM_MAX: u64 = 0x34;
    pub const QUEUE_NUM: u64 = 0x38;
    pub const QUEUE_READY: u64 = 0x44;
    pub const INTERRUPT_STATUS: u64 = 0x60;
    pub const INTERRUPT_ACK: u64 = 0x64;
    pub const STATUS: u64 = 0x70;
    pub const QUEUE_DESC_LOW: u64 = 0x80;
    pub const QUEUE_DESC_HIGH: u64 = 0x84;
    pub const QUEUE_AVAIL_LOW: u64 = 0x90;
    pub const QUEUE_AVAIL_HIGH: u64 = 0x94;
    pub const QUEUE_USED_LOW: u64 = 0xa0;
    pub const QUEUE_USED_HIGH: u64 = 0xa4;
    pub const CONFIG_GENERATION: u64 = 0xfc;
    pub const CONFIG: u64 = 0x100;
}

/// Device status bits (virtio 1.2 §2.1).
pub(crate) mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const NEEDS_RESET: u32 = 0x40;
}

pub(crate) fn read32(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut data = [0u8; 4];
    t.read(offset, &mut data);
    u32::from_le_bytes(data)
}

pub(crate) fn write32(t: &mut MmioTransport, offset: u64, value: u32) -> Option<usize> {
    t.write(offset, &value.to_le_bytes())
}

/// A transport over `device`, with its own interrupt.
pub(crate) fn transport(
    device: Box<dyn VirtioDevice>,
    m: &GuestMemoryMmap,
) -> (MmioTransport, Arc<Interrupt>) {
    let irq = interrupt();
    let t =
        MmioTransport::new(device, irq.clone(), m.clone()).with_log_sink(Box::new(std::io::sink()));
    (t, irq)
}

/// Drives the transport through negotiation (accepting `features`) up to FEATURES_OK.
pub(crate) fn negotiate(t: &mut MmioTransport, features: u64) {
    write32(t, reg::STATUS, status::ACKNOWLEDGE);
    write32(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    write32(t, reg::DRIVER_FEATURES_SEL, 0);
    write32(t, reg::DRIVER_FEATURES, features as u32);
    write32(t, reg::DRIVER_FEATURES_SEL, 1);
    write32(t, reg::DRIVER_FEATURES, (features >> 32) as u32);
    write32(
        t,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
}

/// Configures queue `index` to the driver's rings and enables it.
pub(crate) fn setup_queue(t: &mut MmioTransport, index: u32, driver: &Driver<'_>) {
    write32(t, reg::QUEUE_SEL, index);
    write32(t, reg::QUEUE_NUM, u32::from(driver.size()));
    let desc = driver.desc_table_addr().raw_value();
    let avail = driver.avail_addr().raw_value();
    let used = driver.used_addr().raw_value();
    write32(t, reg::QUEUE_DESC_LOW, desc as u32);
    write32(t, reg::QUEUE_DESC_HIGH, (desc >> 32) as u32);
    write32(t, reg::QUEUE_AVAIL_LOW, avail as u32);
    write32(t, reg::QUEUE_AVAIL_HIGH, (avail >> 32) as u32);
    write32(t, reg::QUEUE_USED_LOW, used as u32);
    write32(t, reg::QUEUE_USED_HIGH, (used >> 32) as u32);
    write32(t, reg::QUEUE_READY, 1);
}

/// Full bring-up: negotiation, every queue in `drivers` (in order), DRIVER_OK.
pub(crate) fn activate(t: &mut MmioTransport, features: u64, drivers: &[&Driver<'_>]) {
    negotiate(t, features);
    for (i, d) in drivers.iter().enumerate() {
        setup_queue(t, i as u32, d);
    }
    write32(
        t,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
    );
}

/// A disk image file in the temporary directory, removed on drop.
pub(crate) struct TempImage {
    pub path: std::path::PathBuf,
}

impl TempImage {
    /// An image of `len` bytes, byte `i` being `fill(i)`.
    pub fn new(len: usize, fill: impl Fn(usize) -> u8) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "bulkhead-virtio-test-{}-{}.img",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let bytes: Vec<u8> = (0..len).map(fill).collect();
        std::fs::write(&path, bytes).unwrap();
        TempImage { path }
    }

    pub fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
