//! Rate limiting for log lines a guest can trigger. A guest must not be able to make the
//! monitor log without bound (`../shared/STYLE.md`, "The guest is hostile"): every such line
//! goes through a [`RateLimitedLog`], which lets through a burst per interval and counts the
//! rest, reporting how many it suppressed the next time it lets a line through.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket for one cause of guest-triggered log lines.
#[derive(Debug)]
pub struct RateLimitedLog {
    state: Mutex<State>,
    burst: u32,
    interval: Duration,
}

#[derive(Debug)]
struct State {
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl RateLimitedLog {
    /// At most `burst` lines per `interval`.
    pub const fn new(burst: u32, interval: Duration) -> Self {
        RateLimitedLog {
            state: Mutex::new(State {
                window_start: None,
                in_window: 0,
                suppressed: 0,
            }),
            burst,
            interval,
        }
    }

    /// Writes `line` to standard error if the budget allows, prefixed with the count of lines
    /// suppressed since the last one that went through. Returns whether it was written.
    pub fn emit(&self, line: std::fmt::Arguments<'_>) -> bool {
        self.emit_at(Instant::now(), line, &mut std::io::stderr())
    }

    fn emit_at(
        &self,
        now: Instant,
        line: std::fmt::Arguments<'_>,
        out: &mut dyn std::io::Write,
    ) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let start = *st.window_start.get_or_insert(now);
        if now.duration_since(start) >= self.interval {
            st.window_start = Some(now);
            st.in_window = 0;
        }
        if st.in_window >= self.burst {
            st.suppressed += 1;
            return false;
        }
        st.in_window += 1;
        let suppressed = std::mem::take(&mut st.suppressed);
        if suppressed > 0 {
            let _ = writeln!(out, "{line} ({suppressed} similar messages suppressed)");
        } else {
            let _ = writeln!(out, "{line}");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_beyond_the_burst_are_suppressed_then_counted() {
        let log = RateLimitedLog::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        let mut out = Vec::new();

        let written: Vec<bool> = (0..5)
            .map(|_| log.emit_at(t0, format_args!("bad"), &mut out))
            .collect();
        let later = log.emit_at(t0 + Duration::from_secs(2), format_args!("bad"), &mut out);

        assert_eq!(written, [true, true, false, false, false]);
        assert!(later);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "bad\nbad\nbad (3 similar messages suppressed)\n"
        );
    }
}
