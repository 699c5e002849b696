//! The partition's VirtIO devices: one virtio-mmio window and interrupt line each, their queue
//! notifications caught by KVM ioeventfds, and the device thread that serves them.
//!
//! Threads: vCPU threads reach a device's registers through [`VirtioDevices::mmio_read`] /
//! [`VirtioDevices::mmio_write`] (MMIO exits); queue work runs only on the partition's device
//! thread ([`VirtioDevices::spawn_device_thread`]), woken by the ioeventfd of the notified queue,
//! so a guest's kick never runs device code on a vCPU thread. Interrupts leave through irqfds.
//! The device thread also waits, edge-triggered, on each device's host-side input (a network
//! backend's TAP or link socket, [`MmioTransport::backend_fd`]), and comes back without waiting
//! to any queue or backend that stopped at its work cap. Block queues' notifications may be
//! held for a moment so that requests batch up (`batch.rs`); a timerfd ends the holds.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_config::{rules, Criticality, DeviceKind, DevicePlan, NetBackend, PartitionPlan};
use bulkhead_virtio::net::{Net, VhostUserNet};
use bulkhead_virtio::vsock::Vsock;
use bulkhead_virtio::{block::Block, console::Console as VirtioConsole, rng::Rng};
use bulkhead_virtio::{Interrupt, MmioTransport, VirtioDevice, QUEUE_NOTIFY_OFFSET};
use bulkhead_vmm::x86_64::layout::{VIRTIO_FIRST_GSI, VIRTIO_MMIO_BASE, VIRTIO_MMIO_SIZE};
use bulkhead_vmm::Vm;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

use crate::batch::{Action, Batcher};

use crate::console::Console;
use crate::link::Link;
use crate::run::PartitionError;
use crate::tap::Tap;

/// Where device `index` lives: register window base and interrupt line.
pub fn placement(index: usize) -> (u64, u32) {
    (
        VIRTIO_MMIO_BASE + index as u64 * VIRTIO_MMIO_SIZE,
        VIRTIO_FIRST_GSI + index as u32,
    )
}

/// The ACPI description of `plan`'s devices: (window base, window size, GSI) each.
pub fn acpi_entries(plan: &PartitionPlan) -> Vec<(u64, u64, u32)> {
    (0..plan.devices.len())
        .map(|i| {
            let (base, gsi) = placement(i);
            (base, VIRTIO_MMIO_SIZE, gsi)
        })
        .collect()
}

/// virtio-mmio InterruptStatus and InterruptACK registers (virtio 1.2 §4.2.2), served from the
/// shared interrupt state without the transport lock, so a vCPU in the guest's interrupt
/// handler never waits behind the device thread (which holds the lock through an fdatasync).
const INTERRUPT_STATUS: u64 = 0x60;
const INTERRUPT_ACK: u64 = 0x64;

struct Slot {
    base: u64,
    kind: &'static str,
    interrupt: Arc<Interrupt>,
    transport: Arc<Mutex<MmioTransport>>,
    /// One eventfd per queue; KVM signals it on a QueueNotify write of that queue's index.
    notifiers: Vec<EventFd>,
    /// The notifiers belong to the device's backend (vhost-user): not waited on here.
    kicks_elsewhere: bool,
    /// Longest hold of a queue notification (zero: none; see `batch.rs`).
    batch: Duration,
}

/// The partition's VirtIO devices.
pub struct VirtioDevices {
    slots: Vec<Slot>,
}

impl VirtioDevices {
    /// Creates every device of `plan`, wires its interrupt (irqfd) and queue notifications
    /// (ioeventfds) into `vm`.
    pub fn build(
        plan: &PartitionPlan,
        vm: &Vm,
        console: &Console,
    ) -> Result<VirtioDevices, PartitionError> {
        let mut slots = Vec::new();
        for (index, device_plan) in plan.devices.iter().enumerate() {
            let (base, gsi) = placement(index);
            let device = create_device(plan, device_plan, console)?;
            let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(PartitionError::EventFd)?;
            vm.register_irqfd(&irq, gsi)?;
            let interrupt = Interrupt::new(irq);
            let transport = MmioTransport::new(device, Arc::clone(&interrupt), vm.memory().clone())
                .with_name(format!(
                    "{}: virtio-{} {index}",
                    plan.name,
                    device_plan.kind.as_str()
                ));
            // A device that takes its notifications itself (vhost-user) gives its own
            // eventfds; the device thread then never waits on them.
            let own_kicks = transport.kick_eventfds();
            let kicks_elsewhere = own_kicks.is_some();
            let mut own_kicks = own_kicks.unwrap_or_default().into_iter();
            let mut notifiers = Vec::new();
            for queue in 0..transport.num_queues() {
                let evt = match own_kicks.next() {
                    Some(evt) => evt,
                    None => EventFd::new(libc::EFD_NONBLOCK).map_err(PartitionError::EventFd)?,
                };
                vm.register_mmio_ioevent(&evt, base + QUEUE_NOTIFY_OFFSET, queue as u32)?;
                notifiers.push(evt);
            }
            slots.push(Slot {
                base,
                kind: device_plan.kind.as_str(),
                interrupt,
                transport: Arc::new(Mutex::new(transport)),
                notifiers,
                kicks_elsewhere,
                batch: batch_window(plan, device_plan),
            });
        }
        Ok(VirtioDevices { slots })
    }

    /// One line per device, for the start-up log.
    pub fn describe(&self) -> Vec<String> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (base, gsi) = placement(i);
                debug_assert_eq!(base, s.base);
                format!(
                    "virtio-{} at {base:#x}, GSI {gsi}, {} queue(s)",
                    s.kind,
                    s.notifiers.len()
                )
            })
            .collect()
    }

    /// One line per device with its non-zero counters (transport's, then the device's), for
    /// the log when the partition stops.
    pub fn metrics_summary(&self) -> Vec<String> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let metrics = s
                    .transport
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .metrics();
                let counters: Vec<String> = metrics
                    .into_iter()
                    .filter(|(_, v)| *v != 0)
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                format!("virtio-{} {i}: {}", s.kind, counters.join(" "))
            })
            .collect()
    }

    fn slot_at(&self, addr: u64) -> Option<(&Slot, u64)> {
        let index = addr.checked_sub(VIRTIO_MMIO_BASE)? / VIRTIO_MMIO_SIZE;
        let slot = self.slots.get(usize::try_from(index).ok()?)?;
        Some((slot, addr - slot.base))
    }

    /// A vCPU's MMIO read; `false` when no device is there.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) -> bool {
        let Some((slot, offset)) = self.slot_at(addr) else {
            return false;
        };
        if offset == INTERRUPT_STATUS && data.len() == 4 {
            data.copy_from_slice(&slot.interrupt.status().to_le_bytes());
            return true;
        }
        slot.transport
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read(offset, data);
        true
    }

    /// A vCPU's MMIO write; `false` when no device is there. A queue notification that reaches
    /// here (not caught by its ioeventfd) is forwarded to the device thread, not served here.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) -> bool {
        let Some((slot, offset)) = self.slot_at(addr) else {
            return false;
        };
        if let (INTERRUPT_ACK, Ok(bytes)) = (offset, <[u8; 4]>::try_from(data)) {
            slot.interrupt.acknowledge(u32::from_le_bytes(bytes));
            return true;
        }
        let notify = slot
            .transport
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(offset, data);
        if let Some(evt) = notify.and_then(|queue| slot.notifiers.get(queue)) {
            let _ = evt.write(1);
        }
        true
    }

    /// Starts the device thread, which serves queue notifications and backend input until the
    /// process ends.
    pub fn spawn_device_thread(&self, name: &str) -> Result<(), PartitionError> {
        if self.slots.is_empty() {
            return Ok(());
        }
        let epoll = Epoll::new().map_err(PartitionError::EventFd)?;
        let mut routes = Vec::new();
        for slot in &self.slots {
            let queues = if slot.kicks_elsewhere {
                &[][..]
            } else {
                &slot.notifiers[..]
            };
            for (queue, evt) in queues.iter().enumerate() {
                let evt = evt.try_clone().map_err(PartitionError::EventFd)?;
                add_to_epoll(&epoll, evt.as_raw_fd(), EventSet::IN, routes.len())?;
                routes.push(Route {
                    transport: Arc::clone(&slot.transport),
                    source: Source::Queue(queue, evt),
                    batcher: Batcher::new(slot.batch),
                });
            }
            let backend = slot
                .transport
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .backend_fd();
            if let Some(fd) = backend {
                // Edge-triggered: the device reads until the backend is empty, or stops
                // for a reason that brings it back (see `VirtioDevice::process_backend`),
                // so a backend with input but no guest buffer does not spin this thread.
                // Writable too: a backend that was full takes the frames that waited.
                add_to_epoll(
                    &epoll,
                    fd,
                    EventSet::IN | EventSet::OUT | EventSet::EDGE_TRIGGERED,
                    routes.len(),
                )?;
                routes.push(Route {
                    transport: Arc::clone(&slot.transport),
                    source: Source::Backend,
                    batcher: Batcher::new(Duration::ZERO),
                });
            }
        }
        let timer = TimerFd::new()
            .map_err(|e| PartitionError::EventFd(std::io::Error::from_raw_os_error(e.errno())))?;
        add_to_epoll(&epoll, timer.as_raw_fd(), EventSet::IN, TIMER_TOKEN)?;
        std::thread::Builder::new()
            .name(format!("{name}-devices"))
            .spawn(move || serve(epoll, timer, routes))
            .map(drop)
            .map_err(PartitionError::Thread)
    }
}

fn add_to_epoll(
    epoll: &Epoll,
    fd: std::os::fd::RawFd,
    events: EventSet,
    token: usize,
) -> Result<(), PartitionError> {
    epoll
        .ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(events, token as u64),
        )
        .map_err(PartitionError::EventFd)
}

/// What wakes the device thread for one device.
enum Source {
    /// A queue's notification (its index and ioeventfd).
    Queue(usize, EventFd),
    /// The device's host-side input (the descriptor stays owned by the device).
    Backend,
}

struct Route {
    transport: Arc<Mutex<MmioTransport>>,
    source: Source,
    /// When this queue's notifications are served (never held for a backend).
    batcher: Batcher,
}

/// The epoll token of the timer that ends notification holds (routes use 0..).
const TIMER_TOKEN: usize = usize::MAX;

impl Route {
    /// Serves this source once; returns whether its work cap left work for another round.
    /// `held`: this ends a hold of the queue's notification.
    fn serve(&mut self, held: bool) -> bool {
        let mut transport = self.transport.lock().unwrap_or_else(|e| e.into_inner());
        match &self.source {
            Source::Queue(queue, _) => {
                let again = transport.queue_notified(*queue);
                let batch = transport.queue_batch(*queue).unwrap_or(0);
                self.batcher.served(batch, held);
                again
            }
            Source::Backend => transport.backend_ready(),
        }
    }
}

/// The device thread's loop: wait for queue notifications, backend input and the end of
/// holds, serve each; sources stopped at their work cap are served again after a look
/// (without waiting) at the others, so no queue can hold the thread.
fn serve(epoll: Epoll, mut timer: TimerFd, mut routes: Vec<Route>) {
    let mut events = vec![EpollEvent::default(); routes.len() + 1];
    let mut again: Vec<usize> = Vec::new();
    loop {
        let timeout = if again.is_empty() { -1 } else { 0 };
        let n = match epoll.wait(timeout, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let now = Instant::now();
        let mut todo: Vec<(usize, bool)> = again.drain(..).map(|t| (t, false)).collect();
        for event in events.iter().take(n) {
            let token = event.data() as usize;
            if token == TIMER_TOKEN {
                let _ = timer.wait();
                continue;
            }
            let Some(route) = routes.get_mut(token) else {
                continue;
            };
            if let Source::Queue(_, evt) = &route.source {
                let _ = evt.read();
                if route.batcher.notified(now) == Action::Hold {
                    continue;
                }
            }
            if !todo.iter().any(|(t, _)| *t == token) {
                todo.push((token, false));
            }
        }
        for (token, route) in routes.iter().enumerate() {
            if route.batcher.due().is_some_and(|due| due <= now) {
                todo.retain(|(t, _)| *t != token);
                todo.push((token, true));
            }
        }
        for (token, held) in todo {
            if routes.get_mut(token).is_some_and(|r| r.serve(held)) {
                again.push(token);
            }
        }
        // The timer ends the earliest hold still running (a zero duration disarms it).
        let next = routes.iter().filter_map(|r| r.batcher.due()).min();
        let wait = next.map_or(Duration::ZERO, |due| {
            due.saturating_duration_since(Instant::now())
                .max(Duration::from_micros(1))
        });
        let _ = timer.reset(wait, None);
    }
}

/// The longest hold of `device`'s queue notifications: block devices only, `batch_us` or
/// the partition's default (none for high criticality).
fn batch_window(partition: &PartitionPlan, device: &DevicePlan) -> Duration {
    let DeviceKind::Block(block) = &device.kind else {
        return Duration::ZERO;
    };
    let default = match partition.criticality {
        Criticality::High => 0,
        _ => rules::DEFAULT_BATCH_US,
    };
    Duration::from_micros(u64::from(block.batch_us.unwrap_or(default)))
}

fn create_device(
    partition: &PartitionPlan,
    plan: &DevicePlan,
    console: &Console,
) -> Result<Box<dyn VirtioDevice>, PartitionError> {
    let failed = |e: &dyn std::error::Error| PartitionError::Device(plan.index, error_chain(e));
    Ok(match &plan.kind {
        DeviceKind::Block(b) => Box::new(
            Block::new(&b.path, b.read_only, &b.id)
                .and_then(|block| block.with_io_threads(b.io_threads as usize))
                .map_err(|e| PartitionError::Device(plan.index, e.to_string()))?,
        ),
        DeviceKind::Rng(r) => Box::new(Rng::new(r.max_bytes_per_request)),
        DeviceKind::Console => Box::new(VirtioConsole::new(Box::new(console.clone()))),
        DeviceKind::Net(net) => {
            let backend: Box<dyn bulkhead_virtio::net::NetBackend> = match &net.backend {
                NetBackend::Tap { name } => Box::new(Tap::open(name).map_err(|e| failed(&e))?),
                NetBackend::Link { partition: peer } => {
                    let run_dir = Link::run_dir().map_err(|e| failed(&e))?;
                    Box::new(Link::open(&run_dir, &partition.name, peer).map_err(|e| failed(&e))?)
                }
                NetBackend::Bridge { bridge } => {
                    let run_dir = Link::run_dir().map_err(|e| failed(&e))?;
                    let socket = run_dir.join(bridge_socket_name(bridge, &partition.name));
                    let device = VhostUserNet::new(net.mac, socket).map_err(|e| failed(&e))?;
                    return Ok(Box::new(device));
                }
            };
            Box::new(Net::new(net.mac, backend))
        }
        DeviceKind::Vsock(v) => {
            let mut ports: Vec<_> = v.ports.iter().map(|p| (p.port, p.socket.clone())).collect();
            if !partition.ports.is_empty() || !partition.doorbells.is_empty() {
                // The APEX service (apex.rs): where the guest reaches its ports.
                let run_dir = Link::run_dir().map_err(|e| failed(&e))?;
                ports.push((
                    bulkhead_config::rules::APEX_VSOCK_PORT,
                    run_dir.join(crate::apex::socket_name(&partition.name)),
                ));
            }
            Box::new(Vsock::new(u64::from(v.cid), &ports).map_err(|e| failed(&e))?)
        }
    })
}

/// The file name, in the run directory, of the socket where bridge `bridge` serves
/// partition `partition`'s port (the bridge process binds it).
pub fn bridge_socket_name(bridge: &str, partition: &str) -> String {
    format!("bridge-{bridge}-{partition}.sock")
}

/// `error` and its sources, joined with ": " ([`PartitionError::Device`] holds a string).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
