//! A partition's ARINC 653 ports and doorbells: the ends of its channels (shared-memory files
//! of `bulkhead-ports` in the run directory), the doorbells it rings and is rung by, and the
//! [`PvPorts`] view of them that the paravirtual call handler and the APEX service use.
//!
//! Handles: the partition's ports in description order, then its doorbells; a guest gets
//! them by name (`PortOpen`, or the APEX service's names). Each end of a channel is used by
//! one caller at a time (a mutex per writer or receiver; sampling readers need none).
//!
//! Doorbells: a doorbell is a pair of Unix datagram sockets in the run directory,
//! `bell-<name>-ring.sock` bound by the ringing partition (connected to the other) and
//! `bell-<name>-recv.sock` bound by the rung one (not connected: it takes datagrams only from
//! the ringing partition's socket path, so a restarted ringer reaches it at once). A ring is
//! one datagram; the rung partition's doorbell thread, `<partition>-bells`, counts it,
//! wakes whoever waits on that doorbell (a `DoorbellWait` call, an APEX `wait`) and raises
//! the interrupt vector the guest attached, if any. Rings never block the ringer: a full
//! socket buffer (a rung partition that takes nothing) coalesces them. Rings sent while the
//! rung partition is down are lost, and counted.
//!
//! Threads: vCPU threads and APEX connection threads call [`PvPorts`]; the doorbell thread
//! only counts and raises. Nothing here runs on a vCPU thread but the call itself, which
//! waits at most its timeout.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bulkhead_config::{PartitionPlan, PortDirection, PortKind as PlanKind, PortPlan};
use bulkhead_devices::pvcall::{PortError, PortInfo, PvPorts, SampledMessage};
use bulkhead_ports::{
    channel_file_name, monotonic_ns, QueueReceiver, QueueSender, ReadError, ReceiveError,
    SamplingReader, SamplingWriter, SendError,
};
use bulkhead_pvabi::{PortKind, CALL_VALUES};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use crate::link::{Link, LinkError};

/// Why the ports could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    #[error("port {0}")]
    Channel(String, #[source] bulkhead_ports::OpenError),
    #[error("doorbell {0}")]
    Doorbell(String, #[source] LinkError),
    #[error("doorbell {0}: cannot bind {1}")]
    Bind(String, PathBuf, #[source] std::io::Error),
    #[error("cannot start the doorbell thread")]
    Thread(#[source] std::io::Error),
}

/// The socket file names of doorbell `name`: (the ringer's, the rung partition's).
pub fn doorbell_socket_names(name: &str) -> (String, String) {
    (
        format!("bell-{name}-ring.sock"),
        format!("bell-{name}-recv.sock"),
    )
}

/// What a doorbell rung for this partition has seen.
#[derive(Debug, Default)]
struct BellState {
    pending: u64,
    vector: Option<u8>,
}

/// A doorbell rung for this partition.
#[derive(Debug, Default)]
struct Bell {
    state: Mutex<BellState>,
    rung: Condvar,
    rings: AtomicU64,
}

enum End {
    SamplingSource(Mutex<SamplingWriter>),
    SamplingDestination {
        reader: SamplingReader,
        refresh_ns: u64,
    },
    QueuingSource(Mutex<QueueSender>),
    QueuingDestination(Mutex<QueueReceiver>),
    DoorbellOut {
        link: Mutex<Link>,
        lost: AtomicU64,
    },
    DoorbellIn(Arc<Bell>),
}

struct Entry {
    name: String,
    info: PortInfo,
    end: End,
}

/// What raises an interrupt vector in this partition (on vCPU 0).
pub type Raise = Box<dyn Fn(u8) + Send + Sync>;

/// The ports and doorbells of one partition.
pub struct PartitionPorts {
    entries: Vec<Entry>,
    by_name: HashMap<String, u64>,
    /// The rung side of each incoming doorbell, with its entry's index, until the doorbell
    /// thread takes them.
    incoming: Mutex<Vec<(usize, UnixDatagram, PathBuf)>>,
    raise: OnceLock<Raise>,
}

impl PartitionPorts {
    /// Opens every port and doorbell of `plan` in `run_dir` (the channel files exist: the
    /// supervisor made them). `None` when the partition has neither.
    pub fn open(plan: &PartitionPlan, run_dir: &Path) -> Result<Option<Self>, PortsError> {
        if plan.ports.is_empty() && plan.doorbells.is_empty() {
            return Ok(None);
        }
        let mut entries = Vec::new();
        let mut incoming = Vec::new();
        for port in &plan.ports {
            entries.push(open_port(port, run_dir)?);
        }
        for bell in &plan.doorbells {
            let (ring, recv) = doorbell_socket_names(&bell.name);
            let info = |kind| PortInfo {
                kind,
                max_message_bytes: 0,
                param: 0,
            };
            if bell.from == plan.name {
                let link = Link::bind(run_dir, &ring, &recv)
                    .map_err(|e| PortsError::Doorbell(bell.name.clone(), e))?;
                entries.push(Entry {
                    name: bell.name.clone(),
                    info: info(PortKind::DoorbellOut),
                    end: End::DoorbellOut {
                        link: Mutex::new(link),
                        lost: AtomicU64::new(0),
                    },
                });
            } else {
                let path = run_dir.join(&recv);
                let socket = bind_datagram(&path)
                    .map_err(|e| PortsError::Bind(bell.name.clone(), path.clone(), e))?;
                incoming.push((entries.len(), socket, run_dir.join(&ring)));
                entries.push(Entry {
                    name: bell.name.clone(),
                    info: info(PortKind::DoorbellIn),
                    end: End::DoorbellIn(Arc::default()),
                });
            }
        }
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i as u64))
            .collect();
        Ok(Some(PartitionPorts {
            entries,
            by_name,
            incoming: Mutex::new(incoming),
            raise: OnceLock::new(),
        }))
    }

    /// Starts the doorbell thread (when the partition is rung by any doorbell); `raise`
    /// delivers an attached vector.
    pub fn start(self: &Arc<Self>, partition: &str, raise: Raise) -> Result<(), PortsError> {
        let _ = self.raise.set(raise);
        let incoming =
            std::mem::take(&mut *self.incoming.lock().unwrap_or_else(|e| e.into_inner()));
        if incoming.is_empty() {
            return Ok(());
        }
        let ports = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("{partition}-bells"))
            .spawn(move || ports.serve_doorbells(incoming))
            .map_err(PortsError::Thread)?;
        Ok(())
    }

    /// Lines of counters, one per port or doorbell with something to say.
    pub fn metrics_summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for entry in &self.entries {
            let line = match &entry.end {
                End::SamplingDestination { reader, .. } => {
                    let bad = reader.anomalies().bad_lengths.load(Ordering::Relaxed);
                    format!("port {}: malformed_messages={bad}", entry.name)
                }
                End::QueuingDestination(r) => {
                    let r = r.lock().unwrap_or_else(|e| e.into_inner());
                    let a = r.anomalies();
                    format!(
                        "port {}: malformed_messages={} bad_indices={}",
                        entry.name,
                        a.bad_lengths.load(Ordering::Relaxed),
                        a.bad_indices.load(Ordering::Relaxed)
                    )
                }
                End::DoorbellOut { lost, .. } => format!(
                    "doorbell {}: rings_lost={}",
                    entry.name,
                    lost.load(Ordering::Relaxed)
                ),
                End::DoorbellIn(bell) => format!(
                    "doorbell {}: rings={}",
                    entry.name,
                    bell.rings.load(Ordering::Relaxed)
                ),
                _ => continue,
            };
            lines.push(line);
        }
        lines
    }

    fn entry(&self, handle: u64) -> Result<&Entry, PortError> {
        usize::try_from(handle)
            .ok()
            .and_then(|i| self.entries.get(i))
            .ok_or(PortError::InvalidConfig)
    }

    /// The doorbell thread: waits on the incoming doorbells' sockets, counts each ring from
    /// the declared ringer, wakes waiters and raises the attached vector.
    fn serve_doorbells(&self, incoming: Vec<(usize, UnixDatagram, PathBuf)>) {
        let Ok(epoll) = Epoll::new() else {
            return;
        };
        for (token, (_, socket, _)) in incoming.iter().enumerate() {
            let event = EpollEvent::new(EventSet::IN, token as u64);
            let _ = epoll.ctl(ControlOperation::Add, socket.as_raw_fd(), event);
        }
        let mut events = vec![EpollEvent::default(); incoming.len()];
        let mut buf = [0u8; 16];
        loop {
            let Ok(ready) = epoll.wait(-1, &mut events) else {
                continue;
            };
            for event in &events[..ready] {
                let Some((index, socket, ringer)) = incoming.get(event.data() as usize) else {
                    continue;
                };
                // Each datagram from the ringer's socket is one ring; anything else is dropped.
                let mut rings = 0;
                while let Ok((_, from)) = socket.recv_from(&mut buf) {
                    if from.as_pathname() == Some(ringer.as_path()) {
                        rings += 1;
                    }
                }
                if rings > 0 {
                    self.rung(*index, rings);
                }
            }
        }
    }

    fn rung(&self, index: usize, rings: u64) {
        let Some(End::DoorbellIn(bell)) = self.entries.get(index).map(|e| &e.end) else {
            return;
        };
        bell.rings.fetch_add(rings, Ordering::Relaxed);
        let vector = {
            let mut state = bell.state.lock().unwrap_or_else(|e| e.into_inner());
            state.pending = state.pending.saturating_add(rings);
            state.vector
        };
        bell.rung.notify_all();
        if let (Some(vector), Some(raise)) = (vector, self.raise.get()) {
            raise(vector);
        }
    }
}

/// A nonblocking datagram socket bound at `path` (a stale file there is replaced).
fn bind_datagram(path: &Path) -> std::io::Result<UnixDatagram> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let socket = UnixDatagram::bind(path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn open_port(port: &PortPlan, run_dir: &Path) -> Result<Entry, PortsError> {
    let path = run_dir.join(channel_file_name(&port.channel));
    let failed = |e| PortsError::Channel(port.name.clone(), e);
    let max = port.max_message_bytes;
    let (kind, param, end) = match (port.kind, port.direction) {
        (PlanKind::Sampling, PortDirection::Source) => (
            PortKind::SamplingSource,
            0,
            End::SamplingSource(Mutex::new(
                SamplingWriter::open(&path, max).map_err(failed)?,
            )),
        ),
        (PlanKind::Sampling, PortDirection::Destination) => {
            let refresh_ns = port.refresh_period_us.unwrap_or(u64::MAX / 1000) * 1000;
            (
                PortKind::SamplingDestination,
                refresh_ns,
                End::SamplingDestination {
                    reader: SamplingReader::open(&path, max).map_err(failed)?,
                    refresh_ns,
                },
            )
        }
        (PlanKind::Queuing, PortDirection::Source) => (
            PortKind::QueuingSource,
            u64::from(port.depth),
            End::QueuingSource(Mutex::new(
                QueueSender::open(&path, max, port.depth).map_err(failed)?,
            )),
        ),
        (PlanKind::Queuing, PortDirection::Destination) => (
            PortKind::QueuingDestination,
            u64::from(port.depth),
            End::QueuingDestination(Mutex::new(
                QueueReceiver::open(&path, max, port.depth).map_err(failed)?,
            )),
        ),
    };
    Ok(Entry {
        name: port.name.clone(),
        info: PortInfo {
            kind,
            max_message_bytes: max,
            param,
        },
        end,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl PvPorts for PartitionPorts {
    fn open(&self, name: &[u8]) -> Option<u64> {
        let name = std::str::from_utf8(name).ok()?;
        self.by_name.get(name).copied()
    }

    fn info(&self, handle: u64) -> Option<PortInfo> {
        self.entry(handle).ok().map(|e| e.info)
    }

    fn sampling_write(&self, handle: u64, message: &[u8]) -> Result<(), PortError> {
        match &self.entry(handle)?.end {
            End::SamplingSource(writer) => {
                lock(writer).write(message, monotonic_ns());
                Ok(())
            }
            _ => Err(PortError::InvalidConfig),
        }
    }

    fn sampling_read(&self, handle: u64, buf: &mut [u8]) -> Result<SampledMessage, PortError> {
        match &self.entry(handle)?.end {
            End::SamplingDestination { reader, refresh_ns } => {
                let got = reader.read(buf).map_err(|e| match e {
                    ReadError::Empty | ReadError::Busy | ReadError::Malformed => {
                        PortError::NotAvailable
                    }
                })?;
                let age_ns = monotonic_ns().saturating_sub(got.stamp_ns);
                Ok(SampledMessage {
                    len: got.len,
                    valid: age_ns <= *refresh_ns,
                    age_ns,
                })
            }
            _ => Err(PortError::InvalidConfig),
        }
    }

    fn queuing_send(
        &self,
        handle: u64,
        message: &[u8],
        timeout: Duration,
    ) -> Result<(), PortError> {
        match &self.entry(handle)?.end {
            End::QueuingSource(sender) => {
                lock(sender).send(message, timeout).map_err(|e| match e {
                    SendError::Full => PortError::NotAvailable,
                    SendError::TimedOut => PortError::TimedOut,
                })
            }
            _ => Err(PortError::InvalidConfig),
        }
    }

    fn queuing_receive(
        &self,
        handle: u64,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, PortError> {
        match &self.entry(handle)?.end {
            End::QueuingDestination(receiver) => {
                lock(receiver).receive(buf, timeout).map_err(|e| match e {
                    ReceiveError::Empty => PortError::NotAvailable,
                    ReceiveError::TimedOut => PortError::TimedOut,
                })
            }
            _ => Err(PortError::InvalidConfig),
        }
    }

    fn status(&self, handle: u64) -> Result<[u64; CALL_VALUES], PortError> {
        Ok(match &self.entry(handle)?.end {
            End::SamplingSource(_) => [0; CALL_VALUES],
            End::SamplingDestination { reader, refresh_ns } => {
                let mut buf = vec![0u8; self.entry(handle)?.info.max_message_bytes as usize];
                match reader.read(&mut buf) {
                    Ok(got) => {
                        let age = monotonic_ns().saturating_sub(got.stamp_ns);
                        [1, u64::from(age <= *refresh_ns), age, 0]
                    }
                    Err(_) => [u64::from(reader.written()), 0, 0, 0],
                }
            }
            End::QueuingSource(sender) => {
                let status = lock(sender).status();
                [u64::from(status.waiting), u64::from(status.depth), 0, 0]
            }
            End::QueuingDestination(receiver) => {
                let status = lock(receiver).status();
                [u64::from(status.waiting), u64::from(status.depth), 0, 0]
            }
            End::DoorbellOut { .. } => [0; CALL_VALUES],
            End::DoorbellIn(bell) => [lock(&bell.state).pending, 0, 0, 0],
        })
    }

    fn doorbell_ring(&self, handle: u64) -> Result<(), PortError> {
        match &self.entry(handle)?.end {
            End::DoorbellOut { link, lost } => {
                match lock(link).send_datagram(&[1]) {
                    // A full buffer: the rung partition has rings it did not take yet.
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
            _ => Err(PortError::InvalidConfig),
        }
    }

    fn doorbell_wait(&self, handle: u64, timeout: Duration) -> Result<u64, PortError> {
        let End::DoorbellIn(bell) = &self.entry(handle)?.end else {
            return Err(PortError::InvalidConfig);
        };
        let deadline = Instant::now() + timeout;
        let mut state = lock(&bell.state);
        loop {
            if state.pending > 0 {
                return Ok(std::mem::take(&mut state.pending));
            }
            let now = Instant::now();
            if timeout.is_zero() {
                return Err(PortError::NotAvailable);
            }
            if now >= deadline {
                return Err(PortError::TimedOut);
            }
            state = bell
                .rung
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn doorbell_attach(&self, handle: u64, vector: Option<u8>) -> Result<(), PortError> {
        let End::DoorbellIn(bell) = &self.entry(handle)?.end else {
            return Err(PortError::InvalidConfig);
        };
        lock(&bell.state).vector = vector;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use bulkhead_config::{ChannelPlan, SystemPlan};
    use bulkhead_ports::{create_channel_file, ChannelKind, Layout};

    use super::*;
    use crate::testing::{plan_in, TempDir};

    /// Partitions `a` and `b`: sampling `tele` a→b (refresh 50 ms), queuing `cmd` b→a
    /// (depth 2), doorbell `bell` a→b; channel files made in a fresh run directory.
    fn system() -> (SystemPlan, TempDir) {
        let dir = TempDir::new("ports");
        let partition = |name: &str, cpu: u32, ports: &str| {
            format!(
                "[[partition]]\nname = \"{name}\"\ncriticality = \"low\"\nvcpus = 1\n\
                 cpus = [{cpu}]\nmemory_mib = 32\nkernel = \"guest.elf\"\n{ports}\n"
            )
        };
        let text = format!(
            "[system]\nname = \"s\"\n\n{}{}\
             [[channel]]\nname = \"tele\"\nsource = \"a.tele\"\ndestinations = [\"b.tele\"]\n\n\
             [[channel]]\nname = \"cmd\"\nsource = \"b.cmd\"\ndestinations = [\"a.cmd\"]\n\n\
             [[doorbell]]\nname = \"bell\"\nfrom = \"a\"\nto = \"b\"\n",
            partition(
                "a",
                0,
                "[[partition.port]]\nname = \"tele\"\nkind = \"sampling\"\ndirection = \"source\"\n\
                 max_message_bytes = 16\n\n[[partition.port]]\nname = \"cmd\"\nkind = \"queuing\"\n\
                 direction = \"destination\"\nmax_message_bytes = 8\ndepth = 2\n"
            ),
            partition(
                "b",
                1,
                "[[partition.port]]\nname = \"tele\"\nkind = \"sampling\"\n\
                 direction = \"destination\"\nmax_message_bytes = 16\nrefresh_period_us = 50000\n\n\
                 [[partition.port]]\nname = \"cmd\"\nkind = \"queuing\"\ndirection = \"source\"\n\
                 max_message_bytes = 8\ndepth = 2\n"
            ),
        );
        let plan = plan_in(&dir.0, &text);
        for channel in &plan.channels {
            let path = dir.0.join(channel_file_name(&channel.name));
            create_channel_file(&path, &layout(channel)).unwrap();
        }
        (plan, dir)
    }

    fn layout(channel: &ChannelPlan) -> Layout {
        Layout {
            kind: match channel.kind {
                PlanKind::Sampling => ChannelKind::Sampling,
                PlanKind::Queuing => ChannelKind::Queuing,
            },
            max_message_bytes: channel.max_message_bytes,
            depth: channel.depth,
        }
    }

    fn open(plan: &SystemPlan, dir: &TempDir, index: usize) -> Arc<PartitionPorts> {
        let ports = PartitionPorts::open(&plan.partitions[index], &dir.0).unwrap();
        Arc::new(ports.unwrap())
    }

    fn handle(ports: &PartitionPorts, name: &str) -> u64 {
        ports.open(name.as_bytes()).unwrap()
    }

    #[test]
    fn handles_are_the_ports_in_order_then_the_doorbells() {
        let (plan, dir) = system();
        let a = open(&plan, &dir, 0);

        assert_eq!(["tele", "cmd", "bell"].map(|n| handle(&a, n)), [0, 1, 2]);
        assert_eq!(a.info(0).unwrap().kind, PortKind::SamplingSource);
        assert_eq!(a.info(2).unwrap().kind, PortKind::DoorbellOut);
        assert_eq!(a.open(b"other"), None);
        assert_eq!(a.info(3), None);
    }

    #[test]
    fn a_sampled_message_is_valid_while_fresh_and_invalid_after_the_refresh_period() {
        let (plan, dir) = system();
        let (a, b) = (open(&plan, &dir, 0), open(&plan, &dir, 1));
        let mut buf = [0u8; 16];

        assert_eq!(b.sampling_read(0, &mut buf), Err(PortError::NotAvailable));
        a.sampling_write(0, b"speed=3").unwrap();
        let fresh = b.sampling_read(0, &mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        let stale = b.sampling_read(0, &mut buf).unwrap();

        assert_eq!((fresh.len, fresh.valid), (7, true));
        assert_eq!(&buf[..7], b"speed=3");
        assert!(!stale.valid && stale.age_ns >= 50_000_000, "{stale:?}");
    }

    #[test]
    fn a_queue_reports_overflow_to_its_sender_and_delivers_in_order() {
        let (plan, dir) = system();
        let (a, b) = (open(&plan, &dir, 0), open(&plan, &dir, 1));
        let zero = Duration::ZERO;

        b.queuing_send(1, b"one", zero).unwrap();
        b.queuing_send(1, b"two", zero).unwrap();
        assert_eq!(
            b.queuing_send(1, b"three", zero),
            Err(PortError::NotAvailable)
        );
        assert_eq!(
            b.queuing_send(1, b"three", Duration::from_millis(10)),
            Err(PortError::TimedOut)
        );
        assert_eq!(b.status(1).unwrap()[..2], [2, 2]);
        let mut buf = [0u8; 8];
        let n = a.queuing_receive(1, &mut buf, zero).unwrap();
        assert_eq!(&buf[..n], b"one");
        let n = a.queuing_receive(1, &mut buf, zero).unwrap();
        assert_eq!(&buf[..n], b"two");
        assert_eq!(
            a.queuing_receive(1, &mut buf, zero),
            Err(PortError::NotAvailable)
        );
    }

    #[test]
    fn calls_on_the_wrong_end_are_invalid_config() {
        let (plan, dir) = system();
        let (a, b) = (open(&plan, &dir, 0), open(&plan, &dir, 1));

        assert_eq!(b.sampling_write(0, b"x"), Err(PortError::InvalidConfig));
        assert_eq!(
            a.queuing_send(1, b"x", Duration::ZERO),
            Err(PortError::InvalidConfig)
        );
        assert_eq!(b.doorbell_ring(2), Err(PortError::InvalidConfig));
        assert_eq!(
            a.doorbell_wait(2, Duration::ZERO),
            Err(PortError::InvalidConfig)
        );
    }

    #[test]
    fn a_ring_is_counted_wakes_a_waiter_and_raises_the_attached_vector() {
        let (plan, dir) = system();
        let (a, b) = (open(&plan, &dir, 0), open(&plan, &dir, 1));
        let (raised_tx, raised) = mpsc::channel();
        let raised_tx = Mutex::new(raised_tx);
        b.start(
            "b",
            Box::new(move |v| {
                let _ = raised_tx.lock().unwrap().send(v);
            }),
        )
        .unwrap();
        a.start("a", Box::new(|_| {})).unwrap();
        b.doorbell_attach(2, Some(0x50)).unwrap();

        assert_eq!(
            b.doorbell_wait(2, Duration::ZERO),
            Err(PortError::NotAvailable)
        );
        a.doorbell_ring(2).unwrap();
        let rings = b.doorbell_wait(2, Duration::from_secs(5)).unwrap();

        assert_eq!(rings, 1);
        assert_eq!(raised.recv_timeout(Duration::from_secs(5)), Ok(0x50));
        assert_eq!(
            b.doorbell_wait(2, Duration::from_millis(10)),
            Err(PortError::TimedOut)
        );
    }

    #[test]
    fn a_datagram_from_another_socket_is_not_a_ring() {
        let (plan, dir) = system();
        let b = open(&plan, &dir, 1);
        b.start("b", Box::new(|_| {})).unwrap();
        let stranger = UnixDatagram::unbound().unwrap();
        let (_, recv) = doorbell_socket_names("bell");

        stranger.send_to(&[1], dir.0.join(recv)).unwrap();

        assert_eq!(
            b.doorbell_wait(2, Duration::from_millis(100)),
            Err(PortError::TimedOut)
        );
    }
}
