//! The `[partition.health]` table through the public API: defaults, what the plan carries, and
//! each refusal with its key and message.

mod support;

use bulkhead_config::HealthAction;

use support::{Fixture, TWO_PARTITIONS};

/// [`TWO_PARTITIONS`] with a health table given to "linux" (the last partition).
fn linux_health(body: &str) -> String {
    format!("{TWO_PARTITIONS}\n[partition.health]\n{body}")
}

#[test]
fn partition_without_a_health_table_gets_the_defaults() {
    let fixture = Fixture::new();

    let plan = fixture.accept(TWO_PARTITIONS);

    let health = &plan.partitions[1].health;
    assert_eq!(health.watchdog_ms, None);
    assert_eq!(health.deadline_miss_threshold, 1);
    assert_eq!(
        (
            health.on_guest_fault,
            health.on_crash,
            health.on_panic,
            health.on_watchdog,
            health.on_deadline_miss
        ),
        (
            HealthAction::Halt,
            HealthAction::Halt,
            HealthAction::Halt,
            HealthAction::Restart,
            HealthAction::Ignore
        )
    );
}

#[test]
fn declared_watchdog_threshold_and_actions_reach_the_plan() {
    let fixture = Fixture::new();
    let text = linux_health(
        "watchdog_ms = 250\ndeadline_miss_threshold = 5\non_watchdog = \"stop_system\"\n\
         on_deadline_miss = \"log\"\non_panic = \"ignore\"\non_guest_fault = \"restart\"\n\
         on_crash = \"restart\"\n",
    );

    let plan = fixture.accept(&text);

    let health = &plan.partitions[1].health;
    assert_eq!(health.watchdog_ms, Some(250));
    assert_eq!(health.deadline_miss_threshold, 5);
    assert_eq!(health.on_watchdog, HealthAction::StopSystem);
    assert_eq!(health.on_deadline_miss, HealthAction::Log);
    assert_eq!(health.on_panic, HealthAction::Ignore);
    assert_eq!(health.on_guest_fault, HealthAction::Restart);
    assert_eq!(health.on_crash, HealthAction::Restart);
}

#[test]
fn logging_a_guest_fault_is_refused_because_the_partition_has_stopped() {
    let fixture = Fixture::new();

    let problem = fixture.only_problem(&linux_health("on_guest_fault = \"log\"\n"));

    assert_eq!(
        problem.key,
        "partition[1] (\"linux\").health.on_guest_fault"
    );
    assert_eq!(
        problem.message,
        "invalid value \"log\"; accepted values are \"restart\", \"halt\", \"stop_system\""
    );
}

#[test]
fn watchdog_shorter_than_ten_milliseconds_is_refused() {
    let fixture = Fixture::new();

    let problem = fixture.only_problem(&linux_health("watchdog_ms = 5\n"));

    assert_eq!(problem.key, "partition[1] (\"linux\").health.watchdog_ms");
    assert_eq!(
        problem.message,
        "5 is out of range; accepted values are 10 to 3600000"
    );
}

#[test]
fn unknown_key_in_the_health_table_is_refused_with_the_accepted_ones() {
    let fixture = Fixture::new();

    let problem = fixture.only_problem(&linux_health("on_reboot = \"halt\"\n"));

    assert_eq!(problem.key, "partition[1] (\"linux\").health.on_reboot");
    assert!(
        problem
            .message
            .starts_with("unknown key for the health table"),
        "{}",
        problem.message
    );
}

#[test]
fn health_that_is_not_a_table_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{TWO_PARTITIONS}health = 3\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "partition[1] (\"linux\").health");
    assert_eq!(problem.message, "expected a table, found an integer");
}
