//! The I/O workers: a batch goes to them and comes back through `process_backend`.

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
/// [`slot`] `i`, its status byte 0xff until the device answers.
fn add_requests(
    m: &GuestMemoryMmap,
    driver: &Driver<'_>,
    request_type: u32,
    sectors: &[u64],
    len: u32,
) {
    let data_flags = if request_type == VIRTIO_BLK_T_IN {
        F_WRITE
    } else {
        0
    };
    for (i, &sector) in (0u64..).zip(sectors) {
        let (header, data, status) = slot(i);
        header_at(m, header, request_type, sector);
        m.write_obj(0xffu8, GuestAddress(status)).unwrap();
        driver.add(&[
            (header, 16, 0),
            (data, len, data_flags),
            (status, 1, F_WRITE),
        ]);
    }
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
