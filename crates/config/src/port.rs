//! The `[[partition.port]]` tables of one partition: its ARINC 653 ports (Part 1, the
//! sampling and queuing port services), each with its kind, direction and largest message,
//! the key only sampling destinations take (`refresh_period_us`) and the key only queuing
//! ports take (`depth`); names unique within the partition.
//!
//! Which channel each port is in, and every rule between ports (of one partition or of
//! several), are in [`crate::system`] (`channel`); a port and a doorbell of one partition
//! share one namespace, checked with the doorbells. A [`PortDraft`] carries the values those
//! rules look at.

use std::ops::Range;

use toml::de::DeValue;

use crate::plan::{PortDirection, PortKind, PortPlan};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::rules;

/// Keys a `[[partition.port]]` table accepts.
const KEYS: &[&str] = &[
    "name",
    "kind",
    "direction",
    "max_message_bytes",
    "refresh_period_us",
    "depth",
];

const KINDS: &[(&str, PortKind)] = &[
    ("sampling", PortKind::Sampling),
    ("queuing", PortKind::Queuing),
];

const DIRECTIONS: &[(&str, PortDirection)] = &[
    ("source", PortDirection::Source),
    ("destination", PortDirection::Destination),
];

/// A port as read: the plan if every key of it passed (its `channel` still empty), and the
/// located values the rules between ports look at, each only if it passed.
pub(crate) struct PortDraft {
    pub(crate) plan: Result<PortPlan, Reported>,
    /// Dotted key prefix, e.g. `partition[0] ("control").port[1]`.
    pub(crate) prefix: String,
    /// Span of the table (its `[[partition.port]]` header).
    pub(crate) header: Range<usize>,
    /// The name, if valid and not a repeat of an earlier port's.
    pub(crate) name: Option<Located<String>>,
    pub(crate) kind: Option<PortKind>,
    pub(crate) direction: Option<PortDirection>,
    pub(crate) max_message_bytes: Option<Located<u32>>,
    /// A queuing port's `depth`.
    pub(crate) depth: Option<Located<u32>>,
}

/// The ports of one partition.
pub(crate) struct Ports {
    /// The ports that are tables, in file order.
    pub(crate) drafts: Vec<PortDraft>,
    /// `Err` if the list itself or an element of it is not a table, or a name is repeated.
    list: Result<(), Reported>,
    /// `Err` if some port's name could not be read: a name no port has may then be meant for
    /// it, so the rules that look ports up by name say nothing more.
    pub(crate) names_known: Result<(), Reported>,
}

impl Ports {
    /// The port plans (each `channel` empty), if the list and every port in it passed.
    pub(crate) fn plans(&self) -> Result<Vec<PortPlan>, Reported> {
        self.list?;
        self.drafts.iter().map(|draft| draft.plan.clone()).collect()
    }

    /// The port named `name`, with its position in the partition.
    pub(crate) fn find(&self, name: &str) -> Option<(usize, &PortDraft)> {
        self.drafts
            .iter()
            .enumerate()
            .find(|(_, draft)| draft.name.as_ref().is_some_and(|n| n.value == name))
    }

    /// The accepted names, quoted, for messages.
    pub(crate) fn names(&self) -> String {
        let names: Vec<String> = self
            .drafts
            .iter()
            .filter_map(|draft| draft.name.as_ref())
            .map(|name| format!("{:?}", name.value))
            .collect();
        names.join(", ")
    }
}

/// Reads the `port` array of the partition whose keys are `fields`.
pub(crate) fn read_all(report: &mut Report<'_>, fields: &Fields<'_, '_>) -> Ports {
    let mut ports = Ports {
        drafts: Vec::new(),
        list: Ok(()),
        names_known: Ok(()),
    };
    let list = match fields.array(report, "port") {
        Ok(Some(list)) => list,
        Ok(None) => return ports,
        Err(reported) => {
            ports.list = Err(reported);
            return ports;
        }
    };
    for (index, element) in list.value.iter().enumerate() {
        let prefix = format!("{}[{index}]", fields.key("port"));
        match element.get_ref() {
            DeValue::Table(table) => {
                let port_fields = Fields::of(report, table, element.span(), prefix, KEYS, "a port");
                let (draft, name) = read(report, &port_fields, &ports.drafts);
                match name {
                    Ok(()) => {}
                    Err(Named::Unknown(reported)) => ports.names_known = Err(reported),
                    Err(Named::Repeated(reported)) => ports.list = Err(reported),
                }
                ports.drafts.push(draft);
            }
            other => {
                let reported = wrong_type(report, element.span(), prefix, "a table", other);
                ports.list = Err(reported);
                ports.names_known = Err(reported);
            }
        }
    }
    ports
}

/// Why a port has no usable name.
enum Named {
    /// The name is missing, not a string or invalid.
    Unknown(Reported),
    /// An earlier port of the partition has it.
    Repeated(Reported),
}

/// Reads and checks one port; `earlier` are the partition's ports before it.
fn read(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    earlier: &[PortDraft],
) -> (PortDraft, Result<(), Named>) {
    let name = read_name(report, fields, earlier);
    let kind = fields.choice(report, "kind", KINDS);
    let kind = fields.required(report, "kind", kind).map(|k| k.value);
    let direction = fields.choice(report, "direction", DIRECTIONS);
    let direction = fields
        .required(report, "direction", direction)
        .map(|d| d.value);
    let max = fields.integer(report, "max_message_bytes", rules::PORT_MESSAGE_BYTES_RANGE);
    let max = fields.required(report, "max_message_bytes", max);
    let refresh = read_refresh(report, fields, kind.ok(), direction.ok());
    let depth = read_depth(report, fields, kind.ok());

    let plan = (|| {
        let name = name.as_ref().map_err(|named| match named {
            Named::Unknown(reported) | Named::Repeated(reported) => *reported,
        });
        Ok(PortPlan {
            name: name?.value.clone(),
            kind: kind?,
            direction: direction?,
            max_message_bytes: max.clone()?.value,
            refresh_period_us: refresh?,
            depth: depth.clone()?.map_or(1, |depth| depth.value),
            channel: String::new(),
        })
    })();
    let (name, named) = match name {
        Ok(name) => (Some(name), Ok(())),
        Err(named) => (None, Err(named)),
    };
    let draft = PortDraft {
        plan,
        prefix: fields.prefix().to_owned(),
        header: fields.span(),
        name,
        kind: kind.ok(),
        direction: direction.ok(),
        max_message_bytes: max.ok(),
        depth: depth.ok().flatten(),
    };
    (draft, named)
}

/// `name`: required, valid, at most [`rules::PORT_NAME_MAX_BYTES`], and no earlier port of
/// the partition has it.
fn read_name(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    earlier: &[PortDraft],
) -> Result<Located<String>, Named> {
    let name = fields.string(report, "name");
    let name = fields
        .required(report, "name", name)
        .map_err(Named::Unknown)?;
    if !rules::is_valid_name(&name.value) || name.value.len() > rules::PORT_NAME_MAX_BYTES {
        return Err(Named::Unknown(report.at(
            name.span,
            fields.key("name"),
            format!(
                "invalid port name {:?}; use 1 to {} characters from a-z, 0-9 and '-', \
                 starting with a letter",
                name.value,
                rules::NAME_MAX_LEN.min(rules::PORT_NAME_MAX_BYTES)
            ),
        )));
    }
    let first = earlier
        .iter()
        .find(|port| port.name.as_ref().is_some_and(|n| n.value == name.value));
    if let Some(first) = first {
        let first_line = report.line_of(first.header.start);
        return Err(Named::Repeated(report.at(
            name.span,
            fields.key("name"),
            format!(
                "duplicate port name {:?}; {} at line {first_line} already has it",
                name.value, first.prefix
            ),
        )));
    }
    Ok(name)
}

/// `refresh_period_us`: required on a sampling destination, refused on any other port. When
/// the kind or direction is unusable, only what is known is checked.
fn read_refresh(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    kind: Option<PortKind>,
    direction: Option<PortDirection>,
) -> Result<Option<u64>, Reported> {
    let refresh = fields.integer(report, "refresh_period_us", rules::REFRESH_PERIOD_US_RANGE)?;
    let key = fields.key("refresh_period_us");
    match (kind, direction, refresh) {
        (Some(PortKind::Sampling), Some(PortDirection::Destination), None) => Err(report.at(
            fields.span(),
            key,
            "required key is missing; a sampling destination port needs it (a message older \
             than refresh_period_us is invalid)",
        )),
        (Some(PortKind::Queuing), _, Some(refresh)) => Err(report.at(
            refresh.span,
            key,
            "refresh_period_us applies to sampling destination ports only; a queuing port \
             keeps each message until it is received",
        )),
        (_, Some(PortDirection::Source), Some(refresh)) => Err(report.at(
            refresh.span,
            key,
            "refresh_period_us applies to sampling destination ports only; a source port does \
             not age the messages it sends",
        )),
        (_, _, refresh) => Ok(refresh.map(|refresh| refresh.value)),
    }
}

/// `depth`: required on a queuing port, refused on a sampling port. When the kind is
/// unusable, only the range is checked.
fn read_depth(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    kind: Option<PortKind>,
) -> Result<Option<Located<u32>>, Reported> {
    let depth = fields.integer(report, "depth", rules::PORT_DEPTH_RANGE)?;
    match (kind, depth) {
        (Some(PortKind::Queuing), None) => Err(report.at(
            fields.span(),
            fields.key("depth"),
            "required key is missing; a queuing port needs it (the messages the port holds)",
        )),
        (Some(PortKind::Sampling), Some(depth)) => Err(report.at(
            depth.span,
            fields.key("depth"),
            "depth applies to queuing ports only; a sampling port holds one message, the \
             latest",
        )),
        (_, depth) => Ok(depth),
    }
}
