//! A partition's KVM virtual machine: the VM file descriptor, its in-kernel interrupt
//! controllers and PIT, and its guest memory slots.

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::vcpu::{Vcpu, VcpuError};
use crate::x86_64::layout::KVM_TSS_ADDR;
use crate::x86_64::loader::BootSetup;
use crate::GuestMemory;

/// Errors creating or wiring a VM.
/// The x86 MSI address window: writes to 0xFEEx_xxxx are interrupt messages (Intel SDM
/// vol. 3A §11.11.1).
const MSI_ADDRESS_BASE: u32 = 0xFEE0_0000;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm")]
    OpenKvm(#[source] kvm_ioctls::Error),
    /// KVM_CREATE_VM failed.
    #[error("cannot create the KVM virtual machine")]
    CreateVm(#[source] kvm_ioctls::Error),
    /// KVM_SET_TSS_ADDR failed.
    #[error("cannot set the TSS address")]
    SetTssAddress(#[source] kvm_ioctls::Error),
    /// KVM_CREATE_IRQCHIP failed.
    #[error("cannot create the in-kernel interrupt controllers")]
    CreateIrqChip(#[source] kvm_ioctls::Error),
    /// KVM_CREATE_PIT2 failed.
    #[error("cannot create the in-kernel PIT")]
    CreatePit(#[source] kvm_ioctls::Error),
    /// KVM_SET_USER_MEMORY_REGION failed.
    #[error("cannot map guest memory slot {0} into the VM")]
    MapRegion(u32, #[source] kvm_ioctls::Error),
    /// KVM_IRQFD failed.
    #[error("cannot register an irqfd for GSI {0}")]
    RegisterIrqfd(u32, #[source] kvm_ioctls::Error),
    /// KVM_SIGNAL_MSI failed.
    #[error("cannot raise an interrupt")]
    SignalMsi(#[source] kvm_ioctls::Error),
    /// KVM_IOEVENTFD failed.
    #[error("cannot register an ioeventfd at MMIO address {0:#x}")]
    RegisterIoevent(u64, #[source] kvm_ioctls::Error),
    /// Creating a vCPU failed.
    #[error("cannot create vCPU {0}")]
    CreateVcpu(u8, #[source] VcpuError),
    /// A required KVM capability is missing.
    #[error("KVM lacks the capability {0}")]
    MissingCapability(&'static str),
    /// KVM_ENABLE_CAP failed.
    #[error("cannot enable {0}")]
    EnableCap(&'static str, #[source] kvm_ioctls::Error),
}

/// How the vCPUs of a VM wait when their guest halts (before any vCPU is created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltMode {
    /// HLT (and PAUSE) run in the guest without exiting to KVM: the vCPU never leaves its
    /// host CPU (`KVM_CAP_X86_DISABLE_EXITS`).
    NoExit,
    /// KVM polls for a wake-up this long before it puts the vCPU thread to sleep
    /// (`KVM_CAP_HALT_POLL`).
    Poll { ns: u32 },
}

/// The VM.
pub struct Vm {
    kvm: Kvm,
    fd: VmFd,
    memory: GuestMemory,
}

impl Vm {
    /// Creates a VM with KVM's IOAPIC/PIC/LAPICs and PIT, and maps `memory` into it.
    pub fn new(memory: GuestMemory) -> Result<Vm, VmError> {
        let kvm = Kvm::new().map_err(VmError::OpenKvm)?;
        for (cap, name) in [
            (kvm_ioctls::Cap::Irqchip, "KVM_CAP_IRQCHIP"),
            (kvm_ioctls::Cap::Irqfd, "KVM_CAP_IRQFD"),
            (kvm_ioctls::Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(VmError::MissingCapability(name));
            }
        }
        let fd = kvm.create_vm().map_err(VmError::CreateVm)?;
        fd.set_tss_address(KVM_TSS_ADDR as usize)
            .map_err(VmError::SetTssAddress)?;
        fd.create_irq_chip().map_err(VmError::CreateIrqChip)?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit).map_err(VmError::CreatePit)?;
        for (slot, region) in memory.iter().enumerate() {
            let slot = slot as u32;
            let host = memory
                .get_host_address(region.start_addr())
                .map_err(|_| VmError::MapRegion(slot, kvm_ioctls::Error::new(libc::EFAULT)))?;
            let kvm_region = kvm_userspace_memory_region {
                slot,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: the region is a live mapping owned by `memory`, which this `Vm` keeps
            // alive for as long as the VM (and so the slot) exists; slots do not overlap.
            unsafe { fd.set_user_memory_region(kvm_region) }
                .map_err(|e| VmError::MapRegion(slot, e))?;
        }
        Ok(Vm { kvm, fd, memory })
    }

    /// The guest memory.
    pub fn memory(&self) -> &GuestMemory {
        &self.memory
    }

    /// Signalling `evt` raises `gsi` (edge) in the in-kernel IOAPIC/PIC.
    pub fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> Result<(), VmError> {
        self.fd
            .register_irqfd(evt, gsi)
            .map_err(|e| VmError::RegisterIrqfd(gsi, e))
    }

    /// Raises `vector` on the local APIC whose ID is `apic_id` (an MSI: fixed delivery, edge,
    /// physical destination), from any thread. `Ok(false)` when the guest blocked it (e.g. the
    /// APIC is software-disabled).
    pub fn signal_msi(&self, apic_id: u8, vector: u8) -> Result<bool, VmError> {
        let msi = kvm_bindings::kvm_msi {
            // Intel SDM vol. 3A §11.11.1: 0xFEE in bits 31:20, destination ID in 19:12.
            address_lo: MSI_ADDRESS_BASE | (u32::from(apic_id) << 12),
            address_hi: 0,
            // §11.11.2: vector in bits 7:0; fixed delivery mode, edge trigger (all zero).
            data: u32::from(vector),
            ..Default::default()
        };
        self.fd
            .signal_msi(msi)
            .map(|delivered| delivered > 0)
            .map_err(VmError::SignalMsi)
    }

    /// A 32-bit guest write of `value` to MMIO address `addr` signals `evt` inside KVM, without
    /// an exit to this process (virtio queue notifications).
    pub fn register_mmio_ioevent(
        &self,
        evt: &EventFd,
        addr: u64,
        value: u32,
    ) -> Result<(), VmError> {
        self.fd
            .register_ioevent(evt, &kvm_ioctls::IoEventAddress::Mmio(addr), value)
            .map_err(|e| VmError::RegisterIoevent(addr, e))
    }

    /// Sets how the vCPUs wait on a guest halt; must be called before the first vCPU is
    /// created. Fails when KVM does not offer it (e.g. HLT exits cannot be disabled on every
    /// KVM; halt-polling per VM needs Linux 5.14).
    pub fn set_halt_mode(&self, mode: HaltMode) -> Result<(), VmError> {
        let (cap, name, arg) = match mode {
            HaltMode::NoExit => (
                kvm_bindings::KVM_CAP_X86_DISABLE_EXITS,
                "KVM_CAP_X86_DISABLE_EXITS",
                u64::from(
                    kvm_bindings::KVM_X86_DISABLE_EXITS_HLT
                        | kvm_bindings::KVM_X86_DISABLE_EXITS_PAUSE,
                ),
            ),
            HaltMode::Poll { ns } => (
                kvm_bindings::KVM_CAP_HALT_POLL,
                "KVM_CAP_HALT_POLL",
                u64::from(ns),
            ),
        };
        let supported = self.kvm.check_extension_raw(u64::from(cap));
        let wanted = if cap == kvm_bindings::KVM_CAP_X86_DISABLE_EXITS {
            (supported as u64 & arg) == arg
        } else {
            supported > 0
        };
        if !wanted {
            return Err(VmError::MissingCapability(name));
        }
        let mut enable = kvm_bindings::kvm_enable_cap {
            cap,
            ..Default::default()
        };
        enable.args[0] = arg;
        self.fd
            .enable_cap(&enable)
            .map_err(|e| VmError::EnableCap(name, e))
    }

    /// Creates and configures vCPU `index` of `count`. The boot vCPU (index 0) gets the entry
    /// state of `boot`; the others wait for the guest's INIT/SIPI.
    pub fn create_vcpu(&self, index: u8, count: u8, boot: &BootSetup) -> Result<Vcpu, VmError> {
        Vcpu::new(&self.kvm, &self.fd, index, count, boot)
            .map_err(|e| VmError::CreateVcpu(index, e))
    }
}
