//! The command line's contract: a refused description names file, line and key, exits 2,
//! and starts nothing.

mod common;

use std::process::Command;

use common::*;

#[test]
fn check_refuses_a_bad_description_with_file_line_key_and_exit_code_2() {
    let dir = scratch("cli_refuse");
    let desc = write_description(
        &dir,
        "[system]\nname = \"bad\"\n\n[[partition]]\nname = \"x\"\ncriticality = \"high\"\nvcpus = 0\ncpus = [0]\nmemory_mib = 16\nkernel = \"missing.elf\"\ncolour = \"red\"\n",
    );

    let out = Command::new(bulkhead())
        .arg("check")
        .arg(&desc)
        .output()
        .expect("run bulkhead");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = desc.display().to_string();

    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{file}:7:")) && stderr.contains("vcpus"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:10:")) && stderr.contains("kernel"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:11:")) && stderr.contains("colour"),
        "{stderr}"
    );
}

#[test]
fn run_of_a_refused_description_starts_no_partition() {
    let dir = scratch("cli_run_refuse");
    let desc = write_description(&dir, "[system]\nname = \"bad\"\n");

    let out = Command::new(bulkhead())
        .arg("run")
        .arg(&desc)
        .output()
        .expect("run bulkhead");
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("partition process"), "{stderr}");
}

#[test]
fn demo_description_is_valid_once_images_are_built() {
    images();
    rt_demo();

    let out = Command::new(bulkhead())
        .arg("check")
        .arg(repo().join("examples/demo.toml"))
        .output()
        .expect("run");

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
