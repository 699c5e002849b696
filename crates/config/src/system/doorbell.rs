//! The `[[doorbell]]` tables: events that one partition (`from`) rings and another (`to`)
//! counts, and may take an interrupt for.
//!
//! Doorbell names are unique in the system. A guest opens its ports and its doorbells by
//! name, so a doorbell's name is also no port's name in either of its partitions.

use std::ops::Range;

use toml::de::DeValue;

use crate::partition::Draft;
use crate::plan::{DoorbellPlan, PartitionPlan};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::rules;

/// Keys a `[[doorbell]]` table accepts.
const KEYS: &[&str] = &["name", "from", "to"];

/// The doorbells as read.
pub(super) struct Doorbells {
    /// The plans, if every doorbell passed.
    pub(super) plans: Result<Vec<DoorbellPlan>, Reported>,
    /// Every partition named as an end (`from` or `to`) of a doorbell, even of one refused
    /// for another reason, for the rules on partitions with doorbells.
    pub(super) ends: Vec<String>,
}

/// An accepted doorbell name and where it is.
struct Named {
    name: String,
    span: Range<usize>,
    prefix: String,
}

/// Reads every `[[doorbell]]`; the ends must be partitions of `drafts`.
pub(super) fn read_all(
    report: &mut Report<'_>,
    top: &Fields<'_, '_>,
    drafts: &[Draft],
) -> Doorbells {
    let mut doorbells = Doorbells {
        plans: Ok(Vec::new()),
        ends: Vec::new(),
    };
    let list = match top.array(report, "doorbell") {
        Ok(Some(list)) => list.value.iter().collect::<Vec<_>>(),
        Ok(None) => Vec::new(),
        Err(reported) => {
            doorbells.plans = Err(reported);
            return doorbells;
        }
    };
    let mut names: Vec<Named> = Vec::new();
    for (index, element) in list.into_iter().enumerate() {
        let prefix = format!("doorbell[{index}]");
        let doorbell = match element.get_ref() {
            DeValue::Table(table) => {
                let fields = Fields::of(report, table, element.span(), prefix, KEYS, "a doorbell");
                read_doorbell(report, &fields, drafts, &mut names, &mut doorbells.ends)
            }
            other => Err(wrong_type(report, element.span(), prefix, "a table", other)),
        };
        match (doorbell, &mut doorbells.plans) {
            (Ok(doorbell), Ok(plans)) => plans.push(doorbell),
            (Ok(_), Err(_)) => {}
            (Err(reported), plans) => *plans = Err(reported),
        }
    }
    doorbells
}

/// One doorbell: its name, and its two distinct, existing partitions.
fn read_doorbell(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    drafts: &[Draft],
    names: &mut Vec<Named>,
    ends: &mut Vec<String>,
) -> Result<DoorbellPlan, Reported> {
    let name = read_name(report, fields, names);
    let from = read_end(report, fields, "from", drafts);
    let to = read_end(report, fields, "to", drafts);
    let to = match (&from, to) {
        (Ok(from), Ok(to)) if from.value == to.value => Err(report.at(
            to.span,
            fields.key("to"),
            format!(
                "a doorbell rings another partition; {:?} cannot ring itself",
                to.value
            ),
        )),
        (_, to) => to,
    };
    for end in [&from, &to].into_iter().flatten() {
        ends.push(end.value.clone());
    }
    let name = name.and_then(|name| {
        for end in [&from, &to].into_iter().flatten() {
            check_not_a_port(report, fields, &name, &end.value, drafts)?;
        }
        Ok(name)
    });
    Ok(DoorbellPlan {
        name: name?.value,
        from: from?.value,
        to: to?.value,
    })
}

/// `name`: required, valid, at most [`rules::PORT_NAME_MAX_BYTES`], and no earlier doorbell
/// has it.
fn read_name(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    names: &mut Vec<Named>,
) -> Result<Located<String>, Reported> {
    let name = fields.string(report, "name");
    let name = fields.required(report, "name", name)?;
    if !rules::is_valid_name(&name.value) || name.value.len() > rules::PORT_NAME_MAX_BYTES {
        return Err(report.at(
            name.span,
            fields.key("name"),
            format!(
                "invalid doorbell name {:?}; use 1 to {} characters from a-z, 0-9 and '-', \
                 starting with a letter",
                name.value,
                rules::NAME_MAX_LEN.min(rules::PORT_NAME_MAX_BYTES)
            ),
        ));
    }
    if let Some(first) = names.iter().find(|first| first.name == name.value) {
        let first_line = report.line_of(first.span.start);
        return Err(report.at(
            name.span,
            fields.key("name"),
            format!(
                "duplicate doorbell name {:?}; {} at line {first_line} already has it",
                name.value, first.prefix
            ),
        ));
    }
    names.push(Named {
        name: name.value.clone(),
        span: name.span.clone(),
        prefix: fields.prefix().to_owned(),
    });
    Ok(name)
}

/// End `key` (`from` or `to`): a partition of the system.
fn read_end(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    key: &str,
    drafts: &[Draft],
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
    Ok(name)
}

/// The doorbell `name` is no port's name in `partition`: a guest opens both by name.
fn check_not_a_port(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    name: &Located<String>,
    partition: &str,
    drafts: &[Draft],
) -> Result<(), Reported> {
    let port = drafts
        .iter()
        .filter(|d| d.name.as_ref().is_some_and(|n| n.value == partition))
        .find_map(|d| d.ports.find(&name.value));
    let Some((_, port)) = port else {
        return Ok(());
    };
    let line = report.line_of(port.header.start);
    Err(report.at(
        name.span.clone(),
        fields.key("name"),
        format!(
            "partition {partition:?} has a port named {:?} (line {line}); a partition's ports \
             and doorbells share one namespace, as its guest opens both by name",
            name.value
        ),
    ))
}

/// Gives each partition the doorbells it rings or is rung by, in file order.
pub(super) fn fill_partitions(plans: &mut [PartitionPlan], doorbells: &[DoorbellPlan]) {
    for plan in plans.iter_mut() {
        plan.doorbells = doorbells
            .iter()
            .filter(|doorbell| doorbell.from == plan.name || doorbell.to == plan.name)
            .cloned()
            .collect();
    }
}
