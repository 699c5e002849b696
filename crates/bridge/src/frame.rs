//! A checked, zero-copy view of an Ethernet frame's headers: the frame a port or an uplink
//! hands the bridge, without the virtio-net header. [`Frame::parse`] reads the Ethernet
//! header (IEEE 802.3 clause 3.1.1), at most one 802.1Q VLAN tag (IEEE 802.1Q §9.6), then
//! by EtherType ARP over Ethernet/IPv4 (RFC 826), IPv4 (RFC 791) or IPv6 (RFC 8200), and
//! inside IP the first bytes of TCP (RFC 9293), UDP (RFC 768), ICMP (RFC 792) and ICMPv6
//! (RFC 4443). Any other EtherType is [`Network::Other`], any other IP protocol
//! [`Transport::Other`]: opaque, for the firewall to allow or deny by number.
//!
//! Runs once per frame, on the bridge thread that received it (through the policy pipeline).
//! Every byte comes from a guest that may be hostile: the parser reads only through
//! bounds-checked accessors, never panics, does bounded work (at most
//! [`MAX_IPV6_EXTENSION_HEADERS`] IPv6 extension headers) and does not allocate. Checksums
//! are not checked: a guest with checksum offload leaves them partial. Frames up to 64 KiB
//! (segmentation offload) are parsed like any other.
//!
//! A frame is [`Malformed`] when it is shorter than its headers say, or when its headers
//! contradict themselves or hide what follows:
//!
//! - shorter than an Ethernet header or its VLAN tag; a second VLAN tag (802.1Q inside
//!   802.1Q, or an 802.1ad/0x9100 service tag), which could carry an inner header past the
//!   firewall; VLAN ID 4095 (reserved); a group (multicast) source MAC;
//! - IPv4: version not 4, IHL below 5, header or total length beyond the frame, total length
//!   below the header; a TCP fragment at offset 8 bytes (RFC 1858 §3.2: it can rewrite the
//!   first fragment's TCP flags);
//! - IPv6: version not 6, payload length beyond the frame, an extension header beyond the
//!   payload or more than [`MAX_IPV6_EXTENSION_HEADERS`] of them;
//! - ARP shorter than 28 bytes or not Ethernet/IPv4 (the IP spoof check needs its sender IP);
//! - in a first (or only) fragment: a TCP header shorter than 20 bytes or than its data
//!   offset, a UDP header shorter than 8 bytes or (unfragmented) a UDP length below 8 or
//!   beyond the IP payload, ICMP shorter than 4 bytes (RFC 1858 §3.1 and RFC 7112: the first
//!   fragment carries the whole transport header).
//!
//! Only the first fragment (offset 0) carries transport ports: a later one is
//! [`Transport::Fragment`]. Padding after the IP packet (Ethernet's 60-byte minimum) is
//! allowed and ignored.
//!
//! IPv6 extension headers: hop-by-hop options (0), routing (43), fragment (44), destination
//! options (60) and the authentication header (51) are walked, at most
//! [`MAX_IPV6_EXTENSION_HEADERS`] of them; the first other Next Header value ends the walk and
//! is the packet's protocol (this includes ESP 50, No Next Header 59, and the rare Mobility
//! 135, HIP 139 and Shim6 140 headers, which are not walked). A non-first fragment ends the
//! walk too, with the fragment header's Next Header as protocol. A receiver discards what it
//! cannot parse the same way, so nothing reaches a transport the firewall did not see.
//!
//! [`Frame::parse_lenient`] differs from [`Frame::parse`] only in what it does with a broken
//! network or transport header: it returns the Ethernet fields with
//! [`Network::Malformed`], for a policy that logs malformed frames and lets them go on as
//! plain Ethernet. [`build`] writes well-formed frames for tests, benchmarks and fuzz seeds.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Destination, source, EtherType (IEEE 802.3 clause 3.1.1).
pub const ETHERNET_HEADER_LEN: usize = 14;
/// TPID and TCI of an 802.1Q tag (IEEE 802.1Q §9.6).
pub const VLAN_TAG_LEN: usize = 4;
/// Largest VLAN ID; 4095 is reserved (IEEE 802.1Q table 9-2).
pub const MAX_VLAN_ID: u16 = 4094;
/// IPv6 extension headers walked before the parser gives up (see the module docs).
pub const MAX_IPV6_EXTENSION_HEADERS: usize = 8;

const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const ARP_LEN: usize = 28;
const TCP_MIN_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
const ICMP_MIN_LEN: usize = 4;
const IPV6_FRAGMENT_HEADER_LEN: usize = 8;

/// EtherType values (IEEE registry).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// Customer VLAN tag (IEEE 802.1Q).
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
    /// Service VLAN tag (IEEE 802.1ad).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard service VLAN tag.
    pub const QINQ_LEGACY: u16 = 0x9100;
}

/// IP protocol and IPv6 Next Header numbers (IANA registry).
pub mod protocol {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AUTHENTICATION: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DESTINATION_OPTIONS: u8 = 60;
}

/// ARP operation codes (RFC 826).
pub mod arp_op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

/// Why a frame is malformed (see the module docs for each rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("frame of {len} bytes is shorter than an Ethernet header")]
    EthernetTruncated { len: usize },
    #[error("frame ends inside its VLAN tag")]
    VlanTruncated,
    #[error("stacked or service VLAN tag (EtherType {ethertype:#06x})")]
    StackedVlanTag { ethertype: u16 },
    #[error("VLAN ID 4095 is reserved")]
    ReservedVlanId,
    #[error("source MAC {mac} is a group address")]
    GroupSourceMac { mac: MacAddr },
    #[error("frame ends inside the IPv4 header")]
    Ipv4Truncated,
    #[error("IPv4 header with version {version}")]
    Ipv4Version { version: u8 },
    #[error("IPv4 header length {ihl} below 5")]
    Ipv4HeaderLength { ihl: u8 },
    #[error("IPv4 total length {total} outside {header}..={available} bytes")]
    Ipv4TotalLength {
        total: u16,
        header: u8,
        available: usize,
    },
    #[error("TCP fragment at offset 8 bytes (RFC 1858)")]
    TinyFragment,
    #[error("frame ends inside the IPv6 header")]
    Ipv6Truncated,
    #[error("IPv6 header with version {version}")]
    Ipv6Version { version: u8 },
    #[error("IPv6 payload length {payload} beyond the {available} bytes after the header")]
    Ipv6PayloadLength { payload: u16, available: usize },
    #[error("IPv6 extension header {header} ends beyond the payload")]
    Ipv6ExtensionTruncated { header: u8 },
    #[error("more than 8 IPv6 extension headers")]
    Ipv6ExtensionChain,
    #[error("ARP packet of {len} bytes is shorter than 28")]
    ArpTruncated { len: usize },
    #[error("ARP packet is not Ethernet/IPv4 (hardware {hardware}, protocol {protocol:#06x})")]
    ArpFormat { hardware: u16, protocol: u16 },
    #[error("TCP header ends beyond the IP payload")]
    TcpTruncated,
    #[error("TCP data offset {offset} below 5")]
    TcpDataOffset { offset: u8 },
    #[error("UDP header ends beyond the IP payload")]
    UdpTruncated,
    #[error("UDP length {length} outside 8..={available}")]
    UdpLength { length: u16, available: usize },
    #[error("ICMP message shorter than 4 bytes")]
    IcmpTruncated,
}

/// A MAC address (IEEE 802 EUI-48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// A group (multicast or broadcast) address: the I/G bit, bit 0 of the first octet.
    pub const fn is_group(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The address as the low 48 bits of an integer, first octet most significant.
    pub const fn to_u64(self) -> u64 {
        let [a, b, c, d, e, f] = self.0;
        u64::from_be_bytes([0, 0, a, b, c, d, e, f])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(bytes: [u8; 6]) -> Self {
        MacAddr(bytes)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// An 802.1Q tag's control information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// Priority code point (0..=7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN ID: 0 (a priority tag: the frame belongs to no VLAN) or 1..=4094.
    pub vid: u16,
}

/// A parsed frame: the Ethernet fields and what the EtherType announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    pub dst: MacAddr,
    pub src: MacAddr,
    /// The 802.1Q tag, if the frame has one.
    pub vlan: Option<VlanTag>,
    /// The EtherType after any VLAN tag (below 0x0600: an 802.3 length, kept as is).
    pub ethertype: u16,
    pub network: Network,
}

/// The header the EtherType announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Ipv4(Ipv4),
    Ipv6(Ipv6),
    Arp(Arp),
    /// An EtherType this module does not parse.
    Other,
    /// The network or transport header was broken; only from [`Frame::parse_lenient`].
    Malformed(Malformed),
}

/// The fields of an IPv4 header the policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4 {
    /// In bytes (IHL × 4): 20..=60.
    pub header_len: u8,
    /// In bytes, header included; within the frame.
    pub total_len: u16,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// In 8-byte units; only offset 0 has a transport header.
    pub fragment_offset: u16,
    pub more_fragments: bool,
    pub transport: Transport,
}

/// The fields of an IPv6 header and its extension headers the policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6 {
    pub payload_len: u16,
    /// The Next Header value that ended the extension-header walk (see the module docs).
    pub protocol: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The fragment header's offset in 8-byte units, if there is one.
    pub fragment_offset: Option<u16>,
    pub transport: Transport,
}

/// ARP for IPv4 over Ethernet (RFC 826).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub operation: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

/// The start of the transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp {
        src_port: u16,
        dst_port: u16,
        /// The 8 flag bits (CWR … FIN) of byte 13.
        flags: u8,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    /// ICMP or ICMPv6, by the packet's protocol.
    Icmp {
        kind: u8,
        code: u8,
    },
    /// A fragment after the first: no transport header.
    Fragment,
    /// A protocol this module does not parse.
    Other,
}

/// TCP flag bits (RFC 9293 §3.1).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

impl<'a> Frame<'a> {
    /// Parses every header, failing on the first broken one.
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, Malformed> {
        let frame = Frame::parse_lenient(bytes)?;
        match frame.network {
            Network::Malformed(reason) => Err(reason),
            _ => Ok(frame),
        }
    }

    /// Parses every header; fails only when the Ethernet header or VLAN tag is broken, and
    /// reports a broken network or transport header as [`Network::Malformed`].
    pub fn parse_lenient(bytes: &'a [u8]) -> Result<Frame<'a>, Malformed> {
        let (header, rest) = bytes
            .split_first_chunk::<ETHERNET_HEADER_LEN>()
            .ok_or(Malformed::EthernetTruncated { len: bytes.len() })?;
        let dst = MacAddr([
            header[0], header[1], header[2], header[3], header[4], header[5],
        ]);
        let src = MacAddr([
            header[6], header[7], header[8], header[9], header[10], header[11],
        ]);
        if src.is_group() {
            return Err(Malformed::GroupSourceMac { mac: src });
        }
        let mut ethertype = u16::from_be_bytes([header[12], header[13]]);
        let mut payload = rest;
        let mut vlan = None;
        if ethertype == ethertype::VLAN {
            let (tag, rest) = payload
                .split_first_chunk::<VLAN_TAG_LEN>()
                .ok_or(Malformed::VlanTruncated)?;
            let tci = u16::from_be_bytes([tag[0], tag[1]]);
            let vid = tci & 0x0fff;
            if vid > MAX_VLAN_ID {
                return Err(Malformed::ReservedVlanId);
            }
            vlan = Some(VlanTag {
                pcp: (tci >> 13) as u8,
                dei: tci & 0x1000 != 0,
                vid,
            });
            ethertype = u16::from_be_bytes([tag[2], tag[3]]);
            payload = rest;
        }
        if matches!(
            ethertype,
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_LEGACY
        ) {
            return Err(Malformed::StackedVlanTag { ethertype });
        }
        let network = match ethertype {
            ethertype::IPV4 => parse_ipv4(payload).map(Network::Ipv4),
            ethertype::IPV6 => parse_ipv6(payload).map(Network::Ipv6),
            ethertype::ARP => parse_arp(payload).map(Network::Arp),
            _ => Ok(Network::Other),
        }
        .unwrap_or_else(Network::Malformed);
        Ok(Frame {
            bytes,
            dst,
            src,
            vlan,
            ethertype,
            network,
        })
    }

    /// The whole frame.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a parsed frame holds at least an Ethernet header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The VLAN the tag names: `None` for an untagged or priority-tagged frame.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan.map(|tag| tag.vid).filter(|&vid| vid != 0)
    }

    /// The transport header of an IPv4 or IPv6 packet.
    pub fn transport(&self) -> Option<Transport> {
        match self.network {
            Network::Ipv4(ip) => Some(ip.transport),
            Network::Ipv6(ip) => Some(ip.transport),
            _ => None,
        }
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*pair.first()?, *pair.get(1)?]))
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn parse_ipv4(payload: &[u8]) -> Result<Ipv4, Malformed> {
    let header = payload
        .first_chunk::<IPV4_MIN_HEADER_LEN>()
        .ok_or(Malformed::Ipv4Truncated)?;
    let version = header[0] >> 4;
    if version != 4 {
        return Err(Malformed::Ipv4Version { version });
    }
    let ihl = header[0] & 0x0f;
    if ihl < 5 {
        return Err(Malformed::Ipv4HeaderLength { ihl });
    }
    let header_len = usize::from(ihl) * 4;
    if header_len > payload.len() {
        return Err(Malformed::Ipv4Truncated);
    }
    let total_len = u16::from_be_bytes([header[2], header[3]]);
    if usize::from(total_len) < header_len || usize::from(total_len) > payload.len() {
        return Err(Malformed::Ipv4TotalLength {
            total: total_len,
            header: ihl * 4,
            available: payload.len(),
        });
    }
    let fragment = u16::from_be_bytes([header[6], header[7]]);
    let fragment_offset = fragment & 0x1fff;
    let more_fragments = fragment & 0x2000 != 0;
    let protocol = header[9];
    let data = payload
        .get(header_len..usize::from(total_len))
        .ok_or(Malformed::Ipv4Truncated)?;
    let transport = transport(protocol, data, fragment_offset, more_fragments)?;
    Ok(Ipv4 {
        header_len: ihl * 4,
        total_len,
        protocol,
        src: Ipv4Addr::new(header[12], header[13], header[14], header[15]),
        dst: Ipv4Addr::new(header[16], header[17], header[18], header[19]),
        fragment_offset,
        more_fragments,
        transport,
    })
}

fn parse_ipv6(payload: &[u8]) -> Result<Ipv6, Malformed> {
    let header = payload
        .first_chunk::<IPV6_HEADER_LEN>()
        .ok_or(Malformed::Ipv6Truncated)?;
    let version = header[0] >> 4;
    if version != 6 {
        return Err(Malformed::Ipv6Version { version });
    }
    let payload_len = u16::from_be_bytes([header[4], header[5]]);
    let available = payload.len() - IPV6_HEADER_LEN;
    let data = payload
        .get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + usize::from(payload_len))
        .ok_or(Malformed::Ipv6PayloadLength {
            payload: payload_len,
            available,
        })?;
    let src = Ipv6Addr::from(array::<16>(header, 8).ok_or(Malformed::Ipv6Truncated)?);
    let dst = Ipv6Addr::from(array::<16>(header, 24).ok_or(Malformed::Ipv6Truncated)?);

    let mut next = header[6];
    let mut offset = 0usize;
    let mut fragment_offset = None;
    let mut more_fragments = false;
    let mut walked = 0;
    loop {
        let length = match next {
            protocol::HOP_BY_HOP | protocol::ROUTING | protocol::DESTINATION_OPTIONS => data
                .get(offset + 1)
                .map(|&units| (usize::from(units) + 1) * 8),
            protocol::AUTHENTICATION => data
                .get(offset + 1)
                .map(|&units| (usize::from(units) + 2) * 4),
            protocol::FRAGMENT => Some(IPV6_FRAGMENT_HEADER_LEN),
            _ => break,
        };
        if walked == MAX_IPV6_EXTENSION_HEADERS {
            return Err(Malformed::Ipv6ExtensionChain);
        }
        walked += 1;
        let truncated = Malformed::Ipv6ExtensionTruncated { header: next };
        let length = length.ok_or(truncated)?;
        let extension = data.get(offset..offset + length).ok_or(truncated)?;
        let header_type = next;
        next = *extension.first().ok_or(truncated)?;
        offset += length;
        if header_type == protocol::FRAGMENT {
            let field = be16(extension, 2).ok_or(truncated)?;
            let at = field >> 3;
            fragment_offset = Some(at);
            more_fragments = field & 1 != 0;
            if at != 0 {
                break;
            }
        }
    }
    let rest = data.get(offset..).unwrap_or_default();
    let transport = transport(next, rest, fragment_offset.unwrap_or(0), more_fragments)?;
    Ok(Ipv6 {
        payload_len,
        protocol: next,
        src,
        dst,
        fragment_offset,
        transport,
    })
}

fn transport(
    protocol: u8,
    data: &[u8],
    fragment_offset: u16,
    more_fragments: bool,
) -> Result<Transport, Malformed> {
    if fragment_offset != 0 {
        if protocol == protocol::TCP && fragment_offset == 1 {
            return Err(Malformed::TinyFragment);
        }
        return Ok(Transport::Fragment);
    }
    match protocol {
        protocol::TCP => {
            let header = data
                .first_chunk::<TCP_MIN_HEADER_LEN>()
                .ok_or(Malformed::TcpTruncated)?;
            let offset = header[12] >> 4;
            if offset < 5 {
                return Err(Malformed::TcpDataOffset { offset });
            }
            if usize::from(offset) * 4 > data.len() {
                return Err(Malformed::TcpTruncated);
            }
            Ok(Transport::Tcp {
                src_port: u16::from_be_bytes([header[0], header[1]]),
                dst_port: u16::from_be_bytes([header[2], header[3]]),
                flags: header[13],
            })
        }
        protocol::UDP => {
            let header = data
                .first_chunk::<UDP_HEADER_LEN>()
                .ok_or(Malformed::UdpTruncated)?;
            let length = u16::from_be_bytes([header[4], header[5]]);
            let fits = usize::from(length) >= UDP_HEADER_LEN && usize::from(length) <= data.len();
            // A first fragment's UDP length covers the whole datagram, beyond this packet.
            if !fits && !more_fragments {
                return Err(Malformed::UdpLength {
                    length,
                    available: data.len(),
                });
            }
            Ok(Transport::Udp {
                src_port: u16::from_be_bytes([header[0], header[1]]),
                dst_port: u16::from_be_bytes([header[2], header[3]]),
            })
        }
        protocol::ICMP | protocol::ICMPV6 => {
            let header = data
                .first_chunk::<ICMP_MIN_LEN>()
                .ok_or(Malformed::IcmpTruncated)?;
            Ok(Transport::Icmp {
                kind: header[0],
                code: header[1],
            })
        }
        _ => Ok(Transport::Other),
    }
}

fn parse_arp(payload: &[u8]) -> Result<Arp, Malformed> {
    let packet = payload
        .first_chunk::<ARP_LEN>()
        .ok_or(Malformed::ArpTruncated { len: payload.len() })?;
    let hardware = u16::from_be_bytes([packet[0], packet[1]]);
    let protocol = u16::from_be_bytes([packet[2], packet[3]]);
    if hardware != 1 || protocol != ethertype::IPV4 || packet[4] != 6 || packet[5] != 4 {
        return Err(Malformed::ArpFormat { hardware, protocol });
    }
    let mac = |at: usize| array::<6>(packet, at).map(MacAddr).unwrap_or_default();
    let ip = |at: usize| {
        array::<4>(packet, at)
            .map(Ipv4Addr::from)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    };
    Ok(Arp {
        operation: u16::from_be_bytes([packet[6], packet[7]]),
        sender_mac: mac(8),
        sender_ip: ip(14),
        target_mac: mac(18),
        target_ip: ip(24),
    })
}

/// Writers of well-formed frames, for tests, benchmarks and fuzz seeds (they allocate; the
/// bridge itself never builds frames). Lengths are filled in, checksums left zero.
pub mod build {
    use super::{ethertype, MacAddr};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// An Ethernet frame, with an 802.1Q tag when `vlan` is given.
    pub fn ethernet(
        dst: MacAddr,
        src: MacAddr,
        vlan: Option<u16>,
        ethertype: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut frame = Vec::with_capacity(18 + payload.len());
        frame.extend_from_slice(&dst.0);
        frame.extend_from_slice(&src.0);
        if let Some(vid) = vlan {
            frame.extend_from_slice(&ethertype::VLAN.to_be_bytes());
            frame.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
        }
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// An IPv4 packet with a 20-byte header, TTL 64, not fragmented.
    pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
        ipv4_fragment(src, dst, protocol, 0, false, payload)
    }

    /// An IPv4 fragment at `offset` (8-byte units).
    pub fn ipv4_fragment(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        offset: u16,
        more: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
        let fragment = (offset & 0x1fff) | if more { 0x2000 } else { 0 };
        let mut packet = Vec::with_capacity(20 + payload.len());
        packet.extend_from_slice(&[0x45, 0]);
        packet.extend_from_slice(&total.to_be_bytes());
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(&fragment.to_be_bytes());
        packet.extend_from_slice(&[64, protocol, 0, 0]);
        packet.extend_from_slice(&src.octets());
        packet.extend_from_slice(&dst.octets());
        packet.extend_from_slice(payload);
        packet
    }

    /// An IPv6 packet; `payload` may start with extension headers ([`ipv6_extension`]).
    pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
        let length = u16::try_from(payload.len()).unwrap_or(u16::MAX);
        let mut packet = Vec::with_capacity(40 + payload.len());
        packet.extend_from_slice(&[0x60, 0, 0, 0]);
        packet.extend_from_slice(&length.to_be_bytes());
        packet.extend_from_slice(&[next_header, 64]);
        packet.extend_from_slice(&src.octets());
        packet.extend_from_slice(&dst.octets());
        packet.extend_from_slice(payload);
        packet
    }

    /// An 8-byte options-style IPv6 extension header (hop-by-hop, routing, destination
    /// options) announcing `next_header`, followed by `rest`.
    pub fn ipv6_extension(next_header: u8, rest: &[u8]) -> Vec<u8> {
        let mut header = vec![next_header, 0, 1, 4, 0, 0, 0, 0];
        header.extend_from_slice(rest);
        header
    }

    /// An IPv6 fragment header (offset in 8-byte units), followed by `rest`.
    pub fn ipv6_fragment(next_header: u8, offset: u16, more: bool, rest: &[u8]) -> Vec<u8> {
        let field = (offset << 3) | u16::from(more);
        let mut header = vec![next_header, 0];
        header.extend_from_slice(&field.to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 1]);
        header.extend_from_slice(rest);
        header
    }

    /// A 20-byte TCP header followed by `payload`.
    pub fn tcp(src_port: u16, dst_port: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut segment = Vec::with_capacity(20 + payload.len());
        segment.extend_from_slice(&src_port.to_be_bytes());
        segment.extend_from_slice(&dst_port.to_be_bytes());
        segment.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        segment.extend_from_slice(payload);
        segment
    }

    /// A UDP header followed by `payload`.
    pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let length = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
        let mut datagram = Vec::with_capacity(8 + payload.len());
        datagram.extend_from_slice(&src_port.to_be_bytes());
        datagram.extend_from_slice(&dst_port.to_be_bytes());
        datagram.extend_from_slice(&length.to_be_bytes());
        datagram.extend_from_slice(&[0, 0]);
        datagram.extend_from_slice(payload);
        datagram
    }

    /// An ICMP or ICMPv6 message: type, code, checksum, 4 bytes of rest, `payload`.
    pub fn icmp(kind: u8, code: u8, payload: &[u8]) -> Vec<u8> {
        let mut message = vec![kind, code, 0, 0, 0, 1, 0, 1];
        message.extend_from_slice(payload);
        message
    }

    /// An ARP packet for IPv4 over Ethernet.
    pub fn arp(
        operation: u16,
        sender_mac: MacAddr,
        sender_ip: Ipv4Addr,
        target_mac: MacAddr,
        target_ip: Ipv4Addr,
    ) -> Vec<u8> {
        let mut packet = Vec::with_capacity(28);
        packet.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        packet.extend_from_slice(&operation.to_be_bytes());
        packet.extend_from_slice(&sender_mac.0);
        packet.extend_from_slice(&sender_ip.octets());
        packet.extend_from_slice(&target_mac.0);
        packet.extend_from_slice(&target_ip.octets());
        packet
    }
}

#[cfg(test)]
mod tests;
