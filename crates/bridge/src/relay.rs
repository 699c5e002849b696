//! An external port's front door: puts a foreign frontend's requests into the vhost-user
//! protocol's order before the port's backend sees them.
//!
//! The protocol lets a frontend enable a ring (`SET_VRING_ENABLE`) only once
//! `VHOST_USER_F_PROTOCOL_FEATURES` is negotiated, and negotiation is `SET_FEATURES`; the
//! `vhost` crate's backend closes the connection of a frontend that enables a ring earlier.
//! QEMU 7.2's vhost-user-net does: it enables its rings when the guest's driver starts the
//! device, before `vhost_dev_start` sends the features (it checks the *offered* protocol
//! feature, not the negotiated one), and it does not start at all without protocol features.
//!
//! So an external port listens here, on the socket the description names, and one thread per
//! direction relays between the frontend and the port's backend, which listens on a private
//! socket in the run directory. Every message passes unchanged, with the file descriptors that
//! came with it, except a `SET_VRING_ENABLE` that arrives before `SET_FEATURES`: that one is
//! held — answered at once when the frontend asked for a reply — and passed on right after
//! `SET_FEATURES`, without its reply request; or dropped when those features leave protocol
//! features out (`SET_FEATURES` then enables every ring itself: vhost-user "Ring states").
//! Features without `VIRTIO_F_VERSION_1` end the connection ([`check_modern`]).
//!
//! Only control messages pass here: the frames themselves move through the guest memory and
//! the eventfds the messages carry, as on any port. A message larger than the protocol's
//! largest, or a frontend that hangs up, ends the connection; the backend then ends too and
//! the port waits for the next frontend.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use vhost::vhost_user::message::{
    FrontendReq, VhostUserHeaderFlag, VhostUserVirtioFeatures, MAX_ATTACHED_FD_ENTRIES,
    MAX_MSG_SIZE,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// Size of a message header: request, flags, payload size (each a little-endian u32).
const HEADER: usize = 12;
/// How long the relay tries to reach the port's backend for a new frontend.
const BACKEND_WAIT: Duration = Duration::from_secs(5);

/// One vhost-user message: its header, its payload and the descriptors sent with it.
#[derive(Debug)]
pub struct Message {
    header: [u8; HEADER],
    payload: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Message {
    fn word(&self, index: usize) -> u32 {
        let at = index * 4;
        u32::from_le_bytes([
            self.header[at],
            self.header[at + 1],
            self.header[at + 2],
            self.header[at + 3],
        ])
    }

    fn set_word(&mut self, index: usize, value: u32) {
        self.header[index * 4..index * 4 + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// The request code.
    pub fn request(&self) -> u32 {
        self.word(0)
    }

    fn flags(&self) -> u32 {
        self.word(1)
    }

    fn needs_reply(&self) -> bool {
        self.flags() & VhostUserHeaderFlag::NEED_REPLY.bits() != 0
    }

    /// The payload as a little-endian u64 (features), if it is one.
    fn value(&self) -> Option<u64> {
        let bytes: [u8; 8] = self.payload.get(..8)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }

    /// The acknowledgement of this message that `REPLY_ACK` asks for: success.
    fn ack(&self) -> Message {
        let mut ack = Message {
            header: [0; HEADER],
            payload: 0u64.to_le_bytes().to_vec(),
            fds: Vec::new(),
        };
        ack.set_word(0, self.request());
        ack.set_word(1, 0x1 | VhostUserHeaderFlag::REPLY.bits());
        ack.set_word(2, 8);
        ack
    }

    /// Reads the next message from `stream`; `None` when the peer has hung up between two.
    pub fn read(stream: &UnixStream) -> io::Result<Option<Message>> {
        let mut header = [0u8; HEADER];
        let (got, fds) = recv_with_fds(stream, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        let mut reader = stream;
        reader.read_exact(&mut header[got..])?;
        let size = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        if size > MAX_MSG_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a message of {size} bytes (the protocol allows {MAX_MSG_SIZE})"),
            ));
        }
        let mut payload = vec![0u8; size];
        reader.read_exact(&mut payload)?;
        Ok(Some(Message {
            header,
            payload,
            fds,
        }))
    }

    /// Writes the message to `stream`, its descriptors with its first bytes.
    pub fn write(&self, stream: &UnixStream) -> io::Result<()> {
        let fds: Vec<RawFd> = self.fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let mut bytes = Vec::with_capacity(HEADER + self.payload.len());
        bytes.extend_from_slice(&self.header);
        bytes.extend_from_slice(&self.payload);
        let sent = stream
            .send_with_fds(&[&bytes[..]], &fds)
            .map_err(io::Error::from)?;
        let mut writer = stream;
        writer.write_all(&bytes[sent..])
    }
}

/// Receives into `buf` with up to [`MAX_ATTACHED_FD_ENTRIES`] descriptors.
#[allow(unsafe_code)]
fn recv_with_fds(stream: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut raw = [-1 as RawFd; MAX_ATTACHED_FD_ENTRIES];
    let mut iov = [libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }];
    // SAFETY: the one iovec covers `buf`, which is ours and writable for its whole length.
    let (got, count) =
        unsafe { stream.recv_with_fds(&mut iov, &mut raw) }.map_err(io::Error::from)?;
    let fds = raw[..count.min(raw.len())]
        .iter()
        // SAFETY: recvmsg has just installed these descriptors in this process; nothing
        // else owns them.
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    Ok((got, fds))
}

/// Relays one frontend connection to the backend until either side hangs up.
pub fn relay(frontend: UnixStream, backend: UnixStream) -> io::Result<()> {
    let to_frontend = Mutex::new(frontend.try_clone()?);
    let backend_in = backend.try_clone()?;
    std::thread::scope(|scope| {
        let replies = scope.spawn(|| {
            let result = pass_replies(&backend_in, &to_frontend);
            let _ = frontend.shutdown(Shutdown::Both);
            result
        });
        let requests = pass_requests(&frontend, &backend, &to_frontend);
        let _ = backend.shutdown(Shutdown::Both);
        let replies = replies
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the reply thread panicked")));
        requests.and(replies)
    })
}

/// Backend to frontend: every message as it is.
fn pass_replies(backend: &UnixStream, frontend: &Mutex<UnixStream>) -> io::Result<()> {
    while let Some(message) = Message::read(backend)? {
        let frontend = frontend.lock().map_err(|_| io::Error::other("poisoned"))?;
        message.write(&frontend)?;
    }
    Ok(())
}

/// Frontend to backend, holding early ring enables (see the module docs).
fn pass_requests(
    frontend: &UnixStream,
    backend: &UnixStream,
    to_frontend: &Mutex<UnixStream>,
) -> io::Result<()> {
    let mut features_sent = false;
    let mut held: Vec<Message> = Vec::new();
    while let Some(mut message) = Message::read(frontend)? {
        let request = message.request();
        if request == FrontendReq::SET_VRING_ENABLE as u32 && !features_sent {
            if message.needs_reply() {
                let ack = message.ack();
                let frontend = to_frontend
                    .lock()
                    .map_err(|_| io::Error::other("poisoned"))?;
                ack.write(&frontend)?;
                let flags = message.flags() & !VhostUserHeaderFlag::NEED_REPLY.bits();
                message.set_word(1, flags);
            }
            held.push(message);
            continue;
        }
        if request == FrontendReq::SET_FEATURES as u32 {
            check_modern(&message)?;
        }
        message.write(backend)?;
        if request == FrontendReq::SET_FEATURES as u32 {
            features_sent = true;
            let protocol = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
            let negotiated = message.value().is_some_and(|f| f & protocol != 0);
            for early in held.drain(..) {
                if negotiated {
                    early.write(backend)?;
                }
            }
        }
    }
    Ok(())
}

/// Refuses features without `VIRTIO_F_VERSION_1`: the bridge moves frames with the modern
/// 12-byte header, and a legacy driver (QEMU's virtio-mmio is legacy unless
/// `-global virtio-mmio.force-legacy=false`) would put its frames 2 bytes off.
fn check_modern(set_features: &Message) -> io::Result<()> {
    let version_1 = 1u64 << VIRTIO_F_VERSION_1;
    match set_features.value() {
        Some(features) if features & version_1 != 0 => Ok(()),
        Some(features) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the frontend acknowledged features {features:#x}, without VIRTIO_F_VERSION_1: \
                 the bridge speaks modern virtio only (a legacy driver? QEMU's virtio-mmio \
                 needs -global virtio-mmio.force-legacy=false)"
            ),
        )),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a SET_FEATURES without its 8 bytes",
        )),
    }
}

/// Accepts frontends on `socket`, one at a time, forever, and relays each to the backend
/// listening on `backend`. Errors go to `log`, prefixed with `port {name}`.
pub fn serve(name: &str, socket: &Path, backend: &Path, log: &(dyn Fn(String) + Sync)) {
    let _ = std::fs::remove_file(socket);
    let listener = match UnixListener::bind(socket) {
        Ok(listener) => listener,
        Err(e) => {
            log(format!(
                "port {name}: cannot listen on {}: {e}",
                socket.display()
            ));
            return;
        }
    };
    for frontend in listener.incoming() {
        let frontend = match frontend {
            Ok(frontend) => frontend,
            Err(e) => {
                log(format!("port {name}: accepting a frontend failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let Some(to_backend) = connect(backend) else {
            log(format!(
                "port {name}: its backend does not answer on {}",
                backend.display()
            ));
            continue;
        };
        if let Err(e) = relay(frontend, to_backend) {
            log(format!("port {name}: frontend connection ended: {e}"));
        }
    }
}

/// Connects to the backend's socket, trying for [`BACKEND_WAIT`] (it listens again as soon
/// as its previous connection has ended).
fn connect(path: &Path) -> Option<UnixStream> {
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => return Some(stream),
            Err(_) if waited < BACKEND_WAIT => {
                std::thread::sleep(step);
                waited += step;
            }
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(request: FrontendReq, flags: u32, payload: &[u8]) -> Message {
        let mut m = Message {
            header: [0; HEADER],
            payload: payload.to_vec(),
            fds: Vec::new(),
        };
        m.set_word(0, request as u32);
        m.set_word(1, 0x1 | flags);
        m.set_word(2, payload.len() as u32);
        m
    }

    fn enable(index: u32, needs_reply: bool) -> Message {
        let mut payload = index.to_le_bytes().to_vec();
        payload.extend_from_slice(&1u32.to_le_bytes());
        let flags = if needs_reply {
            VhostUserHeaderFlag::NEED_REPLY.bits()
        } else {
            0
        };
        message(FrontendReq::SET_VRING_ENABLE, flags, &payload)
    }

    const VERSION_1: u64 = 1 << VIRTIO_F_VERSION_1;

    fn features(bits: u64) -> Message {
        message(FrontendReq::SET_FEATURES, 0, &bits.to_le_bytes())
    }

    /// Runs the relay between two socket pairs; returns (frontend end, backend end).
    fn relayed() -> (UnixStream, UnixStream) {
        let (frontend, relay_front) = UnixStream::pair().unwrap();
        let (relay_back, backend) = UnixStream::pair().unwrap();
        std::thread::spawn(move || relay(relay_front, relay_back));
        (frontend, backend)
    }

    #[test]
    fn an_early_ring_enable_reaches_the_backend_after_the_features() {
        let (frontend, backend) = relayed();
        let protocol = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();

        enable(0, true).write(&frontend).unwrap();
        let ack = Message::read(&frontend).unwrap().unwrap();
        enable(1, false).write(&frontend).unwrap();
        features(protocol | VERSION_1).write(&frontend).unwrap();

        assert_eq!(ack.request(), FrontendReq::SET_VRING_ENABLE as u32);
        assert_eq!(ack.flags(), 0x1 | VhostUserHeaderFlag::REPLY.bits());
        assert_eq!(ack.value(), Some(0), "success");
        let seen: Vec<Message> = (0..3)
            .map(|_| Message::read(&backend).unwrap().unwrap())
            .collect();
        assert_eq!(seen[0].request(), FrontendReq::SET_FEATURES as u32);
        assert_eq!(seen[0].value(), Some(protocol | VERSION_1));
        assert_eq!(seen[1].request(), FrontendReq::SET_VRING_ENABLE as u32);
        assert_eq!(seen[1].payload[..4], 0u32.to_le_bytes(), "ring 0 first");
        assert!(!seen[1].needs_reply(), "the relay already answered it");
        assert_eq!(seen[2].payload[..4], 1u32.to_le_bytes());
    }

    #[test]
    fn early_enables_are_dropped_when_protocol_features_are_not_negotiated() {
        let (frontend, backend) = relayed();

        enable(0, false).write(&frontend).unwrap();
        features(VERSION_1).write(&frontend).unwrap();
        message(FrontendReq::GET_FEATURES, 0, &[])
            .write(&frontend)
            .unwrap();

        let first = Message::read(&backend).unwrap().unwrap();
        let second = Message::read(&backend).unwrap().unwrap();
        assert_eq!(first.request(), FrontendReq::SET_FEATURES as u32);
        assert_eq!(second.request(), FrontendReq::GET_FEATURES as u32);
    }

    #[test]
    fn descriptors_and_replies_pass_both_ways() {
        let (frontend, backend) = relayed();
        let file = std::fs::File::open("/dev/null").unwrap();
        let mut kick = message(FrontendReq::SET_VRING_KICK, 0, &0u64.to_le_bytes());
        kick.fds.push(OwnedFd::from(file));
        kick.write(&frontend).unwrap();

        let passed = Message::read(&backend).unwrap().unwrap();
        let reply = message(
            FrontendReq::GET_FEATURES,
            VhostUserHeaderFlag::REPLY.bits(),
            &7u64.to_le_bytes(),
        );
        reply.write(&backend).unwrap();
        let back = Message::read(&frontend).unwrap().unwrap();

        assert_eq!(passed.request(), FrontendReq::SET_VRING_KICK as u32);
        assert_eq!(passed.fds.len(), 1);
        let target = std::fs::read_link(format!("/proc/self/fd/{}", passed.fds[0].as_raw_fd()));
        assert_eq!(target.unwrap(), Path::new("/dev/null"));
        assert_eq!(back.value(), Some(7));
    }

    #[test]
    fn a_legacy_driver_s_features_end_the_connection() {
        let (frontend, backend) = relayed();

        features(VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() | 1)
            .write(&frontend)
            .unwrap();

        assert!(
            Message::read(&backend).unwrap().is_none(),
            "nothing passed, and closed"
        );
    }

    #[test]
    fn an_oversized_message_ends_the_connection() {
        let (frontend, backend) = relayed();
        let mut big = message(FrontendReq::SET_MEM_TABLE, 0, &[]);
        big.set_word(2, (MAX_MSG_SIZE + 1) as u32);
        big.write(&frontend).unwrap();

        let end = Message::read(&backend).unwrap();
        assert!(end.is_none(), "the backend's side was closed");
    }
}
