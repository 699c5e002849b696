//! `bulkhead`: the command line. Thin: it parses arguments, validates the system description
//! (`bulkhead-config`), and hands over to the supervisor (`supervisor`) or, when re-executed
//! by it, to one partition's monitor (`bulkhead-partition`).
//!
//! Exit codes: 0 every partition powered off cleanly (or `check` passed); 1 a partition
//! stopped otherwise, or the monitor failed; 2 the description was refused or the command
//! line is wrong; 130 stopped by Ctrl-C / SIGTERM.
#![forbid(unsafe_code)]

mod bridges;
mod supervisor;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bulkhead_config::{HostFacts, SystemPlan};

const USAGE: &str = "usage:
  bulkhead check FILE     validate a system description; nothing runs
  bulkhead run FILE       run the system it describes
  bulkhead events FILE    show the event log of the system it describes (health-monitor
                          events, restarts, stops, bridge alerts; newest last)
  bulkhead stats FILE     show the per-port counters of its bridges (while it runs)
(internal) bulkhead partition FILE NAME   run one partition's monitor
(internal) bulkhead bridge FILE NAME      run one network bridge";

/// Exit code for a refused description or bad usage.
const EXIT_REFUSED: u8 = 2;

/// What the host lacks to shield the system's real-time CPUs (`bulkhead_partition::shield`).
fn host_warnings(plan: &SystemPlan) -> Vec<String> {
    use bulkhead_partition::shield;
    let cpus: Vec<usize> = shield::realtime_cpus(plan).into_iter().collect();
    shield::warnings(plan, &shield::HostState::read(&cpus))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match argv.as_slice() {
        ["check", file] => match validate(Path::new(file)) {
            Ok(plan) => {
                println!(
                    "{file}: system \"{}\" is valid: {} partition(s), {} MiB in all",
                    plan.name,
                    plan.partitions.len(),
                    plan.partitions.iter().map(|p| p.memory_mib).sum::<u64>()
                );
                for warning in host_warnings(&plan) {
                    eprintln!("{file}: warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        ["run", file] => match validate(Path::new(file)) {
            Ok(plan) => {
                for warning in host_warnings(&plan) {
                    eprintln!("[bulkhead] warning: {warning}");
                }
                ExitCode::from(supervisor::run(&plan, Path::new(file)))
            }
            Err(code) => code,
        },
        ["events", file] => match validate(Path::new(file)) {
            Ok(plan) => show_events(&plan.name),
            Err(code) => code,
        },
        ["stats", file] => match validate(Path::new(file)) {
            Ok(plan) => show_stats(&plan),
            Err(code) => code,
        },
        ["partition", file, name] => run_partition(Path::new(file), name),
        ["bridge", file, name] => run_bridge(Path::new(file), name),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

fn host_facts() -> Result<HostFacts, ExitCode> {
    HostFacts::probe().map_err(|e| {
        eprintln!("bulkhead: cannot read the host's CPUs and memory: {e}");
        ExitCode::FAILURE
    })
}

/// Loads and validates; prints every problem and returns exit code 2 on refusal.
fn validate(file: &Path) -> Result<SystemPlan, ExitCode> {
    let host = host_facts()?;
    bulkhead_config::load(file, &host).map_err(|refusal| {
        eprintln!("{refusal}");
        eprintln!(
            "bulkhead: {}: refused ({} problem(s)); nothing started",
            file.display(),
            refusal.problems.len()
        );
        ExitCode::from(EXIT_REFUSED)
    })
}

fn run_partition(file: &Path, name: &str) -> ExitCode {
    let plan = match validate(file) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let Some(partition) = plan.partitions.iter().find(|p| p.name == name) else {
        eprintln!("no partition named {name:?} in {}", file.display());
        return ExitCode::from(EXIT_REFUSED);
    };
    let log = |line: &str| eprintln!("{line}");
    // On success `run_partition` ends the process itself with the stop reason's exit code.
    match bulkhead_partition::run_partition(partition, &log) {
        Ok(reason) => ExitCode::from(reason.exit_code() as u8),
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            ExitCode::FAILURE
        }
    }
}

fn run_bridge(file: &Path, name: &str) -> ExitCode {
    let plan = match validate(file) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let Some(bridge) = plan.bridges.iter().find(|b| b.name == name) else {
        eprintln!("no bridge named {name:?} in {}", file.display());
        return ExitCode::from(EXIT_REFUSED);
    };
    let Some(run_dir) = std::env::var_os(supervisor::RUN_DIR_ENV) else {
        eprintln!(
            "error: {} is not set: bridges are started by `bulkhead run`",
            supervisor::RUN_DIR_ENV
        );
        return ExitCode::FAILURE;
    };
    let log = |line: String| eprintln!("{line}");
    match bulkhead_bridge::run_bridge(&plan, bridge, Path::new(&run_dir), &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            ExitCode::FAILURE
        }
    }
}

/// `bulkhead stats`: the bridges' counter files, as their bridge last wrote them.
fn show_stats(plan: &SystemPlan) -> ExitCode {
    if plan.bridges.is_empty() {
        eprintln!("system \"{}\" has no bridges", plan.name);
        return ExitCode::SUCCESS;
    }
    let mut code = ExitCode::SUCCESS;
    for bridge in &plan.bridges {
        let path = bulkhead_bridge::stats_path(&plan.name, &bridge.name);
        match std::fs::read_to_string(&path) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!(
                    "bridge {}: no counters at {} ({e}); is the system running?",
                    bridge.name,
                    path.display()
                );
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

/// The path of this executable, to re-execute for partitions.
fn self_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
}

/// `bulkhead events`: prints the system's event log.
fn show_events(system: &str) -> ExitCode {
    let path = bulkhead_partition::events::default_path(system);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "system \"{system}\" has no event log yet ({} does not exist: it has not run)",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot read the event log {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
