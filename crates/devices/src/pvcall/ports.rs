//! What the call handler needs from the partition's ports and doorbells (ABI 0.3 calls
//! 9..=17, `docs/pv-abi.md` §3.2): the [`PvPorts`] seam. The handler checks every argument and
//! buffer and copies messages between guest memory and plain buffers; an implementation of
//! [`PvPorts`] (the partition's, over shared-memory channels and doorbell sockets) only moves
//! those buffers. A partition without ports gets [`NoPorts`]: every port call answers
//! `InvalidConfig`, so an undeclared port cannot be opened.

use std::time::Duration;

use bulkhead_pvabi::{self as abi, Call, Error, PortKind};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::handler::{checked_range, read_guest_buffer, Answer};

/// A port or doorbell as [`PvPorts::info`] describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInfo {
    pub kind: PortKind,
    /// The largest message in bytes (1..=`abi::MAX_MESSAGE_BYTES`); 0 for doorbells.
    pub max_message_bytes: u32,
    /// Sampling destinations: the refresh period in ns; queuing ports: the depth; else 0.
    pub param: u64,
}

/// Why a port operation did not happen (the ABI statuses of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortError {
    InvalidConfig,
    NotAvailable,
    TimedOut,
}

impl From<PortError> for abi::Error {
    fn from(e: PortError) -> abi::Error {
        match e {
            PortError::InvalidConfig => abi::Error::InvalidConfig,
            PortError::NotAvailable => abi::Error::NotAvailable,
            PortError::TimedOut => abi::Error::TimedOut,
        }
    }
}

/// A sampling message read into a caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampledMessage {
    pub len: usize,
    /// Its age is within the port's refresh period.
    pub valid: bool,
    pub age_ns: u64,
}

/// The ports and doorbells of one partition. Handles are small integers the implementation
/// hands out from [`PvPorts::open`]. Called from vCPU threads (several at once); a call may
/// block for its timeout, never longer.
pub trait PvPorts: Send + Sync {
    /// The handle of the port or doorbell named `name`, if the partition has one.
    fn open(&self, name: &[u8]) -> Option<u64>;
    /// What `handle` is, if it is one.
    fn info(&self, handle: u64) -> Option<PortInfo>;
    /// Replaces sampling source `handle`'s message (1..=its largest bytes).
    fn sampling_write(&self, handle: u64, message: &[u8]) -> Result<(), PortError>;
    /// Reads sampling destination `handle`'s latest message into `buf` (its largest size).
    fn sampling_read(&self, handle: u64, buf: &mut [u8]) -> Result<SampledMessage, PortError>;
    /// Queues `message` on queuing source `handle`, waiting up to `timeout` for room.
    fn queuing_send(&self, handle: u64, message: &[u8], timeout: Duration)
        -> Result<(), PortError>;
    /// Takes queuing destination `handle`'s oldest message into `buf` (its largest size),
    /// waiting up to `timeout`; its length.
    fn queuing_receive(
        &self,
        handle: u64,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, PortError>;
    /// `PortStatus`'s values for `handle`.
    fn status(&self, handle: u64) -> Result<[u64; abi::CALL_VALUES], PortError>;
    /// Rings outgoing doorbell `handle`.
    fn doorbell_ring(&self, handle: u64) -> Result<(), PortError>;
    /// Takes incoming doorbell `handle`'s pending rings, waiting up to `timeout` for one.
    fn doorbell_wait(&self, handle: u64, timeout: Duration) -> Result<u64, PortError>;
    /// Raises `vector` on each later ring of incoming doorbell `handle` (`None`: no more).
    fn doorbell_attach(&self, handle: u64, vector: Option<u8>) -> Result<(), PortError>;
}

/// The ports of a partition that has none.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPorts;

impl PvPorts for NoPorts {
    fn open(&self, _name: &[u8]) -> Option<u64> {
        None
    }
    fn info(&self, _handle: u64) -> Option<PortInfo> {
        None
    }
    fn sampling_write(&self, _: u64, _: &[u8]) -> Result<(), PortError> {
        Err(PortError::InvalidConfig)
    }
    fn sampling_read(&self, _: u64, _: &mut [u8]) -> Result<SampledMessage, PortError> {
        Err(PortError::InvalidConfig)
    }
    fn queuing_send(&self, _: u64, _: &[u8], _: Duration) -> Result<(), PortError> {
        Err(PortError::InvalidConfig)
    }
    fn queuing_receive(&self, _: u64, _: &mut [u8], _: Duration) -> Result<usize, PortError> {
        Err(PortError::InvalidConfig)
    }
    fn status(&self, _: u64) -> Result<[u64; abi::CALL_VALUES], PortError> {
        Err(PortError::InvalidConfig)
    }
    fn doorbell_ring(&self, _: u64) -> Result<(), PortError> {
        Err(PortError::InvalidConfig)
    }
    fn doorbell_wait(&self, _: u64, _: Duration) -> Result<u64, PortError> {
        Err(PortError::InvalidConfig)
    }
    fn doorbell_attach(&self, _: u64, _: Option<u8>) -> Result<(), PortError> {
        Err(PortError::InvalidConfig)
    }
}

/// The port and doorbell calls (ABI 0.3). Checks, in the ABI's order: the handle and its
/// kind (`InvalidConfig`), lengths (`TooBig`) and scalar arguments (`Invalid`), then buffers
/// (`Fault`) — before anything happens, so a receive never takes a message it cannot deliver.
pub(super) fn port_call<M: GuestMemoryBackend>(
    mem: &M,
    nr: u64,
    args: &[u64; abi::CALL_ARGS],
    ports: &dyn PvPorts,
) -> Answer {
    let call = Call::from_nr(nr).ok_or(Error::UnknownCall)?;
    if call == Call::PortOpen {
        let name = read_guest_buffer(mem, args[0], args[1], abi::PORT_NAME_MAX)?;
        let handle = ports.open(&name).ok_or(Error::InvalidConfig)?;
        let info = ports.info(handle).ok_or(Error::InvalidConfig)?;
        return Ok([
            handle,
            info.kind as u64,
            u64::from(info.max_message_bytes),
            info.param,
        ]);
    }
    let handle = args[0];
    let info = ports.info(handle).ok_or(Error::InvalidConfig)?;
    let max = u64::from(info.max_message_bytes);
    let expect = |kind: PortKind| {
        if info.kind == kind {
            Ok(())
        } else {
            Err(Error::InvalidConfig)
        }
    };
    let timeout = |ns: u64| {
        if ns > abi::MAX_TIMEOUT_NS {
            Err(Error::Invalid)
        } else {
            Ok(Duration::from_nanos(ns))
        }
    };
    match call {
        Call::SamplingWrite => {
            expect(PortKind::SamplingSource)?;
            let message = read_message(mem, args[1], args[2], max)?;
            ports.sampling_write(handle, &message)?;
            Ok([0; abi::CALL_VALUES])
        }
        Call::SamplingRead => {
            expect(PortKind::SamplingDestination)?;
            let addr = message_buffer(mem, args[1], args[2], &info)?;
            let mut buf = vec![0u8; info.max_message_bytes as usize];
            let got = ports.sampling_read(handle, &mut buf)?;
            let len = got.len.min(buf.len());
            mem.write_slice(&buf[..len], addr)
                .map_err(|_| Error::Fault)?;
            Ok([len as u64, u64::from(got.valid), got.age_ns, 0])
        }
        Call::QueuingSend => {
            expect(PortKind::QueuingSource)?;
            let wait = timeout(args[3])?;
            let message = read_message(mem, args[1], args[2], max)?;
            ports.queuing_send(handle, &message, wait)?;
            Ok([0; abi::CALL_VALUES])
        }
        Call::QueuingReceive => {
            expect(PortKind::QueuingDestination)?;
            let wait = timeout(args[3])?;
            let addr = message_buffer(mem, args[1], args[2], &info)?;
            let mut buf = vec![0u8; info.max_message_bytes as usize];
            let len = ports
                .queuing_receive(handle, &mut buf, wait)?
                .min(buf.len());
            // The whole buffer was checked above: this write cannot fail.
            mem.write_slice(&buf[..len], addr)
                .map_err(|_| Error::Fault)?;
            Ok([len as u64, 0, 0, 0])
        }
        Call::PortStatus => Ok(ports.status(handle)?),
        Call::DoorbellRing => {
            expect(PortKind::DoorbellOut)?;
            ports.doorbell_ring(handle)?;
            Ok([0; abi::CALL_VALUES])
        }
        Call::DoorbellWait => {
            expect(PortKind::DoorbellIn)?;
            let wait = timeout(args[1])?;
            Ok([ports.doorbell_wait(handle, wait)?, 0, 0, 0])
        }
        Call::DoorbellAttach => {
            expect(PortKind::DoorbellIn)?;
            let vector = match args[1] {
                0 => None,
                v if (abi::MIN_DOORBELL_VECTOR..=255).contains(&v) => Some(v as u8),
                _ => return Err(Error::Invalid),
            };
            ports.doorbell_attach(handle, vector)?;
            Ok([0; abi::CALL_VALUES])
        }
        _ => Err(Error::UnknownCall),
    }
}

/// A message to send: 1..=`max` bytes of guest memory at `gpa`.
fn read_message<M: GuestMemoryBackend>(
    mem: &M,
    gpa: u64,
    len: u64,
    max: u64,
) -> Result<Vec<u8>, Error> {
    // An empty message is `Invalid`; a long one `TooBig`, before its buffer is looked at.
    if len == 0 {
        return Err(Error::Invalid);
    }
    read_guest_buffer(mem, gpa, len, max)
}

/// A buffer to receive into: `len` must hold the port's largest message, and that much guest
/// memory at `gpa` must be the partition's.
fn message_buffer<M: GuestMemoryBackend>(
    mem: &M,
    gpa: u64,
    len: u64,
    info: &PortInfo,
) -> Result<GuestAddress, Error> {
    let max = u64::from(info.max_message_bytes);
    if len < max {
        return Err(Error::Invalid);
    }
    checked_range(mem, gpa, max)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::Mutex;

    use vm_memory::GuestMemoryMmap;

    use super::*;

    const BUF: u64 = 0x2000;
    const MEM: usize = 0x10_000;

    /// Ports of a partition: handle 0 sampling source "tele" (16 bytes), 1 sampling
    /// destination "view" (16, refresh 5 ms), 2 queuing destination "cmd" (8 bytes, depth 2),
    /// 3 incoming doorbell "kick". Records what reaches it.
    #[derive(Default)]
    struct FakePorts {
        written: Mutex<Vec<Vec<u8>>>,
        queue: Mutex<Vec<Vec<u8>>>,
        attached: Mutex<Option<Option<u8>>>,
        waited: Mutex<Option<Duration>>,
    }

    const INFOS: [(&[u8], PortInfo); 4] = [
        (
            b"tele",
            PortInfo {
                kind: PortKind::SamplingSource,
                max_message_bytes: 16,
                param: 0,
            },
        ),
        (
            b"view",
            PortInfo {
                kind: PortKind::SamplingDestination,
                max_message_bytes: 16,
                param: 5_000_000,
            },
        ),
        (
            b"cmd",
            PortInfo {
                kind: PortKind::QueuingDestination,
                max_message_bytes: 8,
                param: 2,
            },
        ),
        (
            b"kick",
            PortInfo {
                kind: PortKind::DoorbellIn,
                max_message_bytes: 0,
                param: 0,
            },
        ),
    ];

    impl PvPorts for FakePorts {
        fn open(&self, name: &[u8]) -> Option<u64> {
            INFOS.iter().position(|(n, _)| *n == name).map(|i| i as u64)
        }
        fn info(&self, handle: u64) -> Option<PortInfo> {
            INFOS
                .get(usize::try_from(handle).ok()?)
                .map(|(_, info)| *info)
        }
        fn sampling_write(&self, _: u64, message: &[u8]) -> Result<(), PortError> {
            self.written.lock().unwrap().push(message.to_vec());
            Ok(())
        }
        fn sampling_read(&self, _: u64, buf: &mut [u8]) -> Result<SampledMessage, PortError> {
            buf[..5].copy_from_slice(b"fresh");
            Ok(SampledMessage {
                len: 5,
                valid: true,
                age_ns: 1234,
            })
        }
        fn queuing_send(&self, _: u64, _: &[u8], _: Duration) -> Result<(), PortError> {
            Err(PortError::InvalidConfig)
        }
        fn queuing_receive(&self, _: u64, buf: &mut [u8], _: Duration) -> Result<usize, PortError> {
            let message = self
                .queue
                .lock()
                .unwrap()
                .pop()
                .ok_or(PortError::NotAvailable)?;
            buf[..message.len()].copy_from_slice(&message);
            Ok(message.len())
        }
        fn status(&self, _: u64) -> Result<[u64; abi::CALL_VALUES], PortError> {
            Ok([1, 2, 3, 4])
        }
        fn doorbell_ring(&self, _: u64) -> Result<(), PortError> {
            Err(PortError::InvalidConfig)
        }
        fn doorbell_wait(&self, _: u64, timeout: Duration) -> Result<u64, PortError> {
            *self.waited.lock().unwrap() = Some(timeout);
            Err(PortError::TimedOut)
        }
        fn doorbell_attach(&self, _: u64, vector: Option<u8>) -> Result<(), PortError> {
            *self.attached.lock().unwrap() = Some(vector);
            Ok(())
        }
    }

    fn setup() -> (GuestMemoryMmap, FakePorts) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
        (mem, FakePorts::default())
    }

    fn call(mem: &GuestMemoryMmap, ports: &dyn PvPorts, nr: Call, args: &[u64]) -> Answer {
        let mut all = [0u64; abi::CALL_ARGS];
        all[..args.len()].copy_from_slice(args);
        port_call(mem, nr as u64, &all, ports)
    }

    #[test]
    fn opening_a_declared_port_gives_its_handle_kind_size_and_refresh_period() {
        let (mem, ports) = setup();
        mem.write_slice(b"view", GuestAddress(BUF)).unwrap();

        let got = call(&mem, &ports, Call::PortOpen, &[BUF, 4]);

        assert_eq!(
            got,
            Ok([1, PortKind::SamplingDestination as u64, 16, 5_000_000])
        );
    }

    #[test]
    fn opening_an_undeclared_name_is_invalid_config() {
        let (mem, ports) = setup();
        mem.write_slice(b"other", GuestAddress(BUF)).unwrap();

        assert_eq!(
            call(&mem, &ports, Call::PortOpen, &[BUF, 5]),
            Err(Error::InvalidConfig)
        );
    }

    #[test]
    fn a_partition_without_ports_can_open_none() {
        let (mem, _) = setup();
        mem.write_slice(b"tele", GuestAddress(BUF)).unwrap();

        assert_eq!(
            call(&mem, &NoPorts, Call::PortOpen, &[BUF, 4]),
            Err(Error::InvalidConfig)
        );
    }

    #[test]
    fn a_name_longer_than_the_limit_is_too_big_before_memory_is_read() {
        let (mem, ports) = setup();

        assert_eq!(
            call(
                &mem,
                &ports,
                Call::PortOpen,
                &[u64::MAX, abi::PORT_NAME_MAX + 1]
            ),
            Err(Error::TooBig)
        );
    }

    #[test]
    fn a_sampling_write_copies_the_message_out_of_guest_memory() {
        let (mem, ports) = setup();
        mem.write_slice(b"hello", GuestAddress(BUF)).unwrap();

        let got = call(&mem, &ports, Call::SamplingWrite, &[0, BUF, 5]);

        assert_eq!(got, Ok([0; 4]));
        assert_eq!(
            ports.written.lock().unwrap().as_slice(),
            &[b"hello".to_vec()]
        );
    }

    #[test]
    fn a_message_beyond_the_ports_largest_is_too_big_and_an_empty_one_invalid() {
        let (mem, ports) = setup();

        assert_eq!(
            call(&mem, &ports, Call::SamplingWrite, &[0, BUF, 17]),
            Err(Error::TooBig)
        );
        assert_eq!(
            call(&mem, &ports, Call::SamplingWrite, &[0, BUF, 0]),
            Err(Error::Invalid)
        );
        assert!(ports.written.lock().unwrap().is_empty());
    }

    #[test]
    fn a_call_on_a_port_of_another_kind_is_invalid_config() {
        let (mem, ports) = setup();

        assert_eq!(
            call(&mem, &ports, Call::SamplingWrite, &[1, BUF, 4]),
            Err(Error::InvalidConfig)
        );
        assert_eq!(
            call(&mem, &ports, Call::QueuingReceive, &[0, BUF, 16, 0]),
            Err(Error::InvalidConfig)
        );
        assert_eq!(
            call(&mem, &ports, Call::PortStatus, &[99]),
            Err(Error::InvalidConfig)
        );
    }

    #[test]
    fn a_sampling_read_fills_the_buffer_and_reports_validity_and_age() {
        let (mem, ports) = setup();

        let got = call(&mem, &ports, Call::SamplingRead, &[1, BUF, 16]);

        assert_eq!(got, Ok([5, 1, 1234, 0]));
        let mut buf = [0u8; 5];
        mem.read_slice(&mut buf, GuestAddress(BUF)).unwrap();
        assert_eq!(&buf, b"fresh");
    }

    #[test]
    fn a_receive_buffer_smaller_than_the_largest_message_is_invalid() {
        let (mem, ports) = setup();

        assert_eq!(
            call(&mem, &ports, Call::SamplingRead, &[1, BUF, 15]),
            Err(Error::Invalid)
        );
    }

    #[test]
    fn a_receive_into_memory_outside_the_partition_faults_and_takes_no_message() {
        let (mem, ports) = setup();
        ports.queue.lock().unwrap().push(b"keep".to_vec());

        let got = call(
            &mem,
            &ports,
            Call::QueuingReceive,
            &[2, MEM as u64 - 4, 8, 0],
        );

        assert_eq!(got, Err(Error::Fault));
        assert_eq!(ports.queue.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_receive_delivers_the_message_and_its_length() {
        let (mem, ports) = setup();
        ports.queue.lock().unwrap().push(b"go".to_vec());

        let got = call(&mem, &ports, Call::QueuingReceive, &[2, BUF, 8, 0]);

        assert_eq!(got, Ok([2, 0, 0, 0]));
        assert_eq!(
            call(&mem, &ports, Call::QueuingReceive, &[2, BUF, 8, 0]),
            Err(Error::NotAvailable)
        );
    }

    #[test]
    fn a_timeout_beyond_ten_seconds_is_invalid() {
        let (mem, ports) = setup();

        assert_eq!(
            call(
                &mem,
                &ports,
                Call::QueuingReceive,
                &[2, BUF, 8, abi::MAX_TIMEOUT_NS + 1]
            ),
            Err(Error::Invalid)
        );
        assert_eq!(
            call(
                &mem,
                &ports,
                Call::DoorbellWait,
                &[3, abi::MAX_TIMEOUT_NS + 1]
            ),
            Err(Error::Invalid)
        );
    }

    #[test]
    fn a_doorbell_wait_passes_its_timeout_and_reports_timed_out() {
        let (mem, ports) = setup();

        let got = call(&mem, &ports, Call::DoorbellWait, &[3, 2_000_000]);

        assert_eq!(got, Err(Error::TimedOut));
        assert_eq!(
            *ports.waited.lock().unwrap(),
            Some(Duration::from_millis(2))
        );
    }

    #[test]
    fn a_doorbell_vector_must_be_above_the_exceptions_and_zero_detaches() {
        let (mem, ports) = setup();
        let attached = RefCell::new(Vec::new());

        for vector in [31, 256] {
            attached
                .borrow_mut()
                .push(call(&mem, &ports, Call::DoorbellAttach, &[3, vector]));
        }
        let zero = call(&mem, &ports, Call::DoorbellAttach, &[3, 0]);

        assert_eq!(attached.into_inner(), vec![Err(Error::Invalid); 2]);
        assert_eq!(zero, Ok([0; 4]));
        assert_eq!(*ports.attached.lock().unwrap(), Some(None));
    }

    #[test]
    fn status_reaches_the_ports() {
        let (mem, ports) = setup();

        assert_eq!(call(&mem, &ports, Call::PortStatus, &[2]), Ok([1, 2, 3, 4]));
    }
}
