//! The supervisor: `bulkhead run`. Starts each partition in its own process (this binary,
//! re-executed as `bulkhead partition FILE NAME`), prints every partition's console as lines
//! prefixed `NAME| ` (and copies them to the partition's `console_log`), prints the monitor's
//! own messages as `[bulkhead] NAME: …`, learns why each partition stopped from its exit
//! status, restarts partitions whose guest reset (per `on_reset`, up to `max_restarts`), and
//! ends when every partition has stopped. Ctrl-C or SIGTERM stops every partition.
//!
//! Each run has a private run directory (mode 0700, removed when the run ends), named to the
//! partition processes in `BULKHEAD_RUN_DIR`: links between partitions bind their sockets
//! there (`bulkhead-partition`'s link backend).
//!
//! Time windows count from one epoch for the whole run (`BULKHEAD_FRAME_EPOCH_NS`, chosen
//! here at start), so restarted partitions keep the same schedule.
//!
//! Threads: the main thread waits for a child to end or a stop signal (SIGCHLD, SIGINT and
//! SIGTERM wake it through a self-pipe) and then looks at every partition process; two reader
//! threads per partition process copy its standard output (console) and error (monitor log).
//! All of them stay on the system's housekeeping CPUs.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_config::{HealthAction, OnReset, PartitionPlan, PortKind, SystemPlan};
use bulkhead_partition::events::{self, EventLog, EVENT_LOG_ENV};
use bulkhead_partition::{monotonic_ns, restrict_current_thread, FRAME_EPOCH_ENV};
use bulkhead_ports::{channel_file_name, create_channel_file, ChannelKind, Layout};

use crate::bridges::Bridges;

/// The longest the main thread waits for a signal before it looks at the partition
/// processes anyway.
const POLL: Duration = Duration::from_millis(100);
/// The environment variable that names the run directory to partition and bridge processes.
pub const RUN_DIR_ENV: &str = "BULKHEAD_RUN_DIR";

/// This run's private directory, `<base>/<system>-<supervisor pid>` with mode 0700, where
/// `<base>` is the first of `$XDG_RUNTIME_DIR/bulkhead`, `/run/bulkhead` and
/// `<temporary directory>/bulkhead` that can be created. Removed on drop.
struct RunDir(PathBuf);

impl RunDir {
    fn create(system: &str) -> std::io::Result<RunDir> {
        let leaf = format!("{system}-{}", std::process::id());
        let mut bases = Vec::new();
        if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            bases.push(PathBuf::from(xdg).join("bulkhead"));
        }
        bases.push(PathBuf::from("/run/bulkhead"));
        bases.push(std::env::temp_dir().join("bulkhead"));
        let mut last = None;
        for base in bases {
            match create_private_dir(&base, &leaf) {
                Ok(dir) => return Ok(RunDir(dir)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no place for a run directory")))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates `base` (if missing) and `base/leaf` (replacing a stale one of an earlier run that
/// had the same process ID), both mode 0700.
fn create_private_dir(base: &Path, leaf: &str) -> std::io::Result<PathBuf> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(base)?;
    let dir = base.join(leaf);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Why a partition process ended, from its exit status (codes set by
/// `bulkhead_partition::StopReason::exit_code`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    PoweredOff,
    PoweredOffWithCode,
    Reset,
    GuestFault,
    Watchdog,
    Panic,
    DeadlineMisses,
    MonitorError(i32),
    Signal(i32),
    /// Killed by the supervisor itself (Ctrl-C, SIGTERM, or another partition's stop_system).
    Stopped,
}

impl Ended {
    fn from_status(status: ExitStatus) -> Ended {
        match (status.code(), status.signal()) {
            (Some(0), _) => Ended::PoweredOff,
            (Some(3), _) => Ended::Reset,
            (Some(4), _) => Ended::GuestFault,
            (Some(5), _) => Ended::PoweredOffWithCode,
            (Some(6), _) => Ended::Watchdog,
            (Some(7), _) => Ended::Panic,
            (Some(8), _) => Ended::DeadlineMisses,
            (Some(code), _) => Ended::MonitorError(code),
            (None, Some(sig)) => Ended::Signal(sig),
            (None, None) => Ended::MonitorError(-1),
        }
    }

    fn describe(&self) -> String {
        match self {
            Ended::PoweredOff => "powered off".into(),
            Ended::PoweredOffWithCode => "powered off with a non-zero code".into(),
            Ended::Reset => "guest reset".into(),
            Ended::GuestFault => "guest fault (triple fault or KVM internal error)".into(),
            Ended::Watchdog => "watchdog expired".into(),
            Ended::Panic => "guest panic".into(),
            Ended::DeadlineMisses => "deadline-miss threshold reached".into(),
            Ended::MonitorError(code) => format!("monitor error (exit code {code})"),
            Ended::Signal(sig) => format!(
                "partition process crashed: killed by signal {sig} ({})",
                signal_name(*sig)
            ),
            Ended::Stopped => "stopped by the supervisor".into(),
        }
    }
}

/// What the supervisor does once a partition process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Leave it stopped (powered off, or halted).
    Stop,
    /// Start it again (if restarts are left).
    Restart,
    /// Stop every partition.
    StopSystem,
}

/// The event name and the decision for `ended`, from the partition's plan.
fn decide(plan: &PartitionPlan, ended: &Ended) -> (&'static str, Decision) {
    let health = &plan.health;
    let by_action = |action: HealthAction| match action {
        HealthAction::Restart => Decision::Restart,
        HealthAction::StopSystem => Decision::StopSystem,
        // The partition already stopped: `ignore` and `log` (only accepted for errors that
        // leave it running, which never end the process) mean halt here.
        HealthAction::Halt | HealthAction::Ignore | HealthAction::Log => Decision::Stop,
    };
    match ended {
        Ended::PoweredOff | Ended::PoweredOffWithCode => ("poweroff", Decision::Stop),
        Ended::Reset => (
            "reset",
            if plan.on_reset == OnReset::Restart {
                Decision::Restart
            } else {
                Decision::Stop
            },
        ),
        Ended::GuestFault => ("guest_fault", by_action(health.on_guest_fault)),
        Ended::Watchdog => ("watchdog", by_action(health.on_watchdog)),
        Ended::Panic => ("panic", by_action(health.on_panic)),
        Ended::DeadlineMisses => ("deadline_miss", by_action(health.on_deadline_miss)),
        Ended::MonitorError(_) | Ended::Signal(_) => ("crash", by_action(health.on_crash)),
        Ended::Stopped => ("stopped", Decision::Stop),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => "signal",
    }
}

struct Running {
    plan: PartitionPlan,
    child: Option<Child>,
    /// The threads copying the process's output; joined once it exits, so its last console
    /// lines are printed before the line saying it stopped.
    readers: Vec<std::thread::JoinHandle<()>>,
    restarts: u32,
    last: Option<Ended>,
    /// The supervisor has killed the process (its end is then no crash).
    killed: bool,
}

impl Running {
    /// Kills the partition's process, if it runs, as the supervisor's own stop.
    fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if child.kill().is_ok() {
                self.killed = true;
            }
        }
    }
}

/// Shared standard output, so lines from different partitions never interleave mid-line.
type Out = Arc<Mutex<std::io::Stdout>>;

/// Creates the shared-memory file of every `[[channel]]` in the run directory, before any
/// partition starts: the ends of a channel map it, and it outlives their restarts.
fn create_channels(plan: &SystemPlan, run_dir: &Path) -> Result<(), String> {
    for channel in &plan.channels {
        let layout = Layout {
            kind: match channel.kind {
                PortKind::Sampling => ChannelKind::Sampling,
                PortKind::Queuing => ChannelKind::Queuing,
            },
            max_message_bytes: channel.max_message_bytes,
            depth: channel.depth,
        };
        let path = run_dir.join(channel_file_name(&channel.name));
        create_channel_file(&path, &layout)
            .map_err(|e| format!("channel {}: {:#}", channel.name, anyhow::Error::from(e)))?;
    }
    Ok(())
}

/// Runs the system; returns the process exit code.
pub fn run(plan: &SystemPlan, description: &Path) -> u8 {
    if let Err(e) = restrict_current_thread(&plan.housekeeping_cpus) {
        eprintln!(
            "[bulkhead] warning: cannot keep the supervisor on housekeeping CPUs {:?}: {e}",
            plan.housekeeping_cpus
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("[bulkhead] warning: cannot catch signal {sig}: {e}");
        }
    }
    let wake = wake_on_signals();
    let epoch_ns = monotonic_ns();
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    let run_dir = RunDir::create(&plan.name)
        .map_err(|e| {
            eprintln!(
                "[bulkhead] warning: cannot create a run directory ({e}): links between \
                 partitions will not work"
            );
        })
        .ok();
    let run_dir = run_dir.as_ref().map(|d| d.0.as_path());
    if let Some(dir) = run_dir {
        if let Err(e) = create_channels(plan, dir) {
            eprintln!("[bulkhead] {e}");
            return 1;
        }
    }
    let event_log_path = Some(events::default_path(&plan.name));
    let event_log = event_log_path.as_deref().and_then(|path| {
        EventLog::open(path)
            .map_err(|e| {
                eprintln!(
                    "[bulkhead] warning: cannot open the event log {}: {e}",
                    path.display()
                );
            })
            .ok()
    });
    if let Some(log) = &event_log {
        log.record(
            "-",
            "system_start",
            "none",
            &format!("partitions={}", plan.partitions.len()),
        );
    }
    eprintln!(
        "[bulkhead] system \"{}\": starting {} partition(s)",
        plan.name,
        plan.partitions.len()
    );
    let mut parts: Vec<Running> = plan
        .partitions
        .iter()
        .map(|p| Running {
            plan: p.clone(),
            child: None,
            readers: Vec::new(),
            restarts: 0,
            last: None,
            killed: false,
        })
        .collect();
    let env = PartitionEnv {
        description,
        run_dir,
        event_log: event_log_path.as_deref(),
        epoch_ns,
    };
    let mut bridges = Bridges::start(plan, &env);
    for part in &mut parts {
        start(part, &env, &out);
    }

    let mut interrupted = false;
    let mut stopping_system = false;
    let mut stop_all = false;
    while parts.iter().any(|p| p.child.is_some()) {
        if stop.load(Ordering::Relaxed) && !interrupted {
            interrupted = true;
            eprintln!("[bulkhead] stopping every partition");
            for part in &mut parts {
                part.kill();
            }
        }
        for part in &mut parts {
            let Some(child) = part.child.as_mut() else {
                continue;
            };
            let status = match child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) => continue,
                Err(e) => {
                    eprintln!(
                        "[bulkhead] {}: cannot wait for the partition process: {e}",
                        part.plan.name
                    );
                    continue;
                }
            };
            part.child = None;
            for reader in part.readers.drain(..) {
                let _ = reader.join();
            }
            let ended = match Ended::from_status(status) {
                Ended::Signal(libc::SIGKILL) if part.killed => Ended::Stopped,
                ended => ended,
            };
            part.killed = false;
            eprintln!(
                "[bulkhead] {}: stopped: {}",
                part.plan.name,
                ended.describe()
            );
            let (event, decision) = decide(&part.plan, &ended);
            let name = part.plan.name.clone();
            part.last = Some(ended.clone());
            let action = match decision {
                _ if interrupted || stopping_system => "none (stopping)",
                Decision::Stop if event == "poweroff" => "none",
                Decision::Stop => "halt",
                Decision::Restart if part.restarts >= part.plan.max_restarts => {
                    eprintln!(
                        "[bulkhead] {name}: halted: {} restart(s) already, at most {}",
                        part.restarts, part.plan.max_restarts
                    );
                    "halt (restart limit reached)"
                }
                Decision::Restart => "restart",
                Decision::StopSystem => "stop_system",
            };
            if let Some(log) = &event_log {
                log.record(&name, event, action, &ended.describe().replace(' ', "_"));
            }
            match action {
                "restart" => {
                    part.restarts += 1;
                    eprintln!(
                        "[bulkhead] {name}: restarting (restart {} of at most {})",
                        part.restarts, part.plan.max_restarts
                    );
                    start(part, &env, &out);
                }
                "stop_system" if !stopping_system => {
                    stopping_system = true;
                    eprintln!(
                        "[bulkhead] {name}: health action stop_system: stopping every partition"
                    );
                    stop_all = true;
                }
                _ => {}
            }
        }
        if stop_all {
            stop_all = false;
            for part in &mut parts {
                part.kill();
            }
        }
        if !interrupted {
            bridges.watch(&env, event_log.as_ref());
        }
        wait_for_signal(wake.as_ref());
    }
    bridges.stop();

    let clean = parts.iter().all(|p| p.last == Some(Ended::PoweredOff));
    eprintln!(
        "[bulkhead] system \"{}\": every partition has stopped{}",
        plan.name,
        if clean {
            "; all powered off cleanly"
        } else {
            ""
        }
    );
    if let Some(log) = &event_log {
        log.record(
            "-",
            "system_stop",
            "none",
            if clean { "clean" } else { "not_clean" },
        );
    }
    match (interrupted, stopping_system, clean) {
        (true, _, _) => 130,
        (false, true, _) => 1,
        (false, false, true) => 0,
        (false, false, false) => 1,
    }
}

/// The read end of a self-pipe written on SIGCHLD, SIGINT and SIGTERM, if it could be set up
/// (without it the main loop looks every [`POLL`]).
fn wake_on_signals() -> Option<UnixStream> {
    let (read, write) = UnixStream::pair().ok()?;
    read.set_read_timeout(Some(POLL)).ok()?;
    for sig in [
        signal_hook::consts::SIGCHLD,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ] {
        let write = write.try_clone().ok()?;
        if let Err(e) = signal_hook::low_level::pipe::register(sig, write) {
            eprintln!("[bulkhead] warning: cannot wait for signal {sig}: {e}");
            return None;
        }
    }
    Some(read)
}

/// Waits until a signal arrived (or [`POLL`] passed), draining what the self-pipe holds.
fn wait_for_signal(wake: Option<&UnixStream>) {
    let Some(mut wake) = wake else {
        std::thread::sleep(POLL);
        return;
    };
    let mut buf = [0u8; 64];
    let _ = wake.read(&mut buf);
}

/// What every partition (and bridge) process is started with.
pub(crate) struct PartitionEnv<'a> {
    pub(crate) description: &'a Path,
    pub(crate) run_dir: Option<&'a Path>,
    pub(crate) event_log: Option<&'a Path>,
    pub(crate) epoch_ns: u64,
}

fn start(part: &mut Running, env: &PartitionEnv<'_>, out: &Out) {
    let name = part.plan.name.clone();
    let mut command = Command::new(crate::self_exe());
    if let Some(dir) = env.run_dir {
        command.env(RUN_DIR_ENV, dir);
    }
    if let Some(path) = env.event_log {
        command.env(EVENT_LOG_ENV, path);
    }
    command.env(FRAME_EPOCH_ENV, env.epoch_ns.to_string());
    let spawned = command
        .arg("partition")
        .arg(env.description)
        .arg(&name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a terminal's Ctrl-C reaches the supervisor only, which stops
        // the partitions itself.
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("[bulkhead] {name}: cannot start the partition process: {e}");
            part.last = Some(Ended::MonitorError(-1));
            return;
        }
    };
    eprintln!(
        "[bulkhead] {name}: partition process {} started",
        child.id()
    );
    if let Some(stdout) = child.stdout.take() {
        let log = part.plan.console_log.as_ref().and_then(|path| {
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    eprintln!(
                        "[bulkhead] {name}: cannot open console log {}: {e}",
                        path.display()
                    );
                })
                .ok()
        });
        let (name, out) = (name.clone(), Arc::clone(out));
        part.readers.push(std::thread::spawn(move || {
            copy_console(stdout, &name, &out, log)
        }));
    }
    if let Some(stderr) = child.stderr.take() {
        let name = name.clone();
        part.readers.push(std::thread::spawn(move || {
            for line in lines(stderr) {
                eprintln!("[bulkhead] {name}: {line}");
            }
        }));
    }
    part.child = Some(child);
}

fn copy_console(stdout: impl Read, name: &str, out: &Out, mut log: Option<File>) {
    for line in lines(stdout) {
        {
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{name}| {line}");
            let _ = out.flush();
        }
        if let Some(file) = log.as_mut() {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Longest console or log line passed on whole; a guest that writes more without a newline
/// has it cut into lines of this length, so the supervisor's memory stays bounded.
const MAX_LINE: usize = 4096;

/// Lines of a byte stream, lossily decoded, without line endings, at most [`MAX_LINE`] bytes
/// each.
pub(crate) fn lines(r: impl Read) -> impl Iterator<Item = String> {
    let mut reader = BufReader::new(r);
    let mut line: Vec<u8> = Vec::new();
    std::iter::from_fn(move || loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => &[],
        };
        if buf.is_empty() {
            if line.is_empty() {
                return None;
            }
            return Some(decode(&std::mem::take(&mut line)));
        }
        let room = MAX_LINE - line.len();
        let take = buf.len().min(room);
        match buf[..take].iter().position(|&b| b == b'\n') {
            Some(end) => {
                line.extend_from_slice(&buf[..end]);
                reader.consume(end + 1);
                return Some(decode(&std::mem::take(&mut line)));
            }
            None => {
                line.extend_from_slice(&buf[..take]);
                reader.consume(take);
                if line.len() == MAX_LINE {
                    return Some(decode(&std::mem::take(&mut line)));
                }
            }
        }
    })
}

fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\r')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_map_to_stop_reasons() {
        assert_eq!(
            Ended::from_status(ExitStatus::from_raw(0)),
            Ended::PoweredOff
        );
        assert_eq!(
            Ended::from_status(ExitStatus::from_raw(3 << 8)),
            Ended::Reset
        );
        assert_eq!(
            Ended::from_status(ExitStatus::from_raw(4 << 8)),
            Ended::GuestFault
        );
        assert_eq!(
            Ended::from_status(ExitStatus::from_raw(9)),
            Ended::Signal(9)
        );
    }

    #[test]
    fn run_directory_is_private_and_replaces_a_stale_one() {
        use std::os::unix::fs::PermissionsExt;
        let base =
            std::env::temp_dir().join(format!("bulkhead-rundir-test-{}", std::process::id()));
        std::fs::create_dir_all(base.join("sys-1")).unwrap();
        std::fs::write(base.join("sys-1/stale.sock"), b"").unwrap();

        let dir = create_private_dir(&base, "sys-1").unwrap();

        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        let empty = std::fs::read_dir(&dir).unwrap().next().is_none();
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(mode, 0o700);
        assert!(empty);
    }

    #[test]
    fn a_line_without_end_is_cut_at_the_longest_line() {
        let input = vec![b'x'; MAX_LINE * 2 + 10];

        let got: Vec<usize> = lines(input.as_slice()).map(|l| l.len()).collect();

        assert_eq!(got, [MAX_LINE, MAX_LINE, 10]);
    }

    #[test]
    fn console_lines_lose_carriage_returns_and_survive_bad_utf8() {
        let input: &[u8] = b"one\r\ntw\xffo\nlast";

        let got: Vec<String> = lines(input).collect();

        assert_eq!(got, ["one", "tw\u{fffd}o", "last"]);
    }
}
