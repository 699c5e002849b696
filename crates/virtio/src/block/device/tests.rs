use super::*;
use crate::rng::Rng;
use crate::testing::{
    activate, desc, mem, raised, read32, reg, status, transport, Driver, TempImage, F_INDIRECT,
    F_NEXT, F_WRITE, MEM_SIZE,
};
use crate::{Fault, MmioTransport, FEATURE_INDIRECT_DESC, FEATURE_VERSION_1};
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};
use vm_memory::{Bytes, GuestAddress};

const HEADER: u64 = 0x10000;
const DATA: u64 = 0x20000;
const STATUS: u64 = 0x30000;
const DISK_SIZE: usize = 64 * 1024;
const ALL_BLOCK_FEATURES: u64 = FEATURE_VERSION_1
    | 1 << VIRTIO_BLK_F_FLUSH
    | 1 << VIRTIO_BLK_F_DISCARD
    | 1 << VIRTIO_BLK_F_WRITE_ZEROES;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A request header at `HEADER`, and 0xff in the status byte at `STATUS`.
fn header(m: &GuestMemoryMmap, request_type: u32, sector: u64) {
    header_at(m, HEADER, request_type, sector);
    m.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
}

fn header_at(m: &GuestMemoryMmap, at: u64, request_type: u32, sector: u64) {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&request_type.to_le_bytes());
    h[8..].copy_from_slice(&sector.to_le_bytes());
    m.write_slice(&h, GuestAddress(at)).unwrap();
}

fn segment(m: &GuestMemoryMmap, sector: u64, num_sectors: u32, flags: u32) {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&sector.to_le_bytes());
    s[8..12].copy_from_slice(&num_sectors.to_le_bytes());
    s[12..].copy_from_slice(&flags.to_le_bytes());
    m.write_slice(&s, GuestAddress(DATA)).unwrap();
}

fn status_byte(m: &GuestMemoryMmap) -> u32 {
    u32::from(m.read_obj::<u8>(GuestAddress(STATUS)).unwrap())
}

fn active_block<'a>(
    m: &'a GuestMemoryMmap,
    image: &TempImage,
    read_only: bool,
    features: u64,
) -> (Block, Driver<'a>) {
    let driver = Driver::new(m, 16);
    let mut block = Block::new(&image.path, read_only, "disk0").unwrap();
    block
        .activate(m.clone(), vec![driver.queue()], features)
        .unwrap();
    (block, driver)
}

fn metric(b: &Block, name: &str) -> u64 {
    b.metrics().into_iter().find(|(n, _)| *n == name).unwrap().1
}

mod workers;

#[test]
fn read_request_copies_the_sectors_into_guest_buffers() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_IN, 2);
    driver.add(&[
        (HEADER, 16, 0),
        (DATA, 512, F_WRITE),
        (DATA + 512, 512, F_WRITE),
        (STATUS, 1, F_WRITE),
    ]);

    let notify = block.process_queue(0).unwrap();

    assert!(notify);
    assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
    assert_eq!(driver.used_elem(0), (0, 1025));
    let mut data = vec![0u8; 1024];
    m.read_slice(&mut data, GuestAddress(DATA)).unwrap();
    assert_eq!(data, image.contents()[1024..2048]);
}

#[test]
fn write_request_reaches_the_image() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_OUT, 1);
    m.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    driver.add(&[(HEADER, 16, 0), (DATA, 512, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
    assert_eq!(driver.used_elem(0), (0, 1));
    let contents = image.contents();
    assert_eq!(contents[512..1024], [0xab; 512]);
    assert_eq!(contents[1024], 0);
    assert_eq!(metric(&block, "bytes_written"), 512);
}

#[test]
fn request_whose_header_spans_two_descriptors_is_served() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_IN, 0);
    driver.add(&[
        (HEADER, 4, 0),
        (HEADER + 4, 12, 0),
        (DATA, 512, F_WRITE),
        (STATUS, 1, F_WRITE),
    ]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
}

#[test]
fn flush_after_a_write_succeeds() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_FLUSH, 0);
    driver.add(&[(HEADER, 16, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
    assert_eq!(metric(&block, "requests_flush"), 1);
}

#[test]
fn get_id_returns_the_configured_id_zero_padded() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_GET_ID, 0);
    m.write_slice(&[0xff; 20], GuestAddress(DATA)).unwrap();
    driver.add(&[(HEADER, 16, 0), (DATA, 20, F_WRITE), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    let id: [u8; 20] = m.read_obj(GuestAddress(DATA)).unwrap();
    assert_eq!(&id[..6], b"disk0\0");
    assert_eq!(id[6..], [0; 14]);
    assert_eq!(driver.used_elem(0), (0, 21));
}

#[test]
fn write_zeroes_makes_the_range_read_as_zeros() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0x55);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_WRITE_ZEROES, 8);
    segment(&m, 8, 16, 0);
    driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
    let contents = image.contents();
    assert_eq!(contents.len(), DISK_SIZE);
    assert!(contents[4096..12288].iter().all(|&b| b == 0));
    assert_eq!(contents[4095], 0x55);
    assert_eq!(contents[12288], 0x55);
}

#[test]
fn discard_frees_the_range_and_keeps_the_size() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0x55);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_DISCARD, 0);
    segment(&m, 8, 8, 0);
    driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
    assert_eq!(image.contents().len(), DISK_SIZE);
}

#[test]
fn discard_with_the_unmap_flag_is_unsupported() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0x55);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_DISCARD, 0);
    segment(&m, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_UNSUPP);
}

#[test]
fn discard_over_the_sector_limit_is_an_io_error() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0x55);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_DISCARD, 0);
    segment(&m, 0, MAX_DISCARD_SECTORS + 1, 0);
    driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
}

#[test]
fn discard_without_the_feature_negotiated_is_unsupported() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0x55);
    let (mut block, driver) = active_block(&m, &image, false, FEATURE_VERSION_1);
    header(&m, VIRTIO_BLK_T_DISCARD, 0);
    segment(&m, 0, 8, 0);
    driver.add(&[(HEADER, 16, 0), (DATA, 16, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_UNSUPP);
    assert_eq!(image.contents()[0], 0x55);
}

#[test]
fn read_beyond_the_capacity_is_an_io_error() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_IN, (DISK_SIZE / 512) as u64 - 1);
    driver.add(&[(HEADER, 16, 0), (DATA, 1024, F_WRITE), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
    assert_eq!(driver.used_elem(0), (0, 1));
    assert_eq!(metric(&block, "out_of_range"), 1);
}

#[test]
fn sector_whose_byte_offset_overflows_is_an_io_error() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_IN, u64::MAX / 256);
    driver.add(&[(HEADER, 16, 0), (DATA, 512, F_WRITE), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
}

#[test]
fn data_length_not_a_multiple_of_512_is_an_io_error() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, VIRTIO_BLK_T_OUT, 0);
    driver.add(&[(HEADER, 16, 0), (DATA, 100, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
    assert_eq!(
        image.contents()[..100],
        (0..100).map(pattern).collect::<Vec<_>>()
    );
}

#[test]
fn unknown_request_type_is_unsupported() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block(&m, &image, false, ALL_BLOCK_FEATURES);
    header(&m, 0x1234, 0);
    driver.add(&[(HEADER, 16, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_UNSUPP);
}

#[test]
fn write_to_a_read_only_disk_is_an_io_error_and_changes_nothing() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0x11);
    let (mut block, driver) = active_block(&m, &image, true, FEATURE_VERSION_1);
    header(&m, VIRTIO_BLK_T_OUT, 0);
    m.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    driver.add(&[(HEADER, 16, 0), (DATA, 512, 0), (STATUS, 1, F_WRITE)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_IOERR);
    assert!(image.contents().iter().all(|&b| b == 0x11));
    assert_eq!(metric(&block, "read_only_refused"), 1);
}

#[test]
fn read_only_disk_offers_ro_and_neither_discard_nor_write_zeroes() {
    let image = TempImage::new(DISK_SIZE, |_| 0);

    let block = Block::new(&image.path, true, "ro").unwrap();

    let features = block.avail_features();
    assert_ne!(features & 1 << VIRTIO_BLK_F_RO, 0);
    assert_eq!(features & 1 << VIRTIO_BLK_F_DISCARD, 0);
    assert_eq!(features & 1 << VIRTIO_BLK_F_WRITE_ZEROES, 0);
}

#[test]
fn config_space_carries_capacity_limits_and_block_size() {
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let block = Block::new(&image.path, false, "d").unwrap();
    let mut config = [0u8; 60];

    block.read_config(0, &mut config);

    let u32_at = |o: usize| u32::from_le_bytes(config[o..o + 4].try_into().unwrap());
    assert_eq!(
        u64::from_le_bytes(config[..8].try_into().unwrap()),
        (DISK_SIZE / 512) as u64
    );
    assert_eq!(u32_at(12), SEG_MAX);
    assert_eq!(u32_at(20), 512);
    assert_eq!(
        [u32_at(36), u32_at(40), u32_at(44), u32_at(48), u32_at(52)],
        [
            MAX_DISCARD_SECTORS,
            MAX_DISCARD_SEG,
            DISCARD_SECTOR_ALIGNMENT,
            MAX_WRITE_ZEROES_SECTORS,
            MAX_WRITE_ZEROES_SEG
        ]
    );
    assert_eq!(config[56], 1);
}

#[test]
fn image_size_not_a_multiple_of_512_is_refused() {
    let image = TempImage::new(1000, |_| 0);

    let err = Block::new(&image.path, false, "d").unwrap_err();

    assert!(matches!(err, BlockError::Size { size: 1000, .. }));
}

#[test]
fn second_writer_is_refused_with_the_path_in_the_message() {
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let _first = Block::new(&image.path, false, "a").unwrap();

    let err = Block::new(&image.path, false, "b").unwrap_err();

    assert!(matches!(err, BlockError::Locked { .. }));
    assert!(err.to_string().contains(&image.path.display().to_string()));
}

#[test]
fn two_read_only_users_share_an_image() {
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let _first = Block::new(&image.path, true, "a").unwrap();

    let second = Block::new(&image.path, true, "b");

    assert!(second.is_ok());
}

#[test]
fn writer_is_refused_while_a_reader_holds_the_image() {
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let _reader = Block::new(&image.path, true, "a").unwrap();

    let err = Block::new(&image.path, false, "b").unwrap_err();

    assert!(matches!(err, BlockError::Locked { .. }));
}

#[test]
fn id_longer_than_20_bytes_is_refused() {
    let image = TempImage::new(DISK_SIZE, |_| 0);

    let err = Block::new(&image.path, false, "a-very-long-disk-identifier").unwrap_err();

    assert!(matches!(err, BlockError::IdTooLong { .. }));
}

#[test]
fn read_through_an_indirect_table_is_served() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block(&m, &image, false, FEATURE_INDIRECT_DESC);
    header(&m, VIRTIO_BLK_T_IN, 0);
    let table = GuestAddress(0x8000);
    driver.put_table(
        table,
        &[
            desc(HEADER, 16, F_NEXT, 1),
            desc(DATA, 512, F_NEXT | F_WRITE, 2),
            desc(STATUS, 1, F_WRITE, 0),
        ],
    );
    driver.add(&[(table.0, 48, F_INDIRECT)]);

    block.process_queue(0).unwrap();

    assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
    assert_eq!(driver.used_elem(0), (0, 513));
}

// Hostile drivers, through the transport: each malformation class marks this device
// DEVICE_NEEDS_RESET with a configuration interrupt, counts its cause, returns nothing
// to the used ring, and leaves the disk untouched.

fn hostile(features: u64, setup: impl FnOnce(&Driver<'_>)) -> (MmioTransport, Vec<u8>) {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0x5a);
    let driver = Driver::new(&m, 16);
    let block = Block::new(&image.path, false, "victim").unwrap();
    let (t, irq) = transport(Box::new(block), &m);
    let mut t = t.with_log_sink(Box::new(std::io::sink()));
    activate(&mut t, FEATURE_VERSION_1 | features, &[&driver]);
    header(&m, VIRTIO_BLK_T_OUT, 0);
    setup(&driver);

    let more = t.queue_notified(0);

    assert!(!more);
    assert_ne!(read32(&mut t, reg::STATUS) & status::NEEDS_RESET, 0);
    assert_eq!(read32(&mut t, reg::INTERRUPT_STATUS), 2);
    assert_eq!(raised(&irq), 1);
    assert_eq!(driver.used_idx(), 0);
    (t, image.contents())
}

fn fault_count(t: &MmioTransport, fault: Fault) -> u64 {
    t.metrics()
        .into_iter()
        .find(|(n, _)| *n == fault.metric_name())
        .unwrap()
        .1
}

#[test]
fn descriptor_loop_marks_the_device_needs_reset() {
    let (t, disk) = hostile(0, |d| {
        d.put(0, desc(HEADER, 16, F_NEXT, 1));
        d.put(1, desc(DATA, 512, F_NEXT, 0));
        d.push_avail(0);
    });

    assert_eq!(fault_count(&t, Fault::DescriptorLoop), 1);
    assert!(disk.iter().all(|&b| b == 0x5a));
}

#[test]
fn buffer_outside_guest_memory_marks_the_device_needs_reset() {
    let (t, _) = hostile(0, |d| {
        d.add(&[
            (HEADER, 16, 0),
            (MEM_SIZE + 0x1000, 512, 0),
            (STATUS, 1, F_WRITE),
        ]);
    });

    assert_eq!(fault_count(&t, Fault::AddressOutOfRange), 1);
}

#[test]
fn buffer_length_wrapping_the_address_space_marks_the_device_needs_reset() {
    let (t, _) = hostile(0, |d| {
        d.add(&[
            (HEADER, 16, 0),
            (u64::MAX - 100, 512, 0),
            (STATUS, 1, F_WRITE),
        ]);
    });

    assert_eq!(fault_count(&t, Fault::LengthOverflow), 1);
}

#[test]
fn indirect_table_without_the_feature_marks_the_device_needs_reset() {
    let (t, _) = hostile(0, |d| {
        d.add(&[(0x8000, 48, F_INDIRECT)]);
    });

    assert_eq!(fault_count(&t, Fault::IndirectNotNegotiated), 1);
}

#[test]
fn nested_indirect_table_marks_the_device_needs_reset() {
    let (t, _) = hostile(FEATURE_INDIRECT_DESC, |d| {
        d.put_table(GuestAddress(0x8000), &[desc(0x9000, 16, F_INDIRECT, 0)]);
        d.add(&[(0x8000, 16, F_INDIRECT)]);
    });

    assert_eq!(fault_count(&t, Fault::IndirectNested), 1);
}

#[test]
fn indirect_table_length_not_a_multiple_of_16_marks_the_device_needs_reset() {
    let (t, _) = hostile(FEATURE_INDIRECT_DESC, |d| {
        d.add(&[(0x8000, 40, F_INDIRECT)]);
    });

    assert_eq!(fault_count(&t, Fault::IndirectBadLength), 1);
}

#[test]
fn read_request_with_a_device_readable_data_buffer_marks_the_device_needs_reset() {
    let (t, _) = hostile(0, |d| {
        let m = mem_of(d);
        header(m, VIRTIO_BLK_T_IN, 0);
        d.add(&[(HEADER, 16, 0), (DATA, 512, 0), (STATUS, 1, F_WRITE)]);
    });

    assert_eq!(fault_count(&t, Fault::WrongDirection), 1);
}

#[test]
fn request_without_a_writable_status_byte_marks_the_device_needs_reset() {
    let (t, _) = hostile(0, |d| {
        d.add(&[(HEADER, 16, 0)]);
    });

    assert_eq!(fault_count(&t, Fault::MalformedRequest), 1);
}

#[test]
fn chain_longer_than_the_queue_allows_marks_the_device_needs_reset() {
    let (t, _) = hostile(FEATURE_INDIRECT_DESC, |d| {
        let entries: Vec<_> = (0..=QUEUE_SIZE)
            .map(|i| desc(DATA, 512, F_NEXT, i + 1))
            .collect();
        d.put_table(GuestAddress(0x8000), &entries);
        d.add(&[(0x8000, (u32::from(QUEUE_SIZE) + 1) * 16, F_INDIRECT)]);
    });

    assert_eq!(fault_count(&t, Fault::ChainTooLong), 1);
}

#[test]
fn head_index_beyond_the_queue_marks_the_device_needs_reset() {
    let (t, _) = hostile(0, |d| d.push_avail(40));

    assert_eq!(fault_count(&t, Fault::HeadOutOfRange), 1);
}

#[test]
fn avail_index_running_ahead_marks_the_device_needs_reset() {
    let (t, _) = hostile(0, |d| d.set_avail_idx(100));

    assert_eq!(fault_count(&t, Fault::AvailIndex), 1);
}

fn mem_of<'a>(d: &Driver<'a>) -> &'a GuestMemoryMmap {
    d.memory()
}

#[test]
fn broken_block_device_leaves_its_neighbour_working() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let blk_queue = Driver::at(&m, GuestAddress(0), 16);
    let rng_queue = Driver::at(&m, GuestAddress(0x4000), 16);
    let block = Block::new(&image.path, false, "victim").unwrap();
    let (blk, _) = transport(Box::new(block), &m);
    let mut blk = blk.with_log_sink(Box::new(std::io::sink()));
    let (mut rng, rng_irq) = transport(Box::new(Rng::new(64)), &m);
    activate(&mut blk, FEATURE_VERSION_1, &[&blk_queue]);
    activate(&mut rng, FEATURE_VERSION_1, &[&rng_queue]);
    blk_queue.put(0, desc(HEADER, 16, F_NEXT, 0));
    blk_queue.push_avail(0);
    rng_queue.add(&[(0x50000, 32, F_WRITE)]);

    blk.queue_notified(0);
    rng.queue_notified(0);

    assert_eq!(blk.needs_reset(), Some(Fault::DescriptorLoop));
    assert_eq!(rng.needs_reset(), None);
    assert_eq!(read32(&mut rng, reg::STATUS) & status::NEEDS_RESET, 0);
    assert_eq!(rng_queue.used_elem(0), (0, 32));
    assert_eq!(raised(&rng_irq), 1);
}
