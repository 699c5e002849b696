//! A virtio-net device whose data path is a vhost-user backend (the system's network bridge):
//! the device keeps the virtio-mmio side — features, configuration space (MAC, link status),
//! the device status — and hands the rings, the guest's memory and the queues' kick and call
//! eventfds to the backend over its Unix socket (the vhost-user protocol, crate `vhost`,
//! frontend side). Frames then move between guest memory and the bridge without this process.
//!
//! Threads: registers on vCPU threads as for every device; everything that talks to the
//! backend runs on the partition's device thread, through [`VirtioDevice::process_backend`]:
//! the device's own epoll set (its [`VirtioDevice::backend_fd`]) holds the socket, the
//! backend's call eventfds and a retry timer. Activation (the driver's `DRIVER_OK`, a vCPU
//! thread) only arms the timer, so no vCPU ever waits on the bridge.
//!
//! - Queue kicks: the device owns one eventfd per queue ([`VirtioDevice::kick_eventfds`]),
//!   which the partition registers as the queue's ioeventfd and never reads itself; the
//!   backend waits on them.
//! - Interrupts: the backend signals the device's interrupt line itself (its irqfd is each
//!   queue's call eventfd), without a hop through this process; since it cannot set
//!   InterruptStatus bit 0, which Linux's `virtio_mmio` checks, the register shows it set
//!   while the device is active (Firecracker does the same), and the driver looks at its
//!   queues on every interrupt.
//! - The bridge going away (the socket hangs up): the link goes down (`VIRTIO_NET_S_LINK_UP`
//!   cleared, a configuration interrupt), and the device reconnects every
//!   [`RETRY_INTERVAL`]; on success it replays the setup with the features the driver
//!   acknowledged and, as vring base, each ring's used index read from guest memory — what
//!   the backend completed; anything it had taken but not completed is taken again (net
//!   completes in order, so nothing the guest posted is lost) — then brings the link up and
//!   kicks every queue once. The guest never has to reset its driver.
//! - A driver reset closes the connection (the bridge discards that port's state); the next
//!   `DRIVER_OK` connects again.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS,
    VIRTIO_NET_S_LINK_UP,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::timerfd::TimerFd;

use super::device::{QUEUE_SIZE, RECEIVEQ, TRANSMITQ};
use crate::{read_config_bytes, DeviceError, Interrupt, VirtioDevice, COMMON_FEATURES};
use std::sync::Arc;

/// How long the device waits between two attempts to reach the backend.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(50);
/// How long one request to the backend may take before the connection counts as dead.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Features offered to the driver; the bridge implements all of them (a backend that lacks one
/// the driver acknowledged is refused at setup).
pub const FEATURES: u64 = COMMON_FEATURES
    | (1 << VIRTIO_NET_F_MAC)
    | (1 << VIRTIO_NET_F_STATUS)
    | (1 << VIRTIO_NET_F_CSUM)
    | (1 << VIRTIO_NET_F_GUEST_CSUM)
    | (1 << VIRTIO_NET_F_GUEST_TSO4)
    | (1 << VIRTIO_NET_F_GUEST_TSO6)
    | (1 << VIRTIO_NET_F_HOST_TSO4)
    | (1 << VIRTIO_NET_F_HOST_TSO6);

const QUEUE_SIZES: [u16; 2] = [QUEUE_SIZE, QUEUE_SIZE];
/// `struct virtio_net_config` up to `status` (§5.1.4).
const CONFIG_SIZE: usize = 8;

/// Tokens of the device's epoll set.
const SOCKET_TOKEN: u64 = 0;
const TIMER_TOKEN: u64 = 1;

/// Counters (all since the device was created).
#[derive(Debug, Default, Clone, Copy)]
pub struct VhostUserNetMetrics {
    /// Connections set up with the backend.
    pub connects: u64,
    /// Connections lost (the backend hung up or a request failed).
    pub disconnects: u64,
    /// Attempts to reach the backend that failed.
    pub connect_failures: u64,
}

#[derive(Debug)]
enum State {
    Inactive,
    Active {
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    },
}

/// The device (see the module docs).
pub struct VhostUserNet {
    mac: [u8; 6],
    socket: PathBuf,
    kicks: Vec<EventFd>,
    /// The device's interrupt line (its irqfd), handed to the backend as the call eventfd.
    interrupt: Option<Arc<Interrupt>>,
    epoll: Epoll,
    timer: TimerFd,
    frontend: Option<Frontend>,
    link_up: bool,
    config_changed: bool,
    state: State,
    metrics: VhostUserNetMetrics,
    /// The last reason the backend could not be used, for the log.
    last_error: Option<String>,
}

impl std::fmt::Debug for VhostUserNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserNet")
            .field("socket", &self.socket)
            .field("link_up", &self.link_up)
            .finish_non_exhaustive()
    }
}

/// Why the device could not be created.
#[derive(Debug, thiserror::Error)]
pub enum VhostUserNetError {
    #[error("cannot create the device's event descriptors")]
    Events(#[source] std::io::Error),
}

/// Why talking to the backend failed.
#[derive(Debug, thiserror::Error)]
enum BackendError {
    #[error("cannot connect to {0}")]
    Connect(String, #[source] std::io::Error),
    #[error("vhost-user request {0} failed")]
    Request(&'static str, #[source] vhost::Error),
    #[error("the backend lacks features {0:#x} the driver acknowledged")]
    Features(u64),
    #[error("guest memory region cannot be shared: {0}")]
    Memory(String),
    #[error("a ring of queue {0} is outside guest memory")]
    Ring(usize),
}

impl VhostUserNet {
    /// A device with `mac` whose backend listens on `socket`. Nothing is connected until the
    /// driver activates the device.
    pub fn new(mac: [u8; 6], socket: PathBuf) -> Result<VhostUserNet, VhostUserNetError> {
        let events = |e: std::io::Error| VhostUserNetError::Events(e);
        let mut kicks = Vec::new();
        for _ in 0..QUEUE_SIZES.len() {
            kicks.push(EventFd::new(EFD_NONBLOCK).map_err(events)?);
        }
        let epoll = Epoll::new().map_err(events)?;
        let timer = TimerFd::new()
            .map_err(|e| VhostUserNetError::Events(std::io::Error::from_raw_os_error(e.errno())))?;
        epoll
            .ctl(
                ControlOperation::Add,
                timer.as_raw_fd(),
                EpollEvent::new(EventSet::IN, TIMER_TOKEN),
            )
            .map_err(events)?;
        Ok(VhostUserNet {
            mac,
            socket,
            kicks,
            interrupt: None,
            epoll,
            timer,
            frontend: None,
            link_up: false,
            config_changed: false,
            state: State::Inactive,
            metrics: VhostUserNetMetrics::default(),
            last_error: None,
        })
    }

    /// Counters.
    pub fn counters(&self) -> VhostUserNetMetrics {
        self.metrics
    }

    fn config(&self) -> [u8; CONFIG_SIZE] {
        let mut config = [0u8; CONFIG_SIZE];
        config[..6].copy_from_slice(&self.mac);
        let status: u16 = if self.link_up {
            VIRTIO_NET_S_LINK_UP as u16
        } else {
            0
        };
        config[6..].copy_from_slice(&status.to_le_bytes());
        config
    }

    fn arm_retry(&mut self, after: Duration) {
        let _ = self.timer.reset(after.max(Duration::from_micros(1)), None);
    }

    fn set_link(&mut self, up: bool) {
        if self.link_up != up {
            self.link_up = up;
            self.config_changed = true;
        }
    }

    fn disconnect(&mut self) {
        if let Some(frontend) = self.frontend.take() {
            let _ = self.epoll.ctl(
                ControlOperation::Delete,
                frontend.as_raw_fd(),
                EpollEvent::default(),
            );
            self.metrics.disconnects += 1;
        }
        self.set_link(false);
    }

    /// Connects and hands the active queues over; on failure leaves the device disconnected.
    fn connect_and_set_up(&mut self) -> Result<(), BackendError> {
        let State::Active {
            mem,
            queues,
            acked_features,
        } = &self.state
        else {
            return Ok(());
        };
        let stream = UnixStream::connect(&self.socket)
            .map_err(|e| BackendError::Connect(self.socket.display().to_string(), e))?;
        let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
        let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
        let mut frontend = Frontend::from_stream(stream, QUEUE_SIZES.len() as u64);
        let Some(interrupt) = &self.interrupt else {
            return Ok(());
        };
        set_up(
            &mut frontend,
            mem,
            queues,
            *acked_features,
            &self.kicks,
            interrupt.eventfd(),
        )?;
        interrupt.set_vring_raised_elsewhere(true);
        self.epoll
            .ctl(
                ControlOperation::Add,
                frontend.as_raw_fd(),
                EpollEvent::new(
                    EventSet::IN | EventSet::READ_HANG_UP | EventSet::HANG_UP,
                    SOCKET_TOKEN,
                ),
            )
            .map_err(|e| BackendError::Connect(self.socket.display().to_string(), e))?;
        self.frontend = Some(frontend);
        self.metrics.connects += 1;
        self.set_link(true);
        // A backend that was (re)started learns of buffers posted before it came only from a
        // kick: give each queue one.
        for kick in &self.kicks {
            let _ = kick.write(1);
        }
        Ok(())
    }
}

/// The vhost-user setup of one connection (the vhost-user spec's "starting the device").
fn set_up(
    frontend: &mut Frontend,
    mem: &GuestMemoryMmap,
    queues: &[Queue],
    acked_features: u64,
    kicks: &[EventFd],
    call: &EventFd,
) -> Result<(), BackendError> {
    let request = |name| move |e| BackendError::Request(name, e);
    frontend.set_owner().map_err(request("SET_OWNER"))?;
    let offered = frontend.get_features().map_err(request("GET_FEATURES"))?;
    let missing = acked_features & !offered;
    if missing != 0 {
        return Err(BackendError::Features(missing));
    }
    let protocol_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
    let with_protocol = offered & protocol_bit != 0;
    if with_protocol {
        let protocol = frontend
            .get_protocol_features()
            .map_err(request("GET_PROTOCOL_FEATURES"))?;
        let wanted = protocol & VhostUserProtocolFeatures::REPLY_ACK;
        frontend
            .set_protocol_features(wanted)
            .map_err(request("SET_PROTOCOL_FEATURES"))?;
        if wanted.contains(VhostUserProtocolFeatures::REPLY_ACK) {
            frontend.set_hdr_flags(vhost::vhost_user::message::VhostUserHeaderFlag::NEED_REPLY);
        }
    }
    let features = acked_features | if with_protocol { protocol_bit } else { 0 };
    frontend
        .set_features(features)
        .map_err(request("SET_FEATURES"))?;
    let regions: Vec<VhostUserMemoryRegionInfo> = mem
        .iter()
        .map(|region| {
            VhostUserMemoryRegionInfo::from_guest_region(region)
                .map_err(|e| BackendError::Memory(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    frontend
        .set_mem_table(&regions)
        .map_err(request("SET_MEM_TABLE"))?;
    for (index, queue) in queues.iter().enumerate() {
        if !queue.ready() {
            continue;
        }
        let Some(kick) = kicks.get(index) else {
            continue;
        };
        let host = |gpa: u64| {
            mem.get_host_address(GuestAddress(gpa))
                .map(|p| p as u64)
                .map_err(|_| BackendError::Ring(index))
        };
        let config = VringConfigData {
            queue_max_size: queue.max_size(),
            queue_size: queue.size(),
            flags: 0,
            desc_table_addr: host(queue.desc_table())?,
            used_ring_addr: host(queue.used_ring())?,
            avail_ring_addr: host(queue.avail_ring())?,
            log_addr: None,
        };
        // What the backend completed: the ring restarts from there (see the module docs).
        let base = queue
            .used_idx(mem, std::sync::atomic::Ordering::Acquire)
            .map_err(|_| BackendError::Ring(index))?;
        frontend
            .set_vring_num(index, queue.size())
            .map_err(request("SET_VRING_NUM"))?;
        frontend
            .set_vring_addr(index, &config)
            .map_err(request("SET_VRING_ADDR"))?;
        frontend
            .set_vring_base(index, base.0)
            .map_err(request("SET_VRING_BASE"))?;
        frontend
            .set_vring_call(index, call)
            .map_err(request("SET_VRING_CALL"))?;
        frontend
            .set_vring_kick(index, kick)
            .map_err(request("SET_VRING_KICK"))?;
        if with_protocol {
            frontend
                .set_vring_enable(index, true)
                .map_err(request("SET_VRING_ENABLE"))?;
        }
    }
    Ok(())
}

/// `error` and its sources, joined with ": ".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

impl VirtioDevice for VhostUserNet {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn avail_features(&self) -> u64 {
        FEATURES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config(), offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), DeviceError> {
        if queues.len() != QUEUE_SIZES.len() {
            return Err(DeviceError::QueueCount {
                expected: QUEUE_SIZES.len(),
                got: queues.len(),
            });
        }
        self.state = State::Active {
            mem,
            queues,
            acked_features,
        };
        // The device thread connects (activation runs on a vCPU thread).
        self.arm_retry(Duration::ZERO);
        Ok(())
    }

    /// Kicks go to the backend directly; one forwarded by the transport is passed on there.
    fn process_queue(&mut self, index: usize) -> Result<bool, DeviceError> {
        if let Some(kick) = self.kicks.get(index) {
            let _ = kick.write(1);
        }
        Ok(false)
    }

    fn kick_eventfds(&self) -> Option<Vec<EventFd>> {
        self.kicks.iter().map(|k| k.try_clone().ok()).collect()
    }

    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.epoll.as_raw_fd())
    }

    fn process_backend(&mut self) -> Result<bool, DeviceError> {
        let mut events = [EpollEvent::default(); 8];
        let n = self.epoll.wait(0, &mut events).unwrap_or(0);
        for event in events.iter().take(n) {
            match event.data() {
                SOCKET_TOKEN => {
                    // Nothing is ever sent on the socket unasked: readable means gone.
                    self.disconnect();
                    self.last_error = Some(format!(
                        "the bridge at {} hung up; reconnecting",
                        self.socket.display()
                    ));
                    self.arm_retry(RETRY_INTERVAL);
                }
                TIMER_TOKEN => {
                    let _ = self.timer.wait();
                    if self.frontend.is_some() || matches!(self.state, State::Inactive) {
                        continue;
                    }
                    if let Err(e) = self.connect_and_set_up() {
                        self.metrics.connect_failures += 1;
                        self.last_error = Some(chain(&e));
                        self.disconnect();
                        self.arm_retry(RETRY_INTERVAL);
                    }
                }
                _ => {}
            }
        }
        // Used-buffer interrupts come from the backend directly.
        Ok(false)
    }

    fn set_interrupt(&mut self, interrupt: Arc<Interrupt>) {
        self.interrupt = Some(interrupt);
    }

    fn take_config_change(&mut self) -> bool {
        std::mem::take(&mut self.config_changed)
    }

    fn take_log_line(&mut self) -> Option<String> {
        self.last_error.take()
    }

    fn reset(&mut self) {
        self.state = State::Inactive;
        if let Some(interrupt) = &self.interrupt {
            interrupt.set_vring_raised_elsewhere(false);
        }
        self.disconnect();
        self.config_changed = false;
        let _ = self.timer.reset(Duration::ZERO, None);
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("backend_connects", m.connects),
            ("backend_disconnects", m.disconnects),
            ("backend_connect_failures", m.connect_failures),
        ]
    }
}

// Queue indices are the device's own (§5.1.2).
const _: () = assert!(RECEIVEQ == 0 && TRANSMITQ == 1);
