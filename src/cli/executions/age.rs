//! Times on the command line of `executions list --since T` and `executions prune
//! --older-than D`: an age (`30m`, `2h`, `7d`, `1h 30m`) counted back from now, or, for
//! `--since`, an RFC 3339 time. Both become the store's own form of a time (RFC 3339 in UTC
//! with milliseconds), which orders as text the way the times do.

use crate::diagnostic::{Code, Diagnostic};
use std::time::{Duration, SystemTime};

/// An age such as `7d`; a diagnostic (exit 2) when it does not read as one.
pub fn parse_age(option: &str, text: &str) -> Result<Duration, Diagnostic> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        Diagnostic::plain(Code::BadOption, format!("{option} {text}: not a duration ({e})"))
            .with_help("a number and a unit: 30m, 2h, 7d, 1h 30m")
    })
}

/// The time `age` ago, as the store writes times.
pub fn ago(age: Duration) -> String {
    let at = SystemTime::now().checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
    stored_form(at)
}

/// `--since`: an age (`2h`) or an RFC 3339 time (`2026-11-30T08:00:00Z`, `…+02:00`).
pub fn parse_since(text: &str) -> Result<String, Diagnostic> {
    if let Some(at) = parse_time(text.trim()) {
        return Ok(stored_form(at));
    }
    let age = humantime::parse_duration(text.trim()).map_err(|_| {
        Diagnostic::plain(Code::BadOption, format!("--since {text}: neither a duration nor an RFC 3339 time"))
            .with_help("a duration back from now (30m, 2h, 7d) or a time such as 2026-11-30T08:00:00Z")
    })?;
    Ok(ago(age))
}

fn stored_form(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// An RFC 3339 time; humantime reads UTC only, so an offset (`+02:00`) is applied here.
fn parse_time(text: &str) -> Option<SystemTime> {
    let (local, offset) = split_offset(text);
    let at = humantime::parse_rfc3339_weak(local).ok()?;
    match offset {
        // East of UTC: the same wall-clock time came earlier in UTC.
        Some(east) if east >= 0 => at.checked_sub(Duration::from_secs(east as u64)),
        Some(west) => at.checked_add(Duration::from_secs(west.unsigned_abs())),
        None => Some(at),
    }
}

/// `2026-11-30T10:00:00+02:00` → (`2026-11-30T10:00:00`, seconds east of UTC).
fn split_offset(text: &str) -> (&str, Option<i64>) {
    let Some(at) = text.len().checked_sub(6).filter(|&at| at >= 19 && text.is_char_boundary(at)) else {
        return (text, None);
    };
    let tail = &text.as_bytes()[at..];
    let digits = |a: u8, b: u8| Some(i64::from((a as char).to_digit(10)? * 10 + (b as char).to_digit(10)?));
    let sign = match tail[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return (text, None),
    };
    match (tail[3] == b':').then(|| Some(digits(tail[1], tail[2])? * 3600 + digits(tail[4], tail[5])? * 60)) {
        Some(Some(seconds)) => (&text[..at], Some(sign * seconds)),
        _ => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An RFC 3339 time with an offset was out of reach of humantime: `--since` refused it.
    #[test]
    fn an_offset_is_applied() {
        assert_eq!(parse_since("2026-11-30T10:00:00+02:00").unwrap(), "2026-11-30T08:00:00.000Z");
        assert_eq!(parse_since("2026-11-30T10:00:00-01:30").unwrap(), "2026-11-30T11:30:00.000Z");
        assert_eq!(parse_since("2026-11-30T10:00:00Z").unwrap(), "2026-11-30T10:00:00.000Z");
        assert_eq!(parse_since("2026-11-30T10:00:00.5Z").unwrap(), "2026-11-30T10:00:00.500Z");
    }

    #[test]
    fn an_age_counts_back_from_now() {
        let since = parse_since("2h").unwrap();
        assert!(since < ago(Duration::from_secs(7199)) && since > ago(Duration::from_secs(7201)), "{since}");
        assert!(parse_since("yesterday").is_err());
        assert!(parse_age("--older-than", "7x").is_err());
        assert_eq!(parse_age("--older-than", "7d").unwrap(), Duration::from_secs(7 * 86400));
    }
}
