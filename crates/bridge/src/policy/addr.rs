//! IP addresses and prefixes as integers, for the spoof check and the firewall: a prefix
//! match is one mask and one compare. An IPv4 prefix never matches an IPv6 address, nor the
//! reverse (IPv4-mapped IPv6 addresses are IPv6 here).

use std::net::IpAddr;

use bulkhead_config::Cidr;

/// An IPv4 or IPv6 address: IPv4 in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpKey {
    pub v6: bool,
    pub bits: u128,
}

impl From<IpAddr> for IpKey {
    fn from(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => IpKey {
                v6: false,
                bits: u128::from(u32::from(v4)),
            },
            IpAddr::V6(v6) => IpKey {
                v6: true,
                bits: u128::from(v6),
            },
        }
    }
}

impl IpKey {
    /// `0.0.0.0` or `::`: a source that impersonates nobody (DHCP, duplicate address
    /// detection).
    pub const fn is_unspecified(self) -> bool {
        self.bits == 0
    }
}

/// A compiled [`Cidr`]: host bits of the address are cleared, a length beyond the family's
/// is taken as the full length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    v6: bool,
    bits: u128,
    mask: u128,
}

impl Prefix {
    pub fn new(cidr: &Cidr) -> Prefix {
        let key = IpKey::from(cidr.addr);
        let width: u32 = if key.v6 { 128 } else { 32 };
        let length = u32::from(cidr.prefix).min(width);
        let mask = if length == 0 {
            0
        } else {
            (u128::MAX << (128 - length)) >> (128 - width)
        };
        Prefix {
            v6: key.v6,
            bits: key.bits & mask,
            mask,
        }
    }

    /// Whether `addr` lies inside the prefix.
    pub fn contains(&self, addr: IpKey) -> bool {
        self.v6 == addr.v6 && addr.bits & self.mask == self.bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn prefix(addr: &str, length: u8) -> Prefix {
        Prefix::new(&Cidr {
            addr: addr.parse().unwrap(),
            prefix: length,
        })
    }

    fn key(addr: &str) -> IpKey {
        IpKey::from(addr.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn ipv4_prefix_contains_its_network_and_nothing_beside_it() {
        let net = prefix("10.1.2.0", 24);

        let inside = [
            net.contains(key("10.1.2.0")),
            net.contains(key("10.1.2.255")),
        ];
        let outside = [
            net.contains(key("10.1.3.0")),
            net.contains(key("10.1.1.255")),
        ];

        assert_eq!((inside, outside), ([true, true], [false, false]));
    }

    #[test]
    fn zero_length_prefix_contains_every_address_of_its_family_only() {
        let any4 = prefix("0.0.0.0", 0);

        let results = (
            any4.contains(IpKey::from(IpAddr::V4(Ipv4Addr::BROADCAST))),
            any4.contains(IpKey::from(IpAddr::V6(Ipv6Addr::UNSPECIFIED))),
        );

        assert_eq!(results, (true, false));
    }

    #[test]
    fn full_length_prefixes_match_one_address() {
        let host4 = prefix("192.168.0.7", 32);
        let host6 = prefix("fd00::7", 128);

        let results = [
            host4.contains(key("192.168.0.7")),
            host4.contains(key("192.168.0.6")),
            host6.contains(key("fd00::7")),
            host6.contains(key("fd00::6")),
        ];

        assert_eq!(results, [true, false, true, false]);
    }

    #[test]
    fn host_bits_of_a_prefix_are_ignored() {
        let net = prefix("fd00::1234", 64);

        let inside = net.contains(key("fd00::ffff:1"));

        assert!(inside);
    }

    #[test]
    fn ipv4_mapped_ipv6_address_is_not_in_an_ipv4_prefix() {
        let net = prefix("10.0.0.0", 8);

        let inside = net.contains(key("::ffff:10.0.0.1"));

        assert!(!inside);
    }
}
