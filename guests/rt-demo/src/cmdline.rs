//! The guest command line: space-separated `key=value` words. Keys: `period_us` (default
//! 1000, 1..=1_000_000), `duration_s` (default 0 = run forever), `selftest` (0 or 1, default
//! 0), and, to exercise the health monitor, `stall_after_s` (stop kicking the watchdog after
//! that many seconds; default 0 = never), `panic_after_s` (report a panic after that many
//! seconds; default 0 = never) and `miss_after_s` (report one missed deadline each second from
//! then on; default 0 = never). Unknown keys and words without `=` are ignored (a monitor or a boot loader may add its
//! own); a known key with a bad value is ignored (the option keeps its default, or the value
//! an earlier word gave it) and reported.

/// Default task period.
pub const DEFAULT_PERIOD_US: u64 = 1000;
/// Longest accepted period: statistics are reported once a second.
pub const MAX_PERIOD_US: u64 = 1_000_000;

/// What the command line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Period of the task, in microseconds.
    pub period_us: u64,
    /// Seconds to run before powering off; 0 runs forever.
    pub duration_s: u64,
    /// Exercise the ABI's error paths before the periodic loop.
    pub selftest: bool,
    /// Seconds after which the watchdog is no longer kicked; 0: kicked for ever.
    pub stall_after_s: u64,
    /// Seconds after which a panic is reported; 0: never.
    pub panic_after_s: u64,
    /// Seconds after which one deadline miss is reported each second; 0: never.
    pub miss_after_s: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            period_us: DEFAULT_PERIOD_US,
            duration_s: 0,
            selftest: false,
            stall_after_s: 0,
            panic_after_s: 0,
            miss_after_s: 0,
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
    let mut options = Options::default();
    let mut rejected = None;
    for word in cmdline
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
    {
        let Some(eq) = word.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, value) = (&word[..eq], &word[eq + 1..]);
        let ok = match key {
            b"period_us" => set(&mut options.period_us, value, 1, MAX_PERIOD_US),
            b"duration_s" => set(&mut options.duration_s, value, 0, u64::MAX),
            b"stall_after_s" => set(&mut options.stall_after_s, value, 0, u64::MAX),
            b"panic_after_s" => set(&mut options.panic_after_s, value, 0, u64::MAX),
            b"miss_after_s" => set(&mut options.miss_after_s, value, 0, u64::MAX),
            b"selftest" => {
                let mut flag = 0;
                let ok = set(&mut flag, value, 0, 1);
                if ok {
                    options.selftest = flag == 1;
                }
                ok
            }
            _ => true,
        };
        if !ok && rejected.is_none() {
            rejected = Some(word);
        }
    }
    Parsed { options, rejected }
}

/// Stores `value` parsed as decimal into `field` if it lies in `min..=max`.
fn set(field: &mut u64, value: &[u8], min: u64, max: u64) -> bool {
    match parse_decimal(value) {
        Some(v) if (min..=max).contains(&v) => {
            *field = v;
            true
        }
        _ => false,
    }
}

/// Parses an unsigned decimal number; `None` if empty, not all digits, or over `u64::MAX`.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
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

    #[test]
    fn decimal_parser_rejects_signs_and_empty_input() {
        assert_eq!(
            [
                parse_decimal(b""),
                parse_decimal(b"-1"),
                parse_decimal(b"+1"),
                parse_decimal(b"007")
            ],
            [None, None, None, Some(7)]
        );
    }
}
