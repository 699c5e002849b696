//! The limits and defaults of a system description, and the pure checks built on them.
//! `docs/system-description.md` restates these; change both together.

/// Longest partition or system name.
pub const NAME_MAX_LEN: usize = 32;

/// Most vCPUs one partition may have.
pub const MAX_VCPUS: u32 = 64;

/// Smallest guest RAM accepted, in MiB.
pub const MIN_MEMORY_MIB: u64 = 2;

/// Largest guest RAM accepted, in MiB (1 TiB).
pub const MAX_MEMORY_MIB: u64 = 1 << 20;

/// Host memory kept back from partitions, in MiB: the sum of all `memory_mib` must not exceed
/// the host's MemTotal minus this.
pub const HOST_RESERVE_MIB: u64 = 256;

/// Longest kernel command line, in bytes, without the terminating NUL. Linux on x86 copies at
/// most `COMMAND_LINE_SIZE` (2048) bytes including the NUL (`arch/x86/include/asm/setup.h`;
/// boot protocol `cmdline_size`, Documentation/arch/x86/boot.rst).
pub const CMDLINE_MAX_BYTES: usize = 2047;

/// SCHED_FIFO priority of a high-criticality partition that does not set `rt_priority`.
pub const DEFAULT_RT_PRIORITY: u8 = 50;

/// Accepted `rt_priority` values: the SCHED_FIFO range of Linux (`sched(7)`).
pub const RT_PRIORITY_RANGE: std::ops::RangeInclusive<u8> = 1..=99;

/// `max_restarts` when not set.
pub const DEFAULT_MAX_RESTARTS: u32 = 10;

/// Whether `name` is acceptable for the system or a partition: 1 to [`NAME_MAX_LEN`]
/// characters from `a-z`, `0-9` and `-`, the first a letter.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    starts_with_letter
        && name.len() <= NAME_MAX_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// What is wrong with a kernel command line, if anything.
pub(crate) fn cmdline_problem(cmdline: &str) -> Option<String> {
    if cmdline.len() > CMDLINE_MAX_BYTES {
        Some(format!(
            "command line is {} bytes long; at most {CMDLINE_MAX_BYTES} bytes are accepted",
            cmdline.len()
        ))
    } else if cmdline.contains(['\0', '\n', '\r']) {
        Some("command line contains a NUL or line-break character".to_owned())
    } else {
        None
    }
}

/// The accepted key in `accepted` closest to the unknown `key`, if one is close enough to be
/// a likely typo (edit distance at most 2, and less than the key's length).
pub(crate) fn closest<'a>(key: &str, accepted: &[&'a str]) -> Option<&'a str> {
    accepted
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|&(distance, _)| distance <= 2 && distance < key.chars().count())
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            let deletion = previous[j + 1] + 1;
            let insertion = current[j] + 1;
            current.push(substitution.min(deletion).min(insertion));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_with_letters_digits_and_dashes_is_valid() {
        let valid = is_valid_name("rt-ctl-2");

        assert!(valid);
    }

    #[test]
    fn name_of_thirty_two_characters_is_valid() {
        let valid = is_valid_name(&"a".repeat(32));

        assert!(valid);
    }

    #[test]
    fn name_of_thirty_three_characters_is_invalid() {
        let valid = is_valid_name(&"a".repeat(33));

        assert!(!valid);
    }

    #[test]
    fn name_starting_with_digit_is_invalid() {
        let valid = is_valid_name("1st");

        assert!(!valid);
    }

    #[test]
    fn name_with_uppercase_is_invalid() {
        let valid = is_valid_name("Linux");

        assert!(!valid);
    }

    #[test]
    fn empty_name_is_invalid() {
        let valid = is_valid_name("");

        assert!(!valid);
    }

    #[test]
    fn cmdline_of_max_length_is_accepted() {
        let problem = cmdline_problem(&"x".repeat(CMDLINE_MAX_BYTES));

        assert_eq!(problem, None);
    }

    #[test]
    fn cmdline_with_carriage_return_is_refused() {
        let problem = cmdline_problem("quiet\rroot=/dev/vda");

        assert!(problem.is_some());
    }

    #[test]
    fn closest_suggests_key_one_letter_off() {
        let suggestion = closest("vcpu", &["name", "vcpus", "cpus"]);

        assert_eq!(suggestion, Some("vcpus"));
    }

    #[test]
    fn closest_suggests_nothing_for_unrelated_key() {
        let suggestion = closest("colour", &["name", "vcpus", "cpus"]);

        assert_eq!(suggestion, None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        let distance = edit_distance("kitten", "sitting");

        assert_eq!(distance, 3);
    }
}
