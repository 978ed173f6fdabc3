//! When cycles run: daily at a UTC time, or every fixed interval.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::error::Error;
// Lives in the crate's low `text` module (the dataset declarations parse
// durations too); re-exported here so `supervise::parse_duration` stays.
pub use crate::text::parse_duration;

/// When the supervisor runs a cycle.
///
/// Parsed from `HH:MM` (daily at that UTC time) or `every DURATION` with a unit
/// of `s`, `m`, `h` or `d` (`every 6h`).
///
/// ```
/// use materia_core::supervise::Schedule;
/// let daily: Schedule = "06:30".parse()?;
/// let after = "2026-11-25T07:00:00Z".parse()?;
/// assert_eq!(daily.next_after(after).to_string(), "2026-11-26T06:30:00Z");
/// let every: Schedule = "every 6h".parse()?;
/// assert_eq!(every.next_after(after).to_string(), "2026-11-25T13:00:00Z");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at this UTC hour and minute.
    DailyAt {
        /// 0-23.
        hour: i8,
        /// 0-59.
        minute: i8,
    },
    /// A fixed interval after the previous cycle's start.
    Every(Duration),
}

impl Schedule {
    /// The first time a cycle is due strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Timestamp {
        match *self {
            Schedule::DailyAt { hour, minute } => {
                // Unix time has 86 400 s in every UTC day.
                let secs = after.as_second();
                let midnight = secs.div_euclid(86_400) * 86_400;
                let today = midnight + i64::from(hour) * 3600 + i64::from(minute) * 60;
                let next = if today > secs { today } else { today + 86_400 };
                Timestamp::from_second(next).unwrap_or(Timestamp::MAX)
            }
            Schedule::Every(interval) => {
                let step = SignedDuration::try_from(interval).unwrap_or(SignedDuration::MAX);
                after.checked_add(step).unwrap_or(Timestamp::MAX)
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::DailyAt { hour, minute } => write!(f, "daily at {hour:02}:{minute:02} UTC"),
            Schedule::Every(d) => write!(f, "every {} s", d.as_secs()),
        }
    }
}

fn bad(value: &str, reason: &str) -> Error {
    Error::InvalidKey {
        what: "schedule",
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Schedule, Error> {
        let t = s.trim();
        if let Some(rest) = t.strip_prefix("every") {
            let interval = parse_duration(rest.trim()).map_err(|reason| bad(s, &reason))?;
            if interval < Duration::from_secs(1) {
                return Err(bad(s, "the interval must be at least 1s"));
            }
            return Ok(Schedule::Every(interval));
        }
        let (h, m) = t
            .split_once(':')
            .ok_or_else(|| bad(s, "expected HH:MM (daily, UTC) or `every 6h`"))?;
        let hour: i8 = h
            .parse()
            .ok()
            .filter(|h| (0..24).contains(h))
            .ok_or_else(|| bad(s, "the hour must be 00-23"))?;
        let minute: i8 = m
            .parse()
            .ok()
            .filter(|m| (0..60).contains(m))
            .ok_or_else(|| bad(s, "the minute must be 00-59"))?;
        Ok(Schedule::DailyAt { hour, minute })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn daily_runs_today_if_still_ahead_else_tomorrow() {
        let s: Schedule = "06:00".parse().expect("valid");
        assert_eq!(
            s.next_after(ts("2026-11-25T05:59:59Z")),
            ts("2026-11-25T06:00:00Z")
        );
        assert_eq!(
            s.next_after(ts("2026-11-25T06:00:00Z")),
            ts("2026-11-26T06:00:00Z")
        );
        assert_eq!(
            s.next_after(ts("2026-12-31T23:00:00Z")),
            ts("2027-01-01T06:00:00Z")
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (input, needle) in [
            ("24:00", "hour"),
            ("06:60", "minute"),
            ("noon", "HH:MM"),
            ("every 5", "unit"),
            ("every 5w", "unit"),
            ("every 0s", "at least"),
        ] {
            let err = input.parse::<Schedule>().expect_err(input).to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
        assert_eq!(
            "every 90s".parse::<Schedule>().expect("valid"),
            Schedule::Every(Duration::from_secs(90))
        );
    }
}
