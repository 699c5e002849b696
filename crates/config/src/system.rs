//! The whole description: the top-level keys, `[system]`, the list of partitions, and the
//! rules that involve more than one partition (unique names, total memory). The system-wide
//! rules on devices are in [`devices`]; the schedules and the rules on sharing host CPUs in
//! [`schedule`]; the serial lines between partitions in [`uart_link`]; the channels between
//! ports in [`channel`], the doorbells in [`doorbell`], and the vsock port of the service
//! that gives Linux guests their ports and doorbells in [`apex`].

mod apex;
mod bridge;
mod channel;
mod devices;
mod doorbell;
mod schedule;
mod uart_link;

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::host::HostFacts;
use crate::partition::{self, Context, Draft};
use crate::plan::SystemPlan;
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::{files, rules};

/// Keys accepted at the top level.
const TOP_KEYS: &[&str] = &[
    "system",
    "partition",
    "schedule",
    "bridge",
    "uart_link",
    "channel",
    "doorbell",
];

/// Keys accepted in `[system]`.
const SYSTEM_KEYS: &[&str] = &["name", "housekeeping_cpus"];

/// The start of the file, for problems that have no better place.
const FILE_START: Range<usize> = 0..0;

/// Validates the parsed document `root` of the description at `source`.
pub(crate) fn validate(
    report: &mut Report<'_>,
    source: &Path,
    root: &DeTable<'_>,
    host: &HostFacts,
) -> Result<SystemPlan, Reported> {
    let top = Fields::new(report, root, FILE_START, String::new(), TOP_KEYS);
    let system = read_system(report, &top);
    let context = Context {
        base: files::base_folder(source),
        host,
    };
    let drafts = read_partitions(report, &top, &context);

    let drafts = drafts?;
    let schedules = schedule::read_all(report, &top, &drafts, host);
    let unique = check_unique_names(report, &drafts);
    let sharing = match &schedules {
        Ok(schedules) => schedule::check_sharing(report, &drafts, schedules),
        Err(reported) => Err(*reported),
    };
    let housekeeping = match (&system, &schedules) {
        (Ok(system), Ok(schedules)) => {
            schedule::read_housekeeping(report, &system.fields, &drafts, schedules, host)
        }
        (Err(reported), _) | (_, Err(reported)) => Err(*reported),
    };
    let fits = check_total_memory(report, &drafts, host);
    let devices = devices::check(report, &drafts);
    let windowed = schedules
        .as_ref()
        .map(|s| schedule::windowed_cpus(s))
        .unwrap_or_default();
    let bridges = bridge::read_all(report, &top, &context.base, &drafts, &windowed, host);
    let uart_links = uart_link::read_all(report, &top, &drafts);
    let channels = channel::read_all(report, &top, &drafts);
    let doorbells = doorbell::read_all(report, &top, &drafts);
    let apex = apex::check(report, &drafts, &doorbells.ends);
    let partitions: Result<Vec<_>, _> = drafts.into_iter().map(|draft| draft.plan).collect();
    unique?;
    sharing?;
    fits?;
    devices?;
    apex?;
    let mut partitions = partitions?;
    let schedules = schedule::plans(schedules?)?;
    let housekeeping = housekeeping?
        .unwrap_or_else(|| schedule::default_housekeeping(&partitions, &schedules, host));
    schedule::fill_partitions(&mut partitions, &schedules, &housekeeping);
    let uart_links = uart_links?;
    uart_link::fill_partitions(&mut partitions, &uart_links);
    let channels = channels?;
    channel::fill_partitions(&mut partitions, &channels);
    let doorbells = doorbells.plans?;
    doorbell::fill_partitions(&mut partitions, &doorbells);
    let mut bridges = bridges?;
    for bridge in bridges.iter_mut().filter(|b| b.cpus.is_empty()) {
        bridge.cpus = housekeeping.clone();
    }
    Ok(SystemPlan {
        name: system?.name,
        source: source.to_path_buf(),
        partitions,
        schedules,
        housekeeping_cpus: housekeeping,
        bridges,
        uart_links,
        channels,
        doorbells,
    })
}

/// `[system]` as read: its name, and its keys for the rules that need the partitions.
struct System<'a, 'i> {
    name: String,
    fields: Fields<'a, 'i>,
}

/// `[system]` and its name.
fn read_system<'a, 'i>(
    report: &mut Report<'_>,
    top: &Fields<'a, 'i>,
) -> Result<System<'a, 'i>, Reported> {
    let Some(system) = top.table(report, "system")? else {
        return Err(report.at(FILE_START, "system", "required table [system] is missing"));
    };
    let fields = Fields::new(
        report,
        system.value,
        system.span,
        "system".to_owned(),
        SYSTEM_KEYS,
    );
    let name = fields
        .string(report, "name")
        .and_then(|name| partition::check_name(report, &fields, name));
    let name = fields.required(report, "name", name)?.value;
    Ok(System { name, fields })
}

/// Every `[[partition]]`, read one by one.
fn read_partitions(
    report: &mut Report<'_>,
    top: &Fields<'_, '_>,
    context: &Context<'_>,
) -> Result<Vec<Draft>, Reported> {
    let Some(list) = top.array(report, "partition")? else {
        return Err(report.at(
            FILE_START,
            "partition",
            "no partitions; declare at least one [[partition]] table",
        ));
    };
    if list.value.is_empty() {
        return Err(report.at(
            list.span,
            "partition",
            "no partitions; declare at least one [[partition]] table",
        ));
    }
    let mut drafts = Vec::with_capacity(list.value.len());
    let mut failed = None;
    for (index, element) in list.value.iter().enumerate() {
        match element.get_ref() {
            DeValue::Table(table) => {
                drafts.push(partition::read(
                    report,
                    context,
                    index,
                    table,
                    element.span(),
                ));
            }
            other => {
                let key = format!("partition[{index}]");
                failed = Some(wrong_type(report, element.span(), key, "a table", other));
            }
        }
    }
    match failed {
        Some(reported) => Err(reported),
        None => Ok(drafts),
    }
}

/// Partition names are unique; a repeat is reported at the repeat, naming the first.
fn check_unique_names(report: &mut Report<'_>, drafts: &[Draft]) -> Result<(), Reported> {
    let mut result = Ok(());
    for (i, draft) in drafts.iter().enumerate() {
        let Some(name) = &draft.name else { continue };
        let first = drafts[..i]
            .iter()
            .find(|earlier| earlier.name.as_ref().is_some_and(|n| n.value == name.value));
        if let Some(first) = first {
            let first_line = report.line_of(first.header.start);
            result = Err(report.at(
                name.span.clone(),
                format!("{}.name", draft.prefix),
                format!(
                    "duplicate partition name {:?}; {} at line {first_line} already has it",
                    name.value, first.prefix
                ),
            ));
        }
    }
    result
}

/// The memory of all partitions fits the host, minus [`rules::HOST_RESERVE_MIB`]. Reported
/// once, at the `memory_mib` of the first partition that does not fit.
fn check_total_memory(
    report: &mut Report<'_>,
    drafts: &[Draft],
    host: &HostFacts,
) -> Result<(), Reported> {
    let available = host
        .memory_total_mib
        .saturating_sub(rules::HOST_RESERVE_MIB);
    let sized: Vec<(&Draft, &Located<u64>)> = drafts
        .iter()
        .filter_map(|draft| draft.memory_mib.as_ref().map(|memory| (draft, memory)))
        .collect();
    let total: u64 = sized
        .iter()
        .map(|(_, memory)| memory.value)
        .fold(0, u64::saturating_add);
    if total <= available {
        return Ok(());
    }
    let mut running = 0u64;
    let first_over = sized.iter().find(|(_, memory)| {
        running = running.saturating_add(memory.value);
        running > available
    });
    let Some((draft, memory)) = first_over else {
        return Ok(());
    };
    Err(report.at(
        memory.span.clone(),
        format!("{}.memory_mib", draft.prefix),
        format!(
            "partitions need {total} MiB in total but the host can give {available} MiB \
             (MemTotal {} MiB minus {} MiB kept for the host)",
            host.memory_total_mib,
            rules::HOST_RESERVE_MIB
        ),
    ))
}
