//! The system's network bridges under the supervisor: each `[[bridge]]` runs as a process of
//! its own (`bulkhead bridge FILE NAME`, `bulkhead-bridge`), started before the partitions,
//! restarted whenever it dies (its partitions' links then reconnect by themselves, without
//! a guest noticing more than a link flap), and stopped when the run ends.
//!
//! Threads: the supervisor's main thread starts and reaps them; one reader thread per bridge
//! copies its messages to the supervisor's standard error as `[bulkhead] bridge NAME: …`.

use std::process::{Child, Command, Stdio};

use std::os::unix::process::CommandExt;

use bulkhead_config::SystemPlan;
use bulkhead_partition::events::{EventLog, EVENT_LOG_ENV};

use crate::supervisor::{lines, PartitionEnv, RUN_DIR_ENV};

/// Restarts of one bridge after which the supervisor gives up on it.
const MAX_BRIDGE_RESTARTS: u32 = 1000;

struct Running {
    name: String,
    child: Option<Child>,
    readers: Vec<std::thread::JoinHandle<()>>,
    restarts: u32,
}

/// The bridge processes of a run.
pub(crate) struct Bridges {
    running: Vec<Running>,
}

impl Bridges {
    /// Starts every bridge of `plan`.
    pub(crate) fn start(plan: &SystemPlan, env: &PartitionEnv<'_>) -> Bridges {
        let mut running: Vec<Running> = plan
            .bridges
            .iter()
            .map(|b| Running {
                name: b.name.clone(),
                child: None,
                readers: Vec::new(),
                restarts: 0,
            })
            .collect();
        for bridge in &mut running {
            spawn(bridge, env);
        }
        Bridges { running }
    }

    /// Restarts the bridges that died (recording it in the event log).
    pub(crate) fn watch(&mut self, env: &PartitionEnv<'_>, events: Option<&EventLog>) {
        for bridge in &mut self.running {
            let Some(child) = bridge.child.as_mut() else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            bridge.child = None;
            for reader in bridge.readers.drain(..) {
                let _ = reader.join();
            }
            let action = if bridge.restarts < MAX_BRIDGE_RESTARTS {
                "restart"
            } else {
                "halt (restart limit reached)"
            };
            eprintln!(
                "[bulkhead] bridge {}: stopped ({status}); {action}",
                bridge.name
            );
            if let Some(events) = events {
                events.record(
                    &format!("bridge:{}", bridge.name),
                    "bridge_stop",
                    action,
                    &status.to_string().replace(' ', "_"),
                );
            }
            if bridge.restarts < MAX_BRIDGE_RESTARTS {
                bridge.restarts += 1;
                spawn(bridge, env);
            }
        }
    }

    /// Stops every bridge.
    pub(crate) fn stop(&mut self) {
        for bridge in &mut self.running {
            if let Some(mut child) = bridge.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            for reader in bridge.readers.drain(..) {
                let _ = reader.join();
            }
        }
    }
}

fn spawn(bridge: &mut Running, env: &PartitionEnv<'_>) {
    let mut command = Command::new(crate::self_exe());
    if let Some(dir) = env.run_dir {
        command.env(RUN_DIR_ENV, dir);
    }
    if let Some(path) = env.event_log {
        command.env(EVENT_LOG_ENV, path);
    }
    let spawned = command
        .arg("bridge")
        .arg(env.description)
        .arg(&bridge.name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "[bulkhead] bridge {}: cannot start its process: {e}",
                bridge.name
            );
            return;
        }
    };
    eprintln!(
        "[bulkhead] bridge {}: process {} started",
        bridge.name,
        child.id()
    );
    if let Some(stderr) = child.stderr.take() {
        let name = bridge.name.clone();
        bridge.readers.push(std::thread::spawn(move || {
            for line in lines(stderr) {
                eprintln!("[bulkhead] bridge {name}: {line}");
            }
        }));
    }
    bridge.child = Some(child);
}
