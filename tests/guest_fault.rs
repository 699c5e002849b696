//! A guest that triple-faults stops its own partition, which is reported as a guest fault,
//! while the partition beside it keeps running. Boots real guests on `/dev/kvm`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// Assembles `tests/fixtures/triple_fault.S` into a native guest ELF.
fn triple_fault_guest(dir: &Path) -> PathBuf {
    let fixtures = repo().join("tests/fixtures");
    let elf = dir.join("triple_fault.elf");
    let status = Command::new("cc")
        .args(["-nostdlib", "-static", "-Wl,--build-id=none", "-Wl,-T"])
        .arg(fixtures.join("guest.ld"))
        .arg(fixtures.join("triple_fault.S"))
        .arg("-o")
        .arg(&elf)
        .status()
        .expect("run cc (gcc) to assemble the fixture guest");
    assert!(status.success(), "assembling the fixture guest failed");
    elf
}

#[test]
fn triple_fault_stops_only_its_partition_and_is_reported_as_a_guest_fault() {
    require_kvm();
    let dir = scratch("triple_fault");
    let faulty = triple_fault_guest(&dir);
    let desc = write_description(
        &dir,
        &format!(
            "[system]\nname = \"t\"\n\n[[partition]]\nname = \"faulty\"\ncriticality = \"low\"\nvcpus = 1\ncpus = [0]\nmemory_mib = 4\nkernel = \"{}\"\n\n[[partition]]\nname = \"steady\"\ncriticality = \"low\"\nvcpus = 1\ncpus = [1]\nmemory_mib = 16\nkernel = \"{}\"\ncmdline = \"duration_s=3\"\n",
            faulty.display(),
            rt_demo().display()
        ),
    );

    let mut run = RunningSystem::start(&desc);
    run.wait_for(Duration::from_secs(30), "the fault report", |l| {
        l.contains("faulty: stopped: guest fault")
    });
    let (status, lines) = run.finish(Duration::from_secs(30));
    let steady_stats = lines
        .iter()
        .filter(|(_, l)| l.starts_with("steady| rt-stats "))
        .count();

    assert!(
        steady_stats >= 2,
        "the other partition kept running: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|(_, l)| l.contains("steady: stopped: powered off")),
        "{lines:#?}"
    );
    assert_eq!(
        status.code(),
        Some(1),
        "a faulted partition makes the run unclean"
    );
}
