//! One virtual CPU: its initial state and its run loop step. [`Vcpu::run`] enters the guest
//! once and returns why it stopped, as a [`VcpuExit`] that names no KVM type, for the
//! partition's exit dispatcher.
//!
//! Kicks: a thread can be made to leave the guest by sending its vCPU thread the signal given
//! to [`install_kick_signal`], once that thread called [`Vcpu::enable_kicks`]. The handler
//! sets the vCPU's `immediate_exit`, so a kick that lands between the caller's last check
//! and the next `KVM_RUN` still makes that `KVM_RUN` return at once ([`VcpuExit::Interrupted`])
//! instead of being lost; [`Vcpu::run`] clears it again when `KVM_RUN` returns.

use std::cell::Cell;

use kvm_bindings::{
    kvm_run, KVM_MAX_CPUID_ENTRIES, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use crate::x86_64::cpu;
use crate::x86_64::loader::BootSetup;

/// Errors configuring or running a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM_CREATE_VCPU failed.
    #[error("KVM_CREATE_VCPU failed")]
    Create(#[source] kvm_ioctls::Error),
    /// KVM_GET_SUPPORTED_CPUID or KVM_SET_CPUID2 failed.
    #[error("cannot set CPUID")]
    Cpuid(#[source] kvm_ioctls::Error),
    /// Setting registers, FPU or LAPIC state failed.
    #[error("cannot set the initial {0} state")]
    SetState(&'static str, #[source] kvm_ioctls::Error),
    /// KVM_RUN failed.
    #[error("KVM_RUN failed")]
    Run(#[source] kvm_ioctls::Error),
    /// The kick signal's handler could not be installed.
    #[error("cannot install the handler of signal {0}")]
    KickSignal(i32, #[source] std::io::Error),
}

thread_local! {
    /// The `kvm_run` of the vCPU this thread runs, for the kick signal's handler; null until
    /// [`Vcpu::enable_kicks`].
    static KICK_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn kick_handler(_signal: libc::c_int) {
    // Async-signal-safe: a const-initialised thread-local read and one volatile byte store.
    let run = KICK_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: `run` is this thread's vCPU's `kvm_run` mapping, set by `enable_kicks` on
        // this thread and valid while the `Vcpu` lives; the `Vcpu` is dropped only after its
        // thread stops taking kicks (`Drop` clears the pointer on the same thread).
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

/// Makes `signal` the vCPU kick: its handler sets the receiving thread's vCPU's
/// `immediate_exit` (see the module docs). Process-wide; call once before any kick.
pub fn install_kick_signal(signal: i32) -> Result<(), VcpuError> {
    // SAFETY: sigaction with a zeroed mask and a handler that is async-signal-safe; SA_RESTART
    // is left out so that KVM_RUN and sleeps see EINTR.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = kick_handler as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(VcpuError::KickSignal(
            signal,
            std::io::Error::last_os_error(),
        ))
    }
}

/// Why the guest stopped running, in terms the partition layer dispatches on.
#[derive(Debug)]
pub enum VcpuExit<'a> {
    /// Port read: fill `data`.
    IoIn(u16, &'a mut [u8]),
    /// Port write.
    IoOut(u16, &'a [u8]),
    /// MMIO read: fill `data`.
    MmioRead(u64, &'a mut [u8]),
    /// MMIO write.
    MmioWrite(u64, &'a [u8]),
    /// The guest halted with interrupts off for good, or KVM reported a HLT exit.
    Hlt,
    /// Triple fault or other shutdown condition.
    Shutdown,
    /// The guest asked KVM (PSCI-style system event) to reset.
    SystemReset,
    /// The guest asked KVM (system event) to power off.
    SystemPowerOff,
    /// KVM could not emulate or handle something (`KVM_EXIT_INTERNAL_ERROR`; the sub-error
    /// is [`Vcpu::internal_error_code`]). On software KVM a triple fault shows up as this too.
    InternalError,
    /// VM entry failed, with the hardware reason.
    FailEntry(u64),
    /// KVM_RUN returned because of a signal or `immediate_exit`.
    Interrupted,
    /// Anything else, described.
    Other(String),
}

/// A vCPU.
pub struct Vcpu {
    fd: VcpuFd,
    index: u8,
}

impl Drop for Vcpu {
    fn drop(&mut self) {
        let run: *mut kvm_run = self.fd.get_kvm_run();
        // Only the thread that enabled kicks for this vCPU holds its pointer.
        KICK_RUN.with(|cell| {
            if cell.get() == run {
                cell.set(std::ptr::null_mut());
            }
        });
    }
}

impl Vcpu {
    pub(crate) fn new(
        kvm: &Kvm,
        vm: &VmFd,
        index: u8,
        count: u8,
        boot: &BootSetup,
    ) -> Result<Vcpu, VcpuError> {
        let fd = vm
            .create_vcpu(u64::from(index))
            .map_err(VcpuError::Create)?;
        let mut cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(VcpuError::Cpuid)?;
        let tsc_deadline = kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
        cpu::adjust_cpuid(&mut cpuid, index, count, tsc_deadline);
        fd.set_cpuid2(&cpuid).map_err(VcpuError::Cpuid)?;
        fd.set_fpu(&cpu::boot_fpu())
            .map_err(|e| VcpuError::SetState("FPU", e))?;
        let mut lapic = fd
            .get_lapic()
            .map_err(|e| VcpuError::SetState("LAPIC", e))?;
        cpu::set_lint_pins(&mut lapic);
        fd.set_lapic(&lapic)
            .map_err(|e| VcpuError::SetState("LAPIC", e))?;
        if index == 0 {
            let sregs = fd
                .get_sregs()
                .map_err(|e| VcpuError::SetState("special register", e))?;
            fd.set_sregs(&cpu::boot_sregs(sregs, boot.mode))
                .map_err(|e| VcpuError::SetState("special register", e))?;
            fd.set_regs(&cpu::boot_regs(boot.entry, boot.mode))
                .map_err(|e| VcpuError::SetState("register", e))?;
        }
        Ok(Vcpu { fd, index })
    }

    /// The vCPU's index (and APIC ID).
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The guest TSC frequency in kHz, if KVM knows it.
    pub fn tsc_khz(&self) -> Option<u32> {
        self.fd.get_tsc_khz().ok()
    }

    /// The sub-error code of the last `KVM_EXIT_INTERNAL_ERROR` (1 = emulation failure).
    pub fn internal_error_code(&mut self) -> u32 {
        let run = self.fd.get_kvm_run();
        if run.exit_reason != kvm_bindings::KVM_EXIT_INTERNAL_ERROR {
            return 0;
        }
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the active
        // member of the kvm_run exit union.
        unsafe { run.__bindgen_anon_1.internal.suberror }
    }

    /// Lets the kick signal reach this vCPU; call on the thread that runs it.
    pub fn enable_kicks(&mut self) {
        let run: *mut kvm_run = self.fd.get_kvm_run();
        KICK_RUN.with(|cell| cell.set(run));
    }

    /// Forgets a kick already taken: clears `immediate_exit`. The caller then checks why it
    /// would be kicked (e.g. the end of a time window) before the next [`Vcpu::run`]; a kick
    /// after this call makes that run return at once.
    pub fn clear_kick(&mut self) {
        self.fd.set_kvm_immediate_exit(0);
    }

    /// Enters the guest until the next exit.
    pub fn run(&mut self) -> Result<VcpuExit<'_>, VcpuError> {
        use kvm_ioctls::VcpuExit as K;
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                return Ok(VcpuExit::Interrupted)
            }
            Err(e) => return Err(VcpuError::Run(e)),
        };
        Ok(match exit {
            K::IoIn(port, data) => VcpuExit::IoIn(port, data),
            K::IoOut(port, data) => VcpuExit::IoOut(port, data),
            K::MmioRead(addr, data) => VcpuExit::MmioRead(addr, data),
            K::MmioWrite(addr, data) => VcpuExit::MmioWrite(addr, data),
            K::Hlt => VcpuExit::Hlt,
            K::Shutdown => VcpuExit::Shutdown,
            K::Intr => VcpuExit::Interrupted,
            K::FailEntry(reason, _) => VcpuExit::FailEntry(reason),
            K::SystemEvent(KVM_SYSTEM_EVENT_RESET, _) => VcpuExit::SystemReset,
            K::SystemEvent(KVM_SYSTEM_EVENT_SHUTDOWN, _) => VcpuExit::SystemPowerOff,
            K::InternalError => VcpuExit::InternalError,
            other => VcpuExit::Other(format!("{other:?}")),
        })
    }
}
