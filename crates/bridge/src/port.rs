//! One port of the bridge as a vhost-user backend (crate `vhost-user-backend`): the frontend
//! (a partition's virtio-net device, or QEMU's `-netdev vhost-user`) hands over its rings and
//! memory, and this side moves frames between them and the [`Hub`].
//!
//! Threads: each port has a thread of its own that accepts one connection at a time on the
//! port's socket ([`serve`]); per connection `vhost-user-backend` runs a request thread and one
//! vring worker, which calls [`PortBackend::handle_event`] for a kick of either queue and for
//! the port's wake eventfd (frames queued for it by other ports).
//!
//! - transmitq (queue 1): each chain is read (its device-readable descriptors, at most
//!   [`MAX_DATA`] bytes: header and frame), returned to the driver at once, its header checked
//!   ([`NetHeader::check`]) and the frame handed to the hub's pipeline.
//! - receiveq (queue 0): frames queued for the port fill the driver's buffers, one frame per
//!   chain, `num_buffers` = 1; a partial checksum the driver did not accept is completed. No
//!   buffer: the frame waits (the inbox is bounded, see `hub.rs`) and the driver's next kick
//!   resumes delivery.
//!
//! A chain whose descriptors point outside guest memory, or of the wrong direction, is
//! returned unused and counted: a hostile guest breaks only its own traffic. Work per event is
//! capped at the queue size in chains per queue.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, RwLock};

use bulkhead_virtio::net::{NetHeader, Offloads, F_NEEDS_CSUM, HEADER_LEN, MAX_FRAME_LEN};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::Listener;
use vhost_user_backend::{VhostUserBackendMut, VhostUserDaemon, VringRwLock, VringState, VringT};
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
};
use virtio_queue::{QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use crate::hub::Hub;
use crate::policy::{Attachment, DropReason};

/// Header and the largest frame.
pub const MAX_DATA: usize = HEADER_LEN + MAX_FRAME_LEN;
/// Queue indices (virtio 1.2 §5.1.2).
const RX: u16 = 0;
const TX: u16 = 1;
/// The daemon's token of the port's wake eventfd: above the queues and the daemon's own
/// exit/vring-enabled token (`num_queues`).
const WAKE: u16 = 3;
/// Largest queue a frontend may set up.
const MAX_QUEUE_SIZE: usize = 1024;

/// Virtio features the bridge offers a frontend: those of bulkhead's own vhost-user net
/// device ([`bulkhead_virtio::net::VHOST_USER_FEATURES`]), and the vhost-user protocol
/// features.
/// QEMU 7.2 will not start without protocol features, and enables rings before it acknowledges
/// them: an external port's [`relay`](crate::relay) puts its requests into order.
fn features() -> u64 {
    bulkhead_virtio::net::VHOST_USER_FEATURES | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
}

/// The backend of one connection of port `port`.
pub struct PortBackend {
    port: usize,
    hub: Arc<Hub>,
    mem: Option<GuestMemoryAtomic<GuestMemoryMmap>>,
    event_idx: bool,
    exit: (EventConsumer, EventNotifier),
    /// Where a transmitted chain is gathered ([`MAX_DATA`] bytes).
    tx_buf: Vec<u8>,
    /// Chains refused (outside memory, wrong direction, too long), since the connection began.
    pub bad_chains: u64,
}

impl PortBackend {
    fn new(port: usize, hub: Arc<Hub>) -> io::Result<PortBackend> {
        Ok(PortBackend {
            port,
            hub,
            mem: None,
            event_idx: false,
            exit: new_event_consumer_and_notifier(EventFlag::NONBLOCK)?,
            tx_buf: vec![0u8; MAX_DATA],
            bad_chains: 0,
        })
    }

    fn attachment(&self) -> Attachment {
        Attachment::Port(self.port)
    }

    /// Serves the transmit queue: every available chain to the hub.
    fn transmit(&mut self, vring: &VringRwLock) -> io::Result<()> {
        let Some(atomic) = &self.mem else {
            return Ok(());
        };
        let mem = atomic.memory();
        let mut dests = Vec::new();
        let mut budget = usize::from(vring.get_ref().get_queue().size());
        loop {
            if self.event_idx {
                vring.disable_notification().map_err(io::Error::other)?;
            }
            let mut used_any = false;
            while budget > 0 {
                let chain = vring
                    .get_mut()
                    .get_queue_mut()
                    .iter(mem.clone())
                    .map_err(io::Error::other)?
                    .next();
                let Some(chain) = chain else { break };
                budget -= 1;
                let head = chain.head_index();
                let mut filled = 0usize;
                let mut ok = true;
                for desc in chain {
                    let len = desc.len() as usize;
                    let Some(room) = self.tx_buf.get_mut(filled..filled + len) else {
                        ok = false;
                        break;
                    };
                    if desc.is_write_only() || mem.read_slice(room, desc.addr()).is_err() {
                        ok = false;
                        break;
                    }
                    filled += len;
                }
                let data = &self.tx_buf[..filled];
                vring.add_used(head, 0).map_err(io::Error::other)?;
                used_any = true;
                let header = NetHeader::parse(data);
                let valid = ok
                    && data.len() >= HEADER_LEN + 14
                    && header.check(data.len() - HEADER_LEN, true).is_ok();
                if !valid {
                    self.bad_chains += 1;
                    self.hub
                        .dropped_at(self.attachment(), DropReason::Malformed);
                    continue;
                }
                self.hub
                    .forward(Attachment::Port(self.port), data, &mut dests);
            }
            if used_any && vring.needs_notification().map_err(io::Error::other)? {
                vring.signal_used_queue()?;
            }
            if budget == 0 {
                // Chains may be left: come back after the other queue had its turn.
                self.wake_self();
                break;
            }
            if !self.event_idx || !vring.enable_notification().map_err(io::Error::other)? {
                break;
            }
        }
        Ok(())
    }

    /// Makes the worker come back to this port (its wake eventfd), for work left at a cap.
    fn wake_self(&self) {
        if let Some(end) = self.hub.end(self.attachment()) {
            let _ = end.wake.write(1);
        }
    }

    /// Fills receive buffers with the frames queued for the port.
    fn receive(&mut self, vring: &VringRwLock) -> io::Result<()> {
        let Some(atomic) = &self.mem else {
            return Ok(());
        };
        let at = self.attachment();
        let offloads = self.hub.offloads(self.port);
        // Counted after the ring is let go: the hub's pipeline lock is taken while holding a
        // ring (direct delivery), never the other way round.
        let mut delivered: Vec<usize> = Vec::new();
        let mut refused = 0u64;
        let mut state = vring.get_mut();
        let mut used_any = false;
        let mut budget = usize::from(state.get_queue().size());
        loop {
            if budget == 0 {
                self.wake_self();
                break;
            }
            let Some(data) = self.hub.take(at) else { break };
            budget -= 1;
            match write_frame(&mut state, atomic, &data, offloads, self.event_idx)? {
                Written::Delivered(bytes) => {
                    used_any = true;
                    delivered.push(bytes);
                }
                Written::Refused(bad) => {
                    used_any = true;
                    self.bad_chains += u64::from(bad);
                    refused += 1;
                }
                Written::NoBuffer => {
                    // The frame waits for the driver's next kick.
                    self.hub.put_back(at, data);
                    break;
                }
            }
        }
        if used_any && state.needs_notification().map_err(io::Error::other)? {
            state.signal_used_queue()?;
        }
        drop(state);
        for bytes in delivered {
            self.hub.delivered(at, bytes);
        }
        for _ in 0..refused {
            self.hub.dropped_at(at, DropReason::RingFull);
        }
        // From now on other ports may write into this ring directly.
        self.hub.publish_rx(
            self.port,
            RxRing {
                vring: vring.clone(),
                mem: atomic.clone(),
                event_idx: self.event_idx,
            },
        );
        Ok(())
    }
}

/// A port's receive ring, as other ports' threads write into it directly.
#[derive(Clone)]
pub struct RxRing {
    pub vring: VringRwLock,
    pub mem: GuestMemoryAtomic<GuestMemoryMmap>,
    pub event_idx: bool,
}

impl std::fmt::Debug for RxRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxRing")
            .field("event_idx", &self.event_idx)
            .finish_non_exhaustive()
    }
}

/// What became of a frame offered to a receive ring.
pub enum Written {
    /// In a buffer, with this many frame bytes.
    Delivered(usize),
    /// The buffer was returned unused: too small, or (`true`) malformed.
    Refused(bool),
    /// No buffer: the frame must wait.
    NoBuffer,
}

/// Writes `data` (header + frame) into the next receive buffer of the ring behind `state`:
/// one frame per chain, `num_buffers` = 1, a partial checksum completed for a driver that
/// does not take it. The caller signals the driver.
pub fn write_frame(
    state: &mut VringState<GuestMemoryAtomic<GuestMemoryMmap>>,
    atomic: &GuestMemoryAtomic<GuestMemoryMmap>,
    data: &[u8],
    offloads: Offloads,
    event_idx: bool,
) -> io::Result<Written> {
    let mem = atomic.memory();
    let mut chain = state
        .get_queue_mut()
        .iter(mem.clone())
        .map_err(io::Error::other)?
        .next();
    if chain.is_none() && event_idx && state.enable_notification().map_err(io::Error::other)? {
        // The driver added buffers while we looked.
        let _ = state.disable_notification();
        chain = state
            .get_queue_mut()
            .iter(mem.clone())
            .map_err(io::Error::other)?
            .next();
    }
    let Some(chain) = chain else {
        return Ok(Written::NoBuffer);
    };
    let head = chain.head_index();
    let (Some(header_bytes), Some(frame)) = (data.get(..HEADER_LEN), data.get(HEADER_LEN..)) else {
        state.add_used(head, 0).map_err(io::Error::other)?;
        return Ok(Written::Refused(true));
    };
    let mut header = NetHeader::parse(header_bytes);
    // A partial checksum the driver cannot take is completed, in a copy of the frame.
    let completed;
    let frame = if header.flags & F_NEEDS_CSUM != 0 && !offloads.csum {
        let mut copy = frame.to_vec();
        bulkhead_virtio::net::complete_checksum(&header, &mut copy);
        header.flags &= !F_NEEDS_CSUM;
        completed = copy;
        &completed[..]
    } else {
        frame
    };
    header.num_buffers = 1;
    let header = header.to_bytes();
    let total = HEADER_LEN + frame.len();
    // Gather header and frame into the chain's buffers.
    let mut written = 0usize;
    let mut ok = true;
    for desc in chain {
        if written >= total {
            break;
        }
        if !desc.is_write_only() {
            ok = false;
            break;
        }
        let mut room = desc.len() as usize;
        let mut addr = desc.addr();
        while room > 0 && written < total {
            let part = if written < HEADER_LEN {
                &header[written..]
            } else {
                &frame[written - HEADER_LEN..]
            };
            let n = room.min(part.len());
            if mem.write_slice(&part[..n], addr).is_err() {
                ok = false;
                break;
            }
            written += n;
            room -= n;
            match addr.checked_add(n as u64) {
                Some(next) => addr = next,
                None => break,
            }
        }
        if !ok {
            break;
        }
    }
    if ok && written == total {
        state
            .add_used(head, written as u32)
            .map_err(io::Error::other)?;
        Ok(Written::Delivered(frame.len()))
    } else {
        state.add_used(head, 0).map_err(io::Error::other)?;
        Ok(Written::Refused(!ok))
    }
}

impl VhostUserBackendMut for PortBackend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        2
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        features()
    }

    fn acked_features(&mut self, features: u64) {
        let acked = |bit: u32| features & (1 << bit) != 0;
        self.hub.port_connected(
            self.port,
            Offloads {
                csum: acked(VIRTIO_NET_F_GUEST_CSUM),
                tso4: acked(VIRTIO_NET_F_GUEST_TSO4),
                tso6: acked(VIRTIO_NET_F_GUEST_TSO6),
            },
        );
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::REPLY_ACK | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
    }

    fn set_event_idx(&mut self, enabled: bool) {
        self.event_idx = enabled;
    }

    fn update_memory(&mut self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> io::Result<()> {
        self.mem = Some(mem);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        Some((self.exit.0.try_clone().ok()?, self.exit.1.try_clone().ok()?))
    }

    fn handle_event(
        &mut self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        let (Some(rx), Some(tx)) = (vrings.first(), vrings.get(1)) else {
            return Ok(());
        };
        // A failure here (a ring outside memory) ends only this connection's worker.
        match device_event {
            RX => self.receive(rx),
            TX => self.transmit(tx),
            WAKE => {
                if let Some(end) = self.hub.end(self.attachment()) {
                    let _ = end.wake.read();
                }
                self.transmit(tx)?;
                self.receive(rx)
            }
            _ => Ok(()),
        }
    }
}

/// Accepts the frontends of port `port` on `socket`, one connection at a time, forever (each
/// connection gets a fresh backend and daemon: vhost-user state never outlives it). Errors
/// are passed to `log`.
pub fn serve(port: usize, name: &str, socket: &Path, hub: Arc<Hub>, log: &(dyn Fn(String) + Sync)) {
    let mut listener = match Listener::new(socket, true) {
        Ok(listener) => listener,
        Err(e) => {
            log(format!(
                "port {name}: cannot listen on {}: {e}",
                socket.display()
            ));
            return;
        }
    };
    loop {
        let backend = match PortBackend::new(port, Arc::clone(&hub)) {
            Ok(backend) => Arc::new(RwLock::new(backend)),
            Err(e) => {
                log(format!("port {name}: cannot create its events: {e}"));
                return;
            }
        };
        let mut daemon = match VhostUserDaemon::new(
            format!("port-{name}"),
            Arc::clone(&backend),
            GuestMemoryAtomic::new(GuestMemoryMmap::new()),
        ) {
            Ok(daemon) => daemon,
            Err(e) => {
                log(format!("port {name}: cannot start its daemon: {e}"));
                return;
            }
        };
        if let Some(end) = hub.end(Attachment::Port(port)) {
            let registered = daemon
                .get_epoll_handlers()
                .first()
                .map(|h| h.register_listener(end.wake.as_raw_fd(), EventSet::IN, u64::from(WAKE)));
            if let Some(Err(e)) = registered {
                log(format!("port {name}: cannot wait on its inbox: {e}"));
            }
        }
        if let Err(e) = daemon.start(&mut listener) {
            log(format!("port {name}: accepting a frontend failed: {e}"));
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        log(format!("port {name}: frontend connected"));
        let ended = daemon.wait();
        hub.unpublish_rx(port);
        let exit = backend
            .read()
            .map(|b| b.exit.1.try_clone().ok())
            .ok()
            .flatten();
        if let Some(exit) = exit {
            let _ = exit.notify();
        }
        let bad = backend.read().map(|b| b.bad_chains).unwrap_or(0);
        log(format!(
            "port {name}: frontend gone ({}){}",
            match ended {
                Ok(()) => "closed".to_string(),
                Err(e) => e.to_string(),
            },
            if bad > 0 {
                format!(", {bad} malformed chains refused")
            } else {
                String::new()
            }
        ));
    }
}
