//! Fuzz target: an end of a channel reading what a faulty (or crashed, or hostile) other end
//! left in the shared file. Input: byte 0 picks the kind (even: sampling, odd: queuing),
//! byte 1 the largest message (1..=64), byte 2 the depth (1..=8); the rest overwrites the file
//! from its start (header included), as the other end could. Then a reader reads and, for
//! queuing, a sender sends and a receiver takes up to depth + 2 messages, none waiting.
//! Invariants checked: no panic; every length handed back is within the largest message and
//! the buffer; the mapping's bounds hold (vm-memory checks every access).
#![no_main]

use std::os::unix::fs::FileExt;
use std::time::Duration;

use bulkhead_ports::{
    channel_file_name, create_channel_file, ChannelKind, Layout, QueueReceiver, QueueSender,
    SamplingReader,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [kind, max, depth, rest @ ..] = data else {
        return;
    };
    let layout = Layout {
        kind: if kind % 2 == 0 {
            ChannelKind::Sampling
        } else {
            ChannelKind::Queuing
        },
        max_message_bytes: u32::from(max % 64) + 1,
        depth: u32::from(depth % 8) + 1,
    };
    let dir = std::env::temp_dir().join(format!("bulkhead-ports-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let path = dir.join(channel_file_name("f"));
    create_channel_file(&path, &layout).expect("channel file");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open channel file");
    let len = rest.len().min(layout.file_len());
    file.write_all_at(&rest[..len], 0).expect("overwrite");
    let max = layout.max_message_bytes as usize;
    let mut buf = vec![0u8; max];
    match layout.kind {
        ChannelKind::Sampling => {
            // A header the other end broke is refused at open; that is a fine outcome too.
            if let Ok(reader) = SamplingReader::open(&path, layout.max_message_bytes) {
                if let Ok(got) = reader.read(&mut buf) {
                    assert!(got.len <= max);
                }
            }
        }
        ChannelKind::Queuing => {
            let (Ok(receiver), Ok(sender)) = (
                QueueReceiver::open(&path, layout.max_message_bytes, layout.depth),
                QueueSender::open(&path, layout.max_message_bytes, layout.depth),
            ) else {
                return;
            };
            let _ = sender.send(&buf[..1], Duration::ZERO);
            for _ in 0..layout.depth + 2 {
                match receiver.receive(&mut buf, Duration::ZERO) {
                    Ok(n) => assert!(n <= max),
                    Err(_) => break,
                }
            }
            assert!(receiver.status().waiting <= layout.depth);
        }
    }
});
