//! The I/O workers: a batch goes to them and comes back through `process_backend`; adjacent
//! reads or writes of a batch share one host call.

use super::*;

/// A request at slot `i`: its header, data and status each at their own address.
fn slot(i: u64) -> (u64, u64, u64) {
    (HEADER + i * 16, DATA + i * 0x1000, STATUS + i)
}

/// An active block device with `threads` I/O workers, and its driver.
fn active_block_with_workers<'a>(
    m: &'a GuestMemoryMmap,
    image: &TempImage,
    threads: usize,
) -> (Block, Driver<'a>) {
    let driver = Driver::new(m, 16);
    let mut block = Block::new(&image.path, false, "disk0")
        .unwrap()
        .with_io_threads(threads)
        .unwrap();
    block
        .activate(m.clone(), vec![driver.queue()], ALL_BLOCK_FEATURES)
        .unwrap();
    (block, driver)
}

/// Adds one `IN` or `OUT` request of `len` bytes per sector in `sectors`, request `i` at
/// [`slot`] `i`.
fn add_requests(
    m: &GuestMemoryMmap,
    driver: &Driver<'_>,
    request_type: u32,
    sectors: &[u64],
    len: u32,
) {
    for (i, &sector) in (0u64..).zip(sectors) {
        add_request(m, driver, i, request_type, sector, len);
    }
}

/// Adds an `IN` or `OUT` request of `len` bytes at `sector`, at [`slot`] `i`, its status
/// byte 0xff until the device answers.
fn add_request(
    m: &GuestMemoryMmap,
    driver: &Driver<'_>,
    i: u64,
    request_type: u32,
    sector: u64,
    len: u32,
) {
    let (header, data, status) = slot(i);
    header_at(m, header, request_type, sector);
    m.write_obj(0xffu8, GuestAddress(status)).unwrap();
    let data_flags = if request_type == VIRTIO_BLK_T_IN {
        F_WRITE
    } else {
        0
    };
    driver.add(&[
        (header, 16, 0),
        (data, len, data_flags),
        (status, 1, F_WRITE),
    ]);
}

fn status_at_slot(m: &GuestMemoryMmap, i: u64) -> u32 {
    u32::from(m.read_obj::<u8>(GuestAddress(slot(i).2)).unwrap())
}

/// Waits for the workers and returns what they finished to the used ring until `used`
/// chains are back; returns whether any of those calls asked for an interrupt.
fn complete_until(block: &mut Block, driver: &Driver<'_>, used: u16) -> bool {
    assert!(
        block.backend_fd().is_some(),
        "a block device with workers has a backend fd"
    );
    let mut notify = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while driver.used_idx() < used {
        assert!(
            std::time::Instant::now() < deadline,
            "workers did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
        notify |= block.process_backend().unwrap();
    }
    notify
}

#[test]
fn a_batch_of_reads_runs_on_the_workers_and_completes_through_the_backend() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block_with_workers(&m, &image, 2);
    // 1 KiB each, a sector apart: none continues another.
    let sectors = [0, 3, 6, 9];
    add_requests(&m, &driver, VIRTIO_BLK_T_IN, &sectors, 1024);

    let notify_at_once = block.process_queue(0).unwrap();
    let used_at_once = driver.used_idx();
    let notify_later = complete_until(&mut block, &driver, 4);

    assert!(!notify_at_once);
    assert_eq!(used_at_once, 0);
    assert!(notify_later);
    let mut lens: Vec<_> = (0..4).map(|i| driver.used_elem(i)).collect();
    lens.sort();
    assert_eq!(lens, [(0, 1025), (3, 1025), (6, 1025), (9, 1025)]);
    for (i, sector) in (0u64..).zip(sectors) {
        let mut got = vec![0u8; 1024];
        m.read_slice(&mut got, GuestAddress(slot(i).1)).unwrap();
        let at = sector as usize * 512;
        assert_eq!(got, image.contents()[at..at + 1024], "request {i}");
        assert_eq!(status_at_slot(&m, i), VIRTIO_BLK_S_OK);
    }
    assert_eq!(metric(&block, "bytes_read"), 4096);
    assert_eq!(metric(&block, "requests_in"), 4);
    assert_eq!(metric(&block, "requests_merged"), 0);
}

#[test]
fn writes_on_the_workers_reach_the_image() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let (mut block, driver) = active_block_with_workers(&m, &image, 3);
    let sectors = [0, 2, 4];
    for i in 0..3u64 {
        m.write_slice(&[0x10 + i as u8; 512], GuestAddress(slot(i).1))
            .unwrap();
    }
    add_requests(&m, &driver, VIRTIO_BLK_T_OUT, &sectors, 512);

    block.process_queue(0).unwrap();
    complete_until(&mut block, &driver, 3);

    let contents = image.contents();
    for (i, sector) in (0u8..).zip(sectors) {
        let at = sector as usize * 512;
        assert!(contents[at..at + 512].iter().all(|&b| b == 0x10 + i));
        assert!(contents[at + 512..at + 1024].iter().all(|&b| b == 0));
    }
    assert_eq!(metric(&block, "bytes_written"), 1536);
    assert_eq!(metric(&block, "requests_merged"), 0);
}

#[test]
fn adjacent_writes_of_a_batch_share_one_host_call_and_each_is_answered() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let (mut block, driver) = active_block_with_workers(&m, &image, 2);
    // Sectors 4, 5, 6 follow one another; 9 does not follow 6.
    let sectors = [4, 5, 6, 9];
    for i in 0..4u64 {
        m.write_slice(&[0x20 + i as u8; 512], GuestAddress(slot(i).1))
            .unwrap();
    }
    add_requests(&m, &driver, VIRTIO_BLK_T_OUT, &sectors, 512);

    block.process_queue(0).unwrap();
    complete_until(&mut block, &driver, 4);

    let contents = image.contents();
    for (i, sector) in (0u8..).zip(sectors) {
        let at = sector as usize * 512;
        assert!(
            contents[at..at + 512].iter().all(|&b| b == 0x20 + i),
            "request {i}"
        );
        assert_eq!(status_at_slot(&m, u64::from(i)), VIRTIO_BLK_S_OK);
    }
    assert!(contents[7 * 512..9 * 512].iter().all(|&b| b == 0));
    let mut used: Vec<_> = (0..4).map(|i| driver.used_elem(i)).collect();
    used.sort();
    assert_eq!(used, [(0, 1), (3, 1), (6, 1), (9, 1)]);
    assert_eq!(metric(&block, "requests_merged"), 2);
    assert_eq!(metric(&block, "requests_out"), 4);
    assert_eq!(metric(&block, "bytes_written"), 2048);
}

#[test]
fn a_merged_job_stops_growing_at_its_byte_limit() {
    let m = mem();
    let image = TempImage::new(2 << 20, |_| 0);
    let (mut block, driver) = active_block_with_workers(&m, &image, 2);
    let half = crate::block::pool::MERGED_BYTES / 2;
    // Above the slots' status bytes: the data is not changed while the device reads it.
    let data = 0x40000;
    let guest: Vec<u8> = (0..(half as usize + 0x3000))
        .map(|i| (i % 253) as u8)
        .collect();
    m.write_slice(&guest, GuestAddress(data)).unwrap();
    // Three adjacent writes of half the limit each: the first two fill one job.
    for i in 0..3u64 {
        let (header, _, status) = slot(i);
        header_at(&m, header, VIRTIO_BLK_T_OUT, i * half / 512);
        let buffer = data + i * 0x1000;
        driver.add(&[
            (header, 16, 0),
            (buffer, half as u32, 0),
            (status, 1, F_WRITE),
        ]);
    }

    block.process_queue(0).unwrap();
    complete_until(&mut block, &driver, 3);

    assert_eq!(metric(&block, "requests_merged"), 1);
    assert_eq!(metric(&block, "bytes_written"), 3 * half);
    let contents = image.contents();
    for i in 0..3usize {
        let (at, from) = (i * half as usize, i * 0x1000);
        assert!(
            contents[at..at + half as usize] == guest[from..from + half as usize],
            "request {i}"
        );
        assert_eq!(status_at_slot(&m, i as u64), VIRTIO_BLK_S_OK);
    }
}

#[test]
fn adjacent_reads_share_one_host_call_and_each_buffer_gets_its_own_sectors() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block_with_workers(&m, &image, 2);
    // 2 KiB each: sectors 8..12, 12..16, 16..20.
    let sectors = [8, 12, 16];
    add_requests(&m, &driver, VIRTIO_BLK_T_IN, &sectors, 2048);

    block.process_queue(0).unwrap();
    complete_until(&mut block, &driver, 3);

    for (i, sector) in (0u64..).zip(sectors) {
        let mut got = vec![0u8; 2048];
        m.read_slice(&mut got, GuestAddress(slot(i).1)).unwrap();
        let at = sector as usize * 512;
        assert_eq!(got, image.contents()[at..at + 2048], "request {i}");
        assert_eq!(status_at_slot(&m, i), VIRTIO_BLK_S_OK);
    }
    let mut used: Vec<_> = (0..3).map(|i| driver.used_elem(i)).collect();
    used.sort();
    assert_eq!(used, [(0, 2049), (3, 2049), (6, 2049)]);
    assert_eq!(metric(&block, "requests_merged"), 2);
    assert_eq!(metric(&block, "bytes_read"), 3 * 2048);
}

#[test]
fn when_the_shared_call_fails_only_the_request_whose_range_fails_is_an_io_error() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block_with_workers(&m, &image, 1);
    // The image shrinks under the device: sectors 0..3 remain, the capacity still says 128.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&image.path)
        .unwrap()
        .set_len(1536)
        .unwrap();
    add_requests(&m, &driver, VIRTIO_BLK_T_IN, &[0, 2], 1024);

    block.process_queue(0).unwrap();
    complete_until(&mut block, &driver, 2);

    let mut got = vec![0u8; 1024];
    m.read_slice(&mut got, GuestAddress(slot(0).1)).unwrap();
    assert_eq!(got, image.contents()[..1024]);
    assert_eq!(status_at_slot(&m, 0), VIRTIO_BLK_S_OK);
    assert_eq!(status_at_slot(&m, 1), VIRTIO_BLK_S_IOERR);
    assert_eq!(metric(&block, "requests_merged"), 0);
    assert_eq!(metric(&block, "host_io_errors"), 1);
    assert_eq!(metric(&block, "bytes_read"), 1024);
}

#[test]
fn a_read_next_to_a_write_is_not_merged_with_it() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block_with_workers(&m, &image, 2);
    m.write_slice(&[0x77; 512], GuestAddress(slot(0).1))
        .unwrap();
    add_request(&m, &driver, 0, VIRTIO_BLK_T_OUT, 0, 512);
    add_request(&m, &driver, 1, VIRTIO_BLK_T_IN, 1, 512);

    block.process_queue(0).unwrap();
    complete_until(&mut block, &driver, 2);

    let mut got = vec![0u8; 512];
    m.read_slice(&mut got, GuestAddress(slot(1).1)).unwrap();
    assert_eq!(got, image.contents()[512..1024]);
    assert!(image.contents()[..512].iter().all(|&b| b == 0x77));
    assert_eq!(metric(&block, "requests_merged"), 0);
}

#[test]
fn a_lone_read_runs_on_the_device_thread_even_with_workers() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, pattern);
    let (mut block, driver) = active_block_with_workers(&m, &image, 2);
    header(&m, VIRTIO_BLK_T_IN, 0);
    driver.add(&[(HEADER, 16, 0), (DATA, 512, F_WRITE), (STATUS, 1, F_WRITE)]);

    let notify = block.process_queue(0).unwrap();

    assert!(notify);
    assert_eq!(driver.used_elem(0), (0, 513));
    assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
}

#[test]
fn a_lone_flush_goes_to_the_workers() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let (mut block, driver) = active_block_with_workers(&m, &image, 1);
    header(&m, VIRTIO_BLK_T_FLUSH, 0);
    driver.add(&[(HEADER, 16, 0), (STATUS, 1, F_WRITE)]);

    let notify_at_once = block.process_queue(0).unwrap();
    complete_until(&mut block, &driver, 1);

    assert!(!notify_at_once);
    assert_eq!(status_byte(&m), VIRTIO_BLK_S_OK);
    assert_eq!(metric(&block, "requests_flush"), 1);
}

#[test]
fn reset_waits_for_the_workers_and_nothing_comes_back_after_it() {
    let m = mem();
    let image = TempImage::new(DISK_SIZE, |_| 0);
    let (mut block, driver) = active_block_with_workers(&m, &image, 2);
    // Every other sector, so that the eight are eight jobs.
    let sectors: Vec<u64> = (0..8).map(|i| 2 * i).collect();
    add_requests(&m, &driver, VIRTIO_BLK_T_OUT, &sectors, 512);
    block.process_queue(0).unwrap();

    block.reset();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let notify = block.process_backend().unwrap();

    assert!(!notify);
    assert_eq!(driver.used_idx(), 0);
    assert_eq!(block.pool.as_ref().map(Pool::in_flight), Some(0));
}
