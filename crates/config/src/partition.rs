//! One `[[partition]]` table: its keys, their types and ranges, and the files it names. Its
//! `[[partition.device]]` tables are read by [`crate::device`], its `[[partition.port]]`
//! tables by [`crate::port`]; rules that involve several partitions are in [`crate::system`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::device::{self, Devices, Owner};
use crate::files;
use crate::health;
use crate::host::HostFacts;
use crate::plan::{Criticality, IdlePolicy, OnReset, PartitionPlan};
use crate::port::{self, Ports};
use crate::problem::{Report, Reported};
use crate::read::{integer_in, Fields, Located};
use crate::rules;

/// Keys a `[[partition]]` table accepts.
pub(crate) const KEYS: &[&str] = &[
    "name",
    "criticality",
    "vcpus",
    "cpus",
    "memory_mib",
    "kernel",
    "initrd",
    "cmdline",
    "rt_priority",
    "console_log",
    "on_reset",
    "max_restarts",
    "huge_pages",
    "idle",
    "halt_poll_us",
    "lock_memory",
    "health",
    "device",
    "port",
];

const CRITICALITIES: &[(&str, Criticality)] =
    &[("high", Criticality::High), ("low", Criticality::Low)];

const ON_RESET: &[(&str, OnReset)] = &[("restart", OnReset::Restart), ("stop", OnReset::Stop)];

const IDLE: &[(&str, IdlePolicy)] = &[("halt", IdlePolicy::Halt), ("poll", IdlePolicy::Poll)];

/// A partition as read: the plan if every key of it passed, and the located values that the
/// cross-partition rules look at (each only if it passed).
pub(crate) struct Draft {
    pub(crate) plan: Result<PartitionPlan, Reported>,
    /// Dotted key prefix, e.g. `partition[1] ("linux")`.
    pub(crate) prefix: String,
    pub(crate) header: Range<usize>,
    pub(crate) name: Option<Located<String>>,
    pub(crate) criticality: Option<Criticality>,
    /// Accepted host CPUs, each with the place of its list element.
    pub(crate) cpus: Vec<ListedCpu>,
    pub(crate) memory_mib: Option<Located<u64>>,
    /// `idle`, where it was given (`None`: absent or unusable; the default is halt).
    pub(crate) idle: Option<Located<IdlePolicy>>,
    /// The SCHED_FIFO priority, if the partition's `rt_priority` passed.
    pub(crate) rt_priority: Option<u8>,
    /// `[partition.health].watchdog_ms`, if declared and accepted.
    pub(crate) watchdog_ms: Option<u32>,
    /// The `[[partition.device]]` tables as read, for the system-wide device rules.
    pub(crate) devices: Devices,
    /// The `[[partition.port]]` tables as read, for the channels and doorbells.
    pub(crate) ports: Ports,
}

/// Where relative paths start and what the host offers.
pub(crate) struct Context<'h> {
    pub(crate) base: PathBuf,
    pub(crate) host: &'h HostFacts,
}

/// Reads and checks partition `index`, whose table (header) is at `span`.
pub(crate) fn read(
    report: &mut Report<'_>,
    context: &Context<'_>,
    index: usize,
    table: &DeTable<'_>,
    span: Range<usize>,
) -> Draft {
    let prefix = key_prefix(index, table);
    let fields = Fields::new(report, table, span.clone(), prefix.clone(), KEYS);

    let name = fields
        .string(report, "name")
        .and_then(|name| check_name(report, &fields, name));
    let name = fields.required(report, "name", name);
    let criticality = fields.choice(report, "criticality", CRITICALITIES);
    let criticality = fields
        .required(report, "criticality", criticality)
        .map(|c| c.value);
    let vcpus = fields.integer(report, "vcpus", 1..=rules::MAX_VCPUS);
    let vcpus = fields.required(report, "vcpus", vcpus).map(|v| v.value);
    let cpus = read_cpu_list(report, &fields, "cpus", context.host);
    let memory = fields.integer(report, "memory_mib", memory_range());
    let memory = fields.required(report, "memory_mib", memory);
    let kernel = read_kernel(report, &fields, &context.base);
    let initrd = read_initrd(report, &fields, &context.base);
    let cmdline = read_cmdline(report, &fields);
    let rt_priority = read_rt_priority(report, &fields, criticality.ok());
    let console_log = read_console_log(report, &fields, &context.base);
    let on_reset = fields
        .choice(report, "on_reset", ON_RESET)
        .map(|o| o.map(|o| o.value));
    let max_restarts = fields
        .integer(report, "max_restarts", 0..=u32::MAX)
        .map(|m| m.map_or(rules::DEFAULT_MAX_RESTARTS, |m| m.value));
    let huge_pages = fields
        .boolean(report, "huge_pages")
        .map(|h| h.is_some_and(|h| h.value));
    let owner = Owner {
        base: &context.base,
        name: name
            .as_ref()
            .map(|name| name.value.as_str())
            .map_err(|r| *r),
    };
    let devices = device::read_all(report, &fields, &owner);
    let ports = port::read_all(report, &fields);
    let health = health::read(report, &fields);
    let idle = fields.choice(report, "idle", IDLE);
    let halt_poll_us = read_halt_poll(report, &fields, &idle);
    let lock_memory = fields
        .boolean(report, "lock_memory")
        .map(|l| l.map(|l| l.value));

    let plan = (|| {
        let (kernel, kernel_format) = kernel?;
        Ok(PartitionPlan {
            index,
            name: name.clone()?.value,
            criticality: criticality?,
            vcpus: vcpus?,
            cpus: cpus
                .complete
                .map(|()| cpus.accepted.iter().map(|listed| listed.cpu).collect())?,
            memory_mib: memory.clone()?.value,
            kernel,
            kernel_format,
            initrd: initrd?,
            cmdline: cmdline?,
            rt_priority: rt_priority?,
            console_log: console_log?,
            on_reset: on_reset?.unwrap_or(OnReset::Restart),
            max_restarts: max_restarts?,
            huge_pages: huge_pages?,
            idle: idle.clone()?.map_or(IdlePolicy::Halt, |i| i.value),
            halt_poll_us: halt_poll_us?,
            lock_memory: lock_memory?.unwrap_or(criticality? == Criticality::High),
            windows: Vec::new(),
            housekeeping_cpus: Vec::new(),
            uart_link: None,
            ports: ports.plans()?,
            doorbells: Vec::new(),
            health: health.clone()?,
            devices: devices.plans()?,
        })
    })();
    Draft {
        plan,
        prefix,
        header: span,
        name: name.ok(),
        criticality: criticality.ok(),
        cpus: cpus.accepted,
        memory_mib: memory.ok(),
        idle: idle.ok().flatten(),
        rt_priority: rt_priority.ok(),
        watchdog_ms: health.ok().and_then(|h| h.watchdog_ms),
        devices,
        ports,
    }
}

/// `halt_poll_us`: only with `idle = "halt"` (the default).
fn read_halt_poll(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    idle: &Result<Option<Located<IdlePolicy>>, Reported>,
) -> Result<Option<u32>, Reported> {
    let poll = fields.integer(report, "halt_poll_us", rules::HALT_POLL_US_RANGE)?;
    match (poll, idle) {
        (Some(poll), Ok(Some(idle))) if idle.value == IdlePolicy::Poll => Err(report.at(
            poll.span,
            fields.key("halt_poll_us"),
            "halt_poll_us applies to idle = \"halt\" only; a polling vCPU never halts",
        )),
        (poll, _) => Ok(poll.map(|p| p.value)),
    }
}

/// `partition[i]`, followed by ` ("name")` when the table has a string name.
fn key_prefix(index: usize, table: &DeTable<'_>) -> String {
    match table.get("name").map(|name| name.get_ref()) {
        Some(DeValue::String(name)) => format!("partition[{index}] ({name:?})"),
        _ => format!("partition[{index}]"),
    }
}

fn memory_range() -> std::ops::RangeInclusive<u64> {
    rules::MIN_MEMORY_MIB..=rules::MAX_MEMORY_MIB
}

/// Checks a system or partition name against [`rules::is_valid_name`].
pub(crate) fn check_name(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    name: Option<Located<String>>,
) -> Result<Option<Located<String>>, Reported> {
    match name {
        Some(name) if !rules::is_valid_name(&name.value) => Err(report.at(
            name.span,
            fields.key("name"),
            format!(
                "invalid name {:?}; use 1 to {} characters from a-z, 0-9 and '-', starting \
                 with a letter",
                name.value,
                rules::NAME_MAX_LEN
            ),
        )),
        other => Ok(other),
    }
}

/// A host CPU that passed its own checks, and where it is in the file.
pub(crate) struct ListedCpu {
    pub(crate) cpu: usize,
    pub(crate) span: Range<usize>,
    /// Dotted key of the list element, e.g. `partition[1] ("linux").cpus[0]`.
    pub(crate) key: String,
}

/// A list of host CPUs: the elements that passed, and whether all did.
pub(crate) struct Cpus {
    pub(crate) accepted: Vec<ListedCpu>,
    pub(crate) complete: Result<(), Reported>,
}

/// The required, non-empty list of online host CPUs under key `name` of `fields`.
pub(crate) fn read_cpu_list(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    name: &str,
    host: &HostFacts,
) -> Cpus {
    let list = fields.array(report, name);
    let list = match fields.required(report, name, list) {
        Ok(list) if list.value.is_empty() => Err(report.at(
            list.span,
            fields.key(name),
            "empty list; give at least one host CPU",
        )),
        other => other,
    };
    let mut cpus = Cpus {
        accepted: Vec::new(),
        complete: Ok(()),
    };
    let list = match list {
        Ok(list) => list,
        Err(reported) => {
            cpus.complete = Err(reported);
            return cpus;
        }
    };
    for (i, element) in list.value.iter().enumerate() {
        let key = format!("{}[{i}]", fields.key(name));
        match check_cpu(report, &key, element, host, &cpus.accepted) {
            Ok(cpu) => cpus.accepted.push(ListedCpu {
                cpu: cpu.value,
                span: cpu.span,
                key,
            }),
            Err(reported) => cpus.complete = Err(reported),
        }
    }
    cpus
}

fn check_cpu(
    report: &mut Report<'_>,
    key: &str,
    element: &toml::Spanned<DeValue<'_>>,
    host: &HostFacts,
    earlier: &[ListedCpu],
) -> Result<Located<usize>, Reported> {
    let cpu = integer_in(report, element, key, 0..=u32::MAX)?;
    // A u32 always fits the usize of the 64-bit hosts bulkhead runs on.
    let cpu = Located {
        value: cpu.value as usize,
        span: cpu.span,
    };
    if earlier.iter().any(|listed| listed.cpu == cpu.value) {
        return Err(report.at(
            cpu.span,
            key,
            format!("host CPU {} is listed more than once", cpu.value),
        ));
    }
    if !host.online_cpus.contains(&cpu.value) {
        return Err(report.at(
            cpu.span,
            key,
            format!(
                "host CPU {} does not exist or is offline (online CPUs: {})",
                cpu.value,
                host.online_cpus_display()
            ),
        ));
    }
    Ok(cpu)
}

/// A path key: `Ok(None)` if absent, the resolved path otherwise.
pub(crate) fn read_path(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    name: &str,
    base: &Path,
) -> Result<Option<Located<PathBuf>>, Reported> {
    let Some(path) = fields.string(report, name)? else {
        return Ok(None);
    };
    if path.value.is_empty() {
        return Err(report.at(path.span, fields.key(name), "path is empty"));
    }
    Ok(Some(Located {
        value: files::resolve(base, &path.value),
        span: path.span,
    }))
}

fn read_kernel(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    base: &Path,
) -> Result<(PathBuf, crate::plan::KernelFormat), Reported> {
    let path = read_path(report, fields, "kernel", base);
    let path = fields.required(report, "kernel", path)?;
    match files::kernel_format(&path.value) {
        Ok(format) => Ok((path.value, format)),
        Err(error) => Err(report.at(path.span, fields.key("kernel"), error.to_string())),
    }
}

fn read_initrd(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    base: &Path,
) -> Result<Option<PathBuf>, Reported> {
    let Some(path) = read_path(report, fields, "initrd", base)? else {
        return Ok(None);
    };
    match files::readable(&path.value) {
        Ok(()) => Ok(Some(path.value)),
        Err(error) => Err(report.at(path.span, fields.key("initrd"), error.to_string())),
    }
}

fn read_console_log(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    base: &Path,
) -> Result<Option<PathBuf>, Reported> {
    let Some(path) = read_path(report, fields, "console_log", base)? else {
        return Ok(None);
    };
    match files::creatable(&path.value) {
        Ok(()) => Ok(Some(path.value)),
        Err(error) => Err(report.at(path.span, fields.key("console_log"), error.to_string())),
    }
}

fn read_cmdline(report: &mut Report<'_>, fields: &Fields<'_, '_>) -> Result<String, Reported> {
    let Some(cmdline) = fields.string(report, "cmdline")? else {
        return Ok(String::new());
    };
    match rules::cmdline_problem(&cmdline.value) {
        Some(problem) => Err(report.at(cmdline.span, fields.key("cmdline"), problem)),
        None => Ok(cmdline.value),
    }
}

/// `rt_priority`: 1..=99 and only on a high-criticality partition; 0 for a low one. When the
/// criticality itself is unusable, only the range is checked.
fn read_rt_priority(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    criticality: Option<Criticality>,
) -> Result<u8, Reported> {
    let priority = fields.integer(report, "rt_priority", rules::RT_PRIORITY_RANGE);
    match (criticality, priority) {
        (Some(Criticality::Low), Ok(Some(priority))) => Err(report.at(
            priority.span,
            fields.key("rt_priority"),
            "rt_priority applies only to high-criticality partitions; remove it or make the \
             partition high-criticality",
        )),
        (Some(Criticality::Low), Ok(None)) => Ok(0),
        (_, priority) => priority.map(|p| p.map_or(rules::DEFAULT_RT_PRIORITY, |p| p.value)),
    }
}
