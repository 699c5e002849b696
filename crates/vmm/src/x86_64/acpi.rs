//! ACPI tables describing the partition's platform to the guest (ACPI 6.4): a hardware-reduced
//! FADT with the sleep-control and reset registers of the power controller, a MADT with one
//! local APIC per vCPU and KVM's IOAPIC, and a DSDT with `\_S5`, the COM1 UART (and COM2 when
//! the partition has a uart link), the virtio-mmio devices and the pvpanic device.
//!
//! Stock Debian kernels find the RSDP at [`ACPI_START`] (where they scan for it, and through
//! `boot_params.acpi_rsdp_addr` or the PVH `rsdp_paddr`). virtio-mmio devices are `_HID`
//! `LNRO0005`, the pvpanic device `QEMU0001`.

use acpi_tables::{aml, fadt, gas, rsdp::Rsdp, sdt::Sdt, xsdt::XSDT, Aml};
use vm_memory::{Bytes, GuestAddress};

use super::layout::{ACPI_END, ACPI_START, IOAPIC_ADDR, LAPIC_ADDR};
use crate::GuestMemory;

const OEM_ID: [u8; 6] = *b"BLKHD ";
const OEM_TABLE_ID: [u8; 8] = *b"BULKHEAD";
const OEM_REVISION: u32 = 1;

/// What the tables describe.
#[derive(Debug, Clone)]
pub struct AcpiPlatform {
    /// Number of vCPUs (APIC IDs 0..vcpus).
    pub vcpus: u8,
    /// Power controller ports: sleep control, sleep status, reset.
    pub sleep_control_port: u16,
    /// Sleep status register port.
    pub sleep_status_port: u16,
    /// Reset register port.
    pub reset_port: u16,
    /// Value written to the reset register to reset.
    pub reset_value: u8,
    /// `SLP_TYP` value of S5.
    pub s5_sleep_type: u8,
    /// COM1 base port and its interrupt.
    pub com1: (u16, u32),
    /// COM2 base port and its interrupt, if the partition has one (a uart link).
    pub com2: Option<(u16, u32)>,
    /// virtio-mmio devices: (register window base, window size, GSI).
    pub virtio_mmio: Vec<(u64, u64, u32)>,
    /// The pvpanic device's I/O port (`_HID` `QEMU0001`), if the partition has one.
    pub pvpanic_port: Option<u16>,
}

/// Errors writing ACPI tables.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    /// The tables do not fit their region.
    #[error("ACPI tables need {0} bytes, more than their region holds")]
    TooLarge(usize),
    /// Guest memory refused the write.
    #[error("cannot write ACPI tables to guest memory")]
    Write(#[source] vm_memory::GuestMemoryError),
}

/// MADT interrupt-controller structure types (ACPI 6.4 §5.2.12).
const MADT_LOCAL_APIC: u8 = 0;
const MADT_IO_APIC: u8 = 1;
/// MADT flag: the platform also has dual 8259 PICs (KVM's in-kernel PIC).
const MADT_PCAT_COMPAT: u32 = 1;
/// FADT IA-PC boot architecture flags (ACPI 6.4 §5.2.9.3): no VGA, no CMOS RTC.
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

/// Writes the tables into guest memory; returns the RSDP's address.
pub fn write_tables(mem: &GuestMemory, platform: &AcpiPlatform) -> Result<GuestAddress, AcpiError> {
    let mut blob = TableBlob::default();
    let rsdp_off = blob.reserve(Rsdp::len());
    let dsdt = blob.push(&dsdt(platform));
    let fadt = blob.push_aml(&fadt(platform, ACPI_START + dsdt));
    let madt = blob.push(&madt(platform.vcpus));
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(ACPI_START + fadt);
    xsdt.add_entry(ACPI_START + madt);
    let xsdt = blob.push_aml(&xsdt);
    let mut rsdp = Vec::new();
    Rsdp::new(OEM_ID, ACPI_START + xsdt).to_aml_bytes(&mut rsdp);
    blob.bytes[rsdp_off..rsdp_off + rsdp.len()].copy_from_slice(&rsdp);

    if blob.bytes.len() as u64 > ACPI_END - ACPI_START {
        return Err(AcpiError::TooLarge(blob.bytes.len()));
    }
    mem.write_slice(&blob.bytes, GuestAddress(ACPI_START))
        .map_err(AcpiError::Write)?;
    Ok(GuestAddress(ACPI_START))
}

/// Tables laid out one after the other, 16-byte aligned.
#[derive(Default)]
struct TableBlob {
    bytes: Vec<u8>,
}

impl TableBlob {
    fn reserve(&mut self, len: usize) -> usize {
        let off = self.bytes.len();
        self.bytes.resize(off + len, 0);
        self.bytes.resize(self.bytes.len().next_multiple_of(16), 0);
        off
    }

    fn push(&mut self, sdt: &Sdt) -> u64 {
        let off = self.reserve(sdt.len());
        self.bytes[off..off + sdt.len()].copy_from_slice(sdt.as_slice());
        off as u64
    }

    fn push_aml(&mut self, table: &dyn Aml) -> u64 {
        let mut bytes = Vec::new();
        table.to_aml_bytes(&mut bytes);
        let off = self.reserve(bytes.len());
        self.bytes[off..off + bytes.len()].copy_from_slice(&bytes);
        off as u64
    }
}

fn io_register(port: u16) -> gas::GAS {
    gas::GAS::new(
        gas::AddressSpace::SystemIo,
        8,
        0,
        gas::AccessSize::ByteAccess,
        u64::from(port),
    )
}

fn fadt(p: &AcpiPlatform, dsdt_addr: u64) -> fadt::FADT {
    let mut b = fadt::FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(fadt::Flags::HwReducedAcpi)
        .flag(fadt::Flags::ResetRegSup)
        .flag(fadt::Flags::PwrButton)
        .flag(fadt::Flags::SlpButton);
    b.sleep_control_reg = io_register(p.sleep_control_port);
    b.sleep_status_reg = io_register(p.sleep_status_port);
    b.reset_reg = io_register(p.reset_port);
    b.reset_value = p.reset_value;
    b.iapc_boot_arch = (IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT).into();
    b.hypervisor_vendor_identity = u64::from_le_bytes(*b"BULKHEAD").into();
    b.finalize()
}

fn madt(vcpus: u8) -> Sdt {
    let mut madt = Sdt::new(*b"APIC", 44, 5, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    madt.write_u32(36, LAPIC_ADDR);
    madt.write_u32(40, MADT_PCAT_COMPAT);
    for id in 0..vcpus {
        // Type, length, ACPI processor UID, APIC ID, flags (enabled).
        madt.append_slice(&[MADT_LOCAL_APIC, 8, id, id, 1, 0, 0, 0]);
    }
    // Type, length, IOAPIC ID (after the vCPUs'), reserved, address, GSI base 0.
    let mut ioapic = vec![MADT_IO_APIC, 12, vcpus, 0];
    ioapic.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    ioapic.extend_from_slice(&0u32.to_le_bytes());
    madt.append_slice(&ioapic);
    madt.update_checksum();
    madt
}

fn dsdt(p: &AcpiPlatform) -> Sdt {
    let mut body = Vec::new();
    let s5_type = p.s5_sleep_type;
    aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(vec![&s5_type, &s5_type, &0u8, &0u8]),
    )
    .to_aml_bytes(&mut body);
    let com1 = SerialAml {
        name: "COM1",
        uid: 0,
        port: p.com1,
    };
    let com2 = p.com2.map(|port| SerialAml {
        name: "COM2",
        uid: 1,
        port,
    });
    let virtio: Vec<VirtioMmioAml> = p
        .virtio_mmio
        .iter()
        .enumerate()
        .map(|(i, d)| VirtioMmioAml::new(i, *d))
        .collect();
    let pvpanic = p.pvpanic_port.map(PvPanicAml);
    let mut devices: Vec<&dyn Aml> = vec![&com1];
    devices.extend(com2.as_ref().map(|d| d as &dyn Aml));
    devices.extend(virtio.iter().map(|d| d as &dyn Aml));
    devices.extend(pvpanic.as_ref().map(|d| d as &dyn Aml));
    aml::Scope::new("_SB_".into(), devices).to_aml_bytes(&mut body);
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    dsdt.append_slice(&body);
    dsdt.update_checksum();
    dsdt
}

/// A 16550 UART as Linux's `8250_pnp` driver finds it: `_HID` `PNP0501`, its eight ports and
/// its interrupt (edge, active high: an irqfd).
struct SerialAml {
    name: &'static str,
    uid: u8,
    /// Base port and interrupt.
    port: (u16, u32),
}

impl Aml for SerialAml {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        let (base, irq) = self.port;
        let io = aml::IO::new(base, base, 1, 8);
        let int = aml::Interrupt::new(true, true, false, false, irq);
        let crs = aml::ResourceTemplate::new(vec![&io, &int]);
        let hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501"));
        let uid = aml::Name::new("_UID".into(), &self.uid);
        let crs = aml::Name::new("_CRS".into(), &crs);
        aml::Device::new(self.name.into(), vec![&hid, &uid, &crs]).to_aml_bytes(sink);
    }
}

/// The pvpanic device as Linux's `pvpanic-mmio` driver finds it: `_HID` `QEMU0001` with one
/// I/O port (QEMU's `docs/specs/pvpanic.rst`).
struct PvPanicAml(u16);

impl Aml for PvPanicAml {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        let io = aml::IO::new(self.0, self.0, 1, 1);
        let crs = aml::ResourceTemplate::new(vec![&io]);
        let hid = aml::Name::new("_HID".into(), &"QEMU0001");
        let crs = aml::Name::new("_CRS".into(), &crs);
        aml::Device::new("PEVT".into(), vec![&hid, &crs]).to_aml_bytes(sink);
    }
}

/// A virtio-mmio device as Linux's `virtio_mmio` driver finds it through ACPI: `_HID`
/// `LNRO0005`, its register window and its interrupt (edge, active high: an irqfd).
struct VirtioMmioAml {
    name: String,
    uid: u32,
    base: u32,
    size: u32,
    gsi: u32,
}

impl VirtioMmioAml {
    fn new(index: usize, (base, size, gsi): (u64, u64, u32)) -> Self {
        VirtioMmioAml {
            name: format!("VR{index:02X}"),
            uid: index as u32,
            base: base as u32,
            size: size as u32,
            gsi,
        }
    }
}

impl Aml for VirtioMmioAml {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        let mem = aml::Memory32Fixed::new(true, self.base, self.size);
        let int = aml::Interrupt::new(true, true, false, false, self.gsi);
        let crs = aml::ResourceTemplate::new(vec![&mem, &int]);
        let hid = aml::Name::new("_HID".into(), &"LNRO0005");
        let uid = aml::Name::new("_UID".into(), &self.uid);
        let crs = aml::Name::new("_CRS".into(), &crs);
        aml::Device::new(self.name.as_str().into(), vec![&hid, &uid, &crs]).to_aml_bytes(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> AcpiPlatform {
        AcpiPlatform {
            vcpus: 2,
            sleep_control_port: 0x600,
            sleep_status_port: 0x601,
            reset_port: 0x602,
            reset_value: 1,
            s5_sleep_type: 5,
            com1: (0x3f8, 4),
            com2: Some((0x2f8, 3)),
            virtio_mmio: vec![(0xd000_0000, 0x1000, 5), (0xd000_1000, 0x1000, 6)],
            pvpanic_port: Some(0x505),
        }
    }

    fn checksum_ok(bytes: &[u8]) -> bool {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
    }

    #[test]
    fn madt_lists_one_enabled_local_apic_per_vcpu_and_the_ioapic() {
        let madt = madt(2);
        let bytes = madt.as_slice();

        assert_eq!(bytes.len(), 44 + 2 * 8 + 12);
        assert_eq!(&bytes[44..52], &[0, 8, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&bytes[52..60], &[0, 8, 1, 1, 1, 0, 0, 0]);
        assert_eq!(bytes[60], MADT_IO_APIC);
        assert!(checksum_ok(bytes));
    }

    #[test]
    fn tables_are_written_with_valid_checksums_and_linked_from_the_rsdp() {
        let mem = crate::create_guest_memory(2, false, false).unwrap();

        let rsdp = write_tables(&mem, &platform()).unwrap();
        let mut head = [0u8; 36];
        mem.read_slice(&mut head, rsdp).unwrap();
        let xsdt_addr = u64::from_le_bytes(head[24..32].try_into().unwrap());
        let mut xsdt_head = [0u8; 36];
        mem.read_slice(&mut xsdt_head, GuestAddress(xsdt_addr))
            .unwrap();

        assert_eq!(&head[..8], b"RSD PTR ");
        assert!(checksum_ok(&head[..20]));
        assert!(checksum_ok(&head));
        assert_eq!(&xsdt_head[..4], b"XSDT");
        assert_eq!(
            u32::from_le_bytes(xsdt_head[4..8].try_into().unwrap()),
            36 + 2 * 8
        );
    }

    #[test]
    fn dsdt_declares_s5_com1_com2_virtio_mmio_and_pvpanic_devices() {
        let dsdt = dsdt(&platform());
        let bytes = dsdt.as_slice();

        assert!(bytes.windows(8).any(|w| w == b"QEMU0001"));
        assert!(bytes.windows(4).any(|w| w == b"_S5_"));
        assert!(bytes.windows(4).any(|w| w == b"COM1"));
        assert!(bytes.windows(4).any(|w| w == b"COM2"));
        assert!(bytes.windows(8).any(|w| w == b"LNRO0005"));
        assert!(bytes.windows(4).any(|w| w == b"VR01"));
        assert!(checksum_ok(bytes));
    }
}
