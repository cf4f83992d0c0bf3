//! `flatline run` holds its worker between fork and exec until the worker is recorded
//! running (SPEC §12: "the identity is verified at birth"): the command never runs
//! unrecorded, and a `run` killed in between leaves no worker behind (crash_run.rs kills it
//! at random moments). Signals ignored when `run` started stay ignored for the worker.

use crate::support::*;
use std::process::Command;
use std::time::Duration;

/// The command's first act: keep its delegation as it is when the command starts, and its
/// pid (`sh` keeps the pid `run` recorded: exec does not change it).
const FIRST_LOOK: &str = r##"cp "$FLATLINE_RUN_DIR/delegations/$FLATLINE_DELEGATION_ID.json" "$FLATLINE_RUN_DIR/first-look-$FLATLINE_DELEGATION_ID.json"
echo $$ > "$FLATLINE_RUN_DIR/pid-$FLATLINE_DELEGATION_ID""##;

#[test]
fn the_command_starts_only_once_its_delegation_records_it_running() {
    let run = Run::new();
    for i in 0..5 {
        let id = format!("w{i}");
        let out = flatline([
            "run",
            "--run-dir",
            run.path().to_str().unwrap(),
            "--id",
            &id,
            "--",
            "sh",
            "-c",
            FIRST_LOOK,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let seen = run.read_json(&format!("first-look-{id}.json"));
        let pid: i64 = std::fs::read_to_string(run.path().join(format!("pid-{id}")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(seen["child_agent"]["status"], "running", "{seen:#}");
        let lifecycle = &seen["worker_lifecycle"];
        assert_eq!(lifecycle["process_id"], pid, "{seen:#}");
        assert!(
            lifecycle["process_fingerprint"]["start_ticks"].is_u64(),
            "{seen:#}"
        );
        assert_eq!(
            run.read_json(&format!("delegations/{id}.json"))["child_agent"]["status"],
            "failed",
            "an exit without events is a failure"
        );
    }
}

/// The worker's `SigIgn` mask, as it printed it into its stream.
fn ignored_by_worker(run: &Run, id: &str, ignore_hup: bool) -> u64 {
    let trap = if ignore_hup { "trap '' HUP;" } else { "" };
    let script = format!(
        "{trap} exec \"$0\" run --run-dir \"$1\" --id {id} -- sh -c 'grep SigIgn /proc/self/status'"
    );
    let out = run_command(
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(bin())
            .arg(run.path()),
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 0, "the worker's own status\n{}", out.stderr);
    let stream =
        std::fs::read_to_string(run.path().join(format!("raw-events/{id}.jsonl"))).unwrap();
    let hex = stream
        .trim()
        .strip_prefix("SigIgn:")
        .unwrap_or_else(|| panic!("{stream}"))
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn a_signal_ignored_when_run_started_stays_ignored_for_the_worker() {
    let run = Run::new();
    let hup = 1u64 << (libc::SIGHUP - 1);
    assert_eq!(ignored_by_worker(&run, "plain", false) & hup, 0);
    assert_eq!(ignored_by_worker(&run, "nohup", true) & hup, hup);
}

/// A dry run plans what the real reclaim and sweep do: a worker that a live `flatline run`
/// watches is left to it (`skipped_launcher`), not shown as a target to reclaim.
#[test]
fn a_dry_run_leaves_a_live_runs_worker_to_it_as_the_real_reclaim_does() {
    if !is_root() || !have("unshare") {
        eprintln!("skipped: needs root and unshare");
        return;
    }
    let run = Run::new();
    let script = r##"bin=$1; run=$2
"$bin" run --run-dir "$run" --id live --no-watch --stale-after 1s -- sleep 30 2>/dev/null & r=$!
i=0
until grep -q '"status": "running"' "$run/delegations/live.json" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 400 ] && break; sleep 0.05
done
sleep 1.3
"$bin" reclaim --dry-run --format ndjson "$run"
"$bin" sweep --dry-run --format ndjson "$run"
kill $r; wait $r
"##;
    let mut command = pid_namespace_bash(script);
    command.arg(bin()).arg(run.path());
    let out = run_command(&mut command, Duration::from_secs(60));
    let records: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|record: &serde_json::Value| record["delegation_id"] == "live")
        .collect();
    assert_eq!(records.len(), 2, "{}\n{}", out.stdout, out.stderr);
    for record in &records {
        assert_eq!(record["action"], "skipped", "{record:#}");
        assert_eq!(record["termination"], "skipped_launcher", "{record:#}");
    }
}

/// SPEC §12: "If the worker cannot be recorded, run kills it and exits 125" — held before
/// exec, it never runs at all (debug builds make the running record fail on request).
#[test]
fn a_worker_that_cannot_be_recorded_never_runs() {
    let run = Run::new();
    let out = run_command(
        Command::new(bin())
            .env("FLATLINE_TEST_UNRECORDABLE", "1")
            .args(["run", "--run-dir"])
            .arg(run.path())
            .args(["--id", "never", "--", "sh", "-c"])
            .arg(r#"touch "$FLATLINE_RUN_DIR/ran""#),
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("FLATLINE_TEST_UNRECORDABLE"),
        "{}",
        out.stderr
    );
    assert!(!run.path().join("ran").exists(), "the command ran");
}

/// A run directory whose lock (made by a first `run`, which exits 0) another process holds
/// with flock(1) until `finish`; with its path as an argument. `None` without flock(1).
fn lock_held_by_another() -> Option<(Run, String, crate::lock::Holder)> {
    if !have("flock") {
        return None;
    }
    let run = Run::new();
    let dir = run.path().to_str().unwrap().to_string();
    assert_eq!(
        flatline(["run", "--run-dir", &dir, "--id", "first", "--", "true"]).code,
        0
    );
    let lock = run.path().join(".flatline/lock");
    let holder = crate::lock::Holder::start(Command::new("env"), &lock, "true");
    Some((run, dir, holder))
}

/// A worker whose queued record cannot be placed (here the run lock is held and `--wait 0s`)
/// never runs: `run` says why and exits 125, and leaves no stream behind. (The lock is taken
/// before the worker is forked; a placement that fails under it stops the forked child
/// before exec, as `abort` does for a running record that fails.)
#[test]
fn a_worker_whose_queued_record_cannot_be_placed_never_runs() {
    let Some((run, dir, holder)) = lock_held_by_another() else {
        return;
    };
    let out = run_command(
        Command::new(bin())
            .args([
                "run",
                "--run-dir",
                &dir,
                "--wait",
                "0s",
                "--id",
                "never",
                "--",
                "sh",
                "-c",
            ])
            .arg(r#"touch "$FLATLINE_RUN_DIR/ran""#),
        Duration::from_secs(30),
    );
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(out.stderr.contains("held by pid"), "{}", out.stderr);
    assert!(!run.path().join("delegations/never.json").exists());
    holder.finish();
    assert!(!run.path().join("ran").exists(), "the command ran");
    // The stream it had made is taken back: the same id runs once the lock is free.
    assert!(!run.path().join("raw-events/never.jsonl").exists());
    let again = flatline(["run", "--run-dir", &dir, "--id", "never", "--", "true"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
}

/// The attack on taking the stream back: a writer of `raw-events/` swaps run's new stream
/// for a symlink to another file while run waits for the lock. When run gives up, it removes
/// only the empty file it created, never what has the name now: the symlink and its target
/// stay as they are.
#[test]
fn a_stream_swapped_while_run_waits_is_not_what_run_takes_back() {
    let Some((run, dir, holder)) = lock_held_by_another() else {
        return;
    };
    let victim = run.write("victim", "keep me\n");
    let mut command = Command::new(bin());
    command.args([
        "run",
        "--run-dir",
        &dir,
        "--wait",
        "2s",
        "--id",
        "swap",
        "--",
        "true",
    ]);
    let child = start(&mut command);
    let stream = run.path().join("raw-events/swap.jsonl");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !stream.exists() {
        assert!(
            std::time::Instant::now() < until,
            "run never made its stream"
        );
        std::thread::yield_now();
    }
    std::fs::rename(&stream, run.path().join("raw-events/moved.jsonl")).unwrap();
    std::os::unix::fs::symlink(&victim, &stream).unwrap();
    let out = finish(child, Duration::from_secs(30));
    holder.finish();
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        std::fs::symlink_metadata(&stream)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    assert!(run.path().join("raw-events/moved.jsonl").exists());
}
