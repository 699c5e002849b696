//! One device's virtio-mmio register window (virtio 1.2 §4.2.2, version 2 layout) and the
//! device status state machine (§2.1, §3.1.1).
//!
//! Threads: vCPU threads call [`MmioTransport::read`] and [`MmioTransport::write`] for MMIO
//! exits; the partition's device thread calls [`MmioTransport::queue_notified`] (KVM
//! ioeventfds catch `QueueNotify` writes) and [`MmioTransport::backend_ready`] (the device's
//! host-side input became readable). `write` never processes a queue: a `QueueNotify`
//! that reaches it comes back as `Some(queue)` for the caller to forward. The interrupt status
//! lives in [`Interrupt`] (atomics), so raising, reading and acknowledging interrupts need no
//! lock on the transport.
//!
//! Invariants:
//! - status bits are only added in order `ACKNOWLEDGE` → `DRIVER` → `FEATURES_OK` →
//!   `DRIVER_OK` (or `FAILED` at any time); clearing any bit takes a reset (writing 0);
//! - `FEATURES_OK` sticks only if the driver acknowledged a subset of the offered features
//!   that includes `VIRTIO_F_VERSION_1` (§2.2.1, §6.1);
//! - queue registers are writable only between `FEATURES_OK` and `DRIVER_OK`, and, except
//!   `QueueReady`, only while the selected queue is not ready; every value is checked at
//!   `DRIVER_OK` (size a power of two no larger than `QueueNumMax`, rings aligned, inside
//!   guest memory, the available ring not at 0), and a bad one puts the device in
//!   `DEVICE_NEEDS_RESET`;
//! - once the device needs a reset it serves nothing until the driver resets it.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_ids::{
    VIRTIO_ID_BLOCK, VIRTIO_ID_CONSOLE, VIRTIO_ID_NET, VIRTIO_ID_RNG,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

use super::metrics::TransportMetrics;
use crate::ratelimit::CauseLog;
use crate::{DeviceError, Fault, Interrupt, VirtioDevice, FEATURE_VERSION_1};

/// Size of one device's register window.
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;
/// Offset of `QueueNotify` in the window (for the partition's ioeventfds).
pub const QUEUE_NOTIFY_OFFSET: u64 = register::QUEUE_NOTIFY;

/// "virt" in little-endian (§4.2.2).
const MAGIC_VALUE: u32 = 0x7472_6976;
/// The modern (non-legacy) register layout (§4.2.2).
const MMIO_VERSION: u32 = 2;
/// Vendor ID register: ours, "BKHD".
const VENDOR_ID: u32 = u32::from_le_bytes(*b"BKHD");
/// Largest queue size of a split virtqueue (§2.7).
const MAX_QUEUE_SIZE: u16 = 32768;
/// One log line per fault cause per device per interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The log cause of the device's own host-side lines ([`VirtioDevice::take_log_line`]).
const HOST_SIDE_CAUSE: usize = Fault::ALL.len();

const ACKNOWLEDGE: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
const DRIVER: u32 = VIRTIO_CONFIG_S_DRIVER;
const FEATURES_OK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
const DRIVER_OK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;
const FAILED: u32 = VIRTIO_CONFIG_S_FAILED;
const NEEDS_RESET: u32 = VIRTIO_CONFIG_S_NEEDS_RESET;
const DRIVER_SET_BITS: u32 = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | FAILED;

/// Register offsets in the window (§4.2.2). `QueueDriver`/`QueueDevice` are the bindings'
/// `QUEUE_AVAIL`/`QUEUE_USED`; the `SHM*` registers describe shared-memory regions, of which
/// there are none (length and base read all ones).
mod register {
    use virtio_bindings::virtio_mmio as regs;

    pub const MAGIC_VALUE: u64 = regs::VIRTIO_MMIO_MAGIC_VALUE as u64;
    pub const VERSION: u64 = regs::VIRTIO_MMIO_VERSION as u64;
    pub const DEVICE_ID: u64 = regs::VIRTIO_MMIO_DEVICE_ID as u64;
    pub const VENDOR_ID: u64 = regs::VIRTIO_MMIO_VENDOR_ID as u64;
    pub const DEVICE_FEATURES: u64 = regs::VIRTIO_MMIO_DEVICE_FEATURES as u64;
    pub const DEVICE_FEATURES_SEL: u64 = regs::VIRTIO_MMIO_DEVICE_FEATURES_SEL as u64;
    pub const DRIVER_FEATURES: u64 = regs::VIRTIO_MMIO_DRIVER_FEATURES as u64;
    pub const DRIVER_FEATURES_SEL: u64 = regs::VIRTIO_MMIO_DRIVER_FEATURES_SEL as u64;
    pub const QUEUE_SEL: u64 = regs::VIRTIO_MMIO_QUEUE_SEL as u64;
    pub const QUEUE_NUM_MAX: u64 = regs::VIRTIO_MMIO_QUEUE_NUM_MAX as u64;
    pub const QUEUE_NUM: u64 = regs::VIRTIO_MMIO_QUEUE_NUM as u64;
    pub const QUEUE_READY: u64 = regs::VIRTIO_MMIO_QUEUE_READY as u64;
    pub const QUEUE_NOTIFY: u64 = regs::VIRTIO_MMIO_QUEUE_NOTIFY as u64;
    pub const INTERRUPT_STATUS: u64 = regs::VIRTIO_MMIO_INTERRUPT_STATUS as u64;
    pub const INTERRUPT_ACK: u64 = regs::VIRTIO_MMIO_INTERRUPT_ACK as u64;
    pub const STATUS: u64 = regs::VIRTIO_MMIO_STATUS as u64;
    pub const QUEUE_DESC_LOW: u64 = regs::VIRTIO_MMIO_QUEUE_DESC_LOW as u64;
    pub const QUEUE_DESC_HIGH: u64 = regs::VIRTIO_MMIO_QUEUE_DESC_HIGH as u64;
    pub const QUEUE_AVAIL_LOW: u64 = regs::VIRTIO_MMIO_QUEUE_AVAIL_LOW as u64;
    pub const QUEUE_AVAIL_HIGH: u64 = regs::VIRTIO_MMIO_QUEUE_AVAIL_HIGH as u64;
    pub const QUEUE_USED_LOW: u64 = regs::VIRTIO_MMIO_QUEUE_USED_LOW as u64;
    pub const QUEUE_USED_HIGH: u64 = regs::VIRTIO_MMIO_QUEUE_USED_HIGH as u64;
    pub const SHM_SEL: u64 = regs::VIRTIO_MMIO_SHM_SEL as u64;
    pub const SHM_LEN_LOW: u64 = regs::VIRTIO_MMIO_SHM_LEN_LOW as u64;
    pub const SHM_BASE_HIGH: u64 = regs::VIRTIO_MMIO_SHM_BASE_HIGH as u64;
    pub const CONFIG_GENERATION: u64 = regs::VIRTIO_MMIO_CONFIG_GENERATION as u64;
    pub const CONFIG: u64 = regs::VIRTIO_MMIO_CONFIG as u64;
}

/// Queue registers as the driver wrote them; checked only at `DRIVER_OK`.
#[derive(Clone, Copy, Debug)]
struct QueueConfig {
    max_size: u16,
    size: u32,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
}

impl QueueConfig {
    fn new(max_size: u16) -> Self {
        QueueConfig {
            max_size,
            size: u32::from(max_size),
            ready: false,
            desc: 0,
            avail: 0,
            used: 0,
        }
    }

    /// The device-side queue; `Err` if the driver enabled it with invalid values.
    fn build(&self, mem: &GuestMemoryMmap) -> Result<Queue, DeviceError> {
        let mut queue =
            Queue::new(self.max_size).map_err(|_| DeviceError::QueueMaxSize(self.max_size))?;
        if !self.ready {
            return Ok(queue);
        }
        let size = u16::try_from(self.size).map_err(|_| Fault::QueueConfig)?;
        queue.try_set_size(size).map_err(|_| Fault::QueueConfig)?;
        queue
            .try_set_desc_table_address(GuestAddress(self.desc))
            .map_err(|_| Fault::QueueConfig)?;
        // `virtio-queue` takes an available ring at 0 for an unconfigured queue.
        if self.avail == 0 {
            return Err(Fault::QueueConfig.into());
        }
        queue
            .try_set_avail_ring_address(GuestAddress(self.avail))
            .map_err(|_| Fault::QueueConfig)?;
        queue
            .try_set_used_ring_address(GuestAddress(self.used))
            .map_err(|_| Fault::QueueConfig)?;
        // §2.7: descriptor table 16 * size, available ring 6 + 2 * size, used ring
        // 6 + 8 * size bytes.
        let n = usize::from(size);
        let rings = [
            (self.desc, 16 * n),
            (self.avail, 6 + 2 * n),
            (self.used, 6 + 8 * n),
        ];
        for (addr, len) in rings {
            if !mem.check_range(GuestAddress(addr), len, Permissions::ReadWrite) {
                return Err(Fault::QueueConfig.into());
            }
        }
        queue.set_ready(true);
        Ok(queue)
    }
}

/// Feature negotiation state (§2.2).
#[derive(Debug, Default)]
struct Features {
    device_sel: u32,
    driver_sel: u32,
    acked: u64,
    /// The driver wrote a non-zero value to a feature word beyond bit 63.
    acked_unknown_word: bool,
}

/// A virtio-mmio device: the register window in front of a [`VirtioDevice`].
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    interrupt: Arc<Interrupt>,
    mem: GuestMemoryMmap,
    name: String,
    status: u32,
    features: Features,
    queue_sel: u32,
    queues: Vec<QueueConfig>,
    config_generation: u32,
    active: bool,
    broken: Option<Fault>,
    metrics: TransportMetrics,
    /// One cause per fault, and one ([`HOST_SIDE_CAUSE`]) for the device's host-side lines.
    log: CauseLog<{ Fault::ALL.len() + 1 }>,
}

impl std::fmt::Debug for MmioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmioTransport")
            .field("name", &self.name)
            .field("status", &self.status)
            .field("active", &self.active)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl MmioTransport {
    /// Puts `device` behind a register window, raising `interrupt`, over guest memory `mem`.
    pub fn new(
        mut device: Box<dyn VirtioDevice>,
        interrupt: Arc<Interrupt>,
        mem: GuestMemoryMmap,
    ) -> Self {
        device.set_interrupt(Arc::clone(&interrupt));
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| QueueConfig::new(max.min(MAX_QUEUE_SIZE)))
            .collect();
        let name = match device.device_type() {
            VIRTIO_ID_BLOCK => "virtio-blk".to_string(),
            VIRTIO_ID_CONSOLE => "virtio-console".to_string(),
            VIRTIO_ID_RNG => "virtio-rng".to_string(),
            VIRTIO_ID_NET => "virtio-net".to_string(),
            other => format!("virtio-{other}"),
        };
        MmioTransport {
            device,
            interrupt,
            mem,
            name,
            status: 0,
            features: Features::default(),
            queue_sel: 0,
            queues,
            config_generation: 0,
            active: false,
            broken: None,
            metrics: TransportMetrics::default(),
            log: CauseLog::new(LOG_INTERVAL),
        }
    }

    /// Names the device in log lines (e.g. `vda`, `virtio-blk@0xd0000000`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sends log lines somewhere else than standard error.
    pub fn with_log_sink(mut self, sink: Box<dyn std::io::Write + Send>) -> Self {
        self.log = CauseLog::with_sink(LOG_INTERVAL, sink);
        self
    }

    /// The device ID (virtio 1.2 §5).
    pub fn device_type(&self) -> u32 {
        self.device.device_type()
    }

    /// How many queues the device has (valid `QueueNotify` values are below this).
    pub fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// The device's interrupt line; a vCPU may serve `InterruptStatus` (0x60) and
    /// `InterruptACK` (0x64) through it without locking the transport.
    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    /// Why the device needs a reset, if it does.
    pub fn needs_reset(&self) -> Option<Fault> {
        self.broken
    }

    /// Counters: the transport's (see `docs/virtio.md`), then the device's.
    pub fn metrics(&self) -> Vec<(&'static str, u64)> {
        let mut out = self.metrics.snapshot();
        out.extend(self.device.metrics());
        out
    }

    /// A read of `data.len()` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= register::CONFIG {
            self.device.read_config(offset - register::CONFIG, data);
            return;
        }
        let aligned = offset.is_multiple_of(4);
        match <&mut [u8; 4]>::try_from(&mut *data) {
            Ok(bytes) if aligned => *bytes = self.read_register(offset).to_le_bytes(),
            _ => {
                self.metrics.register_accesses_refused += 1;
                data.fill(0);
            }
        }
    }

    /// A write of `data` at `offset` in the window. Returns `Some(queue)` for a `QueueNotify`
    /// that the caller must forward to the device thread ([`MmioTransport::queue_notified`]);
    /// no queue is processed here.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Option<usize> {
        if offset >= register::CONFIG {
            self.device.write_config(offset - register::CONFIG, data);
            return None;
        }
        let value = match <[u8; 4]>::try_from(data) {
            Ok(bytes) if offset.is_multiple_of(4) => u32::from_le_bytes(bytes),
            _ => {
                self.metrics.register_accesses_refused += 1;
                return None;
            }
        };
        self.write_register(offset, value)
    }

    /// Serves queue `queue` after a notification (device thread). Returns whether work is
    /// left that the per-call cap stopped: the caller must call again, after serving its
    /// other sources. Raises the used-buffer interrupt when the queue asks for one; a driver
    /// fault puts the device in `DEVICE_NEEDS_RESET`.
    pub fn queue_notified(&mut self, queue: usize) -> bool {
        if !self.active || self.broken.is_some() || queue >= self.queues.len() {
            self.metrics.notifications_ignored += 1;
            return false;
        }
        self.metrics.notifications += 1;
        match self.device.process_queue(queue) {
            Ok(true) => {
                self.metrics.interrupts_used += 1;
                self.interrupt.signal_used_queue();
            }
            Ok(false) => {}
            Err(e) => {
                self.mark_broken(&e);
                return false;
            }
        }
        self.device.queue_pending(queue)
    }

    /// Chains the last [`MmioTransport::queue_notified`] of `queue` returned to the driver, if
    /// the device counts them ([`VirtioDevice::queue_batch`]).
    pub fn queue_batch(&self, queue: usize) -> Option<u32> {
        self.device.queue_batch(queue)
    }

    /// The device's host-side input descriptor ([`VirtioDevice::backend_fd`]), for the device
    /// thread to wait on, edge-triggered.
    pub fn backend_fd(&self) -> Option<RawFd> {
        self.device.backend_fd()
    }

    /// Serves the device's host-side input after its descriptor became readable (device
    /// thread). Returns whether the per-call cap left work: call again, after the other
    /// sources. Before `DRIVER_OK` and while the device needs a reset, input is left where it
    /// is (the driver's first receive notification after activation picks it up). Interrupts
    /// and faults as in [`MmioTransport::queue_notified`].
    pub fn backend_ready(&mut self) -> bool {
        if !self.active || self.broken.is_some() {
            self.metrics.backend_events_ignored += 1;
            return false;
        }
        self.metrics.backend_events += 1;
        let result = self.device.process_backend();
        if let Some(line) = self.device.take_log_line() {
            self.log
                .emit(HOST_SIDE_CAUSE, format_args!("{}: {line}", self.name));
        }
        if self.device.take_config_change() {
            self.config_changed();
        }
        match result {
            Ok(true) => {
                self.metrics.interrupts_used += 1;
                self.interrupt.signal_used_queue();
            }
            Ok(false) => {}
            Err(e) => {
                self.mark_broken(&e);
                return false;
            }
        }
        self.device.backend_pending()
    }

    /// The eventfds the device takes its queue notifications on, if it takes them itself
    /// ([`VirtioDevice::kick_eventfds`]).
    pub fn kick_eventfds(&self) -> Option<Vec<vmm_sys_util::eventfd::EventFd>> {
        self.device.kick_eventfds()
    }

    /// The device's configuration changed on the host side: bumps `ConfigGeneration` and, once
    /// the driver is running, raises the configuration-change interrupt (§2.5.1, §4.2.2).
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        if self.status & DRIVER_OK != 0 {
            self.metrics.interrupts_config += 1;
            self.interrupt.signal_config_change();
        }
    }

    fn read_register(&self, offset: u64) -> u32 {
        let features = self.device.avail_features();
        match offset {
            register::MAGIC_VALUE => MAGIC_VALUE,
            register::VERSION => MMIO_VERSION,
            register::DEVICE_ID => self.device.device_type(),
            register::VENDOR_ID => VENDOR_ID,
            register::DEVICE_FEATURES => match self.features.device_sel {
                0 => features as u32,
                1 => (features >> 32) as u32,
                _ => 0,
            },
            register::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size)),
            register::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready)),
            register::INTERRUPT_STATUS => self.interrupt.status(),
            register::STATUS => {
                self.status
                    | if self.broken.is_some() {
                        NEEDS_RESET
                    } else {
                        0
                    }
            }
            register::CONFIG_GENERATION => self.config_generation,
            register::SHM_LEN_LOW..=register::SHM_BASE_HIGH => u32::MAX,
            // Write-only and reserved registers read as zero.
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) -> Option<usize> {
        match offset {
            register::DEVICE_FEATURES_SEL => {
                self.features.device_sel = value;
            }
            register::DRIVER_FEATURES => self.write_driver_features(value),
            register::DRIVER_FEATURES_SEL => {
                self.features.driver_sel = value;
            }
            register::QUEUE_SEL => self.queue_sel = value,
            register::QUEUE_NUM => self.write_queue(|q| q.size = value),
            register::QUEUE_READY => self.write_queue_ready(value),
            register::QUEUE_NOTIFY => {
                let queue = usize::try_from(value)
                    .ok()
                    .filter(|&q| q < self.queues.len());
                if queue.is_none() {
                    self.metrics.notifications_ignored += 1;
                }
                return queue;
            }
            register::INTERRUPT_ACK => self.interrupt.acknowledge(value),
            register::STATUS => self.write_status(value),
            register::QUEUE_DESC_LOW => {
                self.write_queue(|q| set_low(&mut q.desc, value));
            }
            register::QUEUE_DESC_HIGH => {
                self.write_queue(|q| set_high(&mut q.desc, value));
            }
            register::QUEUE_AVAIL_LOW => {
                self.write_queue(|q| set_low(&mut q.avail, value));
            }
            register::QUEUE_AVAIL_HIGH => {
                self.write_queue(|q| set_high(&mut q.avail, value));
            }
            register::QUEUE_USED_LOW => {
                self.write_queue(|q| set_low(&mut q.used, value));
            }
            register::QUEUE_USED_HIGH => {
                self.write_queue(|q| set_high(&mut q.used, value));
            }
            // No shared-memory regions: selecting one is harmless.
            register::SHM_SEL => {}
            _ => self.metrics.register_accesses_refused += 1,
        }
        None
    }

    fn selected_queue(&self) -> Option<&QueueConfig> {
        usize::try_from(self.queue_sel)
            .ok()
            .and_then(|i| self.queues.get(i))
    }

    /// Queue registers may be written between `FEATURES_OK` and `DRIVER_OK`.
    fn queue_setup_allowed(&self) -> bool {
        self.status & (FEATURES_OK | DRIVER_OK | FAILED) == FEATURES_OK
    }

    fn write_queue(&mut self, set: impl FnOnce(&mut QueueConfig)) {
        let allowed = self.queue_setup_allowed();
        let queue = usize::try_from(self.queue_sel)
            .ok()
            .and_then(|i| self.queues.get_mut(i));
        match queue {
            Some(q) if allowed && !q.ready => set(q),
            _ => self.metrics.register_accesses_refused += 1,
        }
    }

    fn write_queue_ready(&mut self, value: u32) {
        let allowed = self.queue_setup_allowed();
        let queue = usize::try_from(self.queue_sel)
            .ok()
            .and_then(|i| self.queues.get_mut(i));
        match queue {
            Some(q) if allowed => q.ready = value == 1,
            _ => self.metrics.register_accesses_refused += 1,
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.status & (DRIVER | FEATURES_OK | FAILED) != DRIVER {
            self.metrics.register_accesses_refused += 1;
            return;
        }
        let acked = &mut self.features.acked;
        match self.features.driver_sel {
            0 => *acked = (*acked & !0xffff_ffff) | u64::from(value),
            1 => *acked = (*acked & 0xffff_ffff) | (u64::from(value) << 32),
            _ => self.features.acked_unknown_word |= value != 0,
        }
    }

    fn features_acceptable(&self) -> bool {
        let acked = self.features.acked;
        acked & !self.device.avail_features() == 0
            && acked & FEATURE_VERSION_1 != 0
            && !self.features.acked_unknown_word
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        // The driver cannot set DEVICE_NEEDS_RESET; it reads it back with the rest and may
        // write it along (read-modify-write).
        let mut new = value & !NEEDS_RESET;
        let old = self.status;
        let in_order = (new & DRIVER == 0 || new & ACKNOWLEDGE != 0)
            && (new & FEATURES_OK == 0 || new & DRIVER != 0)
            && (new & DRIVER_OK == 0 || new & FEATURES_OK != 0);
        let keeps_old = new & old == old;
        let known = new & !DRIVER_SET_BITS == 0;
        let after_failure = old & FAILED != 0 && new != old;
        if !in_order || !keeps_old || !known || after_failure {
            self.metrics.register_accesses_refused += 1;
            return;
        }
        let added = new & !old;
        if added & FEATURES_OK != 0 && !self.features_acceptable() {
            self.metrics.features_refused += 1;
            new &= !(FEATURES_OK | DRIVER_OK);
        }
        self.status = new;
        if added & DRIVER_OK != 0 && new & DRIVER_OK != 0 {
            self.activate();
        }
    }

    fn activate(&mut self) {
        let queues: Result<Vec<Queue>, DeviceError> =
            self.queues.iter().map(|q| q.build(&self.mem)).collect();
        let result = queues.and_then(|queues| {
            self.device
                .activate(self.mem.clone(), queues, self.features.acked)
        });
        match result {
            Ok(()) => {
                self.active = true;
                self.metrics.activations += 1;
            }
            Err(e) => self.mark_broken(&e),
        }
    }

    fn reset(&mut self) {
        self.device.reset();
        self.status = 0;
        self.features = Features::default();
        self.queue_sel = 0;
        for q in &mut self.queues {
            *q = QueueConfig::new(q.max_size);
        }
        self.interrupt.clear();
        self.active = false;
        self.broken = None;
        self.metrics.resets += 1;
    }

    /// `DEVICE_NEEDS_RESET` (§2.1.2): counted, logged (rate-limited), and notified to a
    /// running driver with a configuration-change interrupt.
    fn mark_broken(&mut self, error: &DeviceError) {
        let fault = error.fault();
        if let Some(counter) = self.metrics.faults.get_mut(fault.index()) {
            *counter += 1;
        }
        self.broken.get_or_insert(fault);
        self.log.emit(
            fault.index(),
            format_args!("{}: {error}; the device needs a reset", self.name),
        );
        if self.status & DRIVER_OK != 0 {
            self.metrics.interrupts_config += 1;
            self.interrupt.signal_config_change();
        }
    }
}

fn set_low(field: &mut u64, value: u32) {
    *field = (*field & !0xffff_ffff) | u64::from(value);
}

fn set_high(field: &mut u64, value: u32) {
    *field = (*field & 0xffff_ffff) | (u64::from(value) << 32);
}

#[cfg(test)]
mod tests;
