//! Facts about the host that a description is validated against. They are a plain value so
//! that tests inject them; [`HostFacts::probe`] reads them from Linux.

use std::io;

/// What the host offers to partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// Host CPUs that are online, ascending.
    pub online_cpus: Vec<usize>,
    /// `MemTotal` of `/proc/meminfo`, in MiB.
    pub memory_total_mib: u64,
    /// Resolution of the host's high-resolution timers, in ns (1 with high-resolution timers
    /// active, a jiffy without); `None` when it cannot be read.
    pub timer_resolution_ns: Option<u64>,
}

/// Kernel's list of online CPUs (Documentation/ABI/testing/sysfs-devices-system-cpu).
const ONLINE_CPUS_PATH: &str = "/sys/devices/system/cpu/online";

/// proc(5) memory statistics.
const MEMINFO_PATH: &str = "/proc/meminfo";

/// The hrtimer bases of every CPU with their `.resolution` (kernel/time/timer_list.c).
const TIMER_LIST_PATH: &str = "/proc/timer_list";

/// Upper bound on a CPU number in the online list, far above any real host, so a corrupt
/// list cannot make us allocate without bound.
const MAX_CPU_NUMBER: usize = 1 << 16;

impl HostFacts {
    /// Reads the online CPUs from `/sys/devices/system/cpu/online`, MemTotal from
    /// `/proc/meminfo` and the timer resolution from `/proc/timer_list` (readable by root
    /// only; `None` otherwise).
    pub fn probe() -> io::Result<HostFacts> {
        let online = std::fs::read_to_string(ONLINE_CPUS_PATH)?;
        let meminfo = std::fs::read_to_string(MEMINFO_PATH)?;
        let timers = std::fs::read_to_string(TIMER_LIST_PATH).ok();
        Ok(HostFacts {
            online_cpus: parse_cpu_list(&online)?,
            memory_total_mib: parse_mem_total_mib(&meminfo)?,
            timer_resolution_ns: timers.as_deref().and_then(parse_timer_resolution_ns),
        })
    }

    /// The online CPUs as a kernel-style list, e.g. `0-3,6`.
    pub(crate) fn online_cpus_display(&self) -> String {
        let mut sorted = self.online_cpus.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for cpu in sorted {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == cpu => *last = cpu,
                _ => ranges.push((cpu, cpu)),
            }
        }
        let parts: Vec<String> = ranges
            .into_iter()
            .map(|(first, last)| {
                if first == last {
                    first.to_string()
                } else {
                    format!("{first}-{last}")
                }
            })
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(",")
        }
    }
}

/// The coarsest `.resolution: N nsecs` of the timer list.
fn parse_timer_resolution_ns(timer_list: &str) -> Option<u64> {
    timer_list
        .lines()
        .filter_map(|line| line.trim().strip_prefix(".resolution:"))
        .filter_map(|rest| rest.trim().strip_suffix("nsecs")?.trim().parse().ok())
        .max()
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Parses a kernel CPU list such as `0-1,3\n` into ascending CPU numbers.
fn parse_cpu_list(text: &str) -> io::Result<Vec<usize>> {
    let text = text.trim();
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Ok(cpus);
    }
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (parse_cpu(first)?, parse_cpu(last)?),
            None => {
                let cpu = parse_cpu(part)?;
                (cpu, cpu)
            }
        };
        if first > last {
            return Err(invalid(format!("descending CPU range {part:?}")));
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn parse_cpu(text: &str) -> io::Result<usize> {
    let cpu: usize = text
        .trim()
        .parse()
        .map_err(|_| invalid(format!("invalid CPU number {text:?}")))?;
    if cpu > MAX_CPU_NUMBER {
        return Err(invalid(format!("CPU number {cpu} out of range")));
    }
    Ok(cpu)
}

/// Finds `MemTotal:  N kB` and returns N in MiB, rounded down.
fn parse_mem_total_mib(meminfo: &str) -> io::Result<u64> {
    let line = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .ok_or_else(|| invalid("no MemTotal line in /proc/meminfo".to_owned()))?;
    let kib = line
        .trim()
        .strip_suffix("kB")
        .and_then(|number| number.trim().parse::<u64>().ok())
        .ok_or_else(|| invalid(format!("unexpected MemTotal line {line:?}")))?;
    Ok(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_list_with_ranges_and_singles_is_expanded() {
        let cpus = parse_cpu_list("0-1,3,5-6\n").unwrap();

        assert_eq!(cpus, vec![0, 1, 3, 5, 6]);
    }

    #[test]
    fn single_cpu_list_is_one_cpu() {
        let cpus = parse_cpu_list("0\n").unwrap();

        assert_eq!(cpus, vec![0]);
    }

    #[test]
    fn cpu_list_with_garbage_is_an_error() {
        let result = parse_cpu_list("0-x");

        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn cpu_list_with_descending_range_is_an_error() {
        let result = parse_cpu_list("3-1");

        assert!(result.is_err());
    }

    #[test]
    fn cpu_list_with_huge_cpu_number_is_an_error() {
        let result = parse_cpu_list("0-18446744073709551615");

        assert!(result.is_err());
    }

    #[test]
    fn mem_total_is_converted_from_kib_to_mib() {
        let meminfo = "MemTotal:       16303236 kB\nMemFree:         1000000 kB\n";

        let mib = parse_mem_total_mib(meminfo).unwrap();

        assert_eq!(mib, 15921);
    }

    #[test]
    fn meminfo_without_mem_total_is_an_error() {
        let result = parse_mem_total_mib("MemFree: 10 kB\n");

        assert!(result.is_err());
    }

    #[test]
    fn online_cpus_display_joins_consecutive_cpus_into_ranges() {
        let host = HostFacts {
            online_cpus: vec![0, 1, 2, 3, 6, 8, 9],
            memory_total_mib: 1,
            timer_resolution_ns: Some(1),
        };

        let shown = host.online_cpus_display();

        assert_eq!(shown, "0-3,6,8-9");
    }

    #[test]
    fn timer_resolution_is_the_coarsest_in_the_timer_list() {
        let list = "cpu: 0\n clock 0:\n  .base:   0x0\n  .resolution: 1 nsecs\n clock 1:\n  \
                    .resolution: 4000000 nsecs\n";

        let ns = parse_timer_resolution_ns(list);

        assert_eq!(ns, Some(4_000_000));
    }

    #[test]
    fn probe_on_this_host_finds_at_least_one_cpu_and_some_memory() {
        let host = HostFacts::probe().unwrap();

        assert!(!host.online_cpus.is_empty() && host.memory_total_mib > 0);
    }
}
