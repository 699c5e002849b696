//! Flood and scan detection for one port, in fixed memory.
//!
//! - Flood: frames are counted in windows of one second, each starting with the first frame
//!   after the previous one ended; every frame past `flood_pps` in a window is a flood
//!   alert. (Fixed windows: a burst straddling two windows can reach twice the threshold
//!   before it is seen, as with any per-second counter.)
//! - Scan: distinct (destination address, destination port) pairs of TCP and UDP packets are
//!   counted in windows of `scan_window_ms`, likewise started by the first packet after the
//!   previous window. The packet that brings a new pair when `scan_ports` - 1 are already
//!   known, and every packet with a new pair after it in that window, is a scan alert;
//!   packets to pairs already seen are not (a flow that was there before the scan keeps
//!   going). The set holds at most `scan_ports` pairs (≤ [`super::config::MAX_SCAN_PORTS`])
//!   as 48-bit fingerprints, in an open-addressing table of twice that size allocated once;
//!   a new window empties it in O(1) by bumping a generation number.

use super::addr::IpKey;

const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_MS: u64 = 1_000_000;

/// Counts frames per one-second window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodDetector {
    limit: u32,
    window_start: Option<u64>,
    frames: u32,
}

impl FloodDetector {
    pub fn new(limit: u32) -> FloodDetector {
        FloodDetector {
            limit,
            window_start: None,
            frames: 0,
        }
    }

    /// Counts a frame at `now_ns`; `Some(frames in this window)` when it is past the limit.
    pub fn observe(&mut self, now_ns: u64) -> Option<u32> {
        let start = *self.window_start.get_or_insert(now_ns);
        if now_ns.saturating_sub(start) >= NS_PER_S {
            self.window_start = Some(now_ns);
            self.frames = 0;
        }
        self.frames = self.frames.saturating_add(1);
        (self.frames > self.limit).then_some(self.frames)
    }

    /// Forgets the current window.
    pub fn reset(&mut self) {
        self.window_start = None;
        self.frames = 0;
    }
}

/// 48-bit multiplier (odd: a bijection modulo 2⁴⁸).
const MIX_A: u64 = 0x9e37_79b9_7f4b;
const MIX_B: u64 = 0xc2b2_ae3d_27d5;
const LOW_48: u64 = (1 << 48) - 1;

/// A 48-bit fingerprint of a (destination, port) pair. For IPv4 it is a bijection of the 48
/// bits of address and port (odd multiplications and an xor-shift modulo 2⁴⁸), so two IPv4
/// pairs never share one; an IPv6 address is folded to 32 bits first, and a collision (odds
/// about 2⁻⁴⁸ per pair of pairs, over addresses a sender does not choose freely: they must
/// be hosts it wants to reach) merely counts two pairs as one.
fn fingerprint(dst: IpKey, port: u16) -> u64 {
    let addr = if dst.v6 {
        let folded = (dst.bits as u64) ^ ((dst.bits >> 64) as u64).wrapping_mul(MIX_B);
        (folded ^ (folded >> 32) ^ 0x5bd1_e995) & 0xffff_ffff
    } else {
        dst.bits as u64 & 0xffff_ffff
    };
    let mut x = (addr << 16) | u64::from(port);
    x = x.wrapping_mul(MIX_A) & LOW_48;
    x ^= x >> 24;
    x.wrapping_mul(MIX_B) & LOW_48
}

/// Counts distinct (destination address, destination port) pairs per window.
///
/// A slot is `generation << 48 | fingerprint`; a slot of another generation is free.
#[derive(Debug, Clone)]
pub struct ScanDetector {
    threshold: u32,
    window_ns: u64,
    window_start: Option<u64>,
    /// 1..=0xffff; 0 marks slots never used.
    generation: u64,
    pairs: u32,
    slots: Box<[u64]>,
}

impl ScanDetector {
    /// `threshold` ≥ 1 pairs within `window_ms` ≥ 1. Takes 16 bytes per pair of threshold
    /// (rounded up to a power of two): 1 MiB at [`super::config::MAX_SCAN_PORTS`].
    pub fn new(threshold: u32, window_ms: u32) -> ScanDetector {
        let threshold = threshold.max(1);
        let size = (threshold as usize * 2).next_power_of_two();
        ScanDetector {
            threshold,
            window_ns: u64::from(window_ms.max(1)) * NS_PER_MS,
            window_start: None,
            generation: 1,
            pairs: 0,
            slots: vec![0; size].into_boxed_slice(),
        }
    }

    fn next_window(&mut self, now_ns: u64) {
        self.window_start = Some(now_ns);
        self.pairs = 0;
        self.generation += 1;
        if self.generation > 0xffff {
            self.slots.fill(0);
            self.generation = 1;
        }
    }

    /// Counts a packet to `dst`:`port` at `now_ns`; `Some(distinct pairs, at most the
    /// threshold + 1)` when it is a scan alert.
    pub fn observe(&mut self, dst: IpKey, port: u16, now_ns: u64) -> Option<u32> {
        let start = *self.window_start.get_or_insert(now_ns);
        if now_ns.saturating_sub(start) >= self.window_ns {
            self.next_window(now_ns);
        }
        let print = fingerprint(dst, port);
        let entry = self.generation << 48 | print;
        let mask = self.slots.len() - 1;
        let mut index = (print ^ (print >> 29)) as usize & mask;
        // At most `threshold` of the `2 × threshold` slots are live: a free one turns up
        // within `threshold + 1` probes.
        for _ in 0..self.slots.len() {
            let Some(slot) = self.slots.get_mut(index) else {
                break;
            };
            if *slot == entry {
                return None;
            }
            if *slot >> 48 != self.generation {
                if self.pairs >= self.threshold {
                    break;
                }
                *slot = entry;
                self.pairs += 1;
                return (self.pairs >= self.threshold).then_some(self.pairs);
            }
            index = (index + 1) & mask;
        }
        // A new pair with the set full: past the threshold.
        Some(self.pairs.saturating_add(1))
    }

    /// Forgets the current window.
    pub fn reset(&mut self) {
        self.next_window(0);
        self.window_start = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const MS: u64 = 1_000_000;

    fn host(last: u8) -> IpKey {
        IpKey::from(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn frames_up_to_the_limit_within_a_second_raise_no_flood_alert() {
        let mut flood = FloodDetector::new(100);

        let alerts = (0..100).filter_map(|i| flood.observe(i * 5 * MS)).count();

        assert_eq!(alerts, 0);
    }

    #[test]
    fn every_frame_past_the_limit_within_a_second_is_a_flood_alert() {
        let mut flood = FloodDetector::new(100);

        let alerts: Vec<u32> = (0..103).filter_map(|i| flood.observe(i * MS)).collect();

        assert_eq!(alerts, [101, 102, 103]);
    }

    #[test]
    fn flood_count_starts_again_in_the_next_second() {
        let mut flood = FloodDetector::new(10);
        (0..20).for_each(|i| {
            flood.observe(i * MS);
        });

        let alert = flood.observe(1_000 * MS);

        assert_eq!(alert, None);
    }

    #[test]
    fn scan_alert_comes_with_the_threshold_th_distinct_pair() {
        let mut scan = ScanDetector::new(10, 1_000);

        let alerts: Vec<(u16, u32)> = (1..=12u16)
            .filter_map(|port| {
                scan.observe(host(2), port, u64::from(port) * MS)
                    .map(|n| (port, n))
            })
            .collect();

        assert_eq!(alerts, [(10, 10), (11, 11), (12, 11)]);
    }

    #[test]
    fn repeated_pairs_count_once() {
        let mut scan = ScanDetector::new(3, 1_000);

        let alerts = (0..1_000u64)
            .filter_map(|i| scan.observe(host((i % 2) as u8), 80, i * 100))
            .count();

        assert_eq!(alerts, 0);
    }

    #[test]
    fn pair_seen_before_the_threshold_still_passes_after_it() {
        let mut scan = ScanDetector::new(3, 1_000);
        (1..=5u16).for_each(|port| {
            scan.observe(host(2), port, 0);
        });

        let alert = scan.observe(host(2), 1, MS);

        assert_eq!(alert, None);
    }

    #[test]
    fn same_port_on_distinct_hosts_counts_as_distinct_pairs() {
        let mut scan = ScanDetector::new(4, 1_000);

        let alerts: Vec<u32> = (1..=4u8)
            .filter_map(|h| scan.observe(host(h), 22, 0))
            .collect();

        assert_eq!(alerts, [4]);
    }

    #[test]
    fn scan_count_starts_again_in_the_next_window() {
        let mut scan = ScanDetector::new(5, 100);
        (1..=4u16).for_each(|port| {
            scan.observe(host(2), port, 0);
        });

        let alerts = (5..=8u16)
            .filter_map(|port| scan.observe(host(2), port, 100 * MS))
            .count();

        assert_eq!(alerts, 0);
    }

    #[test]
    fn ipv4_pairs_never_share_a_fingerprint() {
        let prints: std::collections::HashSet<u64> = (0..=255u8)
            .flat_map(|h| (0..256u16).map(move |p| fingerprint(host(h), p * 257)))
            .collect();

        assert_eq!(prints.len(), 256 * 256);
    }

    #[test]
    fn scan_of_the_largest_threshold_counts_every_pair() {
        let mut scan = ScanDetector::new(super::super::config::MAX_SCAN_PORTS, 1_000);

        let first_alert = (0..=u16::MAX)
            .map(|port| scan.observe(host(7), port, 0))
            .position(|alert| alert.is_some());

        assert_eq!(first_alert, Some(65_535));
    }

    #[test]
    fn seventy_thousand_windows_wrap_the_generation_without_false_matches() {
        let mut scan = ScanDetector::new(2, 1);

        let alerts = (0..70_000u64)
            .filter_map(|w| scan.observe(host(1), (w % 7) as u16, w * MS))
            .count();

        assert_eq!(alerts, 0);
    }
}
