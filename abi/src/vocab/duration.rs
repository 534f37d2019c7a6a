//! [`Duration`]: the one grammar for a length of time that a person types,
//! `250ms`, `5s` or `2m`.

use std::fmt;
use std::str::FromStr;

use super::ParseError;

/// A length of time with millisecond resolution, written as a number and a
/// unit: `250ms`, `5s`, `2m`. A number without its unit is refused (is `5`
/// seconds or milliseconds?), and so is anything that does not fit in a
/// `u64` of milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    ms: u64,
}

impl Duration {
    /// Zero.
    pub const ZERO: Duration = Duration { ms: 0 };

    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration { ms }
    }

    /// `s` seconds, saturating.
    pub const fn from_secs(s: u64) -> Duration {
        Duration {
            ms: s.saturating_mul(1000),
        }
    }

    /// In milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.ms
    }

    /// In milliseconds if that fits a `u32` (the ring ABI's width).
    pub fn as_millis_u32(self) -> Option<u32> {
        u32::try_from(self.ms).ok()
    }

    /// As a standard library duration.
    pub const fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.ms)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> std::time::Duration {
        d.to_std()
    }
}

impl fmt::Display for Duration {
    /// The largest unit that divides it exactly: `2m`, `5s`, `250ms`; zero
    /// is `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ms {
            0 => f.write_str("0s"),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

/// Longest number part accepted: 20 digits is already past `u64::MAX`.
const MAX_DIGITS: usize = 20;

impl FromStr for Duration {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Duration, ParseError> {
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        if num.is_empty() {
            return Err(ParseError::new(format!(
                "{s:?}: a duration is a number and a unit: 250ms, 5s, 2m"
            )));
        }
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "" => {
                return Err(ParseError::new(format!(
                    "{s:?}: give a unit: {s}s or {s}ms"
                )));
            }
            _ => {
                return Err(ParseError::new(format!(
                    "{s:?}: the unit is ms, s or m (250ms, 5s, 2m)"
                )));
            }
        };
        (num.len() <= MAX_DIGITS)
            .then(|| num.parse::<u64>().ok())
            .flatten()
            .and_then(|n| n.checked_mul(scale))
            .map(Duration::from_millis)
            .ok_or_else(|| ParseError::new(format!("{s:?} is too long")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_print_back() {
        for (s, ms) in [("250ms", 250), ("5s", 5000), ("2m", 120_000), ("0s", 0)] {
            let d: Duration = s.parse().unwrap();
            assert_eq!(d.as_millis(), ms, "{s}");
            assert_eq!(d.to_string(), s);
        }
        assert_eq!("1500ms".parse::<Duration>().unwrap().to_string(), "1500ms");
        assert_eq!("60s".parse::<Duration>().unwrap().to_string(), "1m");
        assert_eq!("0ms".parse::<Duration>().unwrap(), Duration::ZERO);
        assert_eq!(
            std::time::Duration::from("30s".parse::<Duration>().unwrap()),
            std::time::Duration::from_secs(30)
        );
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let msg = |s: &str| s.parse::<Duration>().unwrap_err().to_string();
        assert!(msg("5").contains("give a unit"), "{}", msg("5"));
        assert!(msg("5h").contains("the unit is ms, s or m"));
        assert!(msg("").contains("a number and a unit"));
        assert!(msg("s").contains("a number and a unit"));
        assert!(msg("-5s").contains("a number and a unit"));
        assert!(msg("+5s").contains("a number and a unit"));
        assert!(msg("5 s").contains("the unit"));
        assert!(msg("5sec").contains("the unit"));
        assert!(msg("99999999999999999999m").contains("too long"));
        assert!(msg("999999999999999999999999ms").contains("too long"));
        assert!(msg("5.5s").contains("the unit"));
    }

    #[test]
    fn every_value_round_trips() {
        for ms in [1, 999, 1000, 59_999, 60_000, 61_000, u64::MAX] {
            let d = Duration::from_millis(ms);
            assert_eq!(d.to_string().parse::<Duration>(), Ok(d), "{ms}");
        }
        assert_eq!(
            Duration::from_millis(u64::from(u32::MAX) + 1).as_millis_u32(),
            None
        );
    }
}
