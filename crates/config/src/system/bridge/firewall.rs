//! `[[bridge.rule]]`: the firewall's rules, each naming its two ends (ports or uplinks) and
//! what it matches — ethertype, protocol, addresses (CIDR) and ports — and whether it also
//! matches the replies (`both_ways`).

use std::net::IpAddr;

use toml::de::DeValue;

use super::Names;
use crate::plan::{Cidr, Endpoint, RuleAction, RulePlan};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::rules;

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
const RULE_ACTIONS: &[(&str, RuleAction)] =
    &[("allow", RuleAction::Allow), ("deny", RuleAction::Deny)];
const ETHERTYPES: &[(&str, u16)] = &[("ipv4", 0x0800), ("arp", 0x0806), ("ipv6", 0x86dd)];
const PROTOCOLS: &[(&str, u8)] = &[("icmp", 1), ("tcp", 6), ("udp", 17), ("icmpv6", 58)];
const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

pub(super) fn read_rules(
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
