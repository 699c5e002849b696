//! The firewall: for a frame from one attachment to another, the first rule that matches
//! decides; when none does, the frame is denied (default deny between every two ports, and
//! between ports and uplinks).
//!
//! A rule matches a frame going from `source` to `dest` when every condition it has holds:
//!
//! - `from` names `source` and `to` names `dest` (`Endpoint::Any` names every port and
//!   uplink);
//! - `ethertype` equals the frame's EtherType after any VLAN tag;
//! - a rule with `protocol`, `src`, `dst`, `src_ports` or `dst_ports` matches only IPv4 and
//!   IPv6 packets; an IPv4 prefix only IPv4 packets, an IPv6 prefix only IPv6 ones;
//! - `protocol` equals the IPv4 protocol, or the IPv6 Next Header that ends the extension
//!   headers ([`crate::frame`]);
//! - `src`/`dst` contain the source/destination address;
//! - `src_ports`/`dst_ports` (inclusive) contain the TCP or UDP source/destination port; a
//!   packet without ports (other protocols, fragments after the first) never matches a rule
//!   with ports, so fragmented traffic passes only under a rule without ports.
//!
//! A rule with `both_ways` also matches the mirrored frame: `from` naming `dest` and `to`
//! naming `source`, with `src`/`src_ports` tested against the frame's destination address and
//! port and `dst`/`dst_ports` against its source. ARP and other non-IP frames match only rules
//! without IP conditions.
//!
//! Work per decision: one pass over the rules, no allocation. The frame's fields are read
//! once into a [`FlowKey`], shared by every destination of a flooded frame.

use bulkhead_config::{Endpoint, RuleAction};

use super::addr::{IpKey, Prefix};
use super::config::Rule;
use super::Attachment;
use crate::frame::{Frame, Network, Transport};

/// What the firewall looks at in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    pub ethertype: u16,
    /// `None` for ARP, other EtherTypes and frames whose IP header was malformed.
    pub ip: Option<IpFlow>,
}

/// The IP fields of a [`FlowKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpFlow {
    pub protocol: u8,
    pub src: IpKey,
    pub dst: IpKey,
    /// TCP or UDP (source, destination) ports; `None` otherwise and for later fragments.
    pub ports: Option<(u16, u16)>,
}

impl FlowKey {
    pub fn of(frame: &Frame<'_>) -> FlowKey {
        let (protocol, src, dst, transport) = match frame.network {
            Network::Ipv4(ip) => (
                ip.protocol,
                IpKey::from(std::net::IpAddr::V4(ip.src)),
                IpKey::from(std::net::IpAddr::V4(ip.dst)),
                ip.transport,
            ),
            Network::Ipv6(ip) => (
                ip.protocol,
                IpKey::from(std::net::IpAddr::V6(ip.src)),
                IpKey::from(std::net::IpAddr::V6(ip.dst)),
                ip.transport,
            ),
            Network::Arp(_) | Network::Other | Network::Malformed(_) => {
                return FlowKey {
                    ethertype: frame.ethertype,
                    ip: None,
                }
            }
        };
        let ports = match transport {
            Transport::Tcp {
                src_port, dst_port, ..
            }
            | Transport::Udp { src_port, dst_port } => Some((src_port, dst_port)),
            Transport::Icmp { .. } | Transport::Fragment | Transport::Other => None,
        };
        FlowKey {
            ethertype: frame.ethertype,
            ip: Some(IpFlow {
                protocol,
                src,
                dst,
                ports,
            }),
        }
    }
}

/// What the firewall decided, and which rule decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Index of the deciding rule; `None`: no rule matched (denied).
    pub rule: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
struct CompiledRule {
    from: Endpoint,
    to: Endpoint,
    both_ways: bool,
    ethertype: Option<u16>,
    needs_ip: bool,
    protocol: Option<u8>,
    src: Option<Prefix>,
    dst: Option<Prefix>,
    src_ports: Option<(u16, u16)>,
    dst_ports: Option<(u16, u16)>,
    allow: bool,
}

/// The compiled rule list.
#[derive(Debug, Clone)]
pub struct Firewall {
    rules: Vec<CompiledRule>,
}

fn names(endpoint: Endpoint, attachment: Attachment) -> bool {
    match (endpoint, attachment) {
        (Endpoint::Any, _) => true,
        (Endpoint::Port(i), Attachment::Port(p)) => i == p,
        (Endpoint::Uplink(j), Attachment::Uplink(u)) => j == u,
        _ => false,
    }
}

fn in_range(range: Option<(u16, u16)>, port: u16) -> bool {
    range.is_none_or(|(lo, hi)| lo <= port && port <= hi)
}

fn in_prefix(prefix: Option<Prefix>, addr: IpKey) -> bool {
    prefix.is_none_or(|p| p.contains(addr))
}

impl CompiledRule {
    /// The address and port conditions, with the frame's (source, destination) as given:
    /// swapped for the mirrored match.
    fn addresses_match(&self, src: IpKey, dst: IpKey, ports: Option<(u16, u16)>) -> bool {
        in_prefix(self.src, src)
            && in_prefix(self.dst, dst)
            && match ports {
                Some((sp, dp)) => in_range(self.src_ports, sp) && in_range(self.dst_ports, dp),
                None => self.src_ports.is_none() && self.dst_ports.is_none(),
            }
    }

    fn matches(&self, source: Attachment, dest: Attachment, key: &FlowKey) -> bool {
        // The conditions that do not depend on the direction first: they are the cheapest.
        if self.ethertype.is_some_and(|e| e != key.ethertype) {
            return false;
        }
        let ip = match &key.ip {
            Some(ip) => {
                if self.protocol.is_some_and(|p| p != ip.protocol) {
                    return false;
                }
                Some(ip)
            }
            None if self.needs_ip => return false,
            None => None,
        };
        let forward = names(self.from, source) && names(self.to, dest);
        let mirrored = self.both_ways && names(self.from, dest) && names(self.to, source);
        match ip {
            None => forward || mirrored,
            Some(ip) => {
                (forward && self.addresses_match(ip.src, ip.dst, ip.ports))
                    || (mirrored
                        && self.addresses_match(ip.dst, ip.src, ip.ports.map(|(s, d)| (d, s))))
            }
        }
    }
}

impl Firewall {
    pub fn new(rules: &[Rule]) -> Firewall {
        let rules = rules
            .iter()
            .map(|rule| CompiledRule {
                from: rule.from,
                to: rule.to,
                both_ways: rule.both_ways,
                ethertype: rule.ethertype,
                needs_ip: rule.protocol.is_some()
                    || rule.src.is_some()
                    || rule.dst.is_some()
                    || rule.src_ports.is_some()
                    || rule.dst_ports.is_some(),
                protocol: rule.protocol,
                src: rule.src.as_ref().map(Prefix::new),
                dst: rule.dst.as_ref().map(Prefix::new),
                src_ports: rule.src_ports,
                dst_ports: rule.dst_ports,
                allow: rule.action == RuleAction::Allow,
            })
            .collect();
        Firewall { rules }
    }

    /// The decision for the frame `key` from `source` to `dest`.
    pub fn decide(&self, source: Attachment, dest: Attachment, key: &FlowKey) -> Decision {
        self.rules
            .iter()
            .position(|rule| rule.matches(source, dest, key))
            .map_or(
                Decision {
                    allowed: false,
                    rule: None,
                },
                |i| Decision {
                    allowed: self.rules.get(i).is_some_and(|rule| rule.allow),
                    rule: Some(i),
                },
            )
    }

    /// Whether the frame may go from `source` to `dest`.
    pub fn allows(&self, source: Attachment, dest: Attachment, key: &FlowKey) -> bool {
        self.decide(source, dest, key).allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::build::*;
    use crate::frame::{ethertype, protocol, tcp_flags, MacAddr};
    use bulkhead_config::Cidr;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const A: Attachment = Attachment::Port(0);
    const B: Attachment = Attachment::Port(1);
    const C: Attachment = Attachment::Port(2);
    const WAN: Attachment = Attachment::Uplink(0);
    const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(a, b, c, d)
    }

    fn cidr(addr: &str, prefix: u8) -> Option<Cidr> {
        Some(Cidr {
            addr: addr.parse().unwrap(),
            prefix,
        })
    }

    fn tcp_key(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> FlowKey {
        let bytes = ethernet(
            MAC_B,
            MAC_A,
            None,
            ethertype::IPV4,
            &ipv4(
                src,
                dst,
                protocol::TCP,
                &tcp(sport, dport, tcp_flags::SYN, &[]),
            ),
        );
        FlowKey::of(&Frame::parse(&bytes).unwrap())
    }

    fn arp_key() -> FlowKey {
        let bytes = ethernet(
            MacAddr::BROADCAST,
            MAC_A,
            None,
            ethertype::ARP,
            &arp(
                1,
                MAC_A,
                ip(10, 0, 0, 1),
                MacAddr::default(),
                ip(10, 0, 0, 2),
            ),
        );
        FlowKey::of(&Frame::parse(&bytes).unwrap())
    }

    fn web_rule(both_ways: bool) -> Rule {
        Rule {
            both_ways,
            protocol: Some(protocol::TCP),
            dst: cidr("10.0.0.2", 32),
            dst_ports: Some((80, 80)),
            ..Rule::allow(Endpoint::Port(0), Endpoint::Port(1))
        }
    }

    #[test]
    fn without_rules_everything_is_denied() {
        let firewall = Firewall::new(&[]);

        let decision = firewall.decide(A, B, &tcp_key(ip(10, 0, 0, 1), 4000, ip(10, 0, 0, 2), 80));

        assert_eq!(
            decision,
            Decision {
                allowed: false,
                rule: None
            }
        );
    }

    #[test]
    fn allowed_request_passes_and_other_ports_do_not() {
        let firewall = Firewall::new(&[web_rule(true)]);

        let web = firewall.allows(A, B, &tcp_key(ip(10, 0, 0, 1), 4000, ip(10, 0, 0, 2), 80));
        let ssh = firewall.allows(A, B, &tcp_key(ip(10, 0, 0, 1), 4000, ip(10, 0, 0, 2), 22));

        assert_eq!((web, ssh), (true, false));
    }

    #[test]
    fn both_ways_rule_lets_the_reply_through() {
        let firewall = Firewall::new(&[web_rule(true)]);

        let reply = firewall.allows(B, A, &tcp_key(ip(10, 0, 0, 2), 80, ip(10, 0, 0, 1), 4000));

        assert!(reply);
    }

    #[test]
    fn one_way_rule_does_not_let_the_reply_through() {
        let firewall = Firewall::new(&[web_rule(false)]);

        let reply = firewall.allows(B, A, &tcp_key(ip(10, 0, 0, 2), 80, ip(10, 0, 0, 1), 4000));

        assert!(!reply);
    }

    #[test]
    fn both_ways_rule_does_not_allow_the_reverse_request() {
        let firewall = Firewall::new(&[web_rule(true)]);

        let reverse = firewall.allows(B, A, &tcp_key(ip(10, 0, 0, 2), 4000, ip(10, 0, 0, 1), 80));

        assert!(!reverse);
    }

    #[test]
    fn port_ranges_are_inclusive_at_both_ends() {
        let rule = Rule {
            protocol: Some(protocol::TCP),
            dst_ports: Some((1000, 1999)),
            ..Rule::allow(Endpoint::Any, Endpoint::Any)
        };
        let firewall = Firewall::new(&[rule]);

        let results = [999, 1000, 1999, 2000]
            .map(|port| firewall.allows(A, B, &tcp_key(ip(10, 0, 0, 1), 5, ip(10, 0, 0, 2), port)));

        assert_eq!(results, [false, true, true, false]);
    }

    #[test]
    fn cidr_matches_only_addresses_inside_the_prefix() {
        let rule = Rule {
            src: cidr("10.1.0.0", 16),
            ..Rule::allow(Endpoint::Any, Endpoint::Any)
        };
        let firewall = Firewall::new(&[rule]);

        let inside = firewall.allows(A, B, &tcp_key(ip(10, 1, 200, 3), 5, ip(10, 0, 0, 2), 80));
        let outside = firewall.allows(A, B, &tcp_key(ip(10, 2, 0, 3), 5, ip(10, 0, 0, 2), 80));

        assert_eq!((inside, outside), (true, false));
    }

    #[test]
    fn first_matching_rule_wins() {
        let deny_ssh = Rule {
            protocol: Some(protocol::TCP),
            dst_ports: Some((22, 22)),
            ..Rule::deny(Endpoint::Any, Endpoint::Any)
        };
        let firewall = Firewall::new(&[deny_ssh, Rule::allow(Endpoint::Any, Endpoint::Any)]);

        let ssh = firewall.decide(A, B, &tcp_key(ip(10, 0, 0, 1), 5, ip(10, 0, 0, 2), 22));
        let web = firewall.decide(A, B, &tcp_key(ip(10, 0, 0, 1), 5, ip(10, 0, 0, 2), 80));

        assert_eq!(
            ssh,
            Decision {
                allowed: false,
                rule: Some(0)
            }
        );
        assert_eq!(
            web,
            Decision {
                allowed: true,
                rule: Some(1)
            }
        );
    }

    #[test]
    fn rule_between_two_ports_says_nothing_about_a_third() {
        let firewall = Firewall::new(&[Rule::allow(Endpoint::Port(0), Endpoint::Port(1))]);

        let to_c = firewall.allows(A, C, &arp_key());

        assert!(!to_c);
    }

    #[test]
    fn uplink_endpoint_names_only_that_uplink() {
        let firewall = Firewall::new(&[Rule::allow(Endpoint::Port(0), Endpoint::Uplink(0))]);

        let results = (
            firewall.allows(A, WAN, &arp_key()),
            firewall.allows(WAN, A, &arp_key()),
            firewall.allows(A, Attachment::Uplink(1), &arp_key()),
        );

        assert_eq!(results, (true, true, false));
    }

    #[test]
    fn arp_matches_an_ethertype_rule_but_not_one_with_ip_conditions() {
        let by_type = Rule {
            ethertype: Some(ethertype::ARP),
            ..Rule::allow(Endpoint::Any, Endpoint::Any)
        };
        let by_protocol = Rule {
            protocol: Some(protocol::TCP),
            ..Rule::allow(Endpoint::Any, Endpoint::Any)
        };

        let results = (
            Firewall::new(&[by_type]).allows(A, B, &arp_key()),
            Firewall::new(&[by_protocol]).allows(A, B, &arp_key()),
        );

        assert_eq!(results, (true, false));
    }

    #[test]
    fn later_fragment_does_not_match_a_rule_with_ports() {
        let rule = Rule {
            protocol: Some(protocol::UDP),
            dst_ports: Some((0, 65535)),
            ..Rule::allow(Endpoint::Any, Endpoint::Any)
        };
        let bytes = ethernet(
            MAC_B,
            MAC_A,
            None,
            ethertype::IPV4,
            &ipv4_fragment(
                ip(10, 0, 0, 1),
                ip(10, 0, 0, 2),
                protocol::UDP,
                100,
                false,
                &[0; 8],
            ),
        );
        let key = FlowKey::of(&Frame::parse(&bytes).unwrap());

        let allowed = Firewall::new(&[rule]).allows(A, B, &key);

        assert!(!allowed);
    }

    #[test]
    fn ipv4_prefix_does_not_match_an_ipv6_packet() {
        let rule = Rule {
            src: cidr("0.0.0.0", 0),
            ..Rule::allow(Endpoint::Any, Endpoint::Any)
        };
        let bytes = ethernet(
            MAC_B,
            MAC_A,
            None,
            ethertype::IPV6,
            &ipv6(
                Ipv6Addr::LOCALHOST,
                Ipv6Addr::LOCALHOST,
                protocol::UDP,
                &udp(1, 2, &[]),
            ),
        );
        let key = FlowKey::of(&Frame::parse(&bytes).unwrap());

        let allowed = Firewall::new(&[rule]).allows(A, B, &key);

        assert!(!allowed);
    }

    // ---- Differential test against an independent oracle ----------------------------------

    /// A frame as the oracle sees it: the fields it was built from, not what the parser read.
    #[derive(Debug, Clone)]
    struct Spec {
        kind: Kind,
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
        vlan: Option<u16>,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Tcp,
        Udp,
        Icmp,
        /// IPv4 fragment after the first, UDP.
        LaterFragment,
        Arp,
        /// EtherType 0x88b5 (local experimental).
        Opaque,
    }

    impl Spec {
        fn ethertype(&self) -> u16 {
            match (self.kind, self.src) {
                (Kind::Arp, _) => ethertype::ARP,
                (Kind::Opaque, _) => 0x88b5,
                (_, IpAddr::V4(_)) => ethertype::IPV4,
                (_, IpAddr::V6(_)) => ethertype::IPV6,
            }
        }

        fn is_ip(&self) -> bool {
            !matches!(self.kind, Kind::Arp | Kind::Opaque)
        }

        fn protocol(&self) -> u8 {
            match (self.kind, self.src) {
                (Kind::Tcp, _) => protocol::TCP,
                (Kind::Icmp, IpAddr::V4(_)) => protocol::ICMP,
                (Kind::Icmp, IpAddr::V6(_)) => protocol::ICMPV6,
                _ => protocol::UDP,
            }
        }

        fn has_ports(&self) -> bool {
            matches!(self.kind, Kind::Tcp | Kind::Udp)
        }

        fn bytes(&self) -> Vec<u8> {
            let l4 = match self.kind {
                Kind::Tcp => tcp(self.sport, self.dport, tcp_flags::ACK, b"data"),
                Kind::Udp => udp(self.sport, self.dport, b"data"),
                Kind::Icmp => icmp(8, 0, b"ping"),
                Kind::LaterFragment => vec![0; 16],
                Kind::Arp | Kind::Opaque => Vec::new(),
            };
            let l3 = match (self.kind, self.src, self.dst) {
                (Kind::Arp, _, _) => arp(1, MAC_A, ip(10, 0, 0, 1), MAC_B, ip(10, 0, 0, 2)),
                (Kind::Opaque, _, _) => vec![0xaa; 30],
                (Kind::LaterFragment, IpAddr::V4(s), IpAddr::V4(d)) => {
                    ipv4_fragment(s, d, protocol::UDP, 7, true, &l4)
                }
                (Kind::LaterFragment, IpAddr::V6(s), IpAddr::V6(d)) => ipv6(
                    s,
                    d,
                    protocol::FRAGMENT,
                    &ipv6_fragment(protocol::UDP, 7, true, &l4),
                ),
                (_, IpAddr::V4(s), IpAddr::V4(d)) => ipv4(s, d, self.protocol(), &l4),
                (_, IpAddr::V6(s), IpAddr::V6(d)) => ipv6(s, d, self.protocol(), &l4),
                _ => unreachable!("generated addresses share a family"),
            };
            ethernet(MAC_B, MAC_A, self.vlan, self.ethertype(), &l3)
        }

        fn mirrored(&self) -> Spec {
            Spec {
                src: self.dst,
                dst: self.src,
                sport: self.dport,
                dport: self.sport,
                ..self.clone()
            }
        }
    }

    /// Bit by bit, from the most significant: the first `prefix` bits agree.
    fn oracle_in_cidr(cidr: &Cidr, addr: IpAddr) -> bool {
        let octets = |a: IpAddr| -> ([u8; 16], usize) {
            match a {
                IpAddr::V4(v4) => {
                    let mut bytes = [0; 16];
                    bytes[..4].copy_from_slice(&v4.octets());
                    (bytes, 32)
                }
                IpAddr::V6(v6) => (v6.octets(), 128),
            }
        };
        let ((net, net_bits), (host, host_bits)) = (octets(cidr.addr), octets(addr));
        let bit = |bytes: &[u8; 16], i: usize| (bytes[i / 8] >> (7 - i % 8)) & 1;
        net_bits == host_bits
            && (0..usize::from(cidr.prefix)).all(|i| bit(&net, i) == bit(&host, i))
    }

    fn oracle_endpoint(endpoint: Endpoint, at: Attachment) -> bool {
        match endpoint {
            Endpoint::Any => true,
            Endpoint::Port(i) => at == Attachment::Port(i),
            Endpoint::Uplink(j) => at == Attachment::Uplink(j),
        }
    }

    /// Matches `spec` from `from` to `to` in the rule's own direction only.
    fn oracle_forward(rule: &Rule, spec: &Spec, from: Attachment, to: Attachment) -> bool {
        if !oracle_endpoint(rule.from, from) || !oracle_endpoint(rule.to, to) {
            return false;
        }
        if let Some(e) = rule.ethertype {
            if e != spec.ethertype() {
                return false;
            }
        }
        let ip_conditions = rule.protocol.is_some()
            || rule.src.is_some()
            || rule.dst.is_some()
            || rule.src_ports.is_some()
            || rule.dst_ports.is_some();
        if !ip_conditions {
            return true;
        }
        if !spec.is_ip() {
            return false;
        }
        if let Some(p) = rule.protocol {
            if p != spec.protocol() {
                return false;
            }
        }
        if let Some(c) = &rule.src {
            if !oracle_in_cidr(c, spec.src) {
                return false;
            }
        }
        if let Some(c) = &rule.dst {
            if !oracle_in_cidr(c, spec.dst) {
                return false;
            }
        }
        if rule.src_ports.is_some() || rule.dst_ports.is_some() {
            if !spec.has_ports() {
                return false;
            }
            if let Some((lo, hi)) = rule.src_ports {
                if spec.sport < lo || spec.sport > hi {
                    return false;
                }
            }
            if let Some((lo, hi)) = rule.dst_ports {
                if spec.dport < lo || spec.dport > hi {
                    return false;
                }
            }
        }
        true
    }

    /// The index of the first rule that matches, forward or (both_ways) mirrored.
    fn oracle(rules: &[Rule], spec: &Spec, from: Attachment, to: Attachment) -> Option<usize> {
        for (i, rule) in rules.iter().enumerate() {
            if oracle_forward(rule, spec, from, to) {
                return Some(i);
            }
            if rule.both_ways && oracle_forward(rule, &spec.mirrored(), to, from) {
                return Some(i);
            }
        }
        None
    }

    const ADDRS4: [[u8; 4]; 5] = [
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        [10, 0, 1, 9],
        [192, 168, 7, 7],
        [10, 128, 0, 1],
    ];
    const ADDRS6: [u16; 4] = [0x0001, 0x0002, 0x8000, 0xffff];

    /// One of ports 0..3 and uplinks 0..2.
    fn attachment(word: u64) -> Attachment {
        match word % 5 {
            n @ 0..=2 => Attachment::Port(n as usize),
            n => Attachment::Uplink(n as usize - 3),
        }
    }

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        prop_oneof![
            2 => Just(Endpoint::Any),
            3 => (0usize..3).prop_map(Endpoint::Port),
            1 => (0usize..2).prop_map(Endpoint::Uplink),
        ]
    }

    fn addr6(i: usize) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            ADDRS6[i % ADDRS6.len()],
            0,
            0,
            1,
        ))
    }

    fn addr4(i: usize) -> IpAddr {
        IpAddr::from(ADDRS4[i % ADDRS4.len()])
    }

    /// A port number near the edges rules use, or any (picked by `selector`).
    fn port_number(selector: u64, any: u16) -> u16 {
        [22, 80, 81, 1023, 1024, 65535, any, any][(selector % 8) as usize]
    }

    fn port_strategy() -> impl Strategy<Value = u16> {
        (any::<u64>(), any::<u16>()).prop_map(|(selector, any)| port_number(selector, any))
    }

    /// A frame, its source and its destination from 64 random bits (0: TCP over IPv4
    /// between port 0's favourite addresses, the simplest case proptest shrinks towards).
    fn case(word: u64) -> (Spec, Attachment, Attachment) {
        let bits = |shift: u32, width: u32| (word >> shift) & ((1 << width) - 1);
        let kind = [
            Kind::Tcp,
            Kind::Tcp,
            Kind::Tcp,
            Kind::Tcp,
            Kind::Udp,
            Kind::Udp,
            Kind::Udp,
            Kind::Icmp,
            Kind::LaterFragment,
            Kind::Arp,
            Kind::Opaque,
        ][(bits(0, 8) % 11) as usize];
        let v6 = bits(8, 2) == 3;
        let (src, dst) = if v6 {
            (addr6(bits(10, 3) as usize), addr6(bits(13, 3) as usize))
        } else {
            (addr4(bits(10, 3) as usize), addr4(bits(13, 3) as usize))
        };
        let any_port = bits(32, 16) as u16;
        let spec = Spec {
            kind,
            src,
            dst,
            sport: port_number(bits(16, 3), any_port),
            dport: port_number(bits(19, 3), any_port.rotate_left(7)),
            vlan: (bits(22, 3) == 7).then(|| 1 + (bits(48, 12) as u16) % 4094),
        };
        (spec, attachment(bits(25, 3)), attachment(bits(28, 3)))
    }

    fn cidr_strategy() -> impl Strategy<Value = Cidr> {
        let v4 = (0..ADDRS4.len(), 0u8..=32).prop_map(|(i, prefix)| Cidr {
            addr: IpAddr::from(ADDRS4[i]),
            prefix,
        });
        let v6 = (
            0..ADDRS6.len(),
            prop_oneof![Just(0u8), Just(48), 60u8..=70, Just(128)],
        )
            .prop_map(|(i, prefix)| Cidr {
                addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, ADDRS6[i], 0, 0, 1)),
                prefix,
            });
        prop_oneof![3 => v4, 1 => v6]
    }

    fn range() -> impl Strategy<Value = (u16, u16)> {
        (port_strategy(), port_strategy()).prop_map(|(a, b)| (a.min(b), a.max(b)))
    }

    fn rule() -> impl Strategy<Value = Rule> {
        let ethertype = prop::option::weighted(
            0.2,
            prop::sample::select(vec![
                ethertype::IPV4,
                ethertype::IPV6,
                ethertype::ARP,
                0x88b5,
            ]),
        );
        let protocol = prop::option::weighted(
            0.4,
            prop::sample::select(vec![
                protocol::TCP,
                protocol::UDP,
                protocol::ICMP,
                protocol::ICMPV6,
            ]),
        );
        (
            (endpoint(), endpoint(), any::<bool>(), ethertype, protocol),
            (
                prop::option::weighted(0.3, cidr_strategy()),
                prop::option::weighted(0.3, cidr_strategy()),
                prop::option::weighted(0.25, range()),
                prop::option::weighted(0.25, range()),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (from, to, both_ways, ethertype, protocol),
                    (src, dst, src_ports, dst_ports, allow),
                )| Rule {
                    from,
                    to,
                    both_ways,
                    ethertype,
                    protocol,
                    src,
                    dst,
                    src_ports,
                    dst_ports,
                    action: if allow {
                        RuleAction::Allow
                    } else {
                        RuleAction::Deny
                    },
                },
            )
    }

    /// Cases per run of the differential test: rule sets × frames per set.
    const RULE_SETS: u32 = 2000;
    const FRAMES_PER_SET: usize = 64;

    proptest! {
        #![proptest_config(ProptestConfig { cases: RULE_SETS, ..ProptestConfig::default() })]

        /// 2000 rule sets × 64 frames = 128 000 (frame, rule set) cases per run.
        #[test]
        fn firewall_agrees_with_the_oracle_on_random_frames_and_rule_sets(
            rules in prop::collection::vec(rule(), 0..10),
            words in prop::collection::vec(any::<u64>(), FRAMES_PER_SET),
        ) {
            let firewall = Firewall::new(&rules);

            for (spec, from, to) in words.iter().map(|&word| case(word)) {
                let bytes = spec.bytes();
                let frame = Frame::parse(&bytes).unwrap();
                let decision = firewall.decide(from, to, &FlowKey::of(&frame));
                let expected = oracle(&rules, &spec, from, to);
                let allowed = expected
                    .and_then(|i| rules.get(i))
                    .is_some_and(|r| r.action == RuleAction::Allow);

                prop_assert_eq!(
                    decision,
                    Decision { allowed, rule: expected },
                    "{:?} {:?}->{:?}", spec, from, to
                );
            }
        }
    }
}
