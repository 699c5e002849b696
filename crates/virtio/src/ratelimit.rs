//! Rate limiting for the log lines a guest can trigger (`STYLE.md`, "The guest is hostile"):
//! at most one line per cause per interval, the next one carrying the count of lines
//! suppressed meanwhile. Same behaviour as `bulkhead_devices::RateLimitedLog` with a burst of
//! one, kept per cause; this crate does not depend on the legacy device crate for it.

use std::io::Write;
use std::time::{Duration, Instant};

/// One window per cause, `N` causes.
pub(crate) struct CauseLog<const N: usize> {
    interval: Duration,
    last: [Option<Instant>; N],
    suppressed: [u64; N],
    sink: Box<dyn Write + Send>,
}

impl<const N: usize> CauseLog<N> {
    /// Lines go to the monitor's standard error (the supervisor prefixes them with the
    /// partition's name).
    pub fn new(interval: Duration) -> Self {
        Self::with_sink(interval, Box::new(std::io::stderr()))
    }

    pub fn with_sink(interval: Duration, sink: Box<dyn Write + Send>) -> Self {
        CauseLog {
            interval,
            last: [None; N],
            suppressed: [0; N],
            sink,
        }
    }

    /// Writes `line` for `cause` if its window allows; returns whether it was written.
    pub fn emit(&mut self, cause: usize, line: std::fmt::Arguments<'_>) -> bool {
        self.emit_at(Instant::now(), cause, line)
    }

    fn emit_at(&mut self, now: Instant, cause: usize, line: std::fmt::Arguments<'_>) -> bool {
        let (Some(last), Some(suppressed)) =
            (self.last.get_mut(cause), self.suppressed.get_mut(cause))
        else {
            return false;
        };
        if let Some(t) = *last {
            if now.saturating_duration_since(t) < self.interval {
                *suppressed += 1;
                return false;
            }
        }
        *last = Some(now);
        let skipped = std::mem::take(suppressed);
        let _ = if skipped > 0 {
            writeln!(self.sink, "{line} ({skipped} similar messages suppressed)")
        } else {
            writeln!(self.sink, "{line}")
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SharedSink;

    #[test]
    fn one_line_per_cause_per_interval_then_the_suppressed_count() {
        let sink = SharedSink::default();
        let mut log = CauseLog::<2>::with_sink(Duration::from_secs(10), Box::new(sink.clone()));
        let t0 = Instant::now();

        let first: Vec<bool> = (0..3)
            .map(|_| log.emit_at(t0, 0, format_args!("loop")))
            .collect();
        let other_cause = log.emit_at(t0, 1, format_args!("range"));
        let later = log.emit_at(t0 + Duration::from_secs(11), 0, format_args!("loop"));

        assert_eq!(first, [true, false, false]);
        assert!(other_cause);
        assert!(later);
        assert_eq!(
            String::from_utf8(sink.contents()).unwrap(),
            "loop\nrange\nloop (2 similar messages suppressed)\n"
        );
    }

    #[test]
    fn unknown_cause_writes_nothing() {
        let sink = SharedSink::default();
        let mut log = CauseLog::<1>::with_sink(Duration::from_secs(1), Box::new(sink.clone()));

        let written = log.emit(5, format_args!("x"));

        assert!(!written);
        assert!(sink.contents().is_empty());
    }
}
