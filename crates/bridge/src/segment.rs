//! Software segmentation for uplinks. A guest whose driver accepted `HOST_TSO4/6` hands its
//! port TCP frames of up to 64 KiB with a segment size (`gso_size`), for the device to cut
//! into frames the wire can carry. A port delivers such frames whole to another port whose
//! driver takes them; an uplink's tunnel carries frames of at most [`MAX_FRAME`] bytes, so its
//! thread cuts them here first, as a NIC would: every segment gets the headers of the original
//! with its own IPv4 total length, identification and header checksum (or IPv6 payload
//! length), TCP sequence number and a complete TCP checksum; FIN and PSH stay on the last
//! segment only, CWR on the first only.
//!
//! Supported: Ethernet, optionally 802.1Q-tagged (uplink frames carry their VLAN), then IPv4
//! with options or IPv6 without extension headers, then TCP, with a segment size of at least
//! [`MIN_SEGMENT`]. Anything else is refused ([`SegmentError`]) and the frame dropped as
//! malformed. `fuzz/fuzz_targets/segment.rs` feeds it arbitrary headers and frames.
//!
//! [`MAX_FRAME`]: crate::tunnel::MAX_FRAME

use bulkhead_virtio::net::{fold_sum, ones_complement_sum, NetHeader, GSO_TCPV4, GSO_TCPV6};

const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTOCOL_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Why a frame could not be segmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentError {
    /// Not a TCP segmentation request, or no segment size.
    NotTcp,
    /// The headers do not fit the frame, or say other than the segmentation type.
    Malformed,
    /// Headers plus one segment would exceed the largest frame.
    TooLarge,
    /// A segment size below [`MIN_SEGMENT`].
    TooSmall,
}

/// The smallest segment size accepted: TCP's own floor (Linux's `tcp_min_snd_mss`). Without
/// it a hostile guest could have one 64 KiB frame cut into 65 536 one-byte records.
pub const MIN_SEGMENT: u16 = 48;

/// Whether `header` asks for a segmentation this module performs.
pub fn supported(header: &NetHeader) -> bool {
    matches!(header.gso_type, GSO_TCPV4 | GSO_TCPV6) && header.gso_size > 0
}

/// Cuts `frame` (Ethernet, no virtio header) into segments of at most `gso_size` bytes of
/// TCP payload, each at most `max_frame` bytes, and hands each to `emit` in order. Returns how
/// many there were; nothing is emitted on an error.
pub fn segment(
    header: &NetHeader,
    frame: &[u8],
    max_frame: usize,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, SegmentError> {
    if !supported(header) {
        return Err(SegmentError::NotTcp);
    }
    if header.gso_size < MIN_SEGMENT {
        return Err(SegmentError::TooSmall);
    }
    let layout = Layout::of(header, frame)?;
    let mss = usize::from(header.gso_size);
    if layout.headers + mss > max_frame {
        return Err(SegmentError::TooLarge);
    }
    let payload = frame.get(layout.headers..).ok_or(SegmentError::Malformed)?;
    let seq = be32(frame, layout.l4 + 4);
    let flags = frame[layout.l4 + 13];
    let id = if layout.ipv6 {
        0
    } else {
        be16(frame, layout.l3 + 4)
    };
    let count = payload.len().div_ceil(mss).max(1);
    let mut out = Vec::with_capacity(layout.headers + mss);
    for i in 0..count {
        let chunk = payload
            .get(i * mss..((i + 1) * mss).min(payload.len()))
            .unwrap_or(&[]);
        out.clear();
        out.extend_from_slice(&frame[..layout.headers]);
        out.extend_from_slice(chunk);
        let tcp_len = layout.headers - layout.l4 + chunk.len();
        if layout.ipv6 {
            put16(&mut out, layout.l3 + 4, tcp_len as u16);
        } else {
            let ip_len = layout.l4 - layout.l3;
            put16(&mut out, layout.l3 + 2, (ip_len + tcp_len) as u16);
            put16(&mut out, layout.l3 + 4, id.wrapping_add(i as u16));
            put16(&mut out, layout.l3 + 10, 0);
            let sum = fold_sum(ones_complement_sum(&out[layout.l3..layout.l4], 0));
            put16(&mut out, layout.l3 + 10, !sum);
        }
        put32(&mut out, layout.l4 + 4, seq.wrapping_add((i * mss) as u32));
        let mut f = flags;
        if i + 1 < count {
            f &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            f &= !TCP_CWR;
        }
        out[layout.l4 + 13] = f;
        put16(&mut out, layout.l4 + 16, 0);
        let pseudo = pseudo_header_sum(&out, &layout, tcp_len);
        let sum = fold_sum(ones_complement_sum(&out[layout.l4..], pseudo));
        put16(&mut out, layout.l4 + 16, !sum);
        emit(&out);
    }
    Ok(count)
}

/// Where a frame's layers start.
struct Layout {
    ipv6: bool,
    l3: usize,
    l4: usize,
    /// End of the TCP header: the length of the headers every segment repeats.
    headers: usize,
}

impl Layout {
    fn of(header: &NetHeader, frame: &[u8]) -> Result<Layout, SegmentError> {
        let need = |len: usize| {
            if frame.len() >= len {
                Ok(())
            } else {
                Err(SegmentError::Malformed)
            }
        };
        need(14)?;
        let (ethertype, l3) = match be16(frame, 12) {
            ETHERTYPE_VLAN => {
                need(18)?;
                (be16(frame, 16), 18)
            }
            other => (other, 14),
        };
        let (ipv6, l4) = match (ethertype, header.gso_type) {
            (ETHERTYPE_IPV4, GSO_TCPV4) => {
                need(l3 + 20)?;
                let ihl = usize::from(frame[l3] & 0x0f) * 4;
                if frame[l3] >> 4 != 4 || ihl < 20 || frame[l3 + 9] != PROTOCOL_TCP {
                    return Err(SegmentError::Malformed);
                }
                (false, l3 + ihl)
            }
            (ETHERTYPE_IPV6, GSO_TCPV6) => {
                need(l3 + 40)?;
                if frame[l3] >> 4 != 6 || frame[l3 + 6] != PROTOCOL_TCP {
                    return Err(SegmentError::Malformed);
                }
                (true, l3 + 40)
            }
            _ => return Err(SegmentError::Malformed),
        };
        need(l4 + 20)?;
        let tcp_len = usize::from(frame[l4 + 12] >> 4) * 4;
        if tcp_len < 20 {
            return Err(SegmentError::Malformed);
        }
        need(l4 + tcp_len)?;
        Ok(Layout {
            ipv6,
            l3,
            l4,
            headers: l4 + tcp_len,
        })
    }
}

/// The TCP pseudo-header's sum (RFC 9293 §3.1, RFC 8200 §8.1).
fn pseudo_header_sum(frame: &[u8], layout: &Layout, tcp_len: usize) -> u64 {
    let (src, dst) = if layout.ipv6 {
        (
            layout.l3 + 8..layout.l3 + 24,
            layout.l3 + 24..layout.l3 + 40,
        )
    } else {
        (
            layout.l3 + 12..layout.l3 + 16,
            layout.l3 + 16..layout.l3 + 20,
        )
    };
    let sum = ones_complement_sum(&frame[src], 0);
    let sum = ones_complement_sum(&frame[dst], sum);
    sum + u64::from(PROTOCOL_TCP) + tcp_len as u64
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_virtio::net::F_NEEDS_CSUM;

    fn gso(gso_type: u8, gso_size: u16) -> NetHeader {
        NetHeader {
            flags: F_NEEDS_CSUM,
            gso_type,
            gso_size,
            ..NetHeader::default()
        }
    }

    /// An Ethernet frame (tagged with VLAN 10 if `vlan`) carrying TCP with `payload`, IPv4
    /// (id 0x1234, one option word) or IPv6, flags PSH|ACK|FIN|CWR, a 12-byte option.
    fn tcp_frame(ipv6: bool, vlan: bool, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 10]);
        }
        let tcp_hl = 32;
        if ipv6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0xff, 0xff, PROTOCOL_TCP, 64]);
            f.extend((0..16).map(|i| 0x20 + i as u8));
            f.extend((0..16).map(|i| 0x40 + i as u8));
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x46, 0, 0xff, 0xff, 0x12, 0x34, 0x40, 0, 64]);
            f.extend_from_slice(&[
                PROTOCOL_TCP,
                0xde,
                0xad,
                10,
                0,
                0,
                1,
                10,
                0,
                0,
                2,
                1,
                1,
                1,
                0,
            ]);
        }
        f.extend_from_slice(&[0x14, 0x51, 0xc0, 0x01]); // ports 5201 → 49153
        f.extend_from_slice(&0xffff_fff0u32.to_be_bytes()); // sequence, wraps
        f.extend_from_slice(&[
            0,
            0,
            0,
            7,
            (tcp_hl / 4) << 4,
            TCP_CWR | 0x10 | TCP_PSH | TCP_FIN,
        ]);
        f.extend_from_slice(&[0xff, 0xff, 0xbe, 0xef, 0, 0]); // window, checksum, urgent
        f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamps
        f.extend_from_slice(payload);
        f
    }

    /// The RFC 1071 check over `data` plus `initial`: 0xffff when the checksum in it is right.
    fn verifies(data: &[u8], initial: u64) -> bool {
        fold_sum(ones_complement_sum(data, initial)) == 0xffff
    }

    fn cut(frame: &[u8], header: &NetHeader) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let n = segment(header, frame, 9216, |s| out.push(s.to_vec())).unwrap();
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn an_ipv4_super_frame_becomes_wire_frames_with_their_own_headers() {
        let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let frame = tcp_frame(false, false, &payload);
        let (l3, l4, hdrs) = (14, 14 + 24, 14 + 24 + 32);

        let segs = cut(&frame, &gso(GSO_TCPV4, 1448));

        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let len = s.len() - hdrs;
            assert_eq!(len, [1448, 1448, 104][i]);
            assert_eq!(be16(s, l3 + 2) as usize, 24 + 32 + len, "IPv4 total length");
            assert_eq!(be16(s, l3 + 4), 0x1234 + i as u16, "identification");
            assert!(verifies(&s[l3..l4], 0), "IPv4 header checksum");
            assert_eq!(
                be32(s, l4 + 4),
                0xffff_fff0u32.wrapping_add(1448 * i as u32)
            );
            let flags = s[l4 + 13];
            assert_eq!(
                flags & (TCP_FIN | TCP_PSH) != 0,
                i == 2,
                "FIN/PSH on the last only"
            );
            assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR on the first only");
            assert_eq!(flags & 0x10, 0x10, "ACK on every one");
            let pseudo = ones_complement_sum(&s[l3 + 12..l3 + 20], 0) + 6 + (s.len() - l4) as u64;
            assert!(verifies(&s[l4..], pseudo), "TCP checksum of segment {i}");
            assert_eq!(s[..l3], frame[..l3]);
            joined.extend_from_slice(&s[hdrs..]);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn a_tagged_ipv6_super_frame_is_cut_too() {
        let payload = vec![0xa5u8; 2500];
        let frame = tcp_frame(true, true, &payload);
        let (l3, l4, hdrs) = (18, 18 + 40, 18 + 40 + 32);

        let segs = cut(&frame, &gso(GSO_TCPV6, 1000));

        assert_eq!(segs.len(), 3);
        for (i, s) in segs.iter().enumerate() {
            let tcp_len = s.len() - l4;
            assert_eq!(be16(s, l3 + 4) as usize, tcp_len, "IPv6 payload length");
            assert_eq!(s[12..16], [0x81, 0x00, 0x00, 10], "the tag stays");
            let pseudo = ones_complement_sum(&s[l3 + 8..l3 + 40], 0) + 6 + tcp_len as u64;
            assert!(verifies(&s[l4..], pseudo), "TCP checksum of segment {i}");
            assert_eq!(s.len() - hdrs, [1000, 1000, 500][i]);
        }
    }

    #[test]
    fn a_frame_within_one_segment_passes_as_one_with_a_complete_checksum() {
        let frame = tcp_frame(false, false, &[1, 2, 3]);

        let segs = cut(&frame, &gso(GSO_TCPV4, 1448));

        assert_eq!(segs.len(), 1);
        let pseudo = ones_complement_sum(&segs[0][26..34], 0) + 6 + (segs[0].len() - 38) as u64;
        assert!(verifies(&segs[0][38..], pseudo));
        assert_eq!(segs[0][38 + 13] & TCP_FIN, TCP_FIN);
    }

    #[test]
    fn what_is_not_tcp_as_announced_is_refused_and_nothing_emitted() {
        let v4 = tcp_frame(false, false, &[0; 100]);
        let mut udp = v4.clone();
        udp[14 + 9] = 17;
        let mut emitted = 0;
        let mut count = |_: &[u8]| emitted += 1;

        assert_eq!(
            segment(&gso(GSO_TCPV6, 50), &v4, 9216, &mut count),
            Err(SegmentError::Malformed)
        );
        assert_eq!(
            segment(&gso(GSO_TCPV4, 50), &udp, 9216, &mut count),
            Err(SegmentError::Malformed)
        );
        assert_eq!(
            segment(&gso(GSO_TCPV4, 0), &v4, 9216, &mut count),
            Err(SegmentError::NotTcp)
        );
        assert_eq!(
            segment(&gso(GSO_TCPV4, 50), &v4[..40], 9216, &mut count),
            Err(SegmentError::Malformed)
        );
        assert_eq!(
            segment(&gso(GSO_TCPV4, 9200), &v4, 9216, &mut count),
            Err(SegmentError::TooLarge)
        );
        assert_eq!(
            segment(&gso(GSO_TCPV4, MIN_SEGMENT - 1), &v4, 9216, &mut count),
            Err(SegmentError::TooSmall)
        );
        assert_eq!(emitted, 0);
    }
}
