//! Converting between TSC ticks and nanoseconds, and deriving the TSC frequency from a
//! calibration measurement. Plain arithmetic (the TSC itself is read by [`super::rdtsc`]).

/// A TSC frequency, with a precomputed multiplier so that converting a latency is one
/// multiplication and a shift (no division on the hot path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscScale {
    khz: u64,
    /// Nanoseconds per tick, as a 32.32 fixed-point number.
    ns_per_tick_fp32: u64,
}

impl TscScale {
    /// The scale for a TSC running at `khz` kHz; `None` for 0.
    pub fn from_khz(khz: u64) -> Option<TscScale> {
        if khz == 0 {
            return None;
        }
        let fp = (1_000_000u128 << 32) / u128::from(khz);
        Some(TscScale {
            khz,
            ns_per_tick_fp32: u64::try_from(fp).unwrap_or(u64::MAX),
        })
    }

    /// The frequency in kHz.
    pub fn khz(&self) -> u64 {
        self.khz
    }

    /// Converts `ticks` to nanoseconds (saturating).
    #[inline]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        let ns = (u128::from(ticks) * u128::from(self.ns_per_tick_fp32)) >> 32;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Converts `ms` milliseconds to ticks (saturating).
    pub fn ms_to_ticks(&self, ms: u64) -> u64 {
        u64::try_from(u128::from(ms) * u128::from(self.khz)).unwrap_or(u64::MAX)
    }

    /// Converts `ns` nanoseconds to ticks (saturating).
    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        let ticks = u128::from(ns) * u128::from(self.khz) / 1_000_000;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }
}

/// The TSC frequency in kHz, given that it advanced `ticks` while a reference clock of
/// `ref_hz` advanced `ref_counts`. 0 when nothing was measured.
pub fn khz_from(ticks: u64, ref_counts: u64, ref_hz: u64) -> u64 {
    if ref_counts == 0 {
        return 0;
    }
    let khz = u128::from(ticks) * u128::from(ref_hz) / (u128::from(ref_counts) * 1000);
    u64::try_from(khz).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_frequency_has_no_scale() {
        assert_eq!(TscScale::from_khz(0), None);
    }

    #[test]
    fn ticks_convert_to_nanoseconds_within_a_nanosecond() {
        let scale = TscScale::from_khz(2_600_000).unwrap();

        let ns = scale.ticks_to_ns(2_600_000_000);

        assert!((999_999_999..=1_000_000_000).contains(&ns), "{ns}");
    }

    #[test]
    fn period_converts_to_ticks_exactly() {
        let scale = TscScale::from_khz(2_600_000).unwrap();

        assert_eq!(scale.ns_to_ticks(1_000_000), 2_600_000);
    }

    #[test]
    fn milliseconds_convert_to_ticks_exactly() {
        let scale = TscScale::from_khz(2_600_000).unwrap();

        assert_eq!(scale.ms_to_ticks(250), 650_000_000);
    }

    #[test]
    fn huge_tick_counts_saturate() {
        let scale = TscScale::from_khz(1).unwrap();

        assert_eq!(scale.ticks_to_ns(u64::MAX), u64::MAX);
    }

    /// Input frequency of the 8254 PIT (ISA standard), in Hz.
    const PIT_HZ: u64 = 1_193_182;

    #[test]
    fn frequency_follows_from_a_pit_measurement() {
        // 20 ms of PIT counts during which a 2.6 GHz TSC ran 52 million ticks.
        let pit_counts = PIT_HZ / 50;

        let khz = khz_from(52_000_000, pit_counts, PIT_HZ);

        assert!((2_599_000..=2_601_000).contains(&khz), "{khz}");
    }

    #[test]
    fn frequency_from_a_nanosecond_clock() {
        assert_eq!(khz_from(52_000_000, 20_000_000, 1_000_000_000), 2_600_000);
    }

    #[test]
    fn empty_measurement_gives_zero() {
        assert_eq!(khz_from(123, 0, PIT_HZ), 0);
    }
}
