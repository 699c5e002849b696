//! `[[bridge]]` tables through the public API: ports from net devices and external ones,
//! rules, intrusion detection, rate limits, uplinks, and each refusal.

mod support;

use std::os::unix::fs::PermissionsExt;

use bulkhead_config::{AlertAction, BridgePortKind, DeviceKind, Endpoint, NetBackend, RuleAction};

use support::{edit, keys, Fixture};

/// Partitions "a" (high, CPU 1) and "b" (low, CPU 0), each with a net device on bridge "lan",
/// then `tail`.
fn two_on_lan(tail: &str) -> String {
    format!(
        r#"[system]
name = "net"

[[partition]]
name = "a"
criticality = "high"
vcpus = 1
cpus = [1]
memory_mib = 32
kernel = "guests/rt-demo.elf"

[[partition.device]]
kind = "net"
mac = "52:54:00:00:00:01"
bridge = "lan"

[[partition]]
name = "b"
criticality = "low"
vcpus = 1
cpus = [0]
memory_mib = 32
kernel = "guests/rt-demo.elf"

[[partition.device]]
kind = "net"
mac = "52:54:00:00:00:02"
bridge = "lan"
{tail}"#
    )
}

const LAN: &str = r#"
[[bridge]]
name = "lan"

[[bridge.rule]]
from = "a"
to = "b"
ethertype = "arp"

[[bridge.rule]]
from = "a"
to = "b"
protocol = "tcp"
dst_ports = 5201
"#;

#[test]
fn net_devices_on_a_bridge_become_its_ports_with_their_macs() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&two_on_lan(LAN));

    let bridge = &plan.bridges[0];
    let names: Vec<&str> = bridge.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        bridge.ports[1].kind,
        BridgePortKind::Partition { partition: 1 }
    );
    assert_eq!(bridge.ports[1].mac, [0x52, 0x54, 0, 0, 0, 2]);
    assert!(matches!(
        &plan.partitions[0].devices[0].kind,
        DeviceKind::Net(net) if net.backend == NetBackend::Bridge { bridge: "lan".into() }
    ));
    assert_eq!(bridge.cpus, plan.housekeeping_cpus);
}

#[test]
fn rules_resolve_their_ends_and_default_to_allow_both_ways() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&two_on_lan(LAN));

    let rule = &plan.bridges[0].rules[1];
    assert_eq!((rule.from, rule.to), (Endpoint::Port(0), Endpoint::Port(1)));
    assert_eq!(rule.protocol, Some(6));
    assert_eq!(rule.dst_ports, Some((5201, 5201)));
    assert!(rule.both_ways);
    assert_eq!(rule.action, RuleAction::Allow);
    assert_eq!(plan.bridges[0].rules[0].ethertype, Some(0x0806));
}

#[test]
fn intrusion_detection_defaults_drop_spoofed_malformed_and_flooding_frames() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&two_on_lan(LAN));

    let ids = plan.bridges[0].ids;
    assert_eq!(ids.on_spoof, AlertAction::Drop);
    assert_eq!(ids.on_malformed, AlertAction::Drop);
    assert_eq!(ids.on_flood, AlertAction::Drop);
    assert_eq!(ids.on_scan, AlertAction::Log);
    assert_eq!(ids.flood_pps, None);
}

#[test]
fn port_settings_reach_the_partition_port() {
    let fixture = Fixture::new();
    let tail = format!(
        "{LAN}\n[[bridge.port]]\npartition = \"b\"\nips = [\"10.0.0.2\", \"10.1.0.0/16\"]\n\
         vlan = 10\nrate_bytes_per_s = 1000000\n"
    );

    let plan = fixture.accept(&two_on_lan(&tail));

    let port = &plan.bridges[0].ports[1];
    assert_eq!(port.vlan, Some(10));
    assert_eq!(port.ips.len(), 2);
    assert_eq!(port.ips[1].prefix, 16);
    let rate = port.rate.unwrap();
    assert_eq!(rate.bytes_per_s, Some(1_000_000));
    assert_eq!(rate.burst_bytes, 100_000);
}

#[test]
fn an_external_port_gets_its_socket_and_mac() {
    let fixture = Fixture::new();
    let tail = format!(
        "{LAN}\n[[bridge.port]]\nname = \"qemu\"\nmac = \"52:54:00:00:00:09\"\nsocket = \
         \"run/qemu.sock\"\n"
    );

    let plan = fixture.accept(&two_on_lan(&tail));

    let port = &plan.bridges[0].ports[2];
    assert_eq!(port.name, "qemu");
    assert!(
        matches!(&port.kind, BridgePortKind::External { socket } if socket.ends_with("run/qemu.sock"))
    );
}

#[test]
fn net_device_on_an_unknown_bridge_is_refused() {
    let fixture = Fixture::new();
    let text = two_on_lan(&edit(LAN, "name = \"lan\"", "name = \"wan\""));

    let problems = fixture.refuse(&text);

    assert!(keys(&problems).contains(&"partition[0] (\"a\").device[0].bridge"));
    let problem = problems
        .iter()
        .find(|p| p.key == "partition[0] (\"a\").device[0].bridge")
        .unwrap();
    assert_eq!(
        problem.message,
        "no bridge is named \"lan\" (bridges: \"wan\")"
    );
}

#[test]
fn net_device_with_tap_and_bridge_is_refused_at_the_bridge() {
    let fixture = Fixture::new();
    let text = edit(
        &two_on_lan(LAN),
        "mac = \"52:54:00:00:00:01\"\nbridge",
        "mac = \"52:54:00:00:00:01\"\ntap = \"t0\"\nbridge",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "partition[0] (\"a\").device[0].bridge");
    assert_eq!(
        problem.message,
        "both tap and bridge are given; a net device has one backend, give only one"
    );
}

#[test]
fn rule_naming_an_unknown_port_is_refused() {
    let fixture = Fixture::new();
    let text = two_on_lan(&edit(LAN, "to = \"b\"\nethertype", "to = \"c\"\nethertype"));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "bridge[0].rule[0].to");
    assert_eq!(
        problem.message,
        "\"c\" is no port or uplink of this bridge (it has \"a\", \"b\"; \"*\" is any)"
    );
}

#[test]
fn rule_with_ports_but_no_protocol_is_refused() {
    let fixture = Fixture::new();
    let text = two_on_lan(&edit(LAN, "protocol = \"tcp\"\n", ""));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "bridge[0].rule[1].dst_ports");
    assert_eq!(
        problem.message,
        "dst_ports needs protocol = \"tcp\" or \"udp\""
    );
}

#[test]
fn prefix_with_host_bits_set_is_refused() {
    let fixture = Fixture::new();
    let text = two_on_lan(&edit(
        LAN,
        "dst_ports = 5201",
        "dst_ports = 5201\ndst = \"10.0.0.1/24\"",
    ));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "bridge[0].rule[1].dst");
    assert_eq!(
        problem.message,
        "\"10.0.0.1/24\" has host bits set after the /24 prefix; write the network address"
    );
}

#[test]
fn an_ipv6_prefix_in_an_ipv4_rule_is_refused() {
    let fixture = Fixture::new();
    let text = two_on_lan(&edit(
        LAN,
        "protocol = \"tcp\"",
        "ethertype = \"ipv4\"\nsrc = \"fd00::/8\"\nprotocol = \"tcp\"",
    ));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "bridge[0].rule[1].src");
    assert_eq!(
        problem.message,
        "src is an IPv6 prefix but ethertype is IPv4"
    );
}

#[test]
fn a_port_range_reaches_the_plan() {
    let fixture = Fixture::new();
    let text = two_on_lan(&edit(LAN, "dst_ports = 5201", "dst_ports = \"5201-5210\""));

    let plan = fixture.accept(&text);

    assert_eq!(plan.bridges[0].rules[1].dst_ports, Some((5201, 5210)));
}

#[test]
fn burst_without_a_rate_is_refused() {
    let fixture = Fixture::new();
    let tail = format!("{LAN}\n[[bridge.port]]\npartition = \"b\"\nburst_packets = 10\n");

    let problem = fixture.only_problem(&two_on_lan(&tail));

    assert_eq!(problem.key, "bridge[0].port[0].burst_packets");
    assert_eq!(problem.message, "burst_packets needs rate_packets_per_s");
}

#[test]
fn settings_for_a_partition_not_on_the_bridge_are_refused() {
    let fixture = Fixture::new();
    let tail = format!("{LAN}\n[[bridge.port]]\npartition = \"c\"\nvlan = 3\n");

    let problem = fixture.only_problem(&two_on_lan(&tail));

    assert_eq!(problem.key, "bridge[0].port[0].partition");
    assert_eq!(
        problem.message,
        "partition \"c\" has no net device with bridge = \"lan\""
    );
}

#[test]
fn external_port_with_a_partition_mac_is_refused() {
    let fixture = Fixture::new();
    let tail = format!(
        "{LAN}\n[[bridge.port]]\nname = \"qemu\"\nmac = \"52:54:00:00:00:02\"\nsocket = \
         \"run/qemu.sock\"\n"
    );

    let problem = fixture.only_problem(&two_on_lan(&tail));

    assert_eq!(problem.key, "bridge[0].port[0].mac");
    assert!(problem.message.starts_with(
        "MAC address 52:54:00:00:00:02 is already used by partition[1] (\"b\").device[0]"
    ));
}

#[test]
fn bridge_on_a_high_criticality_cpu_is_refused() {
    let fixture = Fixture::new();
    let text = two_on_lan(&edit(
        LAN,
        "name = \"lan\"\n",
        "name = \"lan\"\ncpus = [1]\n",
    ));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "bridge[0].cpus[0]");
    assert_eq!(
        problem.message,
        "host CPU 1 runs high-criticality partition \"a\"; the bridge would disturb it"
    );
}

#[test]
fn duplicate_bridge_names_are_refused() {
    let fixture = Fixture::new();
    let text = two_on_lan(&format!("{LAN}\n[[bridge]]\nname = \"lan\"\n"));

    let problems = fixture.refuse(&text);

    assert!(
        problems.iter().any(|p| p.key == "bridge[1].name"
            && p.message == "duplicate bridge name \"lan\"; the bridge at line 31 already has it"),
        "{problems:#?}"
    );
}

/// A key file in the fixture with `contents` and `mode`.
fn key_file(fixture: &Fixture, contents: &[u8], mode: u32) {
    let path = fixture.path("site.key");
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

const UPLINK: &str = "\n[[bridge.uplink]]\nname = \"site-b\"\nlocal = \"10.9.0.1:47000\"\n\
                      peer = \"10.9.0.2:47000\"\nkey = \"site.key\"\n";

#[test]
fn an_uplink_with_a_private_hex_key_is_accepted_and_rules_may_name_it() {
    let fixture = Fixture::new();
    key_file(&fixture, format!("{}\n", "ab".repeat(32)).as_bytes(), 0o600);
    let tail = format!("{LAN}{UPLINK}\n[[bridge.rule]]\nfrom = \"a\"\nto = \"site-b\"\n");

    let plan = fixture.accept(&two_on_lan(&tail));

    let bridge = &plan.bridges[0];
    assert_eq!(bridge.uplinks[0].peer, "10.9.0.2:47000".parse().unwrap());
    assert_eq!(bridge.rules[2].to, Endpoint::Uplink(0));
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let fixture = Fixture::new();
    key_file(&fixture, &[7u8; 32], 0o644);

    let problem = fixture.only_problem(&two_on_lan(&format!("{LAN}{UPLINK}")));

    assert_eq!(problem.key, "bridge[0].uplink[0].key");
    assert!(problem
        .message
        .ends_with("has mode 644: group or others may read it; chmod 600 it"));
}

#[test]
fn a_key_of_the_wrong_length_is_refused() {
    let fixture = Fixture::new();
    key_file(&fixture, b"abcd\n", 0o600);

    let problem = fixture.only_problem(&two_on_lan(&format!("{LAN}{UPLINK}")));

    assert!(problem
        .message
        .ends_with("holds 5 bytes; a key is 64 hexadecimal digits or 32 raw bytes"));
}

#[test]
fn an_uplink_address_without_a_port_is_refused() {
    let fixture = Fixture::new();
    key_file(&fixture, &[7u8; 32], 0o600);
    let text = two_on_lan(&format!(
        "{LAN}{}",
        edit(UPLINK, "10.9.0.2:47000", "10.9.0.2")
    ));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "bridge[0].uplink[0].peer");
    assert!(problem
        .message
        .starts_with("invalid UDP address \"10.9.0.2\""));
}

#[test]
fn a_bridge_without_ports_is_refused() {
    let fixture = Fixture::new();
    let text = two_on_lan(&format!("{LAN}\n[[bridge]]\nname = \"empty\"\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "bridge[1]");
    assert!(problem.message.starts_with("bridge \"empty\" has no ports"));
}

#[test]
fn an_uplink_bound_to_any_address_is_refused() {
    let fixture = Fixture::new();
    key_file(&fixture, &[7u8; 32], 0o600);
    let text = two_on_lan(&format!(
        "{LAN}{}",
        edit(UPLINK, "10.9.0.1:47000", "0.0.0.0:47000")
    ));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "bridge[0].uplink[0].local");
    assert!(problem
        .message
        .starts_with("0.0.0.0:47000 is not a definite address"));
}
