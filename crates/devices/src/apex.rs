//! The APEX protocol: the requests a Linux guest sends over vsock to reach its partition's
//! ARINC 653 ports and doorbells, and their answers (`docs/ports.md`). One request per line,
//! one answer line per request; messages hex-encoded; every request answered through the
//! same [`PvPorts`] as the ABI's calls, so the semantics are the ABI's (`docs/pv-abi.md`
//! §3.2). The socket and threads that carry it are the partition's
//! (`bulkhead-partition/src/apex.rs`).
//!
//! Everything here is guest input: a request is parsed without allocation beyond the line
//! (at most [`MAX_LINE`] bytes, longer lines discarded), and any byte sequence gets an answer
//! (`err bad-request …` at worst), never a panic. Fuzz target `apex` (`crates/devices/fuzz`).

use std::io::{BufRead, ErrorKind};
use std::time::Duration;

use bulkhead_pvabi::{PortKind, MAX_MESSAGE_BYTES};

use crate::pvcall::{PortError, PvPorts};

/// Longest request line: a largest message, hex-encoded, and its words.
pub const MAX_LINE: usize = 2 * MAX_MESSAGE_BYTES as usize + 128;
/// Longest wait a request may ask for.
const MAX_TIMEOUT_MS: u64 = 10_000;

/// What [`read_line`] found.
pub enum Line {
    /// A line, without its newline (and without a CR before it).
    Complete,
    /// A line longer than [`MAX_LINE`]: discarded.
    TooLong,
    /// The end of the stream.
    End,
}

/// Reads up to a newline into `line` (without it), at most [`MAX_LINE`] bytes kept.
pub fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Line> {
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(Line::End);
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], i + 1),
            None => (available, available.len()),
        };
        if !too_long && line.len() + chunk.len() <= MAX_LINE {
            line.extend_from_slice(chunk);
        } else {
            too_long = true;
            line.clear();
        }
        let newline = done > chunk.len();
        reader.consume(done);
        if newline {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

/// The answer line (without its newline) to request `line`.
pub fn answer(ports: &dyn PvPorts, line: &[u8]) -> String {
    match perform(ports, line) {
        Ok(text) => text,
        Err((code, text)) => format!("err {code} {text}"),
    }
}

type Failure = (&'static str, String);

fn port_error(e: PortError) -> Failure {
    match e {
        PortError::InvalidConfig => ("invalid-config", "not a port of that kind".into()),
        PortError::NotAvailable => ("not-available", "nothing to take, or no room".into()),
        PortError::TimedOut => ("timed-out", "nothing happened in time".into()),
    }
}

fn bad(text: impl Into<String>) -> Failure {
    ("bad-request", text.into())
}

fn perform(ports: &dyn PvPorts, line: &[u8]) -> Result<String, Failure> {
    let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
    let mut words = line.split_ascii_whitespace();
    let verb = words.next().ok_or_else(|| bad("empty request"))?;
    let name = words
        .next()
        .ok_or_else(|| bad(format!("{verb} needs a port name")))?;
    let handle = ports.open(name.as_bytes()).ok_or_else(|| {
        (
            "invalid-config",
            format!("no port or doorbell named {name:?}"),
        )
    })?;
    let info = ports.info(handle).ok_or_else(|| {
        (
            "invalid-config",
            format!("no port or doorbell named {name:?}"),
        )
    })?;
    let max = info.max_message_bytes as usize;
    let mut next = |what: &str| {
        words
            .next()
            .ok_or_else(|| bad(format!("{verb} needs {what}")))
    };
    let answer = match verb {
        "open" => format!(
            "ok {} {} {}",
            kind_name(info.kind),
            info.max_message_bytes,
            info.param
        ),
        "write" => {
            let message = message(next("a message")?, max)?;
            ports.sampling_write(handle, &message).map_err(port_error)?;
            "ok".into()
        }
        "read" => {
            let mut buf = vec![0u8; max];
            let got = ports.sampling_read(handle, &mut buf).map_err(port_error)?;
            format!(
                "ok {} {} {}",
                if got.valid { "valid" } else { "invalid" },
                got.age_ns / 1000,
                hex(&buf[..got.len.min(max)])
            )
        }
        "send" => {
            let timeout = timeout(next("a timeout in ms")?)?;
            let message = message(next("a message")?, max)?;
            ports
                .queuing_send(handle, &message, timeout)
                .map_err(port_error)?;
            "ok".into()
        }
        "recv" => {
            let timeout = timeout(next("a timeout in ms")?)?;
            let mut buf = vec![0u8; max];
            let len = ports
                .queuing_receive(handle, &mut buf, timeout)
                .map_err(port_error)?;
            format!("ok {}", hex(&buf[..len.min(max)]))
        }
        "status" => {
            let v = ports.status(handle).map_err(port_error)?;
            format!("ok {} {} {} {}", v[0], v[1], v[2], v[3])
        }
        "ring" => {
            ports.doorbell_ring(handle).map_err(port_error)?;
            "ok".into()
        }
        "wait" => {
            let timeout = timeout(next("a timeout in ms")?)?;
            let rings = ports.doorbell_wait(handle, timeout).map_err(port_error)?;
            format!("ok {rings}")
        }
        other => return Err(bad(format!("unknown request {other:?}"))),
    };
    Ok(answer)
}

fn kind_name(kind: PortKind) -> &'static str {
    match kind {
        PortKind::SamplingSource => "sampling-source",
        PortKind::SamplingDestination => "sampling-destination",
        PortKind::QueuingSource => "queuing-source",
        PortKind::QueuingDestination => "queuing-destination",
        PortKind::DoorbellOut => "doorbell-out",
        PortKind::DoorbellIn => "doorbell-in",
    }
}

fn timeout(word: &str) -> Result<Duration, Failure> {
    match word.parse::<u64>() {
        Ok(ms) if ms <= MAX_TIMEOUT_MS => Ok(Duration::from_millis(ms)),
        _ => Err((
            "invalid",
            format!("timeout {word:?}: 0..={MAX_TIMEOUT_MS} ms"),
        )),
    }
}

/// A hex-encoded message of 1..=`max` bytes.
fn message(word: &str, max: usize) -> Result<Vec<u8>, Failure> {
    if word.len() % 2 != 0 {
        return Err(bad("a message is hex: an even number of digits"));
    }
    if word.len() / 2 > max {
        return Err((
            "too-big",
            format!("the port's largest message is {max} bytes"),
        ));
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    word.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("a message is hex: digits 0-9 a-f"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use std::io::BufReader;

    use crate::pvcall::{PortInfo, SampledMessage};

    use super::*;

    /// "tele" sampling destination (8 bytes, a fresh "hi"), "out" queuing source (4 bytes,
    /// full after one message), "bell" incoming doorbell (no rings).
    #[derive(Default)]
    struct Fake {
        queued: Mutex<Vec<Vec<u8>>>,
    }

    impl PvPorts for Fake {
        fn open(&self, name: &[u8]) -> Option<u64> {
            [&b"tele"[..], b"out", b"bell"]
                .iter()
                .position(|n| *n == name)
                .map(|i| i as u64)
        }
        fn info(&self, handle: u64) -> Option<PortInfo> {
            let (kind, max, param) = match handle {
                0 => (PortKind::SamplingDestination, 8, 1_000_000),
                1 => (PortKind::QueuingSource, 4, 1),
                2 => (PortKind::DoorbellIn, 0, 0),
                _ => return None,
            };
            Some(PortInfo {
                kind,
                max_message_bytes: max,
                param,
            })
        }
        fn sampling_write(&self, _: u64, _: &[u8]) -> Result<(), PortError> {
            Err(PortError::InvalidConfig)
        }
        fn sampling_read(&self, h: u64, buf: &mut [u8]) -> Result<SampledMessage, PortError> {
            if h != 0 {
                return Err(PortError::InvalidConfig);
            }
            buf[..2].copy_from_slice(b"hi");
            Ok(SampledMessage {
                len: 2,
                valid: true,
                age_ns: 3_000,
            })
        }
        fn queuing_send(&self, h: u64, m: &[u8], _: Duration) -> Result<(), PortError> {
            if h != 1 {
                return Err(PortError::InvalidConfig);
            }
            let mut q = self.queued.lock().unwrap();
            if q.is_empty() {
                q.push(m.to_vec());
                Ok(())
            } else {
                Err(PortError::NotAvailable)
            }
        }
        fn queuing_receive(&self, _: u64, _: &mut [u8], _: Duration) -> Result<usize, PortError> {
            Err(PortError::InvalidConfig)
        }
        fn status(&self, _: u64) -> Result<[u64; 4], PortError> {
            Ok([1, 2, 3, 4])
        }
        fn doorbell_ring(&self, _: u64) -> Result<(), PortError> {
            Err(PortError::InvalidConfig)
        }
        fn doorbell_wait(&self, _: u64, t: Duration) -> Result<u64, PortError> {
            Err(if t.is_zero() {
                PortError::NotAvailable
            } else {
                PortError::TimedOut
            })
        }
        fn doorbell_attach(&self, _: u64, _: Option<u8>) -> Result<(), PortError> {
            Ok(())
        }
    }

    #[test]
    fn open_describes_the_port() {
        assert_eq!(
            answer(&Fake::default(), b"open tele"),
            "ok sampling-destination 8 1000000"
        );
    }

    #[test]
    fn read_gives_validity_age_in_microseconds_and_the_message_in_hex() {
        assert_eq!(answer(&Fake::default(), b"read tele"), "ok valid 3 6869");
    }

    #[test]
    fn a_second_send_into_a_full_queue_is_not_available() {
        let fake = Fake::default();

        assert_eq!(answer(&fake, b"send out 0 41"), "ok");
        assert!(answer(&fake, b"send out 0 42").starts_with("err not-available "));
        assert_eq!(fake.queued.lock().unwrap().as_slice(), &[b"A".to_vec()]);
    }

    #[test]
    fn an_undeclared_name_is_invalid_config() {
        assert!(answer(&Fake::default(), b"read other").starts_with("err invalid-config "));
    }

    #[test]
    fn a_request_on_the_wrong_kind_of_port_is_invalid_config() {
        assert!(answer(&Fake::default(), b"write tele 41").starts_with("err invalid-config "));
    }

    #[test]
    fn a_message_beyond_the_largest_is_too_big() {
        assert!(answer(&Fake::default(), b"send out 0 4142434445").starts_with("err too-big "));
    }

    #[test]
    fn malformed_requests_are_bad_requests() {
        let fake = Fake::default();
        for line in [
            &b""[..],
            b"read",
            b"send out 0 4",
            b"send out 0 zz",
            b"fly tele",
            b"\xff",
        ] {
            assert!(
                answer(&fake, line).starts_with("err bad-request "),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_timeout_beyond_ten_seconds_is_invalid() {
        assert!(answer(&Fake::default(), b"wait bell 10001").starts_with("err invalid "));
    }

    #[test]
    fn a_wait_that_sees_no_ring_times_out() {
        assert!(answer(&Fake::default(), b"wait bell 5").starts_with("err timed-out "));
    }

    #[test]
    fn an_overlong_line_is_discarded_and_the_next_one_served() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nread tele\n");
        let mut reader = BufReader::with_capacity(64, &input[..]);
        let mut line = Vec::new();

        assert!(matches!(
            read_line(&mut reader, &mut line),
            Ok(Line::TooLong)
        ));
        line.clear();
        assert!(matches!(
            read_line(&mut reader, &mut line),
            Ok(Line::Complete)
        ));
        assert_eq!(line, b"read tele");
        line.clear();
        assert!(matches!(read_line(&mut reader, &mut line), Ok(Line::End)));
    }
}
