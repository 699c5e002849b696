//! MAC switching within a VLAN (IEEE 802.1Q §8.7–8.8, independent VLAN learning).
//!
//! Every port's MAC is a static entry: a port is never learned, and a frame from an uplink
//! that carries a port's MAC as its source does not move it. MACs behind uplinks are learned
//! from the source of frames arriving there, per (VLAN, MAC), in a table of
//! [`LEARNED_CAPACITY`] entries that age out after [`AGEING_NS`] without a frame (the Linux
//! bridge's default ageing time). Learning probes at most [`PROBES`] slots; when all are live
//! the oldest is replaced, so a flood of source MACs costs at worst unknown-unicast flooding,
//! never memory or time.
//!
//! Where a frame goes, given its VLAN (a port's own, or an uplink frame's tag):
//!
//! - group destination (broadcast, multicast), or a unicast one known nowhere in the VLAN:
//!   every other port of the VLAN and, from a port, every uplink;
//! - a port's MAC, that port being in the VLAN: that port (none if it is the sender);
//! - a MAC learned behind an uplink: that uplink, from a port.
//!
//! Frames from an uplink never go to an uplink (split horizon): with no spanning tree, this is
//! what keeps uplinks from forming a loop, so hosts whose bridges must all reach each other
//! need an uplink between every two of them.

use super::Attachment;
use crate::frame::MacAddr;

/// Entries of the learned-MAC table.
pub const LEARNED_CAPACITY: usize = 4096;
/// Slots probed per lookup or insertion.
pub const PROBES: usize = 8;
/// A learned entry without a frame for this long is forgotten (300 s).
pub const AGEING_NS: u64 = 300 * 1_000_000_000;

const OCCUPIED: u64 = 1 << 63;

#[derive(Debug, Clone, Copy, Default)]
struct Learned {
    /// `OCCUPIED | vlan << 48 | mac`; 0: empty.
    key: u64,
    uplink: u32,
    seen_ns: u64,
}

/// The learned-MAC table of the uplinks.
#[derive(Debug, Clone)]
pub struct MacTable {
    slots: Box<[Learned]>,
}

fn learned_key(vlan: Option<u16>, mac: MacAddr) -> u64 {
    OCCUPIED | u64::from(vlan.unwrap_or(0) & 0x0fff) << 48 | mac.to_u64()
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new()
    }
}

impl MacTable {
    pub fn new() -> MacTable {
        MacTable {
            slots: vec![Learned::default(); LEARNED_CAPACITY].into_boxed_slice(),
        }
    }

    fn home(key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % LEARNED_CAPACITY
    }

    fn live(entry: &Learned, now_ns: u64) -> bool {
        entry.key != 0 && now_ns.saturating_sub(entry.seen_ns) < AGEING_NS
    }

    /// The uplink behind (`vlan`, `mac`), if learned and not aged out at `now_ns`.
    pub fn lookup(&self, vlan: Option<u16>, mac: MacAddr, now_ns: u64) -> Option<usize> {
        let key = learned_key(vlan, mac);
        let home = Self::home(key);
        (0..PROBES)
            .filter_map(|i| self.slots.get((home + i) % LEARNED_CAPACITY))
            .find(|entry| entry.key == key)
            .filter(|entry| Self::live(entry, now_ns))
            .map(|entry| entry.uplink as usize)
    }

    /// Records that (`vlan`, `mac`) sent from `uplink` at `now_ns`.
    pub fn learn(&mut self, vlan: Option<u16>, mac: MacAddr, uplink: usize, now_ns: u64) {
        let key = learned_key(vlan, mac);
        let home = Self::home(key);
        // The slot holding the key, else the first free or aged-out one, else the oldest.
        let mut victim: Option<(usize, (bool, u64))> = None;
        for i in 0..PROBES {
            let index = (home + i) % LEARNED_CAPACITY;
            let Some(entry) = self.slots.get(index) else {
                continue;
            };
            if entry.key == key {
                victim = Some((index, (false, 0)));
                break;
            }
            let rank = (Self::live(entry, now_ns), entry.seen_ns);
            if victim.is_none_or(|(_, best)| rank < best) {
                victim = Some((index, rank));
            }
        }
        if let Some(slot) = victim.and_then(|(v, _)| self.slots.get_mut(v)) {
            *slot = Learned {
                key,
                uplink: u32::try_from(uplink).unwrap_or(u32::MAX),
                seen_ns: now_ns,
            };
        }
    }

    /// Live entries at `now_ns` (linear: for tests and diagnostics).
    pub fn len(&self, now_ns: u64) -> usize {
        self.slots.iter().filter(|e| Self::live(e, now_ns)).count()
    }

    /// Whether no entry is live at `now_ns`.
    pub fn is_empty(&self, now_ns: u64) -> bool {
        self.len(now_ns) == 0
    }
}

/// The switch: ports' VLANs and static MACs, the uplinks, the learned table.
#[derive(Debug, Clone)]
pub struct Switch {
    /// (MAC as integer, port), sorted by MAC.
    statics: Vec<(u64, usize)>,
    vlans: Vec<Option<u16>>,
    uplinks: usize,
    learned: MacTable,
}

impl Switch {
    /// `ports[i]` is port `i`'s (MAC, VLAN); MACs are distinct.
    pub fn new(ports: &[(MacAddr, Option<u16>)], uplinks: usize) -> Switch {
        let mut statics: Vec<(u64, usize)> = ports
            .iter()
            .enumerate()
            .map(|(i, (mac, _))| (mac.to_u64(), i))
            .collect();
        statics.sort_unstable();
        Switch {
            statics,
            vlans: ports.iter().map(|(_, vlan)| *vlan).collect(),
            uplinks,
            learned: MacTable::new(),
        }
    }

    /// The port whose static MAC is `mac`.
    pub fn port_of(&self, mac: MacAddr) -> Option<usize> {
        let key = mac.to_u64();
        self.statics
            .binary_search_by_key(&key, |&(m, _)| m)
            .ok()
            .and_then(|i| self.statics.get(i))
            .map(|&(_, port)| port)
    }

    /// The learned-MAC table.
    pub fn learned(&self) -> &MacTable {
        &self.learned
    }

    /// Learns the source of a frame from an uplink (see the module docs), then pushes where
    /// a frame of `vlan` from `source` to `dst` goes onto `out`.
    pub fn forward(
        &mut self,
        source: Attachment,
        vlan: Option<u16>,
        dst: MacAddr,
        src: MacAddr,
        now_ns: u64,
        out: &mut Vec<Attachment>,
    ) {
        if let Attachment::Uplink(uplink) = source {
            if !src.is_group() && self.port_of(src).is_none() {
                self.learned.learn(vlan, src, uplink, now_ns);
            }
        }
        if !dst.is_group() {
            if let Some(port) = self.port_of(dst) {
                if self.vlans.get(port) == Some(&vlan) {
                    if source != Attachment::Port(port) {
                        out.push(Attachment::Port(port));
                    }
                    return;
                }
            } else if let Some(uplink) = self.learned.lookup(vlan, dst, now_ns) {
                if matches!(source, Attachment::Port(_)) {
                    out.push(Attachment::Uplink(uplink));
                }
                return;
            }
        }
        self.flood(source, vlan, out);
    }

    fn flood(&self, source: Attachment, vlan: Option<u16>, out: &mut Vec<Attachment>) {
        let ports = self
            .vlans
            .iter()
            .enumerate()
            .filter(|&(port, &v)| v == vlan && source != Attachment::Port(port))
            .map(|(port, _)| Attachment::Port(port));
        out.extend(ports);
        if matches!(source, Attachment::Port(_)) {
            out.extend((0..self.uplinks).map(Attachment::Uplink));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, last])
    }

    /// Ports 0, 1, 2 untagged, 3 and 4 in VLAN 10; two uplinks.
    fn switch() -> Switch {
        Switch::new(
            &[
                (mac(0), None),
                (mac(1), None),
                (mac(2), None),
                (mac(3), Some(10)),
                (mac(4), Some(10)),
            ],
            2,
        )
    }

    fn forward(
        switch: &mut Switch,
        source: Attachment,
        vlan: Option<u16>,
        dst: MacAddr,
        now_ns: u64,
    ) -> Vec<Attachment> {
        let src = match source {
            Attachment::Port(p) => mac(p as u8),
            Attachment::Uplink(u) => mac(0x80 + u as u8),
        };
        let mut out = Vec::new();
        switch.forward(source, vlan, dst, src, now_ns, &mut out);
        out
    }

    #[test]
    fn unicast_to_a_port_goes_to_that_port_only() {
        let mut switch = switch();

        let out = forward(&mut switch, Attachment::Port(0), None, mac(2), 0);

        assert_eq!(out, [Attachment::Port(2)]);
    }

    #[test]
    fn broadcast_goes_to_every_other_port_of_the_vlan_and_every_uplink() {
        let mut switch = switch();

        let out = forward(
            &mut switch,
            Attachment::Port(1),
            None,
            MacAddr::BROADCAST,
            0,
        );

        assert_eq!(
            out,
            [
                Attachment::Port(0),
                Attachment::Port(2),
                Attachment::Uplink(0),
                Attachment::Uplink(1),
            ]
        );
    }

    #[test]
    fn broadcast_in_a_vlan_stays_in_the_vlan() {
        let mut switch = switch();

        let out = forward(
            &mut switch,
            Attachment::Port(3),
            Some(10),
            MacAddr::BROADCAST,
            0,
        );

        assert_eq!(
            out,
            [
                Attachment::Port(4),
                Attachment::Uplink(0),
                Attachment::Uplink(1)
            ]
        );
    }

    #[test]
    fn unicast_to_a_port_of_another_vlan_does_not_reach_it() {
        let mut switch = switch();

        let out = forward(&mut switch, Attachment::Port(0), None, mac(3), 0);

        assert!(!out.contains(&Attachment::Port(3)));
    }

    #[test]
    fn unicast_to_the_sender_itself_goes_nowhere() {
        let mut switch = switch();

        let out = forward(&mut switch, Attachment::Port(2), None, mac(2), 0);

        assert_eq!(out, []);
    }

    #[test]
    fn unknown_unicast_is_flooded_like_a_broadcast() {
        let mut switch = switch();

        let out = forward(&mut switch, Attachment::Port(0), None, mac(0x99), 0);

        assert_eq!(
            out,
            [
                Attachment::Port(1),
                Attachment::Port(2),
                Attachment::Uplink(0),
                Attachment::Uplink(1),
            ]
        );
    }

    #[test]
    fn mac_learned_from_an_uplink_receives_unicast_through_that_uplink_only() {
        let mut switch = switch();
        forward(
            &mut switch,
            Attachment::Uplink(1),
            None,
            MacAddr::BROADCAST,
            0,
        );

        let out = forward(&mut switch, Attachment::Port(0), None, mac(0x81), S);

        assert_eq!(out, [Attachment::Uplink(1)]);
    }

    #[test]
    fn learned_mac_ages_out_and_is_flooded_again() {
        let mut switch = switch();
        forward(
            &mut switch,
            Attachment::Uplink(1),
            None,
            MacAddr::BROADCAST,
            0,
        );

        let out = forward(&mut switch, Attachment::Port(0), None, mac(0x81), AGEING_NS);

        assert_eq!(out.len(), 4);
    }

    #[test]
    fn learning_is_per_vlan() {
        let mut switch = switch();
        forward(
            &mut switch,
            Attachment::Uplink(1),
            Some(10),
            MacAddr::BROADCAST,
            0,
        );

        let out = forward(&mut switch, Attachment::Port(0), None, mac(0x81), S);

        assert_eq!(out.len(), 4);
    }

    #[test]
    fn uplink_frames_go_to_ports_only() {
        let mut switch = switch();

        let out = forward(
            &mut switch,
            Attachment::Uplink(0),
            Some(10),
            MacAddr::BROADCAST,
            0,
        );

        assert_eq!(out, [Attachment::Port(3), Attachment::Port(4)]);
    }

    #[test]
    fn uplink_frame_with_a_port_mac_as_source_is_not_learned() {
        let mut switch = switch();
        let mut out = Vec::new();
        switch.forward(
            Attachment::Uplink(0),
            None,
            MacAddr::BROADCAST,
            mac(1),
            0,
            &mut out,
        );
        out.clear();

        switch.forward(Attachment::Port(0), None, mac(1), mac(0), S, &mut out);

        assert_eq!(
            (out, switch.learned().len(S)),
            (vec![Attachment::Port(1)], 0)
        );
    }

    #[test]
    fn learning_more_macs_than_the_table_holds_keeps_it_bounded() {
        let mut table = MacTable::new();

        (0..3 * LEARNED_CAPACITY as u64).for_each(|i| {
            let bytes = (i | 0x0200_0000_0000).to_be_bytes();
            let m = MacAddr([bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]]);
            table.learn(None, m, 0, i);
        });

        assert!(table.len(3 * LEARNED_CAPACITY as u64) <= LEARNED_CAPACITY);
    }

    #[test]
    fn mac_learned_into_a_full_table_replaces_an_older_one() {
        let mut table = MacTable::new();
        let filled = 3 * LEARNED_CAPACITY as u64;
        (0..filled).for_each(|i| {
            let bytes = (i | 0x0400_0000_0000).to_be_bytes();
            table.learn(
                None,
                MacAddr([bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]]),
                0,
                i,
            );
        });

        table.learn(None, mac(0x42), 1, filled);

        assert_eq!(table.lookup(None, mac(0x42), filled), Some(1));
    }

    #[test]
    fn mac_moving_to_another_uplink_is_relearned_there() {
        let mut table = MacTable::new();
        table.learn(None, mac(0x90), 0, 0);

        table.learn(None, mac(0x90), 1, S);

        assert_eq!(
            (table.lookup(None, mac(0x90), S), table.len(S)),
            (Some(1), 1)
        );
    }
}
