//! Decoding, checking and performing one paravirtual call.

use std::time::Duration;

use bulkhead_pvabi::{self as abi, offset, Call, Error};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend};

use super::ports::{port_call, NoPorts, PvPorts};
use super::PvMetrics;
use crate::RateLimitedLog;

/// Who the partition is, as told to the guest by `PartitionId`.
#[derive(Debug, Clone)]
pub struct PvIdentity {
    /// Index of the partition in the system description.
    pub partition_index: u64,
    /// The partition's name.
    pub name: String,
    /// Whether the partition is high-criticality.
    pub high_criticality: bool,
    /// The vCPUs' TSC frequency in kHz, 0 when unknown.
    pub tsc_khz: u64,
}

/// What the handler needs from the world: a clock and a console. Injected so the handler can
/// be tested without sleeping.
pub trait PvPlatform {
    /// Nanoseconds since the partition started (monotonic).
    fn now_ns(&self) -> u64;
    /// Blocks the calling vCPU until `now_ns() >= deadline_ns`.
    fn sleep_until_ns(&self, deadline_ns: u64);
    /// Writes guest console output.
    fn console_write(&self, bytes: &[u8]);
    /// Kicks the partition's watchdog; returns its timeout in ms, 0 when it has none.
    fn watchdog_kick(&self) -> u64;
    /// The partition's ports and doorbells (none by default).
    fn ports(&self) -> &dyn PvPorts {
        &NoPorts
    }
}

/// Per-vCPU state of the ABI: the release grid of `WaitNextPeriod`.
#[derive(Debug, Default, Clone)]
pub struct PvVcpuState {
    period_ns: u64,
    next_release_ns: u64,
}

/// What the vCPU loop does after a doorbell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvOutcome {
    /// Resume the vCPU.
    Resume,
    /// The guest asked to power off with this code.
    PowerOff(u64),
    /// The guest reported this many missed deadlines (the call is answered; the health
    /// monitor decides whether the vCPU resumes).
    DeadlinesMissed(u64),
    /// The guest reported a panic with this code (answered likewise).
    Panic(u64),
}

/// The per-partition call handler. Shared by the partition's vCPU threads.
#[derive(Debug)]
pub struct PvCallHandler {
    identity: PvIdentity,
    metrics: PvMetrics,
    bad_block_log: RateLimitedLog,
}

/// Result of one call before it is written back: status and values.
pub(super) type Answer = Result<[u64; abi::CALL_VALUES], Error>;

impl PvCallHandler {
    /// A handler for the partition `identity`.
    pub fn new(identity: PvIdentity) -> Self {
        PvCallHandler {
            identity,
            metrics: PvMetrics::default(),
            bad_block_log: RateLimitedLog::new(5, Duration::from_secs(10)),
        }
    }

    /// The counters.
    pub fn metrics(&self) -> &PvMetrics {
        &self.metrics
    }

    /// Handles a doorbell ring carrying `doorbell` (the call block's address >> 6) from vCPU
    /// `vcpu_index`.
    pub fn ring<M: GuestMemoryBackend>(
        &self,
        mem: &M,
        doorbell: u32,
        vcpu_index: u64,
        state: &mut PvVcpuState,
        platform: &dyn PvPlatform,
    ) -> PvOutcome {
        let block = GuestAddress(u64::from(doorbell) << abi::CALL_BLOCK_ALIGN_SHIFT);
        let Some(request) = read_block(mem, block) else {
            PvMetrics::add(&self.metrics.bad_blocks, 1);
            self.bad_block_log.emit(format_args!(
                "partition {}: vCPU {vcpu_index} rang the PV doorbell with a call block outside \
                 its memory ({:#x}); ignored",
                self.identity.name, block.0
            ));
            return PvOutcome::Resume;
        };
        let (nr, args) = request;
        let call = Call::from_nr(nr);
        if call == Some(Call::PowerOff) {
            return PvOutcome::PowerOff(args[0]);
        }
        let answer = self.perform(mem, nr, &args, vcpu_index, state, platform);
        let outcome = match (call, &answer) {
            (Some(Call::ReportDeadlineMiss), Ok(_)) => PvOutcome::DeadlinesMissed(args[0]),
            (Some(Call::ReportPanic), Ok(_)) => PvOutcome::Panic(args[0]),
            _ => PvOutcome::Resume,
        };
        PvMetrics::add(&self.metrics.calls, 1);
        let (status, values) = match answer {
            Ok(values) => (0i64, values),
            Err(e) => {
                PvMetrics::add(&self.metrics.errors, 1);
                (e as i64, [0; abi::CALL_VALUES])
            }
        };
        // The block was readable a moment ago and guest memory does not shrink, so these
        // writes cannot fail; if they did, the guest would see its status unanswered.
        let _ = mem.write_obj(status, block.unchecked_add(offset::STATUS as u64));
        for (i, v) in values.iter().enumerate() {
            let _ = mem.write_obj(*v, block.unchecked_add((offset::VALUES + 8 * i) as u64));
        }
        outcome
    }

    fn perform<M: GuestMemoryBackend>(
        &self,
        mem: &M,
        nr: u64,
        args: &[u64; abi::CALL_ARGS],
        vcpu_index: u64,
        state: &mut PvVcpuState,
        platform: &dyn PvPlatform,
    ) -> Answer {
        match Call::from_nr(nr).ok_or(Error::UnknownCall)? {
            Call::AbiVersion => Ok([u64::from(abi::ABI_VERSION), 0, 0, 0]),
            Call::ConsoleWrite => {
                let bytes = read_guest_buffer(mem, args[0], args[1], abi::CONSOLE_WRITE_MAX)?;
                platform.console_write(&bytes);
                PvMetrics::add(&self.metrics.console_bytes, bytes.len() as u64);
                Ok([bytes.len() as u64, 0, 0, 0])
            }
            Call::PartitionId => {
                let name = self.identity.name.as_bytes();
                let (buf, len) = (args[0], args[1]);
                if len > abi::NAME_MAX {
                    return Err(Error::TooBig);
                }
                if len != 0 {
                    if (len as usize) < name.len() {
                        return Err(Error::TooBig);
                    }
                    let addr = checked_range(mem, buf, name.len() as u64)?;
                    mem.write_slice(name, addr).map_err(|_| Error::Fault)?;
                }
                Ok([
                    self.identity.partition_index,
                    vcpu_index,
                    name.len() as u64,
                    u64::from(self.identity.high_criticality),
                ])
            }
            Call::MonotonicTime => Ok([platform.now_ns(), self.identity.tsc_khz, 0, 0]),
            Call::WaitNextPeriod => {
                let values = wait_next_period(args[0], state, platform)?;
                PvMetrics::add(&self.metrics.missed_releases, values[2]);
                Ok(values)
            }
            Call::WatchdogKick => Ok([platform.watchdog_kick(), 0, 0, 0]),
            Call::ReportDeadlineMiss => {
                if args[0] == 0 || args[0] > u64::from(u32::MAX) {
                    return Err(Error::Invalid);
                }
                PvMetrics::add(&self.metrics.reported_misses, args[0]);
                Ok([0; abi::CALL_VALUES])
            }
            Call::ReportPanic => Ok([0; abi::CALL_VALUES]),
            Call::PowerOff => unreachable_power_off(),
            Call::PortOpen
            | Call::SamplingWrite
            | Call::SamplingRead
            | Call::QueuingSend
            | Call::QueuingReceive
            | Call::PortStatus
            | Call::DoorbellRing
            | Call::DoorbellWait
            | Call::DoorbellAttach => port_call(mem, nr, args, platform.ports()),
        }
    }
}

/// `PowerOff` is handled before `perform`; reaching it there would be a logic error, answered
/// as an invalid call rather than a panic.
fn unreachable_power_off() -> Answer {
    Err(Error::Invalid)
}

fn read_block<M: GuestMemoryBackend>(mem: &M, block: GuestAddress) -> Option<(u64, [u64; 6])> {
    let mut raw = [0u8; abi::CALL_BLOCK_SIZE];
    mem.read_slice(&mut raw, block).ok()?;
    let word = |off: usize| u64::from_le_bytes(raw[off..off + 8].try_into().unwrap_or([0; 8]));
    let mut args = [0u64; abi::CALL_ARGS];
    for (i, a) in args.iter_mut().enumerate() {
        *a = word(offset::ARGS + 8 * i);
    }
    Some((word(offset::NR), args))
}

/// Checks that `[gpa, gpa + len)` lies inside guest memory.
pub(super) fn checked_range<M: GuestMemoryBackend>(
    mem: &M,
    gpa: u64,
    len: u64,
) -> Result<GuestAddress, Error> {
    let end = gpa.checked_add(len).ok_or(Error::Fault)?;
    let addr = GuestAddress(gpa);
    if len == 0 || mem.check_range(addr, len as usize) && end > gpa {
        Ok(addr)
    } else {
        Err(Error::Fault)
    }
}

pub(super) fn read_guest_buffer<M: GuestMemoryBackend>(
    mem: &M,
    gpa: u64,
    len: u64,
    max: u64,
) -> Result<Vec<u8>, Error> {
    if len > max {
        return Err(Error::TooBig);
    }
    let addr = checked_range(mem, gpa, len)?;
    let mut buf = vec![0u8; len as usize];
    mem.read_slice(&mut buf, addr).map_err(|_| Error::Fault)?;
    Ok(buf)
}

fn wait_next_period(
    period_ns: u64,
    state: &mut PvVcpuState,
    platform: &dyn PvPlatform,
) -> Result<[u64; abi::CALL_VALUES], Error> {
    if !(abi::MIN_PERIOD_NS..=abi::MAX_PERIOD_NS).contains(&period_ns) {
        return Err(Error::Invalid);
    }
    let now = platform.now_ns();
    if state.period_ns != period_ns {
        state.period_ns = period_ns;
        state.next_release_ns = now.saturating_add(period_ns);
    }
    let mut missed = 0;
    if now >= state.next_release_ns {
        // Skip every release already in the past; the next one is at most a period away.
        let behind = (now - state.next_release_ns) / period_ns + 1;
        missed = behind;
        state.next_release_ns = state.next_release_ns.saturating_add(behind * period_ns);
    }
    let release = state.next_release_ns;
    platform.sleep_until_ns(release);
    let woke = platform.now_ns();
    state.next_release_ns = release.saturating_add(period_ns);
    Ok([release, woke.saturating_sub(release), missed, 0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use vm_memory::GuestMemoryMmap;

    const MEM_SIZE: u64 = 0x10_0000;
    const BLOCK: u64 = 0x1000;
    const BUF: u64 = 0x2000;

    struct FakePlatform {
        now: Cell<u64>,
        console: RefCell<Vec<u8>>,
        kicks: Cell<u64>,
    }

    impl PvPlatform for FakePlatform {
        fn now_ns(&self) -> u64 {
            self.now.get()
        }
        fn sleep_until_ns(&self, deadline_ns: u64) {
            self.now.set(self.now.get().max(deadline_ns) + 7);
        }
        fn console_write(&self, bytes: &[u8]) {
            self.console.borrow_mut().extend_from_slice(bytes);
        }
        fn watchdog_kick(&self) -> u64 {
            self.kicks.set(self.kicks.get() + 1);
            250
        }
    }

    fn setup() -> (GuestMemoryMmap, PvCallHandler, FakePlatform) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap();
        let handler = PvCallHandler::new(PvIdentity {
            partition_index: 3,
            name: "control".into(),
            high_criticality: true,
            tsc_khz: 2_600_000,
        });
        let platform = FakePlatform {
            now: Cell::new(1_000_000),
            console: RefCell::new(Vec::new()),
            kicks: Cell::new(0),
        };
        (mem, handler, platform)
    }

    fn call(
        mem: &GuestMemoryMmap,
        handler: &PvCallHandler,
        platform: &FakePlatform,
        state: &mut PvVcpuState,
        nr: u64,
        args: &[u64],
    ) -> (PvOutcome, i64, [u64; 4]) {
        let block = GuestAddress(BLOCK);
        mem.write_obj(nr, block).unwrap();
        for (i, a) in args.iter().enumerate() {
            mem.write_obj(*a, block.unchecked_add(8 + 8 * i as u64))
                .unwrap();
        }
        mem.write_obj(abi::STATUS_UNANSWERED, block.unchecked_add(56))
            .unwrap();
        let outcome = handler.ring(mem, (BLOCK >> 6) as u32, 1, state, platform);
        let status: i64 = mem.read_obj(block.unchecked_add(56)).unwrap();
        let mut values = [0u64; 4];
        for (i, v) in values.iter_mut().enumerate() {
            *v = mem
                .read_obj(block.unchecked_add(64 + 8 * i as u64))
                .unwrap();
        }
        (outcome, status, values)
    }

    #[test]
    fn watchdog_kick_reaches_the_platform_and_returns_its_timeout() {
        let (mem, h, p) = setup();

        let (outcome, status, values) = call(&mem, &h, &p, &mut PvVcpuState::default(), 6, &[]);

        assert_eq!((outcome, status, values[0]), (PvOutcome::Resume, 0, 250));
        assert_eq!(p.kicks.get(), 1);
    }

    #[test]
    fn deadline_miss_report_is_answered_and_handed_to_the_monitor() {
        let (mem, h, p) = setup();

        let (outcome, status, _) = call(&mem, &h, &p, &mut PvVcpuState::default(), 7, &[3]);

        assert_eq!((outcome, status), (PvOutcome::DeadlinesMissed(3), 0));
        assert_eq!(
            h.metrics()
                .reported_misses
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn deadline_miss_report_of_zero_or_beyond_u32_is_invalid() {
        let (mem, h, p) = setup();

        for count in [0, u64::from(u32::MAX) + 1] {
            let (outcome, status, _) = call(&mem, &h, &p, &mut PvVcpuState::default(), 7, &[count]);

            assert_eq!(
                (outcome, status),
                (PvOutcome::Resume, Error::Invalid as i64)
            );
        }
    }

    #[test]
    fn panic_report_is_answered_and_handed_to_the_monitor() {
        let (mem, h, p) = setup();

        let (outcome, status, _) = call(&mem, &h, &p, &mut PvVcpuState::default(), 8, &[42]);

        assert_eq!((outcome, status), (PvOutcome::Panic(42), 0));
    }

    #[test]
    fn abi_version_reports_the_crate_version() {
        let (mem, h, p) = setup();

        let (_, status, values) = call(&mem, &h, &p, &mut PvVcpuState::default(), 0, &[]);

        assert_eq!((status, values[0]), (0, u64::from(abi::ABI_VERSION)));
    }

    #[test]
    fn console_write_copies_the_guest_buffer_out() {
        let (mem, h, p) = setup();
        mem.write_slice(b"hello\n", GuestAddress(BUF)).unwrap();

        let (_, status, values) = call(&mem, &h, &p, &mut PvVcpuState::default(), 1, &[BUF, 6]);

        assert_eq!((status, values[0]), (0, 6));
        assert_eq!(p.console.borrow().as_slice(), b"hello\n");
    }

    #[test]
    fn unknown_call_number_returns_unknown_call() {
        let (mem, h, p) = setup();

        let (outcome, status, _) = call(&mem, &h, &p, &mut PvVcpuState::default(), 99, &[]);

        assert_eq!(
            (outcome, status),
            (PvOutcome::Resume, Error::UnknownCall as i64)
        );
        assert_eq!(
            h.metrics()
                .errors
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn console_write_outside_memory_returns_fault() {
        let (mem, h, p) = setup();

        let (_, status, _) = call(
            &mem,
            &h,
            &p,
            &mut PvVcpuState::default(),
            1,
            &[MEM_SIZE - 2, 8],
        );

        assert_eq!(status, Error::Fault as i64);
        assert!(p.console.borrow().is_empty());
    }

    #[test]
    fn console_write_with_wrapping_address_returns_fault() {
        let (mem, h, p) = setup();

        let (_, status, _) = call(
            &mem,
            &h,
            &p,
            &mut PvVcpuState::default(),
            1,
            &[u64::MAX - 3, 8],
        );

        assert_eq!(status, Error::Fault as i64);
    }

    #[test]
    fn oversize_console_write_returns_too_big_without_reading() {
        let (mem, h, p) = setup();

        let (_, status, _) = call(
            &mem,
            &h,
            &p,
            &mut PvVcpuState::default(),
            1,
            &[BUF, 1 << 40],
        );

        assert_eq!(status, Error::TooBig as i64);
    }

    #[test]
    fn partition_id_copies_the_name_and_reports_identity() {
        let (mem, h, p) = setup();

        let (_, status, values) = call(&mem, &h, &p, &mut PvVcpuState::default(), 2, &[BUF, 64]);
        let mut name = [0u8; 7];
        mem.read_slice(&mut name, GuestAddress(BUF)).unwrap();

        assert_eq!((status, values), (0, [3, 1, 7, 1]));
        assert_eq!(&name, b"control");
    }

    #[test]
    fn partition_id_with_name_buffer_outside_memory_returns_fault() {
        let (mem, h, p) = setup();

        let (_, status, _) = call(
            &mem,
            &h,
            &p,
            &mut PvVcpuState::default(),
            2,
            &[MEM_SIZE, 16],
        );

        assert_eq!(status, Error::Fault as i64);
    }

    #[test]
    fn monotonic_time_reports_clock_and_tsc_frequency() {
        let (mem, h, p) = setup();

        let (_, status, values) = call(&mem, &h, &p, &mut PvVcpuState::default(), 3, &[]);

        assert_eq!((status, values[0], values[1]), (0, 1_000_000, 2_600_000));
    }

    #[test]
    fn wait_next_period_with_period_below_minimum_returns_invalid() {
        let (mem, h, p) = setup();

        let (_, status, _) = call(&mem, &h, &p, &mut PvVcpuState::default(), 4, &[0]);

        assert_eq!(status, Error::Invalid as i64);
    }

    #[test]
    fn wait_next_period_with_period_above_maximum_returns_invalid() {
        let (mem, h, p) = setup();

        let (_, status, _) = call(
            &mem,
            &h,
            &p,
            &mut PvVcpuState::default(),
            4,
            &[abi::MAX_PERIOD_NS + 1],
        );

        assert_eq!(status, Error::Invalid as i64);
    }

    #[test]
    fn wait_next_period_releases_on_a_fixed_grid() {
        let (mem, h, p) = setup();
        let mut st = PvVcpuState::default();

        let (_, _, first) = call(&mem, &h, &p, &mut st, 4, &[10_000]);
        let (_, _, second) = call(&mem, &h, &p, &mut st, 4, &[10_000]);

        assert_eq!((first[0], first[1]), (1_010_000, 7));
        assert_eq!((second[0], second[2]), (1_020_000, 0));
    }

    #[test]
    fn wait_next_period_counts_missed_releases() {
        let (mem, h, p) = setup();
        let mut st = PvVcpuState::default();
        call(&mem, &h, &p, &mut st, 4, &[10_000]);

        p.now.set(p.now.get() + 35_000);
        let (_, _, values) = call(&mem, &h, &p, &mut st, 4, &[10_000]);

        assert_eq!(values[2], 3);
        assert!(values[0] > p.now.get() - 10_007);
    }

    #[test]
    fn power_off_returns_the_exit_code() {
        let (mem, h, p) = setup();

        let (outcome, status, _) = call(&mem, &h, &p, &mut PvVcpuState::default(), 5, &[42]);

        assert_eq!(outcome, PvOutcome::PowerOff(42));
        assert_eq!(status, abi::STATUS_UNANSWERED);
    }

    #[test]
    fn doorbell_outside_memory_is_counted_and_ignored() {
        let (mem, h, p) = setup();

        let outcome = h.ring(&mem, u32::MAX, 0, &mut PvVcpuState::default(), &p);

        assert_eq!(outcome, PvOutcome::Resume);
        assert_eq!(
            h.metrics()
                .bad_blocks
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
