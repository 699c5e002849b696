//! The guest command line: space-separated `key=value` words (the convention of
//! `bulkhead_guest_sdk::cmdline`). Keys:
//!
//! * `period_us` (default 1000, 1..=1_000_000): the task's period;
//! * `duration_s` (default 0 = run forever): reports to print before powering off;
//! * `first_report_ms` (default 1000, 1..=3_600_000): when the first report comes (later ones
//!   come every second), so that a restarted partition shows it is back quickly;
//! * `selftest` (0 or 1, default 0);
//! * `probe` (`windows`): run the window probe instead of the periodic task, with `gap_us`
//!   (default 200, 1..=1_000_000): the shortest stretch without the vCPU that counts as a gap;
//! * to exercise the health monitor: `stall_after_s` (stop kicking the watchdog after that
//!   many seconds; default 0 = never), `panic_after_s` (report a panic after that many
//!   seconds; default 0 = never) and `miss_after_s` (report one missed deadline each second
//!   from then on; default 0 = never);
//! * `ports` (0, 1 or `peer`, default 0): besides the periodic task, talk to the ports and
//!   doorbells of ABI 0.3: `1` as the control side (`crate::ports`), with `ports_stop_s`
//!   (default 0 = never): stop writing telemetry after that many seconds; `peer` as the other
//!   side, which runs a fixed script against the control side (`crate::peer`).
//!
//! Unknown keys and words without `=` are ignored (a monitor or a boot loader may add its
//! own); a known key with a bad value is ignored (the option keeps its default, or the value
//! an earlier word gave it) and reported.

use bulkhead_guest_sdk::cmdline::{options, set_decimal};

/// Default task period.
pub const DEFAULT_PERIOD_US: u64 = 1000;
/// Longest accepted period: statistics are reported once a second.
pub const MAX_PERIOD_US: u64 = 1_000_000;
/// Default delay of the first report.
pub const DEFAULT_FIRST_REPORT_MS: u64 = 1000;
/// Longest accepted delay of the first report (an hour).
pub const MAX_FIRST_REPORT_MS: u64 = 3_600_000;
/// Default shortest gap the window probe counts.
pub const DEFAULT_GAP_US: u64 = 200;
/// Longest accepted `gap_us`.
pub const MAX_GAP_US: u64 = 1_000_000;

/// Which side of the ports and doorbells of ABI 0.3 the task plays, if any (`ports=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortsMode {
    /// `ports=0`: none; the task only measures.
    Off,
    /// `ports=1`: the control side (`crate::ports`): writes telemetry, answers commands.
    Control,
    /// `ports=peer`: the other ends, driven by a script (`crate::peer`).
    Peer,
}

/// What the command line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Period of the task, in microseconds.
    pub period_us: u64,
    /// Reports to print before powering off; 0 runs forever.
    pub duration_s: u64,
    /// Milliseconds from the start of the measurement to the first report.
    pub first_report_ms: u64,
    /// Exercise the ABI's error paths before the periodic loop.
    pub selftest: bool,
    /// Run the window probe instead of the periodic task.
    pub probe_windows: bool,
    /// The window probe's gap threshold, in microseconds.
    pub gap_us: u64,
    /// Seconds after which the watchdog is no longer kicked; 0: kicked for ever.
    pub stall_after_s: u64,
    /// Seconds after which a panic is reported; 0: never.
    pub panic_after_s: u64,
    /// Seconds after which one deadline miss is reported each second; 0: never.
    pub miss_after_s: u64,
    /// Exercise the ports and doorbells beside the periodic task, and as which side.
    pub ports: PortsMode,
    /// Seconds after which the ports mode stops writing telemetry; 0: never.
    pub ports_stop_s: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            period_us: DEFAULT_PERIOD_US,
            duration_s: 0,
            first_report_ms: DEFAULT_FIRST_REPORT_MS,
            selftest: false,
            probe_windows: false,
            gap_us: DEFAULT_GAP_US,
            stall_after_s: 0,
            panic_after_s: 0,
            miss_after_s: 0,
            ports: PortsMode::Off,
            ports_stop_s: 0,
        }
    }
}

/// The options, and the first word whose value was rejected (if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The options; defaults where no acceptable value was given.
    pub options: Options,
    /// The first `key=value` word with a known key and an unacceptable value.
    pub rejected: Option<&'a [u8]>,
}

/// Parses `cmdline` (without its terminating NUL).
pub fn parse(cmdline: &[u8]) -> Parsed<'_> {
    let mut o = Options::default();
    let mut rejected = None;
    for word in options(cmdline) {
        let value = word.value;
        let ok = match word.key {
            b"period_us" => set_decimal(&mut o.period_us, value, 1, MAX_PERIOD_US),
            b"duration_s" => set_decimal(&mut o.duration_s, value, 0, u64::MAX),
            b"first_report_ms" => {
                set_decimal(&mut o.first_report_ms, value, 1, MAX_FIRST_REPORT_MS)
            }
            b"gap_us" => set_decimal(&mut o.gap_us, value, 1, MAX_GAP_US),
            b"stall_after_s" => set_decimal(&mut o.stall_after_s, value, 0, u64::MAX),
            b"panic_after_s" => set_decimal(&mut o.panic_after_s, value, 0, u64::MAX),
            b"miss_after_s" => set_decimal(&mut o.miss_after_s, value, 0, u64::MAX),
            b"ports_stop_s" => set_decimal(&mut o.ports_stop_s, value, 0, u64::MAX),
            b"selftest" => set_flag(&mut o.selftest, value),
            b"ports" => set_ports(&mut o.ports, value),
            b"probe" if value == b"windows" => {
                o.probe_windows = true;
                true
            }
            b"probe" => false,
            _ => true,
        };
        if !ok && rejected.is_none() {
            rejected = Some(word.word);
        }
    }
    Parsed {
        options: o,
        rejected,
    }
}

/// Stores `0` or `1` into `field` as a flag.
fn set_flag(field: &mut bool, value: &[u8]) -> bool {
    let mut flag = 0;
    let ok = set_decimal(&mut flag, value, 0, 1);
    if ok {
        *field = flag == 1;
    }
    ok
}

/// Stores the mode `ports=` names into `field`: `0`, `1` or `peer`.
fn set_ports(field: &mut PortsMode, value: &[u8]) -> bool {
    let mode = match value {
        b"0" => PortsMode::Off,
        b"1" => PortsMode::Control,
        b"peer" => PortsMode::Peer,
        _ => return false,
    };
    *field = mode;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_exercise_options_are_read() {
        let parsed = parse(b"stall_after_s=2 panic_after_s=3 miss_after_s=4");

        assert_eq!(
            (
                parsed.options.stall_after_s,
                parsed.options.panic_after_s,
                parsed.options.miss_after_s
            ),
            (2, 3, 4)
        );
    }

    #[test]
    fn ports_mode_and_its_stop_are_read() {
        let parsed = parse(b"period_us=500 ports=1 ports_stop_s=5");

        assert_eq!(
            (
                parsed.options.ports,
                parsed.options.ports_stop_s,
                parsed.rejected
            ),
            (PortsMode::Control, 5, None)
        );
    }

    #[test]
    fn ports_mode_is_off_and_never_stops_by_default() {
        let o = Options::default();

        assert_eq!((o.ports, o.ports_stop_s), (PortsMode::Off, 0));
    }

    #[test]
    fn peer_side_of_the_ports_is_read() {
        let parsed = parse(b"ports=peer duration_s=0");

        assert_eq!(
            (parsed.options.ports, parsed.rejected),
            (PortsMode::Peer, None)
        );
    }

    #[test]
    fn ports_zero_turns_an_earlier_ports_mode_off() {
        let parsed = parse(b"ports=peer ports=0");

        assert_eq!(
            (parsed.options.ports, parsed.rejected),
            (PortsMode::Off, None)
        );
    }

    #[test]
    fn ports_mode_name_is_matched_exactly() {
        let parsed = parse(b"ports=1 ports=Peer ports=peers");

        assert_eq!(
            (parsed.options.ports, parsed.rejected),
            (PortsMode::Control, Some(&b"ports=Peer"[..]))
        );
    }

    #[test]
    fn ports_mode_other_than_zero_one_or_peer_is_rejected() {
        let parsed = parse(b"ports=yes ports_stop_s=-1");

        assert_eq!(
            (
                parsed.options.ports,
                parsed.options.ports_stop_s,
                parsed.rejected
            ),
            (PortsMode::Off, 0, Some(&b"ports=yes"[..]))
        );
    }

    #[test]
    fn empty_command_line_gives_defaults() {
        let parsed = parse(b"");

        assert_eq!(
            parsed,
            Parsed {
                options: Options::default(),
                rejected: None
            }
        );
    }

    #[test]
    fn defaults_are_a_one_millisecond_task_reporting_every_second_for_ever() {
        let o = Options::default();

        assert_eq!(
            (
                o.period_us,
                o.duration_s,
                o.first_report_ms,
                o.probe_windows,
                o.gap_us
            ),
            (1000, 0, 1000, false, 200)
        );
    }

    #[test]
    fn known_keys_are_read_and_unknown_ones_ignored() {
        let parsed = parse(b"console=ttyS0 period_us=250  duration_s=3 quiet selftest=1\n");

        assert_eq!(
            parsed.options,
            Options {
                period_us: 250,
                duration_s: 3,
                selftest: true,
                ..Options::default()
            }
        );
        assert_eq!(parsed.rejected, None);
    }

    #[test]
    fn first_report_delay_is_read() {
        let parsed = parse(b"first_report_ms=50");

        assert_eq!(parsed.options.first_report_ms, 50);
    }

    #[test]
    fn zero_first_report_delay_is_rejected() {
        let parsed = parse(b"first_report_ms=0");

        assert_eq!(
            (parsed.options.first_report_ms, parsed.rejected),
            (DEFAULT_FIRST_REPORT_MS, Some(&b"first_report_ms=0"[..]))
        );
    }

    #[test]
    fn window_probe_and_its_gap_are_read() {
        let parsed = parse(b"probe=windows gap_us=500");

        assert_eq!(
            (parsed.options.probe_windows, parsed.options.gap_us),
            (true, 500)
        );
    }

    #[test]
    fn unknown_probe_is_rejected() {
        let parsed = parse(b"probe=cache");

        assert_eq!(
            (parsed.options.probe_windows, parsed.rejected),
            (false, Some(&b"probe=cache"[..]))
        );
    }

    #[test]
    fn out_of_range_period_keeps_the_default_and_is_reported() {
        let parsed = parse(b"period_us=0 duration_s=2");

        assert_eq!(
            parsed.options,
            Options {
                duration_s: 2,
                ..Options::default()
            }
        );
        assert_eq!(parsed.rejected, Some(&b"period_us=0"[..]));
    }

    #[test]
    fn non_numeric_and_overflowing_values_are_rejected() {
        let parsed = parse(b"selftest=yes duration_s=99999999999999999999");

        assert_eq!(parsed.options, Options::default());
        assert_eq!(parsed.rejected, Some(&b"selftest=yes"[..]));
    }

    #[test]
    fn later_words_override_earlier_ones() {
        let parsed = parse(b"period_us=100 period_us=200");

        assert_eq!(parsed.options.period_us, 200);
    }
}
