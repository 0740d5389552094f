//! Human units used in configuration and output: durations (`26h`, `1h30m`, `7d`) and sizes (`20GiB`).
//!
//! Parsed by hand rather than through a crate so that the accepted forms are exactly the documented ones and
//! every error can list what is allowed.

use std::fmt;
use std::time::Duration;

/// A value that could not be read as a duration or size; the message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

const DURATION_HELP: &str =
    "expected a duration such as \"30m\", \"26h\", \"1h30m\", \"7d\" (units: s, m, h, d, w)";
const SIZE_HELP: &str = "expected a size such as \"512MiB\", \"20GiB\", \"1.5TB\" (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)";

/// Parses `"26h"`, `"1h30m"`, `"90s"`, `"7d"`, `"2w"`. A bare number is rejected: units are never guessed.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(UnitError(format!("empty duration; {DURATION_HELP}")));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(UnitError(format!(
                "invalid duration {text:?}; {DURATION_HELP}"
            )));
        }
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let (unit, tail) = tail.split_at(unit_len);
        let factor = match unit {
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hr" | "hrs" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            "" => {
                return Err(UnitError(format!(
                    "duration {text:?} has a number without a unit; {DURATION_HELP}"
                )));
            }
            other => {
                return Err(UnitError(format!(
                    "unknown unit {other:?} in duration {text:?}; {DURATION_HELP}"
                )));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| UnitError(format!("number too large in duration {text:?}")))?;
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| UnitError(format!("duration {text:?} is too large")))?;
        rest = tail.trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// Parses `"20GiB"`, `"512 MiB"`, `"1.5TB"`, `"4096"` (bytes).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| UnitError(format!("invalid size {text:?}; {SIZE_HELP}")))?;
    let factor: f64 = match unit.trim() {
        "" | "B" | "b" => 1.0,
        "KiB" | "K" | "k" => 1024.0,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        "TiB" | "T" => 1024.0f64.powi(4),
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        other => {
            return Err(UnitError(format!(
                "unknown unit {other:?} in size {text:?}; {SIZE_HELP}"
            )));
        }
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(UnitError(format!("size {text:?} is out of range")));
    }
    Ok(bytes as u64)
}

/// Formats seconds compactly for tables and messages: `42s`, `3m07s`, `26h00m`, `3d04h`.
pub struct HumanDuration(pub f64);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0.0;
        let secs = self.0.abs();
        let sign = if neg { "-" } else { "" };
        if secs < 1.0 {
            return write!(f, "{sign}{secs:.2}s");
        }
        if secs < 10.0 {
            return write!(f, "{sign}{secs:.1}s");
        }
        let s = secs.round() as u64;
        match s {
            0..=59 => write!(f, "{sign}{s}s"),
            60..=3599 => write!(f, "{sign}{}m{:02}s", s / 60, s % 60),
            3600..=172_799 => write!(f, "{sign}{}h{:02}m", s / 3600, (s % 3600) / 60),
            _ => write!(f, "{sign}{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
        }
    }
}

/// Formats a byte count with binary units: `1.5 GiB`.
pub struct HumanBytes(pub u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0 as f64;
        let mut i = 0;
        while v >= 1024.0 && i < UNITS.len() - 1 {
            v /= 1024.0;
            i += 1;
        }
        if i == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{v:.1} {}", UNITS[i])
        }
    }
}

/// A duration read from configuration text (`"26h"`); see [`parse_duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> serde::Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// A size read from configuration text (`"20GiB"`) or an integer of bytes; see [`parse_size`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// A percentage read from configuration text (`"40%"`), stored as a fraction (0.4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl<'de> serde::Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let v: Option<f64> = s
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse().ok());
        match v {
            Some(v) if (0.0..=100.0).contains(&v) => Ok(Percent(v / 100.0)),
            _ => Err(serde::de::Error::custom(format!(
                "invalid percentage {s:?}; expected a value such as \"40%\" between 0% and 100%"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("26h"), Ok(Duration::from_secs(26 * 3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            parse_duration("2w 1d"),
            Ok(Duration::from_secs(15 * 86_400))
        );
        assert!(parse_duration("30").is_err());
        assert!(
            parse_duration("3x")
                .unwrap_err()
                .to_string()
                .contains("units: s, m, h, d, w")
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5KB"), Ok(1500));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("-1GiB").is_err());
    }

    #[test]
    fn human() {
        assert_eq!(HumanDuration(3.25).to_string(), "3.2s");
        assert_eq!(HumanDuration(0.042).to_string(), "0.04s");
        assert_eq!(HumanDuration(187.0).to_string(), "3m07s");
        assert_eq!(HumanDuration(26.0 * 3600.0).to_string(), "26h00m");
        assert_eq!(
            HumanDuration(3.0 * 86400.0 + 4.0 * 3600.0).to_string(),
            "3d04h"
        );
        assert_eq!(HumanBytes(1536 << 20).to_string(), "1.5 GiB");
        assert_eq!(HumanBytes(12).to_string(), "12 B");
    }
}
