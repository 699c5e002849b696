//! How partitions share host CPUs: the `[[schedule]]` tables (ARINC 653 time windows, or
//! fixed priorities), the rule that a high-criticality partition shares a CPU only where a
//! schedule says how, the `idle = "poll"` rule, and the housekeeping CPUs.
//!
//! A host CPU in no schedule belongs to the partitions that list it: to one alone
//! (dedicated), or to several low-criticality ones that the host's scheduler shares out. A
//! time-windows schedule gives each partition on its CPUs windows of a major frame (ARINC 653
//! Part 1, 2.3.2.1 "Partition Scheduling"); its rules follow Xen's `arinc653_sched_set` and
//! a653rs-linux: every window inside the frame, none overlapping, every partition on the CPUs
//! with a window, and none shorter than the host's timer can honour.

use toml::de::DeValue;

use crate::host::HostFacts;
use crate::partition::{read_cpu_list, Draft, ListedCpu};
use crate::plan::{
    CpuWindows, Criticality, Frame, IdlePolicy, PartitionPlan, SchedulePlan, SchedulePolicy,
    WindowPlan,
};
use crate::problem::{Report, Reported};
use crate::read::{wrong_type, Fields, Located};
use crate::rules;

/// Keys a `[[schedule]]` table accepts.
const KEYS: &[&str] = &["cpus", "policy", "major_frame_us", "window"];

/// Keys a window accepts.
const WINDOW_KEYS: &[&str] = &["partition", "offset_us", "duration_us"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    TimeWindows,
    Priority,
}

const POLICIES: &[(&str, Policy)] = &[
    ("time_windows", Policy::TimeWindows),
    ("priority", Policy::Priority),
];

/// A schedule as read: its plan if every part passed, and what the sharing rules need.
pub(super) struct ScheduleDraft {
    plan: Result<SchedulePlan, Reported>,
    prefix: String,
    /// The CPUs that passed, with their places.
    cpus: Vec<ListedCpu>,
    /// `None` when `policy` was unusable.
    policy: Option<Policy>,
}

/// Reads every `[[schedule]]` of the top-level table `top`.
pub(super) fn read_all(
    report: &mut Report<'_>,
    top: &Fields<'_, '_>,
    partitions: &[Draft],
    host: &HostFacts,
) -> Result<Vec<ScheduleDraft>, Reported> {
    let Some(list) = top.array(report, "schedule")? else {
        return Ok(Vec::new());
    };
    let mut schedules: Vec<ScheduleDraft> = Vec::with_capacity(list.value.len());
    let mut failed = Ok(());
    for (index, element) in list.value.iter().enumerate() {
        let prefix = format!("schedule[{index}]");
        let DeValue::Table(table) = element.get_ref() else {
            failed = Err(wrong_type(
                report,
                element.span(),
                prefix,
                "a table",
                element.get_ref(),
            ));
            continue;
        };
        let fields = Fields::of(
            report,
            table,
            element.span(),
            prefix.clone(),
            KEYS,
            "a schedule",
        );
        let draft = read(report, &fields, partitions, host, &schedules);
        schedules.push(draft);
    }
    failed.map(|()| schedules)
}

fn read(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    partitions: &[Draft],
    host: &HostFacts,
    earlier: &[ScheduleDraft],
) -> ScheduleDraft {
    let cpus = read_cpu_list(report, fields, "cpus", host);
    let mut complete = cpus.complete;
    let mut accepted = Vec::with_capacity(cpus.accepted.len());
    for listed in cpus.accepted {
        let owner = earlier
            .iter()
            .find(|schedule| schedule.cpus.iter().any(|c| c.cpu == listed.cpu));
        match owner {
            Some(owner) => {
                complete = Err(report.at(
                    listed.span.clone(),
                    listed.key.clone(),
                    format!(
                        "host CPU {} is already in {}; a host CPU has one schedule",
                        listed.cpu, owner.prefix
                    ),
                ));
            }
            None => accepted.push(listed),
        }
    }
    let policy = fields
        .choice(report, "policy", POLICIES)
        .map(|p| p.map_or(Policy::TimeWindows, |p| p.value));
    let cpu_numbers: Vec<usize> = accepted.iter().map(|c| c.cpu).collect();
    let plan_policy = match policy {
        Ok(Policy::TimeWindows) => read_frame(report, fields, partitions, &cpu_numbers, host)
            .map(SchedulePolicy::TimeWindows),
        Ok(Policy::Priority) => {
            refuse_frame_keys(report, fields).map(|()| SchedulePolicy::Priority)
        }
        Err(reported) => Err(reported),
    };
    let plan = complete.and_then(|()| {
        Ok(SchedulePlan {
            cpus: cpu_numbers,
            policy: plan_policy?,
        })
    });
    ScheduleDraft {
        plan,
        prefix: fields.prefix().to_owned(),
        cpus: accepted,
        policy: policy.ok(),
    }
}

/// A priority schedule has no frame.
fn refuse_frame_keys(report: &mut Report<'_>, fields: &Fields<'_, '_>) -> Result<(), Reported> {
    let mut result = Ok(());
    for key in ["major_frame_us", "window"] {
        if let Some(span) = fields.span_of(key) {
            result = Err(report.at(
                span,
                fields.key(key),
                format!(
                    "{key} applies to policy = \"time_windows\" only; a priority schedule has \
                     no frame"
                ),
            ));
        }
    }
    result
}

/// The major frame and windows of a time-windows schedule on `cpus`.
fn read_frame(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    partitions: &[Draft],
    cpus: &[usize],
    host: &HostFacts,
) -> Result<Frame, Reported> {
    let frame = fields.integer(report, "major_frame_us", rules::MAJOR_FRAME_US_RANGE);
    let frame = fields.required(report, "major_frame_us", frame);
    let list = fields.array(report, "window");
    let list = match fields.required(report, "window", list) {
        Ok(list) if list.value.is_empty() => Err(report.at(
            list.span,
            fields.key("window"),
            "empty list; a time-windows schedule needs at least one window",
        )),
        Ok(list) if list.value.len() > rules::MAX_WINDOWS => Err(report.at(
            list.span,
            fields.key("window"),
            format!(
                "{} windows; at most {} are accepted",
                list.value.len(),
                rules::MAX_WINDOWS
            ),
        )),
        other => other,
    }?;
    let min_us = min_window_us(host);
    let mut windows: Vec<Located<WindowPlan>> = Vec::with_capacity(list.value.len());
    let mut complete = Ok(());
    for (index, element) in list.value.iter().enumerate() {
        let prefix = format!("{}[{index}]", fields.key("window"));
        let DeValue::Table(table) = element.get_ref() else {
            complete = Err(wrong_type(
                report,
                element.span(),
                prefix,
                "a table",
                element.get_ref(),
            ));
            continue;
        };
        let window = Fields::of(
            report,
            table,
            element.span(),
            prefix,
            WINDOW_KEYS,
            "a window",
        );
        let frame_us = frame.as_ref().ok().map(|f| f.value);
        match read_window(report, &window, partitions, cpus, frame_us, min_us) {
            Ok(plan) => windows.push(Located {
                value: plan,
                span: element.span(),
            }),
            Err(reported) => complete = Err(reported),
        }
    }
    let frame = frame?;
    complete?;
    windows.sort_by_key(|w| w.value.offset_us);
    check_overlaps(report, fields, &windows)?;
    check_watchdogs(report, fields, partitions, frame.value, &windows)?;
    Ok(Frame {
        major_frame_us: frame.value,
        windows: windows.into_iter().map(|w| w.value).collect(),
    })
}

/// The shortest window the host can honour: [`rules::MIN_WINDOW_US`], or
/// [`rules::MIN_WINDOW_TIMER_TICKS`] timer ticks if that is longer.
fn min_window_us(host: &HostFacts) -> u32 {
    let ticks_us = host.timer_resolution_ns.map_or(0, |ns| {
        ns.saturating_mul(rules::MIN_WINDOW_TIMER_TICKS) / 1000
    });
    u32::try_from(ticks_us)
        .unwrap_or(u32::MAX)
        .max(rules::MIN_WINDOW_US)
}

fn read_window(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    partitions: &[Draft],
    cpus: &[usize],
    frame_us: Option<u32>,
    min_us: u32,
) -> Result<WindowPlan, Reported> {
    let partition = fields.string(report, "partition");
    let partition = fields
        .required(report, "partition", partition)
        .and_then(|name| check_window_partition(report, fields, partitions, cpus, name));
    let offset = fields.integer(report, "offset_us", 0..=u32::MAX);
    let offset = fields.required(report, "offset_us", offset);
    let duration = fields.integer(report, "duration_us", 0..=u32::MAX);
    let duration = fields
        .required(report, "duration_us", duration)
        .and_then(|d| {
            if d.value >= min_us {
                return Ok(d);
            }
            Err(report.at(
                d.span,
                fields.key("duration_us"),
                format!(
                    "a window of {} µs is too short; the host's timer can honour windows of \
                     {min_us} µs and more",
                    d.value
                ),
            ))
        });
    let (partition, offset, duration) = (partition?, offset?, duration?);
    if let Some(frame_us) = frame_us {
        let end = u64::from(offset.value) + u64::from(duration.value);
        if end > u64::from(frame_us) {
            return Err(report.at(
                duration.span,
                fields.key("duration_us"),
                format!(
                    "the window ends at {end} µs, after the end of the {frame_us} µs major frame"
                ),
            ));
        }
    }
    Ok(WindowPlan {
        partition,
        offset_us: offset.value,
        duration_us: duration.value,
    })
}

/// A window's partition exists and runs on at least one of the schedule's CPUs.
fn check_window_partition(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    partitions: &[Draft],
    cpus: &[usize],
    name: Located<String>,
) -> Result<String, Reported> {
    let key = fields.key("partition");
    let Some(draft) = partitions
        .iter()
        .find(|p| p.name.as_ref().is_some_and(|n| n.value == name.value))
    else {
        let known: Vec<String> = partitions
            .iter()
            .filter_map(|p| p.name.as_ref().map(|n| format!("{:?}", n.value)))
            .collect();
        return Err(report.at(
            name.span,
            key,
            format!(
                "no partition is named {:?} (partitions: {})",
                name.value,
                known.join(", ")
            ),
        ));
    };
    if !draft.cpus.iter().any(|listed| cpus.contains(&listed.cpu)) {
        let theirs: Vec<String> = draft.cpus.iter().map(|c| c.cpu.to_string()).collect();
        return Err(report.at(
            name.span,
            key,
            format!(
                "partition {:?} runs on none of this schedule's host CPUs (its cpus are [{}])",
                name.value,
                theirs.join(", ")
            ),
        ));
    }
    Ok(name.value)
}

/// Sorted windows do not overlap; an overlap is reported at the later window.
fn check_overlaps(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    windows: &[Located<WindowPlan>],
) -> Result<(), Reported> {
    let mut result = Ok(());
    for pair in windows.windows(2) {
        let (first, second) = (&pair[0].value, &pair[1].value);
        let first_end = u64::from(first.offset_us) + u64::from(first.duration_us);
        if u64::from(second.offset_us) < first_end {
            let line = report.line_of(pair[0].span.start);
            result = Err(report.at(
                pair[1].span.clone(),
                fields.key("window"),
                format!(
                    "the window of {:?} at {} µs overlaps the window of {:?} from {} to \
                     {first_end} µs (line {line})",
                    second.partition, second.offset_us, first.partition, first.offset_us
                ),
            ));
        }
    }
    result
}

/// A partition with windows kicks its watchdog only inside them: its `watchdog_ms` spans at
/// least [`rules::WATCHDOG_MIN_FRAMES`] major frames.
fn check_watchdogs(
    report: &mut Report<'_>,
    fields: &Fields<'_, '_>,
    partitions: &[Draft],
    frame_us: u32,
    windows: &[Located<WindowPlan>],
) -> Result<(), Reported> {
    let mut result = Ok(());
    let min_ms = u64::from(frame_us) * rules::WATCHDOG_MIN_FRAMES / 1000;
    for draft in partitions {
        let (Some(name), Some(watchdog_ms)) = (&draft.name, draft.watchdog_ms) else {
            continue;
        };
        let first = windows.iter().find(|w| w.value.partition == name.value);
        if let Some(window) = first.filter(|_| u64::from(watchdog_ms) < min_ms) {
            result = Err(report.at(
                window.span.clone(),
                fields.key("window"),
                format!(
                    "partition {:?} has watchdog_ms = {watchdog_ms}, shorter than {} major \
                     frames ({min_ms} ms): it can kick only inside its windows",
                    name.value,
                    rules::WATCHDOG_MIN_FRAMES
                ),
            ));
        }
    }
    result
}

/// The schedule that has `cpu`, if any.
fn schedule_of(schedules: &[ScheduleDraft], cpu: usize) -> Option<&ScheduleDraft> {
    schedules
        .iter()
        .find(|s| s.cpus.iter().any(|listed| listed.cpu == cpu))
}

/// The rules on the partitions of each host CPU:
/// - a CPU shared with a high-criticality partition is in a schedule; in a priority one, no
///   two high-criticality partitions have the same `rt_priority`;
/// - every partition on a time-partitioned CPU has a window there;
/// - `idle = "poll"` only on CPUs the partition has to itself, outside any schedule.
pub(super) fn check_sharing(
    report: &mut Report<'_>,
    partitions: &[Draft],
    schedules: &[ScheduleDraft],
) -> Result<(), Reported> {
    let mut result = Ok(());
    for (i, later) in partitions.iter().enumerate() {
        for listed in &later.cpus {
            let schedule = schedule_of(schedules, listed.cpu);
            for earlier in &partitions[..i] {
                if !earlier.cpus.iter().any(|other| other.cpu == listed.cpu) {
                    continue;
                }
                let line = report.line_of(earlier.header.start);
                if let Some(message) = sharing_problem(earlier, later, listed.cpu, schedule, line) {
                    result = Err(report.at(listed.span.clone(), listed.key.clone(), message));
                }
            }
            if let Some(problem) = missing_window(later, listed.cpu, schedule) {
                result = Err(report.at(listed.span.clone(), listed.key.clone(), problem));
            }
        }
        if let Some(idle) = later.idle.as_ref().filter(|i| i.value == IdlePolicy::Poll) {
            if let Some(problem) = poll_problem(later, partitions, schedules) {
                result =
                    Err(report.at(idle.span.clone(), format!("{}.idle", later.prefix), problem));
            }
        }
    }
    result
}

fn sharing_problem(
    earlier: &Draft,
    later: &Draft,
    cpu: usize,
    schedule: Option<&ScheduleDraft>,
    earlier_line: usize,
) -> Option<String> {
    let highs = [earlier.criticality, later.criticality]
        .iter()
        .filter(|c| **c == Some(Criticality::High))
        .count();
    if highs == 0 {
        return None;
    }
    match schedule.map(|s| (s, s.policy)) {
        Some((_, Some(Policy::TimeWindows)) | (_, None)) => None,
        Some((schedule, Some(Policy::Priority))) => {
            let same = highs == 2 && earlier.rt_priority == later.rt_priority;
            same.then(|| {
                format!(
                    "host CPU {cpu} ({}, policy \"priority\") runs {} and {} (line \
                     {earlier_line}) at the same rt_priority {}; give them distinct priorities \
                     or time windows",
                    schedule.prefix,
                    describe(later),
                    describe(earlier),
                    later.rt_priority.unwrap_or_default()
                )
            })
        }
        None => Some(format!(
            "host CPU {cpu} is shared by {} and {} (line {earlier_line}); a high-criticality \
             partition has its host CPUs to itself unless a [[schedule]] declares how they are \
             shared (policy \"time_windows\" or \"priority\")",
            describe(later),
            describe(earlier),
        )),
    }
}

fn missing_window(draft: &Draft, cpu: usize, schedule: Option<&ScheduleDraft>) -> Option<String> {
    let schedule = schedule.filter(|s| s.policy == Some(Policy::TimeWindows))?;
    let name = draft.name.as_ref()?;
    let Ok(SchedulePlan {
        policy: SchedulePolicy::TimeWindows(frame),
        ..
    }) = &schedule.plan
    else {
        return None;
    };
    let has = frame.windows.iter().any(|w| w.partition == name.value);
    (!has).then(|| {
        format!(
            "host CPU {cpu} is time-partitioned ({}) but partition {:?} has no window there; \
             its vCPUs would never run",
            schedule.prefix, name.value
        )
    })
}

fn poll_problem(
    draft: &Draft,
    partitions: &[Draft],
    schedules: &[ScheduleDraft],
) -> Option<String> {
    for listed in &draft.cpus {
        if let Some(schedule) = schedule_of(schedules, listed.cpu) {
            return Some(format!(
                "idle = \"poll\" keeps host CPU {} busy, and it is in {}; polling is for CPUs \
                 a partition has to itself",
                listed.cpu, schedule.prefix
            ));
        }
        let other = partitions
            .iter()
            .find(|p| !std::ptr::eq(*p, draft) && p.cpus.iter().any(|c| c.cpu == listed.cpu));
        if let Some(other) = other {
            return Some(format!(
                "idle = \"poll\" keeps host CPU {} busy, and {} uses it too; polling is for \
                 CPUs a partition has to itself",
                listed.cpu,
                describe(other)
            ));
        }
    }
    None
}

/// `high-criticality partition "name"` or `partition "name"`, for messages.
pub(super) fn describe(draft: &Draft) -> String {
    let name = draft
        .name
        .as_ref()
        .map_or_else(|| draft.prefix.clone(), |name| format!("{:?}", name.value));
    match draft.criticality {
        Some(Criticality::High) => format!("high-criticality partition {name}"),
        _ => format!("partition {name}"),
    }
}

/// The host CPUs divided into time windows by the schedules read.
pub(super) fn windowed_cpus(schedules: &[ScheduleDraft]) -> Vec<usize> {
    schedules
        .iter()
        .filter(|s| s.policy == Some(Policy::TimeWindows))
        .flat_map(|s| s.cpus.iter().map(|c| c.cpu))
        .collect()
}

/// The schedules' plans.
pub(super) fn plans(schedules: Vec<ScheduleDraft>) -> Result<Vec<SchedulePlan>, Reported> {
    schedules.into_iter().map(|s| s.plan).collect()
}

/// `[system].housekeeping_cpus`: online, and none of a high-criticality partition nor
/// time-partitioned. `None` when absent.
pub(super) fn read_housekeeping(
    report: &mut Report<'_>,
    system: &Fields<'_, '_>,
    partitions: &[Draft],
    schedules: &[ScheduleDraft],
    host: &HostFacts,
) -> Result<Option<Vec<usize>>, Reported> {
    if system.span_of("housekeeping_cpus").is_none() {
        return Ok(None);
    }
    let cpus = read_cpu_list(report, system, "housekeeping_cpus", host);
    let mut result = cpus.complete;
    for listed in &cpus.accepted {
        let high = partitions.iter().find(|p| {
            p.criticality == Some(Criticality::High) && p.cpus.iter().any(|c| c.cpu == listed.cpu)
        });
        if let Some(high) = high {
            result = Err(report.at(
                listed.span.clone(),
                listed.key.clone(),
                format!(
                    "host CPU {} runs {}; housekeeping threads there would disturb it",
                    listed.cpu,
                    describe(high)
                ),
            ));
        } else if let Some(schedule) =
            schedule_of(schedules, listed.cpu).filter(|s| s.policy == Some(Policy::TimeWindows))
        {
            result = Err(report.at(
                listed.span.clone(),
                listed.key.clone(),
                format!(
                    "host CPU {} is time-partitioned ({}); housekeeping threads would run \
                     outside its windows",
                    listed.cpu, schedule.prefix
                ),
            ));
        }
    }
    result.map(|()| Some(cpus.accepted.iter().map(|c| c.cpu).collect()))
}

/// The default housekeeping CPUs (see [`crate::plan::SystemPlan::housekeeping_cpus`]).
pub(super) fn default_housekeeping(
    plans: &[PartitionPlan],
    schedules: &[SchedulePlan],
    host: &HostFacts,
) -> Vec<usize> {
    let high = |cpu: &usize| {
        plans
            .iter()
            .any(|p| p.criticality == Criticality::High && p.cpus.contains(cpu))
    };
    let windowed = |cpu: &usize| {
        schedules
            .iter()
            .any(|s| matches!(s.policy, SchedulePolicy::TimeWindows(_)) && s.cpus.contains(cpu))
    };
    let online = &host.online_cpus;
    let best: Vec<usize> = online
        .iter()
        .copied()
        .filter(|c| !high(c) && !windowed(c))
        .collect();
    if !best.is_empty() {
        return best;
    }
    let next: Vec<usize> = online.iter().copied().filter(|c| !high(c)).collect();
    if !next.is_empty() {
        return next;
    }
    online.clone()
}

/// Gives each partition its windows, CPU by CPU, and the housekeeping CPUs.
pub(super) fn fill_partitions(
    plans: &mut [PartitionPlan],
    schedules: &[SchedulePlan],
    housekeeping: &[usize],
) {
    for plan in plans.iter_mut() {
        plan.housekeeping_cpus = housekeeping.to_vec();
        for schedule in schedules {
            let SchedulePolicy::TimeWindows(frame) = &schedule.policy else {
                continue;
            };
            let windows: Vec<(u32, u32)> = frame
                .windows
                .iter()
                .filter(|w| w.partition == plan.name)
                .map(|w| (w.offset_us, w.duration_us))
                .collect();
            for cpu in schedule.cpus.iter().filter(|c| plan.cpus.contains(c)) {
                plan.windows.push(CpuWindows {
                    cpu: *cpu,
                    major_frame_us: frame.major_frame_us,
                    windows: windows.clone(),
                });
            }
        }
    }
}
