//! The `[[bridge]]` tables: bridges, their ports (partitions' net devices with `bridge = NAME`,
//! and external vhost-user frontends), firewall rules, intrusion detection, rate limits and
//! encrypted uplinks — everything that lets partitions talk over a network, declared or
//! impossible.
//!
//! A partition's port exists because its net device names the bridge; a `[[bridge.port]]`
//! with `partition = NAME` only adds settings to it (`ips`, `vlan`, rates). An external port
//! (`name`, `mac`, `socket`) is a socket where a frontend such as QEMU's `-netdev vhost-user`
//! connects. Rules name ports and uplinks; traffic no rule allows is dropped.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use toml::de::DeValue;

use crate::device::DeviceDraft;
use crate::files;
use crate::host::HostFacts;
use crate::partition::{check_name, read_cpu_list, read_path, Draft};
use crate::plan::{
    AlertAction, BridgePlan, BridgePortKind, BridgePortPlan, Cidr, Criticality, Endpoint, IdsPlan,
    RatePlan, RuleAction, RulePlan, UplinkPlan,
};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::rules;

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
const RULE_KEYS: &[&str] = &[
    "from",
    "to",
    "both_ways",
    "ethertype",
    "protocol",
    "src",
    "dst",
    "src_ports",
    "dst_ports",
    "action",
];
const UPLINK_KEYS: &[&str] = &["name", "local", "peer", "key"];

const ALERT_ACTIONS: &[(&str, AlertAction)] = &[
    ("log", AlertAction::Log),
    ("drop", AlertAction::Drop),
    ("quarantine", AlertAction::Quarantine),
];
const RULE_ACTIONS: &[(&str, RuleAction)] =
    &[("allow", RuleAction::Allow), ("deny", RuleAction::Deny)];
const ETHERTYPES: &[(&str, u16)] = &[("ipv4", 0x0800), ("arp", 0x0806), ("ipv6", 0x86dd)];
const PROTOCOLS: &[(&str, u8)] = &[("icmp", 1), ("tcp", 6), ("udp", 17), ("icmpv6", 58)];
const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

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

fn read_uplinks(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    context: &Context<'_>,
    ports: &[BridgePortPlan],
) -> Result<Vec<UplinkPlan>, Reported> {
    let Some(list) = fields.array(report, "uplink")? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<UplinkPlan> = Vec::new();
    let mut result = Ok(());
    for (index, element) in list.value.iter().enumerate() {
        let prefix = format!("{}[{index}]", fields.key("uplink"));
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
        let uplink = Fields::of(
            report,
            table,
            element.span(),
            prefix,
            UPLINK_KEYS,
            "an uplink",
        );
        match read_uplink(report, &uplink, context, ports, &out) {
            Ok(plan) => out.push(plan),
            Err(reported) => result = Err(reported),
        }
    }
    result.map(|()| out)
}

fn read_uplink(
    report: &mut Report<'_>,
    uplink: &Fields<'_, '_>,
    context: &Context<'_>,
    ports: &[BridgePortPlan],
    earlier: &[UplinkPlan],
) -> Result<UplinkPlan, Reported> {
    let name = uplink
        .string(report, "name")
        .and_then(|name| check_name(report, uplink, name));
    let name = uplink.required(report, "name", name).and_then(|name| {
        let taken = ports.iter().any(|p| p.name == name.value)
            || earlier.iter().any(|u| u.name == name.value);
        if taken {
            Err(report.at(
                name.span,
                uplink.key("name"),
                format!(
                    "{:?} is already the name of a port or uplink of this bridge",
                    name.value
                ),
            ))
        } else {
            Ok(name.value)
        }
    });
    let mut address = |key: &str| {
        let text = uplink.string(report, key);
        uplink
            .required(report, key, text)
            .and_then(|text| match text.value.parse::<SocketAddr>() {
                Ok(addr) => Ok(addr),
                Err(_) => Err(report.at(
                    text.span,
                    uplink.key(key),
                    format!(
                        "invalid UDP address {:?}; write IP:PORT, e.g. \"192.0.2.1:47000\" or \
                         \"[2001:db8::1]:47000\"",
                        text.value
                    ),
                )),
            })
    };
    let local = address("local");
    let peer = address("peer");
    // The tunnel's keys are bound to both addresses: each must be a definite one.
    let mut definite = |which: &str, addr: Result<SocketAddr, Reported>| {
        let addr = addr?;
        if addr.ip().is_unspecified() || addr.port() == 0 {
            let span = uplink.span_of(which).unwrap_or_else(|| uplink.span());
            return Err(report.at(
                span,
                uplink.key(which),
                format!(
                    "{addr} is not a definite address: give the IP and port the other host \
                     uses (the tunnel's keys are bound to both ends)"
                ),
            ));
        }
        Ok(addr)
    };
    let local = definite("local", local);
    let peer = definite("peer", peer);
    let key = read_path(report, uplink, "key", context.base);
    let key =
        uplink
            .required(report, "key", key)
            .and_then(|key| match check_key_file(&key.value) {
                Ok(()) => Ok(key.value),
                Err(problem) => Err(report.at(key.span, uplink.key("key"), problem)),
            });
    Ok(UplinkPlan {
        name: name?,
        local: local?,
        peer: peer?,
        key: key?,
    })
}

/// A key file: readable, not accessible to group or others, 32 raw bytes or 64 hexadecimal
/// digits (and an optional final newline).
fn check_key_file(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path:?} is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "key file {path:?} has mode {mode:o}: group or others may read it; chmod 600 it"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let hex = text.len() == 64 && text.iter().all(u8::is_ascii_hexdigit);
    if hex || bytes.len() == 32 {
        Ok(())
    } else {
        Err(format!(
            "key file {path:?} holds {} bytes; a key is 64 hexadecimal digits or 32 raw bytes",
            bytes.len()
        ))
    }
}

fn read_rules(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    names: &Names,
) -> Result<Vec<RulePlan>, Reported> {
    let Some(list) = fields.array(report, "rule")? else {
        return Ok(Vec::new());
    };
    if list.value.len() > rules::MAX_BRIDGE_RULES {
        return Err(report.at(
            list.span,
            fields.key("rule"),
            format!(
                "{} rules; at most {} are accepted",
                list.value.len(),
                rules::MAX_BRIDGE_RULES
            ),
        ));
    }
    let mut out = Vec::new();
    let mut result = Ok(());
    for (index, element) in list.value.iter().enumerate() {
        let prefix = format!("{}[{index}]", fields.key("rule"));
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
        let rule = Fields::of(report, table, element.span(), prefix, RULE_KEYS, "a rule");
        match read_rule(report, &rule, names) {
            Ok(plan) => out.push(plan),
            Err(reported) => result = Err(reported),
        }
    }
    result.map(|()| out)
}

fn read_rule(
    report: &mut Report<'_>,
    rule: &Fields<'_, '_>,
    names: &Names,
) -> Result<RulePlan, Reported> {
    let from = read_endpoint(report, rule, "from", names);
    let to = read_endpoint(report, rule, "to", names);
    let both_ways = rule
        .boolean(report, "both_ways")
        .map(|b| b.is_none_or(|b| b.value));
    let ethertype = read_named_number(report, rule, "ethertype", ETHERTYPES, 0x0600..=0xffff);
    let protocol = read_named_number(report, rule, "protocol", PROTOCOLS, 0..=255);
    let src = read_cidr(report, rule, "src");
    let dst = read_cidr(report, rule, "dst");
    let src_ports = read_port_range(report, rule, "src_ports");
    let dst_ports = read_port_range(report, rule, "dst_ports");
    let action = rule
        .choice(report, "action", RULE_ACTIONS)
        .map(|a| a.map_or(RuleAction::Allow, |a| a.value));
    let (ethertype, protocol, src, dst) = (ethertype?, protocol?, src?, dst?);
    let (src_ports, dst_ports) = (src_ports?, dst_ports?);
    // Consistency: ports need TCP or UDP; a protocol or an address needs IP, of the family
    // of the EtherType and of each other.
    for (ports, key) in [(&src_ports, "src_ports"), (&dst_ports, "dst_ports")] {
        if let Some(ports) = ports {
            if !matches!(protocol.as_ref().map(|p| p.value), Some(6 | 17)) {
                return Err(report.at(
                    ports.span.clone(),
                    rule.key(key),
                    format!("{key} needs protocol = \"tcp\" or \"udp\""),
                ));
            }
        }
    }
    if let (Some(ether), Some(protocol)) = (&ethertype, &protocol) {
        if ether.value != IPV4 && ether.value != IPV6 {
            return Err(report.at(
                protocol.span.clone(),
                rule.key("protocol"),
                format!(
                    "protocol applies to IP traffic; ethertype {:#06x} is not IPv4 or IPv6",
                    ether.value
                ),
            ));
        }
    }
    let mut family: Option<(bool, &'static str)> = ethertype.as_ref().and_then(|e| match e.value {
        IPV4 => Some((true, "ethertype")),
        IPV6 => Some((false, "ethertype")),
        _ => None,
    });
    for (cidr, key) in [(&src, "src"), (&dst, "dst")] {
        let Some(cidr) = cidr else { continue };
        if let Some(ether) = ethertype
            .as_ref()
            .filter(|e| e.value != IPV4 && e.value != IPV6)
        {
            return Err(report.at(
                cidr.span.clone(),
                rule.key(key),
                format!(
                    "{key} applies to IP traffic; ethertype {:#06x} is not IPv4 or IPv6",
                    ether.value
                ),
            ));
        }
        let v4 = cidr.value.addr.is_ipv4();
        match family {
            Some((f, other)) if f != v4 => {
                return Err(report.at(
                    cidr.span.clone(),
                    rule.key(key),
                    format!(
                        "{key} is an {} prefix but {other} is {}",
                        if v4 { "IPv4" } else { "IPv6" },
                        if f { "IPv4" } else { "IPv6" }
                    ),
                ))
            }
            _ => family = Some((v4, key)),
        }
    }
    Ok(RulePlan {
        from: from?,
        to: to?,
        both_ways: both_ways?,
        ethertype: ethertype.map(|e| e.value),
        protocol: protocol.map(|p| p.value),
        src: src.map(|s| s.value),
        dst: dst.map(|d| d.value),
        src_ports: src_ports.map(|p| p.value),
        dst_ports: dst_ports.map(|p| p.value),
        action: action?,
    })
}

/// `from`/`to`: a port or uplink name, or `"*"` (any).
fn read_endpoint(
    report: &mut Report<'_>,
    rule: &Fields<'_, '_>,
    key: &str,
    names: &Names,
) -> Result<Endpoint, Reported> {
    let text = rule.string(report, key);
    let text = rule.required(report, key, text)?;
    if text.value == "*" {
        return Ok(Endpoint::Any);
    }
    if let Some(i) = names.ports.iter().position(|p| *p == text.value) {
        return Ok(Endpoint::Port(i));
    }
    if let Some(i) = names.uplinks.iter().position(|u| *u == text.value) {
        return Ok(Endpoint::Uplink(i));
    }
    let mut known: Vec<String> = names.ports.iter().map(|n| format!("{n:?}")).collect();
    known.extend(names.uplinks.iter().map(|n| format!("{n:?}")));
    Err(report.at(
        text.span,
        rule.key(key),
        format!(
            "{:?} is no port or uplink of this bridge (it has {}; \"*\" is any)",
            text.value,
            known.join(", ")
        ),
    ))
}

/// A value given by name (`"tcp"`) or number.
fn read_named_number<T>(
    report: &mut Report<'_>,
    rule: &Fields<'_, '_>,
    key: &str,
    named: &[(&str, T)],
    range: std::ops::RangeInclusive<T>,
) -> Result<Option<Located<T>>, Reported>
where
    T: Copy + Into<i128> + TryFrom<i128> + std::fmt::Display,
{
    match rule.value(key).map(|v| (v.span(), v.get_ref())) {
        None => Ok(None),
        Some((_, DeValue::Integer(_))) => rule.integer(report, key, range),
        Some((_, DeValue::String(_))) => rule.choice(report, key, named),
        Some((span, other)) => Err(wrong_type(
            report,
            span,
            rule.key(key),
            "a name (string) or a number",
            other,
        )),
    }
}

fn read_cidr(
    report: &mut Report<'_>,
    rule: &Fields<'_, '_>,
    key: &str,
) -> Result<Option<Located<Cidr>>, Reported> {
    let Some(text) = rule.string(report, key)? else {
        return Ok(None);
    };
    match parse_cidr(&text.value) {
        Ok(cidr) => Ok(Some(Located {
            value: cidr,
            span: text.span,
        })),
        Err(problem) => Err(report.at(text.span, rule.key(key), problem)),
    }
}

/// `ADDR` (a host) or `ADDR/LEN` with the host bits zero.
pub(crate) fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        format!("invalid address {text:?}; write an IPv4 or IPv6 address, optionally /LENGTH")
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(len) => len
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("invalid prefix length in {text:?}; 0 to {max}"))?,
        None => max,
    };
    let (bits, width): (u128, u8) = match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    let host_bits = u32::from(width - prefix);
    let host_mask = match host_bits {
        0 => 0,
        128 => u128::MAX,
        n => (1u128 << n) - 1,
    };
    if bits & host_mask != 0 {
        return Err(format!(
            "{text:?} has host bits set after the /{prefix} prefix; write the network address"
        ));
    }
    Ok(Cidr { addr, prefix })
}

/// A port (`80`) or an inclusive range (`"5201-5210"`).
fn read_port_range(
    report: &mut Report<'_>,
    rule: &Fields<'_, '_>,
    key: &str,
) -> Result<Option<Located<(u16, u16)>>, Reported> {
    let problem = "expected a port (0 to 65535) or a range \"LOW-HIGH\"";
    match rule.value(key).map(|v| (v.span(), v.get_ref())) {
        None => Ok(None),
        Some((_, DeValue::Integer(_))) => {
            Ok(rule
                .integer(report, key, 0..=u16::MAX)?
                .map(|port| Located {
                    value: (port.value, port.value),
                    span: port.span,
                }))
        }
        Some((span, DeValue::String(text))) => {
            let range = text.split_once('-').and_then(|(low, high)| {
                let low: u16 = low.trim().parse().ok()?;
                let high: u16 = high.trim().parse().ok()?;
                (low <= high).then_some((low, high))
            });
            match range {
                Some(range) => Ok(Some(Located { value: range, span })),
                None => Err(report.at(span, rule.key(key), problem)),
            }
        }
        Some((span, _)) => Err(report.at(span, rule.key(key), problem)),
    }
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
