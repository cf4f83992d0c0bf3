//! Progress and finalization of live, exited and pid-less workers; dry runs.

use super::*;

#[test]
fn a_live_worker_with_a_newer_stream_progresses_and_gets_a_fingerprint() {
    // Stamped just before the fork, as an orchestrator does: the process starts within the
    // identity window's slack after it, whatever the tick rounding of its start time.
    let now = real_now_ms();
    let child = Proc::sleep();
    let started = rfc3339(now);
    let run = Run::new();
    run.delegation(
        "live",
        &running(
            "live",
            json!({"process_id": child.pid(), "launch_requested_at": rfc3339(now - 3_000), "started_at": started,
                   "process_started_at": started, "last_progress_at": started}),
        ),
    );
    let stream = run.write("raw-events/live.jsonl", CODEX_NO_TERMINAL);
    let mtime = now + 1;
    set_mtime(&stream, mtime);
    let out = refresh(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    assert_eq!(
        out.records(),
        vec![json!({
            "kind": "action", "command": "refresh", "action": "progressed", "outcome": "written",
            "run_dir": run.path().to_string_lossy(), "path": run.delegation_path("live.json").to_string_lossy(),
            "delegation_id": "live", "last_progress_at": rfc3339(mtime), "fingerprint_stamped": true
        })]
    );
    let doc = run.read_json("delegations/live.json");
    let lifecycle = &doc["worker_lifecycle"];
    assert_eq!(lifecycle["last_progress_at"], rfc3339(mtime));
    assert_eq!(lifecycle["process_last_seen_at"], rfc3339(mtime));
    assert_eq!(lifecycle["state"], "running_active");
    let mut fingerprint = lifecycle["process_fingerprint"].clone();
    // The pidfs inode where the kernel has one (Linux ≥ 6.9), else no such field.
    if let Some(ino) = fingerprint.as_object_mut().unwrap().remove("pidfd_ino") {
        assert!(ino.is_u64(), "{ino}");
    }
    assert_eq!(
        fingerprint,
        json!({"start_ticks": child.start_ticks(), "boot_id": boot_id(), "pid_ns": pid_ns()})
    );
    // The evidence identity is built from is never written.
    assert_eq!(lifecycle["started_at"], started);
    assert_eq!(lifecycle["process_started_at"], started);
    assert_eq!(lifecycle["launch_requested_at"], rfc3339(now - 3_000));
    assert_eq!(doc["child_agent"]["status"], "running");
    // A second run changes no byte.
    let before = run.read("delegations/live.json");
    let again = refresh(&run, &[]);
    assert_eq!((again.code, again.stdout.as_str()), (0, ""));
    assert_eq!(run.read("delegations/live.json"), before);
}

#[test]
fn an_exited_worker_with_a_settled_codex_success_completes() {
    let pid = exited_pid();
    let run = Run::new();
    run.delegation(
        "done",
        &running(
            "done",
            json!({"process_id": pid, "started_at": at(-120_000), "last_progress_at": at(-60_000)}),
        ),
    );
    let stream = run.write("raw-events/done.jsonl", CODEX_SUCCESS);
    set_mtime(&stream, NOW_MS - 10_000);
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.records(),
        vec![json!({
            "kind": "action", "command": "refresh", "action": "finalized", "outcome": "written",
            "run_dir": run.path().to_string_lossy(), "path": run.delegation_path("done.json").to_string_lossy(),
            "delegation_id": "done", "status": "completed", "reason": null, "completed_at": at(-10_000),
            "format": "codex", "thread_id": "5e1f0a7c-0001-4c3b-9a10-codexexec001", "terminal_event": "turn.completed",
            "raw_events_bytes": CODEX_SUCCESS.len(), "summary": "Worker completed: All three tests pass; nothing needed fixing."
        })]
    );
    let doc = run.read_json("delegations/done.json");
    assert_eq!(doc["child_agent"]["status"], "completed");
    assert_eq!(doc["executor"]["status"], "completed");
    assert_eq!(doc["completed_at"], at(-10_000));
    assert_eq!(doc["updated_at"], at(0));
    assert_eq!(doc["latest_failure"], Value::Null);
    assert_eq!(
        doc["worker_result"],
        json!({
            "status": "completed", "recorded_at": at(0), "format": "codex",
            "thread_id": "5e1f0a7c-0001-4c3b-9a10-codexexec001",
            "assistant_message_preview": "All three tests pass; nothing needed fixing.",
            "total_token_usage": {"input_tokens": 5120, "cached_input_tokens": 4096, "output_tokens": 88},
            "process_exit": null, "raw_output_preview": null, "raw_output_bytes": CODEX_SUCCESS.len()
        })
    );
    assert_fields(
        &doc["worker_lifecycle"],
        json!({"state": "returned", "reclaim_state": "resumable", "returned_at": at(-10_000),
               "last_progress_at": at(-10_000), "process_last_seen_at": at(-10_000), "started_at": at(-120_000)}),
    );
    let view = status(&run, &[]).by_id("done");
    assert_fields(
        &view,
        json!({"state": "returned", "next_action": "advance"}),
    );
}

#[test]
fn an_exited_worker_with_an_unsettled_stream_is_left_for_the_next_run() {
    let pid = exited_pid();
    let run = Run::new();
    run.delegation(
        "busy",
        &running(
            "busy",
            json!({"process_id": pid, "last_progress_at": at(-60_000)}),
        ),
    );
    let stream = run.write("raw-events/busy.jsonl", CODEX_NO_TERMINAL);
    set_mtime(&stream, NOW_MS - 1_000);
    let before = run.read("delegations/busy.json");
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    assert_eq!(run.read("delegations/busy.json"), before);
    // Once settled (a later --now), it is finalized as interrupted.
    let later = refresh(&run, &["--now", &at(10_000)]);
    assert_eq!(later.code, 0, "{}", later.stderr);
    let record = &later.records()[0];
    assert_fields(
        record,
        json!({"action": "finalized", "status": "failed", "reason": "interrupted"}),
    );
    let doc = run.read_json("delegations/busy.json");
    assert_eq!(doc["latest_failure"]["reason"], "interrupted");
    assert_eq!(doc["worker_lifecycle"]["state"], "failed");
}

#[test]
fn an_exited_worker_without_a_stream_fails_unknown() {
    let pid = exited_pid();
    let run = Run::new();
    run.delegation(
        "lost",
        &running(
            "lost",
            json!({"process_id": pid, "last_progress_at": at(-60_000)}),
        ),
    );
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.records()[0],
        json!({"action": "finalized", "status": "failed", "reason": "unknown", "completed_at": at(0),
               "summary": "Worker process exited without an event stream.", "raw_events_bytes": 0}),
    );
    let doc = run.read_json("delegations/lost.json");
    assert_eq!(
        doc["latest_failure"],
        json!({"stage": "execution", "reason": "unknown",
               "summary": "unknown: Worker process exited without an event stream. raw_events_bytes=0",
               "recorded_at": at(0)})
    );
}

#[test]
fn without_a_pid_a_terminal_stream_completes_and_a_partial_one_only_progresses() {
    let run = Run::new();
    run.delegation(
        "claude",
        &running("claude", json!({"last_progress_at": at(-60_000)})),
    );
    run.delegation(
        "partial",
        &running("partial", json!({"last_progress_at": at(-60_000)})),
    );
    set_mtime(
        &run.write("raw-events/claude.jsonl", CLAUDE_SUCCESS),
        NOW_MS - 2_000,
    );
    set_mtime(
        &run.write("raw-events/partial.jsonl", CODEX_NO_TERMINAL),
        NOW_MS - 3_000,
    );
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = out.records();
    assert_fields(
        &records[0],
        json!({"delegation_id": "claude", "action": "finalized", "status": "completed", "format": "claude",
               "thread_id": "c1a0de00-0001-4000-8000-000000000001", "summary": "Worker completed: Two plus two is 4."}),
    );
    assert_eq!(
        records[1],
        json!({"kind": "action", "command": "refresh", "action": "progressed", "outcome": "written",
               "run_dir": run.path().to_string_lossy(), "path": run.delegation_path("partial.json").to_string_lossy(),
               "delegation_id": "partial", "last_progress_at": at(-3_000), "fingerprint_stamped": false})
    );
    let partial = run.read_json("delegations/partial.json");
    assert_eq!(partial["child_agent"]["status"], "running");
    assert_eq!(partial["worker_lifecycle"]["last_progress_at"], at(-3_000));
    assert!(
        partial["worker_lifecycle"]
            .get("process_fingerprint")
            .is_none()
    );
    // Unchanged since: the stream is not read again and nothing is written.
    let again = refresh(&run, &["--now", &at(1_000)]);
    assert_eq!((again.code, again.stdout.as_str()), (0, ""));
}

#[test]
fn dry_run_prints_and_writes_nothing() {
    let run = Run::new();
    run.delegation(
        "claude",
        &running("claude", json!({"last_progress_at": at(-60_000)})),
    );
    set_mtime(
        &run.write("raw-events/claude.jsonl", CLAUDE_SUCCESS),
        NOW_MS - 2_000,
    );
    let before = run.read("delegations/claude.json");
    let out = refresh(&run, &["--now", NOW, "--dry-run"]);
    assert_eq!(out.code, 0);
    assert_fields(
        &out.records()[0],
        json!({"action": "finalized", "outcome": "dry_run"}),
    );
    assert_eq!(run.read("delegations/claude.json"), before);
    assert!(
        !run.path().join(".flatline").exists(),
        "a dry run creates nothing"
    );
}
