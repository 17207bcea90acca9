//! The seeded random numbers and the calendar arithmetic of `oxifhir synth`.
//!
//! The generator is SplitMix64, written out here instead of taken from `rand`: the output of
//! `oxifhir synth` must stay byte-identical for a given seed across toolchains and dependency
//! upgrades, and `rand` documents neither its `StdRng` algorithm nor its range sampling as
//! stable between versions. Everything is integer arithmetic (no floating point, no `libm`),
//! so the output is the same on every platform too.
//!
//! Each patient (and each shared pool) gets its own stream, derived from the seed and its
//! index, so a patient's data does not depend on how much randomness the previous one used.

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

/// Stream tags, so that streams of different kinds never share a state.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Epoch = 1,
    Patient = 2,
    Practitioner = 3,
    Organization = 4,
    Schedule = 5,
}

/// The SplitMix64 output function: a strong 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream of `index` (a patient number, a practitioner number, ...) of kind `stream`.
    pub fn new(seed: u64, stream: Stream, index: u64) -> Rng {
        let tag = mix(((stream as u64) << 56) ^ index);
        Rng {
            state: mix(seed ^ mix(tag)),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A number in `0..n` (`0` when `n` is 0). The bias of the multiply-shift reduction is
    /// below 2^-40 for the small `n` used here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        low + self.below((high - low) as u64 + 1) as i64
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index into `weights`, chosen in proportion to them (the last one if all are 0).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut roll = self.below(total);
        for (index, &weight) in weights.iter().enumerate() {
            if roll < u64::from(weight) {
                return index;
            }
            roll -= u64::from(weight);
        }
        weights.len().saturating_sub(1)
    }

    /// A bell-shaped integer around `mean` with standard deviation `sd`: the sum of three
    /// uniform draws from `-sd..=sd` (whose variance is exactly `sd²`), bounded by `±3 sd`.
    pub fn bell(&mut self, mean: i64, sd: i64) -> i64 {
        mean + self.range(-sd, sd) + self.range(-sd, sd) + self.range(-sd, sd)
    }
}

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// The year, month and day of a count of days since 1970-01-01 (proleptic Gregorian; Howard
/// Hinnant's `civil_from_days`).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day of the week of a count of days since 1970-01-01: 0 is Monday, 6 is Sunday.
pub fn weekday(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

/// A FHIR `date` (`YYYY-MM-DD`) for a count of days since 1970-01-01.
pub fn date(days: i64) -> String {
    let (year, month, day) = civil(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A FHIR `dateTime` / `instant` in UTC (`YYYY-MM-DDThh:mm:ssZ`) for seconds since 1970.
pub fn date_time(seconds: i64) -> String {
    let (year, month, day) = civil(seconds.div_euclid(DAY));
    let second_of_day = seconds.rem_euclid(DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(date(11_016), "2000-02-29");
        assert_eq!(date(20_089), "2025-01-01");
        assert_eq!(date_time(20_089 * DAY + 3723), "2025-01-01T01:02:03Z");
        assert_eq!(date_time(-1), "1969-12-31T23:59:59Z");
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
        assert_eq!(weekday(20_089), 2, "2025-01-01 was a Wednesday");
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |seed, index| {
            let mut rng = Rng::new(seed, Stream::Patient, index);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, 1), draw(7, 1));
        assert_ne!(draw(7, 1), draw(7, 2));
        assert_ne!(draw(7, 1), draw(8, 1));
        let mut rng = Rng::new(1, Stream::Epoch, 0);
        for _ in 0..1000 {
            let value = rng.range(-3, 5);
            assert!((-3..=5).contains(&value));
            assert!((70..=130).contains(&rng.bell(100, 10)));
        }
    }
}
