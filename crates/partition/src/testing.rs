//! What the unit tests of this crate share: a scratch folder that removes itself, and a
//! validated plan from a description's text (with a stand-in kernel file beside it).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bulkhead_config::{HostFacts, SystemPlan};

/// A fresh folder under the system's temporary folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A folder named after `test` (and this process and a counter, so tests never share).
    pub fn new(test: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bulkhead-partition-test-{}-{}-{test}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Validates the description `text`, written in `dir` beside a file `guest.elf` (an ELF64
/// header, enough for validation) that its partitions may name as their kernel; host: CPUs 0
/// and 1, 4 GiB.
pub fn plan_in(dir: &std::path::Path, text: &str) -> SystemPlan {
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[18] = 62;
    std::fs::write(dir.join("guest.elf"), elf).unwrap();
    let host = HostFacts {
        online_cpus: vec![0, 1],
        memory_total_mib: 4096,
        timer_resolution_ns: Some(1),
    };
    bulkhead_config::parse(&dir.join("s.toml"), text, &host).unwrap()
}
