//! The system's event log: one line per health-monitor event or partition lifecycle change,
//! appended by the supervisor and by partition processes (each line one `write` to a file
//! opened in append mode, so lines from several processes never interleave), shown by
//! `bulkhead events`.
//!
//! Line format: `2026-11-22T05:31:36.123Z partition=NAME event=EVENT action=ACTION detail`,
//! the time in UTC.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable through which the supervisor names the event log.
pub const EVENT_LOG_ENV: &str = "BULKHEAD_EVENT_LOG";

/// An open event log.
#[derive(Debug)]
pub struct EventLog {
    file: File,
}

impl EventLog {
    /// Opens (creating) the log at `path`, and its folder.
    pub fn open(path: &Path) -> std::io::Result<EventLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog { file })
    }

    /// The log named by [`EVENT_LOG_ENV`], if any (partition processes).
    pub fn from_env() -> Option<EventLog> {
        let path = std::env::var_os(EVENT_LOG_ENV).filter(|p| !p.is_empty())?;
        EventLog::open(Path::new(&path)).ok()
    }

    /// Appends one event. Failures are ignored: the log must never stop a partition.
    pub fn record(&self, partition: &str, event: &str, action: &str, detail: &str) {
        let line = format!(
            "{} partition={partition} event={event} action={action} {detail}\n",
            utc_now()
        );
        let _ = (&self.file).write_all(line.as_bytes());
    }
}

/// Where the event log of system `name` lives: `$XDG_STATE_HOME/bulkhead/<name>.events`, else
/// `~/.local/state/bulkhead/<name>.events`, else the temporary directory's `bulkhead` folder.
pub fn default_path(name: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|home| PathBuf::from(home).join(".local/state"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("bulkhead").join(format!("{name}.events"))
}

/// The current time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc_now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(since.as_secs(), since.subsec_millis())
}

/// `secs` since the Unix epoch as an RFC 3339 UTC time with milliseconds.
fn format_utc(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_utc() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        // 2026-11-22T05:31:36Z
        assert_eq!(format_utc(1_795_325_496, 7), "2026-11-22T05:31:36.007Z");
        // 2000-02-29 (leap day), 23:59:59
        assert_eq!(format_utc(951_868_799, 999), "2000-02-29T23:59:59.999Z");
    }

    #[test]
    fn events_from_two_handles_are_whole_lines() {
        let path =
            std::env::temp_dir().join(format!("bulkhead-events-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let a = EventLog::open(&path).unwrap();
        let b = EventLog::open(&path).unwrap();

        a.record("rt", "watchdog", "restart", "timeout_ms=100");
        b.record("linux", "guest_fault", "halt", "triple fault");

        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" partition=rt event=watchdog action=restart timeout_ms=100"));
        assert!(lines[1].contains(" partition=linux event=guest_fault action=halt "));
    }
}
