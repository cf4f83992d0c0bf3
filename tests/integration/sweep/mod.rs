//! `flatline sweep`: everything at once, once; then nothing; each input read once.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

mod deadline;
mod fanin;
mod once;

const CODEX_SUCCESS: &str = include_str!("../../fixtures/streams/codex-exec-commands.jsonl");

fn set_mtime(path: &Path, ms: i64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    file.set_times(std::fs::FileTimes::new().set_modified(at).set_accessed(at))
        .unwrap();
}

/// Every file beneath `dir` with its bytes (the lock file included).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.insert(entry.path(), std::fs::read(entry.path()).unwrap());
            }
        }
    }
    files
}

/// A run directory that needs everything at once: a finished worker, a stuck worker that
/// ignores SIGTERM, a complete task card, a stalled heartbeat worker.
struct Scene {
    run: Run,
    stuck: Proc,
}

fn scene() -> Scene {
    let run = Run::new();
    let now = real_now_ms();
    // A finished worker: its process has exited; its stream says it completed.
    let mut exited = Command::new("true").spawn().unwrap();
    let exited_pid = exited.id();
    exited.wait().unwrap();
    let mut done = delegation(
        "d-done",
        "running",
        json!({"process_id": exited_pid, "started_at": rfc3339(now - 120_000), "last_progress_at": rfc3339(now - 60_000)}),
    );
    done["task_card_id"] = json!("c1");
    run.delegation("d-done", &done);
    set_mtime(
        &run.write("raw-events/d-done.jsonl", CODEX_SUCCESS),
        now - 30_000,
    );
    // A stuck worker that ignores SIGTERM.
    let mut child = Command::new("sh")
        .args(["-c", "trap '' TERM; echo ready; exec sleep 300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let stuck = Proc { child };
    let mut stuck_doc = delegation(
        "d-stuck",
        "running",
        json!({"process_id": stuck.pid(), "started_at": rfc3339(now - 600_000), "last_progress_at": rfc3339(now - 300_000),
               "process_fingerprint": {"start_ticks": stuck.start_ticks(), "boot_id": boot_id(), "pid_ns": pid_ns()}}),
    );
    stuck_doc["task_card_id"] = json!("c1");
    run.delegation("d-stuck", &stuck_doc);
    // A card that is complete already.
    let mut complete = delegation(
        "d-complete",
        "completed",
        json!({"last_progress_at": rfc3339(now - 1_000)}),
    );
    complete["task_card_id"] = json!("c2");
    complete["worker_result"] = json!({"status": "completed", "thread_id": "t-c2"});
    run.delegation("d-complete", &complete);
    // A stalled heartbeat worker.
    run.write(
        "workers/w1/worker-spec.json",
        json!({"name": "w1", "role": "coder", "heartbeat": "heartbeat.json"}).to_string(),
    );
    run.write(
        "workers/w1/heartbeat.json",
        json!({"status": "alive", "name": "w1", "ts": rfc3339(now - 75_000)}).to_string(),
    );
    Scene { run, stuck }
}

fn sweep(run: &Run, extra: &[&str]) -> Outcome {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("sweep"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--grace=300ms"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.push(run.arg());
    flatline(args)
}

/// A delegation of `card` that completed, with its thread id.
fn finished_member(id: &str, card: &str, thread: &str, now: i64) -> Value {
    let mut doc = delegation(
        id,
        "completed",
        json!({"last_progress_at": rfc3339(now - 1_000)}),
    );
    doc["task_card_id"] = json!(card);
    doc["worker_result"] = json!({"status": "completed", "thread_id": thread});
    doc
}

/// A running delegation of `card` without a pid whose last progress is an hour old: stale,
/// to be marked reclaimed without a process.
fn stale_member(id: &str, card: &str, now: i64) -> Value {
    let mut doc = delegation(
        id,
        "running",
        json!({"started_at": rfc3339(now - 7_200_000), "last_progress_at": rfc3339(now - 3_600_000)}),
    );
    doc["task_card_id"] = json!(card);
    doc
}
