//! Counters of one console device.

/// Console device counters.
#[derive(Debug, Default)]
pub(crate) struct ConsoleMetrics {
    /// `tx_chains`: transmit buffers returned to the driver.
    pub tx_chains: u64,
    /// `tx_bytes`: bytes written to the host sink.
    pub tx_bytes: u64,
    /// `tx_bytes_dropped`: transmit bytes beyond the per-chain cap, or after the sink failed.
    pub tx_bytes_dropped: u64,
    /// `tx_errors`: writes to the host sink that failed.
    pub tx_errors: u64,
    /// `rx_chains`: receive buffers filled and returned to the driver.
    pub rx_chains: u64,
    /// `rx_bytes`: input bytes delivered to the guest.
    pub rx_bytes: u64,
}
