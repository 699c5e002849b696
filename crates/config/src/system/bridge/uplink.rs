//! `[[bridge.uplink]]`: encrypted tunnels to other bulkhead hosts — both addresses definite,
//! the key file private and of the right size.

use std::net::SocketAddr;

use toml::de::DeValue;

use super::Context;
use crate::partition::{check_name, read_path};
use crate::plan::{BridgePortPlan, UplinkPlan};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields};

const UPLINK_KEYS: &[&str] = &["name", "local", "peer", "key"];

pub(super) fn read_uplinks(
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
