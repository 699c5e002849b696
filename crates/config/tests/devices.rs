//! The `[[partition.device]]` tables through the public API: what each kind becomes in the
//! plan, and one test per reason for refusal, each pinning the line, key and message.

mod support;

use std::path::PathBuf;

use bulkhead_config::{DeviceKind, NetBackend, Problem, SystemPlan};

use support::{edit, keys, Fixture, TWO_PARTITIONS};

/// [`TWO_PARTITIONS`] with `devices` given to "linux"; the first line of `devices` is line 23.
fn linux_with(devices: &str) -> String {
    format!("{TWO_PARTITIONS}\n{devices}")
}

/// [`TWO_PARTITIONS`] with `control` given to "control", from line 13, and `linux` to "linux",
/// from line 24 + the number of lines of `control`.
fn both_with(control: &str, linux: &str) -> String {
    let text = edit(
        TWO_PARTITIONS,
        "duration_s=0\"\n",
        &format!("duration_s=0\"\n\n{control}"),
    );
    format!("{text}\n{linux}")
}

/// `(line, key, message)` of a problem, for one comparison.
fn pinned(problem: &Problem) -> (usize, &str, &str) {
    (problem.line, problem.key.as_str(), problem.message.as_str())
}

/// The `kind` of the `index`-th device of "linux".
fn linux_device(plan: &SystemPlan, index: usize) -> &DeviceKind {
    &plan.partitions[1].devices[index].kind
}

/// A canonical path in the fixture, as problems about shared files show it.
fn canonical(fixture: &Fixture, relative: &str) -> PathBuf {
    std::fs::canonicalize(fixture.path(relative)).unwrap()
}

const BLOCK: &str = "[[partition.device]]\nkind = \"block\"\npath = \"disk.img\"\n";
const RNG: &str = "[[partition.device]]\nkind = \"rng\"\n";
const CONSOLE: &str = "[[partition.device]]\nkind = \"console\"\n";

// ---------------------------------------------------------------------------------------------
// Accepted devices
// ---------------------------------------------------------------------------------------------

#[test]
fn description_without_devices_has_no_devices() {
    let fixture = Fixture::new();

    let plan = fixture.accept(TWO_PARTITIONS);

    assert_eq!(
        (
            plan.partitions[0].devices.len(),
            plan.partitions[1].devices.len()
        ),
        (0, 0)
    );
}

#[test]
fn devices_are_kept_in_file_order_with_their_index_and_kind() {
    let fixture = Fixture::new();
    let text = linux_with(&format!(
        "{BLOCK}{RNG}{CONSOLE}\
         [[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:12:34:01\"\ntap = \"bh0\"\n\
         [[partition.device]]\nkind = \"vsock\"\ncid = 3\n"
    ));

    let plan = fixture.accept(&text);

    let devices: Vec<(usize, &str)> = plan.partitions[1]
        .devices
        .iter()
        .map(|device| (device.index, device.kind.as_str()))
        .collect();
    assert_eq!(
        devices,
        vec![
            (0, "block"),
            (1, "rng"),
            (2, "console"),
            (3, "net"),
            (4, "vsock")
        ]
    );
}

#[test]
fn block_device_defaults_to_writable_with_the_partition_serial() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&linux_with(BLOCK));

    let DeviceKind::Block(block) = linux_device(&plan, 0) else {
        panic!("not a block device: {plan:?}");
    };
    assert_eq!(
        (&block.path, block.read_only, block.id.as_str()),
        (&fixture.path("disk.img"), false, "linux-vda")
    );
}

#[test]
fn second_block_device_gets_the_next_letter_whatever_lies_between() {
    let fixture = Fixture::new();
    let text = linux_with(&format!(
        "{BLOCK}{RNG}[[partition.device]]\nkind = \"block\"\npath = \"data.img\"\n"
    ));

    let plan = fixture.accept(&text);

    let DeviceKind::Block(block) = linux_device(&plan, 2) else {
        panic!("not a block device: {plan:?}");
    };
    assert_eq!(block.id, "linux-vdb");
}

#[test]
fn block_device_keeps_a_given_serial_and_read_only() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}read_only = true\nid = \"data disk #1\"\n"));

    let plan = fixture.accept(&text);

    let DeviceKind::Block(block) = linux_device(&plan, 0) else {
        panic!("not a block device: {plan:?}");
    };
    assert_eq!((block.read_only, block.id.as_str()), (true, "data disk #1"));
}

#[test]
fn block_device_batch_window_is_left_to_the_partition_unless_given() {
    let fixture = Fixture::new();

    let default = fixture.accept(&linux_with(BLOCK));
    let given = fixture.accept(&linux_with(&format!("{BLOCK}batch_us = 0\n")));

    let (DeviceKind::Block(default), DeviceKind::Block(given)) =
        (linux_device(&default, 0), linux_device(&given, 0))
    else {
        panic!("not block devices");
    };
    assert_eq!((default.batch_us, given.batch_us), (None, Some(0)));
}

#[test]
fn block_batch_window_above_ten_milliseconds_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}batch_us = 10001\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (pinned(&problem).1, problem.message.as_str()),
        (
            "partition[1] (\"linux\").device[0].batch_us",
            "10001 is out of range; accepted values are 0 to 10000"
        )
    );
}

#[test]
fn block_device_has_four_io_threads_unless_given() {
    let fixture = Fixture::new();

    let default = fixture.accept(&linux_with(BLOCK));
    let given = fixture.accept(&linux_with(&format!("{BLOCK}io_threads = 0\n")));

    let (DeviceKind::Block(default), DeviceKind::Block(given)) =
        (linux_device(&default, 0), linux_device(&given, 0))
    else {
        panic!("not block devices");
    };
    assert_eq!((default.io_threads, given.io_threads), (4, 0));
}

#[test]
fn block_io_threads_above_64_are_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}io_threads = 65\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (pinned(&problem).1, problem.message.as_str()),
        (
            "partition[1] (\"linux\").device[0].io_threads",
            "65 is out of range; accepted values are 0 to 64"
        )
    );
}

#[test]
fn rng_device_gives_4096_bytes_per_request_by_default() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&linux_with(RNG));

    let DeviceKind::Rng(rng) = linux_device(&plan, 0) else {
        panic!("not an rng device: {plan:?}");
    };
    assert_eq!(rng.max_bytes_per_request, 4096);
}

#[test]
fn rng_device_accepts_one_mib_per_request() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{RNG}max_bytes_per_request = 1_048_576\n"));

    let plan = fixture.accept(&text);

    let DeviceKind::Rng(rng) = linux_device(&plan, 0) else {
        panic!("not an rng device: {plan:?}");
    };
    assert_eq!(rng.max_bytes_per_request, 1 << 20);
}

#[test]
fn net_device_with_a_tap_backend_is_read() {
    let fixture = Fixture::new();
    let text = linux_with(
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:AB:cd:01\"\ntap = \"bh-linux0\"\n",
    );

    let plan = fixture.accept(&text);

    let DeviceKind::Net(net) = linux_device(&plan, 0) else {
        panic!("not a net device: {plan:?}");
    };
    assert_eq!(
        (net.mac, &net.backend),
        (
            [0x52, 0x54, 0x00, 0xab, 0xcd, 0x01],
            &NetBackend::Tap {
                name: "bh-linux0".to_owned()
            }
        )
    );
}

#[test]
fn net_devices_linked_both_ways_are_accepted() {
    let fixture = Fixture::new();
    let text = both_with(
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:00:00:01\"\nlink = \"linux\"\n",
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:00:00:02\"\nlink = \"control\"\n",
    );

    let plan = fixture.accept(&text);

    let backends: Vec<&NetBackend> = plan
        .partitions
        .iter()
        .map(|partition| match &partition.devices[0].kind {
            DeviceKind::Net(net) => &net.backend,
            other => panic!("not a net device: {other:?}"),
        })
        .collect();
    assert_eq!(
        backends,
        vec![
            &NetBackend::Link {
                partition: "linux".to_owned()
            },
            &NetBackend::Link {
                partition: "control".to_owned()
            }
        ]
    );
}

#[test]
fn vsock_device_resolves_its_sockets_and_keeps_port_order() {
    let fixture = Fixture::new();
    let absolute = fixture.path("run/high.sock");
    let text = linux_with(&format!(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 0xFFFF_FFFE\nports = [\n\
         {{ port = 1234, socket = \"run/vsock-1234.sock\" }},\n\
         {{ port = 0, socket = {:?} }},\n\
         {{ port = 0xFFFF_FFFE, socket = \"run/max.sock\" }},\n]\n",
        absolute.display().to_string()
    ));

    let plan = fixture.accept(&text);

    let DeviceKind::Vsock(vsock) = linux_device(&plan, 0) else {
        panic!("not a vsock device: {plan:?}");
    };
    let ports: Vec<(u32, &PathBuf)> = vsock
        .ports
        .iter()
        .map(|port| (port.port, &port.socket))
        .collect();
    assert_eq!(
        (vsock.cid, ports),
        (
            0xFFFF_FFFE,
            vec![
                (1234, &fixture.path("run/vsock-1234.sock")),
                (0, &absolute),
                (0xFFFF_FFFE, &fixture.path("run/max.sock"))
            ]
        )
    );
}

#[test]
fn vsock_device_without_ports_has_none() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&linux_with(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n",
    ));

    let DeviceKind::Vsock(vsock) = linux_device(&plan, 0) else {
        panic!("not a vsock device: {plan:?}");
    };
    assert_eq!((vsock.cid, vsock.ports.len()), (3, 0));
}

#[test]
fn same_port_in_two_vsock_devices_is_accepted() {
    let fixture = Fixture::new();
    let text = both_with(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n\
         ports = [{ port = 22, socket = \"run/control.sock\" }]\n",
        "[[partition.device]]\nkind = \"vsock\"\ncid = 4\n\
         ports = [{ port = 22, socket = \"run/linux.sock\" }]\n",
    );

    let plan = fixture.accept(&text);

    assert_eq!(plan.partitions[1].devices.len(), 1);
}

#[test]
fn read_only_devices_may_share_an_image() {
    let fixture = Fixture::new();
    let text = both_with(
        &format!("{BLOCK}read_only = true\n"),
        &format!("{BLOCK}read_only = true\n{BLOCK}read_only = true\n"),
    );

    let plan = fixture.accept(&text);

    assert_eq!(plan.partitions[1].devices.len(), 2);
}

#[test]
fn image_that_cannot_be_written_is_accepted_read_only() {
    let fixture = Fixture::new();
    let text = linux_with(
        "[[partition.device]]\nkind = \"block\"\n\
         path = \"/sys/devices/system/cpu/online\"\nread_only = true\n",
    );

    let plan = fixture.accept(&text);

    assert_eq!(plan.partitions[1].devices.len(), 1);
}

#[test]
fn devices_may_be_written_as_an_inline_array() {
    let fixture = Fixture::new();
    let text =
        format!("{TWO_PARTITIONS}device = [{{ kind = \"console\" }}, {{ kind = \"rng\" }}]\n");

    let plan = fixture.accept(&text);

    let kinds: Vec<&str> = plan.partitions[1]
        .devices
        .iter()
        .map(|device| device.kind.as_str())
        .collect();
    assert_eq!(kinds, vec!["console", "rng"]);
}

#[test]
fn nineteen_devices_are_accepted() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}read_only = true\n").repeat(19));

    let plan = fixture.accept(&text);

    assert_eq!(plan.partitions[1].devices.len(), 19);
}

// ---------------------------------------------------------------------------------------------
// Refused devices: structure, kinds and keys
// ---------------------------------------------------------------------------------------------

#[test]
fn device_without_kind_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\npath = \"disk.img\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            23,
            "partition[1] (\"linux\").device[0].kind",
            "required key is missing"
        )
    );
}

#[test]
fn unknown_kind_is_refused_listing_the_accepted_kinds() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"disk\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            24,
            "partition[1] (\"linux\").device[0].kind",
            "invalid value \"disk\"; accepted values are \"block\", \"rng\", \"console\", \
             \"net\", \"vsock\""
        )
    );
}

#[test]
fn kind_that_is_not_a_string_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = 1\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            24,
            "partition[1] (\"linux\").device[0].kind",
            "expected a string, found an integer"
        )
    );
}

#[test]
fn key_of_another_kind_is_an_unknown_key_for_this_kind() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}mac = \"52:54:00:12:34:01\"\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].mac",
            "unknown key for a block device; accepted keys are kind, path, read_only, id, batch_us, io_threads"
        )
    );
}

#[test]
fn misspelled_device_key_gets_a_suggestion() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}read-only = true\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].read-only",
            "unknown key for a block device (did you mean \"read_only\"?)"
        )
    );
}

#[test]
fn console_device_accepts_no_other_key() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{CONSOLE}path = \"disk.img\"\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            25,
            "partition[1] (\"linux\").device[0].path",
            "unknown key for a console device; accepted keys are kind"
        )
    );
}

#[test]
fn key_that_no_kind_accepts_is_refused_even_when_the_kind_is_unknown() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"disk\"\nsize_mib = 8\n");

    let problems = fixture.refuse(&text);

    assert_eq!(
        (
            keys(&problems),
            problems[1]
                .message
                .starts_with("unknown key; accepted keys are kind, path")
        ),
        (
            vec![
                "partition[1] (\"linux\").device[0].kind",
                "partition[1] (\"linux\").device[0].size_mib"
            ],
            true
        )
    );
}

#[test]
fn device_written_as_a_plain_table_is_refused_as_wrong_type() {
    let fixture = Fixture::new();
    let text = linux_with("[partition.device]\nkind = \"rng\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            23,
            "partition[1] (\"linux\").device",
            "expected an array, found a table"
        )
    );
}

#[test]
fn device_array_element_that_is_not_a_table_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{TWO_PARTITIONS}device = [\"rng\"]\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            22,
            "partition[1] (\"linux\").device[0]",
            "expected a table, found a string"
        )
    );
}

#[test]
fn twenty_devices_are_refused_at_the_twentieth() {
    let fixture = Fixture::new();
    // Each device is four lines long, so the twentieth starts at 23 + 19 * 4.
    let text = linux_with(&format!("{BLOCK}read_only = true\n").repeat(20));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            99,
            "partition[1] (\"linux\").device[19]",
            "too many devices: 20 declared, at most 19 accepted (each device needs an \
             interrupt line of its own)"
        )
    );
}

#[test]
fn second_rng_device_is_refused_naming_the_first() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{RNG}{RNG}"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[1].kind",
            "a partition may have only one rng device; partition[1] (\"linux\").device[0] at \
             line 24 already is one"
        )
    );
}

#[test]
fn second_console_device_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{CONSOLE}{RNG}{CONSOLE}"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (28, "partition[1] (\"linux\").device[2].kind")
    );
}

#[test]
fn second_vsock_device_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n\
         [[partition.device]]\nkind = \"vsock\"\ncid = 4\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (27, "partition[1] (\"linux\").device[1].kind")
    );
}

// ---------------------------------------------------------------------------------------------
// Refused devices: block
// ---------------------------------------------------------------------------------------------

#[test]
fn block_device_without_path_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"block\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            23,
            "partition[1] (\"linux\").device[0].path",
            "required key is missing"
        )
    );
}

#[test]
fn missing_image_is_refused_with_resolved_path_and_os_error() {
    let fixture = Fixture::new();
    let text = linux_with(&edit(BLOCK, "disk.img", "absent.img"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message),
        (
            25,
            "partition[1] (\"linux\").device[0].path",
            format!(
                "cannot read {:?}: No such file or directory (os error 2)",
                fixture.path("absent.img")
            )
        )
    );
}

#[test]
fn image_that_is_a_folder_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&edit(BLOCK, "disk.img", "logs"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.message),
        (
            25,
            format!(
                "{:?} is not a regular file (it is a folder)",
                fixture.path("logs")
            )
        )
    );
}

#[test]
fn writable_image_that_cannot_be_opened_for_writing_is_refused() {
    let fixture = Fixture::new();
    // sysfs refuses to open a read-only attribute for writing even to root, whom file modes
    // do not stop.
    let text = linux_with(&edit(BLOCK, "disk.img", "/sys/devices/system/cpu/online"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (
            problem.line,
            problem.key.as_str(),
            problem
                .message
                .starts_with("cannot open \"/sys/devices/system/cpu/online\" for writing: "),
            problem
                .message
                .ends_with("; set read_only = true to use it read-only")
        ),
        (25, "partition[1] (\"linux\").device[0].path", true, true)
    );
}

#[test]
fn empty_image_path_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&edit(BLOCK, "disk.img", ""));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            25,
            "partition[1] (\"linux\").device[0].path",
            "path is empty"
        )
    );
}

#[test]
fn read_only_that_is_not_a_boolean_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}read_only = \"yes\"\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].read_only",
            "expected a boolean, found a string"
        )
    );
}

#[test]
fn block_serial_longer_than_twenty_bytes_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}id = \"serial-0123456789abcd\"\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].id",
            "invalid id \"serial-0123456789abcd\"; use 1 to 20 printable ASCII characters \
             (space to '~')"
        )
    );
}

#[test]
fn empty_block_serial_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}id = \"\"\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (26, "partition[1] (\"linux\").device[0].id")
    );
}

#[test]
fn block_serial_with_a_control_character_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}id = \"disk\\t1\"\n"));

    let problem = fixture.only_problem(&text);

    assert!(
        problem.message.starts_with("invalid id \"disk\\t1\""),
        "{}",
        problem.message
    );
}

#[test]
fn one_image_written_by_two_devices_is_refused_naming_both_even_through_a_symlink() {
    let fixture = Fixture::new();
    std::os::unix::fs::symlink(fixture.path("disk.img"), fixture.path("alias.img")).unwrap();
    let text = both_with(BLOCK, &edit(BLOCK, "disk.img", "alias.img"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message),
        (
            29,
            "partition[1] (\"linux\").device[0].path",
            format!(
                "image {:?} is also used by partition[0] (\"control\").device[0] (line 15): two \
                 writers; an image may be shared only between read-only devices",
                canonical(&fixture, "disk.img")
            )
        )
    );
}

#[test]
fn image_written_by_one_device_and_read_by_another_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{BLOCK}read_only = true\n{BLOCK}"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message),
        (
            29,
            "partition[1] (\"linux\").device[1].path",
            format!(
                "image {:?} is also used by partition[1] (\"linux\").device[0] (line 25): a \
                 writer and a reader; an image may be shared only between read-only devices",
                canonical(&fixture, "disk.img")
            )
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Refused devices: rng
// ---------------------------------------------------------------------------------------------

#[test]
fn rng_request_size_of_zero_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{RNG}max_bytes_per_request = 0\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            25,
            "partition[1] (\"linux\").device[0].max_bytes_per_request",
            "0 is out of range; accepted values are 1 to 1048576"
        )
    );
}

#[test]
fn rng_request_size_above_one_mib_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(&format!("{RNG}max_bytes_per_request = 1048577\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.message.as_str()),
        (
            25,
            "1048577 is out of range; accepted values are 1 to 1048576"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Refused devices: net
// ---------------------------------------------------------------------------------------------

/// A net device of "linux" with `mac` and `backend` (a `tap = …` or `link = …` line); the mac
/// is on line 25 and the backend on line 26.
fn linux_net(mac: &str, backend: &str) -> String {
    linux_with(&format!(
        "[[partition.device]]\nkind = \"net\"\nmac = \"{mac}\"\n{backend}\n"
    ))
}

#[test]
fn net_device_without_mac_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"net\"\ntap = \"bh0\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            23,
            "partition[1] (\"linux\").device[0].mac",
            "required key is missing"
        )
    );
}

#[test]
fn mac_with_five_octets_is_refused_with_the_expected_form() {
    let fixture = Fixture::new();
    let text = linux_net("52:54:00:12:34", "tap = \"bh0\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            25,
            "partition[1] (\"linux\").device[0].mac",
            "invalid MAC address \"52:54:00:12:34\"; write six two-digit hexadecimal octets \
             separated by ':', e.g. \"52:54:00:12:34:01\""
        )
    );
}

#[test]
fn mac_that_is_not_a_string_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"net\"\nmac = 0x525400\ntap = \"bh0\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.message.as_str()),
        (25, "expected a string, found an integer")
    );
}

#[test]
fn multicast_mac_is_refused() {
    let fixture = Fixture::new();
    let text = linux_net("53:54:00:12:34:01", "tap = \"bh0\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            25,
            "partition[1] (\"linux\").device[0].mac",
            "53:54:00:12:34:01 is a multicast address (bit 0 of the first octet is set); a \
             device needs a unicast address"
        )
    );
}

#[test]
fn all_zero_mac_is_refused() {
    let fixture = Fixture::new();
    let text = linux_net("00:00:00:00:00:00", "tap = \"bh0\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.message.as_str()),
        (25, "00:00:00:00:00:00 is not a usable address")
    );
}

#[test]
fn mac_used_twice_in_the_system_is_refused_naming_the_first() {
    let fixture = Fixture::new();
    let text = both_with(
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:12:34:0a\"\ntap = \"bh0\"\n",
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:12:34:0A\"\ntap = \"bh1\"\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            30,
            "partition[1] (\"linux\").device[0].mac",
            "MAC address 52:54:00:12:34:0a is already used by partition[0] (\"control\")\
             .device[0] (line 15); each net device needs its own"
        )
    );
}

#[test]
fn net_device_without_backend_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:12:34:01\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            23,
            "partition[1] (\"linux\").device[0]",
            "a net device needs a backend; give tap (a host TAP device), link (another \
             partition) or bridge (a bridge of the system)"
        )
    );
}

#[test]
fn net_device_with_tap_and_link_is_refused_at_the_link() {
    let fixture = Fixture::new();
    let text = linux_net("52:54:00:12:34:01", "tap = \"bh0\"\nlink = \"control\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            27,
            "partition[1] (\"linux\").device[0].link",
            "both tap and link are given; a net device has one backend, give only one"
        )
    );
}

#[test]
fn tap_name_with_a_slash_is_refused_with_the_rule() {
    let fixture = Fixture::new();
    let text = linux_net("52:54:00:12:34:01", "tap = \"tap/0\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].tap",
            "invalid TAP device name \"tap/0\"; use 1 to 15 characters from A-Z, a-z, 0-9, \
             '_', '.' and '-', other than \".\" and \"..\""
        )
    );
}

#[test]
fn tap_name_of_sixteen_characters_is_refused() {
    let fixture = Fixture::new();
    let text = linux_net("52:54:00:12:34:01", "tap = \"bh-linux-eth0123\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (26, "partition[1] (\"linux\").device[0].tap")
    );
}

#[test]
fn tap_used_by_two_partitions_is_refused_naming_the_first() {
    let fixture = Fixture::new();
    let text = both_with(
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:12:34:01\"\ntap = \"bh0\"\n",
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:12:34:02\"\ntap = \"bh0\"\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            31,
            "partition[1] (\"linux\").device[0].tap",
            "TAP device \"bh0\" is already used by partition[0] (\"control\").device[0] \
             (line 16); each net device needs its own"
        )
    );
}

#[test]
fn link_to_an_unknown_partition_is_refused_listing_the_partitions() {
    let fixture = Fixture::new();
    let text = linux_net("52:54:00:12:34:01", "link = \"other\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].link",
            "no partition is named \"other\" (partitions: \"control\", \"linux\")"
        )
    );
}

#[test]
fn link_to_its_own_partition_is_refused() {
    let fixture = Fixture::new();
    let text = linux_net("52:54:00:12:34:01", "link = \"linux\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].link",
            "a partition cannot link to itself; name another partition"
        )
    );
}

#[test]
fn link_that_the_other_partition_does_not_return_is_refused() {
    let fixture = Fixture::new();
    let text = both_with(
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:00:00:01\"\ntap = \"bh0\"\n",
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:00:00:02\"\nlink = \"control\"\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            31,
            "partition[1] (\"linux\").device[0].link",
            "partition \"control\" has no net device with link = \"linux\"; a link needs a net \
             device on each side"
        )
    );
}

#[test]
fn second_link_to_the_same_partition_is_refused_naming_the_first() {
    let fixture = Fixture::new();
    let text = both_with(
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:00:00:01\"\nlink = \"linux\"\n",
        "[[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:00:00:02\"\nlink = \"control\"\n\
         [[partition.device]]\nkind = \"net\"\nmac = \"52:54:00:00:00:03\"\nlink = \"control\"\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            35,
            "partition[1] (\"linux\").device[1].link",
            "partition \"linux\" already links to \"control\" with partition[1] (\"linux\")\
             .device[0] (line 31); two partitions are joined by one pair of net devices at most"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Refused devices: vsock
// ---------------------------------------------------------------------------------------------

#[test]
fn vsock_device_without_cid_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"vsock\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            23,
            "partition[1] (\"linux\").device[0].cid",
            "required key is missing"
        )
    );
}

#[test]
fn host_cid_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"vsock\"\ncid = 2\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            25,
            "partition[1] (\"linux\").device[0].cid",
            "2 is out of range; accepted values are 3 to 4294967294"
        )
    );
}

#[test]
fn any_cid_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"vsock\"\ncid = 0xFFFFFFFF\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.message.as_str()),
        (
            25,
            "0xFFFFFFFF is out of range; accepted values are 3 to 4294967294"
        )
    );
}

#[test]
fn cid_used_twice_in_the_system_is_refused_naming_the_first() {
    let fixture = Fixture::new();
    let text = both_with(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n",
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            29,
            "partition[1] (\"linux\").device[0].cid",
            "CID 3 is already used by partition[0] (\"control\").device[0] (line 15); each \
             vsock device needs its own"
        )
    );
}

#[test]
fn port_listed_twice_in_a_device_is_refused_naming_the_first() {
    let fixture = Fixture::new();
    let text = linux_with(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\nports = [\n\
         { port = 1234, socket = \"run/a.sock\" },\n\
         { port = 1234, socket = \"run/b.sock\" },\n]\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            28,
            "partition[1] (\"linux\").device[0].ports[1].port",
            "port 1234 is listed more than once; partition[1] (\"linux\").device[0].ports[0] \
             at line 27 already has it"
        )
    );
}

#[test]
fn port_any_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n\
         ports = [{ port = 4294967295, socket = \"run/a.sock\" }]\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].ports[0].port",
            "4294967295 is out of range; accepted values are 0 to 4294967294"
        )
    );
}

#[test]
fn socket_in_a_missing_folder_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n\
         ports = [{ port = 1, socket = \"absent/a.sock\" }]\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message),
        (
            26,
            "partition[1] (\"linux\").device[0].ports[0].socket",
            format!(
                "cannot use folder {:?} for {:?}: No such file or directory (os error 2)",
                fixture.path("absent"),
                fixture.path("absent/a.sock")
            )
        )
    );
}

#[test]
fn socket_used_twice_in_the_system_is_refused_however_it_is_spelled() {
    let fixture = Fixture::new();
    let text = both_with(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n\
         ports = [{ port = 1, socket = \"run/a.sock\" }]\n",
        "[[partition.device]]\nkind = \"vsock\"\ncid = 4\n\
         ports = [{ port = 2, socket = \"logs/../run/a.sock\" }]\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message),
        (
            31,
            "partition[1] (\"linux\").device[0].ports[0].socket",
            format!(
                "socket {:?} is already used by partition[0] (\"control\").device[0].ports[0] \
                 (line 16); each vsock port needs its own",
                canonical(&fixture, "run").join("a.sock")
            )
        )
    );
}

#[test]
fn ports_that_are_not_an_array_are_refused() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"vsock\"\ncid = 3\nports = 1234\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].ports",
            "expected an array, found an integer"
        )
    );
}

#[test]
fn port_that_is_not_a_table_is_refused() {
    let fixture = Fixture::new();
    let text = linux_with("[[partition.device]]\nkind = \"vsock\"\ncid = 3\nports = [1234]\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].ports[0]",
            "expected a table, found an integer"
        )
    );
}

#[test]
fn unknown_port_key_is_refused_with_the_accepted_keys() {
    let fixture = Fixture::new();
    let text = linux_with(
        "[[partition.device]]\nkind = \"vsock\"\ncid = 3\n\
         ports = [{ port = 1, socket = \"run/a.sock\", backlog = 8 }]\n",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        pinned(&problem),
        (
            26,
            "partition[1] (\"linux\").device[0].ports[0].backlog",
            "unknown key for a vsock port; accepted keys are port, socket"
        )
    );
}

#[test]
fn port_without_socket_is_refused_at_the_port() {
    let fixture = Fixture::new();
    let text =
        linux_with("[[partition.device]]\nkind = \"vsock\"\ncid = 3\nports = [{ port = 1 }]\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (
            problem.line,
            problem.column,
            problem.key.as_str(),
            problem.message.as_str()
        ),
        (
            26,
            10,
            "partition[1] (\"linux\").device[0].ports[0].socket",
            "required key is missing"
        )
    );
}
