//! A partition's `[partition.health]` table: the health monitor's watchdog, its deadline-miss
//! threshold, and the action taken for each error class (ARINC 653 health monitoring, at
//! partition level).

use crate::plan::{HealthAction, HealthPlan};
use crate::problem::{Report, Reported};
use crate::read::Fields;
use crate::rules;

/// Keys the table accepts.
pub(crate) const KEYS: &[&str] = &[
    "watchdog_ms",
    "deadline_miss_threshold",
    "on_guest_fault",
    "on_crash",
    "on_panic",
    "on_watchdog",
    "on_deadline_miss",
];

/// Actions for an error that leaves the partition running.
const WHILE_RUNNING: &[(&str, HealthAction)] = &[
    ("ignore", HealthAction::Ignore),
    ("log", HealthAction::Log),
    ("restart", HealthAction::Restart),
    ("halt", HealthAction::Halt),
    ("stop_system", HealthAction::StopSystem),
];

/// Actions for an error that already stopped the partition.
const ONCE_STOPPED: &[(&str, HealthAction)] = &[
    ("restart", HealthAction::Restart),
    ("halt", HealthAction::Halt),
    ("stop_system", HealthAction::StopSystem),
];

/// Reads the `health` table of the partition whose keys `fields` views (the defaults when
/// there is none).
pub(crate) fn read(
    report: &mut Report<'_>,
    partition: &Fields<'_, '_>,
) -> Result<HealthPlan, Reported> {
    let defaults = HealthPlan::default();
    let Some(table) = partition.table(report, "health")? else {
        return Ok(defaults);
    };
    let fields = Fields::of(
        report,
        table.value,
        table.span,
        partition.key("health"),
        KEYS,
        "the health table",
    );
    let watchdog_ms = fields
        .integer(report, "watchdog_ms", rules::WATCHDOG_MS_RANGE)
        .map(|w| w.map(|w| w.value));
    let threshold = fields
        .integer(
            report,
            "deadline_miss_threshold",
            rules::DEADLINE_MISS_THRESHOLD_RANGE,
        )
        .map(|t| t.map_or(defaults.deadline_miss_threshold, |t| t.value));
    let mut action = |name: &str, accepted: &[(&str, HealthAction)], default: HealthAction| {
        fields
            .choice(report, name, accepted)
            .map(|a| a.map_or(default, |a| a.value))
    };
    let on_guest_fault = action("on_guest_fault", ONCE_STOPPED, defaults.on_guest_fault);
    let on_crash = action("on_crash", ONCE_STOPPED, defaults.on_crash);
    let on_panic = action("on_panic", WHILE_RUNNING, defaults.on_panic);
    let on_watchdog = action("on_watchdog", WHILE_RUNNING, defaults.on_watchdog);
    let on_deadline_miss = action("on_deadline_miss", WHILE_RUNNING, defaults.on_deadline_miss);
    Ok(HealthPlan {
        watchdog_ms: watchdog_ms?,
        deadline_miss_threshold: threshold?,
        on_guest_fault: on_guest_fault?,
        on_crash: on_crash?,
        on_panic: on_panic?,
        on_watchdog: on_watchdog?,
        on_deadline_miss: on_deadline_miss?,
    })
}
