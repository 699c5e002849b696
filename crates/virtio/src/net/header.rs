//! `struct virtio_net_hdr_v1` (virtio 1.2 §5.1.6): the 12 bytes before every frame, which carry
//! checksum and segmentation offload requests between the driver, the device and the backend.
//!
//! Headers are checked before a frame leaves the device (and when one arrives from a link,
//! whose other end is another partition): a header that another kernel would have to trust
//! (checksum position outside the frame, an unknown segmentation type, segmentation without a
//! segment size or without a partial checksum, flags not defined) drops the frame.

/// Size of the header with `VIRTIO_F_VERSION_1` (`num_buffers` included).
pub const HEADER_LEN: usize = 12;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` on is still to be computed.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was checked (device to driver only).
pub const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;

/// What the guest driver accepts on receive, from the features it acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offloads {
    /// `VIRTIO_NET_F_GUEST_CSUM`: frames with a partial checksum.
    pub csum: bool,
    /// `VIRTIO_NET_F_GUEST_TSO4`: TCP/IPv4 frames longer than the MTU, to be segmented.
    pub tso4: bool,
    /// `VIRTIO_NET_F_GUEST_TSO6`: the same for IPv6.
    pub tso6: bool,
}

/// A decoded header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetHeader {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
    pub num_buffers: u16,
}

/// Why a header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadHeader {
    /// Flags other than those defined, or `DATA_VALID` from a driver.
    Flags,
    /// The checksum position does not fit the frame.
    Checksum,
    /// Unknown segmentation type, no segment size, or no partial checksum with segmentation.
    Segmentation,
}

impl NetHeader {
    /// Decodes the first [`HEADER_LEN`] bytes of `bytes` (missing bytes read as zero).
    pub fn parse(bytes: &[u8]) -> NetHeader {
        let b = |i: usize| bytes.get(i).copied().unwrap_or(0);
        let w = |i: usize| u16::from_le_bytes([b(i), b(i + 1)]);
        NetHeader {
            flags: b(0),
            gso_type: b(1),
            hdr_len: w(2),
            gso_size: w(4),
            csum_start: w(6),
            csum_offset: w(8),
            num_buffers: w(10),
        }
    }

    /// Encodes the header.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let words = [
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
            self.num_buffers,
        ];
        let bytes = [self.flags, self.gso_type]
            .into_iter()
            .chain(words.into_iter().flat_map(u16::to_le_bytes));
        for (dst, src) in out.iter_mut().zip(bytes) {
            *dst = src;
        }
        out
    }

    /// Checks the header against its frame of `frame_len` bytes. `from_driver`: the header
    /// came from a guest's transmit queue (where `DATA_VALID` is not defined).
    pub fn check(&self, frame_len: usize, from_driver: bool) -> Result<(), BadHeader> {
        let allowed = if from_driver {
            F_NEEDS_CSUM
        } else {
            F_NEEDS_CSUM | F_DATA_VALID
        };
        if self.flags & !allowed != 0 {
            return Err(BadHeader::Flags);
        }
        let needs_csum = self.flags & F_NEEDS_CSUM != 0;
        if needs_csum {
            let end = usize::from(self.csum_start) + usize::from(self.csum_offset) + 2;
            if end > frame_len {
                return Err(BadHeader::Checksum);
            }
        }
        match self.gso_type {
            GSO_NONE => Ok(()),
            GSO_TCPV4 | GSO_TCPV6 if self.gso_size > 0 && needs_csum => Ok(()),
            _ => Err(BadHeader::Segmentation),
        }
    }

    /// Whether a guest that accepts `offloads` can take the frame as it is.
    pub fn fits(&self, offloads: Offloads) -> bool {
        match self.gso_type {
            GSO_TCPV4 => offloads.tso4,
            GSO_TCPV6 => offloads.tso6,
            _ => true,
        }
    }
}

/// Completes a partial checksum in `frame` (`NEEDS_CSUM`): the Internet checksum (RFC 1071) of
/// the bytes from `csum_start` on, which include the pseudo-header sum the sender left in the
/// checksum field, stored at `csum_start + csum_offset`. The header must have passed
/// [`NetHeader::check`].
pub fn complete_checksum(header: &NetHeader, frame: &mut [u8]) {
    let start = usize::from(header.csum_start);
    let at = start + usize::from(header.csum_offset);
    let Some(data) = frame.get(start..) else {
        return;
    };
    let checksum = !fold_sum(ones_complement_sum(data, 0));
    if let Some(field) = frame.get_mut(at..at + 2) {
        field.copy_from_slice(&checksum.to_be_bytes());
    }
}

/// Adds `data`, as big-endian 16-bit words (an odd last byte padded with zero), to `sum`: the
/// Internet checksum's sum (RFC 1071) before folding; start from 0 or from a pseudo-header's.
pub fn ones_complement_sum(data: &[u8], mut sum: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        if let [hi, lo] = w {
            sum += u64::from(u16::from_be_bytes([*hi, *lo]));
        }
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

/// Folds a [`ones_complement_sum`] into 16 bits with end-around carry (RFC 1071).
pub fn fold_sum(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_little_endian() {
        let h = NetHeader {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 1,
        };

        let bytes = h.to_bytes();

        assert_eq!(bytes, [1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0, 1, 0]);
        assert_eq!(NetHeader::parse(&bytes), h);
    }

    #[test]
    fn checksum_position_outside_the_frame_is_refused() {
        let h = NetHeader {
            flags: F_NEEDS_CSUM,
            csum_start: 60,
            csum_offset: 6,
            ..NetHeader::default()
        };

        assert_eq!(h.check(67, true), Err(BadHeader::Checksum));
        assert_eq!(h.check(68, true), Ok(()));
    }

    #[test]
    fn segmentation_needs_a_known_type_a_size_and_a_partial_checksum() {
        let tso = NetHeader {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            ..NetHeader::default()
        };

        assert_eq!(tso.check(1514, true), Ok(()));
        let udp = NetHeader { gso_type: 3, ..tso };
        assert_eq!(udp.check(1514, true), Err(BadHeader::Segmentation));
        let no_size = NetHeader { gso_size: 0, ..tso };
        assert_eq!(no_size.check(1514, true), Err(BadHeader::Segmentation));
        let no_csum = NetHeader { flags: 0, ..tso };
        assert_eq!(no_csum.check(1514, true), Err(BadHeader::Segmentation));
    }

    #[test]
    fn data_valid_is_refused_from_a_driver_only() {
        let h = NetHeader {
            flags: F_DATA_VALID,
            ..NetHeader::default()
        };

        assert_eq!(h.check(60, true), Err(BadHeader::Flags));
        assert_eq!(h.check(60, false), Ok(()));
    }

    #[test]
    fn completed_checksum_matches_rfc_1071() {
        // The example of RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to ddf2 (one's
        // complement), so the checksum is 220d.
        let mut frame = vec![0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0, 0];
        let h = NetHeader {
            flags: F_NEEDS_CSUM,
            csum_start: 0,
            csum_offset: 8,
            ..NetHeader::default()
        };

        complete_checksum(&h, &mut frame);

        assert_eq!(&frame[8..], &[0x22, 0x0d]);
    }
}
