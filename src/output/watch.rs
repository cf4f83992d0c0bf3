//! What `status --watch` prints (SPEC §13): each pass's output kept in memory (`Sink`), and
//! of its ndjson only the records that changed beyond their ages since the previous pass.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Fields that change by themselves as time passes: not a change worth a record.
const VOLATILE: &[&str] = &[
    "elapsed_since_progress_ms",
    "heartbeat_age_ms",
    "checked_at",
    "activity",
];

/// Texts that say an age (or activity counters) in words, by record kind: what they say
/// beyond it is in the fields compared (state, recovery_action, thresholds, health).
const VOLATILE_TEXT: &[(&str, &str)] = &[("delegation", "recovery_reason"), ("worker", "message")];

/// What one iteration printed, kept in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut bytes) => {
                bytes.extend_from_slice(buf);
                Ok(buf.len())
            }
            Err(_) => Err(std::io::Error::other("watch buffer poisoned")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    pub(crate) fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut bytes| std::mem::take(&mut *bytes))
            .unwrap_or_default()
    }
}

/// The ndjson lines whose record changed (but for `VOLATILE` fields) since the previous
/// iteration, keyed by kind and path (or run directory and card for summary rows).
pub(crate) fn changed_lines(printed: &[u8], previous: &mut HashMap<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in printed.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(Value::Object(mut record)) = serde_json::from_slice::<Value>(line) else {
            out.extend_from_slice(line);
            out.push(b'\n');
            continue;
        };
        for field in VOLATILE {
            record.remove(*field);
        }
        let kind = record
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        for (_, field) in VOLATILE_TEXT.iter().filter(|(of, _)| *of == kind) {
            record.remove(*field);
        }
        let key = key_of(&record);
        let value = Value::Object(record);
        if previous.get(&key) != Some(&value) {
            out.extend_from_slice(line);
            out.push(b'\n');
            previous.insert(key, value);
        }
    }
    out
}

fn key_of(record: &Map<String, Value>) -> String {
    let field = |name: &str| record.get(name).map(Value::to_string).unwrap_or_default();
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        field("kind"),
        field("run_dir"),
        field("path"),
        field("task_card_id"),
        field("scope")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_records_that_changed_beyond_their_ages_are_printed_again() {
        let mut previous = HashMap::new();
        let first = b"{\"kind\":\"delegation\",\"path\":\"a\",\"state\":\"running_active\",\"elapsed_since_progress_ms\":1}\n{\"kind\":\"delegation\",\"path\":\"b\",\"state\":\"queued\"}\n";
        assert_eq!(changed_lines(first, &mut previous), first.to_vec());
        let aged = b"{\"kind\":\"delegation\",\"path\":\"a\",\"state\":\"running_active\",\"elapsed_since_progress_ms\":900}\n{\"kind\":\"delegation\",\"path\":\"b\",\"state\":\"queued\"}\n";
        assert_eq!(changed_lines(aged, &mut previous), b"".to_vec());
        let moved = b"{\"kind\":\"delegation\",\"path\":\"a\",\"state\":\"stale\",\"elapsed_since_progress_ms\":60000}\n{\"kind\":\"delegation\",\"path\":\"b\",\"state\":\"queued\"}\n";
        assert_eq!(
            changed_lines(moved, &mut previous),
            b"{\"kind\":\"delegation\",\"path\":\"a\",\"state\":\"stale\",\"elapsed_since_progress_ms\":60000}\n".to_vec()
        );
    }

    #[test]
    fn an_age_said_in_words_is_no_change_but_a_problem_message_is() {
        let mut previous = HashMap::new();
        let line = |kind: &str, field: &str, text: &str| {
            format!("{{\"kind\":\"{kind}\",\"path\":\"a\",\"{field}\":\"{text}\"}}\n")
        };
        for (kind, field) in [("delegation", "recovery_reason"), ("worker", "message")] {
            let first = line(kind, field, "age 1000 ms");
            assert_eq!(
                changed_lines(first.as_bytes(), &mut previous),
                first.as_bytes()
            );
            let later = line(kind, field, "age 2000 ms");
            assert!(changed_lines(later.as_bytes(), &mut previous).is_empty());
        }
        let first = line("problem", "message", "invalid JSON");
        assert_eq!(
            changed_lines(first.as_bytes(), &mut previous),
            first.as_bytes()
        );
        let other = line("problem", "message", "not readable");
        assert_eq!(
            changed_lines(other.as_bytes(), &mut previous),
            other.as_bytes()
        );
    }
}
