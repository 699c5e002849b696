//! Fuzz target: the APEX protocol (`bulkhead_devices::apex`), what a Linux guest sends over
//! vsock to reach its ports. The input is the byte stream of one connection: it is cut into
//! lines by `read_line` (small reads, so lines straddle buffer refills) and each line is
//! answered through `FuzzPorts`. Invariants checked: no panic; every answer is one line that
//! starts with `ok` or `err `; `FuzzPorts` asserts that messages and buffers it receives are
//! within the port's size and timeouts within the limit.
#![no_main]

use std::io::BufReader;

use bulkhead_devices::apex::{answer, read_line, Line, MAX_LINE};
use bulkhead_devices_fuzz::FuzzPorts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ports = FuzzPorts::default();
    let mut reader = BufReader::with_capacity(64, data);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line(&mut reader, &mut line) {
            Ok(Line::Complete) => {
                assert!(line.len() <= MAX_LINE);
                let reply = answer(&ports, &line);
                assert!(reply == "ok" || reply.starts_with("ok ") || reply.starts_with("err "));
                assert!(!reply.contains('\n'));
            }
            Ok(Line::TooLong) => {}
            Ok(Line::End) | Err(_) => break,
        }
    }
});
