//! Shared helpers of the integration tests: where the binary, the guest images and KVM are,
//! and running a system description while watching what its partitions print.
//!
//! Missing prerequisites (no `/dev/kvm`, guest images not built) fail the test loudly with
//! the command that provides them; nothing is skipped silently.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The `bulkhead` binary under test.
pub fn bulkhead() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bulkhead"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Panics unless `/dev/kvm` can be opened read-write.
pub fn require_kvm() {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    assert!(
        ok,
        "/dev/kvm is missing or not accessible: these tests boot real guests on KVM"
    );
}

/// The RT guest ELF, built by `cd guests && cargo build --release`.
pub fn rt_demo() -> PathBuf {
    let path = repo().join("guests/target/x86_64-unknown-linux-gnu/release/rt-demo");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cd guests && cargo build --release`",
        path.display()
    );
    path
}

/// The guest-image cache of `scripts/build-images.sh`.
pub fn images() -> PathBuf {
    let dir = match std::env::var_os("BULKHEAD_CACHE") {
        Some(cache) => PathBuf::from(cache).join("images"),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/bulkhead/images"),
    };
    for file in [
        "vmlinuz",
        "vmlinux",
        "initramfs.cpio.gz",
        "testhost-vmlinux",
        "testhost-initramfs.cpio.gz",
    ] {
        assert!(
            dir.join(file).is_file(),
            "{} is missing: build the guest images with scripts/build-images.sh",
            dir.join(file).display()
        );
    }
    dir
}

/// A scratch directory for one test, under the target directory (visible inside the test
/// host, whose /tmp is its own).
pub fn scratch(test: &str) -> PathBuf {
    let dir = repo().join("target/test-scratch").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

/// Writes a system description and returns its path.
pub fn write_description(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("system.toml");
    std::fs::write(&path, toml).expect("write description");
    path
}

/// A line printed by a running system: `(from_stderr, text)`.
pub type Line = (bool, String);

/// A running `bulkhead run`, its output lines arriving on a channel.
pub struct RunningSystem {
    pub child: Child,
    lines: Receiver<Line>,
    pub seen: Vec<Line>,
}

impl RunningSystem {
    /// Starts `bulkhead run description`.
    pub fn start(description: &Path) -> RunningSystem {
        Self::start_with_env(description, &[])
    }

    /// Starts `bulkhead run description` with extra environment variables.
    pub fn start_with_env(description: &Path, env: &[(&str, &Path)]) -> RunningSystem {
        let mut child = Command::new(bulkhead())
            .arg("run")
            .arg(description)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bulkhead");
        let (tx, rx) = mpsc::channel();
        for (is_err, stream) in [
            (
                false,
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            ),
            (true, Box::new(child.stderr.take().unwrap())),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send((is_err, line));
                }
            });
        }
        RunningSystem {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits until a line satisfies `pred`; panics with everything seen after `timeout`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line.1) {
                        return line.1;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    let _ = self.child.kill();
                    panic!(
                        "timed out waiting for {what}; output so far:\n{}",
                        self.transcript()
                    );
                }
            }
        }
    }

    /// Waits for the supervisor to exit (killing it after `timeout`) and collects the rest.
    pub fn finish(mut self, timeout: Duration) -> (ExitStatus, Vec<Line>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "bulkhead did not stop within {timeout:?}; output:\n{}",
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status, self.seen)
    }

    /// Everything seen so far, one line each.
    pub fn transcript(&self) -> String {
        self.seen.iter().map(|(_, l)| format!("{l}\n")).collect()
    }
}

/// Fields of an `rt-stats` line: `rt-stats period_us=1000 samples=N min_ns=…`.
pub fn rt_stats_field(line: &str, key: &str) -> Option<u64> {
    let stats = &line[line.find("rt-stats ")?..];
    stats
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// The number after `key=` on the first line of `out` that starts with `prefix` (counter
/// lines such as `port b frames_in=12 drop_firewall=0 …`); panics, showing `out`, when the
/// line or the key is missing.
pub fn counter(out: &str, prefix: &str, key: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{out}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// Runs a shell script inside the KVM test host (`scripts/testhost.sh run`), returning its
/// exit status and everything it printed.
///
/// The TCG test host is not a perfect machine: its emulated AMD-V now and then hangs the whole
/// test host or crashes its kernel (`testhost.sh` reports "the test host hung" or "the test
/// host failed"), or makes a nested stock kernel triple-fault that boots fine everywhere else
/// (never seen on hardware or on the build machine's KVM). Such a session is run again, up to
/// [`TEST_HOST_ATTEMPTS`] times in all, and each retry is announced on stderr with the
/// transcript it replaces (docs/test-host.md, "Known flakiness"), and only the last
/// transcript is returned. What bulkhead itself reports never causes a retry.
pub fn in_test_host(script: &str, timeout_s: u32) -> (ExitStatus, String) {
    let mut attempt = 1;
    loop {
        let (status, text) = in_test_host_once(script, timeout_s);
        match test_host_trouble(&text) {
            Some(why) if attempt < TEST_HOST_ATTEMPTS => eprintln!(
                "NOTE: attempt {attempt} of {TEST_HOST_ATTEMPTS}: {why}; running the session \
                 again (docs/test-host.md, \"Known flakiness\"). Transcript:\n{text}"
            ),
            // Only the last transcript is returned: tests count lines in it.
            _ => return (status, text),
        }
        attempt += 1;
    }
}

/// How many times [`in_test_host`] runs a session that the test host itself broke.
pub const TEST_HOST_ATTEMPTS: u32 = 4;

/// What went wrong with the test host in a session's transcript, if anything did.
fn test_host_trouble(text: &str) -> Option<&'static str> {
    if text.contains("testhost.sh: the test host hung") {
        Some("the test host hung")
    } else if text.contains("testhost.sh: the test host failed") {
        Some("the test host crashed")
    } else if text.contains("guest fault: vCPU") {
        // The supervisor's words for a vCPU that triple-faulted; no test-host test expects one.
        Some("a nested guest triple-faulted")
    } else if text.lines().any(nested_kernel_oops) {
        Some("a nested guest's kernel oopsed")
    } else {
        None
    }
}

/// Whether `line` is a stock kernel's oops on a nested guest's console (`NAME| [ … ] BUG: …`,
/// an `Oops:` or a general protection fault), which no test provokes: seen when TCG's emulated
/// AMD-V corrupts a nested guest's registers (a per-CPU base that points nowhere), in
/// bulkhead's partitions and in the QEMU guests some tests run beside them (whose consoles
/// the tests print under a `qemu| ` prefix). The panics the health tests provoke on purpose
/// are not oopses.
fn nested_kernel_oops(line: &str) -> bool {
    let Some((_, message)) = line.split_once("| [") else {
        return false;
    };
    let message = message.split_once("] ").map_or("", |(_, m)| m);
    ["BUG: ", "Oops: ", "general protection fault"]
        .iter()
        .any(|start| message.starts_with(start))
}

fn in_test_host_once(script: &str, timeout_s: u32) -> (ExitStatus, String) {
    images();
    // One test host at a time: each is a 2-vCPU TCG machine, and this machine has 2 cores.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let output = Command::new(repo().join("scripts/testhost.sh"))
        .current_dir(repo())
        .args([
            "run",
            "--timeout",
            &timeout_s.to_string(),
            "--",
            "bash",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/testhost.sh");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status, text)
}

/// Encodes a shell script for the guest init's `bh.cmd=` (`+` is a space, `%XX` a byte; see
/// `scripts/images/lib.sh`).
pub fn bh_cmd(script: &str) -> String {
    let mut out = String::from("bh.cmd=");
    for b in script.bytes() {
        match b {
            b' ' => out.push('+'),
            b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'.'
            | b'/'
            | b'-'
            | b'_'
            | b'='
            | b':'
            | b',' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The guest-image cache with the PREEMPT_RT kernel too (`vmlinux-rt`, `vmlinuz-rt`, of
/// `linux-image-rt-amd64`), which `scripts/build-images.sh` builds beside the standard one.
pub fn rt_images() -> PathBuf {
    let dir = images();
    for file in ["vmlinux-rt", "vmlinuz-rt"] {
        assert!(
            dir.join(file).is_file(),
            "{} is missing: build the guest images with scripts/build-images.sh",
            dir.join(file).display()
        );
    }
    dir
}
