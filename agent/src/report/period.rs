//! Reporting periods: which instants a report covers, in the report's time zone.
//!
//! A period is the half-open interval `[from, to)` between two local midnights, so a quarter in
//! Europe/Berlin starts at 00:00 local time on its first day whatever the UTC offset. Auditors think in
//! calendar quarters, months and years; relative names (`previous-quarter`) let a scheduled report say
//! "the quarter that just ended" without editing the configuration.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// The period could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("period {spec:?}: {why}")]
pub struct PeriodError {
    /// What was given.
    pub spec: String,
    /// What is wrong and what is allowed.
    pub why: String,
}

/// What kind of span a period is; decides what "the previous period" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A calendar year.
    Year,
    /// A calendar quarter.
    Quarter,
    /// A calendar month.
    Month,
    /// Arbitrary dates (`--from`/`--to`).
    Days,
}

/// `[from, to)` in `tz`, with a label for people and file names.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    /// `2026-Q3`, `2026-11`, `2026`, `2026-07-01..2026-09-30`.
    pub label: String,
    /// Kind.
    pub kind: Kind,
    /// First day.
    pub first: Date,
    /// Day after the last day.
    pub end: Date,
    /// Zone.
    pub tz: TimeZone,
}

const HELP: &str = "expected YYYY, YYYY-Qn, YYYY-MM, previous-quarter, previous-month, previous-year, current-quarter, current-month or current-year";

fn err(spec: &str, why: impl Into<String>) -> PeriodError {
    PeriodError {
        spec: spec.to_string(),
        why: why.into(),
    }
}

fn date(spec: &str, y: i16, m: i8, d: i8) -> Result<Date, PeriodError> {
    Date::new(y, m, d).map_err(|e| err(spec, e.to_string()))
}

fn midnight(d: Date, tz: &TimeZone) -> Timestamp {
    d.to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Period {
    /// Start instant.
    pub fn from(&self) -> Timestamp {
        midnight(self.first, &self.tz)
    }

    /// End instant (exclusive).
    pub fn to(&self) -> Timestamp {
        midnight(self.end, &self.tz)
    }

    /// Last day included.
    pub fn last_day(&self) -> Date {
        self.end.yesterday().unwrap_or(self.end)
    }

    fn calendar(kind: Kind, first: Date, tz: &TimeZone) -> Period {
        let (end, label) = match kind {
            Kind::Year => (
                first.checked_add(1.year()).unwrap_or(first),
                format!("{}", first.year()),
            ),
            Kind::Quarter => (
                first.checked_add(3.months()).unwrap_or(first),
                format!("{}-Q{}", first.year(), (first.month() - 1) / 3 + 1),
            ),
            Kind::Month => (
                first.checked_add(1.month()).unwrap_or(first),
                format!("{}-{:02}", first.year(), first.month()),
            ),
            Kind::Days => (first, String::new()),
        };
        Period {
            label,
            kind,
            first,
            end,
            tz: tz.clone(),
        }
    }

    /// Parses a named period, relative ones as of `now`.
    pub fn parse(spec: &str, tz: &TimeZone, now: Timestamp) -> Result<Period, PeriodError> {
        let s = spec.trim().to_ascii_lowercase();
        let today = now.to_zoned(tz.clone()).date();
        let quarter_start = |d: Date| date(spec, d.year(), (d.month() - 1) / 3 * 3 + 1, 1);
        let rel = |kind: Kind, back: bool| -> Result<Period, PeriodError> {
            let cur = match kind {
                Kind::Year => date(spec, today.year(), 1, 1)?,
                Kind::Quarter => quarter_start(today)?,
                _ => date(spec, today.year(), today.month(), 1)?,
            };
            let first = if back {
                let step = match kind {
                    Kind::Year => 1.year(),
                    Kind::Quarter => 3.months(),
                    _ => 1.month(),
                };
                cur.checked_sub(step)
                    .map_err(|e| err(spec, e.to_string()))?
            } else {
                cur
            };
            Ok(Period::calendar(kind, first, tz))
        };
        match s.as_str() {
            "previous-quarter" => return rel(Kind::Quarter, true),
            "previous-month" => return rel(Kind::Month, true),
            "previous-year" => return rel(Kind::Year, true),
            "current-quarter" => return rel(Kind::Quarter, false),
            "current-month" => return rel(Kind::Month, false),
            "current-year" => return rel(Kind::Year, false),
            _ => {}
        }
        let year = |t: &str| -> Result<i16, PeriodError> {
            if t.len() != 4 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(spec, HELP));
            }
            t.parse().map_err(|_| err(spec, HELP))
        };
        match s.split_once('-') {
            None => Ok(Period::calendar(
                Kind::Year,
                date(spec, year(&s)?, 1, 1)?,
                tz,
            )),
            Some((y, rest)) => {
                let y = year(y)?;
                if let Some(q) = rest.strip_prefix('q') {
                    let q: i8 = match q {
                        "1" => 1,
                        "2" => 2,
                        "3" => 3,
                        "4" => 4,
                        _ => return Err(err(spec, "a quarter is Q1, Q2, Q3 or Q4")),
                    };
                    Ok(Period::calendar(
                        Kind::Quarter,
                        date(spec, y, (q - 1) * 3 + 1, 1)?,
                        tz,
                    ))
                } else {
                    let m: i8 = rest.parse().map_err(|_| err(spec, HELP))?;
                    if !(1..=12).contains(&m) || rest.len() != 2 {
                        return Err(err(spec, "a month is 01 to 12"));
                    }
                    Ok(Period::calendar(Kind::Month, date(spec, y, m, 1)?, tz))
                }
            }
        }
    }

    /// The days `from` to `to`, both included (`YYYY-MM-DD`).
    pub fn dates(from: &str, to: &str, tz: &TimeZone) -> Result<Period, PeriodError> {
        let spec = format!("{from}..{to}");
        let parse = |s: &str| -> Result<Date, PeriodError> {
            s.parse::<Date>()
                .map_err(|_| err(&spec, format!("{s:?} is not a date; expected YYYY-MM-DD")))
        };
        let first = parse(from)?;
        let last = parse(to)?;
        if last < first {
            return Err(err(&spec, "--to is before --from"));
        }
        let end = last.tomorrow().map_err(|e| err(&spec, e.to_string()))?;
        Ok(Period {
            label: format!("{first}..{last}"),
            kind: Kind::Days,
            first,
            end,
            tz: tz.clone(),
        })
    }

    /// The period before this one, of the same kind (the same number of days for `--from/--to`).
    pub fn previous(&self) -> Period {
        match self.kind {
            Kind::Days => {
                let days = self
                    .first
                    .until(self.end)
                    .map(|s| s.get_days())
                    .unwrap_or(0);
                let first = self.first.checked_sub(days.days()).unwrap_or(self.first);
                Period {
                    label: format!("{first}..{}", self.first.yesterday().unwrap_or(self.first)),
                    kind: Kind::Days,
                    first,
                    end: self.first,
                    tz: self.tz.clone(),
                }
            }
            k => {
                let step = match k {
                    Kind::Year => 1.year(),
                    Kind::Quarter => 3.months(),
                    _ => 1.month(),
                };
                Period::calendar(
                    k,
                    self.first.checked_sub(step).unwrap_or(self.first),
                    &self.tz,
                )
            }
        }
    }

    /// The zone's name (`UTC`, `Europe/Berlin`).
    pub fn tz_name(&self) -> String {
        self.tz.iana_name().unwrap_or("local").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-22T05:00:00Z".parse().unwrap()
    }

    #[test]
    fn named_periods() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let q = Period::parse("2026-Q3", &tz, now()).unwrap();
        assert_eq!(q.label, "2026-Q3");
        assert_eq!(q.from().to_string(), "2026-06-30T22:00:00Z");
        assert_eq!(q.to().to_string(), "2026-09-30T22:00:00Z");
        assert_eq!(q.previous().label, "2026-Q2");
        let m = Period::parse("2026-11", &tz, now()).unwrap();
        assert_eq!(m.to().to_string(), "2026-11-30T23:00:00Z");
        assert_eq!(
            Period::parse("2026", &tz, now()).unwrap().previous().label,
            "2025"
        );
        let pq = Period::parse("previous-quarter", &TimeZone::UTC, now()).unwrap();
        assert_eq!(pq.label, "2026-Q3");
        let jan: Timestamp = "2026-01-15T00:00:00Z".parse().unwrap();
        assert_eq!(
            Period::parse("previous-quarter", &TimeZone::UTC, jan)
                .unwrap()
                .label,
            "2025-Q4"
        );
        assert_eq!(
            Period::parse("previous-month", &TimeZone::UTC, jan)
                .unwrap()
                .label,
            "2025-12"
        );
        for bad in ["2026-Q5", "2026-13", "26", "last-week", "2026-1"] {
            assert!(Period::parse(bad, &TimeZone::UTC, now()).is_err(), "{bad}");
        }
    }

    #[test]
    fn date_ranges_include_the_last_day() {
        let p = Period::dates("2026-07-01", "2026-07-10", &TimeZone::UTC).unwrap();
        assert_eq!(p.to().to_string(), "2026-07-11T00:00:00Z");
        let prev = p.previous();
        assert_eq!(prev.label, "2026-06-21..2026-06-30");
        assert!(Period::dates("2026-07-10", "2026-07-01", &TimeZone::UTC).is_err());
    }
}
