//! Seconds a script or the command line gives (a sleep, a timeout, a retry interval, an
//! `operation_retry`'s wait): checked where they are given, so that the executor only turns
//! valid ones into `Duration`s, and turns them without a conversion that can panic.

use std::fmt;
use std::time::Duration;

/// The longest wait rhaiflow accepts: 365 days. `Duration` holds far more, but a wait is also
/// a deadline (`Instant::now()` plus it, plus a grace) and a tokio timer, and every one of
/// them must hold it; a year is longer than any task should wait and far inside all of them.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Seconds that are negative, not a number, infinite or above [`MAX_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("must be from 0 to {max} seconds (365 days), not {shown}", max = MAX_SECONDS, shown = Shown(*.0))]
pub struct OutOfRange(pub f64);

/// `secs` if it is a wait rhaiflow accepts.
pub fn checked(secs: f64) -> Result<f64, OutOfRange> {
    if (0.0..=MAX_SECONDS).contains(&secs) {
        Ok(secs)
    } else {
        Err(OutOfRange(secs))
    }
}

/// `secs` as a `Duration`, for the executor. The edges refuse what is out of range; should
/// one get through anyway, it is held to the range here rather than panic a tokio worker
/// (`Duration::from_secs_f64` panics above `Duration::MAX`, and on NaN or a negative value).
pub fn duration(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.clamp(0.0, MAX_SECONDS)).unwrap_or(Duration::ZERO)
}

/// A number of seconds as a message shows it: `1e308`, not three hundred digits.
struct Shown(f64);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_finite() && self.0.abs() >= 1e15 {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_zero_to_a_year_is_accepted() {
        assert_eq!(checked(0.0), Ok(0.0));
        assert_eq!(checked(MAX_SECONDS), Ok(MAX_SECONDS));
        for bad in [-0.5, MAX_SECONDS + 1.0, 1e308, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(checked(bad), Err(OutOfRange(bad)));
        }
        assert!(checked(f64::NAN).is_err());
    }

    // `Duration::from_secs_f64(1e308)` panicked a tokio worker, and the run never ended.
    #[test]
    fn a_duration_never_panics() {
        assert_eq!(duration(1e308), Duration::from_secs(MAX_SECONDS as u64));
        assert_eq!(duration(f64::INFINITY), Duration::from_secs(MAX_SECONDS as u64));
        assert_eq!(duration(-3.0), Duration::ZERO);
        assert_eq!(duration(f64::NAN), Duration::ZERO);
        assert_eq!(duration(1.5), Duration::from_millis(1500));
    }

    #[test]
    fn large_values_are_shown_short() {
        assert_eq!(OutOfRange(1e308).to_string(), "must be from 0 to 31536000 seconds (365 days), not 1e308");
        assert_eq!(OutOfRange(-1.0).to_string(), "must be from 0 to 31536000 seconds (365 days), not -1");
    }
}
