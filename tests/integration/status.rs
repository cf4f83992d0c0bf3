//! `flatline status` on temporary run directories, with `--now`, checked field by field.

use crate::support::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

fn running(id: &str, lifecycle: Value) -> Value {
    delegation(id, "running", lifecycle)
}

#[test]
fn a_full_record_has_every_field_in_order() {
    let run = Run::new();
    run.delegation(
        "d1",
        &running(
            "d1",
            json!({"last_progress_at": at(-60_000), "started_at": at(-120_000)}),
        ),
    );
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let run_dir = run.path().to_string_lossy().into_owned();
    let expected = json!({
        "kind": "delegation",
        "run_dir": run_dir,
        "path": format!("{run_dir}/delegations/d1.json"),
        "delegation_id": "d1",
        "task_card_id": "card-1",
        "work_kind": "worker",
        "status": "running",
        "state": "stale",
        "reclaim_state": "reclaim_needed",
        "process_id": null,
        "process_alive": null,
        "process_identity": null,
        "last_progress_at": "2026-11-22T07:59:00.000Z",
        "progress_baseline": "last_progress_at",
        "elapsed_since_progress_ms": 60000,
        "quiet_after_ms": 22500,
        "stale_after_ms": 45000,
        "timeout_after_ms": 90000,
        "stale_at": "2026-11-22T07:59:00.000Z",
        "timed_out_at": null,
        "next_action": "reclaim",
        "transition": "stalled",
        "classification": "stalled",
        "recovery_action": "reclaim",
        "recovery_reason": "worker progress age 60000 ms reached the stale threshold 45000 ms",
        "summary": "stale: no progress past the stale threshold; needs reclaim",
        "needs_attention": true,
        "warnings": [],
        "activity": null,
        "stall": null
    });
    let records = out.records();
    assert_eq!(records, vec![expected.clone()]);
    // Key order is part of the format.
    let keys: Vec<&String> = records[0].as_object().unwrap().keys().collect();
    let expected_keys: Vec<&String> = expected.as_object().unwrap().keys().collect();
    assert_eq!(keys, expected_keys);
}

#[test]
fn every_state_of_a_running_worker() {
    let run = Run::new();
    run.delegation(
        "a-active",
        &running("a-active", json!({"last_progress_at": at(-1_000)})),
    );
    run.delegation(
        "b-quiet",
        &running("b-quiet", json!({"last_progress_at": at(-30_000)})),
    );
    run.delegation(
        "c-stale",
        &running("c-stale", json!({"last_progress_at": at(-45_000)})),
    );
    run.delegation(
        "d-timed-out",
        &running("d-timed-out", json!({"last_progress_at": at(-90_000)})),
    );
    run.delegation(
        "e-launching",
        &running("e-launching", json!({"launch_requested_at": at(-5_000)})),
    );
    run.delegation("f-no-baseline", &running("f-no-baseline", json!({})));
    run.delegation(
        "g-skew",
        &running("g-skew", json!({"last_progress_at": at(30_000)})),
    );
    run.delegation(
        "h-far",
        &running("h-far", json!({"last_progress_at": at(86_400_000)})),
    );
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expect = |id: &str, fields: Value| assert_fields(&out.by_id(id), fields);
    expect(
        "a-active",
        json!({"state": "running_active", "reclaim_state": "not_needed", "elapsed_since_progress_ms": 1000,
               "next_action": "await_worker", "transition": "running", "recovery_action": "wait", "warnings": []}),
    );
    expect(
        "b-quiet",
        json!({"state": "running_quiet", "transition": "quiet", "classification": "quiet", "recovery_action": "poll",
               "recovery_reason": "worker progress age 30000 ms reached the quiet threshold 22500 ms"}),
    );
    expect(
        "c-stale",
        json!({"state": "stale", "reclaim_state": "reclaim_needed", "stale_at": at(-45_000), "timed_out_at": null,
               "next_action": "reclaim", "needs_attention": true}),
    );
    expect(
        "d-timed-out",
        json!({"state": "timed_out", "reclaim_state": "reclaim_needed", "timed_out_at": at(-90_000),
               "timeout_after_ms": 90000, "transition": "reclaimable", "classification": "reclaimable",
               "recovery_reason": "worker progress age 90000 ms reached the timeout threshold 90000 ms"}),
    );
    expect(
        "e-launching",
        json!({"state": "launching", "reclaim_state": "not_needed", "progress_baseline": "launch_requested_at",
               "elapsed_since_progress_ms": 5000, "next_action": "await_worker"}),
    );
    expect(
        "f-no-baseline",
        json!({"state": "unknown", "elapsed_since_progress_ms": null, "warnings": ["no_progress_baseline"],
               "needs_attention": true, "reclaim_state": "not_needed"}),
    );
    expect(
        "g-skew",
        json!({"state": "running_active", "elapsed_since_progress_ms": 0, "warnings": ["clock_skew"]}),
    );
    expect(
        "h-far",
        json!({"state": "unknown", "elapsed_since_progress_ms": null, "warnings": ["clock_skew"],
               "reclaim_state": "not_needed", "needs_attention": true}),
    );
}

#[test]
fn thresholds_per_worker_default_and_capped() {
    let run = Run::new();
    run.delegation(
        "own-quiet",
        &running(
            "own-quiet",
            json!({"last_progress_at": at(-2_000), "quiet_after_ms": 1000}),
        ),
    );
    run.delegation(
        "plain",
        &running("plain", json!({"last_progress_at": at(-70_000)})),
    );
    let out = status(&run, &["--stale-after", "30s"]);
    assert_fields(
        &out.by_id("own-quiet"),
        json!({"state": "running_quiet", "quiet_after_ms": 1000, "stale_after_ms": 30000, "timeout_after_ms": 60000}),
    );
    assert_fields(
        &out.by_id("plain"),
        json!({"state": "timed_out", "quiet_after_ms": 15000, "stale_after_ms": 30000, "timeout_after_ms": 60000}),
    );
    let capped = status(&run, &["--stuck-after", "20s"]);
    assert_fields(
        &capped.by_id("plain"),
        json!({"state": "timed_out", "stale_after_ms": 20000, "timeout_after_ms": 20000, "quiet_after_ms": 10000}),
    );
    let out_of_order = status(&run, &["--stale-after", "30s", "--timeout-after", "10s"]);
    assert_eq!(out_of_order.code, 2);
    assert_eq!(out_of_order.stdout, "");
    assert!(
        out_of_order
            .stderr
            .contains("--timeout-after 10s is below the stale threshold 30s"),
        "{}",
        out_of_order.stderr
    );
}

#[test]
fn every_child_status_and_an_unknown_one() {
    let run = Run::new();
    let done = json!({"last_progress_at": at(-500_000)});
    run.delegation(
        "completed",
        &delegation("completed", "completed", done.clone()),
    );
    run.delegation("failed", &delegation("failed", "failed", done.clone()));
    run.delegation(
        "cancelled",
        &delegation("cancelled", "cancelled", done.clone()),
    );
    run.delegation(
        "queued",
        &delegation("queued", "queued", json!({"queued_at": at(-10)})),
    );
    run.delegation("missing", &json!({"delegation_id": "missing"}));
    run.delegation("paused", &delegation("paused", "paused", done.clone()));
    let out = status(&run, &["--check"]);
    let expect = |id: &str, fields: Value| assert_fields(&out.by_id(id), fields);
    expect(
        "completed",
        json!({"state": "returned", "reclaim_state": "resumable", "next_action": "advance", "transition": "completed", "recovery_action": "wait"}),
    );
    expect(
        "failed",
        json!({"state": "failed", "reclaim_state": "not_needed", "next_action": "none", "recovery_action": "ask_operator"}),
    );
    expect(
        "cancelled",
        json!({"state": "cancelled", "reclaim_state": "not_needed", "next_action": "none", "recovery_action": "ask_operator"}),
    );
    expect(
        "queued",
        json!({"state": "queued", "status": "queued", "next_action": "await_worker"}),
    );
    expect(
        "missing",
        json!({"state": "queued", "status": "queued", "task_card_id": null}),
    );
    expect(
        "paused",
        json!({"state": "unknown", "status": "paused", "warnings": ["unknown_status"], "needs_attention": true}),
    );
    assert_eq!(out.code, 1, "the unknown status needs attention");
}

#[test]
fn reclaimed_keeps_its_state_and_needs_nothing() {
    let run = Run::new();
    run.delegation(
        "r",
        &delegation(
            "r",
            "failed",
            json!({"state": "timed_out", "reclaim_state": "reclaimed", "last_progress_at": at(-900_000)}),
        ),
    );
    let out = status(&run, &["--check"]);
    assert_eq!(out.code, 0);
    assert_fields(
        &out.by_id("r"),
        json!({"state": "timed_out", "reclaim_state": "reclaimed", "next_action": "none",
               "recovery_action": "ask_operator", "needs_attention": false, "process_identity": null}),
    );
}

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

#[test]
fn json_is_one_document_and_tsv_has_a_header() {
    let run = Run::new();
    run.delegation("a", &running("a", json!({"last_progress_at": at(-1_000)})));
    run.write("delegations/bad.json", "{");
    let out = status(&run, &["--format", "json"]);
    assert_eq!(out.code, 3);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["run_dirs"], json!([run.path().to_string_lossy()]));
    assert_eq!(doc["checked_at"], "2026-11-22T08:00:00.000Z");
    assert_eq!(doc["records"].as_array().unwrap().len(), 1);
    assert_eq!(doc["summary"][0]["total"], 1);
    assert_eq!(
        doc["errors"][0]["message"],
        "invalid JSON at line 1 column 1 (EOF while parsing an object)"
    );
    let tsv = status(&run, &["--format", "tsv"]);
    let lines: Vec<&str> = tsv.stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("kind\trun_dir\tpath\tdelegation_id\t"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("delegation\t"));
    assert_eq!(lines[0].split('\t').count(), lines[1].split('\t').count());
}

#[test]
fn text_is_a_table_with_a_tally_and_escaped_controls() {
    let run = Run::new();
    run.delegation(
        "a",
        &running("a\u{1b}[2J", json!({"last_progress_at": at(-90_000)})),
    );
    let out = status(&run, &["--format", "text"]);
    assert_eq!(
        out.stdout,
        "DELEGATION  TASK_CARD  STATE      PROGRESS_AGE  PID  PROCESS  NEXT_ACTION  SUMMARY                                               NOTE\n\
         a\\x1b[2J    card-1     timed_out  1m30s         -    -        reclaim      timed out: past the timeout threshold; needs reclaim  -\n\
         1 delegation: 1 timed_out, 1 reclaim_needed\n"
    );
}

#[test]
fn jq_selects_from_the_ndjson_stream() {
    if !have("jq") {
        return;
    }
    let run = Run::new();
    run.delegation("a", &running("a", json!({"last_progress_at": at(-1_000)})));
    run.delegation("b", &running("b", json!({"last_progress_at": at(-50_000)})));
    let script = format!(
        "{} status --format ndjson --now {NOW} '{}' | jq -c 'select(.state==\"stale\") | .delegation_id'",
        bin(),
        run.path().display()
    );
    let out = run_command(
        std::process::Command::new("sh").arg("-c").arg(script),
        HANG_GUARD,
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "\"b\"\n", "")
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let run = Run::new();
    for i in 0..3000 {
        let id = format!("d{i:05}");
        run.delegation(&id, &running(&id, json!({"last_progress_at": at(-1_000)})));
    }
    let script = format!(
        "{} status --format ndjson --now {NOW} '{}' | head -1; exit ${{PIPESTATUS[0]}}",
        bin(),
        run.path().display()
    );
    let out = run_command(
        std::process::Command::new("bash").arg("-c").arg(script),
        HANG_GUARD,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(out.stdout.contains("\"delegation_id\":\"d00000\""));
}

#[test]
fn usage_errors_exit_two() {
    let commands = flatline::cli::COMMANDS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ");
    for (args, message) in [
        (
            vec!["status"],
            "flatline: status needs at least one RUN_DIR",
        ),
        (
            vec!["status", "--stale-after", "45x", "r"],
            "flatline: --stale-after: invalid duration '45x': unknown unit 'x' (a systemd time span, e.g. 45s, 4min, 1m30s, 1h 30min, 1500ms)",
        ),
        (
            vec!["bogus"],
            &*format!("flatline: unknown command 'bogus' (commands: {commands})"),
        ),
        (
            vec!["status", "--format", "xml", "r"],
            "flatline: --format: unknown format 'xml' (use text, ndjson, json, tsv or prometheus)",
        ),
    ] {
        let out = flatline(&args);
        assert_eq!(out.code, 2, "{args:?}");
        assert_eq!(
            out.stderr_lines(),
            [message, "flatline: see 'flatline --help'"],
            "{args:?}"
        );
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn help_and_version() {
    let help = flatline(["--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout
            .contains("Usage: flatline COMMAND [OPTIONS] RUN_DIR...")
    );
    assert!(help.stdout.contains("--stale-after DURATION"));
    let command = flatline(["status", "--help"]);
    assert!(command.stdout.starts_with("flatline status - "));
    let version = flatline(["-V"]);
    assert!(
        version
            .stdout
            .starts_with(&format!("flatline {}", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn the_readme_exit_table_matches_the_code() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut rows = Vec::new();
    for (code, meaning) in flatline::exit::TABLE {
        rows.push(format!("| {code} | {meaning} |"));
    }
    let table = rows.join("\n");
    assert!(
        readme.contains(&table),
        "README.md must contain the exit status table:\n{table}"
    );
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
