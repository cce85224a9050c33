//! RFC 3339 timestamps for events, written straight into a buffer.
//!
//! Every event carries one (`2026-11-25T10:04:05.123456Z`, UTC, microseconds). Going through
//! `humantime`'s `Display` and `fmt` cost a few hundred instructions an event; here the text of
//! the date and time is worked out once a second per thread (events come thousands to a
//! second) and only the microseconds are written for each.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The last second written on this thread, and its `YYYY-MM-DDTHH:MM:SS.` text.
    static LAST_SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
}

/// Appends `at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (the same text as
/// `humantime::format_rfc3339_micros`). Times before 1970 are written as the epoch.
pub fn push_rfc3339_micros(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (last, mut second) = LAST_SECOND.get();
    if last != secs {
        second = second_text(secs);
        LAST_SECOND.set((secs, second));
    }
    let mut micros = *b"000000Z";
    put_digits(&mut micros[..6], u64::from(since.subsec_micros()));
    out.extend_from_slice(&second);
    out.extend_from_slice(&micros);
}

/// `YYYY-MM-DDTHH:MM:SS.` for `secs` after the epoch.
fn second_text(secs: u64) -> [u8; 20] {
    let (year, month, day) = civil_date(secs / 86_400);
    let of_day = secs % 86_400;
    let mut text = *b"0000-00-00T00:00:00.";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], of_day / 3600);
    put_digits(&mut text[14..16], of_day / 60 % 60);
    put_digits(&mut text[17..19], of_day % 60);
    text
}

/// Writes the last `slot.len()` decimal digits of `n`, zero-padded.
fn put_digits(slot: &mut [u8], mut n: u64) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so that leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn written(at: SystemTime) -> String {
        let mut out = Vec::new();
        push_rfc3339_micros(&mut out, at);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_same_text_as_humantime() {
        // Month and year ends, leap days (2000 is a leap year, 2100 is not), and a spread of
        // ordinary moments up to year 9999.
        let mut moments: Vec<u64> = vec![0, 59, 86_399, 86_400, 951_782_400, 951_868_800, 4_107_542_400, 4_107_456_000];
        moments.extend((0..2_000u64).map(|i| i * 125_829_119 % 253_402_300_799));
        for secs in moments {
            for micros in [0, 1, 999_999, 123_456] {
                let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
                assert_eq!(written(at), humantime::format_rfc3339_micros(at).to_string(), "{secs}.{micros}");
            }
        }
    }

    #[test]
    fn before_the_epoch_is_the_epoch() {
        assert_eq!(written(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00.000000Z");
    }
}
