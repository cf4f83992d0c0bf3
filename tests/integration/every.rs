//! `sweep --every DURATION` (SPEC §9): each pass a fresh one-shot sweep that sees what
//! changed since the last one, the run lock free between passes, exit 0 on SIGTERM.

use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CODEX_SUCCESS: &str = include_str!("../fixtures/streams/codex-exec-commands.jsonl");

/// A running delegation whose process has exited and whose stream ended with success:
/// the next sweep finalizes it.
fn finished_worker(run: &Run, id: &str) {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let now = real_now_ms();
    let stream = run.write(&format!("raw-events/{id}.jsonl"), CODEX_SUCCESS);
    set_mtime_ms(&stream, now - 10_000);
    let mut doc = delegation(
        id,
        "running",
        json!({"process_id": pid, "started_at": rfc3339(now - 120_000), "last_progress_at": rfc3339(now - 60_000)}),
    );
    doc["worker_launch_evidence"] = json!({"raw_events_file": format!("raw-events/{id}.jsonl")});
    // No task card: only the finalization is printed, no fan-in.
    doc.as_object_mut().unwrap().remove("task_card_id");
    // Staged beside the run and renamed in, as an orchestrator writes.
    let staged = run.path().join(format!(".{id}.staged"));
    write_json(&staged, &doc);
    std::fs::rename(&staged, run.delegation_path(&format!("{id}.json"))).unwrap();
}

/// The next record printed, within the hang guard.
fn next_record(lines: &mpsc::Receiver<String>) -> Value {
    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a record from the next pass");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// Takes the run lock from outside (as an orchestrator does with flock) and, holding it,
/// adds a finished worker: the lock must be free between passes.
fn add_under_the_lock(run: &Run, id: &str) {
    let lock = run.path().join(".flatline/lock");
    let status = Command::new("flock")
        .arg("-w")
        .arg("0.5")
        .arg("-E")
        .arg("99")
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the lock was not free between passes"
    );
    finished_worker(run, id);
}

#[test]
fn sweep_every_runs_fresh_passes_and_stops_with_zero_on_sigterm() {
    if !have("flock") {
        eprintln!("SKIPPED: flock is not installed");
        return;
    }
    let run = Run::new();
    finished_worker(&run, "first");
    let mut child = Command::new(bin())
        .args(["sweep", "--every", "1s", "--format", "ndjson"])
        .arg(run.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    for (pass, next) in [(1, Some("second")), (2, Some("third")), (3, None)] {
        let record = next_record(&lines);
        assert_eq!(record["kind"], "action", "pass {pass}: {record}");
        assert_eq!(record["action"], "finalized", "pass {pass}: {record}");
        seen.push(record["delegation_id"].as_str().unwrap_or("").to_string());
        if let Some(id) = next {
            add_under_the_lock(&run, id);
        }
    }
    assert_eq!(seen, ["first", "second", "third"]);
    for id in ["first", "second", "third"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert_eq!(doc["child_agent"]["status"], "completed", "{id}: {doc}");
    }
    // SIGTERM between passes: the service stopped normally.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG_GUARD {
            let _ = child.kill();
            panic!("sweep --every did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
    // Nothing more was printed after the third pass.
    assert!(lines.recv_timeout(Duration::from_secs(5)).is_err());
}

#[test]
fn every_is_for_sweep_and_beat_only() {
    let run = Run::new();
    let out = flatline(["reclaim", "--every", "1s", run.path().to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out:?}");
}
