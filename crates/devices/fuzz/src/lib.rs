//! What the fuzz targets share: [`FuzzPorts`], a partition's ports and doorbells with a little
//! state (a sampling message, a queue of depth 2, pending rings), so that the port calls and
//! the APEX requests go all the way through, and whose methods check the invariants the
//! callers promise (a message within the port's size, a buffer of the port's size).

use std::sync::Mutex;
use std::time::Duration;

use bulkhead_devices::pvcall::{PortError, PortInfo, PvPorts, SampledMessage};
use bulkhead_pvabi::{PortKind, CALL_VALUES, MAX_TIMEOUT_NS};

/// Handles 0..6: one port or doorbell of each kind, named "s0".."s5", largest message 16.
#[derive(Default)]
pub struct FuzzPorts {
    sampled: Mutex<Option<Vec<u8>>>,
    queue: Mutex<Vec<Vec<u8>>>,
    rings: Mutex<u64>,
}

const KINDS: [PortKind; 6] = [
    PortKind::SamplingSource,
    PortKind::SamplingDestination,
    PortKind::QueuingSource,
    PortKind::QueuingDestination,
    PortKind::DoorbellOut,
    PortKind::DoorbellIn,
];
const MAX: usize = 16;

impl FuzzPorts {
    fn kind(&self, handle: u64, kind: PortKind) -> Result<(), PortError> {
        match KINDS.get(usize::try_from(handle).unwrap_or(usize::MAX)) {
            Some(k) if *k == kind => Ok(()),
            _ => Err(PortError::InvalidConfig),
        }
    }
}

fn check_message(message: &[u8]) {
    assert!(!message.is_empty() && message.len() <= MAX, "message of {}", message.len());
}

fn check_timeout(timeout: Duration) {
    assert!(timeout.as_nanos() <= u128::from(MAX_TIMEOUT_NS));
}

impl PvPorts for FuzzPorts {
    fn open(&self, name: &[u8]) -> Option<u64> {
        match name {
            [b's', d @ b'0'..=b'5'] => Some(u64::from(d - b'0')),
            _ => None,
        }
    }
    fn info(&self, handle: u64) -> Option<PortInfo> {
        let kind = *KINDS.get(usize::try_from(handle).ok()?)?;
        let doorbell = matches!(kind, PortKind::DoorbellIn | PortKind::DoorbellOut);
        Some(PortInfo {
            kind,
            max_message_bytes: if doorbell { 0 } else { MAX as u32 },
            param: 2,
        })
    }
    fn sampling_write(&self, handle: u64, message: &[u8]) -> Result<(), PortError> {
        self.kind(handle, PortKind::SamplingSource)?;
        check_message(message);
        *self.sampled.lock().unwrap() = Some(message.to_vec());
        Ok(())
    }
    fn sampling_read(&self, handle: u64, buf: &mut [u8]) -> Result<SampledMessage, PortError> {
        self.kind(handle, PortKind::SamplingDestination)?;
        assert_eq!(buf.len(), MAX);
        let sampled = self.sampled.lock().unwrap();
        let message = sampled.as_ref().ok_or(PortError::NotAvailable)?;
        buf[..message.len()].copy_from_slice(message);
        Ok(SampledMessage {
            len: message.len(),
            valid: true,
            age_ns: 5,
        })
    }
    fn queuing_send(&self, handle: u64, message: &[u8], timeout: Duration) -> Result<(), PortError> {
        self.kind(handle, PortKind::QueuingSource)?;
        check_message(message);
        check_timeout(timeout);
        let mut queue = self.queue.lock().unwrap();
        if queue.len() >= 2 {
            return Err(if timeout.is_zero() {
                PortError::NotAvailable
            } else {
                PortError::TimedOut
            });
        }
        queue.push(message.to_vec());
        Ok(())
    }
    fn queuing_receive(
        &self,
        handle: u64,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, PortError> {
        self.kind(handle, PortKind::QueuingDestination)?;
        assert_eq!(buf.len(), MAX);
        check_timeout(timeout);
        let mut queue = self.queue.lock().unwrap();
        if queue.is_empty() {
            return Err(if timeout.is_zero() {
                PortError::NotAvailable
            } else {
                PortError::TimedOut
            });
        }
        let message = queue.remove(0);
        buf[..message.len()].copy_from_slice(&message);
        Ok(message.len())
    }
    fn status(&self, handle: u64) -> Result<[u64; CALL_VALUES], PortError> {
        self.info(handle).ok_or(PortError::InvalidConfig)?;
        Ok([self.queue.lock().unwrap().len() as u64, 2, 0, 0])
    }
    fn doorbell_ring(&self, handle: u64) -> Result<(), PortError> {
        self.kind(handle, PortKind::DoorbellOut)?;
        *self.rings.lock().unwrap() += 1;
        Ok(())
    }
    fn doorbell_wait(&self, handle: u64, timeout: Duration) -> Result<u64, PortError> {
        self.kind(handle, PortKind::DoorbellIn)?;
        check_timeout(timeout);
        match std::mem::take(&mut *self.rings.lock().unwrap()) {
            0 if timeout.is_zero() => Err(PortError::NotAvailable),
            0 => Err(PortError::TimedOut),
            n => Ok(n),
        }
    }
    fn doorbell_attach(&self, handle: u64, vector: Option<u8>) -> Result<(), PortError> {
        self.kind(handle, PortKind::DoorbellIn)?;
        assert!(vector.is_none_or(|v| v >= 32));
        Ok(())
    }
}
