//! The source check of a port: a frame from a port must come from the port's MAC, and, when
//! the port declares `ips`, from one of its addresses.
//!
//! - Ethernet source MAC = the port's MAC, and for ARP the sender hardware address too (ARP
//!   spoofing poisons the caches of every other guest of the VLAN);
//! - the IPv4 or IPv6 source address, and the ARP sender address, inside one of `ips` when
//!   there are any. The unspecified address (`0.0.0.0`, `::`) passes: it impersonates nobody,
//!   and DHCP and duplicate-address detection (RFC 5227 ARP probes, RFC 4862 neighbour
//!   solicitations) send from it. IPv6 is checked like IPv4: a port whose `ips` lists no IPv6
//!   prefix may send no IPv6 (give its link-local `fe80::/10` if it needs IPv6);
//! - a frame whose IP header is malformed (when malformed frames are only logged) is checked
//!   by MAC only.
//!
//! Frames from uplinks are not checked: the peer bridge checked its own ports.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use bulkhead_config::Cidr;

use super::addr::{IpKey, Prefix};
use crate::frame::{Frame, MacAddr, Network};

/// What was spoofed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoofed {
    SourceMac(MacAddr),
    SourceIp(IpAddr),
    ArpSenderMac(MacAddr),
    ArpSenderIp(Ipv4Addr),
}

impl fmt::Display for Spoofed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spoofed::SourceMac(mac) => write!(f, "source MAC {mac}"),
            Spoofed::SourceIp(ip) => write!(f, "source IP {ip}"),
            Spoofed::ArpSenderMac(mac) => write!(f, "ARP sender MAC {mac}"),
            Spoofed::ArpSenderIp(ip) => write!(f, "ARP sender IP {ip}"),
        }
    }
}

/// A port's allowed sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoofCheck {
    mac: MacAddr,
    ips: Vec<Prefix>,
}

impl SpoofCheck {
    pub fn new(mac: MacAddr, ips: &[Cidr]) -> SpoofCheck {
        SpoofCheck {
            mac,
            ips: ips.iter().map(Prefix::new).collect(),
        }
    }

    fn allows_ip(&self, addr: IpAddr) -> bool {
        let key = IpKey::from(addr);
        self.ips.is_empty() || key.is_unspecified() || self.ips.iter().any(|p| p.contains(key))
    }

    /// `Ok` if the frame comes from the port's own addresses.
    pub fn check(&self, frame: &Frame<'_>) -> Result<(), Spoofed> {
        if frame.src != self.mac {
            return Err(Spoofed::SourceMac(frame.src));
        }
        match frame.network {
            Network::Ipv4(ip) if !self.allows_ip(IpAddr::V4(ip.src)) => {
                Err(Spoofed::SourceIp(IpAddr::V4(ip.src)))
            }
            Network::Ipv6(ip) if !self.allows_ip(IpAddr::V6(ip.src)) => {
                Err(Spoofed::SourceIp(IpAddr::V6(ip.src)))
            }
            Network::Arp(arp) if arp.sender_mac != self.mac => {
                Err(Spoofed::ArpSenderMac(arp.sender_mac))
            }
            Network::Arp(arp) if !self.allows_ip(IpAddr::V4(arp.sender_ip)) => {
                Err(Spoofed::ArpSenderIp(arp.sender_ip))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::build::*;
    use crate::frame::{arp_op, ethertype, protocol};
    use std::net::Ipv6Addr;

    const OWN: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
    const OTHER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
    const OWN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const OTHER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);

    fn check() -> SpoofCheck {
        SpoofCheck::new(
            OWN,
            &[
                Cidr {
                    addr: IpAddr::V4(OWN_IP),
                    prefix: 32,
                },
                Cidr {
                    addr: "fe80::".parse().unwrap(),
                    prefix: 10,
                },
            ],
        )
    }

    fn udp_from(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
        ethernet(
            OTHER,
            mac,
            None,
            ethertype::IPV4,
            &ipv4(ip, OTHER_IP, protocol::UDP, &udp(1, 2, &[])),
        )
    }

    fn arp_from(mac: MacAddr, sender_mac: MacAddr, sender_ip: Ipv4Addr) -> Vec<u8> {
        ethernet(
            MacAddr::BROADCAST,
            mac,
            None,
            ethertype::ARP,
            &arp(
                arp_op::REQUEST,
                sender_mac,
                sender_ip,
                MacAddr::default(),
                OTHER_IP,
            ),
        )
    }

    #[test]
    fn frame_from_the_port_own_mac_and_address_passes() {
        let bytes = udp_from(OWN, OWN_IP);

        let result = check().check(&Frame::parse(&bytes).unwrap());

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn other_source_mac_is_spoofed() {
        let bytes = udp_from(OTHER, OWN_IP);

        let result = check().check(&Frame::parse(&bytes).unwrap());

        assert_eq!(result, Err(Spoofed::SourceMac(OTHER)));
    }

    #[test]
    fn source_ip_outside_the_port_addresses_is_spoofed() {
        let bytes = udp_from(OWN, OTHER_IP);

        let result = check().check(&Frame::parse(&bytes).unwrap());

        assert_eq!(result, Err(Spoofed::SourceIp(IpAddr::V4(OTHER_IP))));
    }

    #[test]
    fn ipv6_source_is_checked_against_ipv6_prefixes() {
        let send = |src: Ipv6Addr| {
            ethernet(
                OTHER,
                OWN,
                None,
                ethertype::IPV6,
                &ipv6(src, Ipv6Addr::LOCALHOST, protocol::UDP, &udp(1, 2, &[])),
            )
        };
        let (inside, outside) = (
            send("fe80::1".parse().unwrap()),
            send("fd00::1".parse().unwrap()),
        );

        let results = (
            check().check(&Frame::parse(&inside).unwrap()),
            check().check(&Frame::parse(&outside).unwrap()),
        );

        assert_eq!(
            results,
            (Ok(()), Err(Spoofed::SourceIp("fd00::1".parse().unwrap())))
        );
    }

    #[test]
    fn arp_with_another_sender_ip_is_spoofed() {
        let bytes = arp_from(OWN, OWN, OTHER_IP);

        let result = check().check(&Frame::parse(&bytes).unwrap());

        assert_eq!(result, Err(Spoofed::ArpSenderIp(OTHER_IP)));
    }

    #[test]
    fn arp_with_another_sender_mac_is_spoofed() {
        let bytes = arp_from(OWN, OTHER, OWN_IP);

        let result = check().check(&Frame::parse(&bytes).unwrap());

        assert_eq!(result, Err(Spoofed::ArpSenderMac(OTHER)));
    }

    #[test]
    fn arp_probe_from_the_unspecified_address_passes() {
        let bytes = arp_from(OWN, OWN, Ipv4Addr::UNSPECIFIED);

        let result = check().check(&Frame::parse(&bytes).unwrap());

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn port_without_ips_may_send_from_any_address() {
        let bytes = udp_from(OWN, OTHER_IP);

        let result = SpoofCheck::new(OWN, &[]).check(&Frame::parse(&bytes).unwrap());

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn spoofed_mac_prints_as_the_alert_detail() {
        let text = Spoofed::SourceMac(OTHER).to_string();

        assert_eq!(text, "source MAC 02:00:00:00:00:02");
    }
}
