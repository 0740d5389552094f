//! Finding the point in time a snapshot was taken from its name.
//!
//! Backup tools embed the time in file and folder names in many shapes: ISO 8601 (`2026-11-21T02:00:00Z`),
//! compact (`20261121-020000`), vzdump (`2026_11_21-02_00_03`), date plus `HHMM` (`2026-11-21_0200`) or a date
//! alone. The name is a better witness than the mtime, which a copy or rsync may reset. A name without a zone is
//! read in the zone the caller passes (the source's zone).

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};

/// Returns the first timestamp found in `name`, read in `tz` when the name carries no zone.
pub fn parse_name_timestamp(name: &str, tz: &TimeZone) -> Option<Timestamp> {
    let runs = digit_runs(name);
    for i in 0..runs.len() {
        if let Some((dt, end)) = match_at(name, &runs, i) {
            let zone = zone_suffix(&name[end..]);
            let ts = match zone {
                Some(offset) => offset.to_timestamp(dt).ok(),
                None => tz
                    .to_ambiguous_zoned(dt)
                    .compatible()
                    .ok()
                    .map(|z| z.timestamp()),
            };
            if ts.is_some() {
                return ts;
            }
        }
    }
    None
}

#[derive(Debug, Clone, Copy)]
struct Run {
    start: usize,
    end: usize,
}

fn digit_runs(s: &str) -> Vec<Run> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Run { start, end: i });
        } else {
            i += 1;
        }
    }
    out
}

fn num(s: &str, r: Run) -> Option<i32> {
    s.get(r.start..r.end)?.parse().ok()
}

/// The runs `a` and `b` are separated by exactly one separator character from `seps`.
fn joined(s: &str, a: Run, b: Run, seps: &[u8]) -> bool {
    b.start == a.end + 1 && s.as_bytes().get(a.end).is_some_and(|c| seps.contains(c))
}

const DATE_SEPS: &[u8] = b"-_.";
const DATE_TIME_SEPS: &[u8] = b"T_- .";
const TIME_SEPS: &[u8] = b":-_.";

fn date(y: i32, m: i32, d: i32) -> Option<Date> {
    if !(1970..=2200).contains(&y) {
        return None;
    }
    Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()
}

fn time(h: i32, m: i32, s: i32) -> Option<Time> {
    Time::new(
        i8::try_from(h).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(s).ok()?,
        0,
    )
    .ok()
}

fn len(r: Run) -> usize {
    r.end - r.start
}

/// Splits a compact `HHMM` or `HHMMSS` run into a time.
fn compact_time(s: &str, r: Run) -> Option<Time> {
    let t = s.get(r.start..r.end)?;
    match t.len() {
        4 => time(t[0..2].parse().ok()?, t[2..4].parse().ok()?, 0),
        6 => time(
            t[0..2].parse().ok()?,
            t[2..4].parse().ok()?,
            t[4..6].parse().ok()?,
        ),
        _ => None,
    }
}

/// Tries to read a date (and time) starting at digit run `i`; returns it and the byte offset after it.
fn match_at(s: &str, runs: &[Run], i: usize) -> Option<(DateTime, usize)> {
    let r = runs[i];
    let next = |k: usize| runs.get(i + k).copied();
    let t = s.get(r.start..r.end)?;
    // Compact forms: YYYYMMDDhhmmss, YYYYMMDDhhmm, YYYYMMDD[sep]hhmm[ss], YYYYMMDD.
    if matches!(t.len(), 8 | 12 | 14) {
        let d = date(
            t[0..4].parse().ok()?,
            t[4..6].parse().ok()?,
            t[6..8].parse().ok()?,
        )?;
        if t.len() > 8 {
            let tail = Run {
                start: r.start + 8,
                end: r.end,
            };
            return Some((d.to_datetime(compact_time(s, tail)?), r.end));
        }
        if let Some(n) = next(1)
            && joined(s, r, n, DATE_TIME_SEPS)
            && let Some(tm) = compact_time(s, n)
        {
            return Some((d.to_datetime(tm), n.end));
        }
        return Some((d.to_datetime(Time::midnight()), r.end));
    }
    // Separated forms: YYYY-MM-DD, then optionally hh:mm[:ss] or hhmm[ss].
    if len(r) != 4 {
        return None;
    }
    let (m, dd) = (next(1)?, next(2)?);
    if len(m) != 2 || len(dd) != 2 || !joined(s, r, m, DATE_SEPS) || !joined(s, m, dd, DATE_SEPS) {
        return None;
    }
    let d = date(num(s, r)?, num(s, m)?, num(s, dd)?)?;
    if let Some(h) = next(3)
        && joined(s, dd, h, DATE_TIME_SEPS)
    {
        if matches!(len(h), 4 | 6) {
            if let Some(tm) = compact_time(s, h) {
                return Some((d.to_datetime(tm), h.end));
            }
        } else if len(h) == 2
            && let Some(mi) = next(4)
            && len(mi) == 2
            && joined(s, h, mi, TIME_SEPS)
        {
            let (sec, end) = match next(5) {
                Some(sc) if len(sc) == 2 && joined(s, mi, sc, TIME_SEPS) => (num(s, sc)?, sc.end),
                _ => (0, mi.end),
            };
            if let Some(tm) = time(num(s, h)?, num(s, mi)?, sec) {
                // Skip fractional seconds such as ".123" before looking for a zone.
                let mut end = end;
                let b = s.as_bytes();
                if b.get(end) == Some(&b'.') {
                    end += 1;
                    while b.get(end).is_some_and(u8::is_ascii_digit) {
                        end += 1;
                    }
                }
                return Some((d.to_datetime(tm), end));
            }
        }
    }
    Some((d.to_datetime(Time::midnight()), dd.end))
}

/// `Z`, `+hh:mm`, `-hh:mm`, `+hhmm` directly after the time.
fn zone_suffix(rest: &str) -> Option<Offset> {
    let b = rest.as_bytes();
    match b.first()? {
        b'Z' | b'z' => Some(Offset::UTC),
        sign @ (b'+' | b'-') => {
            let body = &rest[1..];
            let (h, m) = if body.len() >= 5 && body.as_bytes()[2] == b':' {
                (body.get(0..2)?, body.get(3..5)?)
            } else if body.len() >= 4 && body.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                (body.get(0..2)?, body.get(2..4)?)
            } else {
                return None;
            };
            let h: i32 = h.parse().ok()?;
            let m: i32 = m.parse().ok()?;
            if h > 14 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) * if *sign == b'-' { -1 } else { 1 };
            Offset::from_seconds(secs).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(name: &str) -> Option<String> {
        parse_name_timestamp(name, &TimeZone::UTC).map(|t| t.to_string())
    }

    #[test]
    fn shapes() {
        assert_eq!(
            utc("app-2026-11-21T02:00:00Z.tar.zst").as_deref(),
            Some("2026-11-21T02:00:00Z")
        );
        assert_eq!(
            utc("db_20261121-020000.tar.gz").as_deref(),
            Some("2026-11-21T02:00:00Z")
        );
        assert_eq!(
            utc("2026-11-21_0200").as_deref(),
            Some("2026-11-21T02:00:00Z")
        );
        assert_eq!(
            utc("2026-11-21_02-30-15").as_deref(),
            Some("2026-11-21T02:30:15Z")
        );
        assert_eq!(
            utc("vzdump-qemu-101-2026_11_21-02_00_03.vma.zst").as_deref(),
            Some("2026-11-21T02:00:03Z")
        );
        assert_eq!(
            utc("backup-20261121T0200.tar").as_deref(),
            Some("2026-11-21T02:00:00Z")
        );
        assert_eq!(
            utc("backup-20261121020304.tar").as_deref(),
            Some("2026-11-21T02:03:04Z")
        );
        assert_eq!(
            utc("weekly-2026-11-21.tar").as_deref(),
            Some("2026-11-21T00:00:00Z")
        );
        assert_eq!(
            utc("snap-2026-11-21T02:00:00.123+01:00").as_deref(),
            Some("2026-11-21T01:00:00Z")
        );
        assert_eq!(
            utc("2026-11-21T02:00:00-0500").as_deref(),
            Some("2026-11-21T07:00:00Z")
        );
    }

    #[test]
    fn no_timestamp() {
        assert_eq!(utc("app.tar.zst"), None);
        assert_eq!(utc("host-101.tar"), None);
        assert_eq!(
            utc("2026-13-45.tar"),
            None,
            "invalid dates are not timestamps"
        );
        assert_eq!(utc("v1234-56-78"), None);
    }

    #[test]
    fn local_zone_applies_without_suffix() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let t = parse_name_timestamp("2026-07-01_0200", &berlin).unwrap();
        assert_eq!(t.to_string(), "2026-07-01T00:00:00Z");
    }
}
