//! The system description through the public API: what is accepted and what it becomes, and
//! one test per reason for refusal, each pinning the line, key and message. Devices are in
//! `devices.rs`.

mod support;

use std::path::{Path, PathBuf};

use bulkhead_config::{load, parse, Criticality, HostFacts, KernelFormat, OnReset};

use support::{edit, host, keys, lines, Fixture, ONE_PARTITION, TWO_PARTITIONS};

// ---------------------------------------------------------------------------------------------
// Accepted descriptions
// ---------------------------------------------------------------------------------------------

#[test]
fn valid_description_keeps_system_name_source_and_partition_order() {
    let fixture = Fixture::new();

    let plan = fixture.accept(TWO_PARTITIONS);

    let names: Vec<&str> = plan.partitions.iter().map(|p| p.name.as_str()).collect();
    let indices: Vec<usize> = plan.partitions.iter().map(|p| p.index).collect();
    assert_eq!(
        (plan.name.as_str(), plan.source, names, indices),
        (
            "demo",
            fixture.description(),
            vec!["control", "linux"],
            vec![0, 1]
        )
    );
}

#[test]
fn valid_description_resolves_relative_paths_against_its_folder() {
    let fixture = Fixture::new();

    let plan = fixture.accept(TWO_PARTITIONS);

    assert_eq!(
        (
            &plan.partitions[0].kernel,
            &plan.partitions[1].kernel,
            &plan.partitions[1].initrd
        ),
        (
            &fixture.path("guests/rt-demo.elf"),
            &fixture.path("vmlinuz"),
            &Some(fixture.path("initramfs.cpio.gz"))
        )
    );
}

#[test]
fn valid_description_reads_each_partition_key() {
    let fixture = Fixture::new();

    let plan = fixture.accept(TWO_PARTITIONS);

    let linux = &plan.partitions[1];
    assert_eq!(
        (
            linux.criticality,
            linux.vcpus,
            &linux.cpus,
            linux.memory_mib,
            linux.cmdline.as_str()
        ),
        (Criticality::Low, 2, &vec![0], 512, "console=ttyS0 quiet")
    );
}

#[test]
fn kernel_formats_are_detected_from_file_contents() {
    let fixture = Fixture::new();

    let plan = fixture.accept(TWO_PARTITIONS);

    assert_eq!(
        (
            plan.partitions[0].kernel_format,
            plan.partitions[1].kernel_format
        ),
        (KernelFormat::Elf64, KernelFormat::BzImage)
    );
}

#[test]
fn optional_keys_take_their_defaults_on_high_criticality_partition() {
    let fixture = Fixture::new();

    let plan = fixture.accept(ONE_PARTITION);

    let control = &plan.partitions[0];
    assert_eq!(
        (
            control.rt_priority,
            control.on_reset,
            control.max_restarts,
            control.cmdline.as_str(),
            &control.initrd,
            &control.console_log
        ),
        (50, OnReset::Restart, 10, "", &None, &None)
    );
}

#[test]
fn low_criticality_partition_has_rt_priority_zero() {
    let fixture = Fixture::new();

    let plan = fixture.accept(TWO_PARTITIONS);

    assert_eq!(plan.partitions[1].rt_priority, 0);
}

#[test]
fn optional_keys_are_read_when_given() {
    let fixture = Fixture::new();
    let text = format!(
        "{ONE_PARTITION}rt_priority = 90\nconsole_log = \"logs/control.log\"\n\
         on_reset = \"stop\"\nmax_restarts = 0\n"
    );

    let plan = fixture.accept(&text);

    let control = &plan.partitions[0];
    assert_eq!(
        (
            control.rt_priority,
            &control.console_log,
            control.on_reset,
            control.max_restarts
        ),
        (
            90,
            &Some(fixture.path("logs/control.log")),
            OnReset::Stop,
            0
        )
    );
}

#[test]
fn absolute_kernel_path_is_kept_as_is() {
    let fixture = Fixture::new();
    let kernel = fixture.path("vmlinuz");
    let text = edit(
        ONE_PARTITION,
        "kernel = \"guests/rt-demo.elf\"",
        &format!("kernel = {:?}", kernel.display().to_string()),
    );

    let plan = fixture.accept(&text);

    assert_eq!(plan.partitions[0].kernel, kernel);
}

#[test]
fn low_criticality_partitions_may_share_host_cpus() {
    let fixture = Fixture::new();
    let text = edit(
        TWO_PARTITIONS,
        "criticality = \"high\"",
        "criticality = \"low\"",
    );
    let text = edit(&text, "cpus = [1]", "cpus = [0]");

    let plan = fixture.accept(&text);

    assert_eq!(
        (&plan.partitions[0].cpus, &plan.partitions[1].cpus),
        (&vec![0], &vec![0])
    );
}

#[test]
fn memory_exactly_at_the_host_budget_is_accepted() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "memory_mib = 32", "memory_mib = 3840");

    let plan = fixture.accept(&text);

    assert_eq!(plan.partitions[0].memory_mib, 3840);
}

#[test]
fn integers_may_use_underscores_and_hex() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "memory_mib = 32", "memory_mib = 1_024");
    let text = edit(&text, "cpus = [1]", "cpus = [0x2]");

    let plan = fixture.accept(&text);

    assert_eq!(
        (plan.partitions[0].memory_mib, &plan.partitions[0].cpus),
        (1024, &vec![2])
    );
}

#[test]
fn vcpus_are_spread_over_the_cpu_list_round_robin() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "cpus = [1]", "cpus = [3, 1]");
    let plan = fixture.accept(&text);
    let control = &plan.partitions[0];

    let host_cpus: Vec<usize> = (0..5).map(|vcpu| control.host_cpu_for_vcpu(vcpu)).collect();

    assert_eq!(host_cpus, vec![3, 1, 3, 1, 3]);
}

#[test]
fn load_reads_the_description_from_disk() {
    let fixture = Fixture::new();
    std::fs::write(fixture.description(), TWO_PARTITIONS).unwrap();

    let plan = load(&fixture.description(), &host()).unwrap();

    assert_eq!(plan.partitions.len(), 2);
}

#[test]
fn description_given_by_relative_path_resolves_kernel_to_an_absolute_path() {
    let fixture = Fixture::new();
    let cwd = std::env::current_dir().unwrap();
    let relative: PathBuf = fixture.description().strip_prefix("/").unwrap().into();
    let upward: PathBuf = cwd.components().skip(1).map(|_| Path::new("..")).collect();

    let plan = parse(&upward.join(relative), ONE_PARTITION, &host()).unwrap();

    assert!(plan.partitions[0].kernel.is_absolute());
}

// ---------------------------------------------------------------------------------------------
// Refused descriptions: the whole file
// ---------------------------------------------------------------------------------------------

#[test]
fn toml_syntax_error_is_one_problem_at_its_line_and_column() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "vcpus = 1", "vcpus = = 1");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.column, problem.key.as_str()),
        (7, 9, "")
    );
    assert!(
        problem.message.starts_with("invalid TOML"),
        "{}",
        problem.message
    );
}

#[test]
fn duplicate_toml_key_is_a_syntax_error_at_the_repeat() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "vcpus = 1", "vcpus = 1\nvcpus = 2");

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.line, 8);
    assert!(
        problem.message.contains("duplicate key"),
        "{}",
        problem.message
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let fixture = Fixture::new();
    let text = edit(TWO_PARTITIONS, "vcpus = 2", "vcpus = 0");
    let text = edit(&text, "memory_mib = 32", "memory_mib = 1");
    let text = edit(&text, "name = \"demo\"", "name = \"Demo\"");

    let problems = fixture.refuse(&text);

    assert_eq!(lines(&problems), vec![2, 9, 16]);
}

#[test]
fn refusal_display_prints_file_line_column_key_and_message() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "vcpus = 1", "vcpus = 0");

    let refusal = fixture.parse(&text).unwrap_err();

    assert_eq!(
        refusal.to_string(),
        format!(
            "{}:7:9: partition[0] (\"control\").vcpus: 0 is out of range; accepted values are \
             1 to 64",
            fixture.description().display()
        )
    );
}

#[test]
fn missing_description_file_is_refused_with_the_os_error() {
    let fixture = Fixture::new();

    let refusal = load(&fixture.path("absent.toml"), &host()).unwrap_err();

    assert!(refusal.problems[0]
        .message
        .contains("No such file or directory"));
}

#[test]
fn description_that_is_not_utf8_is_refused_at_the_bad_byte() {
    let fixture = Fixture::new();
    std::fs::write(fixture.description(), b"[system]\nname = \"d\xffmo\"\n").unwrap();

    let refusal = load(&fixture.description(), &host()).unwrap_err();

    let problem = &refusal.problems[0];
    assert_eq!((problem.line, problem.column), (2, 10));
    assert!(problem.message.contains("not valid UTF-8"));
}

// ---------------------------------------------------------------------------------------------
// Refused descriptions: structure and keys
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_top_level_key_is_refused_naming_the_key() {
    let fixture = Fixture::new();
    let text = format!("version = 2\n{ONE_PARTITION}");

    let problem = fixture.only_problem(&text);

    assert_eq!((problem.line, problem.key.as_str()), (1, "version"));
    assert!(
        problem.message.contains("unknown key"),
        "{}",
        problem.message
    );
}

#[test]
fn unknown_system_key_is_refused_naming_the_key() {
    let fixture = Fixture::new();
    let text = edit(
        ONE_PARTITION,
        "name = \"demo\"",
        "name = \"demo\"\nowner = \"me\"",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!((problem.line, problem.key.as_str()), (3, "system.owner"));
    assert!(
        problem.message.contains("accepted keys are name"),
        "{}",
        problem.message
    );
}

#[test]
fn unknown_partition_key_is_refused_with_a_suggestion() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}memory_mb = 32\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            11,
            "partition[0] (\"control\").memory_mb",
            "unknown key (did you mean \"memory_mib\"?)"
        )
    );
}

#[test]
fn missing_system_table_is_refused_at_line_one() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "[system]\nname = \"demo\"\n", "");

    let problem = fixture.only_problem(&text);

    assert_eq!((problem.line, problem.key.as_str()), (1, "system"));
    assert!(problem.message.contains("missing"), "{}", problem.message);
}

#[test]
fn missing_system_name_is_refused_at_the_system_header() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "name = \"demo\"\n", "");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (1, "system.name", "required key is missing")
    );
}

#[test]
fn description_without_partitions_is_refused() {
    let fixture = Fixture::new();

    let problem = fixture.only_problem("[system]\nname = \"demo\"\n");

    assert_eq!((problem.line, problem.key.as_str()), (1, "partition"));
    assert!(
        problem.message.contains("no partitions"),
        "{}",
        problem.message
    );
}

#[test]
fn partition_written_as_plain_table_is_refused_as_wrong_type() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "[[partition]]", "[partition]");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (4, "partition", "expected an array, found a table")
    );
}

#[test]
fn empty_partition_array_is_refused_at_the_array() {
    let fixture = Fixture::new();

    let problem = fixture.only_problem("partition = []\n[system]\nname = \"demo\"\n");

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            1,
            "partition",
            "no partitions; declare at least one [[partition]] table"
        )
    );
}

#[test]
fn partition_array_element_that_is_not_a_table_is_refused() {
    let fixture = Fixture::new();

    let problem = fixture.only_problem("partition = [1]\n[system]\nname = \"demo\"\n");

    assert_eq!(
        (
            problem.line,
            problem.column,
            problem.key.as_str(),
            problem.message.as_str()
        ),
        (1, 14, "partition[0]", "expected a table, found an integer")
    );
}

#[test]
fn partition_without_keys_reports_every_required_key_at_its_header() {
    let fixture = Fixture::new();

    let problems = fixture.refuse("[system]\nname = \"demo\"\n\n[[partition]]\n");

    assert_eq!(
        (keys(&problems), lines(&problems)),
        (
            vec![
                "partition[0].name",
                "partition[0].criticality",
                "partition[0].vcpus",
                "partition[0].cpus",
                "partition[0].memory_mib",
                "partition[0].kernel",
            ],
            vec![4; 6]
        )
    );
}

#[test]
fn wrong_type_is_refused_naming_expected_and_found() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "vcpus = 1", "vcpus = \"two\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            7,
            "partition[0] (\"control\").vcpus",
            "expected an integer, found a string"
        )
    );
}

#[test]
fn float_where_integer_expected_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "memory_mib = 32", "memory_mib = 32.5");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.message.as_str()),
        (9, "expected an integer, found a float")
    );
}

#[test]
fn cpu_list_element_of_wrong_type_is_refused_at_the_element() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "cpus = [1]", "cpus = [1, \"2\"]");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.column, problem.key.as_str()),
        (8, 12, "partition[0] (\"control\").cpus[1]")
    );
}

// ---------------------------------------------------------------------------------------------
// Refused descriptions: names
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_partition_name_is_refused_with_the_rule() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "name = \"control\"", "name = \"Control_1\"");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (5, "partition[0] (\"Control_1\").name")
    );
    assert!(
        problem.message.contains("a-z, 0-9 and '-'"),
        "{}",
        problem.message
    );
}

#[test]
fn invalid_system_name_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "name = \"demo\"", "name = \"9demo\"");

    let problem = fixture.only_problem(&text);

    assert_eq!((problem.line, problem.key.as_str()), (2, "system.name"));
    assert!(
        problem.message.contains("invalid name \"9demo\""),
        "{}",
        problem.message
    );
}

#[test]
fn duplicate_partition_name_is_refused_with_line_of_second() {
    let fixture = Fixture::new();
    let text = edit(TWO_PARTITIONS, "name = \"linux\"", "name = \"control\"");
    let text = edit(&text, "cpus = [0]", "cpus = [2]");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (14, "partition[1] (\"control\").name")
    );
    assert!(
        problem.message.contains("at line 4 already has it"),
        "{}",
        problem.message
    );
}

// ---------------------------------------------------------------------------------------------
// Refused descriptions: sizes
// ---------------------------------------------------------------------------------------------

#[test]
fn zero_vcpus_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "vcpus = 1", "vcpus = 0");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            7,
            "partition[0] (\"control\").vcpus",
            "0 is out of range; accepted values are 1 to 64"
        )
    );
}

#[test]
fn more_than_64_vcpus_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "vcpus = 1", "vcpus = 65");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.message.as_str()),
        (7, "65 is out of range; accepted values are 1 to 64")
    );
}

#[test]
fn memory_below_two_mib_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "memory_mib = 32", "memory_mib = 1");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            9,
            "partition[0] (\"control\").memory_mib",
            "1 is out of range; accepted values are 2 to 1048576"
        )
    );
}

#[test]
fn memory_above_one_tib_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "memory_mib = 32", "memory_mib = 1048577");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (9, "partition[0] (\"control\").memory_mib")
    );
    assert!(
        problem.message.contains("out of range"),
        "{}",
        problem.message
    );
}

#[test]
fn negative_memory_is_refused_as_out_of_range() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "memory_mib = 32", "memory_mib = -32");

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.line, 9);
    assert!(
        problem.message.contains("out of range"),
        "{}",
        problem.message
    );
}

#[test]
fn total_memory_beyond_the_host_is_refused_with_both_figures() {
    let fixture = Fixture::new();
    let text = edit(TWO_PARTITIONS, "memory_mib = 512", "memory_mib = 3809");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (18, "partition[1] (\"linux\").memory_mib")
    );
    assert!(
        problem
            .message
            .contains("need 3841 MiB in total but the host can give 3840 MiB"),
        "{}",
        problem.message
    );
}

// ---------------------------------------------------------------------------------------------
// Refused descriptions: host CPUs
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_cpu_list_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "cpus = [1]", "cpus = []");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (8, "partition[0] (\"control\").cpus")
    );
    assert!(
        problem.message.contains("empty list"),
        "{}",
        problem.message
    );
}

#[test]
fn duplicate_cpu_in_the_list_is_refused_at_the_repeat() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "cpus = [1]", "cpus = [1, 2, 1]");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (
            problem.line,
            problem.column,
            problem.key.as_str(),
            problem.message.as_str()
        ),
        (
            8,
            15,
            "partition[0] (\"control\").cpus[2]",
            "host CPU 1 is listed more than once"
        )
    );
}

#[test]
fn cpu_beyond_the_host_cpu_count_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "cpus = [1]", "cpus = [4]");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            8,
            "partition[0] (\"control\").cpus[0]",
            "host CPU 4 does not exist or is offline (online CPUs: 0-3)"
        )
    );
}

#[test]
fn cpu_missing_from_the_online_set_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "cpus = [1]", "cpus = [2]");
    let host = HostFacts {
        online_cpus: vec![0, 1, 3],
        memory_total_mib: 4096,
        timer_resolution_ns: Some(1),
    };

    let problems = parse(&fixture.description(), &text, &host)
        .unwrap_err()
        .problems;

    assert_eq!(
        (problems.len(), problems[0].message.as_str()),
        (
            1,
            "host CPU 2 does not exist or is offline (online CPUs: 0-1,3)"
        )
    );
}

#[test]
fn negative_cpu_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "cpus = [1]", "cpus = [-1]");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (8, "partition[0] (\"control\").cpus[0]")
    );
    assert!(
        problem.message.contains("out of range"),
        "{}",
        problem.message
    );
}

#[test]
fn high_criticality_partition_sharing_a_cpu_is_refused_naming_both() {
    let fixture = Fixture::new();
    let text = edit(TWO_PARTITIONS, "cpus = [0]", "cpus = [0, 1]");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (
            problem.line,
            problem.column,
            problem.key.as_str(),
            problem.message.as_str()
        ),
        (
            17,
            12,
            "partition[1] (\"linux\").cpus[1]",
            "host CPU 1 is shared by partition \"linux\" and high-criticality partition \
             \"control\" (line 4); a high-criticality partition has its host CPUs to itself unless a \
             [[schedule]] declares how they are shared (policy \"time_windows\" or \"priority\")"
        )
    );
}

#[test]
fn two_high_criticality_partitions_sharing_a_cpu_are_refused() {
    let fixture = Fixture::new();
    let text = edit(
        TWO_PARTITIONS,
        "criticality = \"low\"",
        "criticality = \"high\"",
    );
    let text = edit(&text, "cpus = [0]", "cpus = [1]");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (17, "partition[1] (\"linux\").cpus[0]")
    );
    assert!(
        problem.message.contains(
            "shared by high-criticality partition \"linux\" and high-criticality partition \
             \"control\""
        ),
        "{}",
        problem.message
    );
}

#[test]
fn cpu_sharing_is_reported_even_when_another_cpu_of_the_list_is_refused() {
    let fixture = Fixture::new();
    let text = edit(TWO_PARTITIONS, "cpus = [0]", "cpus = [7, 1]");

    let problems = fixture.refuse(&text);

    assert_eq!(
        keys(&problems),
        vec![
            "partition[1] (\"linux\").cpus[0]",
            "partition[1] (\"linux\").cpus[1]"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Refused descriptions: files
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_kernel_is_refused_with_resolved_path_and_os_error() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "guests/rt-demo.elf", "guests/absent.elf");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (10, "partition[0] (\"control\").kernel")
    );
    assert_eq!(
        problem.message,
        format!(
            "cannot read {:?}: No such file or directory (os error 2)",
            fixture.path("guests/absent.elf")
        )
    );
}

#[test]
fn kernel_in_unknown_format_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "guests/rt-demo.elf", "notes.txt");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (10, "partition[0] (\"control\").kernel")
    );
    assert!(
        problem.message.contains("is not a bzImage or x86_64 ELF"),
        "{}",
        problem.message
    );
}

#[test]
fn thirty_two_bit_elf_kernel_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "guests/rt-demo.elf", "guests/rt32.elf");

    let problem = fixture.only_problem(&text);

    assert!(
        problem
            .message
            .ends_with("is not a bzImage or x86_64 ELF (ELF class 1, not 64-bit (2))"),
        "{}",
        problem.message
    );
}

#[test]
fn kernel_that_is_a_folder_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "guests/rt-demo.elf", "guests");

    let problem = fixture.only_problem(&text);

    assert!(
        problem.message.contains("Is a directory"),
        "{}",
        problem.message
    );
}

#[test]
fn empty_kernel_path_is_refused() {
    let fixture = Fixture::new();
    let text = edit(ONE_PARTITION, "guests/rt-demo.elf", "");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.message.as_str()),
        (10, "path is empty")
    );
}

#[test]
fn missing_initrd_is_refused_with_resolved_path() {
    let fixture = Fixture::new();
    let text = edit(TWO_PARTITIONS, "initramfs.cpio.gz", "initrd.img");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (20, "partition[1] (\"linux\").initrd")
    );
    assert!(
        problem
            .message
            .contains(&format!("{:?}", fixture.path("initrd.img"))),
        "{}",
        problem.message
    );
}

#[test]
fn console_log_in_missing_folder_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}console_log = \"missing/control.log\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (11, "partition[0] (\"control\").console_log")
    );
    assert_eq!(
        problem.message,
        format!(
            "cannot use folder {:?} for {:?}: No such file or directory (os error 2)",
            fixture.path("missing"),
            fixture.path("missing/control.log")
        )
    );
}

#[test]
fn console_log_that_is_a_folder_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}console_log = \"logs\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        problem.message,
        format!("{:?} is a folder, not a file", fixture.path("logs"))
    );
}

#[test]
fn console_log_under_a_file_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}console_log = \"notes.txt/control.log\"\n");

    let problem = fixture.only_problem(&text);

    assert!(
        problem.message.contains("is not a folder"),
        "{}",
        problem.message
    );
}

// ---------------------------------------------------------------------------------------------
// Refused descriptions: choices and optional keys
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_criticality_is_refused_listing_accepted_values() {
    let fixture = Fixture::new();
    let text = edit(
        ONE_PARTITION,
        "criticality = \"high\"",
        "criticality = \"medium\"",
    );

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            6,
            "partition[0] (\"control\").criticality",
            "invalid value \"medium\"; accepted values are \"high\", \"low\""
        )
    );
}

#[test]
fn invalid_on_reset_is_refused_listing_accepted_values() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}on_reset = \"reboot\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            11,
            "partition[0] (\"control\").on_reset",
            "invalid value \"reboot\"; accepted values are \"restart\", \"stop\""
        )
    );
}

#[test]
fn rt_priority_on_low_criticality_partition_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{TWO_PARTITIONS}rt_priority = 10\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (22, "partition[1] (\"linux\").rt_priority")
    );
    assert!(
        problem.message.contains("only to high-criticality"),
        "{}",
        problem.message
    );
}

#[test]
fn rt_priority_above_99_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}rt_priority = 100\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.message.as_str()),
        (11, "100 is out of range; accepted values are 1 to 99")
    );
}

#[test]
fn negative_max_restarts_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}max_restarts = -1\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (11, "partition[0] (\"control\").max_restarts")
    );
    assert!(
        problem.message.contains("out of range"),
        "{}",
        problem.message
    );
}

#[test]
fn cmdline_longer_than_2047_bytes_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}cmdline = \"{}\"\n", "x".repeat(2048));

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            11,
            "partition[0] (\"control\").cmdline",
            "command line is 2048 bytes long; at most 2047 bytes are accepted"
        )
    );
}

#[test]
fn cmdline_with_newline_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}cmdline = \"quiet\\nroot=/dev/vda\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str()),
        (11, "partition[0] (\"control\").cmdline")
    );
    assert!(
        problem.message.contains("line-break"),
        "{}",
        problem.message
    );
}

#[test]
fn cmdline_with_nul_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}cmdline = \"quiet\\u0000\"\n");

    let problem = fixture.only_problem(&text);

    assert!(problem.message.contains("NUL"), "{}", problem.message);
}

#[test]
fn huge_pages_are_off_unless_asked_for() {
    let fixture = Fixture::new();

    let default = fixture.accept(ONE_PARTITION);
    let asked = fixture.accept(&format!("{ONE_PARTITION}huge_pages = true\n"));

    assert!(!default.partitions[0].huge_pages);
    assert!(asked.partitions[0].huge_pages);
}

#[test]
fn huge_pages_that_is_not_a_boolean_is_refused() {
    let fixture = Fixture::new();
    let text = format!("{ONE_PARTITION}huge_pages = \"yes\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(
        (problem.line, problem.key.as_str(), problem.message.as_str()),
        (
            11,
            "partition[0] (\"control\").huge_pages",
            "expected a boolean, found a string"
        )
    );
}
