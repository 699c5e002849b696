//! `[[uart_link]]` tables through the public API: the link and each end's peer in the plan,
//! and each refusal.

mod support;

use bulkhead_config::rules;

use support::{edit, Fixture};

/// Partitions "a", "b" and "c" (low criticality, CPU 0), then `tail`. The first
/// `[[uart_link]]` of `tail` starts on line 28.
fn three_partitions(tail: &str) -> String {
    let partition = |name: &str| {
        format!(
            "[[partition]]\nname = \"{name}\"\ncriticality = \"low\"\nvcpus = 1\ncpus = [0]\n\
             memory_mib = 32\nkernel = \"guests/rt-demo.elf\"\n\n"
        )
    };
    format!(
        "[system]\nname = \"serial\"\n\n{}{}{}{tail}",
        partition("a"),
        partition("b"),
        partition("c")
    )
}

const A_TO_B: &str = "[[uart_link]]\na = \"a\"\nb = \"b\"\n";

#[test]
fn a_link_gives_each_end_the_other_as_its_com2_peer() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&three_partitions(A_TO_B));

    let link = &plan.uart_links[0];
    assert_eq!((link.a.as_str(), link.b.as_str()), ("a", "b"));
    assert_eq!(link.buffer_bytes, rules::DEFAULT_UART_LINK_BUFFER_BYTES);
    let a = plan.partitions[0].uart_link.as_ref().unwrap();
    let b = plan.partitions[1].uart_link.as_ref().unwrap();
    assert_eq!((a.peer.as_str(), b.peer.as_str()), ("b", "a"));
    assert_eq!(b.buffer_bytes, 4096);
}

#[test]
fn a_partition_in_no_link_has_no_com2_peer() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&three_partitions(A_TO_B));

    assert_eq!(plan.partitions[2].uart_link, None);
}

#[test]
fn buffer_bytes_reaches_both_ends() {
    let fixture = Fixture::new();
    let text = three_partitions(&format!("{A_TO_B}buffer_bytes = 65536\n"));

    let plan = fixture.accept(&text);

    assert_eq!(plan.uart_links[0].buffer_bytes, 65536);
    assert_eq!(
        plan.partitions[0].uart_link.as_ref().unwrap().buffer_bytes,
        65536
    );
}

#[test]
fn a_description_without_uart_links_has_none() {
    let fixture = Fixture::new();

    let plan = fixture.accept(&three_partitions(""));

    assert!(plan.uart_links.is_empty());
    assert!(plan.partitions.iter().all(|p| p.uart_link.is_none()));
}

#[test]
fn link_to_an_unknown_partition_is_refused_at_its_end() {
    let fixture = Fixture::new();
    let text = three_partitions(&edit(A_TO_B, "b = \"b\"", "b = \"d\""));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "uart_link[0].b");
    assert_eq!((problem.line, problem.column), (30, 5));
    assert_eq!(
        problem.message,
        "no partition is named \"d\" (partitions: \"a\", \"b\", \"c\")"
    );
}

#[test]
fn link_from_a_partition_to_itself_is_refused() {
    let fixture = Fixture::new();
    let text = three_partitions(&edit(A_TO_B, "b = \"b\"", "b = \"a\""));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "uart_link[0].b");
    assert_eq!(
        problem.message,
        "a uart link joins two partitions; \"a\" cannot be linked to itself"
    );
}

#[test]
fn partition_in_two_links_is_refused_at_the_second() {
    let fixture = Fixture::new();
    let text = three_partitions(&format!("{A_TO_B}\n[[uart_link]]\na = \"c\"\nb = \"a\"\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "uart_link[1].b");
    assert_eq!(problem.line, 34);
    assert_eq!(
        problem.message,
        "partition \"a\" is already an end of uart_link[0] (line 29); a partition has one \
         COM2, so it is in one uart link at most"
    );
}

#[test]
fn unknown_key_in_a_link_is_refused_with_the_accepted_keys() {
    let fixture = Fixture::new();
    let text = three_partitions(&format!("{A_TO_B}baud = 115200\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "uart_link[0].baud");
    assert_eq!(
        problem.message,
        "unknown key for a uart link; accepted keys are a, b, buffer_bytes"
    );
}

#[test]
fn misspelt_key_gets_a_hint() {
    let fixture = Fixture::new();
    let text = three_partitions(&format!("{A_TO_B}buffer_byte = 128\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "uart_link[0].buffer_byte");
    assert_eq!(
        problem.message,
        "unknown key for a uart link (did you mean \"buffer_bytes\"?)"
    );
}

#[test]
fn buffer_smaller_than_a_fifo_is_refused() {
    let fixture = Fixture::new();
    let text = three_partitions(&format!("{A_TO_B}buffer_bytes = 16\n"));

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "uart_link[0].buffer_bytes");
    assert_eq!(
        problem.message,
        "16 is out of range; accepted values are 64 to 1048576"
    );
}

#[test]
fn link_without_an_end_is_refused_at_its_header() {
    let fixture = Fixture::new();
    let text = three_partitions("[[uart_link]]\na = \"a\"\n");

    let problem = fixture.only_problem(&text);

    assert_eq!(problem.key, "uart_link[0].b");
    assert_eq!(problem.line, 28);
    assert_eq!(problem.message, "required key is missing");
}

#[test]
fn uart_link_that_is_not_an_array_of_tables_is_refused() {
    let fixture = Fixture::new();
    let text = format!("uart_link = 3\n{}", three_partitions(""));

    let problem = fixture.refuse(&text).remove(0);

    assert_eq!(problem.key, "uart_link");
    assert_eq!(problem.message, "expected an array, found an integer");
}

#[test]
fn every_bad_link_is_reported() {
    let fixture = Fixture::new();
    let text = three_partitions(
        "[[uart_link]]\na = \"a\"\nb = \"x\"\n\n[[uart_link]]\na = \"c\"\nb = \"c\"\n",
    );

    let problems = fixture.refuse(&text);

    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["uart_link[0].b", "uart_link[1].b"]);
}
