use super::build::*;
use super::*;
use proptest::prelude::*;

const A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const IP6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const IP6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn ipv4_frame(packet: &[u8]) -> Vec<u8> {
    ethernet(B, A, None, ethertype::IPV4, packet)
}

fn ipv6_frame(packet: &[u8]) -> Vec<u8> {
    ethernet(B, A, None, ethertype::IPV6, packet)
}

/// An IPv6 packet with `count` destination-options headers before a TCP header.
fn extension_chain(count: usize) -> Vec<u8> {
    let innermost = ipv6_extension(protocol::TCP, &tcp(1, 2, 0, &[]));
    let chain = (1..count).fold(innermost, |rest, _| {
        ipv6_extension(protocol::DESTINATION_OPTIONS, &rest)
    });
    ipv6(IP6_A, IP6_B, protocol::DESTINATION_OPTIONS, &chain)
}

/// The outcome of a strict parse, without the borrow.
fn parsed(bytes: &[u8]) -> Result<(), Malformed> {
    Frame::parse(bytes).map(|_| ())
}

fn tcp_packet() -> Vec<u8> {
    ipv4(
        IP_A,
        IP_B,
        protocol::TCP,
        &tcp(40000, 80, tcp_flags::SYN, &[]),
    )
}

/// The seed corpus of the `policy` fuzz target: one record per frame, as the target
/// reads it (source byte, time byte, length LE), then the frame.
fn fuzz_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let frames = vec![
        (
            "arp-request",
            ethernet(
                MacAddr::BROADCAST,
                A,
                None,
                ethertype::ARP,
                &arp(arp_op::REQUEST, A, IP_A, MacAddr::default(), IP_B),
            ),
        ),
        ("ipv4-tcp-syn", ipv4_frame(&tcp_packet())),
        (
            "ipv4-udp",
            ipv4_frame(&ipv4(IP_A, IP_B, protocol::UDP, &udp(5353, 53, b"query"))),
        ),
        (
            "ipv4-icmp-echo",
            ipv4_frame(&ipv4(IP_A, IP_B, protocol::ICMP, &icmp(8, 0, b"ping"))),
        ),
        (
            "ipv6-tcp",
            ipv6_frame(&ipv6(
                IP6_A,
                IP6_B,
                protocol::TCP,
                &tcp(40000, 443, tcp_flags::SYN, &[]),
            )),
        ),
        (
            "ipv6-hop-by-hop-udp",
            ipv6_frame(&ipv6(
                IP6_A,
                IP6_B,
                protocol::HOP_BY_HOP,
                &ipv6_extension(protocol::UDP, &udp(546, 547, b"dhcp")),
            )),
        ),
        (
            "ipv6-icmpv6",
            ipv6_frame(&ipv6(
                IP6_A,
                IP6_B,
                protocol::ICMPV6,
                &icmp(128, 0, b"ping"),
            )),
        ),
        (
            "vlan-ipv4-tcp",
            ethernet(B, A, Some(10), ethertype::IPV4, &tcp_packet()),
        ),
        (
            "ipv4-fragment",
            ipv4_frame(&ipv4_fragment(
                IP_A,
                IP_B,
                protocol::UDP,
                185,
                false,
                &[0; 40],
            )),
        ),
        ("malformed-runt", vec![0x02, 0, 0, 0]),
        (
            "malformed-ihl",
            ipv4_frame(&{
                let mut p = tcp_packet();
                p[0] = 0x44;
                p
            }),
        ),
        (
            "malformed-total-length",
            ipv4_frame(&{
                let mut p = tcp_packet();
                p[2] = 0x05;
                p
            }),
        ),
        (
            "malformed-tcp-offset",
            ipv4_frame(&{
                let mut p = tcp_packet();
                p[32] = 0x40;
                p
            }),
        ),
        (
            "malformed-stacked-vlan",
            ethernet(B, A, Some(10), ethertype::VLAN, &[0, 20, 0x08, 0x00]),
        ),
        (
            "malformed-arp-short",
            ethernet(MacAddr::BROADCAST, A, None, ethertype::ARP, &[0, 1, 8, 0]),
        ),
        ("malformed-ipv6-chain", ipv6_frame(&extension_chain(9))),
    ];
    frames
        .into_iter()
        .map(|(name, frame)| {
            let len = u16::try_from(frame.len()).unwrap_or(u16::MAX).to_le_bytes();
            let mut record = vec![0, 1, len[0], len[1]];
            record.extend_from_slice(&frame);
            (name, record)
        })
        .collect()
}

fn seed_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/policy")
        .join(format!("seed-{name}"))
}

#[test]
fn tcp_over_ipv4_gives_addresses_and_ports() {
    let bytes = ipv4_frame(&tcp_packet());

    let frame = Frame::parse(&bytes).unwrap();

    assert_eq!((frame.dst, frame.src, frame.vlan), (B, A, None));
    let Network::Ipv4(ip) = frame.network else {
        panic!("not IPv4: {frame:?}")
    };
    assert_eq!(
        (ip.src, ip.dst, ip.protocol, ip.header_len),
        (IP_A, IP_B, 6, 20)
    );
    assert_eq!(
        ip.transport,
        Transport::Tcp {
            src_port: 40000,
            dst_port: 80,
            flags: tcp_flags::SYN
        }
    );
}

#[test]
fn udp_and_icmp_give_ports_and_type() {
    let udp_bytes = ipv4_frame(&ipv4(IP_A, IP_B, protocol::UDP, &udp(1234, 53, b"x")));
    let icmp_bytes = ipv4_frame(&ipv4(IP_A, IP_B, protocol::ICMP, &icmp(8, 0, &[])));

    let udp_frame = Frame::parse(&udp_bytes).unwrap();
    let icmp_frame = Frame::parse(&icmp_bytes).unwrap();

    assert_eq!(
        udp_frame.transport(),
        Some(Transport::Udp {
            src_port: 1234,
            dst_port: 53
        })
    );
    assert_eq!(
        icmp_frame.transport(),
        Some(Transport::Icmp { kind: 8, code: 0 })
    );
}

#[test]
fn vlan_tag_is_read_and_the_inner_ethertype_parsed() {
    let bytes = ethernet(B, A, Some(42), ethertype::IPV4, &tcp_packet());

    let frame = Frame::parse(&bytes).unwrap();

    assert_eq!(
        frame.vlan,
        Some(VlanTag {
            pcp: 0,
            dei: false,
            vid: 42
        })
    );
    assert_eq!(
        (frame.vlan_id(), frame.ethertype),
        (Some(42), ethertype::IPV4)
    );
    assert!(matches!(frame.network, Network::Ipv4(_)));
}

#[test]
fn priority_tag_belongs_to_no_vlan() {
    let bytes = ethernet(B, A, Some(0), ethertype::IPV4, &tcp_packet());

    let frame = Frame::parse(&bytes).unwrap();

    assert_eq!(frame.vlan_id(), None);
}

#[test]
fn arp_gives_sender_and_target() {
    let bytes = ethernet(
        MacAddr::BROADCAST,
        A,
        None,
        ethertype::ARP,
        &arp(arp_op::REQUEST, A, IP_A, MacAddr::default(), IP_B),
    );

    let frame = Frame::parse(&bytes).unwrap();

    let Network::Arp(arp) = frame.network else {
        panic!("not ARP: {frame:?}")
    };
    assert_eq!((arp.operation, arp.sender_mac, arp.sender_ip), (1, A, IP_A));
    assert_eq!((arp.target_mac, arp.target_ip), (MacAddr::default(), IP_B));
}

#[test]
fn ipv6_walks_hop_by_hop_and_destination_options_to_tcp() {
    let inner = ipv6_extension(protocol::TCP, &tcp(1000, 22, tcp_flags::SYN, &[]));
    let payload = ipv6_extension(protocol::DESTINATION_OPTIONS, &inner);
    let bytes = ipv6_frame(&ipv6(IP6_A, IP6_B, protocol::HOP_BY_HOP, &payload));

    let frame = Frame::parse(&bytes).unwrap();

    let Network::Ipv6(ip) = frame.network else {
        panic!("not IPv6: {frame:?}")
    };
    assert_eq!((ip.src, ip.dst, ip.protocol), (IP6_A, IP6_B, protocol::TCP));
    assert_eq!(
        ip.transport,
        Transport::Tcp {
            src_port: 1000,
            dst_port: 22,
            flags: 2
        }
    );
}

#[test]
fn ipv6_stops_at_the_first_unknown_next_header() {
    let bytes = ipv6_frame(&ipv6(IP6_A, IP6_B, protocol::ESP, &[0; 16]));

    let frame = Frame::parse(&bytes).unwrap();

    assert_eq!(frame.transport(), Some(Transport::Other));
}

#[test]
fn ipv6_with_eight_extension_headers_reaches_tcp() {
    let bytes = ipv6_frame(&extension_chain(8));

    let frame = Frame::parse(&bytes).unwrap();

    assert_eq!(
        frame.transport(),
        Some(Transport::Tcp {
            src_port: 1,
            dst_port: 2,
            flags: 0
        })
    );
}

#[test]
fn ipv6_with_nine_extension_headers_is_malformed() {
    let bytes = ipv6_frame(&extension_chain(9));

    let result = Frame::parse(&bytes);

    assert_eq!(result, Err(Malformed::Ipv6ExtensionChain));
}

#[test]
fn ipv6_first_fragment_has_ports_and_a_later_one_has_none() {
    let first = ipv6_frame(&ipv6(
        IP6_A,
        IP6_B,
        protocol::FRAGMENT,
        &ipv6_fragment(protocol::UDP, 0, true, &udp(7, 9, &[0; 100])),
    ));
    let later = ipv6_frame(&ipv6(
        IP6_A,
        IP6_B,
        protocol::FRAGMENT,
        &ipv6_fragment(protocol::UDP, 14, false, &[0; 16]),
    ));

    let first = Frame::parse(&first).unwrap();
    let later = Frame::parse(&later).unwrap();

    assert_eq!(
        first.transport(),
        Some(Transport::Udp {
            src_port: 7,
            dst_port: 9
        })
    );
    assert_eq!(later.transport(), Some(Transport::Fragment));
}

#[test]
fn ipv4_later_fragment_has_no_ports() {
    let bytes = ipv4_frame(&ipv4_fragment(
        IP_A,
        IP_B,
        protocol::UDP,
        185,
        false,
        &[0; 8],
    ));

    let frame = Frame::parse(&bytes).unwrap();

    assert_eq!(frame.transport(), Some(Transport::Fragment));
}

#[test]
fn ipv4_first_fragment_may_carry_a_udp_length_beyond_itself() {
    let datagram = udp(7, 9, &[0; 2000]);
    let bytes = ipv4_frame(&ipv4_fragment(
        IP_A,
        IP_B,
        protocol::UDP,
        0,
        true,
        &datagram[..1480],
    ));

    let frame = Frame::parse(&bytes).unwrap();

    assert_eq!(
        frame.transport(),
        Some(Transport::Udp {
            src_port: 7,
            dst_port: 9
        })
    );
}

#[test]
fn ethernet_padding_after_the_ip_packet_is_ignored() {
    let mut bytes = ipv4_frame(&ipv4(IP_A, IP_B, protocol::ICMP, &icmp(8, 0, &[])));
    bytes.resize(60, 0);

    let frame = Frame::parse(&bytes);

    assert!(frame.is_ok());
}

#[test]
fn unknown_ethertype_is_opaque() {
    let bytes = ethernet(B, A, None, 0x88cc, &[1, 2, 3]);

    let frame = Frame::parse(&bytes).unwrap();

    assert_eq!((frame.ethertype, frame.network), (0x88cc, Network::Other));
}

#[test]
fn frame_shorter_than_an_ethernet_header_is_malformed() {
    let result = Frame::parse(&[0x02; 13]);

    assert_eq!(result, Err(Malformed::EthernetTruncated { len: 13 }));
}

#[test]
fn frame_ending_inside_its_vlan_tag_is_malformed() {
    let bytes = ethernet(B, A, None, ethertype::VLAN, &[0, 5]);

    let result = Frame::parse(&bytes);

    assert_eq!(result, Err(Malformed::VlanTruncated));
}

#[test]
fn stacked_and_service_vlan_tags_are_malformed() {
    let stacked = ethernet(B, A, Some(10), ethertype::VLAN, &[0, 20, 0x08, 0x00]);
    let service = ethernet(B, A, None, ethertype::QINQ, &[0, 20, 0x08, 0x00]);

    let results = (Frame::parse(&stacked), Frame::parse(&service));

    assert_eq!(
        results,
        (
            Err(Malformed::StackedVlanTag {
                ethertype: ethertype::VLAN
            }),
            Err(Malformed::StackedVlanTag {
                ethertype: ethertype::QINQ
            }),
        )
    );
}

#[test]
fn vlan_id_4095_is_malformed() {
    let bytes = ethernet(B, A, Some(4095), ethertype::IPV4, &tcp_packet());

    let result = Frame::parse(&bytes);

    assert_eq!(result, Err(Malformed::ReservedVlanId));
}

#[test]
fn group_source_mac_is_malformed() {
    let source = MacAddr([0x01, 0, 0x5e, 0, 0, 1]);
    let bytes = ethernet(B, source, None, ethertype::IPV4, &tcp_packet());

    let result = Frame::parse(&bytes);

    assert_eq!(result, Err(Malformed::GroupSourceMac { mac: source }));
}

#[test]
fn ipv4_header_length_below_five_is_malformed() {
    let mut packet = tcp_packet();
    packet[0] = 0x44;

    let result = parsed(&ipv4_frame(&packet));

    assert_eq!(result, Err(Malformed::Ipv4HeaderLength { ihl: 4 }));
}

#[test]
fn ipv4_header_length_beyond_the_frame_is_malformed() {
    let mut packet = ipv4(IP_A, IP_B, 200, &[]);
    packet[0] = 0x4f;

    let result = parsed(&ipv4_frame(&packet));

    assert_eq!(result, Err(Malformed::Ipv4Truncated));
}

#[test]
fn ipv4_version_other_than_four_is_malformed() {
    let mut packet = tcp_packet();
    packet[0] = 0x65;

    let result = parsed(&ipv4_frame(&packet));

    assert_eq!(result, Err(Malformed::Ipv4Version { version: 6 }));
}

#[test]
fn ipv4_total_length_beyond_the_frame_is_malformed() {
    let mut packet = tcp_packet();
    packet[2..4].copy_from_slice(&1500u16.to_be_bytes());

    let result = parsed(&ipv4_frame(&packet));

    assert_eq!(
        result,
        Err(Malformed::Ipv4TotalLength {
            total: 1500,
            header: 20,
            available: 40
        })
    );
}

#[test]
fn ipv4_total_length_below_its_header_is_malformed() {
    let mut packet = tcp_packet();
    packet[2..4].copy_from_slice(&19u16.to_be_bytes());

    let result = parsed(&ipv4_frame(&packet));

    assert_eq!(
        result,
        Err(Malformed::Ipv4TotalLength {
            total: 19,
            header: 20,
            available: 40
        })
    );
}

#[test]
fn tcp_fragment_at_offset_one_is_malformed() {
    let bytes = ipv4_frame(&ipv4_fragment(
        IP_A,
        IP_B,
        protocol::TCP,
        1,
        false,
        &[0; 12],
    ));

    let result = Frame::parse(&bytes);

    assert_eq!(result, Err(Malformed::TinyFragment));
}

#[test]
fn tcp_header_cut_short_is_malformed() {
    let segment = tcp(1, 2, 0, &[]);
    let bytes = ipv4_frame(&ipv4(IP_A, IP_B, protocol::TCP, &segment[..12]));

    let result = Frame::parse(&bytes);

    assert_eq!(result, Err(Malformed::TcpTruncated));
}

#[test]
fn tcp_data_offset_below_five_or_beyond_the_packet_is_malformed() {
    let mut low = tcp(1, 2, 0, &[]);
    low[12] = 0x40;
    let mut high = tcp(1, 2, 0, &[]);
    high[12] = 0x60;

    let results = (
        parsed(&ipv4_frame(&ipv4(IP_A, IP_B, protocol::TCP, &low))),
        parsed(&ipv4_frame(&ipv4(IP_A, IP_B, protocol::TCP, &high))),
    );

    assert_eq!(
        results,
        (
            Err(Malformed::TcpDataOffset { offset: 4 }),
            Err(Malformed::TcpTruncated)
        )
    );
}

#[test]
fn udp_length_beyond_the_packet_is_malformed() {
    let mut datagram = udp(1, 2, &[0; 4]);
    datagram[4..6].copy_from_slice(&100u16.to_be_bytes());

    let result = parsed(&ipv4_frame(&ipv4(IP_A, IP_B, protocol::UDP, &datagram)));

    assert_eq!(
        result,
        Err(Malformed::UdpLength {
            length: 100,
            available: 12
        })
    );
}

#[test]
fn icmp_shorter_than_four_bytes_is_malformed() {
    let bytes = ipv4_frame(&ipv4(IP_A, IP_B, protocol::ICMP, &[8, 0]));

    let result = Frame::parse(&bytes);

    assert_eq!(result, Err(Malformed::IcmpTruncated));
}

#[test]
fn ipv6_payload_length_beyond_the_frame_is_malformed() {
    let mut packet = ipv6(IP6_A, IP6_B, protocol::UDP, &udp(1, 2, &[]));
    packet[4..6].copy_from_slice(&64u16.to_be_bytes());

    let result = parsed(&ipv6_frame(&packet));

    assert_eq!(
        result,
        Err(Malformed::Ipv6PayloadLength {
            payload: 64,
            available: 8
        })
    );
}

#[test]
fn ipv6_extension_header_beyond_the_payload_is_malformed() {
    let bytes = ipv6_frame(&ipv6(
        IP6_A,
        IP6_B,
        protocol::ROUTING,
        &[protocol::TCP, 3, 0, 0],
    ));

    let result = Frame::parse(&bytes);

    assert_eq!(
        result,
        Err(Malformed::Ipv6ExtensionTruncated {
            header: protocol::ROUTING
        })
    );
}

#[test]
fn ipv6_version_other_than_six_is_malformed() {
    let mut packet = ipv6(IP6_A, IP6_B, protocol::UDP, &udp(1, 2, &[]));
    packet[0] = 0x40;

    let result = parsed(&ipv6_frame(&packet));

    assert_eq!(result, Err(Malformed::Ipv6Version { version: 4 }));
}

#[test]
fn arp_too_short_or_not_ethernet_ipv4_is_malformed() {
    let short = ethernet(MacAddr::BROADCAST, A, None, ethertype::ARP, &[0; 20]);
    let mut packet = arp(arp_op::REQUEST, A, IP_A, B, IP_B);
    packet[2..4].copy_from_slice(&ethertype::IPV6.to_be_bytes());
    let other = ethernet(MacAddr::BROADCAST, A, None, ethertype::ARP, &packet);

    let results = (Frame::parse(&short), Frame::parse(&other));

    assert_eq!(
        results,
        (
            Err(Malformed::ArpTruncated { len: 20 }),
            Err(Malformed::ArpFormat {
                hardware: 1,
                protocol: ethertype::IPV6
            }),
        )
    );
}

#[test]
fn lenient_parse_keeps_the_ethernet_fields_of_a_broken_ip_packet() {
    let mut packet = tcp_packet();
    packet[0] = 0x44;
    let bytes = ipv4_frame(&packet);

    let frame = Frame::parse_lenient(&bytes).unwrap();

    assert_eq!(
        (frame.dst, frame.src, frame.ethertype),
        (B, A, ethertype::IPV4)
    );
    assert_eq!(
        frame.network,
        Network::Malformed(Malformed::Ipv4HeaderLength { ihl: 4 })
    );
}

#[test]
fn mac_address_prints_as_colon_separated_hex() {
    let text = MacAddr([0x02, 0xab, 0, 0x10, 0xff, 0x01]).to_string();

    assert_eq!(text, "02:ab:00:10:ff:01");
}

#[test]
fn fuzz_seed_corpus_holds_the_frames_of_these_tests() {
    let seeds = fuzz_seeds();

    let stale: Vec<&str> = seeds
        .iter()
        .filter(|(name, record)| std::fs::read(seed_path(name)).ok().as_ref() != Some(record))
        .map(|(name, _)| *name)
        .collect();

    assert!(
        stale.is_empty(),
        "rewrite with `cargo test -p bulkhead-bridge -- --ignored \
        writes_the_fuzz_seed_corpus`: {stale:?}"
    );
}

#[test]
fn seeds_named_malformed_are_exactly_those_that_fail_to_parse() {
    let seeds = fuzz_seeds();

    let mismatched: Vec<&str> = seeds
        .iter()
        .filter(|(name, record)| {
            Frame::parse(record.get(4..).unwrap_or_default()).is_err()
                != name.starts_with("malformed-")
        })
        .map(|(name, _)| *name)
        .collect();

    assert!(mismatched.is_empty(), "{mismatched:?}");
}

#[test]
#[ignore = "writes files: run to regenerate the fuzz seed corpus"]
fn writes_the_fuzz_seed_corpus() {
    let seeds = fuzz_seeds();

    for (name, record) in &seeds {
        std::fs::create_dir_all(seed_path(name).parent().unwrap()).unwrap();
        std::fs::write(seed_path(name), record).unwrap();
    }

    assert!(seeds.iter().all(|(name, _)| seed_path(name).exists()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Frame::parse(&bytes);
        let _ = Frame::parse_lenient(&bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_ethernet_header_never_panic(
        ethertype in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x1234]),
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let bytes = ethernet(B, A, None, ethertype, &tail);

        let _ = Frame::parse(&bytes);
    }
}
