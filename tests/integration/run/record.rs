//! What `run` records at each step, the stream it writes, its exit statuses and stdin, and
//! the stream paths it refuses.

use super::*;

/// The worker of the step test: waits until `run` has recorded it running, keeps a copy of
/// the delegation as it is then, and becomes the fake agent (same pid).
const SNAPSHOT_WORKER: &str = r##"doc="$FLATLINE_RUN_DIR/delegations/$FLATLINE_DELEGATION_ID.json"
i=0
until grep -q '"status": "running"' "$doc"; do i=$((i + 1)); [ $i -gt 1000 ] && exit 99; sleep 0.01; done
cp "$doc" "$FLATLINE_RUN_DIR/running-snapshot.json"
printf '%s\n' "$FLATLINE_STREAM" > "$FLATLINE_RUN_DIR/env-stream"
exec "$0" ok "the step test""##;

#[test]
fn the_delegation_has_every_field_at_each_step() {
    let run = Run::new();
    let out = launch(
        &run,
        &[
            "--id",
            "step",
            "--task-card",
            "card-1",
            "--stale-after",
            "30s",
            "--",
            "sh",
            "-c",
            SNAPSHOT_WORKER,
            agent(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("delegation step"), "{}", out.stderr);
    let stream = run.path().join("raw-events/step.jsonl");
    let (running, pid) = check_running_snapshot(&run, &stream);
    check_finalized(&run, &running, pid);
    // A status sees what run wrote.
    let status = flatline([
        OsStr::new("status"),
        OsStr::new("--format=ndjson"),
        run.arg(),
    ]);
    assert_eq!(
        status.by_id("step")["state"],
        "returned",
        "{}",
        status.stdout
    );
}

/// The step test's copy of the delegation while its worker ran: the identity taken at birth
/// and the launch evidence. Returns it with the worker's pid.
fn check_running_snapshot(run: &Run, stream: &Path) -> (Value, u64) {
    let stream_meta = std::fs::metadata(stream).unwrap();

    // Running: the identity taken at birth, and the launch evidence.
    let running: Value =
        serde_json::from_slice(&std::fs::read(run.path().join("running-snapshot.json")).unwrap())
            .unwrap();
    assert_eq!(running["delegation_id"], "step");
    assert_eq!(running["task_card_id"], "card-1");
    assert_eq!(running["child_agent"]["status"], "running");
    let lifecycle = &running["worker_lifecycle"];
    for key in [
        "queued_at",
        "launch_requested_at",
        "started_at",
        "process_started_at",
    ] {
        let text = lifecycle[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {running}"));
        assert!(text.ends_with('Z') && text.len() == 24, "{key}: {text}");
    }
    assert_eq!(lifecycle["stale_after_ms"], 30_000);
    let pid = lifecycle["process_id"].as_u64().unwrap();
    let fingerprint = &lifecycle["process_fingerprint"];
    assert!(fingerprint["start_ticks"].is_u64(), "{running}");
    assert_eq!(fingerprint["boot_id"], boot_id().as_str());
    assert_eq!(fingerprint["pid_ns"], pid_ns());
    let inode = json!({"dev": stream_meta.dev(), "ino": stream_meta.ino()});
    assert_eq!(lifecycle["raw_events_inode"], inode);
    let evidence = &running["worker_launch_evidence"];
    assert_eq!(evidence["launch_source"], "flatline run");
    assert_eq!(
        evidence["command"],
        json!(["sh", "-c", SNAPSHOT_WORKER, agent()])
    );
    assert_eq!(evidence["raw_events_file"], "raw-events/step.jsonl");
    assert_eq!(evidence["raw_events_inode"], inode);
    assert!(evidence["launcher"]["pid"].as_u64().unwrap() > 1);
    assert_ne!(evidence["launcher"]["pid"].as_u64(), Some(pid));
    assert_eq!(
        evidence["launcher"]["fingerprint"]["boot_id"],
        boot_id().as_str()
    );
    assert!(evidence["launcher"]["fingerprint"]["start_ticks"].is_u64());
    // The child's environment named the stream by its absolute path.
    let env_stream = std::fs::read_to_string(run.path().join("env-stream")).unwrap();
    assert_eq!(
        PathBuf::from(env_stream.trim()),
        std::fs::canonicalize(stream).unwrap()
    );
    (running, pid)
}

/// The step test's delegation once `run` returned: finalized at once from the wait status
/// and the digest, 0640 with the run directory's group.
fn check_finalized(run: &Run, running: &Value, pid: u64) {
    // Finalized at once from the wait status and the digest.
    let done = doc(run, "step");
    assert_eq!(done["child_agent"]["status"], "completed", "{done}");
    let lifecycle = &done["worker_lifecycle"];
    assert_eq!(lifecycle["state"], "returned");
    assert_eq!(lifecycle["reclaim_state"], "resumable");
    assert_eq!(lifecycle["exit_code"], 0);
    assert_eq!(lifecycle["exit_signal"], Value::Null);
    assert_eq!(lifecycle["process_id"].as_u64(), Some(pid));
    assert_eq!(
        lifecycle["queued_at"],
        running["worker_lifecycle"]["queued_at"]
    );
    let result = &done["worker_result"];
    assert_eq!(result["status"], "completed");
    assert_eq!(result["format"], "codex");
    assert_eq!(result["thread_id"], "fake-step");
    assert_eq!(result["assistant_message_preview"], "Done: the step test.");
    assert_eq!(
        result["process_exit"],
        json!({"success": true, "exit_code": 0, "exit_signal": null})
    );
    assert_eq!(done["latest_failure"], Value::Null);
    // 0640, with the run directory's group.
    let meta = std::fs::metadata(run.delegation_path("step.json")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(meta.gid(), std::fs::metadata(run.path()).unwrap().gid());
}

#[test]
fn the_stream_is_byte_identical_to_the_childs_output() {
    let run = Run::new();
    // Bytes that are not JSON, not UTF-8, with NUL, CR and a missing final newline.
    let script = r#"printf 'a\000b\r\n\377{"type":"turn.started"}\n'; printf 'to stderr\n' >&2; printf 'last'"#;
    let expected: &[u8] = b"a\0b\r\n\xff{\"type\":\"turn.started\"}\nto stderr\nlast";
    let out = launch(&run, &["--id", "bytes", "--", "sh", "-c", script]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(run.read("raw-events/bytes.jsonl"), expected);
    assert_eq!(out.stdout, "", "without --tee nothing reaches run's stdout");

    // --stderr FILE splits stderr off.
    let out = launch(
        &run,
        &[
            "--id",
            "split",
            "--stderr",
            "split.err",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        run.read("raw-events/split.jsonl"),
        b"a\0b\r\n\xff{\"type\":\"turn.started\"}\nlast"
    );
    assert_eq!(run.read("split.err"), b"to stderr\n");

    // --tee: the stream and run's stdout both get stdout, byte for byte.
    let big =
        "for i in $(seq 1 3000); do printf '{\"type\":\"item.completed\",\"n\":%d}\\n' $i; done";
    let mut command = Command::new(bin());
    command.args(["run", "--run-dir"]).arg(run.path());
    command.args([
        "--id", "tee", "--tee", "--stderr", "tee.err", "--", "sh", "-c", big,
    ]);
    let child = start(&mut command);
    let out = finish(child, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stream = run.read("raw-events/tee.jsonl");
    assert_eq!(stream.len(), out.stdout.len());
    assert_eq!(stream, out.stdout.as_bytes());
    assert_eq!(stream.split(|b| *b == b'\n').count(), 3001);
}

#[test]
fn exit_statuses_are_those_of_timeout() {
    let run = Run::new();
    assert_eq!(launch(&run, &["--id", "ok", "--", agent(), "ok"]).code, 0);
    let failed = launch(&run, &["--id", "fail", "--", agent(), "fail"]);
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    let d = doc(&run, "fail");
    assert_eq!(d["child_agent"]["status"], "failed");
    assert_eq!(d["latest_failure"]["reason"], "execution_failed");
    assert_eq!(d["worker_lifecycle"]["exit_code"], 3);

    let missing = launch(&run, &["--id", "missing", "--", "/nonexistent/agent"]);
    assert_eq!(missing.code, 127, "{}", missing.stderr);
    let d = doc(&run, "missing");
    assert_eq!(d["child_agent"]["status"], "failed", "{d}");
    assert_eq!(d["worker_lifecycle"]["exit_code"], 127);
    assert!(d["worker_lifecycle"]["queued_at"].is_string());

    let not_executable = run.write("not-executable", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = launch(
        &run,
        &["--id", "noexec", "--", not_executable.to_str().unwrap()],
    );
    assert_eq!(out.code, 126, "{}", out.stderr);

    let killed = launch(&run, &["--id", "sig", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(killed.code, 137, "{}", killed.stderr);
    let d = doc(&run, "sig");
    assert_eq!(d["worker_lifecycle"]["exit_signal"], 9, "{d}");
    assert_eq!(d["worker_lifecycle"]["exit_code"], Value::Null);
    assert_eq!(d["worker_result"]["process_exit"]["exit_signal"], 9);
    assert_eq!(d["child_agent"]["status"], "failed");

    // Usage errors: an id that exists (left as it was), no command, no run directory.
    let before = run.read("delegations/ok.json");
    let again = launch(&run, &["--id", "ok", "--", agent(), "ok"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(run.read("delegations/ok.json"), before);
    assert_eq!(launch(&run, &["--id", "none"]).code, 2);
    let gone = flatline(["run", "--run-dir", "/nonexistent/run", "--", "true"]);
    assert_eq!(gone.code, 2, "{}", gone.stderr);
    // $FLATLINE_RUN_DIR is the default run directory.
    let mut command = Command::new(bin());
    command
        .args(["run", "--id", "from-env", "--", agent(), "ok"])
        .env("FLATLINE_RUN_DIR", run.path());
    assert_eq!(run_command(&mut command, HANG_GUARD).code, 0);
    assert_eq!(doc(&run, "from-env")["child_agent"]["status"], "completed");
}

#[test]
fn stdin_is_dev_null_unless_inherited() {
    let run = Run::new();
    // The fake agent reads stdin to its end first: with /dev/null it cannot hang.
    let mut command = Command::new(bin());
    command
        .args(["run", "--run-dir"])
        .arg(run.path())
        .args(["--id", "stdin", "--", agent(), "stdin"])
        .stdin(std::process::Stdio::piped());
    command.stdout(std::process::Stdio::piped());
    command.stderr(std::process::Stdio::piped());
    // The pipe is held open by the test and never written: only /dev/null lets it finish.
    let mut child = command.spawn().unwrap();
    let _held = child.stdin.take();
    let out = finish(child, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(doc(&run, "stdin")["child_agent"]["status"], "completed");
}

/// A planted symlink or FIFO where the stream goes is refused before anything runs or is
/// recorded, and never written through or waited on. The planter is an ordinary user.
#[test]
fn a_planted_symlink_or_fifo_at_the_stream_path_is_refused() {
    if !is_root() || !have("setpriv") {
        eprintln!("SKIPPED: needs root and setpriv");
        return;
    }
    let run = Run::new();
    let outside = TempDir::new("outside");
    let target = outside.join("target.txt");
    std::fs::write(&target, "precious\n").unwrap();
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::create_dir(run.path().join("raw-events")).unwrap();
    std::fs::set_permissions(
        run.path().join("raw-events"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    let plant = format!(
        "ln -s {t} {r}/raw-events/evil.jsonl && mkfifo {r}/raw-events/fifo.jsonl && \
         ln -s {t} {r}/raw-events/link && mkfifo {r}/raw-events/named-fifo",
        t = target.display(),
        r = run.path().display()
    );
    let planted = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(&plant)
        .status()
        .unwrap();
    assert!(planted.success());
    for (id, extra) in [
        ("evil", vec![]),
        ("fifo", vec![]),
        ("named-link", vec!["--stream", "raw-events/link"]),
        ("named-fifo", vec!["--stream", "raw-events/named-fifo"]),
        ("outside", vec!["--stream", "../escape.jsonl"]),
        ("absolute", vec!["--stream", "/etc/flatline-escape.jsonl"]),
        ("stderr-link", vec!["--stderr", "raw-events/link"]),
        ("stderr-fifo", vec!["--stderr", "raw-events/named-fifo"]),
    ] {
        let mut args = vec!["--id", id];
        args.extend(extra);
        args.extend(["--", agent(), "ok"]);
        let out = launch(&run, &args);
        assert_eq!(out.code, 2, "{id}: {}", out.stderr);
        assert!(
            !run.delegation_path(&format!("{id}.json")).exists(),
            "{id}: recorded before the stream was safe"
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert!(!Path::new("/etc/flatline-escape.jsonl").exists());
    assert!(!run.path().parent().unwrap().join("escape.jsonl").exists());
    named_streams_of_this_user_only(&run);
}

/// A stream of this user that --stream names is appended to, but not one another user
/// owns, nor one with two links.
fn named_streams_of_this_user_only(run: &Run) {
    // A stream of this user that --stream names is appended to.
    run.write(
        "raw-events/mine.jsonl",
        "{\"type\":\"thread.started\",\"thread_id\":\"old\"}\n",
    );
    std::fs::set_permissions(
        run.path().join("raw-events/mine.jsonl"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let out = launch(
        run,
        &[
            "--id",
            "mine",
            "--stream",
            "raw-events/mine.jsonl",
            "--",
            agent(),
            "ok",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stream = String::from_utf8(run.read("raw-events/mine.jsonl")).unwrap();
    assert!(stream.starts_with("{\"type\":\"thread.started\",\"thread_id\":\"old\"}\n"));
    assert!(stream.ends_with("\"output_tokens\":42}}\n"), "{stream}");
    // ... but not one another user owns, nor one with two links.
    let chowned = run.write("raw-events/theirs.jsonl", "");
    std::os::unix::fs::chown(&chowned, Some(65534), Some(65534)).unwrap();
    let out = launch(
        run,
        &[
            "--id",
            "theirs",
            "--stream",
            "raw-events/theirs.jsonl",
            "--",
            agent(),
            "ok",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    std::fs::hard_link(&chowned, run.path().join("raw-events/second-link")).unwrap();
    std::os::unix::fs::chown(&chowned, Some(0), Some(0)).unwrap();
    let out = launch(
        run,
        &[
            "--id",
            "linked",
            "--stream",
            "raw-events/theirs.jsonl",
            "--",
            agent(),
            "ok",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
}

/// `--tee` copies in steps larger than the default pipe (relay.rs): a megabyte and more
/// reaches the stream and run's stdout byte for byte, and a reader of run's stdout that
/// stops early stops only that copy: the stream still gets every byte.
#[test]
fn the_tee_relay_keeps_every_byte_when_its_reader_leaves() {
    let run = Run::new();
    let lines = "seq 1 300000 | sed 's/^/{\"type\":\"item.completed\",\"n\":/; s/$/}/'; \
                 echo '{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}'";
    let mut command = Command::new(bin());
    command.args(["run", "--run-dir"]).arg(run.path());
    command.args(["--id", "whole", "--tee", "--", "sh", "-c", lines]);
    let out = finish(start(&mut command), HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stream = run.read("raw-events/whole.jsonl");
    assert!(stream.len() > 8 << 20, "{} bytes", stream.len());
    assert_eq!(stream, out.stdout.as_bytes());

    // The reader takes 100 bytes and leaves; the worker and the stream go on to the end.
    let script = format!(
        "\"$1\" run --run-dir \"$2\" --id left --tee -- sh -c '{}' | head -c 100 > /dev/null; \
         echo \"${{PIPESTATUS[0]}}\"",
        lines.replace('\'', "'\\''")
    );
    let mut command = Command::new("bash");
    command
        .args(["-c", &script, "bash"])
        .arg(bin())
        .arg(run.path());
    let out = finish(start(&mut command), HANG_GUARD);
    assert_eq!(out.stdout.trim(), "0", "{}", out.stderr);
    assert_eq!(run.read("raw-events/left.jsonl"), stream);
    assert_eq!(doc(&run, "left")["child_agent"]["status"], "completed");
}
