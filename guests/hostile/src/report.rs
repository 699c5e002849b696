//! What the hostile guest did, counted, and its once-a-second report line:
//!
//! `hostile: t_s=S attack=A,B spins=N bytes_copied=N exits=N console_bytes=N bad_calls=N`
//!
//! Each count covers the second before the line (`t_s` seconds after the start): `spins`
//! iterations of the CPU hog's loop (1024 additions each), `bytes_copied` by the bandwidth
//! hog, `exits` the exit storm caused (one per store, `out` or `cpuid`), `console_bytes`
//! written by the console flood, `bad_calls` paravirtual calls and doorbells the monitor had
//! to refuse or ignore.

use bulkhead_guest_sdk::line::Line;

use crate::attack::Attacks;

/// Running totals of what the attacks did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Iterations of the CPU hog's loop.
    pub spins: u64,
    /// Bytes the bandwidth hog copied.
    pub bytes_copied: u64,
    /// VM exits the exit storm caused.
    pub exits: u64,
    /// Bytes the console flood wrote.
    pub console_bytes: u64,
    /// Bad paravirtual calls and doorbells.
    pub bad_calls: u64,
}

impl Counters {
    /// What was counted since `earlier` (a copy of these counters taken before).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            spins: self.spins.wrapping_sub(earlier.spins),
            bytes_copied: self.bytes_copied.wrapping_sub(earlier.bytes_copied),
            exits: self.exits.wrapping_sub(earlier.exits),
            console_bytes: self.console_bytes.wrapping_sub(earlier.console_bytes),
            bad_calls: self.bad_calls.wrapping_sub(earlier.bad_calls),
        }
    }
}

/// Appends `a,b,c` for `attacks`.
pub fn write_attacks(line: &mut Line, attacks: Attacks) {
    let mut first = true;
    attacks.for_each_name(|name| {
        if !first {
            line.str(b",");
        }
        line.str(name);
        first = false;
    });
}

/// Appends the report line (no newline) for the second ending `t_s` seconds after the start.
pub fn write_report(line: &mut Line, t_s: u64, attacks: Attacks, second: &Counters) {
    line.str(b"hostile: t_s=").u64(t_s).str(b" attack=");
    write_attacks(line, attacks);
    line.str(b" spins=")
        .u64(second.spins)
        .str(b" bytes_copied=")
        .u64(second.bytes_copied)
        .str(b" exits=")
        .u64(second.exits)
        .str(b" console_bytes=")
        .u64(second.console_bytes)
        .str(b" bad_calls=")
        .u64(second.bad_calls);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::Attack;

    #[test]
    fn report_line_has_the_documented_format() {
        let attacks = Attacks::NONE.with(Attack::Cpu).with(Attack::Exits);
        let second = Counters {
            spins: 1,
            bytes_copied: 2,
            exits: 3,
            console_bytes: 4,
            bad_calls: 5,
        };
        let mut line = Line::new();

        write_report(&mut line, 7, attacks, &second);

        assert_eq!(
            line.as_bytes(),
            &b"hostile: t_s=7 attack=cpu,exits spins=1 bytes_copied=2 exits=3 console_bytes=4 bad_calls=5"[..]
        );
    }

    #[test]
    fn counts_are_per_interval() {
        let before = Counters {
            spins: 10,
            exits: 5,
            ..Counters::default()
        };
        let now = Counters {
            spins: 25,
            exits: 5,
            console_bytes: 4096,
            ..Counters::default()
        };

        assert_eq!(
            now.since(&before),
            Counters {
                spins: 15,
                console_bytes: 4096,
                ..Counters::default()
            }
        );
    }
}
