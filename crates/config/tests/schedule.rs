//! `[[schedule]]` tables, the rules on sharing host CPUs, the idle policy, memory locking and
//! the housekeeping CPUs, through the public API.

mod support;

use bulkhead_config::{parse, HostFacts, IdlePolicy, SchedulePolicy};

use support::{edit, host, Fixture, TWO_PARTITIONS};

/// Two partitions on host CPU 1: "a" (high criticality) and "b" (low), plus `tail`.
fn sharing_cpu_1(tail: &str) -> String {
    format!(
        r#"[system]
name = "windows"

[[partition]]
name = "a"
criticality = "high"
vcpus = 1
cpus = [1]
memory_mib = 32
kernel = "guests/rt-demo.elf"

[[partition]]
name = "b"
criticality = "low"
vcpus = 1
cpus = [1]
memory_mib = 32
kernel = "guests/rt-demo.elf"
{tail}"#
    )
}

/// A 20 ms frame on host CPU 1: "a" from 0 to 5 ms, "b" from 10 to 15 ms.
const TWO_WINDOWS: &str = r#"
[[schedule]]
cpus = [1]
major_frame_us = 20000
window = [
  { partition = "a", offset_us = 0, duration_us = 5000 },
  { partition = "b", offset_us = 10000, duration_us = 5000 },
]
"#;

#[test]
fn time_windows_reach_each_partition_of_the_cpu() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&sharing_cpu_1(TWO_WINDOWS));

    let b = &plan.partitions[1];
    assert_eq!(b.windows.len(), 1);
    assert_eq!(b.windows[0].cpu, 1);
    assert_eq!(b.windows[0].major_frame_us, 20000);
    assert_eq!(b.windows[0].windows, vec![(10000, 5000)]);
    assert!(matches!(
        &plan.schedules[0].policy,
        SchedulePolicy::TimeWindows(frame) if frame.windows.len() == 2
    ));
}

#[test]
fn windows_given_as_schedule_window_tables_are_sorted_by_offset() {
    let fixture = Fixture::new();
    let tail = r#"
[[schedule]]
cpus = [1]
major_frame_us = 20000

[[schedule.window]]
partition = "b"
offset_us = 10000
duration_us = 5000

[[schedule.window]]
partition = "a"
offset_us = 0
duration_us = 5000
"#;

    let plan = fixture.accept(&sharing_cpu_1(tail));

    let SchedulePolicy::TimeWindows(frame) = &plan.schedules[0].policy else {
        panic!("not a time-windows schedule");
    };
    let order: Vec<&str> = frame.windows.iter().map(|w| w.partition.as_str()).collect();
    assert_eq!(order, ["a", "b"]);
}

#[test]
fn high_criticality_partition_may_share_a_cpu_declared_priority_scheduled() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&sharing_cpu_1(
        "\n[[schedule]]\ncpus = [1]\npolicy = \"priority\"\n",
    ));

    assert_eq!(plan.schedules[0].policy, SchedulePolicy::Priority);
    assert!(plan.partitions.iter().all(|p| p.windows.is_empty()));
}

#[test]
fn two_high_criticality_partitions_at_the_same_priority_on_a_priority_cpu_are_refused() {
    let fixture = Fixture::new();
    let text = edit(
        &sharing_cpu_1("\n[[schedule]]\ncpus = [1]\npolicy = \"priority\"\n"),
        "name = \"b\"\ncriticality = \"low\"",
        "name = \"b\"\ncriticality = \"high\"",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "partition[1] (\"b\").cpus[0]");
    assert_eq!(
        problem.message,
        "host CPU 1 (schedule[0], policy \"priority\") runs high-criticality partition \"b\" \
         and high-criticality partition \"a\" (line 4) at the same rt_priority 50; give them \
         distinct priorities or time windows"
    );
}

#[test]
fn overlapping_windows_are_refused_at_the_later_one() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1(&edit(TWO_WINDOWS, "offset_us = 10000", "offset_us = 4000"));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "schedule[0].window");
    assert_eq!(problem.line, 25);
    assert_eq!(
        problem.message,
        "the window of \"b\" at 4000 µs overlaps the window of \"a\" from 0 to 5000 µs (line 24)"
    );
}

#[test]
fn window_ending_after_the_major_frame_is_refused() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1(&edit(TWO_WINDOWS, "offset_us = 10000", "offset_us = 16000"));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "schedule[0].window[1].duration_us");
    assert_eq!(
        problem.message,
        "the window ends at 21000 µs, after the end of the 20000 µs major frame"
    );
}

#[test]
fn window_shorter_than_the_minimum_is_refused() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1(&edit(
        TWO_WINDOWS,
        "offset_us = 0, duration_us = 5000",
        "offset_us = 0, duration_us = 100",
    ));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "schedule[0].window[0].duration_us");
    assert_eq!(
        problem.message,
        "a window of 100 µs is too short; the host's timer can honour windows of 200 µs and more"
    );
}

#[test]
fn windows_a_coarse_host_timer_cannot_honour_are_refused() {
    let fixture = Fixture::new();
    let coarse = HostFacts {
        timer_resolution_ns: Some(4_000_000),
        ..host()
    };

    let problems = parse(&fixture.description(), &sharing_cpu_1(TWO_WINDOWS), &coarse)
        .unwrap_err()
        .problems;

    assert_eq!(problems.len(), 2);
    assert!(problems[0]
        .message
        .ends_with("the host's timer can honour windows of 400000 µs and more"));
}

#[test]
fn partition_on_a_time_partitioned_cpu_without_a_window_is_refused() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1(&edit(
        TWO_WINDOWS,
        "  { partition = \"b\", offset_us = 10000, duration_us = 5000 },\n",
        "",
    ));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "partition[1] (\"b\").cpus[0]");
    assert_eq!(
        problem.message,
        "host CPU 1 is time-partitioned (schedule[0]) but partition \"b\" has no window there; \
         its vCPUs would never run"
    );
}

#[test]
fn window_of_an_unknown_partition_is_refused() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1(&edit(TWO_WINDOWS, "partition = \"b\"", "partition = \"c\""));

    let problems = fixture.refuse(&text);

    assert_eq!(problems[0].key, "schedule[0].window[1].partition");
    assert_eq!(
        problems[0].message,
        "no partition is named \"c\" (partitions: \"a\", \"b\")"
    );
}

#[test]
fn window_of_a_partition_on_other_cpus_is_refused() {
    let fixture = Fixture::new();
    let text = format!(
        "{TWO_PARTITIONS}\n[[schedule]]\ncpus = [0]\nmajor_frame_us = 10000\nwindow = [\n  \
         {{ partition = \"control\", offset_us = 0, duration_us = 5000 }},\n  \
         {{ partition = \"linux\", offset_us = 5000, duration_us = 5000 }},\n]\n"
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "schedule[0].window[0].partition");
    assert_eq!(
        problem.message,
        "partition \"control\" runs on none of this schedule's host CPUs (its cpus are [1])"
    );
}

#[test]
fn cpu_in_two_schedules_is_refused_at_the_second() {
    let fixture = Fixture::new();
    let tail = format!("{TWO_WINDOWS}\n[[schedule]]\ncpus = [1]\npolicy = \"priority\"\n");

    let problem = fixture.only_problem(&sharing_cpu_1(&tail));

    assert_eq!(problem.key, "schedule[1].cpus[0]");
    assert_eq!(
        problem.message,
        "host CPU 1 is already in schedule[0]; a host CPU has one schedule"
    );
}

#[test]
fn time_windows_schedule_without_a_major_frame_is_refused() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1(&edit(TWO_WINDOWS, "major_frame_us = 20000\n", ""));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "schedule[0].major_frame_us");
    assert_eq!(problem.message, "required key is missing");
}

#[test]
fn major_frame_above_ten_seconds_is_refused() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1(&edit(TWO_WINDOWS, "20000", "20000000"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        problem.message,
        "20000000 is out of range; accepted values are 1000 to 10000000"
    );
}

#[test]
fn time_windows_schedule_with_an_empty_window_list_is_refused() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1("\n[[schedule]]\ncpus = [1]\nmajor_frame_us = 20000\nwindow = []\n");

    let problems = fixture.refuse(&text);

    assert_eq!(problems[0].key, "schedule[0].window");
    assert_eq!(
        problems[0].message,
        "empty list; a time-windows schedule needs at least one window"
    );
}

#[test]
fn priority_schedule_with_windows_is_refused() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1(&edit(
        TWO_WINDOWS,
        "cpus = [1]\n",
        "cpus = [1]\npolicy = \"priority\"\n",
    ));

    let problems = fixture.refuse(&text);

    assert_eq!(
        support::keys(&problems),
        ["schedule[0].major_frame_us", "schedule[0].window"]
    );
    assert_eq!(
        problems[1].message,
        "window applies to policy = \"time_windows\" only; a priority schedule has no frame"
    );
}

#[test]
fn watchdog_shorter_than_two_major_frames_is_refused() {
    let fixture = Fixture::new();
    let text = edit(
        &sharing_cpu_1(TWO_WINDOWS),
        "memory_mib = 32\nkernel = \"guests/rt-demo.elf\"\n\n[[partition]]\nname = \"b\"",
        "memory_mib = 32\nkernel = \"guests/rt-demo.elf\"\n[partition.health]\nwatchdog_ms = 30\n\n\
         [[partition]]\nname = \"b\"",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "schedule[0].window");
    assert_eq!(
        problem.message,
        "partition \"a\" has watchdog_ms = 30, shorter than 2 major frames (40 ms): it can kick \
         only inside its windows"
    );
}

#[test]
fn idle_poll_on_a_cpu_the_partition_has_to_itself_reaches_the_plan() {
    let fixture = Fixture::new();
    let text = edit(
        TWO_PARTITIONS,
        "cpus = [1]\n",
        "cpus = [1]\nidle = \"poll\"\n",
    );

    let plan = fixture.accept(&text);

    assert_eq!(plan.partitions[0].idle, IdlePolicy::Poll);
    assert_eq!(plan.partitions[1].idle, IdlePolicy::Halt);
}

#[test]
fn idle_poll_on_a_time_partitioned_cpu_is_refused() {
    let fixture = Fixture::new();
    let text = edit(
        &sharing_cpu_1(TWO_WINDOWS),
        "name = \"a\"\ncriticality = \"high\"",
        "name = \"a\"\ncriticality = \"high\"\nidle = \"poll\"",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "partition[0] (\"a\").idle");
    assert_eq!(
        problem.message,
        "idle = \"poll\" keeps host CPU 1 busy, and it is in schedule[0]; polling is for CPUs a \
         partition has to itself"
    );
}

#[test]
fn halt_polling_with_idle_poll_is_refused() {
    let fixture = Fixture::new();
    let text = edit(
        TWO_PARTITIONS,
        "cpus = [1]\n",
        "cpus = [1]\nidle = \"poll\"\nhalt_poll_us = 50\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "partition[0] (\"control\").halt_poll_us");
}

#[test]
fn memory_is_locked_by_default_for_high_criticality_only() {
    let fixture = Fixture::new();

    let plan = fixture.accept(TWO_PARTITIONS);

    assert!(plan.partitions[0].lock_memory);
    assert!(!plan.partitions[1].lock_memory);
}

#[test]
fn housekeeping_defaults_to_the_cpus_no_high_criticality_partition_uses() {
    let fixture = Fixture::new();

    let plan = fixture.accept(TWO_PARTITIONS);

    assert_eq!(plan.housekeeping_cpus, vec![0, 2, 3]);
    assert_eq!(plan.partitions[0].housekeeping_cpus, vec![0, 2, 3]);
}

#[test]
fn housekeeping_on_a_high_criticality_cpu_is_refused() {
    let fixture = Fixture::new();
    let text = edit(
        TWO_PARTITIONS,
        "name = \"demo\"\n",
        "name = \"demo\"\nhousekeeping_cpus = [0, 1]\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "system.housekeeping_cpus[1]");
    assert_eq!(
        problem.message,
        "host CPU 1 runs high-criticality partition \"control\"; housekeeping threads there \
         would disturb it"
    );
}

#[test]
fn unknown_key_in_a_schedule_is_refused() {
    let fixture = Fixture::new();
    let text = sharing_cpu_1(&edit(TWO_WINDOWS, "major_frame_us", "major_frame"));

    let problems = fixture.refuse(&text);

    let unknown = problems
        .iter()
        .find(|p| p.key == "schedule[0].major_frame")
        .expect("the unknown key is reported");
    assert_eq!(
        unknown.message,
        "unknown key for a schedule; accepted keys are cpus, policy, major_frame_us, window"
    );
}
