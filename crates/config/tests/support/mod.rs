//! What the integration tests share: example descriptions, a fake host, and a temporary
//! folder with the files a description names.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bulkhead_config::{parse, HostFacts, Problem, Refusal, SystemPlan};

/// The example of the brief: a high-criticality ELF guest and a low-criticality Linux.
pub const TWO_PARTITIONS: &str = r#"[system]
name = "demo"

[[partition]]
name = "control"
criticality = "high"
vcpus = 1
cpus = [1]
memory_mib = 32
kernel = "guests/rt-demo.elf"
cmdline = "period_us=1000 duration_s=0"

[[partition]]
name = "linux"
criticality = "low"
vcpus = 2
cpus = [0]
memory_mib = 512
kernel = "vmlinuz"
initrd = "initramfs.cpio.gz"
cmdline = "console=ttyS0 quiet"
"#;

/// The smallest valid description; `vcpus` is on line 7, `kernel` on line 10.
pub const ONE_PARTITION: &str = r#"[system]
name = "demo"

[[partition]]
name = "control"
criticality = "high"
vcpus = 1
cpus = [1]
memory_mib = 32
kernel = "guests/rt-demo.elf"
"#;

/// Four online CPUs and 4 GiB, so 3840 MiB for partitions.
pub fn host() -> HostFacts {
    HostFacts {
        online_cpus: vec![0, 1, 2, 3],
        memory_total_mib: 4096,
        timer_resolution_ns: Some(1),
    }
}

/// A temporary folder holding a description's files, removed on drop.
pub struct Fixture {
    pub dir: PathBuf,
}

impl Fixture {
    /// A folder with `guests/rt-demo.elf` (ELF64 x86_64), `guests/rt32.elf` (ELF32),
    /// `vmlinuz` (bzImage), `initramfs.cpio.gz`, `notes.txt`, the disk images `disk.img` and
    /// `data.img`, and the empty folders `logs/` and `run/`.
    pub fn new() -> Fixture {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "bulkhead-config-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(dir.join("guests")).unwrap();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::write(dir.join("guests/rt-demo.elf"), elf_header(2, 62)).unwrap();
        std::fs::write(dir.join("guests/rt32.elf"), elf_header(1, 3)).unwrap();
        std::fs::write(dir.join("vmlinuz"), bzimage()).unwrap();
        std::fs::write(dir.join("initramfs.cpio.gz"), b"\x1f\x8b\x08\x00").unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a kernel\n").unwrap();
        std::fs::write(dir.join("disk.img"), vec![0u8; 4096]).unwrap();
        std::fs::write(dir.join("data.img"), vec![0u8; 4096]).unwrap();
        Fixture { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    pub fn description(&self) -> PathBuf {
        self.path("system.toml")
    }

    pub fn parse(&self, text: &str) -> Result<SystemPlan, Refusal> {
        parse(&self.description(), text, &host())
    }

    pub fn accept(&self, text: &str) -> SystemPlan {
        self.parse(text)
            .unwrap_or_else(|refusal| panic!("refused:\n{refusal}"))
    }

    pub fn refuse(&self, text: &str) -> Vec<Problem> {
        self.parse(text)
            .expect_err("description was accepted")
            .problems
    }

    /// The single problem of a description that must have exactly one.
    pub fn only_problem(&self, text: &str) -> Problem {
        let mut problems = self.refuse(text);
        assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
        problems.remove(0)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// 64 bytes of ELF header with the given `EI_CLASS` and `e_machine`.
pub fn elf_header(class: u8, machine: u16) -> Vec<u8> {
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = class;
    header[5] = 1;
    header[18..20].copy_from_slice(&machine.to_le_bytes());
    header
}

/// The start of a bzImage: "HdrS" at 0x202.
pub fn bzimage() -> Vec<u8> {
    let mut image = vec![0u8; 0x400];
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image
}

/// `text` with the one occurrence of `from` replaced by `to`.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur exactly once"
    );
    text.replace(from, to)
}

pub fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

pub fn lines(problems: &[Problem]) -> Vec<usize> {
    problems.iter().map(|p| p.line).collect()
}
