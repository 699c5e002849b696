//! Is the host set up to shield its real-time CPUs? The checks `bulkhead check` and `bulkhead
//! run` make before anything starts, each failed one a warning that names what to change
//! (`docs/host-setup.md` explains each). Nothing here refuses a description: a development
//! machine runs bulkhead without any of it, only with worse latencies.
//!
//! The real-time CPUs are those of high-criticality partitions and the time-partitioned ones.
//! For each, the host should keep other work off it (`isolcpus=` / cpusets), stop its
//! scheduler tick (`nohz_full=`), route device interrupts elsewhere, and run it at a fixed
//! frequency; SCHED_FIFO throttling must not stop a polling vCPU; THP must be available where
//! huge pages are asked for. The parsers are pure functions over the kernel's text files, so
//! they are tested without the files.

use std::collections::BTreeSet;
use std::path::Path;

use bulkhead_config::{Criticality, IdlePolicy, SchedulePolicy, SystemPlan};

/// What the checks read, so they can be given in tests.
#[derive(Debug, Default, Clone)]
pub struct HostState {
    /// `/sys/devices/system/cpu/isolated`.
    pub isolated: String,
    /// `/sys/devices/system/cpu/nohz_full`, if present.
    pub nohz_full: Option<String>,
    /// Each requested interrupt line: its number and the CPUs it may be handled on
    /// (`/proc/irq/N/effective_affinity_list`, else `smp_affinity_list`).
    pub irqs: Vec<(u32, String)>,
    /// `/proc/sys/kernel/sched_rt_runtime_us`.
    pub rt_runtime_us: Option<i64>,
    /// `/sys/kernel/mm/transparent_hugepage/enabled`.
    pub thp_enabled: Option<String>,
    /// Each CPU's `cpufreq/scaling_governor`, where the host has one.
    pub governors: Vec<(usize, String)>,
}

impl HostState {
    /// Reads the host's files; missing ones read as empty or `None`.
    pub fn read(cpus: &[usize]) -> HostState {
        let text = |path: &str| std::fs::read_to_string(path).ok();
        HostState {
            isolated: text("/sys/devices/system/cpu/isolated").unwrap_or_default(),
            nohz_full: text("/sys/devices/system/cpu/nohz_full"),
            irqs: read_irqs(Path::new("/proc/irq")),
            rt_runtime_us: text("/proc/sys/kernel/sched_rt_runtime_us")
                .and_then(|t| t.trim().parse().ok()),
            thp_enabled: text("/sys/kernel/mm/transparent_hugepage/enabled"),
            governors: cpus
                .iter()
                .filter_map(|cpu| {
                    let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
                    text(&path).map(|g| (*cpu, g.trim().to_string()))
                })
                .collect(),
        }
    }
}

/// The interrupt lines that have a handler (a directory named after it in `/proc/irq/N/`).
fn read_irqs(root: &Path) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut irqs = Vec::new();
    for entry in entries.flatten() {
        let Some(number) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let handled = std::fs::read_dir(&dir)
            .map(|d| d.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())))
            .unwrap_or(false);
        if !handled {
            continue;
        }
        let affinity = std::fs::read_to_string(dir.join("effective_affinity_list"))
            .ok()
            .filter(|a| !a.trim().is_empty())
            .or_else(|| std::fs::read_to_string(dir.join("smp_affinity_list")).ok());
        if let Some(affinity) = affinity {
            irqs.push((number, affinity.trim().to_string()));
        }
    }
    irqs.sort();
    irqs
}

/// CPUs in a kernel CPU list (`0-2,5`); unparsable parts are skipped, `(null)` is empty.
pub fn parse_cpu_list(text: &str) -> BTreeSet<usize> {
    let mut cpus = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.trim().parse(), part.trim().parse()),
        };
        if let (Ok(first), Ok(last)) = (first, last) {
            // A corrupt list cannot make this allocate without bound.
            cpus.extend(first..=last.min(first.saturating_add(4096)));
        }
    }
    cpus
}

/// The host CPUs that run real-time work: those of high-criticality partitions and the
/// time-partitioned ones.
pub fn realtime_cpus(plan: &SystemPlan) -> BTreeSet<usize> {
    let mut cpus: BTreeSet<usize> = plan
        .partitions
        .iter()
        .filter(|p| p.criticality == Criticality::High)
        .flat_map(|p| p.cpus.iter().copied())
        .collect();
    for schedule in &plan.schedules {
        if matches!(schedule.policy, SchedulePolicy::TimeWindows(_)) {
            cpus.extend(schedule.cpus.iter().copied());
        }
    }
    cpus
}

fn list(cpus: &BTreeSet<usize>) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The warnings for `plan` on a host in `state`, each one line, naming what to change.
pub fn warnings(plan: &SystemPlan, state: &HostState) -> Vec<String> {
    let rt = realtime_cpus(plan);
    let mut out = Vec::new();
    if !rt.is_empty() {
        let isolated = parse_cpu_list(&state.isolated);
        let loose: BTreeSet<usize> = rt.difference(&isolated).copied().collect();
        if !loose.is_empty() {
            out.push(format!(
                "real-time host CPU(s) {} not isolated: other host tasks may run there (boot \
                 with isolcpus={} or move them off with cpusets; docs/host-setup.md)",
                list(&loose),
                list(&rt)
            ));
        }
        let nohz = state
            .nohz_full
            .as_deref()
            .map(parse_cpu_list)
            .unwrap_or_default();
        let ticking: BTreeSet<usize> = rt.difference(&nohz).copied().collect();
        if !ticking.is_empty() {
            out.push(format!(
                "real-time host CPU(s) {} keep their scheduler tick (boot with nohz_full={} \
                 rcu_nocbs={}; docs/host-setup.md)",
                list(&ticking),
                list(&rt),
                list(&rt)
            ));
        }
        let disturbing: Vec<u32> = state
            .irqs
            .iter()
            .filter(|(_, affinity)| !parse_cpu_list(affinity).is_disjoint(&rt))
            .map(|(irq, _)| *irq)
            .collect();
        if !disturbing.is_empty() {
            let shown: Vec<String> = disturbing.iter().take(8).map(u32::to_string).collect();
            out.push(format!(
                "{} host interrupt line(s) may be handled on real-time host CPU(s) {} (IRQ {}{}); \
                 write the housekeeping CPUs ({}) to /proc/irq/*/smp_affinity_list or boot with \
                 irqaffinity={} (docs/host-setup.md)",
                disturbing.len(),
                list(&rt),
                shown.join(", "),
                if disturbing.len() > shown.len() {
                    ", …"
                } else {
                    ""
                },
                list(&plan.housekeeping_cpus.iter().copied().collect()),
                list(&plan.housekeeping_cpus.iter().copied().collect()),
            ));
        }
        for (cpu, governor) in &state.governors {
            if rt.contains(cpu) && governor != "performance" {
                out.push(format!(
                    "real-time host CPU {cpu} runs the \"{governor}\" frequency governor; \
                     \"performance\" keeps its clock fixed (docs/host-setup.md)"
                ));
            }
        }
    }
    let polling: Vec<&str> = plan
        .partitions
        .iter()
        .filter(|p| p.idle == IdlePolicy::Poll && p.criticality == Criticality::High)
        .map(|p| p.name.as_str())
        .collect();
    if let (false, Some(runtime)) = (polling.is_empty(), state.rt_runtime_us) {
        if runtime >= 0 {
            out.push(format!(
                "partition(s) {} poll at SCHED_FIFO, and real-time throttling \
                 (sched_rt_runtime_us = {runtime}) stops them for part of every second; write \
                 -1 to /proc/sys/kernel/sched_rt_runtime_us (docs/host-setup.md)",
                polling.join(", ")
            ));
        }
    }
    let huge: Vec<&str> = plan
        .partitions
        .iter()
        .filter(|p| p.huge_pages)
        .map(|p| p.name.as_str())
        .collect();
    if let (false, Some(thp)) = (huge.is_empty(), state.thp_enabled.as_deref()) {
        if thp.contains("[never]") {
            out.push(format!(
                "partition(s) {} ask for huge pages but transparent huge pages are off (write \
                 madvise to /sys/kernel/mm/transparent_hugepage/enabled)",
                huge.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_with_ranges_and_null_are_parsed() {
        assert_eq!(
            parse_cpu_list("0-2,5\n"),
            [0, 1, 2, 5].into_iter().collect()
        );
        assert!(parse_cpu_list("(null)\n").is_empty());
        assert!(parse_cpu_list("\n").is_empty());
    }

    /// A system with a high-criticality partition on host CPU 1 and a low one on CPU 0.
    fn plan() -> SystemPlan {
        let dir = crate::testing::TempDir::new("shield");
        let text = "[system]\nname = \"s\"\n\n[[partition]]\nname = \"rt\"\ncriticality = \"high\"\n\
                    vcpus = 1\ncpus = [1]\nmemory_mib = 32\nkernel = \"guest.elf\"\n\n[[partition]]\n\
                    name = \"gp\"\ncriticality = \"low\"\nvcpus = 1\ncpus = [0]\nmemory_mib = 32\n\
                    kernel = \"guest.elf\"\n";
        crate::testing::plan_in(&dir.0, text)
    }

    #[test]
    fn an_unprepared_host_gets_a_warning_for_each_thing_to_change() {
        let state = HostState {
            irqs: vec![(24, "0-1".into()), (25, "0".into())],
            governors: vec![(1, "powersave".into())],
            ..HostState::default()
        };

        let warnings = warnings(&plan(), &state);

        assert_eq!(warnings.len(), 4, "{warnings:#?}");
        assert!(warnings[0].starts_with("real-time host CPU(s) 1 not isolated"));
        assert!(warnings[1].starts_with("real-time host CPU(s) 1 keep their scheduler tick"));
        assert!(warnings[2].starts_with(
            "1 host interrupt line(s) may be handled on real-time host CPU(s) 1 (IRQ 24)"
        ));
        assert!(warnings[3].contains("\"powersave\" frequency governor"));
    }

    #[test]
    fn a_prepared_host_gets_no_warning() {
        let state = HostState {
            isolated: "1\n".into(),
            nohz_full: Some("1\n".into()),
            irqs: vec![(24, "0".into())],
            rt_runtime_us: Some(950_000),
            thp_enabled: Some("always [madvise] never\n".into()),
            governors: vec![(1, "performance".into())],
        };

        let warnings = warnings(&plan(), &state);

        assert!(warnings.is_empty(), "{warnings:#?}");
    }

    #[test]
    fn a_huge_range_is_cut_short() {
        let cpus = parse_cpu_list("0-18446744073709551615");

        assert_eq!(cpus.len(), 4097);
    }
}
