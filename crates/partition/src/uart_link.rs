//! A partition's end of its uart link (`[[uart_link]]`): COM2 at port 0x2f8, IRQ 3 (an
//! irqfd on GSI 3), whose bytes travel to the peer partition's COM2 and back.
//!
//! Transport: like a direct net link (`link.rs`), two Unix datagram sockets in the run
//! directory, `uart-<this>-<peer>.sock` bound by this end and `uart-<peer>-<this>.sock` by
//! the peer, each connected to the other, so nothing but the two declared ends can use them,
//! and either side can restart on its own. Datagrams from any other socket are discarded and
//! counted.
//!
//! Threads: vCPU threads drive the UART's registers ([`bulkhead_devices::uart_link::LinkedUart`],
//! behind a mutex). The link thread, `<partition>-uart`, started on the housekeeping CPUs
//! like the device thread (it inherits the main thread's affinity and SCHED_OTHER), waits in
//! epoll on the socket and on an eventfd that the vCPU side signals, and every
//! [`KEEPALIVE`] on a timeout: it takes the peer's messages in, refills the receive FIFO
//! (raising the interrupt), and sends credits and data. Nothing of this runs on a vCPU
//! thread. Work per round is capped ([`ROUND_DATAGRAMS`]).
//!
//! The keepalive matters for restarts: a connected datagram socket accepts only its peer,
//! so after the peer restarted, its new socket cannot reach ours until ours sent something
//! to the old one (which fails and disconnects it). Sending a HELLO or credit every
//! [`KEEPALIVE`] both reconnects and repeats any credit whose datagram could not be sent.
//! A refused send ends the peer's session on this side
//! ([`LinkedUart::peer_lost`]): this end starts a new session and says HELLO, so nothing
//! meant for the old peer reaches a new one.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bulkhead_config::{PartitionPlan, UartPeer};
use bulkhead_devices::legacy::{COM2_BASE, COM2_GSI};
use bulkhead_devices::uart_link::{wire, LinkedUart, UartLinkMetrics};
use bulkhead_vmm::Vm;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use crate::link::{Link, LinkError};
use crate::run::PartitionError;

/// How often the link thread sends a HELLO or credit unasked.
pub const KEEPALIVE: Duration = Duration::from_millis(500);

/// Most datagrams received, and most sent, per round of the link thread; with more waiting,
/// the next round starts at once.
const ROUND_DATAGRAMS: usize = 64;

const SOCKET_TOKEN: u64 = 0;
const WAKE_TOKEN: u64 = 1;

/// The file name, in the run directory, of the socket that `this` binds for its uart link to
/// `peer`.
pub fn socket_name(this: &str, peer: &str) -> String {
    format!("uart-{this}-{peer}.sock")
}

/// Why a partition's COM2 could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UartLinkError {
    #[error("cannot open the socket of the uart link to {0}")]
    Open(String, #[source] LinkError),
    #[error("cannot create an eventfd for the uart link")]
    EventFd(#[source] std::io::Error),
    #[error("cannot set up epoll for the uart link")]
    Epoll(#[source] std::io::Error),
}

/// COM2 and its link, before and after the link thread starts.
pub struct Com2 {
    uart: Arc<Mutex<LinkedUart>>,
    peer: String,
    /// The socket and the wake eventfd, until the thread takes them.
    idle: Option<(Link, EventFd)>,
}

impl Com2 {
    /// COM2 of `plan`, if the partition is an end of a uart link: its interrupt wired to
    /// GSI 3 of `vm`, its socket bound.
    pub fn build(plan: &PartitionPlan, vm: &Vm) -> Result<Option<Com2>, PartitionError> {
        let Some(UartPeer {
            peer, buffer_bytes, ..
        }) = &plan.uart_link
        else {
            return Ok(None);
        };
        let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(UartLinkError::EventFd)?;
        vm.register_irqfd(&irq, COM2_GSI)?;
        let wake = EventFd::new(libc::EFD_NONBLOCK).map_err(UartLinkError::EventFd)?;
        let thread_wake = wake.try_clone().map_err(UartLinkError::EventFd)?;
        let opened = Link::run_dir().and_then(|run_dir| {
            Link::bind(
                &run_dir,
                &socket_name(&plan.name, peer),
                &socket_name(peer, &plan.name),
            )
        });
        let socket = opened.map_err(|e| UartLinkError::Open(peer.clone(), e))?;
        let uart = LinkedUart::new(irq, wake, *buffer_bytes, session());
        Ok(Some(Com2 {
            uart: Arc::new(Mutex::new(uart)),
            peer: peer.clone(),
            idle: Some((socket, thread_wake)),
        }))
    }

    /// The UART, for the vCPU threads' port I/O.
    pub fn uart(&self) -> Arc<Mutex<LinkedUart>> {
        Arc::clone(&self.uart)
    }

    /// A line for the start-up log.
    pub fn describe(&self, plan: &PartitionPlan) -> String {
        let bound = plan.uart_link.as_ref().map_or(0, |l| l.buffer_bytes);
        format!(
            "COM2 (ttyS1) at {COM2_BASE:#x}, GSI {COM2_GSI}, linked to partition {:?}, \
             {bound} bytes in flight per direction at most",
            self.peer
        )
    }

    /// The counters line for the log when the partition stops.
    pub fn metrics_summary(&self) -> String {
        let metrics: UartLinkMetrics = lock(&self.uart).metrics();
        format!("uart-link ttyS1 <-> {}: {}", self.peer, metrics.line())
    }

    /// Starts the link thread, which runs until the process ends (or, in tests, until
    /// nothing else holds the UART).
    pub fn spawn_thread(&mut self, name: &str) -> Result<(), PartitionError> {
        let Some((socket, wake)) = self.idle.take() else {
            return Ok(());
        };
        let failed = |e| PartitionError::UartLink(UartLinkError::Epoll(e));
        let epoll = Epoll::new().map_err(failed)?;
        for (fd, token) in [(socket.fd(), SOCKET_TOKEN), (wake.as_raw_fd(), WAKE_TOKEN)] {
            epoll
                .ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN, token),
                )
                .map_err(failed)?;
        }
        let uart = Arc::clone(&self.uart);
        std::thread::Builder::new()
            .name(format!("{name}-uart"))
            .spawn(move || {
                LinkThread {
                    uart,
                    socket,
                    wake,
                    epoll,
                    writable_wanted: false,
                }
                .run()
            })
            .map(drop)
            .map_err(PartitionError::Thread)
    }
}

/// This process's session number: the wall clock in nanoseconds mixed with the process id,
/// never zero, different for a restarted partition (a new process, later).
fn session() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (now ^ (u64::from(std::process::id()) << 40)).max(1)
}

fn lock(uart: &Mutex<LinkedUart>) -> MutexGuard<'_, LinkedUart> {
    uart.lock().unwrap_or_else(|e| e.into_inner())
}

/// The link thread's state.
struct LinkThread {
    uart: Arc<Mutex<LinkedUart>>,
    socket: Link,
    wake: EventFd,
    epoll: Epoll,
    /// The socket is watched for room to send (a send reported `WouldBlock`).
    writable_wanted: bool,
}

impl LinkThread {
    fn run(mut self) {
        let mut events = [EpollEvent::default(); 2];
        let mut buf = vec![0u8; wire::MAX_MESSAGE_BYTES + 1];
        let mut out = Vec::with_capacity(wire::MAX_MESSAGE_BYTES);
        let mut next_keepalive = Instant::now();
        let mut busy = false;
        // Only the thread holds the UART once COM2 is gone (tests; a partition's lives as
        // long as its process).
        while Arc::strong_count(&self.uart) > 1 {
            let timeout_ms = if busy {
                0
            } else {
                let left = next_keepalive.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis()).map_or(i32::MAX, |ms| ms.max(1))
            };
            match self.epoll.wait(timeout_ms, &mut events) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            let _ = self.wake.read();
            if Instant::now() >= next_keepalive {
                lock(&self.uart).keepalive();
                next_keepalive = Instant::now() + KEEPALIVE;
            }
            let more_in = self.receive(&mut buf);
            {
                let mut uart = lock(&self.uart);
                uart.start_service();
                uart.refill();
            }
            let more_out = self.send(&mut out);
            busy = more_in || more_out;
        }
    }

    /// Takes in up to [`ROUND_DATAGRAMS`] datagrams; returns whether more may wait.
    fn receive(&mut self, buf: &mut [u8]) -> bool {
        for _ in 0..ROUND_DATAGRAMS {
            match self.socket.recv_from_peer(buf) {
                Ok(Some((n, true))) => lock(&self.uart).receive(&buf[..n]),
                Ok(Some((_, false))) => lock(&self.uart).foreign(),
                Ok(None) | Err(_) => return false,
            }
        }
        true
    }

    /// Sends up to [`ROUND_DATAGRAMS`] datagrams; returns whether more are due now.
    fn send(&mut self, out: &mut Vec<u8>) -> bool {
        for _ in 0..ROUND_DATAGRAMS {
            let Some(what) = lock(&self.uart).next_datagram(out) else {
                self.watch_writable(false);
                return false;
            };
            // One try only: after a refusal the socket may be bound by a new peer, which
            // must not get what was meant for the old one.
            match self.socket.send_once(out) {
                Ok(()) => lock(&self.uart).sent(what),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.watch_writable(true);
                    return false;
                }
                // The peer is not there (restarting, halted, not started yet): start
                // afresh with whoever answers; the keepalive tries again.
                Err(_) => {
                    lock(&self.uart).peer_lost();
                    self.watch_writable(false);
                    return false;
                }
            }
        }
        true
    }

    fn watch_writable(&mut self, wanted: bool) {
        if wanted == self.writable_wanted {
            return;
        }
        let events = if wanted {
            EventSet::IN | EventSet::OUT
        } else {
            EventSet::IN
        };
        let changed = self.epoll.ctl(
            ControlOperation::Modify,
            self.socket.fd(),
            EpollEvent::new(events, SOCKET_TOKEN),
        );
        if changed.is_ok() {
            self.writable_wanted = wanted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    fn open(dir: &TempDir, this: &str, peer: &str) -> Link {
        Link::bind(&dir.0, &socket_name(this, peer), &socket_name(peer, this)).unwrap()
    }

    /// An end whose link thread runs, in session `session`; its UART is returned.
    fn start(dir: &TempDir, this: &str, peer: &str, session: u64) -> Arc<Mutex<LinkedUart>> {
        let wake = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let uart = LinkedUart::new(irq, wake.try_clone().unwrap(), 4096, session);
        let mut com2 = Com2 {
            uart: Arc::new(Mutex::new(uart)),
            peer: peer.to_owned(),
            idle: Some((open(dir, this, peer), wake)),
        };
        com2.spawn_thread(this).unwrap();
        com2.uart()
    }

    fn transmit(uart: &Mutex<LinkedUart>, bytes: &[u8]) {
        let mut uart = lock(uart);
        for byte in bytes {
            uart.write(0, *byte);
        }
    }

    /// What the guest reads from `uart` within 5 s, until `want` bytes came.
    fn receive(uart: &Mutex<LinkedUart>, want: usize) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            let mut uart = lock(uart);
            while uart.read(5) & 1 != 0 {
                got.push(uart.read(0));
            }
            drop(uart);
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    }

    #[test]
    fn link_threads_carry_bytes_both_ways_between_two_ends() {
        let dir = TempDir::new("threads");
        let a = start(&dir, "a", "b", 1);
        let b = start(&dir, "b", "a", 2);

        transmit(&a, b"from a\n");
        let at_b = receive(&b, 7);
        transmit(&b, b"from b\n");
        let at_a = receive(&a, 7);

        assert_eq!(at_b, b"from a\n");
        assert_eq!(at_a, b"from b\n");
    }

    #[test]
    fn more_than_a_fifo_crosses_as_the_guest_reads() {
        let dir = TempDir::new("bulk");
        let a = start(&dir, "a", "b", 1);
        let b = start(&dir, "b", "a", 2);
        let sent: Vec<u8> = (0..3000).map(|i| (i % 256) as u8).collect();

        // Wait for the ends to have found each other: before, a holds at most its bound.
        transmit(&a, b"x");
        receive(&b, 1);
        transmit(&a, &sent);
        let got = receive(&b, sent.len());

        assert_eq!(got, sent);
        assert_eq!(lock(&a).metrics().tx_dropped, 0);
    }

    #[test]
    fn the_link_recovers_after_the_peer_restarts() {
        let dir = TempDir::new("restart");
        let a = start(&dir, "a", "b", 1);
        let b = start(&dir, "b", "a", 2);
        transmit(&a, b"one");
        assert_eq!(receive(&b, 3), b"one");
        drop(b);
        // The old b's thread notices within a keepalive and closes its socket.
        std::thread::sleep(KEEPALIVE * 2);
        let b = start(&dir, "b", "a", 3);

        transmit(&a, b"two");
        let got = receive(&b, 3);
        transmit(&b, b"back");

        assert_eq!(got, b"two");
        assert_eq!(receive(&a, 4), b"back");
        assert_eq!(lock(&a).metrics().peer_resets, 1);
    }

    #[test]
    fn socket_names_put_the_binding_end_first() {
        assert_eq!(socket_name("a", "b"), "uart-a-b.sock");
    }

    #[test]
    fn a_datagram_from_a_socket_other_than_the_peers_is_marked_foreign() {
        let dir = TempDir::new("foreign");
        let mut a = open(&dir, "a", "b");
        let intruder = std::os::unix::net::UnixDatagram::unbound().unwrap();
        intruder
            .send_to(b"hello", dir.0.join(socket_name("a", "b")))
            .unwrap();
        let mut buf = [0u8; 64];

        let got = a.recv_from_peer(&mut buf).unwrap();

        assert_eq!(got, Some((5, false)));
    }

    #[test]
    fn a_datagram_from_the_peer_is_marked_as_the_peers() {
        let dir = TempDir::new("peer");
        let mut a = open(&dir, "a", "b");
        let mut b = open(&dir, "b", "a");
        b.send_datagram(b"hi").unwrap();
        let mut buf = [0u8; 64];

        let got = a.recv_from_peer(&mut buf).unwrap();

        assert_eq!(got, Some((2, true)));
    }
}
