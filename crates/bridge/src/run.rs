//! The bridge process (`bulkhead bridge FILE NAME`): places its threads (the bridge's `cpus`,
//! SCHED_FIFO at `rt_priority`), builds the pipeline and the hub, and serves every port on
//! its socket — partitions' ports in the run directory
//! (`bridge-<bridge>-<partition>.sock`), external ones where the description says — and
//! every uplink, then reports: alerts to the event log and the monitor's log as they come,
//! the counters to the stats file every [`STATS_EVERY`] (`bulkhead stats FILE` prints it).
//!
//! Threads: one per port (accepting its frontend), one per external port relaying its
//! frontend's requests ([`relay`]), the `vhost-user-backend` threads of each
//! connection, one per uplink (its socket and its inbox), and the main thread (alerts and
//! counters). All share one [`Hub`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bulkhead_config::{BridgePlan, BridgePortKind, SystemPlan};
use bulkhead_partition::events::EventLog;

use crate::hub::Hub;
use crate::policy::{Pipeline, PolicyConfig};
use crate::{port, relay, uplink};

/// How often the counters are written to the stats file.
pub const STATS_EVERY: Duration = Duration::from_millis(500);
/// How often alerts are drained into the event log.
const ALERTS_EVERY: Duration = Duration::from_millis(100);

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("the bridge's policy is inconsistent")]
    Policy(#[source] crate::policy::ConfigError),
    #[error("cannot create the bridge's events")]
    Events(#[source] std::io::Error),
    #[error("cannot start thread {0}")]
    Thread(String, #[source] std::io::Error),
    #[error("uplink {0}")]
    Uplink(String, #[source] std::io::Error),
}

/// The socket of partition `partition`'s port of bridge `bridge` in the run directory.
pub fn partition_socket(run_dir: &Path, bridge: &str, partition: &str) -> PathBuf {
    run_dir.join(format!("bridge-{bridge}-{partition}.sock"))
}

/// The private socket of external port `port`'s backend, behind its relay ([`relay`]).
pub fn relay_socket(run_dir: &Path, bridge: &str, port: &str) -> PathBuf {
    run_dir.join(format!("bridge-{bridge}-port-{port}.backend.sock"))
}

/// The stats file of bridge `bridge` of system `system`, beside the system's event log.
pub fn stats_path(system: &str, bridge: &str) -> PathBuf {
    let events = bulkhead_partition::events::default_path(system);
    events.with_file_name(format!("{system}-bridge-{bridge}.stats"))
}

/// Runs `bridge` of `system` until the process is killed. Messages go to `log`.
pub fn run_bridge(
    system: &SystemPlan,
    bridge: &BridgePlan,
    run_dir: &Path,
    log: &(dyn Fn(String) + Sync),
) -> Result<(), BridgeError> {
    bulkhead_partition::die_with_parent();
    let placement = bulkhead_partition::place_threads(&bridge.cpus, bridge.rt_priority);
    log(format!("threads placed on {placement}"));
    let pipeline = Pipeline::new(&PolicyConfig::from(bridge)).map_err(BridgeError::Policy)?;
    let hub = Arc::new(
        Hub::new(pipeline, bridge.ports.len(), bridge.uplinks.len())
            .map_err(BridgeError::Events)?,
    );
    let events = EventLog::from_env();
    std::thread::scope(|scope| -> Result<(), BridgeError> {
        for (index, p) in bridge.ports.iter().enumerate() {
            let socket = match &p.kind {
                BridgePortKind::Partition { partition } => {
                    let name = system
                        .partitions
                        .get(*partition)
                        .map_or(p.name.as_str(), |part| part.name.as_str());
                    partition_socket(run_dir, &bridge.name, name)
                }
                BridgePortKind::External { socket } => {
                    // The frontend meets the relay; the backend listens privately behind it.
                    let inner = relay_socket(run_dir, &bridge.name, &p.name);
                    let (name, inner_path) = (p.name.clone(), inner.clone());
                    let socket = socket.clone();
                    std::thread::Builder::new()
                        .name(format!("relay-{}", p.name))
                        .spawn_scoped(scope, move || {
                            relay::serve(&name, &socket, &inner_path, log)
                        })
                        .map_err(|e| BridgeError::Thread(format!("relay-{}", p.name), e))?;
                    inner
                }
            };
            let hub = Arc::clone(&hub);
            let name = p.name.clone();
            std::thread::Builder::new()
                .name(format!("port-{}", p.name))
                .spawn_scoped(scope, move || port::serve(index, &name, &socket, hub, log))
                .map_err(|e| BridgeError::Thread(format!("port-{}", p.name), e))?;
            log(format!("port {} ready", p.name));
        }
        for (index, plan) in bridge.uplinks.iter().enumerate() {
            let link = uplink::Uplink::open(plan, index, Arc::clone(&hub))
                .map_err(|e| BridgeError::Uplink(plan.name.clone(), e))?;
            std::thread::Builder::new()
                .name(format!("uplink-{}", plan.name))
                .spawn_scoped(scope, move || link.serve(log))
                .map_err(|e| BridgeError::Thread(format!("uplink-{}", plan.name), e))?;
            log(format!("uplink {} to {} ready", plan.name, plan.peer));
        }
        let stats = stats_path(&system.name, &bridge.name);
        let mut since_stats = Duration::ZERO;
        loop {
            std::thread::sleep(ALERTS_EVERY);
            for alert in hub.drain_alerts() {
                log(format!("alert: {alert}"));
                if let Some(events) = &events {
                    events.record(
                        &format!("{}/{}", bridge.name, alert.name),
                        &format!("alert_{}", alert.class.name()),
                        match alert.action {
                            bulkhead_config::AlertAction::Log => "log",
                            bulkhead_config::AlertAction::Drop => "drop",
                            bulkhead_config::AlertAction::Quarantine => "quarantine",
                        },
                        &alert.detail.to_string().replace(' ', "_"),
                    );
                }
            }
            since_stats += ALERTS_EVERY;
            if since_stats >= STATS_EVERY {
                since_stats = Duration::ZERO;
                write_stats(&stats, &bridge.name, &hub.counter_lines());
            }
        }
    })
}

/// Replaces the stats file (written aside, then renamed: a reader never sees half of it).
fn write_stats(path: &Path, bridge: &str, lines: &[String]) {
    let Some(folder) = path.parent() else { return };
    let _ = std::fs::create_dir_all(folder);
    let aside = path.with_extension("stats.new");
    let mut text = format!(
        "bridge {bridge} at {}\n",
        bulkhead_partition::events::utc_now()
    );
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    if std::fs::write(&aside, text).is_ok() {
        let _ = std::fs::rename(&aside, path);
    }
}
