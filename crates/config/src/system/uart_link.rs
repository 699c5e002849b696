//! The `[[uart_link]]` tables: virtual serial lines between two partitions, each joining
//! partition `a`'s second UART (COM2, the guest's `ttyS1`) to partition `b`'s, with a bound
//! on the bytes in flight per direction.
//!
//! A partition has one COM2, so it is an end of at most one link; a link joins two distinct
//! partitions of the system. A partition in no link has no COM2 at all: communication that is
//! not declared is impossible.

use toml::de::DeValue;

use crate::partition::Draft;
use crate::plan::{PartitionPlan, UartLinkPlan, UartPeer};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::rules;

/// Keys a `[[uart_link]]` table accepts.
const KEYS: &[&str] = &["a", "b", "buffer_bytes"];

/// One end of a link as read, for the rule that a partition is in one link at most.
struct End {
    partition: String,
    span: std::ops::Range<usize>,
    link: String,
}

/// Reads every `[[uart_link]]`; the ends must be partitions of `drafts`.
pub(super) fn read_all(
    report: &mut Report<'_>,
    top: &Fields<'_, '_>,
    drafts: &[Draft],
) -> Result<Vec<UartLinkPlan>, Reported> {
    let list = match top.array(report, "uart_link")? {
        Some(list) => list.value.iter().collect::<Vec<_>>(),
        None => Vec::new(),
    };
    let mut links = Vec::with_capacity(list.len());
    let mut ends: Vec<End> = Vec::new();
    let mut result = Ok(());
    for (index, element) in list.into_iter().enumerate() {
        let prefix = format!("uart_link[{index}]");
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
        let fields = Fields::of(report, table, element.span(), prefix, KEYS, "a uart link");
        match read_link(report, &fields, drafts, &mut ends) {
            Ok(link) => links.push(link),
            Err(reported) => result = Err(reported),
        }
    }
    result.map(|()| links)
}

/// One link: both ends named, distinct, existing and in no earlier link.
fn read_link(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    drafts: &[Draft],
    ends: &mut Vec<End>,
) -> Result<UartLinkPlan, Reported> {
    let a = read_end(report, fields, "a", drafts, ends);
    let b = read_end(report, fields, "b", drafts, ends);
    let b = match (&a, b) {
        (Ok(a), Ok(b)) if a.value == b.value => Err(report.at(
            b.span,
            fields.key("b"),
            format!(
                "a uart link joins two partitions; {:?} cannot be linked to itself",
                b.value
            ),
        )),
        (_, b) => b,
    };
    let buffer_bytes = fields
        .integer(report, "buffer_bytes", rules::UART_LINK_BUFFER_BYTES_RANGE)
        .map(|v| v.map_or(rules::DEFAULT_UART_LINK_BUFFER_BYTES, |v| v.value));
    for end in [&a, &b].into_iter().flatten() {
        ends.push(End {
            partition: end.value.clone(),
            span: end.span.clone(),
            link: fields.prefix().to_owned(),
        });
    }
    Ok(UartLinkPlan {
        a: a?.value,
        b: b?.value,
        buffer_bytes: buffer_bytes?,
    })
}

/// End `key` (`a` or `b`): a partition of the system that no earlier link has.
fn read_end(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    key: &str,
    drafts: &[Draft],
    ends: &[End],
) -> Result<Located<String>, Reported> {
    let name = fields.string(report, key);
    let name = fields.required(report, key, name)?;
    let known = drafts
        .iter()
        .any(|d| d.name.as_ref().is_some_and(|n| n.value == name.value));
    if !known {
        return Err(report.at(
            name.span,
            fields.key(key),
            format!(
                "no partition is named {:?} (partitions: {})",
                name.value,
                super::devices::partition_names(drafts)
            ),
        ));
    }
    if let Some(first) = ends.iter().find(|e| e.partition == name.value) {
        let line = report.line_of(first.span.start);
        return Err(report.at(
            name.span,
            fields.key(key),
            format!(
                "partition {:?} is already an end of {} (line {line}); a partition has one \
                 COM2, so it is in one uart link at most",
                name.value, first.link
            ),
        ));
    }
    Ok(name)
}

/// Gives each partition that is an end of a link its peer.
pub(super) fn fill_partitions(plans: &mut [PartitionPlan], links: &[UartLinkPlan]) {
    for plan in plans.iter_mut() {
        plan.uart_link = links.iter().find_map(|link| {
            let peer = if link.a == plan.name {
                &link.b
            } else if link.b == plan.name {
                &link.a
            } else {
                return None;
            };
            Some(UartPeer {
                peer: peer.clone(),
                buffer_bytes: link.buffer_bytes,
            })
        });
    }
}
