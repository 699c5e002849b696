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

/// Most devices one partition may declare. The platform wires each virtio-mmio device to an
/// interrupt line of its own, and 19 IOAPIC lines are left once the legacy devices have
/// theirs.
pub const MAX_DEVICES: usize = 19;

/// Longest virtio-blk serial (`id`), in bytes: the answer to `VIRTIO_BLK_T_GET_ID` is at most
/// 20 bytes (`VIRTIO_BLK_ID_BYTES`, virtio 1.2 section 5.2.6).
pub const BLOCK_ID_MAX_BYTES: usize = 20;

/// `max_bytes_per_request` of an `rng` device that does not set it.
pub const DEFAULT_RNG_MAX_BYTES_PER_REQUEST: u32 = 4096;

/// Accepted `max_bytes_per_request` values of an `rng` device (up to 1 MiB).
pub const RNG_MAX_BYTES_PER_REQUEST_RANGE: std::ops::RangeInclusive<u32> = 1..=1 << 20;

/// Accepted `watchdog_ms` values: 10 ms to one hour.
pub const WATCHDOG_MS_RANGE: std::ops::RangeInclusive<u32> = 10..=3_600_000;

/// Accepted `deadline_miss_threshold` values.
pub const DEADLINE_MISS_THRESHOLD_RANGE: std::ops::RangeInclusive<u32> = 1..=u32::MAX;

/// `batch_us` of a `block` device of a low-criticality partition that does not set it.
pub const DEFAULT_BATCH_US: u32 = 100;

/// Accepted `batch_us` values of a `block` device: up to 10 ms.
pub const BATCH_US_RANGE: std::ops::RangeInclusive<u32> = 0..=10_000;

/// `io_threads` of a `block` device that does not set it.
pub const DEFAULT_IO_THREADS: u32 = 4;

/// Accepted `io_threads` values of a `block` device (64: QEMU's thread pool bound).
pub const IO_THREADS_RANGE: std::ops::RangeInclusive<u32> = 0..=64;

/// Accepted `major_frame_us` values of a time-windows `[[schedule]]`: 1 ms to 10 s.
pub const MAJOR_FRAME_US_RANGE: std::ops::RangeInclusive<u32> = 1_000..=10_000_000;

/// Shortest time window, in µs: below this the switch itself (a timer interrupt, a signal,
/// a VM exit and a context switch) would be a large part of the window.
pub const MIN_WINDOW_US: u32 = 200;

/// A window must last at least this many ticks of the host's timer (its resolution), so the
/// host can start and end it on time.
pub const MIN_WINDOW_TIMER_TICKS: u64 = 100;

/// Most windows one major frame may have.
pub const MAX_WINDOWS: usize = 256;

/// Accepted `halt_poll_us` values: up to 100 ms (KVM takes nanoseconds in 32 bits).
pub const HALT_POLL_US_RANGE: std::ops::RangeInclusive<u32> = 0..=100_000;

/// A time-partitioned partition's `watchdog_ms` must be at least this many major frames:
/// between two of its windows a partition cannot kick.
pub const WATCHDOG_MIN_FRAMES: u64 = 2;

/// Most ports of one bridge.
pub const MAX_BRIDGE_PORTS: usize = 64;

/// Most firewall rules of one bridge.
pub const MAX_BRIDGE_RULES: usize = 1024;

/// Largest frame a bridge carries, in bytes: a 64 KiB segmentation-offload frame with its
/// Ethernet and VLAN headers. Byte buckets hold at least one.
pub const MAX_BRIDGE_FRAME_BYTES: u64 = 65_536 + 18;

/// Accepted `vlan` values (802.1Q: 0 and 4095 are reserved).
pub const VLAN_RANGE: std::ops::RangeInclusive<u16> = 1..=4094;

/// Accepted `rate_bytes_per_s` values: 1 kB/s to 100 GB/s.
pub const RATE_BYTES_RANGE: std::ops::RangeInclusive<u64> = 1_000..=100_000_000_000;

/// Accepted `burst_bytes` values: one largest frame to 1 GiB.
pub const BURST_BYTES_RANGE: std::ops::RangeInclusive<u64> = MAX_BRIDGE_FRAME_BYTES..=1 << 30;

/// Accepted `rate_packets_per_s` values.
pub const RATE_PACKETS_RANGE: std::ops::RangeInclusive<u64> = 1..=100_000_000;

/// Accepted `burst_packets` values.
pub const BURST_PACKETS_RANGE: std::ops::RangeInclusive<u64> = 1..=100_000_000;

/// Accepted `flood_pps` values.
pub const FLOOD_PPS_RANGE: std::ops::RangeInclusive<u32> = 1..=100_000_000;

/// Accepted `scan_ports` values.
pub const SCAN_PORTS_RANGE: std::ops::RangeInclusive<u32> = 2..=65_536;

/// Accepted `scan_window_ms` values, and the default.
pub const SCAN_WINDOW_MS_RANGE: std::ops::RangeInclusive<u32> = 10..=60_000;
pub const DEFAULT_SCAN_WINDOW_MS: u32 = 1_000;

/// Longest host TAP device name: `IFNAMSIZ` (16) minus the terminating NUL
/// (`include/uapi/linux/if.h`).
pub const TAP_NAME_MAX_LEN: usize = 15;

/// Accepted `buffer_bytes` of a `[[uart_link]]`: the bytes in flight per direction, from
/// one 16550 FIFO's worth (64) to 1 MiB.
pub const UART_LINK_BUFFER_BYTES_RANGE: std::ops::RangeInclusive<u32> = 64..=1 << 20;

/// `buffer_bytes` of a `[[uart_link]]` when absent: a page, about a third of a second of a
/// 115200-baud line.
pub const DEFAULT_UART_LINK_BUFFER_BYTES: u32 = 4096;

/// Accepted guest CIDs of a `vsock` device: 0 and 1 are reserved, 2 is the host
/// (`VMADDR_CID_HOST`) and `u32::MAX` is `VMADDR_CID_ANY` (vsock(7); virtio 1.2 section 5.10).
pub const VSOCK_CID_RANGE: std::ops::RangeInclusive<u32> = 3..=0xFFFF_FFFE;

/// Accepted vsock ports: every `u32` but `VMADDR_PORT_ANY` (`u32::MAX`, vsock(7)).
pub const VSOCK_PORT_RANGE: std::ops::RangeInclusive<u32> = 0..=0xFFFF_FFFE;

/// Bytes of a port's largest message (`max_message_bytes`); the ABI's `MAX_MESSAGE_BYTES`.
pub const PORT_MESSAGE_BYTES_RANGE: std::ops::RangeInclusive<u32> = 1..=8192;

/// Messages a queuing port holds (`depth`).
pub const PORT_DEPTH_RANGE: std::ops::RangeInclusive<u32> = 1..=1024;

/// A sampling destination's `refresh_period_us`: from 100 µs to an hour.
pub const REFRESH_PERIOD_US_RANGE: std::ops::RangeInclusive<u64> = 100..=3_600_000_000;

/// Longest port or doorbell name, in bytes (the ABI's `PORT_NAME_MAX`).
pub const PORT_NAME_MAX_BYTES: usize = 32;

/// Most bytes of shared memory one queuing channel may take (`depth` × the slot of a
/// `max_message_bytes` message), so a description cannot ask for unbounded memory.
pub const MAX_CHANNEL_BYTES: u64 = 16 << 20;

/// The vsock port (on the host, CID 2) where a partition with ports or doorbells and a vsock
/// device reaches them: the APEX service (`docs/ports.md`). A vsock device of such a
/// partition cannot forward this port elsewhere.
pub const APEX_VSOCK_PORT: u32 = 653;

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

/// Whether `name` is acceptable as a host TAP device name: 1 to [`TAP_NAME_MAX_LEN`]
/// characters from `A-Z`, `a-z`, `0-9`, `_`, `.` and `-`, and neither `.` nor `..` (which
/// Linux refuses, `dev_valid_name()` in `net/core/dev.c`).
pub fn is_valid_tap_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TAP_NAME_MAX_LEN
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Whether `id` is acceptable as a virtio-blk serial: 1 to [`BLOCK_ID_MAX_BYTES`] printable
/// ASCII characters (space to `~`).
pub fn is_valid_block_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= BLOCK_ID_MAX_BYTES && id.chars().all(|c| matches!(c, ' '..='~'))
}

/// The serial of the `ordinal`-th block device (from 0) of partition `partition` when it sets
/// no `id`: `<partition>-vd<letter>`, `a` for the first, as Linux names the guest's disks. A
/// partition name too long for [`BLOCK_ID_MAX_BYTES`] is cut short to fit. `ordinal` is below
/// [`MAX_DEVICES`], so the letter stays within `a..=z`.
pub(crate) fn default_block_id(partition: &str, ordinal: usize) -> String {
    let letter = u8::try_from(ordinal % 26).map_or('a', |offset| char::from(b'a' + offset));
    let suffix = format!("-vd{letter}");
    let room = BLOCK_ID_MAX_BYTES - suffix.len();
    // Partition names are ASCII, so every byte index is a character boundary.
    let stem = partition
        .get(..room.min(partition.len()))
        .unwrap_or(partition);
    format!("{stem}{suffix}")
}

/// A MAC address written as six two-digit hexadecimal octets separated by `:`
/// (`52:54:00:12:34:01`, either case).
pub(crate) fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut octets = text.split(':');
    for byte in &mut mac {
        let octet = octets.next()?;
        if octet.len() != 2 || !octet.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(octet, 16).ok()?;
    }
    octets.next().is_none().then_some(mac)
}

/// `mac` in the description's notation, lower case.
pub(crate) fn format_mac(mac: [u8; 6]) -> String {
    let octets: Vec<String> = mac.iter().map(|octet| format!("{octet:02x}")).collect();
    octets.join(":")
}

/// What makes a well-formed MAC address unusable for a guest's NIC, if anything: the group
/// bit (bit 0 of the first octet, IEEE 802-2014 section 8.2) marks a multicast address, and
/// the all-zero address is refused by Linux's `is_valid_ether_addr()`.
pub(crate) fn mac_problem(mac: [u8; 6]) -> Option<String> {
    if mac[0] & 1 == 1 {
        Some(format!(
            "{} is a multicast address (bit 0 of the first octet is set); a device needs a \
             unicast address",
            format_mac(mac)
        ))
    } else if mac == [0; 6] {
        Some("00:00:00:00:00:00 is not a usable address".to_owned())
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
    fn tap_name_of_fifteen_characters_is_valid() {
        let valid = is_valid_tap_name("bh-linux0_eth.1");

        assert!(valid);
    }

    #[test]
    fn tap_name_of_sixteen_characters_is_invalid() {
        let valid = is_valid_tap_name(&"t".repeat(16));

        assert!(!valid);
    }

    #[test]
    fn tap_name_with_slash_is_invalid() {
        let valid = is_valid_tap_name("tap/0");

        assert!(!valid);
    }

    #[test]
    fn tap_name_dot_dot_is_invalid() {
        let valid = is_valid_tap_name("..");

        assert!(!valid);
    }

    #[test]
    fn block_id_of_twenty_printable_characters_is_valid() {
        let valid = is_valid_block_id("Disk 0 ~ serial #123");

        assert!(valid);
    }

    #[test]
    fn block_id_of_twenty_one_characters_is_invalid() {
        let valid = is_valid_block_id(&"d".repeat(21));

        assert!(!valid);
    }

    #[test]
    fn block_id_with_non_ascii_character_is_invalid() {
        let valid = is_valid_block_id("disk-é");

        assert!(!valid);
    }

    #[test]
    fn block_id_with_tab_is_invalid() {
        let valid = is_valid_block_id("disk\t0");

        assert!(!valid);
    }

    #[test]
    fn default_block_id_names_the_first_disk_vda() {
        let id = default_block_id("linux", 0);

        assert_eq!(id, "linux-vda");
    }

    #[test]
    fn default_block_id_of_third_disk_ends_in_c() {
        let id = default_block_id("linux", 2);

        assert_eq!(id, "linux-vdc");
    }

    #[test]
    fn default_block_id_cuts_a_long_partition_name_to_fit_twenty_bytes() {
        let id = default_block_id("a-rather-long-partition-name", 0);

        assert_eq!(id, "a-rather-long-pa-vda");
    }

    #[test]
    fn mac_in_either_case_is_parsed() {
        let mac = parse_mac("52:54:00:aB:cd:EF");

        assert_eq!(mac, Some([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]));
    }

    #[test]
    fn mac_with_five_octets_is_refused() {
        let mac = parse_mac("52:54:00:12:34");

        assert_eq!(mac, None);
    }

    #[test]
    fn mac_with_seven_octets_is_refused() {
        let mac = parse_mac("52:54:00:12:34:56:78");

        assert_eq!(mac, None);
    }

    #[test]
    fn mac_with_one_digit_octet_is_refused() {
        let mac = parse_mac("52:54:0:12:34:56");

        assert_eq!(mac, None);
    }

    #[test]
    fn mac_with_dashes_is_refused() {
        let mac = parse_mac("52-54-00-12-34-56");

        assert_eq!(mac, None);
    }

    #[test]
    fn mac_with_sign_in_octet_is_refused() {
        let mac = parse_mac("52:54:00:12:34:+5");

        assert_eq!(mac, None);
    }

    #[test]
    fn mac_is_formatted_in_lower_case() {
        let text = format_mac([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

        assert_eq!(text, "52:54:00:ab:cd:ef");
    }

    #[test]
    fn locally_administered_unicast_mac_is_usable() {
        let problem = mac_problem([0x52, 0x54, 0, 0x12, 0x34, 0x01]);

        assert_eq!(problem, None);
    }

    #[test]
    fn mac_with_group_bit_is_refused_as_multicast() {
        let problem = mac_problem([0x01, 0, 0x5e, 0, 0, 0x01]);

        assert!(problem.is_some_and(|p| p.contains("multicast")));
    }

    #[test]
    fn all_zero_mac_is_refused() {
        let problem = mac_problem([0; 6]);

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
