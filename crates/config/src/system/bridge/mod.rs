//! The `[[bridge]]` tables: bridges, their ports (partitions' net devices with `bridge = NAME`,
//! and external vhost-user frontends), firewall rules, intrusion detection, rate limits and
//! encrypted uplinks — everything that lets partitions talk over a network, declared or
//! impossible.
//!
//! A partition's port exists because its net device names the bridge; a `[[bridge.port]]`
//! with `partition = NAME` only adds settings to it (`ips`, `vlan`, rates). An external port
//! (`name`, `mac`, `socket`) is a socket where a frontend such as QEMU's `-netdev vhost-user`
//! connects. Rules name ports and uplinks; traffic no rule allows is dropped.
//!
//! Here: bridges and their ports; `firewall.rs`: the rules; `uplink.rs`: the uplinks.

use std::ops::Range;
use std::path::PathBuf;

use toml::de::DeValue;

use crate::device::DeviceDraft;
use crate::files;
use crate::host::HostFacts;
use crate::partition::{check_name, read_cpu_list, read_path, Draft};
use crate::plan::{
    AlertAction, BridgePlan, BridgePortKind, BridgePortPlan, Cidr, Criticality, IdsPlan, RatePlan,
};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::rules;

mod firewall;
mod uplink;

use firewall::{parse_cidr, read_rules};
use uplink::read_uplinks;

const BRIDGE_KEYS: &[&str] = &[
    "name",
    "cpus",
    "rt_priority",
    "flood_pps",
    "scan_ports",
    "scan_window_ms",
    "on_spoof",
    "on_malformed",
    "on_flood",
    "on_scan",
    "port",
    "rule",
    "uplink",
];
const PORT_KEYS: &[&str] = &[
    "partition",
    "name",
    "mac",
    "socket",
    "ips",
    "vlan",
    "rate_bytes_per_s",
    "burst_bytes",
    "rate_packets_per_s",
    "burst_packets",
];

const ALERT_ACTIONS: &[(&str, AlertAction)] = &[
    ("log", AlertAction::Log),
    ("drop", AlertAction::Drop),
    ("quarantine", AlertAction::Quarantine),
];

/// An external port's values that must be unique in the system, with their places.
struct External {
    mac: Located<[u8; 6]>,
    socket: Located<PathBuf>,
    prefix: String,
}

/// Where a bridge's ports and uplinks are, for the rules.
struct Names {
    ports: Vec<String>,
    uplinks: Vec<String>,
}

/// Reads every `[[bridge]]` and checks the net devices that name one.
pub(super) fn read_all(
    report: &mut Report<'_>,
    top: &Fields<'_, '_>,
    base: &std::path::Path,
    partitions: &[Draft],
    windowed_cpus: &[usize],
    host: &HostFacts,
) -> Result<Vec<BridgePlan>, Reported> {
    let list = match top.array(report, "bridge")? {
        Some(list) => list.value.iter().collect::<Vec<_>>(),
        None => Vec::new(),
    };
    let mut bridges = Vec::with_capacity(list.len());
    let mut names: Vec<Located<String>> = Vec::new();
    let mut externals: Vec<External> = Vec::new();
    let mut result = Ok(());
    for (index, element) in list.into_iter().enumerate() {
        let prefix = format!("bridge[{index}]");
        let DeValue::Table(table) = element.get_ref() else {
            result = Err(wrong_type(
                report,
                element.span(),
                prefix,
                "a table",
                element.get_ref(),
            ));
            continue;
        };
        let fields = Fields::of(
            report,
            table,
            element.span(),
            prefix,
            BRIDGE_KEYS,
            "a bridge",
        );
        let context = Context {
            base,
            partitions,
            windowed_cpus,
            host,
        };
        match read_bridge(report, &fields, &context, &names, &mut externals) {
            (Ok(plan), name) => {
                names.extend(name);
                bridges.push(plan);
            }
            (Err(reported), name) => {
                names.extend(name);
                result = Err(reported);
            }
        }
    }
    let devices = check_device_bridges(report, partitions, &names);
    let sockets = check_unique_external(report, &externals, partitions);
    result?;
    devices?;
    sockets?;
    Ok(bridges)
}

struct Context<'a> {
    base: &'a std::path::Path,
    partitions: &'a [Draft],
    windowed_cpus: &'a [usize],
    host: &'a HostFacts,
}

/// One bridge; also returns its name (if usable) for the uniqueness and device checks.
fn read_bridge(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    context: &Context<'_>,
    earlier: &[Located<String>],
    externals: &mut Vec<External>,
) -> (Result<BridgePlan, Reported>, Option<Located<String>>) {
    let name = fields
        .string(report, "name")
        .and_then(|name| check_name(report, fields, name));
    let name = fields.required(report, "name", name).and_then(|name| {
        match earlier.iter().find(|e| e.value == name.value) {
            Some(first) => {
                let line = report.line_of(first.span.start);
                Err(report.at(
                    name.span,
                    fields.key("name"),
                    format!(
                        "duplicate bridge name {:?}; the bridge at line {line} already has it",
                        name.value
                    ),
                ))
            }
            None => Ok(name),
        }
    });
    let cpus = read_bridge_cpus(report, fields, context);
    let rt_priority = fields
        .integer(report, "rt_priority", rules::RT_PRIORITY_RANGE)
        .map(|p| p.map(|p| p.value));
    let ids = read_ids(report, fields);
    let ports = name
        .as_ref()
        .map_err(|r| *r)
        .and_then(|name| read_ports(report, fields, context, &name.value, externals));
    let uplinks = read_uplinks(report, fields, context, ports.as_deref().unwrap_or(&[]));
    let rules = match (&ports, &uplinks) {
        (Ok(ports), Ok(uplinks)) => {
            let names = Names {
                ports: ports.iter().map(|p| p.name.clone()).collect(),
                uplinks: uplinks.iter().map(|u| u.name.clone()).collect(),
            };
            read_rules(report, fields, &names)
        }
        (Err(reported), _) | (_, Err(reported)) => Err(*reported),
    };
    let located = name.as_ref().ok().cloned();
    let plan = (|| {
        Ok(BridgePlan {
            name: name?.value,
            cpus: cpus?,
            rt_priority: rt_priority?,
            ports: ports?,
            rules: rules?,
            ids: ids?,
            uplinks: uplinks?,
        })
    })();
    (plan, located)
}

/// `cpus`: never a high-criticality or time-partitioned CPU; empty when absent (the caller
/// puts the housekeeping CPUs there).
fn read_bridge_cpus(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    context: &Context<'_>,
) -> Result<Vec<usize>, Reported> {
    if fields.span_of("cpus").is_none() {
        return Ok(Vec::new());
    }
    let cpus = read_cpu_list(report, fields, "cpus", context.host);
    let mut result = cpus.complete;
    for listed in &cpus.accepted {
        let high = context.partitions.iter().find(|p| {
            p.criticality == Some(Criticality::High) && p.cpus.iter().any(|c| c.cpu == listed.cpu)
        });
        let windowed = context.windowed_cpus.contains(&listed.cpu);
        let problem = match (high, windowed) {
            (Some(high), _) => Some(format!(
                "host CPU {} runs high-criticality partition {:?}; the bridge would disturb it",
                listed.cpu,
                high.name.as_ref().map_or("", |n| n.value.as_str())
            )),
            (None, true) => Some(format!(
                "host CPU {} is time-partitioned; the bridge would run outside its windows",
                listed.cpu
            )),
            (None, false) => None,
        };
        if let Some(problem) = problem {
            result = Err(report.at(listed.span.clone(), listed.key.clone(), problem));
        }
    }
    result.map(|()| cpus.accepted.iter().map(|c| c.cpu).collect())
}

fn read_ids(report: &mut Report<'_>, fields: &Fields<'_, '_>) -> Result<IdsPlan, Reported> {
    let flood = fields
        .integer(report, "flood_pps", rules::FLOOD_PPS_RANGE)
        .map(|v| v.map(|v| v.value));
    let scan = fields
        .integer(report, "scan_ports", rules::SCAN_PORTS_RANGE)
        .map(|v| v.map(|v| v.value));
    let window = fields
        .integer(report, "scan_window_ms", rules::SCAN_WINDOW_MS_RANGE)
        .map(|v| v.map_or(rules::DEFAULT_SCAN_WINDOW_MS, |v| v.value));
    let mut action = |key: &str, default: AlertAction| {
        fields
            .choice(report, key, ALERT_ACTIONS)
            .map(|a| a.map_or(default, |a| a.value))
    };
    let on_spoof = action("on_spoof", AlertAction::Drop);
    let on_malformed = action("on_malformed", AlertAction::Drop);
    let on_flood = action("on_flood", AlertAction::Drop);
    let on_scan = action("on_scan", AlertAction::Log);
    Ok(IdsPlan {
        flood_pps: flood?,
        scan_ports: scan?,
        scan_window_ms: window?,
        on_spoof: on_spoof?,
        on_malformed: on_malformed?,
        on_flood: on_flood?,
        on_scan: on_scan?,
    })
}

/// The net devices on bridge `bridge`: (partition index, device draft).
fn devices_on<'d>(partitions: &'d [Draft], bridge: &str) -> Vec<(usize, &'d DeviceDraft)> {
    partitions
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.devices.drafts.iter().map(move |d| (i, d)))
        .filter(|(_, d)| d.facts.bridge.as_ref().is_some_and(|b| b.value == bridge))
        .collect()
}

/// The ports: one per partition net device on the bridge (with its `[[bridge.port]]`
/// settings, if any), then the external ports.
fn read_ports(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    context: &Context<'_>,
    bridge: &str,
    externals: &mut Vec<External>,
) -> Result<Vec<BridgePortPlan>, Reported> {
    let mut result = Ok(());
    let mut ports: Vec<BridgePortPlan> = Vec::new();
    for (partition, device) in devices_on(context.partitions, bridge) {
        // A name or MAC that failed its own check was reported there; the plan fails anyway.
        let (Some(name), Some(mac)) = (&context.partitions[partition].name, &device.facts.mac)
        else {
            continue;
        };
        if ports.iter().any(|p| p.name == name.value) {
            let span = device
                .facts
                .bridge
                .as_ref()
                .map_or(0..0, |b| b.span.clone());
            result = Err(report.at(
                span,
                format!("{}.bridge", device.prefix),
                format!(
                    "partition {:?} already has a net device on bridge {bridge:?}; one port \
                     per partition and bridge",
                    name.value
                ),
            ));
            continue;
        }
        ports.push(BridgePortPlan {
            name: name.value.clone(),
            kind: BridgePortKind::Partition { partition },
            mac: mac.value,
            ips: Vec::new(),
            vlan: None,
            rate: None,
        });
    }
    let list = match fields.array(report, "port")? {
        Some(list) => list.value.iter().collect::<Vec<_>>(),
        None => Vec::new(),
    };
    let mut configured: Vec<(String, Range<usize>)> = Vec::new();
    for (index, element) in list.into_iter().enumerate() {
        let prefix = format!("{}[{index}]", fields.key("port"));
        let DeValue::Table(table) = element.get_ref() else {
            result = Err(wrong_type(
                report,
                element.span(),
                prefix,
                "a table",
                element.get_ref(),
            ));
            continue;
        };
        let port = Fields::of(
            report,
            table,
            element.span(),
            prefix,
            PORT_KEYS,
            "a bridge port",
        );
        let mut settled = Settled {
            ports: &mut ports,
            configured: &mut configured,
            externals,
        };
        if let Err(reported) = read_port(report, &port, context, bridge, &mut settled) {
            result = Err(reported);
        }
    }
    if ports.is_empty() {
        result = Err(report.at(
            fields.span(),
            fields.prefix().to_owned(),
            format!(
                "bridge {bridge:?} has no ports; give a partition's net device bridge = \
                 {bridge:?} or declare an external [[bridge.port]]"
            ),
        ));
    }
    if ports.len() > rules::MAX_BRIDGE_PORTS {
        result = Err(report.at(
            fields.span(),
            fields.prefix().to_owned(),
            format!(
                "bridge {bridge:?} has {} ports; at most {} are accepted",
                ports.len(),
                rules::MAX_BRIDGE_PORTS
            ),
        ));
    }
    result.map(|()| ports)
}

/// What the `[[bridge.port]]` tables read so far have settled.
struct Settled<'a> {
    ports: &'a mut Vec<BridgePortPlan>,
    /// Partitions whose port was configured, with the place.
    configured: &'a mut Vec<(String, Range<usize>)>,
    externals: &'a mut Vec<External>,
}

/// One `[[bridge.port]]`: settings of a partition's port, or an external port.
fn read_port(
    report: &mut Report<'_>,
    port: &Fields<'_, '_>,
    context: &Context<'_>,
    bridge: &str,
    settled: &mut Settled<'_>,
) -> Result<(), Reported> {
    let Settled {
        ports,
        configured,
        externals,
    } = settled;
    let partition = port.string(report, "partition");
    let name = port.string(report, "name");
    let ips = read_ips(report, port);
    let vlan = port
        .integer(report, "vlan", rules::VLAN_RANGE)
        .map(|v| v.map(|v| v.value));
    let rate = read_rate(report, port);
    let (ips, vlan, rate) = (ips?, vlan?, rate?);
    match (partition?, name?) {
        (Some(partition), None) => {
            for key in ["mac", "socket"] {
                if let Some(span) = port.span_of(key) {
                    return Err(report.at(
                        span,
                        port.key(key),
                        format!(
                            "{key} is for external ports; partition {:?}'s port takes its \
                             net device's",
                            partition.value
                        ),
                    ));
                }
            }
            if let Some((_, first)) = configured.iter().find(|(n, _)| *n == partition.value) {
                let line = report.line_of(first.start);
                return Err(report.at(
                    partition.span,
                    port.key("partition"),
                    format!(
                        "partition {:?}'s port is already configured at line {line}",
                        partition.value
                    ),
                ));
            }
            let Some(plan) = ports.iter_mut().find(|p| {
                p.name == partition.value && matches!(p.kind, BridgePortKind::Partition { .. })
            }) else {
                return Err(report.at(
                    partition.span,
                    port.key("partition"),
                    format!(
                        "partition {:?} has no net device with bridge = {bridge:?}",
                        partition.value
                    ),
                ));
            };
            plan.ips = ips;
            plan.vlan = vlan;
            plan.rate = rate;
            configured.push((partition.value, partition.span));
            Ok(())
        }
        (None, Some(name)) => {
            // `check_name` keeps a name it is given (or refuses it).
            let Some(name) = check_name(report, port, Some(name))? else {
                return Ok(());
            };
            if ports.iter().any(|p| p.name == name.value)
                || context
                    .partitions
                    .iter()
                    .any(|p| p.name.as_ref().is_some_and(|n| n.value == name.value))
            {
                return Err(report.at(
                    name.span,
                    port.key("name"),
                    format!(
                        "{:?} is already the name of a port or partition; an external port \
                         needs a name of its own",
                        name.value
                    ),
                ));
            }
            let mac = port.string(report, "mac")?;
            let mac = port.required(report, "mac", Ok(mac)).and_then(|mac| {
                let span = mac.span.clone();
                check_port_mac(report, port, mac).map(|value| Located { value, span })
            });
            let socket = read_path(report, port, "socket", context.base);
            let socket =
                port.required(report, "socket", socket).and_then(
                    |socket| match files::socket_path(&socket.value) {
                        Ok(canonical) => Ok((socket, canonical)),
                        Err(error) => {
                            Err(report.at(socket.span, port.key("socket"), error.to_string()))
                        }
                    },
                );
            let (mac, (socket, canonical)) = (mac?, socket?);
            externals.push(External {
                mac: mac.clone(),
                socket: Located {
                    value: canonical,
                    span: socket.span,
                },
                prefix: port.prefix().to_owned(),
            });
            ports.push(BridgePortPlan {
                name: name.value,
                kind: BridgePortKind::External {
                    socket: socket.value,
                },
                mac: mac.value,
                ips,
                vlan,
                rate,
            });
            Ok(())
        }
        (Some(_), Some(name)) => Err(report.at(
            name.span,
            port.key("name"),
            "both partition and name are given; a port is a partition's (partition) or an \
             external one (name, mac, socket)",
        )),
        (None, None) => Err(report.at(
            port.span(),
            port.prefix().to_owned(),
            "a bridge port needs partition (settings of a partition's port) or name, mac and \
             socket (an external port)",
        )),
    }
}

fn check_port_mac(
    report: &mut Report<'_>,
    port: &Fields<'_, '_>,
    mac: Located<String>,
) -> Result<[u8; 6], Reported> {
    let Some(parsed) = rules::parse_mac(&mac.value) else {
        return Err(report.at(
            mac.span,
            port.key("mac"),
            format!(
                "invalid MAC address {:?}; write six two-digit hexadecimal octets separated \
                 by ':', e.g. \"52:54:00:12:34:01\"",
                mac.value
            ),
        ));
    };
    match rules::mac_problem(parsed) {
        Some(problem) => Err(report.at(mac.span, port.key("mac"), problem)),
        None => Ok(parsed),
    }
}

/// `ips`: a list of CIDR prefixes.
fn read_ips(report: &mut Report<'_>, port: &Fields<'_, '_>) -> Result<Vec<Cidr>, Reported> {
    let Some(list) = port.array(report, "ips")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut result = Ok(());
    for (i, element) in list.value.iter().enumerate() {
        let key = format!("{}[{i}]", port.key("ips"));
        match element.get_ref() {
            DeValue::String(text) => match parse_cidr(text) {
                Ok(cidr) => out.push(cidr),
                Err(problem) => result = Err(report.at(element.span(), key, problem)),
            },
            other => result = Err(wrong_type(report, element.span(), key, "a string", other)),
        }
    }
    result.map(|()| out)
}

fn read_rate(report: &mut Report<'_>, port: &Fields<'_, '_>) -> Result<Option<RatePlan>, Reported> {
    let bytes = port.integer(report, "rate_bytes_per_s", rules::RATE_BYTES_RANGE);
    let burst_bytes = port.integer(report, "burst_bytes", rules::BURST_BYTES_RANGE);
    let packets = port.integer(report, "rate_packets_per_s", rules::RATE_PACKETS_RANGE);
    let burst_packets = port.integer(report, "burst_packets", rules::BURST_PACKETS_RANGE);
    let (bytes, burst_bytes, packets, burst_packets) =
        (bytes?, burst_bytes?, packets?, burst_packets?);
    for (burst, rate, burst_key, rate_key) in [
        (
            &burst_bytes,
            bytes.is_some(),
            "burst_bytes",
            "rate_bytes_per_s",
        ),
        (
            &burst_packets,
            packets.is_some(),
            "burst_packets",
            "rate_packets_per_s",
        ),
    ] {
        if let (Some(burst), false) = (burst, rate) {
            return Err(report.at(
                burst.span.clone(),
                port.key(burst_key),
                format!("{burst_key} needs {rate_key}"),
            ));
        }
    }
    if bytes.is_none() && packets.is_none() {
        return Ok(None);
    }
    let bytes = bytes.map(|b| b.value);
    let packets = packets.map(|p| p.value);
    Ok(Some(RatePlan {
        bytes_per_s: bytes,
        burst_bytes: burst_bytes.map_or_else(
            || (bytes.unwrap_or(0) / 10).max(rules::MAX_BRIDGE_FRAME_BYTES),
            |b| b.value,
        ),
        packets_per_s: packets,
        burst_packets: burst_packets
            .map_or_else(|| (packets.unwrap_or(0) / 10).max(16), |b| b.value),
    }))
}

/// Each net device's `bridge` names a bridge of the system.
fn check_device_bridges(
    report: &mut Report<'_>,
    partitions: &[Draft],
    bridges: &[Located<String>],
) -> Result<(), Reported> {
    let mut result = Ok(());
    for draft in partitions {
        for device in &draft.devices.drafts {
            let Some(bridge) = &device.facts.bridge else {
                continue;
            };
            if bridges.iter().any(|b| b.value == bridge.value) {
                continue;
            }
            let known: Vec<String> = bridges.iter().map(|b| format!("{:?}", b.value)).collect();
            let known = if known.is_empty() {
                "there are none; declare it in a [[bridge]] table".to_owned()
            } else {
                format!("bridges: {}", known.join(", "))
            };
            result = Err(report.at(
                bridge.span.clone(),
                format!("{}.bridge", device.prefix),
                format!("no bridge is named {:?} ({known})", bridge.value),
            ));
        }
    }
    result
}

/// External ports' MACs are unique in the system (with the net devices'), their sockets too.
/// A repeat is reported at the later place, naming the first.
fn check_unique_external(
    report: &mut Report<'_>,
    externals: &[External],
    partitions: &[Draft],
) -> Result<(), Reported> {
    let mut macs: Vec<(&Located<[u8; 6]>, &str)> = partitions
        .iter()
        .flat_map(|p| &p.devices.drafts)
        .filter_map(|d| d.facts.mac.as_ref().map(|mac| (mac, d.prefix.as_str())))
        .collect();
    let mut sockets: Vec<(&Located<PathBuf>, &str)> = Vec::new();
    let mut result = Ok(());
    for external in externals {
        if let Some((first, user)) = macs.iter().find(|(m, _)| m.value == external.mac.value) {
            let line = report.line_of(first.span.start);
            result = Err(report.at(
                external.mac.span.clone(),
                format!("{}.mac", external.prefix),
                format!(
                    "MAC address {} is already used by {user} (line {line}); each port needs \
                     its own",
                    rules::format_mac(external.mac.value)
                ),
            ));
        }
        if let Some((first, user)) = sockets
            .iter()
            .find(|(s, _)| s.value == external.socket.value)
        {
            let line = report.line_of(first.span.start);
            result = Err(report.at(
                external.socket.span.clone(),
                format!("{}.socket", external.prefix),
                format!(
                    "socket {:?} is already used by {user} (line {line}); each external port \
                     needs its own",
                    external.socket.value
                ),
            ));
        }
        macs.push((&external.mac, &external.prefix));
        sockets.push((&external.socket, &external.prefix));
    }
    result
}
