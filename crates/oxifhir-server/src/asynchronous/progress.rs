//! A job's progress: the `X-Progress` text the status endpoint sends, and the counts read
//! back from it (`Exported 120 of 500 resources` → 120 of 500 resources) for the jobs page's
//! progress bar and throughput.

use oxifhir_store::jobs::{JobRecord, JobState};
use serde::Serialize;

/// The progress text of a job: what its kind last reported, or what a job that has reported
/// nothing is doing (`X-Progress` of an unfinished job).
pub fn text(job: &JobRecord) -> String {
    match (&job.progress, job.state) {
        (Some(text), _) => text.clone(),
        (None, JobState::Queued) if job.attempt == 0 => "Waiting for a worker".into(),
        (None, JobState::Queued) => "Waiting to be resumed".into(),
        (None, _) => "In progress".into(),
    }
}

/// The numbers in a progress text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Units done so far.
    pub done: u64,
    /// Units in all, when the text says (`N of M`).
    pub total: Option<u64>,
    /// What is counted (`resources`, `versions`), when the text says.
    pub unit: Option<String>,
}

impl Counts {
    /// Reads the first count of `text`: `N of M [unit]` (done and total) or `N unit` (done
    /// only). `None` when the text holds neither.
    pub fn parse(text: &str) -> Option<Counts> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let number = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
        let unit = |i: usize| {
            words
                .get(i)
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
                .filter(|w| !w.is_empty() && w.chars().all(char::is_alphabetic))
                .map(str::to_owned)
        };
        (0..words.len()).find_map(|i| {
            let done = number(i)?;
            if words.get(i + 1) == Some(&"of")
                && let Some(total) = number(i + 2)
            {
                return Some(Counts {
                    done,
                    total: Some(total),
                    unit: unit(i + 3),
                });
            }
            // A lone number counts only with its unit: "status 200" is no count.
            unit(i + 1).map(|unit| Counts {
                done,
                total: None,
                unit: Some(unit),
            })
        })
    }

    /// How far along, from 0 to 100, when the total is known and not zero.
    pub fn percent(&self) -> Option<f64> {
        let total = self.total.filter(|t| *t > 0)?;
        Some((self.done.min(total) as f64 * 100.0 / total as f64).min(100.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<(u64, Option<u64>, Option<&str>)>) {
        let parsed = Counts::parse(text);
        assert_eq!(
            parsed
                .as_ref()
                .map(|c| (c.done, c.total, c.unit.as_deref())),
            expected,
            "{text}"
        );
    }

    #[test]
    fn counts_are_read_from_progress_texts() {
        check(
            "Exported 120 of 500 resources",
            Some((120, Some(500), Some("resources"))),
        );
        check(
            "Indexed 3 of 7 resources.",
            Some((3, Some(7), Some("resources"))),
        );
        check("Expunged 42 versions.", Some((42, None, Some("versions"))));
        check("Exported 9 resources", Some((9, None, Some("resources"))));
        check("5 of 10", Some((5, Some(10), None)));
        check("Waiting for a worker", None);
        check("In progress", None);
        check("", None);
        check("Failed with status 500", None);
        check("Finished with status 200", None);
        check(
            "Attempt 2: exported 7 resources",
            Some((7, None, Some("resources"))),
        );
    }

    #[test]
    fn percent_needs_a_total() {
        let counts = |done, total| Counts {
            done,
            total,
            unit: None,
        };
        assert_eq!(counts(1, Some(4)).percent(), Some(25.0));
        assert_eq!(counts(9, Some(4)).percent(), Some(100.0));
        assert_eq!(counts(0, Some(0)).percent(), None);
        assert_eq!(counts(3, None).percent(), None);
    }
}
