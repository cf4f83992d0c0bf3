//! Heartbeat workers (team layout): health in `status`, `health-events`, and `beat`.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

mod beat;
mod event_log;
mod health;
mod specs;

fn set_mtime(path: &Path, ms: i64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    file.set_times(std::fs::FileTimes::new().set_modified(at).set_accessed(at))
        .unwrap();
}

/// A worker directory with a spec (mtime `spec_age` before NOW), an empty inbox and outbox
/// and, when given, a heartbeat document. The spec names them relative to the worker's
/// directory (SPEC §5); it names the heartbeat only when there is one.
fn worker(run: &Run, name: &str, heartbeat: Option<&str>, spec_age_ms: i64) {
    let mut spec = json!({"name": name, "role": "coder",
                          "inbox": "inbox.jsonl", "outbox": "./outbox.jsonl"});
    if heartbeat.is_some() {
        spec["heartbeat"] = json!("heartbeat.json");
    }
    run.write(&format!("workers/{name}/inbox.jsonl"), "");
    run.write(&format!("workers/{name}/outbox.jsonl"), "");
    let path = run.write(
        &format!("workers/{name}/worker-spec.json"),
        serde_json::to_vec(&spec).unwrap(),
    );
    set_mtime(&path, NOW_MS - spec_age_ms);
    if let Some(heartbeat) = heartbeat {
        let path = run.write(&format!("workers/{name}/heartbeat.json"), heartbeat);
        set_mtime(&path, NOW_MS - 1_000);
    }
}

fn beat_at(offset_ms: i64) -> String {
    json!({"status": "alive", "name": "w", "ts": at(offset_ms)}).to_string()
}

fn worker_record(out: &Outcome, id: &str) -> Value {
    out.records()
        .into_iter()
        .find(|r| r["kind"] == "worker" && r["worker_id"] == id)
        .unwrap_or_else(|| panic!("no worker {id} in {}", out.stdout))
}

fn health_events(run: &Run, now: &str, extra: &[&str]) -> Outcome {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("health-events"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--now"),
        OsStr::new(now),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.push(run.arg());
    flatline(args)
}

fn events(run: &Run) -> Vec<Value> {
    std::fs::read_to_string(run.path().join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
