//! Counters of one entropy device.

/// Entropy device counters.
#[derive(Debug, Default)]
pub(crate) struct RngMetrics {
    /// `requests`: buffers returned to the driver.
    pub requests: u64,
    /// `bytes`: random bytes written into guest buffers.
    pub bytes: u64,
    /// `requests_capped`: buffers larger than the per-request cap, filled only up to it.
    pub requests_capped: u64,
    /// `entropy_errors`: `getrandom` failures (the buffer is returned with what was filled).
    pub entropy_errors: u64,
}

impl RngMetrics {
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("requests", self.requests),
            ("bytes", self.bytes),
            ("requests_capped", self.requests_capped),
            ("entropy_errors", self.entropy_errors),
        ]
    }
}
