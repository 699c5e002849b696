use super::*;
use crate::testing::{
    activate, mem, negotiate, raised, read32, reg, setup_queue, status, transport, write32, Driver,
    SharedSink,
};
use crate::{COMMON_FEATURES, FEATURE_EVENT_IDX};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// A device that records what the transport did to it.
#[derive(Default)]
struct FakeDevice {
    sizes: Vec<u16>,
    calls: Arc<Mutex<Vec<String>>>,
    config: [u8; 8],
    fail_next: Arc<AtomicU32>,
}

impl VirtioDevice for FakeDevice {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &self.sizes
    }
    fn avail_features(&self) -> u64 {
        COMMON_FEATURES | 1 << 5
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        crate::read_config_bytes(&self.config, offset, data);
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if let Some(b) = self.config.get_mut(offset as usize) {
            *b = data[0];
        }
    }
    fn activate(
        &mut self,
        _mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked: u64,
    ) -> Result<(), DeviceError> {
        let ready: Vec<bool> = queues.iter().map(|q| q.ready()).collect();
        self.calls
            .lock()
            .unwrap()
            .push(format!("activate {acked:#x} {ready:?}"));
        Ok(())
    }
    fn process_queue(&mut self, index: usize) -> Result<bool, DeviceError> {
        self.calls.lock().unwrap().push(format!("process {index}"));
        match self.fail_next.swap(0, Ordering::SeqCst) {
            0 => Ok(true),
            _ => Err(DeviceError::DriverFault(Fault::DescriptorLoop)),
        }
    }
    fn reset(&mut self) {
        self.calls.lock().unwrap().push("reset".into());
    }
    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![("fake", 1)]
    }
}

fn fake() -> (FakeDevice, Arc<Mutex<Vec<String>>>, Arc<AtomicU32>) {
    let d = FakeDevice {
        sizes: vec![16, 8],
        ..FakeDevice::default()
    };
    let calls = d.calls.clone();
    let fail = d.fail_next.clone();
    (d, calls, fail)
}

fn metric(t: &MmioTransport, name: &str) -> u64 {
    t.metrics()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .unwrap()
}

#[test]
fn identification_registers_read_as_virtio_mmio_version_2() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    let ids = [
        read32(&mut t, reg::MAGIC),
        read32(&mut t, reg::VERSION),
        read32(&mut t, reg::DEVICE_ID),
    ];

    assert_eq!(ids, [0x7472_6976, 2, VIRTIO_ID_RNG]);
}

#[test]
fn device_features_are_read_32_bits_at_a_time() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    write32(&mut t, reg::DEVICE_FEATURES_SEL, 0);
    let low = read32(&mut t, reg::DEVICE_FEATURES);
    write32(&mut t, reg::DEVICE_FEATURES_SEL, 1);
    let high = read32(&mut t, reg::DEVICE_FEATURES);

    assert_eq!(
        u64::from(high) << 32 | u64::from(low),
        COMMON_FEATURES | 1 << 5
    );
}

#[test]
fn features_ok_sticks_when_the_driver_acked_a_subset_with_version_1() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    negotiate(&mut t, FEATURE_VERSION_1 | FEATURE_EVENT_IDX);

    assert_eq!(
        read32(&mut t, reg::STATUS),
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK
    );
}

#[test]
fn features_ok_is_refused_without_version_1() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    negotiate(&mut t, FEATURE_EVENT_IDX);

    assert_eq!(
        read32(&mut t, reg::STATUS),
        status::ACKNOWLEDGE | status::DRIVER
    );
    assert_eq!(metric(&t, "features_refused"), 1);
}

#[test]
fn features_ok_is_refused_for_a_feature_not_offered() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    negotiate(&mut t, FEATURE_VERSION_1 | 1 << 6);

    assert_eq!(read32(&mut t, reg::STATUS) & status::FEATURES_OK, 0);
}

#[test]
fn driver_features_written_after_features_ok_are_ignored() {
    let m = mem();
    let (d, calls, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    negotiate(&mut t, FEATURE_VERSION_1);

    write32(&mut t, reg::DRIVER_FEATURES_SEL, 0);
    write32(&mut t, reg::DRIVER_FEATURES, 1 << 5);
    activate_without_queues(&mut t);

    assert_eq!(
        calls.lock().unwrap()[0],
        "activate 0x100000000 [false, false]"
    );
}

fn activate_without_queues(t: &mut MmioTransport) {
    write32(
        t,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
    );
}

#[test]
fn status_steps_cannot_be_skipped() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    write32(
        &mut t,
        reg::STATUS,
        status::ACKNOWLEDGE | status::FEATURES_OK,
    );

    assert_eq!(read32(&mut t, reg::STATUS), 0);
    assert_eq!(metric(&t, "register_accesses_refused"), 1);
}

#[test]
fn status_bits_cannot_be_cleared_without_a_reset() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    negotiate(&mut t, FEATURE_VERSION_1);

    write32(&mut t, reg::STATUS, status::ACKNOWLEDGE);

    assert_eq!(
        read32(&mut t, reg::STATUS),
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK
    );
}

#[test]
fn driver_ok_activates_with_the_acked_features_and_ready_queues() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, calls, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    activate(&mut t, FEATURE_VERSION_1 | FEATURE_EVENT_IDX, &[&driver]);

    assert_eq!(
        *calls.lock().unwrap(),
        ["activate 0x120000000 [true, false]"]
    );
}

#[test]
fn queue_num_max_reads_zero_for_a_queue_that_does_not_exist() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    write32(&mut t, reg::QUEUE_SEL, 1);
    let second = read32(&mut t, reg::QUEUE_NUM_MAX);
    write32(&mut t, reg::QUEUE_SEL, 2);
    let third = read32(&mut t, reg::QUEUE_NUM_MAX);

    assert_eq!((second, third), (8, 0));
}

#[test]
fn queue_registers_are_refused_before_features_ok() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    setup_queue(&mut t, 0, &driver);

    assert_eq!(read32(&mut t, reg::QUEUE_READY), 0);
    assert_eq!(metric(&t, "register_accesses_refused"), 8);
}

#[test]
fn queue_address_cannot_change_while_the_queue_is_ready() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    negotiate(&mut t, FEATURE_VERSION_1);
    setup_queue(&mut t, 0, &driver);

    write32(&mut t, reg::QUEUE_DESC_LOW, 0x8000);
    activate_without_queues(&mut t);
    let served = t.queue_notified(0);

    assert!(!served);
    assert_eq!(metric(&t, "register_accesses_refused"), 1);
    assert_eq!(t.needs_reset(), None);
}

#[test]
fn queue_size_not_a_power_of_two_needs_reset_at_driver_ok() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, calls, _) = fake();
    let (mut t, irq) = transport(Box::new(d), &m);
    negotiate(&mut t, FEATURE_VERSION_1);
    write32(&mut t, reg::QUEUE_SEL, 0);
    write32(&mut t, reg::QUEUE_NUM, 12);
    setup_queue_addresses_and_ready(&mut t, &driver);

    activate_without_queues(&mut t);

    assert_eq!(t.needs_reset(), Some(Fault::QueueConfig));
    assert_ne!(read32(&mut t, reg::STATUS) & status::NEEDS_RESET, 0);
    assert_eq!(irq.status(), 2);
    assert!(calls.lock().unwrap().is_empty());
}

#[test]
fn queue_size_above_queue_num_max_needs_reset_at_driver_ok() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    negotiate(&mut t, FEATURE_VERSION_1);
    write32(&mut t, reg::QUEUE_SEL, 0);
    write32(&mut t, reg::QUEUE_NUM, 32);
    setup_queue_addresses_and_ready(&mut t, &driver);

    activate_without_queues(&mut t);

    assert_eq!(t.needs_reset(), Some(Fault::QueueConfig));
}

#[test]
fn rings_outside_guest_memory_need_reset_at_driver_ok() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    negotiate(&mut t, FEATURE_VERSION_1);
    write32(&mut t, reg::QUEUE_SEL, 0);
    write32(&mut t, reg::QUEUE_DESC_HIGH, 1);
    write32(&mut t, reg::QUEUE_READY, 1);

    activate_without_queues(&mut t);

    assert_eq!(t.needs_reset(), Some(Fault::QueueConfig));
}

#[test]
fn device_declaring_a_queue_size_not_a_power_of_two_fails_activation() {
    let m = mem();
    let (mut d, calls, _) = fake();
    d.sizes = vec![12];
    let (mut t, _) = transport(Box::new(d), &m);
    negotiate(&mut t, FEATURE_VERSION_1);

    activate_without_queues(&mut t);

    assert_eq!(t.needs_reset(), Some(Fault::DeviceError));
    assert!(calls.lock().unwrap().is_empty());
}

#[test]
fn available_ring_at_address_zero_needs_reset_at_driver_ok() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    negotiate(&mut t, FEATURE_VERSION_1);
    write32(&mut t, reg::QUEUE_SEL, 0);
    write32(&mut t, reg::QUEUE_DESC_LOW, 0x1000);
    write32(&mut t, reg::QUEUE_USED_LOW, 0x2000);
    write32(&mut t, reg::QUEUE_READY, 1);

    activate_without_queues(&mut t);

    assert_eq!(t.needs_reset(), Some(Fault::QueueConfig));
}

#[test]
fn misaligned_descriptor_table_needs_reset_at_driver_ok() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    negotiate(&mut t, FEATURE_VERSION_1);
    setup_queue(&mut t, 0, &driver);
    write32(&mut t, reg::QUEUE_READY, 0);
    write32(&mut t, reg::QUEUE_DESC_LOW, 0x1008);
    write32(&mut t, reg::QUEUE_READY, 1);

    activate_without_queues(&mut t);

    assert_eq!(t.needs_reset(), Some(Fault::QueueConfig));
}

fn setup_queue_addresses_and_ready(t: &mut MmioTransport, driver: &Driver<'_>) {
    write32(t, reg::QUEUE_DESC_LOW, driver.desc_table_addr().0 as u32);
    write32(t, reg::QUEUE_AVAIL_LOW, driver.avail_addr().0 as u32);
    write32(t, reg::QUEUE_USED_LOW, driver.used_addr().0 as u32);
    write32(t, reg::QUEUE_READY, 1);
}

#[test]
fn queue_notify_write_is_returned_for_forwarding_and_not_processed() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, calls, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    activate(&mut t, FEATURE_VERSION_1, &[&driver]);

    let forwarded = write32(&mut t, QUEUE_NOTIFY_OFFSET, 1);
    let beyond = write32(&mut t, QUEUE_NOTIFY_OFFSET, 2);

    assert_eq!((forwarded, beyond), (Some(1), None));
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[test]
fn notification_raises_the_used_buffer_interrupt() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, _, _) = fake();
    let (mut t, irq) = transport(Box::new(d), &m);
    activate(&mut t, FEATURE_VERSION_1, &[&driver]);

    t.queue_notified(0);

    assert_eq!(read32(&mut t, reg::INTERRUPT_STATUS), 1);
    assert_eq!(raised(&irq), 1);
}

#[test]
fn notification_before_driver_ok_is_ignored() {
    let m = mem();
    let (d, calls, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);

    t.queue_notified(0);

    assert!(calls.lock().unwrap().is_empty());
    assert_eq!(metric(&t, "notifications_ignored"), 1);
}

#[test]
fn interrupt_ack_clears_the_acknowledged_bits() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    activate(&mut t, FEATURE_VERSION_1, &[&driver]);
    t.queue_notified(0);

    write32(&mut t, reg::INTERRUPT_ACK, 1);

    assert_eq!(read32(&mut t, reg::INTERRUPT_STATUS), 0);
}

#[test]
fn driver_fault_marks_needs_reset_raises_config_interrupt_and_stops_serving() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, calls, fail) = fake();
    let sink = SharedSink::default();
    let (t, irq) = transport(Box::new(d), &m);
    let mut t = t.with_name("vdz").with_log_sink(Box::new(sink.clone()));
    activate(&mut t, FEATURE_VERSION_1, &[&driver]);
    fail.store(1, Ordering::SeqCst);

    t.queue_notified(0);
    t.queue_notified(0);

    assert_ne!(read32(&mut t, reg::STATUS) & status::NEEDS_RESET, 0);
    assert_eq!(irq.status(), 2);
    assert_eq!(metric(&t, "fault_descriptor_loop"), 1);
    assert_eq!(calls.lock().unwrap().len(), 2);
    assert_eq!(
        String::from_utf8(sink.contents()).unwrap(),
        "vdz: driver broke the virtio protocol: descriptor chain loops; \
         the device needs a reset\n"
    );
}

#[test]
fn reset_clears_status_queues_interrupts_and_needs_reset() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, calls, fail) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    activate(&mut t, FEATURE_VERSION_1, &[&driver]);
    fail.store(1, Ordering::SeqCst);
    t.queue_notified(0);

    write32(&mut t, reg::STATUS, 0);

    assert_eq!(read32(&mut t, reg::STATUS), 0);
    assert_eq!(read32(&mut t, reg::QUEUE_READY), 0);
    assert_eq!(read32(&mut t, reg::INTERRUPT_STATUS), 0);
    assert_eq!(t.needs_reset(), None);
    assert_eq!(calls.lock().unwrap().last().unwrap(), "reset");
}

#[test]
fn device_works_again_after_reset_and_renegotiation() {
    let m = mem();
    let driver = Driver::new(&m, 16);
    let (d, calls, fail) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    activate(&mut t, FEATURE_VERSION_1, &[&driver]);
    fail.store(1, Ordering::SeqCst);
    t.queue_notified(0);
    write32(&mut t, reg::STATUS, 0);

    activate(&mut t, FEATURE_VERSION_1, &[&driver]);
    t.queue_notified(0);

    assert_eq!(calls.lock().unwrap().last().unwrap(), "process 0");
    assert_eq!(t.needs_reset(), None);
}

#[test]
fn config_generation_changes_only_when_the_configuration_does() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    let before = read32(&mut t, reg::CONFIG_GENERATION);
    let again = read32(&mut t, reg::CONFIG_GENERATION);

    t.config_changed();

    assert_eq!(before, again);
    assert_ne!(read32(&mut t, reg::CONFIG_GENERATION), before);
}

#[test]
fn config_space_is_read_and_written_at_any_width() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    t.write(reg::CONFIG + 1, &[0xab]);
    let mut two = [0u8; 2];

    t.read(reg::CONFIG, &mut two);

    assert_eq!(two, [0, 0xab]);
}

#[test]
fn register_access_narrower_than_32_bits_is_refused() {
    let m = mem();
    let (d, _, _) = fake();
    let (mut t, _) = transport(Box::new(d), &m);
    let mut byte = [0xffu8; 1];

    t.read(reg::MAGIC, &mut byte);
    t.write(reg::STATUS, &[1]);

    assert_eq!(byte, [0]);
    assert_eq!(read32(&mut t, reg::STATUS), 0);
    assert_eq!(metric(&t, "register_accesses_refused"), 2);
}

#[test]
fn device_metrics_follow_the_transport_metrics() {
    let m = mem();
    let (d, _, _) = fake();
    let (t, _) = transport(Box::new(d), &m);

    let metrics = t.metrics();

    assert_eq!(metrics.last().unwrap(), &("fake", 1));
    assert_eq!(metrics.len(), 10 + Fault::ALL.len() + 1);
}
