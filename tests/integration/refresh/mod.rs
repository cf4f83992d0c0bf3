//! `flatline refresh`: progress, finalization and the store, with real child processes.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

mod lock;
mod progress;
mod store;
mod streams;

const CODEX_SUCCESS: &str = include_str!("../../fixtures/streams/codex-exec-commands.jsonl");
const CODEX_NO_TERMINAL: &str = include_str!("../../fixtures/streams/codex-exec-no-terminal.jsonl");
const CLAUDE_SUCCESS: &str = include_str!("../../fixtures/streams/claude-basic.jsonl");

/// Sets a file's modification time to `ms` since the epoch.
fn set_mtime(path: &Path, ms: i64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    file.set_times(std::fs::FileTimes::new().set_modified(at).set_accessed(at))
        .unwrap();
}

/// `flatline refresh --format ndjson [extra] RUN`.
fn refresh(run: &Run, extra: &[&str]) -> Outcome {
    let mut args: Vec<&OsStr> = vec![OsStr::new("refresh"), OsStr::new("--format=ndjson")];
    args.extend(extra.iter().map(OsStr::new));
    args.push(run.arg());
    flatline(args)
}

fn running(id: &str, lifecycle: Value) -> Value {
    let mut doc = delegation(id, "running", lifecycle);
    doc["worker_launch_evidence"] = json!({"raw_events_file": format!("raw-events/{id}.jsonl")});
    doc
}

fn exited_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}
