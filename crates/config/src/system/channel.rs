//! The `[[channel]]` tables: ARINC 653 channels (Part 1, interpartition communication), each
//! joining one source port to the destination ports that receive what it sends, and the rule
//! that every `[[partition.port]]` is in exactly one channel.
//!
//! Ports are named `"PARTITION.PORT"`. The ports of a channel agree on their kind and their
//! largest message; a queuing channel has one destination, whose depth is the source's. A
//! source and a destination may be in the same partition. A port in no channel is refused at
//! its own table: communication that is not declared is impossible, and a port that is
//! declared but joined to nothing is a mistake.

use std::ops::Range;

use toml::de::DeValue;
use toml::Spanned;

use crate::partition::{check_name, Draft};
use crate::plan::{ChannelPlan, PartitionPlan, PortDirection, PortKind, PortRef};
use crate::port::PortDraft;
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::rules;

/// Keys a `[[channel]]` table accepts.
const KEYS: &[&str] = &["name", "source", "destinations"];

/// A reference that names a port of the system.
struct Target<'d> {
    /// Index of the partition in the drafts.
    partition: usize,
    /// Index of the port among the partition's ports.
    port: usize,
    draft: &'d PortDraft,
    /// The reference as written, `PARTITION.PORT`.
    text: String,
    /// The reference's value.
    span: Range<usize>,
    /// Dotted key of the reference, e.g. `channel[0].destinations[1]`.
    key: String,
    reference: PortRef,
}

/// A port named by a channel, for the rule that a port is in one channel.
struct Use {
    partition: usize,
    port: usize,
    /// Index of the channel that names it.
    channel: usize,
    span: Range<usize>,
}

/// What the channels read so far have established.
struct State {
    uses: Vec<Use>,
    /// Accepted channel names, with the prefix of their channel.
    names: Vec<(Located<String>, String)>,
    /// Whether every reference of every channel named a port: otherwise a port in no
    /// channel may be the one a bad reference meant, and is not reported.
    all_resolved: bool,
}

/// Reads every `[[channel]]` and checks that every port of `drafts` is in one.
pub(super) fn read_all(
    report: &mut Report<'_>,
    top: &Fields<'_, '_>,
    drafts: &[Draft],
) -> Result<Vec<ChannelPlan>, Reported> {
    let list = match top.array(report, "channel")? {
        Some(list) => list.value.iter().collect::<Vec<_>>(),
        None => Vec::new(),
    };
    let mut state = State {
        uses: Vec::new(),
        names: Vec::new(),
        all_resolved: true,
    };
    let mut channels = Ok(Vec::with_capacity(list.len()));
    for (index, element) in list.into_iter().enumerate() {
        let prefix = format!("channel[{index}]");
        let channel = match element.get_ref() {
            DeValue::Table(table) => {
                let fields = Fields::of(report, table, element.span(), prefix, KEYS, "a channel");
                read_channel(report, &fields, index, drafts, &mut state)
            }
            other => {
                state.all_resolved = false;
                Err(wrong_type(report, element.span(), prefix, "a table", other))
            }
        };
        match (channel, &mut channels) {
            (Ok(channel), Ok(channels)) => channels.push(channel),
            (Ok(_), Err(_)) => {}
            (Err(reported), _) => channels = Err(reported),
        }
    }
    let covered = check_every_port_in_a_channel(report, drafts, &state);
    covered.and(channels)
}

/// One channel: its name, its source and destinations, and the rules between them.
fn read_channel(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    index: usize,
    drafts: &[Draft],
    state: &mut State,
) -> Result<ChannelPlan, Reported> {
    let name = read_name(report, fields, state);
    let source = read_source(report, fields, index, drafts, state);
    let destinations = read_destinations(report, fields, index, drafts, state, source.as_ref());
    let (source, destinations) = (source?, destinations?);
    let plan = source.draft.plan.as_ref().map_err(|reported| *reported)?;
    check_memory(
        report,
        fields,
        plan.kind,
        plan.depth,
        plan.max_message_bytes,
    )?;
    Ok(ChannelPlan {
        name: name?,
        kind: plan.kind,
        max_message_bytes: plan.max_message_bytes,
        depth: plan.depth,
        source: source.reference,
        destinations: destinations.into_iter().map(|d| d.reference).collect(),
    })
}

/// `name`: required, valid, and no earlier channel has it.
fn read_name(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    state: &mut State,
) -> Result<String, Reported> {
    let name = fields
        .string(report, "name")
        .and_then(|name| check_name(report, fields, name));
    let name = fields.required(report, "name", name)?;
    if let Some((first, prefix)) = state.names.iter().find(|(n, _)| n.value == name.value) {
        let first_line = report.line_of(first.span.start);
        return Err(report.at(
            name.span,
            fields.key("name"),
            format!(
                "duplicate channel name {:?}; {prefix} at line {first_line} already has it",
                name.value
            ),
        ));
    }
    state.names.push((name.clone(), fields.prefix().to_owned()));
    Ok(name.value)
}

/// `source`: a source port in no other channel.
fn read_source<'d>(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    index: usize,
    drafts: &'d [Draft],
    state: &mut State,
) -> Result<Target<'d>, Reported> {
    let Some(value) = fields.value("source") else {
        state.all_resolved = false;
        return Err(fields.missing(report, "source"));
    };
    let source = resolve(report, value, fields.key("source"), drafts, state)?;
    claim(report, &source, index, state)?;
    if let Some(PortDirection::Destination) = source.draft.direction {
        return Err(report.at(
            source.span.clone(),
            source.key.clone(),
            format!(
                "{:?} is a destination port (line {}); the source of a channel is a source port",
                source.text,
                report.line_of(source.draft.header.start)
            ),
        ));
    }
    Ok(source)
}

/// `destinations`: a non-empty list of destination ports, each in no other channel and
/// agreeing with the source (when it could be read).
fn read_destinations<'d>(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    index: usize,
    drafts: &'d [Draft],
    state: &mut State,
    source: Result<&Target<'_>, &Reported>,
) -> Result<Vec<Target<'d>>, Reported> {
    let list = fields.array(report, "destinations");
    let list = match fields.required(report, "destinations", list) {
        Ok(list) if list.value.is_empty() => Err(report.at(
            list.span,
            fields.key("destinations"),
            "empty list; give at least one destination port",
        )),
        other => other,
    };
    let list = list.inspect_err(|_| state.all_resolved = false)?;
    let source = source.ok();
    let mut destinations = Ok(Vec::with_capacity(list.value.len()));
    for (i, element) in list.value.iter().enumerate() {
        let key = format!("{}[{i}]", fields.key("destinations"));
        let destination = resolve(report, element, key, drafts, state).and_then(|target| {
            claim(report, &target, index, state)?;
            match destination_problem(report, &target, source, i) {
                Some(message) => Err(report.at(target.span.clone(), target.key.clone(), message)),
                None => Ok(target),
            }
        });
        match (destination, &mut destinations) {
            (Ok(target), Ok(destinations)) => destinations.push(target),
            (Ok(_), Err(_)) => {}
            (Err(reported), _) => destinations = Err(reported),
        }
    }
    destinations
}

/// What is wrong with `destination`, the `i`-th of its channel, given the channel's `source`
/// (when it could be read), if anything.
fn destination_problem(
    report: &Report<'_>,
    destination: &Target<'_>,
    source: Option<&Target<'_>>,
    i: usize,
) -> Option<String> {
    let port = destination.draft;
    let line = report.line_of(port.header.start);
    if port.direction == Some(PortDirection::Source) {
        return Some(format!(
            "{:?} is a source port (line {line}); the destinations of a channel are \
             destination ports",
            destination.text
        ));
    }
    let source = source?;
    let from = source.draft;
    let source_line = report.line_of(from.header.start);
    if let (Some(kind), Some(source_kind)) = (port.kind, from.kind) {
        if kind != source_kind {
            return Some(format!(
                "{:?} is a {} port but the source {:?} is a {} port (line {source_line}); the \
                 ports of a channel are all of one kind",
                destination.text,
                kind.as_str(),
                source.text,
                source_kind.as_str()
            ));
        }
    }
    if from.kind == Some(PortKind::Queuing) && i > 0 {
        return Some(format!(
            "{:?} is a second destination; a queuing channel has one (each message is \
             received once): give this port a channel of its own",
            destination.text
        ));
    }
    if let (Some(max), Some(source_max)) = (&port.max_message_bytes, &from.max_message_bytes) {
        if max.value != source_max.value {
            return Some(format!(
                "{:?} has max_message_bytes = {} but the source {:?} has {} (line {}); the \
                 ports of a channel carry messages of one size",
                destination.text,
                max.value,
                source.text,
                source_max.value,
                report.line_of(source_max.span.start)
            ));
        }
    }
    if let (Some(depth), Some(source_depth)) = (&port.depth, &from.depth) {
        if depth.value != source_depth.value {
            return Some(format!(
                "{:?} has depth = {} but the source {:?} has {} (line {}); the two ports of a \
                 queuing channel hold the same number of messages",
                destination.text,
                depth.value,
                source.text,
                source_depth.value,
                report.line_of(source_depth.span.start)
            ));
        }
    }
    None
}

/// The port that reference `value` (a `"PARTITION.PORT"` string) names. A reference that
/// names no port marks the channels as not all resolved.
fn resolve<'d>(
    report: &mut Report<'_>,
    value: &Spanned<DeValue<'_>>,
    key: String,
    drafts: &'d [Draft],
    state: &mut State,
) -> Result<Target<'d>, Reported> {
    let target = find_port(report, value, key, drafts);
    if target.is_err() {
        state.all_resolved = false;
    }
    target
}

fn find_port<'d>(
    report: &mut Report<'_>,
    value: &Spanned<DeValue<'_>>,
    key: String,
    drafts: &'d [Draft],
) -> Result<Target<'d>, Reported> {
    let span = value.span();
    let DeValue::String(text) = value.get_ref() else {
        return Err(wrong_type(report, span, key, "a string", value.get_ref()));
    };
    let parts = text
        .split_once('.')
        .filter(|(partition, port)| !partition.is_empty() && !port.is_empty())
        .filter(|(_, port)| !port.contains('.'));
    let Some((partition_name, port_name)) = parts else {
        return Err(report.at(
            span,
            key,
            format!(
                "invalid port reference {:?}; write \"PARTITION.PORT\", a partition and one of \
                 its ports, e.g. \"control.attitude\"",
                text.as_ref()
            ),
        ));
    };
    let found = drafts
        .iter()
        .enumerate()
        .find(|(_, d)| d.name.as_ref().is_some_and(|n| n.value == partition_name));
    let Some((partition, draft)) = found else {
        return Err(report.at(
            span,
            key,
            format!(
                "no partition is named {partition_name:?} (partitions: {})",
                super::devices::partition_names(drafts)
            ),
        ));
    };
    let Some((port, port_draft)) = draft.ports.find(port_name) else {
        // A port whose name could not be read may be the one meant; it is reported already.
        draft.ports.names_known?;
        let known = match draft.ports.names() {
            names if names.is_empty() => "it declares no [[partition.port]]".to_owned(),
            names => format!("its ports: {names}"),
        };
        return Err(report.at(
            span,
            key,
            format!("partition {partition_name:?} has no port named {port_name:?} ({known})"),
        ));
    };
    Ok(Target {
        partition,
        port,
        draft: port_draft,
        text: text.to_string(),
        span,
        key,
        reference: PortRef {
            partition: partition_name.to_owned(),
            port: port_name.to_owned(),
        },
    })
}

/// Records that channel `index` names `target`, which no reference before it may name.
fn claim(
    report: &mut Report<'_>,
    target: &Target<'_>,
    index: usize,
    state: &mut State,
) -> Result<(), Reported> {
    let first = state
        .uses
        .iter()
        .find(|u| u.partition == target.partition && u.port == target.port);
    let problem = first.map(|first| {
        let line = report.line_of(first.span.start);
        if first.channel == index {
            format!(
                "{:?} is listed more than once in this channel (line {line})",
                target.text
            )
        } else {
            format!(
                "{:?} is already in channel[{}] (line {line}); a port is in one channel at most",
                target.text, first.channel
            )
        }
    });
    state.uses.push(Use {
        partition: target.partition,
        port: target.port,
        channel: index,
        span: target.span.clone(),
    });
    match problem {
        Some(message) => Err(report.at(target.span.clone(), target.key.clone(), message)),
        None => Ok(()),
    }
}

/// The shared memory of a queuing channel: `depth` slots, each a message of
/// `max_message_bytes` rounded up to 8 bytes, plus 8 bytes of length and sequence.
fn queuing_channel_bytes(depth: u32, max_message_bytes: u32) -> u64 {
    u64::from(depth) * (u64::from(max_message_bytes).next_multiple_of(8) + 8)
}

/// A queuing channel takes at most [`rules::MAX_CHANNEL_BYTES`] of shared memory.
fn check_memory(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    kind: PortKind,
    depth: u32,
    max_message_bytes: u32,
) -> Result<(), Reported> {
    match memory_problem(kind, depth, max_message_bytes) {
        Some(message) => Err(report.at(fields.span(), fields.prefix().to_owned(), message)),
        None => Ok(()),
    }
}

/// Why a channel of `kind`, `depth` and `max_message_bytes` takes too much memory, if it does.
fn memory_problem(kind: PortKind, depth: u32, max_message_bytes: u32) -> Option<String> {
    let bytes = queuing_channel_bytes(depth, max_message_bytes);
    (kind == PortKind::Queuing && bytes > rules::MAX_CHANNEL_BYTES).then(|| {
        format!(
            "a queuing channel of depth {depth} and max_message_bytes {max_message_bytes} needs \
             {bytes} bytes of shared memory; at most {} are accepted",
            rules::MAX_CHANNEL_BYTES
        )
    })
}

/// Every port (with a usable name and direction) is named by some channel; one that is not
/// is reported at its own table. Nothing is said when a reference named no port.
fn check_every_port_in_a_channel(
    report: &mut Report<'_>,
    drafts: &[Draft],
    state: &State,
) -> Result<(), Reported> {
    if !state.all_resolved {
        return Ok(());
    }
    let mut result = Ok(());
    for (p, draft) in drafts.iter().enumerate() {
        for (i, port) in draft.ports.drafts.iter().enumerate() {
            let (Some(name), Some(direction)) = (&port.name, port.direction) else {
                continue;
            };
            if state.uses.iter().any(|u| u.partition == p && u.port == i) {
                continue;
            }
            let message = match direction {
                PortDirection::Source => format!(
                    "source port {:?} has no reader (no [[channel]] reads it)",
                    name.value
                ),
                PortDirection::Destination => format!(
                    "destination port {:?} has no writer (no [[channel]] names it)",
                    name.value
                ),
            };
            result = Err(report.at(port.header.clone(), port.prefix.clone(), message));
        }
    }
    result
}

/// Gives each port of each partition the name of its channel.
pub(super) fn fill_partitions(plans: &mut [PartitionPlan], channels: &[ChannelPlan]) {
    for channel in channels {
        for end in std::iter::once(&channel.source).chain(&channel.destinations) {
            let port = plans
                .iter_mut()
                .filter(|plan| plan.name == end.partition)
                .flat_map(|plan| plan.ports.iter_mut())
                .find(|port| port.name == end.port);
            if let Some(port) = port {
                port.channel = channel.name.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queuing_slot_is_the_message_rounded_up_to_eight_bytes_plus_eight() {
        let bytes = queuing_channel_bytes(4, 13);

        assert_eq!(bytes, 4 * (16 + 8));
    }

    #[test]
    fn largest_queuing_channel_of_the_accepted_ranges_fits_the_limit() {
        let bytes = queuing_channel_bytes(
            *rules::PORT_DEPTH_RANGE.end(),
            *rules::PORT_MESSAGE_BYTES_RANGE.end(),
        );

        assert!(bytes <= rules::MAX_CHANNEL_BYTES);
    }

    #[test]
    fn queuing_channel_beyond_the_limit_is_refused_with_its_size() {
        let problem = memory_problem(PortKind::Queuing, 4096, 8192);

        assert_eq!(
            problem.as_deref(),
            Some(
                "a queuing channel of depth 4096 and max_message_bytes 8192 needs 33587200 \
                 bytes of shared memory; at most 16777216 are accepted"
            )
        );
    }

    #[test]
    fn sampling_channel_has_no_memory_limit_of_its_own() {
        let problem = memory_problem(PortKind::Sampling, 4096, 8192);

        assert_eq!(problem, None);
    }
}
