//! FHIR `instant` values and the ranges that partial `date`/`dateTime` values stand for.

use std::fmt;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A point in time with millisecond precision, as stored in `meta.lastUpdated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(i64);

impl Instant {
    /// Wraps milliseconds since the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Instant(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The current time, truncated to milliseconds.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Instant((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Parses a FHIR `instant` (full date-time with seconds and zone).
    pub fn parse(text: &str) -> Option<Self> {
        let range = DateRange::parse(text)?;
        if range.precision < Precision::Second {
            return None;
        }
        Some(Instant(range.start))
    }

    /// As a `time` value in UTC.
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Formats as an HTTP date (`Last-Modified`, `Expires`).
    pub fn to_http_date(self) -> String {
        let secs = self.0.div_euclid(1000).max(0) as u64;
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    }
}

impl fmt::Display for Instant {
    /// `YYYY-MM-DDThh:mm:ss.sssZ`, the form written to `meta.lastUpdated`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.to_offset_date_time();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

/// How much of a date-time was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    Year,
    Month,
    Day,
    Minute,
    Second,
    Millisecond,
}

/// The half-open range of milliseconds `[start, end)` that a date, dateTime or instant covers:
/// `2024` covers the whole year, `2024-03-01T10:00:00Z` one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub start: i64,
    pub end: i64,
    pub precision: Precision,
}

impl DateRange {
    /// Parses `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, or `YYYY-MM-DDThh:mm[:ss[.fff…]]` with `Z` or
    /// `±hh:mm` (a time without a zone is taken as UTC). `None` if it is none of these.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let num = |s: &str| -> Option<u32> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        if bytes.len() < 4 {
            return None;
        }
        let year = num(text.get(0..4)?)? as i32;
        if text.len() == 4 {
            let start = date_millis(year, 1, 1)?;
            return Some(DateRange {
                start,
                end: date_millis(year + 1, 1, 1)?,
                precision: Precision::Year,
            });
        }
        if bytes.get(4) != Some(&b'-') {
            return None;
        }
        let month = num(text.get(5..7)?)? as u8;
        if text.len() == 7 {
            let start = date_millis(year, month, 1)?;
            let (ny, nm) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            return Some(DateRange {
                start,
                end: date_millis(ny, nm, 1)?,
                precision: Precision::Month,
            });
        }
        if bytes.get(7) != Some(&b'-') {
            return None;
        }
        let day = num(text.get(8..10)?)? as u8;
        let start = date_millis(year, month, day)?;
        if text.len() == 10 {
            return Some(DateRange {
                start,
                end: start + 86_400_000,
                precision: Precision::Day,
            });
        }
        if bytes.get(10) != Some(&b'T') {
            return None;
        }
        let rest = text.get(11..)?;
        let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
        let (clock, zone) = rest.split_at(zone_at);
        let offset_secs: i64 = match zone {
            "" | "Z" => 0,
            z => {
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let hh = num(z.get(1..3)?)? as i64;
                if z.get(3..4)? != ":" || z.len() != 6 {
                    return None;
                }
                let mm = num(z.get(4..6)?)? as i64;
                if hh > 14 || mm > 59 {
                    return None;
                }
                sign * (hh * 3600 + mm * 60)
            }
        };
        let mut parts = clock.splitn(3, ':');
        let hour = num(parts.next()?)?;
        let minute = num(parts.next()?)?;
        let (second, millis, precision, frac_len) = match parts.next() {
            None => (0, 0, Precision::Minute, 0),
            Some(sec) => {
                let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
                if whole.len() != 2 {
                    return None;
                }
                let second = num(whole)?;
                if frac.is_empty() {
                    if sec.contains('.') {
                        return None;
                    }
                    (second, 0, Precision::Second, 0)
                } else {
                    num(frac)?;
                    let ms: String = frac.chars().chain("000".chars()).take(3).collect();
                    (second, num(&ms)?, Precision::Millisecond, frac.len())
                }
            }
        };
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let local = start
            + (hour as i64 * 3600 + minute as i64 * 60 + second.min(59) as i64) * 1000
            + millis as i64;
        let start = local - offset_secs * 1000;
        let width = match precision {
            Precision::Minute => 60_000,
            Precision::Second => 1000,
            _ if frac_len >= 3 => 1,
            _ => 10_i64.pow(3 - frac_len as u32),
        };
        Some(DateRange {
            start,
            end: start + width,
            precision,
        })
    }
}

fn date_millis(year: i32, month: u8, day: u8) -> Option<i64> {
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let t = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_offset(UtcOffset::UTC);
    Some(t.unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<(&str, &str)>) {
        let got = DateRange::parse(text).map(|r| {
            (
                Instant::from_millis(r.start).to_string(),
                Instant::from_millis(r.end).to_string(),
            )
        });
        let expected = expected.map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(got, expected, "{text}");
    }

    #[test]
    fn ranges() {
        check(
            "2024",
            Some(("2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z")),
        );
        check(
            "2024-12",
            Some(("2024-12-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z")),
        );
        check(
            "2024-02-29",
            Some(("2024-02-29T00:00:00.000Z", "2024-03-01T00:00:00.000Z")),
        );
        check("2023-02-29", None);
        check(
            "2024-03-01T10:00",
            Some(("2024-03-01T10:00:00.000Z", "2024-03-01T10:01:00.000Z")),
        );
        check(
            "2024-03-01T10:00:05+02:00",
            Some(("2024-03-01T08:00:05.000Z", "2024-03-01T08:00:06.000Z")),
        );
        check(
            "2024-03-01T10:00:05.5Z",
            Some(("2024-03-01T10:00:05.500Z", "2024-03-01T10:00:05.600Z")),
        );
        check(
            "2024-03-01T10:00:05.123Z",
            Some(("2024-03-01T10:00:05.123Z", "2024-03-01T10:00:05.124Z")),
        );
        check("2024-3-01", None);
        check("yesterday", None);
        check("2024-03-01T25:00:00Z", None);
    }

    #[test]
    fn instants_round_trip() {
        let i = Instant::parse("2026-11-23T11:49:46.123Z").unwrap();
        assert_eq!(i.to_string(), "2026-11-23T11:49:46.123Z");
        assert_eq!(i.to_http_date(), "Mon, 23 Nov 2026 11:49:46 GMT");
        assert!(Instant::parse("2026-11-23").is_none());
    }
}
