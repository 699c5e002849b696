//! The hostile guest's command line: space-separated `key=value` words (the convention of
//! `bulkhead_guest_sdk::cmdline`). Keys:
//!
//! * `attack` (default `cpu`): comma-separated attacks, `cpu`, `membw`, `exits`, `console`,
//!   `pvcalls`, `crash`, or `all` (every attack but the crash, interleaved); see
//!   [`crate::attack`];
//! * `crash_after_ms`: triple-fault this many ms after the start (with `attack=crash` and no
//!   `crash_after_ms`: at once); given with other attacks, they run until then;
//! * `duration_s` (default 0 = for ever): seconds to attack, then power off;
//! * `exit_kind` (default `mmio`): how the exit storm leaves the guest, `mmio`, `port`,
//!   `doorbell`, `cpuid` or `mix` ([`crate::attack::ExitKind`]);
//! * `membw_mib` (default 64, 2..=1024): the most memory the bandwidth hog copies over (it
//!   takes less when the partition has less RAM above the image);
//! * `console_newline` (0 or 1, default 1): 0 makes the console flood one endless line (and
//!   drops the once-a-second reports, which would end it), to see what a console that
//!   buffers lines does with it.
//!
//! Unknown keys and words without `=` are ignored; a known key with a bad value is ignored
//! (the option keeps its default or an earlier word's value) and reported.

use bulkhead_guest_sdk::cmdline::{options, parse_decimal, set_decimal};

use crate::attack::{Attack, Attacks, ExitKind};

/// Default ceiling of the bandwidth hog's buffer, in MiB: twice the 32 MiB L3 of the build
/// machines.
pub const DEFAULT_MEMBW_MIB: u64 = 64;
/// Smallest and largest accepted `membw_mib`.
pub const MEMBW_MIB_RANGE: (u64, u64) = (2, 1024);

/// What the command line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The attacks, crash included when asked for.
    pub attacks: Attacks,
    /// The `crash_after_ms` given, if any.
    pub crash_after_ms: Option<u64>,
    /// Seconds to attack before powering off; 0: for ever.
    pub duration_s: u64,
    /// How the exit storm leaves the guest.
    pub exit_kind: ExitKind,
    /// Ceiling of the bandwidth hog's buffer, in MiB.
    pub membw_mib: u64,
    /// Whether the console flood ends its lines.
    pub console_newline: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            attacks: Attacks::NONE.with(Attack::Cpu),
            crash_after_ms: None,
            duration_s: 0,
            exit_kind: ExitKind::Mmio,
            membw_mib: DEFAULT_MEMBW_MIB,
            console_newline: true,
        }
    }
}

impl Options {
    /// When to triple-fault, in ms after the start: `crash_after_ms` if given, else at once
    /// when the attacks include the crash, else never.
    pub fn crash_at_ms(&self) -> Option<u64> {
        match self.crash_after_ms {
            Some(ms) => Some(ms),
            None if self.attacks.contains(Attack::Crash) => Some(0),
            None => None,
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
            b"attack" => match parse_attacks(value) {
                Some(attacks) => {
                    o.attacks = attacks;
                    true
                }
                None => false,
            },
            b"crash_after_ms" => match parse_decimal(value) {
                Some(ms) => {
                    o.crash_after_ms = Some(ms);
                    true
                }
                None => false,
            },
            b"duration_s" => set_decimal(&mut o.duration_s, value, 0, u64::MAX),
            b"exit_kind" => match ExitKind::from_name(value) {
                Some(kind) => {
                    o.exit_kind = kind;
                    true
                }
                None => false,
            },
            b"membw_mib" => set_decimal(
                &mut o.membw_mib,
                value,
                MEMBW_MIB_RANGE.0,
                MEMBW_MIB_RANGE.1,
            ),
            b"console_newline" => {
                let mut flag = 0;
                let ok = set_decimal(&mut flag, value, 0, 1);
                if ok {
                    o.console_newline = flag == 1;
                }
                ok
            }
            _ => true,
        };
        if !ok && rejected.is_none() {
            rejected = Some(word.word);
        }
    }
    if o.crash_after_ms.is_some() {
        o.attacks = o.attacks.with(Attack::Crash);
    }
    Parsed {
        options: o,
        rejected,
    }
}

/// `a,b,c` into a set; `None` if a name is unknown or the list is empty.
fn parse_attacks(list: &[u8]) -> Option<Attacks> {
    let mut attacks = Attacks::NONE;
    for name in list.split(|&b| b == b',') {
        attacks = match name {
            b"all" => attacks.union(Attacks::all_sliced()),
            name => attacks.with(Attack::from_name(name)?),
        };
    }
    (!attacks.is_empty()).then_some(attacks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_options_the_guest_hogs_the_cpu_for_ever() {
        let parsed = parse(b"");

        assert_eq!(
            (
                parsed.options,
                parsed.options.crash_at_ms(),
                parsed.rejected
            ),
            (Options::default(), None, None)
        );
        assert!(parsed.options.attacks.contains(Attack::Cpu));
    }

    #[test]
    fn comma_separated_attacks_are_read() {
        let parsed = parse(b"attack=membw,console duration_s=5");

        assert_eq!(
            (parsed.options.attacks, parsed.options.duration_s),
            (Attacks::NONE.with(Attack::Membw).with(Attack::Console), 5)
        );
    }

    #[test]
    fn all_leaves_the_crash_out_unless_a_crash_time_is_given() {
        let plain = parse(b"attack=all").options;
        let crashing = parse(b"attack=all crash_after_ms=500").options;

        assert_eq!(
            (plain.crash_at_ms(), crashing.crash_at_ms()),
            (None, Some(500))
        );
        assert!(crashing.attacks.contains(Attack::Crash));
        assert_eq!(crashing.attacks.sliced().count(), 5);
    }

    #[test]
    fn crash_alone_crashes_at_once() {
        let parsed = parse(b"attack=crash");

        assert_eq!(parsed.options.crash_at_ms(), Some(0));
        assert_eq!(parsed.options.attacks.sliced().count(), 0);
    }

    #[test]
    fn unknown_attack_keeps_the_default_and_is_reported() {
        let parsed = parse(b"attack=cpu,disk exit_kind=doorbell");

        assert_eq!(
            (
                parsed.options.attacks,
                parsed.options.exit_kind,
                parsed.rejected
            ),
            (
                Options::default().attacks,
                ExitKind::Doorbell,
                Some(&b"attack=cpu,disk"[..])
            )
        );
    }

    #[test]
    fn empty_attack_list_is_rejected() {
        assert_eq!(parse(b"attack=").rejected, Some(&b"attack="[..]));
    }

    #[test]
    fn console_flood_can_be_one_endless_line() {
        let parsed = parse(b"attack=console console_newline=0");

        assert!(!parsed.options.console_newline);
    }

    #[test]
    fn membw_ceiling_is_range_checked() {
        let parsed = parse(b"membw_mib=1 membw_mib=16 membw_mib=4096");

        assert_eq!(
            (parsed.options.membw_mib, parsed.rejected),
            (16, Some(&b"membw_mib=1"[..]))
        );
    }
}
