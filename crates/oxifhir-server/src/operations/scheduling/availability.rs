//! The time arithmetic of scheduling, pure and DST-aware: availability expanded per local
//! calendar day in the Schedule's time zone, window sets (union, difference, intersection),
//! buffers, and the alignment grid anchored at each local midnight of the alignment zone.
//!
//! Times are milliseconds since the epoch; a window `(a, b)` is the half-open `[a, b)`. A
//! local time that a DST change skips moves later by the gap, an ambiguous one (fall back)
//! is the earlier instant (the "compatible" rule of RFC 5545 and Temporal).

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;

use super::params::AvailableTime;

/// A half-open window of time in milliseconds.
pub type Window = (i64, i64);

/// Sorted, non-overlapping, non-empty windows (touching ones merged).
pub fn normalize(mut windows: Vec<Window>) -> Vec<Window> {
    windows.retain(|(a, b)| a < b);
    windows.sort_unstable();
    let mut out: Vec<Window> = Vec::with_capacity(windows.len());
    for (a, b) in windows {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `a ∪ b`.
pub fn union(a: &[Window], b: &[Window]) -> Vec<Window> {
    normalize(a.iter().chain(b).copied().collect())
}

/// `a − b`, both normalized.
pub fn subtract(a: &[Window], b: &[Window]) -> Vec<Window> {
    let mut out = Vec::new();
    for &(mut start, end) in a {
        for &(bs, be) in b {
            if be <= start || bs >= end {
                continue;
            }
            if bs > start {
                out.push((start, bs));
            }
            start = start.max(be);
            if start >= end {
                break;
            }
        }
        if start < end {
            out.push((start, end));
        }
    }
    out
}

/// `a ∩ b`, both normalized.
pub fn intersect(a: &[Window], b: &[Window]) -> Vec<Window> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start < end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// True when `[start, end)` lies inside one of the normalized `windows`.
pub fn covers(windows: &[Window], start: i64, end: i64) -> bool {
    windows.iter().any(|&(a, b)| a <= start && end <= b)
}

/// Each window shrunk by `before` at its start and `after` at its end (so that the buffers
/// fit around an appointment inside it), keeping those at least `min_len` long.
pub fn shrink(windows: &[Window], before: i64, after: i64, min_len: i64) -> Vec<Window> {
    windows
        .iter()
        .map(|&(a, b)| (a.saturating_add(before), b.saturating_sub(after)))
        .filter(|&(a, b)| b - a >= min_len.max(1))
        .collect()
}

fn timestamp(millis: i64) -> Timestamp {
    Timestamp::from_millisecond(millis).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The local calendar date of an instant in `tz`.
pub fn local_date(millis: i64, tz: &TimeZone) -> Date {
    tz.to_datetime(timestamp(millis)).date()
}

/// The instant of a local date-time in `tz` (skipped times move later, ambiguous ones take
/// the earlier instant).
pub fn instant(datetime: DateTime, tz: &TimeZone) -> i64 {
    tz.to_ambiguous_timestamp(datetime)
        .compatible()
        .map(Timestamp::as_millisecond)
        .unwrap_or(i64::MIN)
}

/// The first instant of a local date in `tz` (its midnight, or the end of a gap at it).
pub fn start_of_day(date: Date, tz: &TimeZone) -> i64 {
    instant(date.to_datetime(Time::midnight()), tz)
}

/// The local dates from the day before `from`'s to `to`'s, in `tz`.
fn days(from: i64, to: i64, tz: &TimeZone) -> impl Iterator<Item = Date> {
    let first = local_date(from, tz).yesterday().ok();
    let last = local_date(to, tz);
    std::iter::successors(first, move |d| d.tomorrow().ok().filter(|n| *n <= last))
}

/// The windows of `availability` (local times in `tz`) that fall in `[from, to)`, day by
/// local day.
pub fn expand(availability: &[AvailableTime], tz: &TimeZone, from: i64, to: i64) -> Vec<Window> {
    let mut out = Vec::new();
    for date in days(from, to, tz) {
        let weekday = date.weekday();
        for time in availability.iter().filter(|t| t.days.contains(&weekday)) {
            let (start, end) = match (time.start, time.end) {
                (Some(s), Some(e)) => {
                    let end_date = if e <= s {
                        date.tomorrow().unwrap_or(date)
                    } else {
                        date
                    };
                    (
                        instant(date.to_datetime(s), tz),
                        instant(end_date.to_datetime(e), tz),
                    )
                }
                _ => (
                    start_of_day(date, tz),
                    start_of_day(date.tomorrow().unwrap_or(date), tz),
                ),
            };
            out.push((start.max(from), end.min(to)));
        }
    }
    normalize(out)
}

/// The alignment grid: start times `offset + k × interval` after each local midnight in
/// `tz` (re-anchored every day) at which `[t, t + duration)` fits in one of `windows`, in
/// order, at most `limit`.
pub fn aligned_starts(
    windows: &[Window],
    duration: i64,
    interval: i64,
    offset: i64,
    tz: &TimeZone,
    limit: usize,
) -> Vec<i64> {
    let interval = interval.max(1);
    let mut out = Vec::new();
    for &(a, b) in windows {
        for date in days(a, b, tz) {
            let midnight = start_of_day(date, tz);
            let next = start_of_day(date.tomorrow().unwrap_or(date), tz);
            let first = midnight + offset;
            let k = if a > first {
                (a - first + interval - 1) / interval
            } else {
                0
            };
            let mut t = first + k * interval;
            while t < next && t + duration <= b {
                if t >= a && out.last().is_none_or(|&last| last < t) {
                    out.push(t);
                    if out.len() >= limit {
                        return out;
                    }
                }
                t += interval;
            }
        }
    }
    out
}

/// True when `start` is on the alignment grid of its local day in `tz` (whole seconds).
pub fn on_grid(start: i64, interval: i64, offset: i64, tz: &TimeZone) -> bool {
    let midnight = start_of_day(local_date(start, tz), tz);
    let since = start - midnight;
    start % 1000 == 0 && since >= offset && (since - offset) % interval.max(1) == 0
}

#[cfg(test)]
mod tests {
    use super::super::params::MINUTE;
    use super::*;
    use jiff::civil::Weekday;

    const HOUR: i64 = 60 * MINUTE;

    fn at(text: &str) -> i64 {
        super::super::parse_time(text).unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn every_day(start: (i8, i8), end: (i8, i8)) -> Vec<AvailableTime> {
        vec![AvailableTime {
            start: Some(Time::constant(start.0, start.1, 0, 0)),
            end: Some(Time::constant(end.0, end.1, 0, 0)),
            ..AvailableTime::always()
        }]
    }

    #[test]
    fn window_sets() {
        assert_eq!(
            normalize(vec![(5, 7), (1, 3), (3, 4), (9, 9)]),
            [(1, 4), (5, 7)]
        );
        assert_eq!(subtract(&[(0, 10)], &[(2, 3), (5, 12)]), [(0, 2), (3, 5)]);
        assert_eq!(subtract(&[(0, 10)], &[(-5, 20)]), []);
        assert_eq!(intersect(&[(0, 5), (8, 12)], &[(3, 10)]), [(3, 5), (8, 10)]);
        assert_eq!(union(&[(0, 2)], &[(2, 4)]), [(0, 4)]);
        assert_eq!(shrink(&[(0, 100), (200, 210)], 10, 5, 20), [(10, 95)]);
        assert!(covers(&[(0, 10)], 2, 10) && !covers(&[(0, 10)], 5, 11));
    }

    #[test]
    fn expansion_follows_local_days_and_weekdays() {
        let ny = tz("America/New_York");
        let mondays = vec![AvailableTime {
            days: vec![Weekday::Monday],
            ..every_day((9, 0), (17, 0))[0].clone()
        }];
        // 2026-03-09 is a Monday (EDT, UTC-4).
        let w = expand(
            &mondays,
            &ny,
            at("2026-03-08T00:00:00Z"),
            at("2026-03-11T00:00:00Z"),
        );
        assert_eq!(
            w,
            [(at("2026-03-09T13:00:00Z"), at("2026-03-09T21:00:00Z"))]
        );
        // Evening availability of a US actor reaches the next UTC day (#8417).
        let evening = every_day((18, 0), (22, 0));
        let w = expand(
            &evening,
            &ny,
            at("2026-06-01T00:00:00Z"),
            at("2026-06-02T00:00:00Z"),
        );
        assert_eq!(
            w,
            [
                (at("2026-06-01T00:00:00Z"), at("2026-06-01T02:00:00Z")),
                (at("2026-06-01T22:00:00Z"), at("2026-06-02T00:00:00Z"))
            ]
        );
        // An end at or before the start ends the next day.
        let night = every_day((22, 0), (6, 0));
        let w = expand(
            &night,
            &tz("UTC"),
            at("2026-06-01T00:00:00Z"),
            at("2026-06-02T00:00:00Z"),
        );
        assert_eq!(
            w,
            [
                (at("2026-06-01T00:00:00Z"), at("2026-06-01T06:00:00Z")),
                (at("2026-06-01T22:00:00Z"), at("2026-06-02T00:00:00Z"))
            ]
        );
    }

    #[test]
    fn dst_days_have_their_real_length() {
        let ny = tz("America/New_York");
        // Spring forward, 2026-03-08: 01:00–04:00 local is two real hours.
        let w = expand(
            &every_day((1, 0), (4, 0)),
            &ny,
            at("2026-03-08T00:00:00Z"),
            at("2026-03-09T00:00:00Z"),
        );
        assert_eq!(
            w,
            [(at("2026-03-08T06:00:00Z"), at("2026-03-08T08:00:00Z"))]
        );
        let starts = aligned_starts(&w, HOUR, HOUR, 0, &ny, 100);
        assert_eq!(
            starts,
            [at("2026-03-08T06:00:00Z"), at("2026-03-08T07:00:00Z")]
        );
        // A start inside the gap (02:30) moves later by the gap (03:30 EDT).
        let w = expand(
            &every_day((2, 30), (5, 0)),
            &ny,
            at("2026-03-08T00:00:00Z"),
            at("2026-03-09T00:00:00Z"),
        );
        assert_eq!(
            w,
            [(at("2026-03-08T07:30:00Z"), at("2026-03-08T09:00:00Z"))]
        );
        // Fall back, 2026-11-01: 00:00–03:00 local is four real hours, four hourly slots.
        let w = expand(
            &every_day((0, 0), (3, 0)),
            &ny,
            at("2026-11-01T00:00:00Z"),
            at("2026-11-02T00:00:00Z"),
        );
        assert_eq!(
            w,
            [(at("2026-11-01T04:00:00Z"), at("2026-11-01T08:00:00Z"))]
        );
        let starts = aligned_starts(&w, HOUR, HOUR, 0, &ny, 100);
        assert_eq!(starts.len(), 4);
        assert!(starts.iter().all(|&s| on_grid(s, HOUR, 0, &ny)));
    }

    #[test]
    fn the_grid_is_anchored_at_local_midnight() {
        let utc = tz("Etc/UTC");
        let w = [(at("2026-06-01T09:10:00Z"), at("2026-06-01T11:00:00Z"))];
        assert_eq!(
            aligned_starts(&w, 30 * MINUTE, 30 * MINUTE, 0, &utc, 10),
            [
                at("2026-06-01T09:30:00Z"),
                at("2026-06-01T10:00:00Z"),
                at("2026-06-01T10:30:00Z")
            ]
        );
        assert_eq!(
            aligned_starts(&w, 30 * MINUTE, HOUR, 15 * MINUTE, &utc, 10),
            [at("2026-06-01T09:15:00Z"), at("2026-06-01T10:15:00Z")]
        );
        assert_eq!(
            aligned_starts(&w, 30 * MINUTE, 30 * MINUTE, 0, &utc, 2).len(),
            2
        );
        assert!(on_grid(at("2026-06-01T10:15:00Z"), HOUR, 15 * MINUTE, &utc));
        assert!(!on_grid(
            at("2026-06-01T10:00:00Z"),
            HOUR,
            15 * MINUTE,
            &utc
        ));
        assert!(!on_grid(
            at("2026-06-01T10:15:00.5Z"),
            HOUR,
            15 * MINUTE,
            &utc
        ));
        // India is UTC+5:30: an hourly grid in local time starts at :30 UTC.
        let kolkata = tz("Asia/Kolkata");
        assert!(on_grid(at("2026-06-01T04:30:00Z"), HOUR, 0, &kolkata));
        assert!(!on_grid(at("2026-06-01T04:00:00Z"), HOUR, 0, &kolkata));
    }

    #[test]
    fn far_time_zones_keep_their_local_weekday() {
        // Monday 09:00–12:00 in Kiritimati (UTC+14) is Sunday 19:00–22:00 UTC.
        let kiritimati = tz("Pacific/Kiritimati");
        let mondays = vec![AvailableTime {
            days: vec![Weekday::Monday],
            ..every_day((9, 0), (12, 0))[0].clone()
        }];
        let w = expand(
            &mondays,
            &kiritimati,
            at("2026-06-07T00:00:00Z"),
            at("2026-06-08T00:00:00Z"),
        );
        assert_eq!(
            w,
            [(at("2026-06-07T19:00:00Z"), at("2026-06-07T22:00:00Z"))]
        );
    }
}
