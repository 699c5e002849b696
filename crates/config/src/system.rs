//! The whole description: the top-level keys, `[system]`, the list of partitions, and the
//! rules that involve more than one partition (unique names, exclusive CPUs for
//! high-criticality partitions, total memory). The system-wide rules on devices are in
//! [`devices`].

mod devices;

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::host::HostFacts;
use crate::partition::{self, Context, Draft, ListedCpu};
use crate::plan::{Criticality, SystemPlan};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::{files, rules};

/// Keys accepted at the top level.
const TOP_KEYS: &[&str] = &["system", "partition"];

/// Keys accepted in `[system]`.
const SYSTEM_KEYS: &[&str] = &["name"];

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
    let name = read_system(report, &top);
    let context = Context {
        base: files::base_folder(source),
        host,
    };
    let drafts = read_partitions(report, &top, &context);

    let drafts = drafts?;
    let unique = check_unique_names(report, &drafts);
    let exclusive = check_exclusive_cpus(report, &drafts);
    let fits = check_total_memory(report, &drafts, host);
    let devices = devices::check(report, &drafts);
    let partitions = drafts
        .into_iter()
        .map(|draft| draft.plan)
        .collect::<Result<_, _>>();
    unique?;
    exclusive?;
    fits?;
    devices?;
    Ok(SystemPlan {
        name: name?,
        source: source.to_path_buf(),
        partitions: partitions?,
    })
}

/// `[system]` and its name.
fn read_system(report: &mut Report<'_>, top: &Fields<'_, '_>) -> Result<String, Reported> {
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
    fields.required(report, "name", name).map(|name| name.value)
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

/// A high-criticality partition has its host CPUs to itself. Each shared CPU is reported
/// once per pair of partitions, at the later partition's list element.
fn check_exclusive_cpus(report: &mut Report<'_>, drafts: &[Draft]) -> Result<(), Reported> {
    let mut result = Ok(());
    for (i, later) in drafts.iter().enumerate() {
        for earlier in &drafts[..i] {
            let high = [earlier.criticality, later.criticality].contains(&Some(Criticality::High));
            if !high {
                continue;
            }
            for listed in &later.cpus {
                if earlier.cpus.iter().any(|other| other.cpu == listed.cpu) {
                    result = Err(report_shared_cpu(report, earlier, later, listed));
                }
            }
        }
    }
    result
}

fn report_shared_cpu(
    report: &mut Report<'_>,
    earlier: &Draft,
    later: &Draft,
    listed: &ListedCpu,
) -> Reported {
    let earlier_line = report.line_of(earlier.header.start);
    report.at(
        listed.span.clone(),
        listed.key.clone(),
        format!(
            "host CPU {} is shared by {} and {} (line {earlier_line}); a high-criticality \
             partition must have its host CPUs to itself",
            listed.cpu,
            describe(later),
            describe(earlier),
        ),
    )
}

/// `high-criticality partition "name"` or `partition "name"`, for messages.
fn describe(draft: &Draft) -> String {
    let name = draft
        .name
        .as_ref()
        .map_or_else(|| draft.prefix.clone(), |name| format!("{:?}", name.value));
    match draft.criticality {
        Some(Criticality::High) => format!("high-criticality partition {name}"),
        _ => format!("partition {name}"),
    }
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
