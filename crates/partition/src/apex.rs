//! The APEX service: how a Linux guest reaches its partition's ports and doorbells. The guest
//! connects with its vsock device to the host (CID 2) on port `APEX_VSOCK_PORT` (653); the
//! vsock device joins that port to this service's Unix socket in the run directory,
//! `apex-<partition>.sock`. The stream carries one request per line and one answer line per
//! request (`docs/ports.md`):
//!
//! ```text
//! open NAME                  ok KIND MAX PARAM
//! write NAME HEX             ok                          (sampling source)
//! read NAME                  ok valid|invalid AGE_US HEX (sampling destination)
//! send NAME TIMEOUT_MS HEX   ok                          (queuing source)
//! recv NAME TIMEOUT_MS       ok HEX                      (queuing destination)
//! status NAME                ok V0 V1 V2 V3              (as the ABI's PortStatus)
//! ring NAME                  ok                          (doorbell this partition rings)
//! wait NAME TIMEOUT_MS       ok RINGS                    (doorbell rung for this partition)
//! ```
//!
//! Messages travel hex-encoded; timeouts are in ms, at most 10 000 (0: do not wait). An error
//! is `err CODE TEXT`, CODE one of `invalid-config` (no such port, or not of that kind),
//! `not-available`, `timed-out`, `too-big`, `invalid`, `bad-request`. The semantics are the
//! ABI's (`docs/pv-abi.md` §3.2): the same [`PvPorts`] answers both.
//!
//! The protocol itself (parsing a request, answering it through [`PvPorts`]) is
//! `bulkhead_devices::apex`, fuzzed there; this module owns the socket and the threads:
//! `<partition>-apex` accepts; one thread per connection (at most [`MAX_CONNECTIONS`]) serves
//! its requests, blocking for a request's timeout at most.

use std::io::{BufReader, ErrorKind, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bulkhead_devices::apex::{answer, read_line, Line};
use bulkhead_devices::pvcall::PvPorts;

use crate::ports::PartitionPorts;

/// Most connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;

/// The socket file name of partition `partition`'s APEX service in the run directory.
pub fn socket_name(partition: &str) -> String {
    format!("apex-{partition}.sock")
}

/// Binds the service's socket at `path` (replacing a stale one) and starts accepting.
pub fn spawn(partition: &str, path: &Path, ports: Arc<PartitionPorts>) -> std::io::Result<PathBuf> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    let name = partition.to_owned();
    std::thread::Builder::new()
        .name(format!("{partition}-apex"))
        .spawn(move || accept(&name, listener, ports))?;
    Ok(path.to_path_buf())
}

fn accept(partition: &str, listener: UnixListener, ports: Arc<PartitionPorts>) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            continue;
        };
        if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let (ports, served) = (Arc::clone(&ports), Arc::clone(&open));
        let spawned = std::thread::Builder::new()
            .name(format!("{partition}-apex-conn"))
            .spawn(move || {
                serve(stream, ports.as_ref());
                served.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Serves one connection until the guest closes it.
fn serve(stream: UnixStream, ports: &dyn PvPorts) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line(&mut reader, &mut line) {
            Ok(Line::End) => return,
            Ok(Line::TooLong) => {
                if writer.write_all(b"err too-big request line\n").is_err() {
                    return;
                }
            }
            Ok(Line::Complete) => {
                let mut answer = answer(ports, &line);
                answer.push('\n');
                if writer.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
