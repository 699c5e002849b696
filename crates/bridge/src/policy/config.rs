//! The pipeline's own input: plain structs with the meanings of the bridge plan's
//! (`bulkhead_config::BridgePlan`, whose structs cannot be built outside bulkhead-config), a
//! field-by-field copy from the plan, and [`PolicyConfig::check`], which refuses what would
//! make a pipeline meaningless (the plan's validation already refuses all of it).

use bulkhead_config::{
    AlertAction, BridgePlan, BridgePortPlan, Cidr, Endpoint, IdsPlan, RatePlan, RuleAction,
    RulePlan,
};

use crate::frame::{MacAddr, MAX_VLAN_ID};

/// Above this, `scan_ports` is refused: the scan detector keeps that many pairs per port
/// (the plan's `SCAN_PORTS_RANGE` ends there too).
pub const MAX_SCAN_PORTS: u32 = 65_536;

/// A bridge's policy: its ports, uplinks, firewall rules and intrusion detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Port `i` is [`crate::policy::Attachment::Port`]`(i)` and `Endpoint::Port(i)` in rules.
    pub ports: Vec<PortPolicy>,
    /// Uplink `j` is [`crate::policy::Attachment::Uplink`]`(j)` and `Endpoint::Uplink(j)`.
    pub uplinks: Vec<UplinkPolicy>,
    /// In order; the first that matches decides; none: denied.
    pub rules: Vec<Rule>,
    pub ids: IdsConfig,
}

/// One port (`BridgePortPlan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPolicy {
    pub name: String,
    /// The only source MAC the port may send from; also its static entry in the MAC table.
    pub mac: MacAddr,
    /// Source addresses the port may send from; empty: IP sources are not checked.
    pub ips: Vec<Cidr>,
    /// Access VLAN (1..=4094); `None`: the untagged LAN.
    pub vlan: Option<u16>,
    /// Limits on what the port sends; `None`: unlimited.
    pub rate: Option<RateLimit>,
}

/// Token buckets on what a port sends (`RatePlan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained bytes per second (frame lengths); `None`: no byte limit.
    pub bytes_per_s: Option<u64>,
    /// Byte bucket size: a frame longer than this never passes.
    pub burst_bytes: u64,
    /// Sustained frames per second; `None`: no frame limit.
    pub packets_per_s: Option<u64>,
    /// Frame bucket size (at least 1).
    pub burst_packets: u64,
}

/// One uplink (`UplinkPlan`): the pipeline needs only its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkPolicy {
    pub name: String,
}

/// One firewall rule (`RulePlan`); see [`crate::policy::firewall`] for how it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub from: Endpoint,
    pub to: Endpoint,
    /// Also matches the reverse direction with addresses and ports swapped.
    pub both_ways: bool,
    /// EtherType after any VLAN tag; `None`: any.
    pub ethertype: Option<u16>,
    /// IP protocol (IPv6: the Next Header that ends the extension headers); `None`: any.
    pub protocol: Option<u8>,
    pub src: Option<Cidr>,
    pub dst: Option<Cidr>,
    /// Inclusive ranges of TCP or UDP ports.
    pub src_ports: Option<(u16, u16)>,
    pub dst_ports: Option<(u16, u16)>,
    pub action: RuleAction,
}

impl Rule {
    /// Allows everything from `from` to `to` and back.
    pub const fn allow(from: Endpoint, to: Endpoint) -> Rule {
        Rule {
            from,
            to,
            both_ways: true,
            ethertype: None,
            protocol: None,
            src: None,
            dst: None,
            src_ports: None,
            dst_ports: None,
            action: RuleAction::Allow,
        }
    }

    /// Denies everything from `from` to `to` and back.
    pub const fn deny(from: Endpoint, to: Endpoint) -> Rule {
        Rule {
            action: RuleAction::Deny,
            ..Rule::allow(from, to)
        }
    }
}

/// Intrusion detection (`IdsPlan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdsConfig {
    /// More frames than this from a port within one second: a flood alert; `None`: off.
    pub flood_pps: Option<u32>,
    /// This many distinct (destination address, destination port) pairs from a port within
    /// `scan_window_ms`: a scan alert; `None`: off.
    pub scan_ports: Option<u32>,
    pub scan_window_ms: u32,
    pub on_spoof: AlertAction,
    pub on_malformed: AlertAction,
    pub on_flood: AlertAction,
    pub on_scan: AlertAction,
}

impl Default for IdsConfig {
    /// No flood or scan detection; spoofed and malformed frames dropped.
    fn default() -> Self {
        IdsConfig {
            flood_pps: None,
            scan_ports: None,
            scan_window_ms: 1000,
            on_spoof: AlertAction::Drop,
            on_malformed: AlertAction::Drop,
            on_flood: AlertAction::Drop,
            on_scan: AlertAction::Drop,
        }
    }
}

/// A [`PolicyConfig`] that no pipeline can be built from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("rule {rule} names {endpoint:?}, which the bridge does not have")]
    UnknownEndpoint { rule: usize, endpoint: Endpoint },
    #[error("rule {rule} has a port range that ends before it starts")]
    EmptyPortRange { rule: usize },
    #[error("prefix {cidr:?} is longer than its address")]
    PrefixLength { cidr: Cidr },
    #[error("port {port} has VLAN {vlan}, outside 1..=4094")]
    VlanId { port: String, vlan: u16 },
    #[error("ports {port} and {other} have the same MAC {mac}")]
    DuplicateMac {
        port: String,
        other: String,
        mac: MacAddr,
    },
    #[error("port {port} has a group MAC {mac}")]
    GroupMac { port: String, mac: MacAddr },
    #[error("port {port} has an empty rate bucket")]
    EmptyBucket { port: String },
    #[error("scan detection needs a threshold in 1..=65536 and a window of at least 1 ms")]
    ScanDetection,
    #[error("flood detection needs a threshold of at least 1 frame per second")]
    FloodDetection,
}

impl PolicyConfig {
    /// Checks what the pipeline relies on; every plan that passed validation passes.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (i, port) in self.ports.iter().enumerate() {
            if let Some(vlan) = port.vlan.filter(|v| !(1..=MAX_VLAN_ID).contains(v)) {
                return Err(ConfigError::VlanId {
                    port: port.name.clone(),
                    vlan,
                });
            }
            if port.mac.is_group() {
                return Err(ConfigError::GroupMac {
                    port: port.name.clone(),
                    mac: port.mac,
                });
            }
            if let Some(other) = self
                .ports
                .get(..i)
                .and_then(|before| before.iter().find(|other| other.mac == port.mac))
            {
                return Err(ConfigError::DuplicateMac {
                    port: port.name.clone(),
                    other: other.name.clone(),
                    mac: port.mac,
                });
            }
            if let Some(rate) = port.rate {
                let empty = (rate.bytes_per_s.is_some() && rate.burst_bytes == 0)
                    || (rate.packets_per_s.is_some() && rate.burst_packets == 0);
                if empty {
                    return Err(ConfigError::EmptyBucket {
                        port: port.name.clone(),
                    });
                }
            }
            for cidr in &port.ips {
                check_prefix(cidr)?;
            }
        }
        for (rule, r) in self.rules.iter().enumerate() {
            for endpoint in [r.from, r.to] {
                let known = match endpoint {
                    Endpoint::Any => true,
                    Endpoint::Port(i) => i < self.ports.len(),
                    Endpoint::Uplink(j) => j < self.uplinks.len(),
                };
                if !known {
                    return Err(ConfigError::UnknownEndpoint { rule, endpoint });
                }
            }
            if [r.src_ports, r.dst_ports]
                .into_iter()
                .flatten()
                .any(|(lo, hi)| lo > hi)
            {
                return Err(ConfigError::EmptyPortRange { rule });
            }
            for cidr in [r.src, r.dst].iter().flatten() {
                check_prefix(cidr)?;
            }
        }
        if let Some(threshold) = self.ids.scan_ports {
            if threshold == 0 || threshold > MAX_SCAN_PORTS || self.ids.scan_window_ms == 0 {
                return Err(ConfigError::ScanDetection);
            }
        }
        if self.ids.flood_pps == Some(0) {
            return Err(ConfigError::FloodDetection);
        }
        Ok(())
    }
}

fn check_prefix(cidr: &Cidr) -> Result<(), ConfigError> {
    let max = if cidr.addr.is_ipv4() { 32 } else { 128 };
    if cidr.prefix > max {
        return Err(ConfigError::PrefixLength { cidr: *cidr });
    }
    Ok(())
}

impl From<&BridgePlan> for PolicyConfig {
    fn from(plan: &BridgePlan) -> Self {
        PolicyConfig {
            ports: plan.ports.iter().map(PortPolicy::from).collect(),
            uplinks: plan
                .uplinks
                .iter()
                .map(|uplink| UplinkPolicy {
                    name: uplink.name.clone(),
                })
                .collect(),
            rules: plan.rules.iter().map(Rule::from).collect(),
            ids: IdsConfig::from(&plan.ids),
        }
    }
}

impl From<&BridgePortPlan> for PortPolicy {
    fn from(port: &BridgePortPlan) -> Self {
        PortPolicy {
            name: port.name.clone(),
            mac: MacAddr(port.mac),
            ips: port.ips.clone(),
            vlan: port.vlan,
            rate: port.rate.as_ref().map(RateLimit::from),
        }
    }
}

impl From<&RatePlan> for RateLimit {
    fn from(rate: &RatePlan) -> Self {
        RateLimit {
            bytes_per_s: rate.bytes_per_s,
            burst_bytes: rate.burst_bytes,
            packets_per_s: rate.packets_per_s,
            burst_packets: rate.burst_packets,
        }
    }
}

impl From<&RulePlan> for Rule {
    fn from(rule: &RulePlan) -> Self {
        Rule {
            from: rule.from,
            to: rule.to,
            both_ways: rule.both_ways,
            ethertype: rule.ethertype,
            protocol: rule.protocol,
            src: rule.src,
            dst: rule.dst,
            src_ports: rule.src_ports,
            dst_ports: rule.dst_ports,
            action: rule.action,
        }
    }
}

impl From<&IdsPlan> for IdsConfig {
    fn from(ids: &IdsPlan) -> Self {
        IdsConfig {
            flood_pps: ids.flood_pps,
            scan_ports: ids.scan_ports,
            scan_window_ms: ids.scan_window_ms,
            on_spoof: ids.on_spoof,
            on_malformed: ids.on_malformed,
            on_flood: ids.on_flood,
            on_scan: ids.on_scan,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn port(name: &str, last: u8) -> PortPolicy {
        PortPolicy {
            name: name.to_string(),
            mac: MacAddr([0x02, 0, 0, 0, 0, last]),
            ips: Vec::new(),
            vlan: None,
            rate: None,
        }
    }

    fn config(ports: Vec<PortPolicy>, rules: Vec<Rule>) -> PolicyConfig {
        PolicyConfig {
            ports,
            uplinks: vec![UplinkPolicy {
                name: "wan".to_string(),
            }],
            rules,
            ids: IdsConfig::default(),
        }
    }

    #[test]
    fn two_ports_with_a_rule_between_them_pass_the_check() {
        let config = config(
            vec![port("a", 1), port("b", 2)],
            vec![Rule::allow(Endpoint::Port(0), Endpoint::Uplink(0))],
        );

        let result = config.check();

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn rule_naming_a_missing_port_is_refused() {
        let config = config(
            vec![port("a", 1)],
            vec![Rule::allow(Endpoint::Port(0), Endpoint::Port(1))],
        );

        let result = config.check();

        assert_eq!(
            result,
            Err(ConfigError::UnknownEndpoint {
                rule: 0,
                endpoint: Endpoint::Port(1)
            })
        );
    }

    #[test]
    fn two_ports_with_one_mac_are_refused() {
        let config = config(vec![port("a", 1), port("b", 1)], Vec::new());

        let result = config.check();

        assert!(matches!(result, Err(ConfigError::DuplicateMac { .. })));
    }

    #[test]
    fn reversed_port_range_is_refused() {
        let rule = Rule {
            dst_ports: Some((90, 80)),
            ..Rule::allow(Endpoint::Any, Endpoint::Any)
        };
        let config = config(vec![port("a", 1)], vec![rule]);

        let result = config.check();

        assert_eq!(result, Err(ConfigError::EmptyPortRange { rule: 0 }));
    }

    #[test]
    fn ipv4_prefix_longer_than_32_is_refused() {
        let mut a = port("a", 1);
        let cidr = Cidr {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
            prefix: 33,
        };
        a.ips.push(cidr);

        let result = config(vec![a], Vec::new()).check();

        assert_eq!(result, Err(ConfigError::PrefixLength { cidr }));
    }

    #[test]
    fn scan_threshold_above_the_detector_capacity_is_refused() {
        let mut config = config(vec![port("a", 1)], Vec::new());
        config.ids.scan_ports = Some(MAX_SCAN_PORTS + 1);

        let result = config.check();

        assert_eq!(result, Err(ConfigError::ScanDetection));
    }
}
