//! `flatline run` (SPEC §12, issue 16) with real children: the fake agent of
//! `examples/fake-agent` prints Codex-shaped events, fails, hangs, ignores SIGTERM or forks a
//! grandchild. Everything that may signal runs inside a private pid namespace.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn agent() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fake-agent")
}

/// `flatline run --run-dir RUN ARGS...`.
fn launch(run: &Run, args: &[&str]) -> Outcome {
    let mut all = vec!["run", "--run-dir"];
    all.push(run.path().to_str().unwrap());
    all.extend_from_slice(args);
    flatline(all)
}

fn doc(run: &Run, id: &str) -> Value {
    run.read_json(&format!("delegations/{id}.json"))
}

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
    let stream_meta = std::fs::metadata(&stream).unwrap();

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
        std::fs::canonicalize(&stream).unwrap()
    );

    // Finalized at once from the wait status and the digest.
    let done = doc(&run, "step");
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
        &run,
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
        &run,
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
        &run,
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

/// Every catchable signal the namespace's init receives, but SIGCHLD, is logged: nothing of
/// `run`'s may reach it.
const INIT_TRAPS: &str = r##"
for s in {1..16} {18..64}; do trap "echo \"#init got signal $s\"" $s 2>/dev/null; done
wait_running() { local i=0; until grep -q '"status": "running"' "$1" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 1000 ] && return 1; sleep 0.01; done; }
alive() { local s; s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }
"##;

fn in_namespace(script: &str, run: &Run) -> (Outcome, Vec<String>) {
    let mut command = pid_namespace_bash(&format!("{INIT_TRAPS}\n{script}"));
    command.arg(bin()).arg(run.path()).arg(agent());
    let out = run_command(&mut command, Duration::from_secs(90));
    let notes = out
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(str::to_string)
        .collect();
    (out, notes)
}

fn namespace_ok() -> bool {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return false;
    }
    true
}

const HUNG: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id hung --stale-after 1s --grace 500ms -- "$agent" grandchild; echo "#exit $?"
gc=$(sed -n 's/.*"grandchild_pid":\([0-9]*\).*/\1/p' "$run/raw-events/hung.jsonl")
echo "#grandchild=$gc"
alive "$gc" && echo "#grandchild alive"
"$bin" run --run-dir "$run" --id stubborn --stale-after 1s --grace 300ms -- "$agent" ignore-term; echo "#exit $?"
echo "#done"
"##;

#[test]
fn a_hung_worker_is_reclaimed_with_its_grandchild_after_its_stale_threshold() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(HUNG, &run);
    assert_eq!(
        notes.last().map(String::as_str),
        Some("done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        notes.iter().filter(|n| *n == "exit 124").count(),
        2,
        "{notes:?}\n{}",
        out.stderr
    );
    assert!(!notes.iter().any(|n| n == "grandchild alive"), "{notes:?}");
    assert!(
        !notes.iter().any(|n| n.starts_with("init got")),
        "{notes:?}"
    );
    let grandchild: u64 = notes
        .iter()
        .find_map(|n| n.strip_prefix("grandchild="))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{notes:?}"));
    let hung = doc(&run, "hung");
    assert_eq!(hung["child_agent"]["status"], "failed", "{hung}");
    assert_eq!(hung["worker_lifecycle"]["reclaim_state"], "reclaimed");
    assert_eq!(hung["worker_lifecycle"]["state"], "stale");
    assert_eq!(hung["latest_failure"]["reason"], "timeout");
    assert_eq!(hung["reclaim"]["termination"], "terminated", "{hung}");
    assert!(
        hung["reclaim"]["descendants_signalled"]
            .as_array()
            .unwrap()
            .contains(&json!(grandchild)),
        "{hung}"
    );
    assert_eq!(hung["worker_lifecycle"]["exit_signal"], 15);
    let stubborn = doc(&run, "stubborn");
    assert_eq!(stubborn["reclaim"]["termination"], "killed", "{stubborn}");
    assert_eq!(stubborn["worker_lifecycle"]["exit_signal"], 9);
}

/// While `run` lives, a sweep leaves its worker alone (skipped_launcher), even stale; once
/// `run` is killed with SIGKILL, the next sweep reclaims the worker. A second worker that
/// finishes after its `run` was killed is finalized by the sweep from its stream.
const TAKEOVER: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id w --no-watch --stale-after 1s -- "$agent" hang 2>/dev/null &
launcher=$!
wait_running "$run/delegations/w.json" || echo "#never running"
sleep 1.3
"$bin" sweep --format ndjson --grace 500ms "$run"; echo "#exit $?"
kill -0 $launcher 2>/dev/null && echo "#launcher alive"
kill -KILL $launcher; wait $launcher 2>/dev/null
echo "#launcher killed"
"$bin" sweep --format ndjson --grace 500ms "$run"; echo "#exit $?"
"$bin" run --run-dir "$run" --id f --no-watch -- "$agent" slow 3 2>/dev/null &
launcher=$!
wait_running "$run/delegations/f.json" || echo "#never running"
kill -KILL $launcher; wait $launcher 2>/dev/null
sleep 1.5
"$bin" sweep --format ndjson "$run"; echo "#exit $?"
echo "#done"
"##;

#[test]
fn a_sweep_leaves_a_live_runs_worker_to_it_and_takes_over_once_run_is_killed() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(TAKEOVER, &run);
    assert_eq!(
        notes.last().map(String::as_str),
        Some("done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        !notes
            .iter()
            .any(|n| n.starts_with("init got") || n == "never running"),
        "{notes:?}"
    );
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.starts_with("exit"))
            .collect::<Vec<_>>(),
        ["exit 0", "exit 0", "exit 0"],
        "{}",
        out.stderr
    );
    let records: Vec<Value> = out
        .stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let w: Vec<&Value> = records
        .iter()
        .filter(|r| r["delegation_id"] == "w")
        .collect();
    let skipped = w
        .iter()
        .find(|r| r["action"] == "skipped")
        .unwrap_or_else(|| panic!("{w:?}"));
    assert_eq!(skipped["termination"], "skipped_launcher", "{skipped}");
    // Skipped before the launcher was killed, reclaimed after.
    let first_reclaim = w.iter().position(|r| r["action"] == "reclaimed");
    let skip_at = w.iter().position(|r| r["action"] == "skipped");
    assert!(skip_at < first_reclaim, "{w:?}");
    assert!(notes.iter().any(|n| n == "launcher alive"));
    let reclaimed = w
        .iter()
        .find(|r| r["action"] == "reclaimed")
        .unwrap_or_else(|| panic!("{w:?}"));
    assert_eq!(reclaimed["termination"], "terminated", "{reclaimed}");
    let d = doc(&run, "w");
    assert_eq!(d["worker_lifecycle"]["reclaim_state"], "reclaimed", "{d}");
    // The worker finished while nobody watched: the sweep finalized it from its stream.
    let f = doc(&run, "f");
    assert_eq!(f["child_agent"]["status"], "completed", "{f}");
    assert_eq!(
        f["worker_result"]["assistant_message_preview"],
        "Done: all steps."
    );
}

/// A sweep every few milliseconds while `run` records its worker: neither loses a write.
const CONCURRENT: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id c -- "$agent" slow 8 &
r=$!
n=0
while kill -0 $r 2>/dev/null; do "$bin" sweep --format ndjson --wait 10s "$run" > /dev/null || echo "#sweep failed"; n=$((n + 1)); done
wait $r; echo "#exit $?"
echo "#sweeps=$n"
echo "#done"
"##;

#[test]
fn a_concurrent_sweep_never_loses_runs_writes() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(CONCURRENT, &run);
    assert_eq!(
        notes.last().map(String::as_str),
        Some("done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        notes.iter().any(|n| n == "exit 0"),
        "{notes:?}\n{}",
        out.stderr
    );
    assert!(
        !notes.iter().any(|n| n == "sweep failed"),
        "{notes:?}\n{}",
        out.stderr
    );
    let sweeps: u32 = notes
        .iter()
        .find_map(|n| n.strip_prefix("sweeps="))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(sweeps >= 3, "{sweeps}");
    let d = doc(&run, "c");
    assert_eq!(d["child_agent"]["status"], "completed", "{d}");
    let lifecycle = &d["worker_lifecycle"];
    for key in [
        "queued_at",
        "started_at",
        "process_started_at",
        "process_id",
    ] {
        assert!(!lifecycle[key].is_null(), "{key}: {d}");
    }
    assert!(
        lifecycle["process_fingerprint"]["start_ticks"].is_u64(),
        "{d}"
    );
    assert_eq!(lifecycle["exit_code"], 0, "{d}");
    assert_eq!(d["worker_result"]["process_exit"]["success"], true, "{d}");
    assert_eq!(d["worker_launch_evidence"]["launch_source"], "flatline run");
}

/// After `run` and its worker are gone, the worker's pid is recycled (ns_last_pid) by a
/// decoy started well within two seconds: by the identity window that is `unverifiable`,
/// by the fingerprint `reused`. reclaim must say `skipped_reused` and leave the decoy alive.
const RECYCLED: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id w --no-watch --stale-after 1s -- "$agent" hang 2>/dev/null &
launcher=$!
wait_running "$run/delegations/w.json" || echo "#never running"
worker=$(sed -n 's/.*"process_id": \([0-9]*\).*/\1/p' "$run/delegations/w.json")
kill -KILL $launcher; wait $launcher 2>/dev/null
# The whole group: a pid that still names a process group (a zombie member included) is
# never handed out again. Waited for without forking: pids must stay predictable.
group_left() { local f s; for f in /proc/[0-9]*/stat; do
  read -r s < "$f" 2>/dev/null || continue; s=${s##*) }; set -- $s
  [ "$3" = "$worker" ] && return 0; done; return 1; }
kill -KILL -- -"$worker"
while [ -e "/proc/$worker" ] || group_left; do sleep 0.01; done
echo $((worker - 1)) > /proc/sys/kernel/ns_last_pid
sleep 300 & decoy=$!
echo "#worker=$worker decoy=$decoy"
sleep 1.1
"$bin" reclaim --format ndjson --settle 0s --grace 500ms "$run"; echo "#exit $?"
alive "$decoy" && echo "#decoy alive"
echo "#done"
"##;

#[test]
fn a_run_worker_is_verified_by_fingerprint_never_by_window() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(RECYCLED, &run);
    assert_eq!(
        notes.last().map(String::as_str),
        Some("done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let pids = notes.iter().find(|n| n.starts_with("worker=")).unwrap();
    let values: Vec<&str> = pids
        .split_whitespace()
        .map(|w| w.split('=').nth(1).unwrap())
        .collect();
    assert_eq!(
        values[0], values[1],
        "ns_last_pid did not recycle the pid: {pids}"
    );
    assert!(
        notes.iter().any(|n| n == "decoy alive"),
        "{notes:?}\n{}",
        out.stderr
    );
    let record: Value = out
        .stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|r| r["delegation_id"] == "w")
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(record["termination"], "skipped_reused", "{record}");
    assert_eq!(record["action"], "finalized", "{record}");
}

/// SIGTERM to `run` reaches the worker's whole group, is recorded, and `run` exits as the
/// worker did (128+15); the worker's child in its group ends too.
const FORWARD: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id fw -- "$agent" grandchild 2>/dev/null &
launcher=$!
wait_running "$run/delegations/fw.json" || echo "#never running"
until grep -q grandchild_pid "$run/raw-events/fw.jsonl" 2>/dev/null; do sleep 0.01; done
gc=$(sed -n 's/.*"grandchild_pid":\([0-9]*\).*/\1/p' "$run/raw-events/fw.jsonl")
kill -TERM $launcher
wait $launcher; echo "#exit $?"
sleep 0.2
alive "$gc" && echo "#grandchild alive"
echo "#done"
"##;

#[test]
fn signals_to_run_are_forwarded_to_the_workers_group_and_recorded() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(FORWARD, &run);
    assert_eq!(
        notes.last().map(String::as_str),
        Some("done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        notes.iter().any(|n| n == "exit 143"),
        "{notes:?}\n{}",
        out.stderr
    );
    assert!(
        !notes
            .iter()
            .any(|n| n == "grandchild alive" || n.starts_with("init got")),
        "{notes:?}"
    );
    let d = doc(&run, "fw");
    let forwarded = d["worker_lifecycle"]["forwarded_signals"]
        .as_array()
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(forwarded.len(), 1, "{d}");
    assert_eq!(forwarded[0]["signal"], "SIGTERM");
    assert_eq!(d["worker_lifecycle"]["exit_signal"], 15, "{d}");
    assert_eq!(d["child_agent"]["status"], "failed", "{d}");
    assert_eq!(d["latest_failure"]["reason"], "interrupted", "{d}");
}

/// The worker gets no descriptor of flatline's own (every one is O_CLOEXEC): no pidfd, no
/// lock, no directory of the run; its stdout and stderr are the stream. (Descriptors that
/// flatline itself inherited without O_CLOEXEC are not flatline's and pass through.)
#[test]
fn the_worker_inherits_no_descriptor_of_flatlines() {
    let run = Run::new();
    let out = launch(&run, &["--id", "fds", "--", "ls", "-l", "/proc/self/fd/"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let listing = String::from_utf8(run.read("raw-events/fds.jsonl")).unwrap();
    let stream = std::fs::canonicalize(run.path().join("raw-events/fds.jsonl")).unwrap();
    let run_dir = std::fs::canonicalize(run.path()).unwrap();
    let mut seen = Vec::new();
    for line in listing.lines().filter(|line| line.contains(" -> ")) {
        let (left, target) = line.split_once(" -> ").unwrap();
        let fd: u32 = left.rsplit(' ').next().unwrap().parse().unwrap();
        seen.push(fd);
        assert!(!target.contains("pidfd"), "{line}");
        if fd == 1 || fd == 2 {
            assert_eq!(Path::new(target), stream, "{line}");
        } else if fd == 0 {
            assert_eq!(target, "/dev/null", "{line}");
        } else {
            assert!(
                !target.starts_with(run_dir.to_str().unwrap()),
                "{line}\n{listing}"
            );
        }
    }
    seen.sort_unstable();
    assert!(seen.starts_with(&[0, 1, 2]), "{listing}");
}

/// Activity in run's own watch (SPEC §11): a worker that burns CPU without printing a line
/// is `running_busy`, not reclaimed at its stale threshold but once `--busy-limit` passed;
/// with `--no-activity` the same worker is reclaimed at its stale threshold.
const BUSY: &str = r##"
bin=$1; run=$2
ms() { echo $(( $(date +%s%N) / 1000000 )); }
burn='while :; do :; done'
t=$(ms)
"$bin" run --run-dir "$run" --id busy --stale-after 1s --activity-window 200ms --busy-limit 3s --grace 300ms -- sh -c "$burn"; echo "#exit $?"
echo "#busy_ms=$(( $(ms) - t ))"
t=$(ms)
"$bin" run --run-dir "$run" --id plain --stale-after 1s --no-activity --grace 300ms -- sh -c "$burn"; echo "#exit $?"
echo "#plain_ms=$(( $(ms) - t ))"
echo "#done"
"##;

fn millis_of(notes: &[String], key: &str) -> u64 {
    notes
        .iter()
        .find_map(|n| n.strip_prefix(key))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{key}: {notes:?}"))
}

#[test]
fn a_busy_worker_outlives_its_stale_threshold_until_the_busy_limit() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(BUSY, &run);
    assert_eq!(
        notes.last().map(String::as_str),
        Some("done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        notes.iter().filter(|n| *n == "exit 124").count(),
        2,
        "{notes:?}\n{}",
        out.stderr
    );
    assert!(
        !notes.iter().any(|n| n.starts_with("init got")),
        "{notes:?}"
    );
    // Busy: kept past the 1 s stale threshold, reclaimed only once the 3 s limit passed.
    assert!(millis_of(&notes, "busy_ms=") >= 3_000, "{notes:?}");
    // Without activity: reclaimed at the stale threshold, well before the busy limit.
    assert!(millis_of(&notes, "plain_ms=") < 2_800, "{notes:?}");
    for id in ["busy", "plain"] {
        let doc = doc(&run, id);
        assert_eq!(
            doc["worker_lifecycle"]["reclaim_state"], "reclaimed",
            "{doc}"
        );
        assert_eq!(doc["reclaim"]["termination"], "terminated", "{doc}");
    }
}
