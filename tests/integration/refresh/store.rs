//! The store: bytes kept, other writers, modes and owners, symlinks.

use super::*;

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
