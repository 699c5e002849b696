//! The initial state of an x86 vCPU: CPUID as the guest should see it, the boot GDT and page
//! tables, and the registers each boot protocol enters with.
//!
//! Boot protocols (see `loader`):
//! - Linux 64-bit boot protocol (`Documentation/arch/x86/boot.rst`, "64-bit Boot Protocol"):
//!   long mode, identity-mapped paging, `RSI` = zero page.
//! - PVH (Xen `docs/misc/pvh.pandoc`): 32-bit protected mode, paging off, `EBX` = start info.
//! - bulkhead native (`docs/pv-abi.md`): long mode like Linux's, `RSI` = `RBX` = start info.

use kvm_bindings::{kvm_fpu, kvm_lapic_state, kvm_regs, kvm_segment, kvm_sregs, CpuId};
use vm_memory::{Bytes, GuestAddress};

use super::layout::{BOOT_STACK_TOP, GDT_ADDR, IDT_ADDR, PDPT_ADDR, PD_ADDR, PML4_ADDR};
use crate::GuestMemory;

/// CR0 bits (Intel SDM vol. 3, §2.5).
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
/// CR4.PAE.
const CR4_PAE: u64 = 1 << 5;
/// EFER bits: long mode enable / active.
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// Page-table entry bits: present, writable, page size (2 MiB).
const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_PS: u64 = 1 << 7;

/// CPUID.1:ECX bit 31: running under a hypervisor.
const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.1:ECX bit 24: TSC-deadline timer mode of the local APIC.
const CPUID1_ECX_TSC_DEADLINE: u32 = 1 << 24;

/// How a vCPU enters the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// 64-bit long mode, paging on: `RSI` = `info`, and `RBX` = `info` too.
    Long {
        /// Address passed in `RSI`/`RBX`.
        info: GuestAddress,
        /// Whether `RSP` gets the boot stack (Linux expects one).
        with_stack: bool,
    },
    /// 32-bit protected mode, paging off: `EBX` = `info` (PVH).
    Protected32 {
        /// Address passed in `EBX`.
        info: GuestAddress,
    },
}

/// Adjusts the host-supported CPUID for vCPU `index` of `count`: APIC IDs, topology leaves,
/// the hypervisor bit, the TSC-deadline timer when KVM emulates it (`tsc_deadline`: KVM has
/// `KVM_CAP_TSC_DEADLINE_TIMER`, which `KVM_GET_SUPPORTED_CPUID` does not report by itself),
/// and an XSAVE leaf consistent with the features advertised.
pub fn adjust_cpuid(cpuid: &mut CpuId, index: u8, count: u8, tsc_deadline: bool) {
    let xsave_features = xsave_components_advertised(cpuid);
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package.
                e.ebx = (e.ebx & 0x0000_ffff) | (u32::from(index) << 24) | (u32::from(count) << 16);
                e.ecx |= CPUID1_ECX_HYPERVISOR;
                if tsc_deadline {
                    e.ecx |= CPUID1_ECX_TSC_DEADLINE;
                }
                if count > 1 {
                    e.edx |= 1 << 28; // HTT: the package field above is valid.
                }
            }
            // Extended topology: x2APIC ID of this vCPU in EDX, for every sub-leaf.
            0xb | 0x1f => e.edx = u32::from(index),
            // XSAVE user components (Intel SDM vol. 1, §13.2): offer only those whose
            // feature flag is advertised, or the guest finds an inconsistent XSAVE layout.
            0xd if e.index == 0 => e.eax &= xsave_features,
            0xd if (2..32).contains(&e.index) && xsave_features & (1 << e.index) == 0 => {
                (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0);
            }
            _ => {}
        }
    }
    let max_size = cpuid
        .as_slice()
        .iter()
        .filter(|e| {
            e.function == 0xd && (2..32).contains(&e.index) && xsave_features & (1 << e.index) != 0
        })
        .map(|e| e.ebx + e.eax)
        .fold(XSAVE_LEGACY_AND_HEADER, u32::max);
    for e in cpuid
        .as_mut_slice()
        .iter_mut()
        .filter(|e| e.function == 0xd && e.index == 0)
    {
        (e.ebx, e.ecx) = (max_size, max_size);
    }
}

/// Legacy XSAVE area (512) plus XSAVE header (64).
const XSAVE_LEGACY_AND_HEADER: u32 = 576;

/// XCR0 bits whose CPUID feature flag is present: x87 and SSE always; AVX (1.ECX[28]);
/// MPX (7.EBX[14]); AVX-512 (7.EBX[16]); PKRU (7.ECX[3]); AMX (7.EDX[24]).
fn xsave_components_advertised(cpuid: &CpuId) -> u32 {
    let leaf = |function: u32| {
        cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == 0)
            .copied()
    };
    let (l1, l7) = (leaf(1).unwrap_or_default(), leaf(7).unwrap_or_default());
    let mut mask = 0b11;
    for (present, bits) in [
        (l1.ecx & (1 << 28) != 0, 1 << 2),
        (l7.ebx & (1 << 14) != 0, 0b11 << 3),
        (l7.ebx & (1 << 16) != 0, 0b111 << 5),
        (l7.ecx & (1 << 3) != 0, 1 << 9),
        (l7.edx & (1 << 24) != 0, 0b11 << 17),
    ] {
        if present {
            mask |= bits;
        }
    }
    mask
}

/// Whether the CPUID advertises the TSC-deadline timer.
pub fn has_tsc_deadline(cpuid: &CpuId) -> bool {
    cpuid
        .as_slice()
        .iter()
        .any(|e| e.function == 1 && e.ecx & CPUID1_ECX_TSC_DEADLINE != 0)
}

/// Writes the boot GDT, an empty IDT, and identity page tables for the first 4 GiB.
pub fn write_boot_structures(mem: &GuestMemory) -> Result<(), vm_memory::GuestMemoryError> {
    for (i, entry) in gdt().iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_ADDR + 8 * i as u64))?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_ADDR))?;
    mem.write_obj(PDPT_ADDR | PTE_P | PTE_RW, GuestAddress(PML4_ADDR))?;
    for pd in 0..4u64 {
        let pd_addr = PD_ADDR + pd * 0x1000;
        mem.write_obj(pd_addr | PTE_P | PTE_RW, GuestAddress(PDPT_ADDR + pd * 8))?;
        for i in 0..512u64 {
            let phys = (pd * 512 + i) << 21;
            mem.write_obj(
                phys | PTE_P | PTE_RW | PTE_PS,
                GuestAddress(pd_addr + i * 8),
            )?;
        }
    }
    Ok(())
}

/// GDT selectors of the boot GDT.
const CODE64_SEL: u16 = 0x08;
const DATA_SEL: u16 = 0x10;
const CODE32_SEL: u16 = 0x18;
const TSS_SEL: u16 = 0x20;

/// Boot GDT: null, 64-bit code, data, 32-bit code, TSS.
fn gdt() -> [u64; 5] {
    [
        0,
        gdt_entry(0xa09b, 0, 0xfffff),
        gdt_entry(0xc093, 0, 0xfffff),
        gdt_entry(0xc09b, 0, 0xfffff),
        gdt_entry(0x808b, 0, 0xfffff),
    ]
}

fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((u64::from(base) & 0xff00_0000) << 32)
        | ((u64::from(flags) & 0xf0ff) << 40)
        | ((u64::from(limit) & 0x000f_0000) << 32)
        | ((u64::from(base) & 0x00ff_ffff) << 16)
        | (u64::from(limit) & 0x0000_ffff)
}

fn segment(entry: u64, selector: u16) -> kvm_segment {
    let flags = ((entry >> 40) & 0xf0ff) as u16;
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: (flags & 0xf) as u8,
        present: ((flags >> 7) & 1) as u8,
        dpl: ((flags >> 5) & 3) as u8,
        db: ((flags >> 14) & 1) as u8,
        s: ((flags >> 4) & 1) as u8,
        l: ((flags >> 13) & 1) as u8,
        g: ((flags >> 15) & 1) as u8,
        avl: ((flags >> 12) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// Special registers for `mode`, starting from the vCPU's current ones.
pub fn boot_sregs(mut sregs: kvm_sregs, mode: EntryMode) -> kvm_sregs {
    let gdt = gdt();
    let code_sel = match mode {
        EntryMode::Long { .. } => CODE64_SEL,
        EntryMode::Protected32 { .. } => CODE32_SEL,
    };
    let data = segment(gdt[usize::from(DATA_SEL / 8)], DATA_SEL);
    sregs.cs = segment(gdt[usize::from(code_sel / 8)], code_sel);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(gdt[usize::from(TSS_SEL / 8)], TSS_SEL);
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (gdt.len() * 8 - 1) as u16;
    sregs.idt.base = IDT_ADDR;
    sregs.idt.limit = 0;
    match mode {
        EntryMode::Long { .. } => {
            sregs.cr3 = PML4_ADDR;
            sregs.cr4 |= CR4_PAE;
            sregs.cr0 |= CR0_PE | CR0_ET | CR0_PG;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
        EntryMode::Protected32 { .. } => {
            sregs.cr0 = (sregs.cr0 | CR0_PE | CR0_ET) & !CR0_PG;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
    }
    sregs
}

/// General registers for entry at `entry` in `mode`.
pub fn boot_regs(entry: GuestAddress, mode: EntryMode) -> kvm_regs {
    let mut regs = kvm_regs {
        rflags: 0x2,
        rip: entry.0,
        ..Default::default()
    };
    match mode {
        EntryMode::Long { info, with_stack } => {
            regs.rsi = info.0;
            regs.rbx = info.0;
            if with_stack {
                regs.rsp = BOOT_STACK_TOP;
                regs.rbp = BOOT_STACK_TOP;
            }
        }
        EntryMode::Protected32 { info } => regs.rbx = info.0,
    }
    regs
}

/// LVT LINT0 and LINT1 register offsets in the local APIC page (Intel SDM vol. 3, §11.5.1).
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
/// LVT delivery modes (bits 10:8).
const APIC_MODE_EXTINT: u32 = 0b111 << 8;
const APIC_MODE_NMI: u32 = 0b100 << 8;

/// Wires LINT0 to the PIC (ExtINT) and LINT1 to NMI, as PC firmware leaves them, so a guest
/// that uses the legacy PIC through the local APIC gets its interrupts.
pub fn set_lint_pins(lapic: &mut kvm_lapic_state) {
    for (offset, mode) in [
        (APIC_LVT_LINT0, APIC_MODE_EXTINT),
        (APIC_LVT_LINT1, APIC_MODE_NMI),
    ] {
        let reg = &mut lapic.regs[offset..offset + 4];
        let bytes: [u8; 4] = [reg[0] as u8, reg[1] as u8, reg[2] as u8, reg[3] as u8];
        let value = (u32::from_le_bytes(bytes) & !(0b111 << 8)) | mode;
        for (dst, src) in reg.iter_mut().zip(value.to_le_bytes()) {
            *dst = src as _;
        }
    }
}

/// x87/SSE state at reset: FCW 0x37f, MXCSR 0x1f80.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_entry_enables_paging_and_passes_info_in_rsi_and_rbx() {
        let mode = EntryMode::Long {
            info: GuestAddress(0x6000),
            with_stack: false,
        };

        let sregs = boot_sregs(kvm_sregs::default(), mode);
        let regs = boot_regs(GuestAddress(0x20_0000), mode);

        assert_eq!(sregs.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(sregs.cs.l, 1);
        assert_eq!(
            (regs.rip, regs.rsi, regs.rbx, regs.rsp),
            (0x20_0000, 0x6000, 0x6000, 0)
        );
    }

    #[test]
    fn pvh_entry_is_flat_32_bit_protected_mode_without_paging() {
        let mode = EntryMode::Protected32 {
            info: GuestAddress(0x6000),
        };

        let sregs = boot_sregs(kvm_sregs::default(), mode);
        let regs = boot_regs(GuestAddress(0x100_0000), mode);

        assert_eq!(sregs.cr0 & (CR0_PE | CR0_PG), CR0_PE);
        assert_eq!((sregs.cs.db, sregs.cs.l, sregs.efer), (1, 0, 0));
        assert_eq!(regs.rbx, 0x6000);
    }

    fn entry(function: u32, index: u32, regs: [u32; 4]) -> kvm_bindings::kvm_cpuid_entry2 {
        let [eax, ebx, ecx, edx] = regs;
        kvm_bindings::kvm_cpuid_entry2 {
            function,
            index,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        }
    }

    #[test]
    fn xsave_leaf_offers_only_components_whose_features_are_advertised() {
        let mut cpuid = CpuId::from_entries(&[
            entry(1, 0, [0, 0, 0, 0]),      // no AVX
            entry(7, 0, [0, 0, 1 << 3, 0]), // PKU
            entry(0xd, 0, [0x207, 0x240, 0xa88, 0]),
            entry(0xd, 2, [256, 576, 0, 0]),
            entry(0xd, 9, [8, 0xa80, 0, 0]),
        ])
        .unwrap();

        adjust_cpuid(&mut cpuid, 0, 1, false);
        let leaf = |i: u32| {
            *cpuid
                .as_slice()
                .iter()
                .find(|e| e.function == 0xd && e.index == i)
                .unwrap()
        };

        assert_eq!(leaf(0).eax, 0x203);
        assert_eq!((leaf(0).ebx, leaf(0).ecx), (0xa88, 0xa88));
        assert_eq!(leaf(2).eax, 0);
    }

    #[test]
    fn tsc_deadline_is_advertised_when_kvm_emulates_it() {
        let mut cpuid = CpuId::from_entries(&[entry(1, 0, [0, 0, 0, 0])]).unwrap();

        adjust_cpuid(&mut cpuid, 1, 2, true);

        assert!(has_tsc_deadline(&cpuid));
        assert_eq!(cpuid.as_slice()[0].ebx >> 24, 1);
    }

    #[test]
    fn page_tables_identity_map_the_lapic() {
        let mem = crate::create_guest_memory(2, false, false).unwrap();

        write_boot_structures(&mem).unwrap();
        let pd3_entry: u64 = mem
            .read_obj(GuestAddress(PD_ADDR + 3 * 0x1000 + 503 * 8))
            .unwrap();

        assert_eq!(pd3_entry & !0xfff, 0xfee0_0000);
    }
}
