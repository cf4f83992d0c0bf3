//! What is listed and counted: --check, summaries, filters, file order, bad and unreadable
//! files, big listings and their deadline.

use super::*;

#[test]
fn check_exits_one_only_when_something_needs_attention() {
    let run = Run::new();
    run.delegation(
        "ok",
        &running("ok", json!({"last_progress_at": at(-1_000)})),
    );
    run.delegation("done", &delegation("done", "completed", json!({})));
    assert_eq!(status(&run, &["--check"]).code, 0);
    run.delegation(
        "late",
        &running("late", json!({"last_progress_at": at(-50_000)})),
    );
    let out = status(&run, &["--check"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.records().len(), 3, "--check still prints the records");
    assert_eq!(
        status(&run, &[]).code,
        0,
        "without --check attention is not an exit status"
    );
    let quiet = status(&run, &["--check", "--quiet"]);
    assert_eq!((quiet.code, quiet.stdout.as_str()), (1, ""));
}

#[test]
fn summary_rows_count_per_card() {
    let run = Run::new();
    let mut doc = running("a", json!({"last_progress_at": at(-1_000)}));
    run.delegation("a", &doc);
    doc = running("b", json!({"last_progress_at": at(-50_000)}));
    run.delegation("b", &doc);
    run.delegation("c", &delegation("c", "completed", json!({})));
    let mut other = delegation(
        "d",
        "failed",
        json!({"state": "timed_out", "reclaim_state": "reclaimed"}),
    );
    other["task_card_id"] = json!("card-2");
    run.delegation("d", &other);
    let mut none = delegation("e", "queued", json!({}));
    none.as_object_mut().unwrap().remove("task_card_id");
    run.delegation("e", &none);
    let out = status(&run, &["--summary"]);
    let summaries: Vec<Value> = out
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "summary")
        .collect();
    let run_dir = run.path().to_string_lossy().into_owned();
    assert_eq!(
        summaries,
        vec![
            json!({"kind": "summary", "scope": "delegations", "run_dir": run_dir, "task_card_id": null, "total": 1, "active": 1, "queued": 1,
                   "launching": 0, "running": 0, "running_quiet": 0, "running_busy": 0, "returned": 0, "completed": 0, "failed": 0,
                   "cancelled": 0, "stale": 0, "timed_out": 0, "reclaim_needed": 0, "reclaimed": 0}),
            json!({"kind": "summary", "scope": "delegations", "run_dir": run_dir, "task_card_id": "card-1", "total": 3, "active": 2, "queued": 0,
                   "launching": 0, "running": 1, "running_quiet": 0, "running_busy": 0, "returned": 1, "completed": 1, "failed": 0,
                   "cancelled": 0, "stale": 1, "timed_out": 0, "reclaim_needed": 1, "reclaimed": 0}),
            json!({"kind": "summary", "scope": "delegations", "run_dir": run_dir, "task_card_id": "card-2", "total": 1, "active": 0, "queued": 0,
                   "launching": 0, "running": 0, "running_quiet": 0, "running_busy": 0, "returned": 0, "completed": 0, "failed": 1,
                   "cancelled": 0, "stale": 0, "timed_out": 0, "reclaim_needed": 0, "reclaimed": 1}),
        ]
    );
}

#[test]
fn filters_by_state_and_task_card() {
    let run = Run::new();
    run.delegation("a", &running("a", json!({"last_progress_at": at(-1_000)})));
    run.delegation("b", &running("b", json!({"last_progress_at": at(-50_000)})));
    let mut other = running("c", json!({"last_progress_at": at(-50_000)}));
    other["task_card_id"] = json!("card-2");
    run.delegation("c", &other);
    let ids = |out: &Outcome| -> Vec<String> {
        out.records()
            .iter()
            .map(|r| r["delegation_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&status(&run, &["--state", "stale"])), ["b", "c"]);
    assert_eq!(
        ids(&status(
            &run,
            &["--state", "stale", "--task-card", "card-2"]
        )),
        ["c"]
    );
    assert_eq!(
        ids(&status(
            &run,
            &["--state=running_active,stale", "--task-card=card-1"]
        )),
        ["a", "b"]
    );
    assert_eq!(
        ids(&status(&run, &["--task-card", "card-9"])),
        Vec::<String>::new()
    );
}

#[test]
fn file_name_order_hidden_and_result_files() {
    let run = Run::new();
    for id in ["b", "a", "c"] {
        run.delegation(id, &delegation(id, "queued", json!({})));
    }
    run.write("delegations/a.result.json", "{not a delegation");
    run.write("delegations/.b.json.flatline.7.tmp", "{partial");
    run.write("delegations/notes.txt", "hello");
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ids: Vec<Value> = out
        .records()
        .iter()
        .map(|r| r["delegation_id"].clone())
        .collect();
    assert_eq!(ids, [json!("a"), json!("b"), json!("c")]);
}

#[test]
fn run_directories_named_twice_count_once_and_empty_runs_are_fine() {
    let run = Run::new();
    run.delegation("a", &delegation("a", "queued", json!({})));
    // An empty run: its delegations/ holds nothing yet.
    let bare = Run::new();
    let twice = flatline([
        std::ffi::OsStr::new("status"),
        std::ffi::OsStr::new("--format=ndjson"),
        run.arg(),
        run.arg(),
        bare.arg(),
    ]);
    assert_eq!(twice.code, 0, "{}", twice.stderr);
    assert_eq!(twice.records().len(), 1);
    let missing = flatline(["status", "/nonexistent/flatline-run"]);
    assert_eq!(missing.code, 4);
    assert_eq!(
        missing.stderr,
        "flatline: /nonexistent/flatline-run: no such run directory\n"
    );
}

#[test]
fn bad_files_are_one_line_each_and_the_rest_is_reported() {
    let run = Run::new();
    run.delegation(
        "good",
        &running("good", json!({"last_progress_at": at(-1_000)})),
    );
    run.write(
        "delegations/truncated.json",
        "{\n  \"delegation_id\": \"t\",\n  \"child_agent\": {",
    );
    run.write("delegations/array.json", "[1, 2, 3]\n");
    run.write(
        "delegations/types.json",
        serde_json::to_string(&running(
            "types",
            json!({"process_id": "12", "last_progress_at": 7}),
        ))
        .unwrap(),
    );
    let fifo = run.delegation_path("x.json");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo on a fresh path in our temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink("good.json", run.delegation_path("y.json")).unwrap();
    run.write("delegations/z-huge.json", vec![b' '; 20 * 1024 * 1024]);
    let out = status(&run, &[]);
    assert_eq!(out.code, 3);
    let dir = run.path().join("delegations");
    let d = dir.to_string_lossy();
    assert_eq!(
        out.stderr_lines(),
        [
            format!("flatline: {d}/array.json: not a JSON object (found an array)"),
            format!(
                "flatline: {d}/truncated.json: invalid JSON at line 3 column 18 (EOF while parsing an object)"
            ),
            format!(
                "flatline: {d}/types.json: worker_lifecycle.process_id is a string, expected an integer; worker_lifecycle.last_progress_at is a number, expected a string"
            ),
            format!("flatline: {d}/x.json: is a FIFO, not a regular file, refused"),
            format!("flatline: {d}/y.json: is a symlink (or passes through one), refused"),
            format!("flatline: {d}/z-huge.json: larger than 16 MiB, not read"),
        ]
    );
    let ids: Vec<Value> = out
        .records()
        .iter()
        .map(|r| r["delegation_id"].clone())
        .collect();
    assert_eq!(ids, [json!("good"), json!("types")]);
    assert_fields(
        &out.by_id("types"),
        json!({"process_id": null, "state": "unknown",
               "warnings": ["wrong_type:worker_lifecycle.process_id", "wrong_type:worker_lifecycle.last_progress_at",
                            "no_progress_baseline", "invalid_process_id"]}),
    );
}

/// Big listings are read ahead by a second thread (src/scan.rs, from 32 documents): the
/// records, their order and every per-file message must be what one file at a time gives,
/// including a document too big to wait in the read-ahead queue (read by the main thread)
/// and one that is over the 16 MiB limit.
#[test]
fn a_big_listing_read_ahead_keeps_order_and_every_message() {
    let run = Run::new();
    let mut expected_ids = Vec::new();
    for i in 0..80 {
        let id = format!("d{i:03}");
        let mut doc = running(&id, json!({"last_progress_at": at(-(i * 1_000))}));
        if i == 41 {
            // 200 KB: larger than what is read ahead.
            doc["padding"] = json!("x".repeat(200 * 1024));
        }
        run.delegation(&id, &doc);
        expected_ids.push(json!(id));
    }
    run.write("delegations/d010-bad.json", "{\"delegation_id\": ");
    mkfifo(&run.delegation_path("d020-fifo.json"));
    std::os::unix::fs::symlink("d001.json", run.delegation_path("d030-link.json")).unwrap();
    std::fs::create_dir(run.delegation_path("d040-dir.json")).unwrap();
    run.write(
        "delegations/d050-huge.json",
        vec![b' '; 16 * 1024 * 1024 + 1],
    );
    run.write("delegations/d060.result.json", "not read");
    let out = status(&run, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let d = run.path().join("delegations");
    let d = d.to_string_lossy();
    assert_eq!(
        out.stderr_lines(),
        [
            format!(
                "flatline: {d}/d010-bad.json: invalid JSON at line 1 column 18 (EOF while parsing a value)"
            ),
            format!("flatline: {d}/d020-fifo.json: is a FIFO, not a regular file, refused"),
            format!("flatline: {d}/d030-link.json: is a symlink (or passes through one), refused"),
            format!("flatline: {d}/d040-dir.json: is a directory, not a regular file, refused"),
            format!("flatline: {d}/d050-huge.json: larger than 16 MiB, not read"),
        ]
    );
    let records = out.records();
    let ids: Vec<Value> = records.iter().map(|r| r["delegation_id"].clone()).collect();
    assert_eq!(ids, expected_ids);
    for (i, record) in records.iter().enumerate() {
        let elapsed = i64::try_from(i).unwrap() * 1_000;
        assert_eq!(
            record["elapsed_since_progress_ms"],
            json!(elapsed),
            "{record}"
        );
    }
}

/// The read-ahead stats a running delegation's stream before the main thread parses it, and
/// picks which by the bytes `"running"` (src/shell/runs/stream.rs). A running status spelled
/// with an escape is passed over there and must still have its stream looked at: its
/// progress baseline is the stream's mtime, like every other running worker's.
#[test]
fn a_running_status_spelled_with_an_escape_still_has_its_stream_looked_at() {
    let run = Run::new();
    // From 32 documents the listing is read ahead.
    for i in 0..40 {
        let id = format!("d{i:03}");
        let doc = running(&id, json!({"last_progress_at": at(-3_600_000)}));
        let mut text = serde_json::to_string_pretty(&doc).unwrap();
        if i % 2 == 1 {
            text = text.replace("\"running\"", "\"runn\\u0069ng\"");
            assert!(!text.contains("running"), "{text}");
        }
        run.write(&format!("delegations/{id}.json"), text);
        let stream = run.write(&format!("raw-events/{id}.jsonl"), "{}\n");
        set_mtime_ms(&stream, NOW_MS - 1_000);
    }
    let out = status(&run, &[]);
    let records = out.records();
    assert_eq!(records.len(), 40, "{}", out.stderr);
    for record in &records {
        assert_eq!(record["progress_baseline"], "stream_mtime", "{record}");
        assert_eq!(record["elapsed_since_progress_ms"], 1_000, "{record}");
    }
}

#[test]
fn an_unreadable_file_is_reported_and_skipped() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to run flatline as another user");
        return;
    }
    let run = Run::new();
    run.delegation("a", &delegation("a", "queued", json!({})));
    let secret = run.delegation("b", &delegation("b", "queued", json!({})));
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    run.delegation("c", &delegation("c", "queued", json!({})));
    let mut command = std::process::Command::new(bin());
    command
        .args(["status", "--format", "ndjson"])
        .arg(run.arg())
        .uid(65534)
        .gid(65534);
    use std::os::unix::process::CommandExt;
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr,
        format!("flatline: {}: permission denied\n", secret.display())
    );
    let ids: Vec<Value> = out
        .records()
        .iter()
        .map(|r| r["delegation_id"].clone())
        .collect();
    assert_eq!(ids, [json!("a"), json!("c")]);
}

/// Stopping early (here the deadline, as a signal would) while the read-ahead thread has a
/// full queue ends the run at once with 124: the reader is told to stop, not waited for
/// until the watchdog ends the process.
#[test]
fn a_deadline_during_a_big_listing_stops_at_once() {
    let run = Run::new();
    for i in 0..2_000 {
        let id = format!("d{i:04}");
        run.delegation(&id, &running(&id, json!({"last_progress_at": at(-1_000)})));
    }
    let out = status(&run, &["--deadline", "1ms"]);
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert!(
        !out.stderr.contains("a read did not return"),
        "the watchdog had to end a stuck run: {}",
        out.stderr
    );
    assert!(out.records().len() < 2_000);
}
