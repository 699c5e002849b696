//! Counters of one virtio-mmio transport (one per device). Plain integers: the transport is
//! only ever used under its owner's lock.

use crate::Fault;

/// Transport counters.
#[derive(Debug, Default)]
pub(crate) struct TransportMetrics {
    /// `notifications`: queue notifications passed to the device.
    pub notifications: u64,
    /// `notifications_ignored`: notifications before `DRIVER_OK`, while the device needs a
    /// reset, or for a queue that does not exist.
    pub notifications_ignored: u64,
    /// `backend_events`: wake-ups of the device's host-side input passed to the device.
    pub backend_events: u64,
    /// `backend_events_ignored`: such wake-ups before `DRIVER_OK` or while the device needs a
    /// reset (the input stays where it is).
    pub backend_events_ignored: u64,
    /// `interrupts_used`: used-buffer interrupts raised.
    pub interrupts_used: u64,
    /// `interrupts_config`: configuration-change interrupts raised (including `NEEDS_RESET`).
    pub interrupts_config: u64,
    /// `register_accesses_refused`: register accesses not 32 bits wide and aligned, writes to
    /// read-only or unknown registers, writes in the wrong device state (queue registers
    /// outside `FEATURES_OK`..`DRIVER_OK` or on a ready queue, driver features outside
    /// `DRIVER`..`FEATURES_OK`), status writes that clear bits or skip a step.
    pub register_accesses_refused: u64,
    /// `features_refused`: `FEATURES_OK` refused because the driver acknowledged a feature not
    /// offered or did not acknowledge `VIRTIO_F_VERSION_1`.
    pub features_refused: u64,
    /// `activations`: successful `DRIVER_OK`s.
    pub activations: u64,
    /// `resets`: driver-initiated resets (0 written to the status register).
    pub resets: u64,
    /// `fault_*`: times the device was put in `DEVICE_NEEDS_RESET`, by cause ([`Fault`]).
    pub faults: [u64; Fault::ALL.len()],
}

impl TransportMetrics {
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut out = vec![
            ("notifications", self.notifications),
            ("notifications_ignored", self.notifications_ignored),
            ("backend_events", self.backend_events),
            ("backend_events_ignored", self.backend_events_ignored),
            ("interrupts_used", self.interrupts_used),
            ("interrupts_config", self.interrupts_config),
            ("register_accesses_refused", self.register_accesses_refused),
            ("features_refused", self.features_refused),
            ("activations", self.activations),
            ("resets", self.resets),
        ];
        out.extend(
            Fault::ALL
                .iter()
                .zip(self.faults.iter())
                .map(|(fault, n)| (fault.metric_name(), *n)),
        );
        out
    }
}
