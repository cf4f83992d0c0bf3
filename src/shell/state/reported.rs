//! reported: the problems a sweep has already printed, so that a standing problem is said
//! once, not once a minute (SPEC §7).
//!
//! A sweep prints what changed or needs a person. A problem (a worker it could not reclaim, a
//! card blocked by a status it does not know) needs a person when it first appears and when
//! it changes; printed again on every run of a timer it is only noise in the journal. Each
//! run remembers, in the `reported_problems` section of `.flatline/state.json`, the
//! fingerprint of the problem last printed for each subject (a delegation file, a task card).
//! Pure: the caller reads and writes the section under the run lock.

use serde::Serialize;
use serde_json::{Map, Value};

/// The section of `state.json` this concern owns.
pub const SECTION: &str = "reported_problems";

/// The fields of a problem record that say what the problem is (not when it was seen, nor
/// how long ago progress was made): a change in any of them is news.
const FINGERPRINT_FIELDS: &[&str] = &[
    "action",
    "outcome",
    "termination",
    "process_id",
    "reason",
    "warnings",
];

/// What one sweep knows of a run's problems: those printed before and those seen now.
#[derive(Debug, Default, Clone)]
pub struct Reported {
    previous: Map<String, Value>,
    current: Map<String, Value>,
    all: bool,
}

impl Reported {
    /// From the stored section (anything but an object counts as none); `all` prints every
    /// problem, standing or not (`--all`).
    pub fn new(section: Option<&Value>, all: bool) -> Reported {
        let previous = match section {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        Reported {
            previous,
            current: Map::new(),
            all,
        }
    }

    /// Whether a problem about `subject` described by `record` is printed now: when it is
    /// new or changed since it was last printed, or always with `--all`. Remembered either
    /// way.
    pub fn problem(&mut self, subject: &str, record: &impl Serialize) -> bool {
        let fingerprint = match serde_json::to_value(record) {
            Ok(Value::Object(fields)) => fingerprint(&fields),
            _ => Value::Object(Map::new()),
        };
        let print = self.previous.get(subject) != Some(&fingerprint) || self.all;
        self.current.insert(subject.to_string(), fingerprint);
        print
    }

    /// The section to store, `None` when there is nothing to remember. After a complete
    /// sweep, only the problems it saw: one that went away is forgotten, so its return is
    /// news again. After an incomplete one (interrupted, limited to some cards), the
    /// subjects it did not look at keep what was stored.
    pub fn section(&self, complete: bool) -> Option<Value> {
        let mut map = if complete {
            Map::new()
        } else {
            self.previous.clone()
        };
        for (subject, fingerprint) in &self.current {
            map.insert(subject.clone(), fingerprint.clone());
        }
        (!map.is_empty()).then_some(Value::Object(map))
    }
}

/// A problem's fingerprint: the fields of its record that say what it is.
pub fn fingerprint(record: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for &field in FINGERPRINT_FIELDS {
        if let Some(value) = record.get(field) {
            out.insert(field.to_string(), value.clone());
        }
    }
    Value::Object(out)
}

/// The subject of a problem about a delegation file.
pub fn delegation_subject(file_name: &std::ffi::OsStr) -> String {
    format!("delegations/{}", file_name.to_string_lossy())
}

/// The subject of a problem about a task card.
pub fn card_subject(card: &str) -> String {
    format!("task-cards/{card}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_problem_is_printed_when_it_appears_and_when_it_changes() {
        let skipped = record(json!({"action": "skipped", "termination": "foreign_uid",
            "process_id": 42, "state": "stale", "elapsed_since_progress_ms": 1}));
        let mut first = Reported::new(None, false);
        assert!(first.problem("delegations/a.json", &skipped));
        let stored = first.section(true);
        assert_eq!(
            stored,
            Some(
                json!({"delegations/a.json": {"action": "skipped", "termination": "foreign_uid", "process_id": 42}})
            )
        );
        // The same problem later (another age, another state): standing, not printed.
        let mut later = record(json!({"action": "skipped", "termination": "foreign_uid",
            "process_id": 42, "state": "timed_out", "elapsed_since_progress_ms": 99}));
        let mut second = Reported::new(stored.as_ref(), false);
        assert!(!second.problem("delegations/a.json", &later));
        assert_eq!(second.section(true), stored);
        // --all prints it anyway.
        assert!(Reported::new(stored.as_ref(), true).problem("delegations/a.json", &later));
        // Changed: printed again.
        later.insert("termination".into(), json!("unverifiable"));
        let mut third = Reported::new(stored.as_ref(), false);
        assert!(third.problem("delegations/a.json", &later));
        // Another subject with the same problem is its own news.
        assert!(third.problem("delegations/b.json", &skipped));
    }

    #[test]
    fn a_problem_that_went_away_is_news_when_it_returns() {
        let skipped = record(json!({"action": "skipped", "termination": "survived"}));
        let mut first = Reported::new(None, false);
        assert!(first.problem("delegations/a.json", &skipped));
        let stored = first.section(true);
        // A complete sweep without it forgets it; nothing left to store.
        let settled = Reported::new(stored.as_ref(), false);
        assert_eq!(settled.section(true), None);
        assert_eq!(
            settled.section(false),
            stored,
            "an incomplete sweep keeps what it did not look at"
        );
        assert!(Reported::new(None, false).problem("delegations/a.json", &skipped));
    }

    #[test]
    fn a_stored_section_that_is_not_an_object_counts_as_none() {
        let mut reported = Reported::new(Some(&json!([1, 2])), false);
        assert!(reported.problem("task-cards/c", &record(json!({"warnings": ["x"]}))));
    }
}
