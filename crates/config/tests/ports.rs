//! `[[partition.port]]`, `[[channel]]` and `[[doorbell]]` tables through the public API: the
//! ports, channels and doorbells in the plan, and one test per reason for refusal, each
//! pinning the line, key and message.

mod support;

use bulkhead_config::{PortDirection, PortKind, Problem, SystemPlan};

use support::{edit, Fixture};

use PortDirection::{Destination, Source};
use PortKind::{Queuing, Sampling};

/// Partition `name` (low criticality, CPU 0) followed by `tables`, its ports and devices.
fn partition(name: &str, tables: &str) -> String {
    format!(
        "[[partition]]\nname = \"{name}\"\ncriticality = \"low\"\nvcpus = 1\ncpus = [0]\n\
         memory_mib = 32\nkernel = \"guests/rt-demo.elf\"\n\n{tables}\n"
    )
}

/// Partitions "control", "linux" and "logger" with their tables, then `tail`.
fn system(control: &str, linux: &str, logger: &str, tail: &str) -> String {
    format!(
        "[system]\nname = \"ports\"\n\n{}{}{}{tail}",
        partition("control", control),
        partition("linux", linux),
        partition("logger", logger)
    )
}

const CONTROL: &str = "\
[[partition.port]]
name = \"attitude\"
kind = \"sampling\"
direction = \"source\"
max_message_bytes = 64

[[partition.port]]
name = \"commands\"
kind = \"queuing\"
direction = \"destination\"
max_message_bytes = 128
depth = 8
";

const LINUX: &str = "\
[[partition.port]]
name = \"attitude\"
kind = \"sampling\"
direction = \"destination\"
max_message_bytes = 64
refresh_period_us = 200000

[[partition.port]]
name = \"commands\"
kind = \"queuing\"
direction = \"source\"
max_message_bytes = 128
depth = 8
";

const LOGGER: &str = "\
[[partition.port]]
name = \"attitude\"
kind = \"sampling\"
direction = \"destination\"
max_message_bytes = 64
refresh_period_us = 1000000

[[partition.port]]
name = \"spool-out\"
kind = \"queuing\"
direction = \"source\"
max_message_bytes = 512
depth = 32

[[partition.port]]
name = \"spool-in\"
kind = \"queuing\"
direction = \"destination\"
max_message_bytes = 512
depth = 32
";

const CHANNELS: &str = "\
[[channel]]
name = \"attitude\"
source = \"control.attitude\"
destinations = [\"linux.attitude\", \"logger.attitude\"]

[[channel]]
name = \"commands\"
source = \"linux.commands\"
destinations = [\"control.commands\"]

[[channel]]
name = \"spool\"
source = \"logger.spool-out\"
destinations = [\"logger.spool-in\"]
";

const DOORBELLS: &str = "
[[doorbell]]
name = \"wake\"
from = \"linux\"
to = \"control\"

[[doorbell]]
name = \"tick\"
from = \"control\"
to = \"logger\"
";

/// A vsock device that forwards the APEX service's port to a socket.
const VSOCK_653: &str = "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n\
                         ports = [{ port = 653, socket = \"run/apex.sock\" }]\n";

/// Every table of the three kinds, all valid.
fn valid() -> String {
    system(CONTROL, LINUX, LOGGER, &format!("{CHANNELS}{DOORBELLS}"))
}

/// [`valid`] with `control`, `linux` and `logger` added to those partitions and `tail` to the
/// end.
fn valid_with(control: &str, linux: &str, logger: &str, tail: &str) -> String {
    system(
        &format!("{CONTROL}\n{control}"),
        &format!("{LINUX}\n{linux}"),
        &format!("{LOGGER}\n{logger}"),
        &format!("{CHANNELS}{DOORBELLS}\n{tail}"),
    )
}

fn sampling_source(name: &str, max_message_bytes: u32) -> String {
    format!(
        "[[partition.port]]\nname = \"{name}\"\nkind = \"sampling\"\ndirection = \"source\"\n\
         max_message_bytes = {max_message_bytes}\n"
    )
}

fn sampling_destination(name: &str, max_message_bytes: u32) -> String {
    format!(
        "[[partition.port]]\nname = \"{name}\"\nkind = \"sampling\"\n\
         direction = \"destination\"\nmax_message_bytes = {max_message_bytes}\n\
         refresh_period_us = 100000\n"
    )
}

fn queuing_port(name: &str, direction: &str, max_message_bytes: u32, depth: u32) -> String {
    format!(
        "[[partition.port]]\nname = \"{name}\"\nkind = \"queuing\"\ndirection = \"{direction}\"\n\
         max_message_bytes = {max_message_bytes}\ndepth = {depth}\n"
    )
}

fn channel(name: &str, source: &str, destinations: &str) -> String {
    format!(
        "[[channel]]\nname = \"{name}\"\nsource = \"{source}\"\ndestinations = {destinations}\n"
    )
}

/// The 1-based line of the one occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "{needle:?} must occur exactly once"
    );
    let start = text.find(needle).unwrap_or_default();
    text[..start].matches('\n').count() + 1
}

/// `(line, key, message)` of a problem, for one comparison.
fn pinned(problem: &Problem) -> (usize, &str, &str) {
    (problem.line, problem.key.as_str(), problem.message.as_str())
}

type PortRow<'p> = (
    &'p str,
    PortKind,
    PortDirection,
    u32,
    Option<u64>,
    u32,
    &'p str,
);

/// The ports of partition `index`: name, kind, direction, max_message_bytes,
/// refresh_period_us, depth, channel.
fn ports(plan: &SystemPlan, index: usize) -> Vec<PortRow<'_>> {
    plan.partitions[index]
        .ports
        .iter()
        .map(|port| {
            (
                port.name.as_str(),
                port.kind,
                port.direction,
                port.max_message_bytes,
                port.refresh_period_us,
                port.depth,
                port.channel.as_str(),
            )
        })
        .collect()
}

/// The doorbells of partition `index`, by name.
fn doorbells_of(plan: &SystemPlan, index: usize) -> Vec<&str> {
    plan.partitions[index]
        .doorbells
        .iter()
        .map(|doorbell| doorbell.name.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Accepted descriptions
// ---------------------------------------------------------------------------------------------

#[test]
fn ports_are_in_the_plan_in_file_order_with_their_channel() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&valid());

    assert_eq!(
        ports(&plan, 0),
        vec![
            ("attitude", Sampling, Source, 64, None, 1, "attitude"),
            ("commands", Queuing, Destination, 128, None, 8, "commands"),
        ]
    );
    assert_eq!(
        ports(&plan, 1),
        vec![
            (
                "attitude",
                Sampling,
                Destination,
                64,
                Some(200_000),
                1,
                "attitude"
            ),
            ("commands", Queuing, Source, 128, None, 8, "commands"),
        ]
    );
}

#[test]
fn a_channel_may_join_two_ports_of_one_partition() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&valid());

    assert_eq!(
        ports(&plan, 2),
        vec![
            (
                "attitude",
                Sampling,
                Destination,
                64,
                Some(1_000_000),
                1,
                "attitude"
            ),
            ("spool-out", Queuing, Source, 512, None, 32, "spool"),
            ("spool-in", Queuing, Destination, 512, None, 32, "spool"),
        ]
    );
}

#[test]
fn channels_are_in_the_plan_in_file_order_with_the_source_port_settings() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&valid());

    let channels: Vec<(&str, PortKind, u32, u32)> = plan
        .channels
        .iter()
        .map(|c| (c.name.as_str(), c.kind, c.max_message_bytes, c.depth))
        .collect();
    assert_eq!(
        channels,
        vec![
            ("attitude", Sampling, 64, 1),
            ("commands", Queuing, 128, 8),
            ("spool", Queuing, 512, 32),
        ]
    );
}

#[test]
fn a_channel_names_its_source_and_destinations_in_file_order() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&valid());

    let channel = &plan.channels[0];
    let source = (
        channel.source.partition.as_str(),
        channel.source.port.as_str(),
    );
    let destinations: Vec<(&str, &str)> = channel
        .destinations
        .iter()
        .map(|d| (d.partition.as_str(), d.port.as_str()))
        .collect();
    assert_eq!(source, ("control", "attitude"));
    assert_eq!(
        destinations,
        vec![("linux", "attitude"), ("logger", "attitude")]
    );
}

#[test]
fn doorbells_are_in_the_plan_in_file_order() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&valid());

    let doorbells: Vec<(&str, &str, &str)> = plan
        .doorbells
        .iter()
        .map(|d| (d.name.as_str(), d.from.as_str(), d.to.as_str()))
        .collect();
    assert_eq!(
        doorbells,
        vec![("wake", "linux", "control"), ("tick", "control", "logger")]
    );
}

#[test]
fn each_partition_has_the_doorbells_it_rings_or_is_rung_by() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&valid());

    assert_eq!(doorbells_of(&plan, 0), vec!["wake", "tick"]);
    assert_eq!(doorbells_of(&plan, 1), vec!["wake"]);
    assert_eq!(doorbells_of(&plan, 2), vec!["tick"]);
}

#[test]
fn a_description_without_ports_channels_or_doorbells_has_none() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&system("", "", "", ""));

    assert!(plan.channels.is_empty());
    assert!(plan.doorbells.is_empty());
    assert!(plan
        .partitions
        .iter()
        .all(|p| p.ports.is_empty() && p.doorbells.is_empty()));
}

#[test]
fn a_partition_without_ports_or_doorbells_may_forward_vsock_port_653() {
    let fixture = Fixture::new();
    let text = system("", "", VSOCK_653, "");

    let plan = fixture.accept(&text);

    assert_eq!(plan.partitions[2].devices.len(), 1);
}

#[test]
fn a_partition_with_ports_may_forward_other_vsock_ports() {
    let fixture = Fixture::new();
    let vsock = edit(VSOCK_653, "port = 653", "port = 654");

    let plan = fixture.accept(&valid_with("", &vsock, "", ""));

    assert_eq!(plan.partitions[1].devices.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Refused ports
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_key_in_a_port_is_refused_with_the_accepted_keys() {
    let fixture = Fixture::new();
    let text = system(
        &edit(
            CONTROL,
            "max_message_bytes = 64\n",
            "max_message_bytes = 64\npriority = 3\n",
        ),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "priority = 3"),
            "partition[0] (\"control\").port[0].priority",
            "unknown key for a port; accepted keys are name, kind, direction, \
             max_message_bytes, refresh_period_us, depth"
        )
    );
}

#[test]
fn port_without_kind_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = system(
        &edit(CONTROL, "kind = \"sampling\"\n", ""),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "name = \"control\"") + 7,
            "partition[0] (\"control\").port[0].kind",
            "required key is missing"
        )
    );
}

#[test]
fn port_with_an_unknown_kind_is_refused_with_the_accepted_kinds() {
    let fixture = Fixture::new();
    let text = system(
        &edit(CONTROL, "kind = \"sampling\"", "kind = \"blackboard\""),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "blackboard"),
            "partition[0] (\"control\").port[0].kind",
            "invalid value \"blackboard\"; accepted values are \"sampling\", \"queuing\""
        )
    );
}

#[test]
fn port_with_an_unknown_direction_is_refused_with_the_accepted_directions() {
    let fixture = Fixture::new();
    let text = system(
        &edit(CONTROL, "direction = \"source\"", "direction = \"out\""),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        problem.message,
        "invalid value \"out\"; accepted values are \"source\", \"destination\""
    );
}

#[test]
fn message_size_given_as_a_string_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        &edit(
            CONTROL,
            "max_message_bytes = 64",
            "max_message_bytes = \"64\"",
        ),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "\"64\""),
            "partition[0] (\"control\").port[0].max_message_bytes",
            "expected an integer, found a string"
        )
    );
}

#[test]
fn message_size_beyond_the_abi_limit_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        &edit(
            CONTROL,
            "max_message_bytes = 64",
            "max_message_bytes = 8193",
        ),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "partition[0] (\"control\").port[0].max_message_bytes",
            "8193 is out of range; accepted values are 1 to 8192"
        )
    );
}

#[test]
fn zero_depth_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        &edit(LINUX, "depth = 8", "depth = 0"),
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "partition[1] (\"linux\").port[1].depth",
            "0 is out of range; accepted values are 1 to 1024"
        )
    );
}

#[test]
fn refresh_period_below_100_us_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        &edit(
            LINUX,
            "refresh_period_us = 200000",
            "refresh_period_us = 50",
        ),
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "partition[1] (\"linux\").port[0].refresh_period_us",
            "50 is out of range; accepted values are 100 to 3600000000"
        )
    );
}

#[test]
fn invalid_port_name_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        &edit(CONTROL, "name = \"commands\"", "name = \"Commands\""),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "Commands"),
            "partition[0] (\"control\").port[1].name",
            "invalid port name \"Commands\"; use 1 to 32 characters from a-z, 0-9 and '-', \
             starting with a letter"
        )
    );
}

#[test]
fn port_name_longer_than_32_bytes_is_refused() {
    let long = "c".repeat(33);
    let fixture = Fixture::new();
    let text = system(
        &edit(
            CONTROL,
            "name = \"commands\"",
            &format!("name = \"{long}\""),
        ),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        problem.message,
        format!(
            "invalid port name \"{long}\"; use 1 to 32 characters from a-z, 0-9 and '-', \
             starting with a letter"
        )
    );
}

#[test]
fn port_name_used_twice_in_a_partition_is_refused_at_the_second() {
    let fixture = Fixture::new();
    let text = valid_with(&sampling_source("attitude", 64), "", "", "");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "name = \"control\"") + 21,
            "partition[0] (\"control\").port[2].name",
            &*format!(
                "duplicate port name \"attitude\"; partition[0] (\"control\").port[0] at line \
                 {} already has it",
                line_of(&text, "name = \"control\"") + 7
            )
        )
    );
}

#[test]
fn refresh_period_on_a_sampling_source_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        &edit(
            CONTROL,
            "max_message_bytes = 64\n",
            "max_message_bytes = 64\nrefresh_period_us = 1000\n",
        ),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "refresh_period_us = 1000\n"),
            "partition[0] (\"control\").port[0].refresh_period_us",
            "refresh_period_us applies to sampling destination ports only; a source port does \
             not age the messages it sends"
        )
    );
}

#[test]
fn refresh_period_on_a_queuing_port_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        &edit(
            CONTROL,
            "depth = 8\n",
            "depth = 8\nrefresh_period_us = 1000\n",
        ),
        LINUX,
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "partition[0] (\"control\").port[1].refresh_period_us",
            "refresh_period_us applies to sampling destination ports only; a queuing port \
             keeps each message until it is received"
        )
    );
}

#[test]
fn depth_on_a_sampling_port_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        &edit(
            LINUX,
            "refresh_period_us = 200000\n",
            "refresh_period_us = 200000\ndepth = 4\n",
        ),
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "depth = 4"),
            "partition[1] (\"linux\").port[0].depth",
            "depth applies to queuing ports only; a sampling port holds one message, the \
             latest"
        )
    );
}

#[test]
fn sampling_destination_without_refresh_period_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        &edit(LINUX, "refresh_period_us = 200000\n", ""),
        LOGGER,
        CHANNELS,
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "name = \"linux\"") + 7,
            "partition[1] (\"linux\").port[0].refresh_period_us",
            "required key is missing; a sampling destination port needs it (a message older \
             than refresh_period_us is invalid)"
        )
    );
}

#[test]
fn queuing_port_without_depth_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = system(&edit(CONTROL, "depth = 8\n", ""), LINUX, LOGGER, CHANNELS);

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "name = \"control\"") + 13,
            "partition[0] (\"control\").port[1].depth",
            "required key is missing; a queuing port needs it (the messages the port holds)"
        )
    );
}

#[test]
fn destination_port_in_no_channel_is_refused_at_its_table() {
    let fixture = Fixture::new();
    let text = valid_with("", &sampling_destination("status", 16), "", "");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "name = \"status\"") - 1,
            "partition[1] (\"linux\").port[2]",
            "destination port \"status\" has no writer (no [[channel]] names it)"
        )
    );
}

#[test]
fn source_port_in_no_channel_is_refused_at_its_table() {
    let fixture = Fixture::new();
    let text = valid_with("", "", &queuing_port("status", "source", 16, 4), "");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "name = \"status\"") - 1,
            "partition[2] (\"logger\").port[3]",
            "source port \"status\" has no reader (no [[channel]] reads it)"
        )
    );
}

#[test]
fn port_that_is_not_a_table_is_refused() {
    let fixture = Fixture::new();
    let text = edit(
        &system("", "", "", ""),
        "name = \"linux\"\n",
        "name = \"linux\"\nport = [3]\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "partition[1] (\"linux\").port[0]",
            "expected a table, found an integer"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Refused channels
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_key_in_a_channel_is_refused_with_the_accepted_keys() {
    let fixture = Fixture::new();
    let text = edit(
        &valid(),
        "name = \"spool\"\n",
        "name = \"spool\"\ncapacity = 3\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[2].capacity",
            "unknown key for a channel; accepted keys are name, source, destinations"
        )
    );
}

#[test]
fn channel_without_a_source_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        LINUX,
        LOGGER,
        &edit(CHANNELS, "source = \"logger.spool-out\"\n", ""),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "name = \"spool\"") - 1,
            "channel[2].source",
            "required key is missing"
        )
    );
}

#[test]
fn invalid_channel_name_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        LINUX,
        LOGGER,
        &edit(CHANNELS, "name = \"spool\"", "name = \"Spool\""),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[2].name",
            "invalid name \"Spool\"; use 1 to 32 characters from a-z, 0-9 and '-', starting \
             with a letter"
        )
    );
}

#[test]
fn channel_name_used_twice_is_refused_at_the_second() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        LINUX,
        LOGGER,
        &edit(CHANNELS, "name = \"spool\"", "name = \"commands\""),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "source = \"logger.spool-out\"") - 1,
            "channel[2].name",
            &*format!(
                "duplicate channel name \"commands\"; channel[1] at line {} already has it",
                line_of(&text, "source = \"linux.commands\"") - 1
            )
        )
    );
}

#[test]
fn reference_without_a_port_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        LINUX,
        LOGGER,
        &edit(
            CHANNELS,
            "source = \"linux.commands\"",
            "source = \"linux\"",
        ),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "source = \"linux\""),
            "channel[1].source",
            "invalid port reference \"linux\"; write \"PARTITION.PORT\", a partition and one of \
             its ports, e.g. \"control.attitude\""
        )
    );
}

#[test]
fn reference_to_an_unknown_partition_is_refused_with_the_partitions() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        LINUX,
        LOGGER,
        &edit(CHANNELS, "\"logger.attitude\"", "\"loger.attitude\""),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[0].destinations[1]",
            "no partition is named \"loger\" (partitions: \"control\", \"linux\", \"logger\")"
        )
    );
}

#[test]
fn reference_to_an_unknown_port_is_refused_with_the_partitions_ports() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        LINUX,
        LOGGER,
        &edit(CHANNELS, "\"logger.spool-in\"", "\"logger.spool\""),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[2].destinations[0]",
            "partition \"logger\" has no port named \"spool\" (its ports: \"attitude\", \
             \"spool-out\", \"spool-in\")"
        )
    );
}

#[test]
fn reference_to_a_partition_without_ports_says_it_has_none() {
    let fixture = Fixture::new();
    let text = system(
        &sampling_source("status", 8),
        "",
        "",
        &channel("status", "control.status", "[\"linux.status\"]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        problem.message,
        "partition \"linux\" has no port named \"status\" (it declares no [[partition.port]])"
    );
}

#[test]
fn source_naming_a_destination_port_is_refused() {
    let fixture = Fixture::new();
    let text = valid_with(
        "",
        &sampling_destination("status", 16),
        &sampling_destination("status", 16),
        &channel("status", "linux.status", "[\"logger.status\"]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "source = \"linux.status\""),
            "channel[3].source",
            &*format!(
                "\"linux.status\" is a destination port (line {}); the source of a channel is \
                 a source port",
                line_of(&text, "name = \"linux\"") + 21
            )
        )
    );
}

#[test]
fn destination_naming_a_source_port_is_refused() {
    let fixture = Fixture::new();
    let text = valid_with(
        "",
        &sampling_source("status", 16),
        &sampling_source("status", 16),
        &channel("status", "linux.status", "[\"logger.status\"]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "[\"logger.status\"]"),
            "channel[3].destinations[0]",
            &*format!(
                "\"logger.status\" is a source port (line {}); the destinations of a channel \
                 are destination ports",
                line_of(&text, "name = \"logger\"") + 28
            )
        )
    );
}

#[test]
fn ports_of_different_kinds_in_one_channel_are_refused() {
    let fixture = Fixture::new();
    let text = valid_with(
        "",
        &sampling_source("status", 16),
        &queuing_port("status", "destination", 16, 4),
        &channel("status", "linux.status", "[\"logger.status\"]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[3].destinations[0]",
            &*format!(
                "\"logger.status\" is a queuing port but the source \"linux.status\" is a \
                 sampling port (line {}); the ports of a channel are all of one kind",
                line_of(&text, "name = \"linux\"") + 21
            )
        )
    );
}

#[test]
fn destination_with_another_message_size_than_the_source_is_refused() {
    let fixture = Fixture::new();
    let text = valid_with(
        "",
        &sampling_source("status", 16),
        &sampling_destination("status", 24),
        &channel("status", "linux.status", "[\"logger.status\"]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[3].destinations[0]",
            &*format!(
                "\"logger.status\" has max_message_bytes = 24 but the source \"linux.status\" \
                 has 16 (line {}); the ports of a channel carry messages of one size",
                line_of(&text, "max_message_bytes = 16")
            )
        )
    );
}

#[test]
fn queuing_channel_with_a_second_destination_is_refused_at_it() {
    let fixture = Fixture::new();
    let text = valid_with(
        &queuing_port("jobs", "destination", 16, 4),
        &queuing_port("jobs", "source", 16, 4),
        &queuing_port("jobs", "destination", 16, 4),
        &channel("jobs", "linux.jobs", "[\"control.jobs\", \"logger.jobs\"]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[3].destinations[1]",
            "\"logger.jobs\" is a second destination; a queuing channel has one (each message \
             is received once): give this port a channel of its own"
        )
    );
}

#[test]
fn queuing_destination_with_another_depth_than_the_source_is_refused() {
    let fixture = Fixture::new();
    let text = valid_with(
        &queuing_port("jobs", "destination", 16, 2),
        &queuing_port("jobs", "source", 16, 4),
        "",
        &channel("jobs", "linux.jobs", "[\"control.jobs\"]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[3].destinations[0]",
            &*format!(
                "\"control.jobs\" has depth = 2 but the source \"linux.jobs\" has 4 (line {}); \
                 the two ports of a queuing channel hold the same number of messages",
                line_of(&text, "depth = 4")
            )
        )
    );
}

#[test]
fn source_already_in_a_channel_is_refused_naming_that_channel() {
    let fixture = Fixture::new();
    let text = valid_with(
        "",
        &sampling_destination("copy", 64),
        "",
        &channel("copy", "control.attitude", "[\"linux.copy\"]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "name = \"copy\"\nsource") + 1,
            "channel[3].source",
            &*format!(
                "\"control.attitude\" is already in channel[0] (line {}); a port is in one \
                 channel at most",
                line_of(&text, "name = \"attitude\"\nsource") + 1
            )
        )
    );
}

#[test]
fn destination_already_in_a_channel_is_refused_naming_that_channel() {
    let fixture = Fixture::new();
    let text = valid_with(
        "",
        &sampling_source("copy", 64),
        "",
        &channel("copy", "linux.copy", "[\"logger.attitude\"]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[3].destinations[0]",
            &*format!(
                "\"logger.attitude\" is already in channel[0] (line {}); a port is in one \
                 channel at most",
                line_of(&text, "\"linux.attitude\", \"logger.attitude\"")
            )
        )
    );
}

#[test]
fn port_named_twice_in_one_channel_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        LINUX,
        LOGGER,
        &edit(
            CHANNELS,
            "\"logger.attitude\"]",
            "\"logger.attitude\", \"linux.attitude\"]",
        ),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "destinations = [\"linux.attitude\""),
            "channel[0].destinations[2]",
            &*format!(
                "\"linux.attitude\" is listed more than once in this channel (line {})",
                line_of(&text, "destinations = [\"linux.attitude\"")
            )
        )
    );
}

#[test]
fn channel_with_no_destinations_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        LINUX,
        LOGGER,
        &edit(CHANNELS, "[\"control.commands\"]", "[]"),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[1].destinations",
            "empty list; give at least one destination port"
        )
    );
}

#[test]
fn destination_that_is_not_a_string_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        CONTROL,
        LINUX,
        LOGGER,
        &edit(
            CHANNELS,
            "[\"control.commands\"]",
            "[\"control.commands\", 7]",
        ),
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "channel[1].destinations[1]",
            "expected a string, found an integer"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Refused doorbells
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_key_in_a_doorbell_is_refused_with_the_accepted_keys() {
    let fixture = Fixture::new();
    let text = edit(
        &valid(),
        "to = \"logger\"\n",
        "to = \"logger\"\nvector = 5\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "vector = 5"),
            "doorbell[1].vector",
            "unknown key for a doorbell; accepted keys are name, from, to"
        )
    );
}

#[test]
fn doorbell_without_a_receiver_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = edit(&valid(), "to = \"logger\"\n", "");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "name = \"tick\"") - 1,
            "doorbell[1].to",
            "required key is missing"
        )
    );
}

#[test]
fn doorbell_from_an_unknown_partition_is_refused_with_the_partitions() {
    let fixture = Fixture::new();
    let text = edit(&valid(), "from = \"linux\"", "from = \"linus\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "linus"),
            "doorbell[0].from",
            "no partition is named \"linus\" (partitions: \"control\", \"linux\", \"logger\")"
        )
    );
}

#[test]
fn doorbell_to_its_own_partition_is_refused() {
    let fixture = Fixture::new();
    let text = edit(&valid(), "to = \"logger\"", "to = \"control\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "doorbell[1].to",
            "a doorbell rings another partition; \"control\" cannot ring itself"
        )
    );
}

#[test]
fn invalid_doorbell_name_is_refused() {
    let fixture = Fixture::new();
    let text = edit(&valid(), "name = \"tick\"", "name = \"tick tock\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "doorbell[1].name",
            "invalid doorbell name \"tick tock\"; use 1 to 32 characters from a-z, 0-9 and \
             '-', starting with a letter"
        )
    );
}

#[test]
fn doorbell_name_used_twice_is_refused_at_the_second() {
    let fixture = Fixture::new();
    let text = edit(&valid(), "name = \"tick\"", "name = \"wake\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "from = \"control\"") - 1,
            "doorbell[1].name",
            &*format!(
                "duplicate doorbell name \"wake\"; doorbell[0] at line {} already has it",
                line_of(&text, "from = \"linux\"") - 1
            )
        )
    );
}

#[test]
fn doorbell_named_like_a_port_of_its_ringer_is_refused() {
    let fixture = Fixture::new();
    let text = edit(&valid(), "name = \"tick\"", "name = \"commands\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "doorbell[1].name",
            &*format!(
                "partition \"control\" has a port named \"commands\" (line {}); a partition's \
                 ports and doorbells share one namespace, as its guest opens both by name",
                line_of(&text, "name = \"control\"") + 13
            )
        )
    );
}

#[test]
fn doorbell_named_like_a_port_of_its_receiver_is_refused() {
    let fixture = Fixture::new();
    let text = edit(&valid(), "name = \"tick\"", "name = \"spool-in\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.key.as_str(), problem.message.as_str()),
        (
            "doorbell[1].name",
            &*format!(
                "partition \"logger\" has a port named \"spool-in\" (line {}); a partition's \
                 ports and doorbells share one namespace, as its guest opens both by name",
                line_of(&text, "name = \"logger\"") + 21
            )
        )
    );
}

// ---------------------------------------------------------------------------------------------
// The APEX service's vsock port
// ---------------------------------------------------------------------------------------------

#[test]
fn partition_with_ports_forwarding_vsock_port_653_is_refused() {
    let fixture = Fixture::new();
    let text = valid_with("", VSOCK_653, "", "");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            line_of(&text, "port = 653"),
            "partition[1] (\"linux\").device[0].ports[0].port",
            "vsock port 653 is where the guest reaches its partition's ports and doorbells (the \
             APEX service); a partition with ports or doorbells cannot forward it to a socket"
        )
    );
}

#[test]
fn partition_with_only_doorbells_forwarding_vsock_port_653_is_refused() {
    let fixture = Fixture::new();
    let text = system(
        "",
        "",
        VSOCK_653,
        "[[doorbell]]\nname = \"wake\"\nfrom = \"control\"\nto = \"logger\"\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        problem.key,
        "partition[2] (\"logger\").device[0].ports[0].port"
    );
}

#[test]
fn every_bad_table_is_reported() {
    let fixture = Fixture::new();
    let text = valid_with(
        "",
        &sampling_destination("status", 16),
        "",
        "[[doorbell]]\nname = \"bell\"\nfrom = \"linux\"\nto = \"linux\"\n",
    );

    let problems = fixture.refuse(&text);

    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["partition[1] (\"linux\").port[2]", "doorbell[2].to"]);
}
