//! Counters of one virtio-net device.

/// virtio-net device counters.
#[derive(Debug, Default)]
pub(crate) struct NetMetrics {
    /// `tx_frames`: frames the guest transmitted that the backend took.
    pub tx_frames: u64,
    /// `tx_bytes`: bytes of those frames (without the virtio-net header).
    pub tx_bytes: u64,
    /// `tx_dropped_too_big`: transmitted frames longer than `MAX_FRAME_LEN` (65550 bytes).
    pub tx_dropped_too_big: u64,
    /// `tx_dropped_runt`: transmitted frames shorter than an Ethernet header (14 bytes).
    pub tx_dropped_runt: u64,
    /// `tx_dropped_backend`: frames the backend refused (its queue full, the linked partition
    /// not running, a host error).
    pub tx_dropped_backend: u64,
    /// `rx_frames`: frames delivered into the guest's receive buffers.
    pub rx_frames: u64,
    /// `rx_bytes`: bytes of those frames (without the header).
    pub rx_bytes: u64,
    /// `rx_dropped_too_big`: frames from the backend that did not fit the receive buffer at
    /// hand (header included).
    pub rx_dropped_too_big: u64,
    /// `rx_no_buffer`: times the backend had (or may have had) frames while the guest had no
    /// receive buffer; the frames wait in the backend's own bounded queue.
    pub rx_no_buffer: u64,
    /// `rx_backend_errors`: reads from the backend that failed.
    pub rx_backend_errors: u64,
    /// `tx_backend_full`: times the backend was full and transmission waited for it.
    pub tx_backend_full: u64,
    /// `tx_dropped_bad_header`: transmitted frames whose virtio-net header failed the check
    /// (flags, checksum position, segmentation fields).
    pub tx_dropped_bad_header: u64,
    /// `rx_dropped_bad_header`: frames from the backend shorter than the header or whose
    /// header failed the check.
    pub rx_dropped_bad_header: u64,
    /// `rx_dropped_offload`: segmented frames of a kind the driver did not accept
    /// (`GUEST_TSO4`/`GUEST_TSO6` not negotiated).
    pub rx_dropped_offload: u64,
    /// `rx_checksums_completed`: partial checksums completed for a driver without
    /// `GUEST_CSUM`.
    pub rx_checksums_completed: u64,
    /// `backend_offload_errors`: activations where the backend could not be told the
    /// driver's receive offloads.
    pub backend_offload_errors: u64,
}
