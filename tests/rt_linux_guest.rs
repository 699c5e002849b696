//! Debian's PREEMPT_RT kernel (`vmlinux-rt` of `scripts/build-images.sh`) in a bulkhead
//! partition inside the KVM test host, running cyclictest through the guest's `bh-cyclictest`,
//! whose report must be in bulkhead's `rt-stats` format; and, on this machine, the parsing of
//! cyclictest's histograms by `scripts/images/cyclictest-stats.awk` under the guest image's own
//! busybox awk. Fails loudly when the images are missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::*;

/// A directory whose only commands are the busybox applets of the guest initramfs (so `awk` and
/// `sh` are busybox's, as in the guest), extracted once per test run.
fn busybox_bin() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let images = rt_images();
        let dir = scratch("rt_linux_busybox");
        let busybox = dir.join("busybox");
        let extract = format!(
            "gzip -dc '{}' | cpio -i --quiet --to-stdout bin/busybox > '{}' && chmod 0755 '{}'",
            images.join("initramfs.cpio.gz").display(),
            busybox.display(),
            busybox.display()
        );
        let status = Command::new("sh")
            .args(["-c", &extract])
            .status()
            .expect("run gzip | cpio");
        assert!(
            status.success() && busybox.is_file(),
            "could not extract bin/busybox from the guest initramfs (needs gzip and cpio)"
        );
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let list = Command::new(&busybox).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            std::os::unix::fs::symlink(&busybox, bin.join(applet)).unwrap();
        }
        bin
    })
}

fn stats_awk() -> PathBuf {
    repo().join("scripts/images/cyclictest-stats.awk")
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A field of an `rt-stats` or `rt-total` line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// What `cyclictest -v -h range` prints for threads that saw these latencies (whole µs), one
/// per cycle, as rt-tests 2.4 formats it: the verbose lines, in batches per thread as its
/// printer does, then the histogram, every row zero-padded.
fn cyclictest_output(range: u64, threads: &[Vec<u64>]) -> String {
    let mut out = String::from("# /dev/cpu_dma_latency set to 0us\n");
    for (i, _) in threads.iter().enumerate() {
        out.push_str(&format!("Thread {i} Interval: 1000\n"));
    }
    let cycles = threads.iter().map(Vec::len).max().unwrap_or(0);
    for batch in (0..cycles).step_by(7) {
        for (i, t) in threads.iter().enumerate() {
            for (c, l) in t.iter().enumerate().skip(batch).take(7) {
                out.push_str(&format!("{i:8}:{c:8}:{l:8}\n"));
            }
        }
    }
    out.push_str("# Histogram\n");
    let count = |t: &Vec<u64>, b: u64| t.iter().filter(|&&l| l == b).count();
    for b in 0..range {
        out.push_str(&format!("{b:06}"));
        for t in threads {
            out.push_str(&format!(" {:06}", count(t, b)));
        }
        out.push('\n');
    }
    let row = |name: &str, f: &dyn Fn(&Vec<u64>) -> u64, w: usize| {
        let mut s = format!("# {name}:");
        for t in threads {
            s.push_str(&format!(" {:0w$}", f(t)));
        }
        s + "\n"
    };
    out += &row(
        "Total",
        &|t| t.iter().filter(|&&l| l < range).count() as u64,
        9,
    );
    out += &row("Min Latencies", &|t| *t.iter().min().unwrap(), 5);
    out += &row(
        "Avg Latencies",
        &|t| t.iter().sum::<u64>() / t.len() as u64,
        5,
    );
    out += &row("Max Latencies", &|t| *t.iter().max().unwrap(), 5);
    out += &row(
        "Histogram Overflows",
        &|t| t.iter().filter(|&&l| l >= range).count() as u64,
        5,
    );
    out.push_str("# Histogram Overflow at cycle number:\n");
    for (i, t) in threads.iter().enumerate() {
        out.push_str(&format!("# Thread {i}:"));
        for (cycle, &l) in t.iter().enumerate() {
            if l >= range {
                out.push_str(&format!(" {cycle:05}"));
            }
        }
        out.push('\n');
    }
    out
}

/// The reference: the line `cyclictest-stats.awk` must print for these latencies (whole µs);
/// `range` is the histogram's for rt-total (a percentile beyond it is the maximum), `None` for
/// a window (from the verbose lines: no range).
fn expected_line(name: &str, period_us: u64, range: Option<u64>, latencies: &[u64]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let n = sorted.len() as u64;
    let (min, max) = (sorted[0] * 1000, sorted[sorted.len() - 1] * 1000);
    let percentile = |p: u64| {
        let rank = (n * p).div_ceil(100).max(1);
        let l = sorted[rank as usize - 1];
        if range.is_some_and(|r| l >= r) {
            max
        } else {
            ((l + 1) * 1000).clamp(min, max)
        }
    };
    let missed = sorted.iter().filter(|&&l| l >= period_us).count();
    format!(
        "{name} period_us={period_us} samples={n} min_ns={min} p50_ns={} p99_ns={} max_ns={max} missed={missed}",
        percentile(50),
        percentile(99)
    )
}

/// A deterministic spread of latencies: mostly 5..60 µs, a tail up to `tail` µs.
fn latencies(seed: u64, n: usize, tail: u64) -> Vec<u64> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 50 == 0 {
                x % tail
            } else {
                5 + x % 56
            }
        })
        .collect()
}

/// Runs `busybox awk -f cyclictest-stats.awk` with windows of `loops` cycles.
fn parse(period_us: u64, loops: u64, threads: usize, input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(busybox_bin().join("awk"))
        .args(["-v", &format!("period_us={period_us}")])
        .args(["-v", &format!("loops={loops}")])
        .args(["-v", &format!("threads={threads}")])
        .arg("-f")
        .arg(stats_awk())
        .env("PATH", busybox_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run busybox awk");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_sample_run_parses_into_rt_stats_lines_under_busybox_awk() {
    // Two threads, windows of 3 cycles: thread 0 saw 8 10 10 | 12 19, thread 1 saw 9 9 12 | 31
    // (beyond the histogram's 21 µs). The histogram's zero-padded numbers would be read as octal
    // by busybox awk (000010 is 8, 000012 is 10) unless the parser strips the zeros.
    let sample = "\
# /dev/cpu_dma_latency set to 0us
Thread 0 Interval: 1000
Thread 1 Interval: 1000
       0:       0:       8
       0:       1:      10
       1:       0:       9
       1:       1:       9
       1:       2:      12
       0:       2:      10
       0:       3:      12
       1:       3:      31
       0:       4:      19
# Histogram
000000 000000 000000
000008 000001 000000
000009 000000 000002
000010 000002 000000
000012 000001 000001
000019 000001 000000
000020 000000 000000
# Total: 000000005 000000003
# Min Latencies: 00008 00009
# Avg Latencies: 00011 00015
# Max Latencies: 00019 00031
# Histogram Overflows: 00000 00001
# Histogram Overflow at cycle number:
# Thread 0:
# Thread 1: 00003
#bh-end status=0
";

    let out = parse(21, 3, 2, sample);

    // Window 0: 8 9 9 10 10 12: rank 3 (p50) is 9 µs -> 10 µs, rank 6 (p99) is 12 -> 13 -> max 12.
    // Window 1: 12 19 31: p50 19 -> 20 µs, p99 31 -> 32 -> max 31; missed: 31 >= 21.
    // Total: 9 samples; p50 (rank 5) is 10 -> 11 µs; p99 (rank 9) is the overflow -> max.
    assert_eq!(
        stdout_lines(&out),
        [
            "rt-stats period_us=21 samples=6 min_ns=8000 p50_ns=10000 p99_ns=12000 max_ns=12000 missed=0",
            "rt-stats period_us=21 samples=3 min_ns=12000 p50_ns=20000 p99_ns=31000 max_ns=31000 missed=1",
            "rt-total period_us=21 samples=9 min_ns=8000 p50_ns=11000 p99_ns=31000 max_ns=31000 missed=1",
        ],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
}

#[test]
fn windows_and_the_total_match_a_reference_computation() {
    let (period, range, loops) = (100, 200, 250);
    let runs: Vec<Vec<Vec<u64>>> = vec![
        vec![latencies(1, 1000, 150)],
        vec![latencies(2, 1000, 400), latencies(3, 1000, 90)],
        vec![latencies(4, 260, 2000)],
        vec![vec![42]],
    ];
    for threads in &runs {
        let input = cyclictest_output(range, threads) + "#bh-end status=0\n";
        let cycles = threads[0].len().div_ceil(loops as usize);
        let mut expected: Vec<String> = (0..cycles)
            .map(|w| {
                let window: Vec<u64> = threads
                    .iter()
                    .flat_map(|t| t.iter().skip(w * loops as usize).take(loops as usize))
                    .copied()
                    .collect();
                expected_line("rt-stats", period, None, &window)
            })
            .collect();
        expected.push(expected_line(
            "rt-total",
            period,
            Some(range),
            &threads.concat(),
        ));

        let out = parse(period, loops, threads.len(), &input);

        assert_eq!(
            stdout_lines(&out),
            expected,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success());
    }
}

#[test]
fn a_failed_run_reports_what_it_saw_and_fails() {
    let input = "       0:       0:      10\n       0:       1:      11\n#bh-end status=255\n";

    let out = parse(1000, 1000, 1, input);

    assert_eq!(
        stdout_lines(&out),
        [
            "rt-stats period_us=1000 samples=2 min_ns=10000 p50_ns=11000 p99_ns=11000 max_ns=11000 missed=0",
            "rt-total period_us=1000 samples=2 min_ns=10000 p50_ns=11000 p99_ns=11000 max_ns=11000 missed=0",
        ]
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn no_samples_report_zeros() {
    let out = parse(1000, 1000, 1, "");

    assert_eq!(
        stdout_lines(&out),
        ["rt-total period_us=1000 samples=0 min_ns=0 p50_ns=0 p99_ns=0 max_ns=0 missed=0"]
    );
    assert!(out.status.success());
}

#[test]
fn bh_cyclictest_runs_cyclictest_once_with_its_options() {
    let dir = scratch("rt_linux_fake_cyclictest");
    let args_log = dir.join("args");
    // Stands in for cyclictest: logs its arguments, prints 3 windows of 2000 wake-ups.
    let canned = dir.join("output");
    let run: Vec<u64> = (0..6000).map(|c| 20 + c % 4 * 10).collect();
    std::fs::write(&canned, cyclictest_output(1000, &[run])).unwrap();
    let fake = dir.join("cyclictest");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho 'Max CPUs = 2' >&2\ncat '{}'\n",
            args_log.display(),
            canned.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let out = Command::new(busybox_bin().join("sh"))
        .arg(repo().join("scripts/images/bh-cyclictest"))
        .args(["-i", "500", "-d", "3", "-p", "70", "-a", "1"])
        .env("PATH", busybox_bin())
        .env("BH_CYCLICTEST", &fake)
        .env("BH_CYCLICTEST_AWK", stats_awk())
        .output()
        .unwrap();
    let lines = stdout_lines(&out);
    let args = std::fs::read_to_string(&args_log).unwrap();

    assert!(out.status.success(), "{lines:?} {out:?}");
    assert!(
        out.stderr.is_empty(),
        "cyclictest's chatter is kept off: {out:?}"
    );
    assert!(
        lines[0].starts_with("bh-cyclictest: kernel=") && lines[0].contains(" realtime="),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with(": 3 windows of 1 s, 2000 wake-ups per thread each"),
        "{lines:?}"
    );
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        ["-v -m --policy=fifo -p 70 -i 500 -t 1 -h 10000 -a 1 -l 6000"],
        "one cyclictest run: 3 windows of 2000 periods of 500 µs"
    );
    // Each window: 20 30 40 50 µs, 500 each: p50 is 30 µs -> 31, p99 50 -> 51 -> max 50.
    let window =
        "period_us=500 samples=2000 min_ns=20000 p50_ns=31000 p99_ns=50000 max_ns=50000 missed=0";
    assert_eq!(
        lines[2..],
        [
            format!("rt-stats {window}"),
            format!("rt-stats {window}"),
            format!("rt-stats {window}"),
            "rt-total period_us=500 samples=6000 min_ns=20000 p50_ns=31000 p99_ns=50000 max_ns=50000 missed=0".to_owned(),
        ]
    );
}

#[test]
fn bh_cyclictest_refuses_bad_options() {
    let out = Command::new(busybox_bin().join("sh"))
        .arg(repo().join("scripts/images/bh-cyclictest"))
        .args(["-i", "0"])
        .env("PATH", busybox_bin())
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A high-criticality partition booting the RT kernel with the guest initramfs.
fn rt_linux_partition(cmdline: &str) -> String {
    let images = rt_images();
    format!(
        r#"[system]
name = "rtlinux"

[[partition]]
name = "rtlinux"
criticality = "high"
vcpus = 1
cpus = [1]
memory_mib = 512
kernel = "{kernel}"
initrd = "{initrd}"
cmdline = "console=ttyS0 loglevel=4 iommu=noaperture initcall_blacklist=cmos_init {cmdline}"
"#,
        kernel = images.join("vmlinux-rt").display(),
        initrd = images.join("initramfs.cpio.gz").display(),
    )
}

#[test]
fn rt_kernel_runs_cyclictest_in_a_partition_and_reports_rt_stats() {
    let dir = scratch("rt_linux_cyclictest");
    let check_watchdog = bh_cmd("test -c /dev/watchdog && echo watchdog-device-present");
    let desc = write_description(
        &dir,
        &rt_linux_partition(&format!(
            "bh.modules=virtio,health {check_watchdog} bh.action=cyclictest bh.cyclictest=-d+5+-i+1000+-a+0"
        )),
    );
    let script = format!("{} run {}", bulkhead().display(), desc.display());

    let (status, out) = in_test_host(&script, 600);
    let guest: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("rtlinux| "))
        .collect();
    eprintln!("{}", guest.join("\n")); // shown with --nocapture
    let kernel = guest
        .iter()
        .find(|l| l.starts_with("bh-cyclictest: kernel="))
        .unwrap_or_else(|| panic!("no bh-cyclictest kernel line:\n{out}"));
    let stats: Vec<&&str> = guest
        .iter()
        .filter(|l| l.starts_with("rt-stats "))
        .collect();
    let total = guest
        .iter()
        .find(|l| l.starts_with("rt-total "))
        .unwrap_or_else(|| panic!("no rt-total line:\n{out}"));

    assert!(
        kernel.contains("-rt-amd64 ")
            && (kernel.contains(" realtime=1 ") || kernel.contains("PREEMPT_RT")),
        "not the PREEMPT_RT kernel: {kernel}\n{out}"
    );
    assert!(
        !guest.iter().any(|l| l.contains("modprobe")),
        "a module failed to load:\n{out}"
    );
    assert!(
        guest.contains(&"watchdog-device-present"),
        "ib700wdt gave no /dev/watchdog:\n{out}"
    );
    // 5 windows of 1000 periods of 1 ms: one cyclictest run, whose histogram (rt-total) holds
    // every wake-up; the windows come from its verbose lines, of which the last <= 10 ms are
    // not printed, so the last window may be a little short.
    assert_eq!(stats.len(), 5, "expected 5 rt-stats lines:\n{out}");
    for (i, line) in stats.iter().enumerate() {
        assert_eq!(field(line, "period_us"), Some(1000), "{line}");
        let samples = field(line, "samples").unwrap_or(0);
        if i + 1 < stats.len() {
            assert_eq!(samples, 1000, "a whole window: {line}");
        } else {
            assert!(samples > 900 && samples <= 1000, "{line}");
        }
        assert!(
            field(line, "min_ns") <= field(line, "p50_ns")
                && field(line, "p50_ns") <= field(line, "p99_ns")
                && field(line, "p99_ns") <= field(line, "max_ns"),
            "{line}"
        );
    }
    assert_eq!(field(total, "period_us"), Some(1000), "{total}");
    assert_eq!(
        field(total, "samples"),
        Some(5000),
        "rt-total counts every wake-up: {total}\n{out}"
    );
    assert!(
        !out.contains("cyclictest-stats.awk: warning"),
        "the windows lost wake-ups:\n{out}"
    );
    assert!(
        guest.contains(&"bulkhead-init: cyclictest status=0"),
        "{out}"
    );
    assert!(out.contains("rtlinux: stopped: powered off"), "{out}");
    assert_eq!(status.code(), Some(0), "{out}");
}
