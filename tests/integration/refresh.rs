//! `flatline refresh`: progress, finalization and the store, with real child processes.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

const CODEX_SUCCESS: &str = include_str!("../fixtures/streams/codex-exec-commands.jsonl");
const CODEX_NO_TERMINAL: &str = include_str!("../fixtures/streams/codex-exec-no-terminal.jsonl");
const CLAUDE_SUCCESS: &str = include_str!("../fixtures/streams/claude-basic.jsonl");

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

#[test]
fn unknown_fields_order_and_big_numbers_survive_byte_exactly() {
    let run = Run::new();
    let original = json!({
        "zeta": {"nested": {"deep": [1, {"x": null}], "big": 123456789012345678901234567890u128}},
        "delegation_id": "keep",
        "alpha": 1.5e300,
        "child_agent": {"status": "running", "model": "m"},
        "worker_lifecycle": {"custom": true, "last_progress_at": at(-60_000), "started_at": at(-70_000)},
        "worker_launch_evidence": {"raw_events_file": "raw-events/keep.jsonl"},
        "tail": "last"
    });
    // Written by hand so the 30-digit integer is in the file exactly.
    let text = serde_json::to_string_pretty(&original)
        .unwrap()
        .replace("1.2345678901234568e29", "123456789012345678901234567890");
    let text = format!("{text}\n");
    assert!(text.contains("123456789012345678901234567890"));
    run.write("delegations/keep.json", &text);
    let stream = run.write("raw-events/keep.jsonl", CODEX_NO_TERMINAL);
    set_mtime(&stream, NOW_MS - 5_000);
    let meta = std::fs::metadata(&stream).unwrap();
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expected = text.replace(
        &format!("\"last_progress_at\": \"{}\",", at(-60_000)),
        &format!("\"last_progress_at\": \"{}\",", at(-5_000)),
    );
    // The stream's identity is recorded on first sight (SPEC §3.2), after the progress.
    let expected = expected.replace(
        &format!("\"started_at\": \"{}\"\n  }},", at(-70_000)),
        &format!(
            "\"started_at\": \"{}\",\n    \"process_last_seen_at\": \"{}\",\n    \"state\": \"running_active\",\n    \"raw_events_inode\": {{\n      \"dev\": {},\n      \"ino\": {}\n    }}\n  }},",
            at(-70_000),
            at(-5_000),
            meta.dev(),
            meta.ino()
        ),
    );
    assert_eq!(
        String::from_utf8(run.read("delegations/keep.json")).unwrap(),
        expected
    );
}

#[test]
fn a_change_by_another_writer_is_detected_and_recomputed() {
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: needs the test hooks of a debug build");
        return;
    }
    let run = Run::new();
    run.delegation("c", &running("c", json!({"last_progress_at": at(-60_000)})));
    set_mtime(
        &run.write("raw-events/c.jsonl", CLAUDE_SUCCESS),
        NOW_MS - 2_000,
    );
    // The test hook (debug builds) rewrites the file once between flatline's read and its
    // rename, as another writer would.
    let mut command = std::process::Command::new(bin());
    command
        .args(["refresh", "--format=ndjson", "--now", NOW])
        .arg(run.arg())
        .env("FLATLINE_TEST_INTERFERE", "c.json:1");
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.records()[0],
        json!({"action": "finalized", "outcome": "written"}),
    );
    let doc = run.read_json("delegations/c.json");
    assert_eq!(
        doc["test_interference"], 1,
        "the other writer's change is kept"
    );
    assert_eq!(
        doc["child_agent"]["status"], "completed",
        "and flatline's change is applied on top"
    );
}

#[test]
fn a_file_that_keeps_changing_is_a_conflict_and_left_alone() {
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: needs the test hooks of a debug build");
        return;
    }
    let run = Run::new();
    run.delegation("c", &running("c", json!({"last_progress_at": at(-60_000)})));
    set_mtime(
        &run.write("raw-events/c.jsonl", CLAUDE_SUCCESS),
        NOW_MS - 2_000,
    );
    let mut command = std::process::Command::new(bin());
    command
        .args(["refresh", "--format=ndjson", "--now", NOW])
        .arg(run.arg())
        .env("FLATLINE_TEST_INTERFERE", "c.json:100");
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr,
        format!(
            "flatline: {}: changed by another writer 4 times while flatline was writing it; left alone\n",
            run.delegation_path("c.json").display()
        )
    );
    assert_fields(
        &out.records()[0],
        json!({"action": "finalized", "outcome": "conflict"}),
    );
    let doc = run.read_json("delegations/c.json");
    assert_eq!(doc["test_interference"], 4);
    assert_eq!(
        doc["child_agent"]["status"], "running",
        "flatline never overwrote it"
    );
    let leftovers: Vec<_> = std::fs::read_dir(run.path().join("delegations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn mode_and_owner_are_kept() {
    let run = Run::new();
    let path = run.delegation("m", &running("m", json!({"last_progress_at": at(-60_000)})));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::chown(run.path().join("raw-events"), Some(65534), Some(65534)).ok();
    }
    let stream = run.write("raw-events/m.jsonl", CODEX_NO_TERMINAL);
    if is_root() {
        std::os::unix::fs::chown(&stream, Some(65534), Some(65534)).unwrap();
    }
    set_mtime(&stream, NOW_MS - 5_000);
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.records()[0],
        json!({"action": "progressed", "outcome": "written"}),
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    if is_root() {
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }
}

#[test]
fn symlinks_are_refused_and_left_untouched() {
    // A symlinked delegation.
    let run = Run::new();
    let target = run.write(
        "elsewhere/real.json",
        serde_json::to_vec(&running("s", json!({}))).unwrap(),
    );
    std::os::unix::fs::symlink(&target, run.delegation_path("s.json")).unwrap();
    let before = std::fs::read(&target).unwrap();
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr,
        format!(
            "flatline: {}: is a symlink (or passes through one), refused\n",
            run.delegation_path("s.json").display()
        )
    );
    assert_eq!(std::fs::read(&target).unwrap(), before);

    // A symlinked delegations/ directory.
    let run = Run::bare();
    let real = TempDir::new("real-delegations");
    write_json(
        &real.join("d.json"),
        &running("d", json!({"last_progress_at": at(-60_000)})),
    );
    std::os::unix::fs::symlink(real.path(), run.path().join("delegations")).unwrap();
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr,
        format!(
            "flatline: {}: is a symlink, refused\n",
            run.path().join("delegations").display()
        )
    );

    // A symlinked .flatline directory: the run is refused.
    let run = Run::new();
    run.delegation("d", &running("d", json!({"last_progress_at": at(-60_000)})));
    let elsewhere = TempDir::new("elsewhere-state");
    std::os::unix::fs::symlink(elsewhere.path(), run.path().join(".flatline")).unwrap();
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains(".flatline"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing written through it"
    );

    // A symlinked stream.
    let run = Run::new();
    run.delegation("d", &running("d", json!({"last_progress_at": at(-60_000)})));
    let real = run.write("real.jsonl", CLAUDE_SUCCESS);
    std::fs::create_dir_all(run.path().join("raw-events")).unwrap();
    std::os::unix::fs::symlink(&real, run.path().join("raw-events/d.jsonl")).unwrap();
    let before = run.read("delegations/d.json");
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr,
        format!(
            "flatline: {}: event stream raw-events/d.jsonl: is a symlink (or passes through one), refused\n",
            run.delegation_path("d.json").display()
        )
    );
    assert_eq!(run.read("delegations/d.json"), before);
}

#[test]
fn bad_stream_paths_are_per_delegation_errors() {
    let outside = TempDir::new("outside");
    let secret = outside.join("secret.jsonl");
    std::fs::write(
        &secret,
        "{\"type\":\"turn.completed\",\"usage\":{\"secret\":\"TOPSECRET\"}}\n",
    )
    .unwrap();
    let run = Run::new();
    let fifo = run.path().join("fifo.jsonl");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo on a fresh path in our temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    std::fs::create_dir(run.path().join("adir")).unwrap();
    let foreign = run.write("foreign.jsonl", CLAUDE_SUCCESS);
    if is_root() {
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    }
    let cases: Vec<(&str, String)> = vec![
        ("a-fifo", "fifo.jsonl".into()),
        ("b-zero", "/dev/zero".into()),
        ("c-dir", "adir".into()),
        ("d-missing", "missing.jsonl".into()),
        ("e-outside", secret.to_string_lossy().into_owned()),
        (
            "f-escape",
            format!(
                "../{}/secret.jsonl",
                outside.path().file_name().unwrap().to_string_lossy()
            ),
        ),
        ("g-foreign", "foreign.jsonl".into()),
    ];
    for (id, path) in &cases {
        let mut doc = running(id, json!({"last_progress_at": at(-60_000)}));
        doc["worker_launch_evidence"]["raw_events_file"] = json!(path);
        run.delegation(id, &doc);
    }
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 3);
    let d = |id: &str| {
        run.delegation_path(&format!("{id}.json"))
            .display()
            .to_string()
    };
    let mut expected = vec![
        format!(
            "flatline: {}: event stream fifo.jsonl: is a FIFO, not a regular file, refused",
            d("a-fifo")
        ),
        format!(
            "flatline: {}: event stream /dev/zero: path_outside_run: lies outside the run directory (see --allow-outside-paths)",
            d("b-zero")
        ),
        format!(
            "flatline: {}: event stream adir: is a directory, not a regular file, refused",
            d("c-dir")
        ),
        format!(
            "flatline: {}: event stream {}: path_outside_run: lies outside the run directory (see --allow-outside-paths)",
            d("e-outside"),
            secret.display()
        ),
        format!(
            "flatline: {}: event stream {}: path_outside_run: escapes the run directory",
            d("f-escape"),
            cases[5].1
        ),
    ];
    if is_root() {
        expected.push(format!(
            "flatline: {}: event stream foreign.jsonl: owned by uid 65534, not by the delegation's owner (uid 0) or root, refused",
            d("g-foreign")
        ));
    }
    assert_eq!(out.stderr_lines(), expected);
    assert!(!out.stdout.contains("TOPSECRET") && !out.stderr.contains("TOPSECRET"));
    for (id, _) in &cases {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert_eq!(doc["child_agent"]["status"], "running", "{id} untouched");
        assert!(!serde_json::to_string(&doc).unwrap().contains("TOPSECRET"));
    }
    // With --allow-outside-paths the outside file is read, but /dev/zero is still refused.
    let out = refresh(&run, &["--now", NOW, "--allow-outside-paths"]);
    assert!(
        out.stderr
            .contains("event stream /dev/zero: is a character device, not a regular file, refused"),
        "{}",
        out.stderr
    );
    assert_fields(
        &out.by_action("e-outside"),
        json!({"action": "finalized", "status": "completed"}),
    );
}

#[test]
fn a_huge_stream_with_an_over_long_line_is_digested_in_bounded_memory() {
    let pid = exited_pid();
    let run = Run::new();
    run.delegation(
        "big",
        &running(
            "big",
            json!({"process_id": pid, "last_progress_at": at(-60_000)}),
        ),
    );
    let path = run.path().join("raw-events/big.jsonl");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(
            file,
            "{{\"type\":\"thread.started\",\"thread_id\":\"t-big\"}}"
        )
        .unwrap();
        let filler = format!(
            "{{\"type\":\"item.completed\",\"item\":{{\"type\":\"command_execution\",\"aggregated_output\":\"{}\"}}}}\n",
            "x".repeat(1000)
        );
        for _ in 0..30_000 {
            file.write_all(filler.as_bytes()).unwrap();
        }
        file.write_all(
            b"{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"",
        )
        .unwrap();
        file.write_all(&vec![b'y'; 20 * 1024 * 1024]).unwrap();
        file.write_all(b"\"}}\n").unwrap();
        writeln!(
            file,
            "{{\"type\":\"turn.completed\",\"usage\":{{\"output_tokens\":1}}}}"
        )
        .unwrap();
    }
    set_mtime(&path, NOW_MS - 10_000);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 50 * 1024 * 1024);
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Longer than --max-stream-read (32M): its head and tail are read, not the middle.
    let read = 32 * 1024 * 1024;
    assert_fields(
        &out.records()[0],
        json!({"action": "finalized", "status": "completed", "thread_id": "t-big",
               "raw_events_bytes": read, "raw_output_truncated": true,
               "raw_output_skipped_bytes": size - read}),
    );
    let doc = run.read_json("delegations/big.json");
    assert_eq!(doc["worker_result"]["raw_output_bytes"], json!(size));
    assert_eq!(doc["worker_result"]["raw_output_truncated"], json!(true));
    assert_eq!(
        doc["worker_result"]["raw_output_skipped_bytes"],
        json!(size - read)
    );
}

#[test]
fn the_lock_is_exclusive_and_wait_waits_for_it() {
    if !have("flock") {
        return;
    }
    let run = Run::new();
    run.delegation("d", &running("d", json!({"last_progress_at": at(-60_000)})));
    set_mtime(
        &run.write("raw-events/d.jsonl", CODEX_NO_TERMINAL),
        NOW_MS - 5_000,
    );
    // A first run creates .flatline/ and its lock with the right owner and modes.
    assert_eq!(refresh(&run, &["--now", NOW, "--dry-run"]).code, 0);
    assert_eq!(refresh(&run, &["--now", &at(-30_000)]).code, 0);
    let lock = run.path().join(".flatline/lock");
    assert_eq!(
        std::fs::metadata(run.path().join(".flatline"))
            .unwrap()
            .mode()
            & 0o777,
        0o750
    );
    assert_eq!(std::fs::metadata(&lock).unwrap().mode() & 0o777, 0o640);
    // flock(1) holds the lock until its stdin closes.
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", "echo locked; exec cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(holder.stdout.as_mut().unwrap());
        reader.read_line(&mut line).unwrap();
    }
    assert_eq!(line, "locked\n");
    let started = std::time::Instant::now();
    let busy = refresh(&run, &["--now", NOW]);
    assert_eq!(busy.code, 75, "{}", busy.stderr);
    assert!(started.elapsed() < Duration::from_secs(5));
    let my_uid = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        busy.stderr,
        format!(
            "flatline: {}: held by pid {} (uid {my_uid}); flatline waited 0 ms (use --wait \
             DURATION to wait for it)\n",
            lock.display(),
            holder.id()
        )
    );
    // With --wait, refresh waits; closing flock's stdin releases the lock.
    let waiter = start(
        std::process::Command::new(bin())
            .args(["refresh", "--format=ndjson", "--now", NOW, "--wait", "30s"])
            .arg(run.arg()),
    );
    // Release only once the waiting flatline has the lock file open.
    wait_until_open(waiter.id(), &std::fs::canonicalize(&lock).unwrap());
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let out = finish(waiter, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.records()[0],
        json!({"action": "progressed", "last_progress_at": at(-5_000)}),
    );
}

/// Holds `RUN/.flatline/lock` with flock(1) until the returned child's stdin is closed.
fn hold_lock(run: &Run) -> std::process::Child {
    // A dry run creates nothing; a real one on an empty run creates .flatline/ and its lock.
    assert_eq!(refresh(run, &["--now", NOW]).code, 0);
    let lock = run.path().join(".flatline/lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", "echo locked; exec cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    holder
}

#[test]
fn a_signal_while_waiting_stops_the_run_with_128_plus_n_and_writes_nothing() {
    if !have("flock") {
        return;
    }
    let run = Run::new();
    let mut holder = hold_lock(&run);
    run.delegation("d", &running("d", json!({"last_progress_at": at(-60_000)})));
    set_mtime(
        &run.write("raw-events/d.jsonl", CODEX_NO_TERMINAL),
        NOW_MS - 5_000,
    );
    let before = run.read("delegations/d.json");
    let waiter = start(
        std::process::Command::new(bin())
            .args(["refresh", "--format=ndjson", "--now", NOW, "--wait", "60s"])
            .arg(run.arg()),
    );
    let lock = std::fs::canonicalize(run.path().join(".flatline/lock")).unwrap();
    wait_until_open(waiter.id(), &lock);
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(waiter.id() as i32, libc::SIGTERM) }, 0);
    let out = finish(waiter, HANG_GUARD);
    assert_eq!(out.code, 128 + libc::SIGTERM, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(run.read("delegations/d.json"), before);
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

#[test]
fn the_deadline_ends_a_run_with_124() {
    if !have("flock") {
        return;
    }
    let run = Run::new();
    let mut holder = hold_lock(&run);
    run.delegation("d", &running("d", json!({"last_progress_at": at(-60_000)})));
    let before = run.read("delegations/d.json");
    let out = refresh(
        &run,
        &["--now", NOW, "--wait", "60s", "--deadline", "300ms"],
    );
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert_eq!(run.read("delegations/d.json"), before);
    drop(holder.stdin.take());
    holder.wait().unwrap();
}
