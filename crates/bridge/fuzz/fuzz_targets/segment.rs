//! The uplink's segmentation (`bulkhead_bridge::segment::segment`) fed what a hostile guest
//! can hand its port: any virtio-net header and any frame. Checks, besides never panicking:
//! on success every segment fits the largest frame, keeps the frame's Ethernet header and
//! carries at most one segment size of payload, the count returned is the count emitted, and
//! no frame becomes more segments than its bytes allow at the smallest segment size; on an
//! error nothing was emitted.
//!
//! Input: `[0..12]` the virtio-net header (`gso_type` 1 and 4 are TCPv4 and TCPv6), then the
//! frame, Ethernet header first.
#![no_main]

use bulkhead_bridge::segment::{segment, MIN_SEGMENT};
use bulkhead_bridge::tunnel::MAX_FRAME;
use bulkhead_virtio::net::{NetHeader, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((header, frame)) = data.split_at_checked(HEADER_LEN) else {
        return;
    };
    let header = NetHeader::parse(header);
    let mut emitted = 0usize;
    let result = segment(&header, frame, MAX_FRAME, |wire| {
        emitted += 1;
        assert!(wire.len() <= MAX_FRAME, "{} bytes", wire.len());
        assert_eq!(wire[..12], frame[..12], "the Ethernet addresses change");
        assert!(wire.len() <= frame.len(), "a segment outgrew its frame");
    });
    match result {
        Ok(count) => {
            assert_eq!(count, emitted);
            assert!(header.gso_size >= MIN_SEGMENT);
            assert!(count <= frame.len() / usize::from(MIN_SEGMENT) + 1);
        }
        Err(_) => assert_eq!(emitted, 0),
    }
});
