//! Crash injection (SPEC §4 "atomic and durable"; issue 8 item 2): `flatline refresh` and
//! `flatline reclaim` are SIGKILLed at seeded random moments (140 + 70 runs) over a
//! 200-delegation run directory. After every kill each delegation parses and is byte-identical to its old
//! version or to a valid new one; flatline's temp files never pile up, and a later run that
//! is not killed removes them all.
//!
//! Nothing here records a live process: refresh works from streams (`--now` makes its new
//! versions byte-exact), reclaim from delegations without a pid (`no_process`) and from pids
//! of exited children whose recorded evidence is an hour old (so whatever process holds such
//! a pid now is `reused`, never signalled).

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CODEX_SUCCESS: &str = include_str!("../fixtures/streams/codex-exec-commands.jsonl");
const CODEX_NO_TERMINAL: &str = include_str!("../fixtures/streams/codex-exec-no-terminal.jsonl");
const CLAUDE_SUCCESS: &str = include_str!("../fixtures/streams/claude-basic.jsonl");
const DELEGATIONS: usize = 200;

/// A pid that belonged to a child of the test that has exited.
fn exited_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Fields the orchestrator owns, kept in every version: unknown keys, order, big numbers.
fn orchestrator_fields(doc: &mut Value, i: usize) {
    doc["worker_request"] =
        json!({"prompt": format!("task {i}"), "n": i, "nested": {"deep": [1, {"x": null}]}});
    doc["zz_tail"] = json!("last");
}

/// Writes the 200 delegations of the refresh run; returns each file's name and bytes.
fn refresh_run() -> (Run, Vec<(String, Vec<u8>)>) {
    let run = Run::new();
    let old_evidence = rfc3339(real_now_ms() - 3_600_000);
    for i in 0..DELEGATIONS {
        let id = format!("d{i:03}");
        let stream = format!("raw-events/{id}.jsonl");
        let mut doc = match i % 5 {
            // No pid, a terminal stream: finalized.
            0 | 1 => {
                let text = if i % 2 == 0 {
                    CLAUDE_SUCCESS
                } else {
                    CODEX_SUCCESS
                };
                set_mtime_ms(&run.write(&stream, text), NOW_MS - 2_000);
                delegation(&id, "running", json!({"last_progress_at": at(-60_000)}))
            }
            // No pid, a stream without a terminal event: progressed.
            2 | 3 => {
                set_mtime_ms(&run.write(&stream, CODEX_NO_TERMINAL), NOW_MS - 5_000);
                delegation(&id, "running", json!({"last_progress_at": at(-60_000)}))
            }
            // An exited worker: finalized from its stream (or as "no stream").
            _ => {
                if i % 10 == 4 {
                    set_mtime_ms(&run.write(&stream, CODEX_SUCCESS), NOW_MS - 20_000);
                }
                delegation(
                    &id,
                    "running",
                    json!({"process_id": exited_pid(), "started_at": old_evidence, "last_progress_at": old_evidence}),
                )
            }
        };
        doc["worker_launch_evidence"] = json!({"raw_events_file": stream});
        orchestrator_fields(&mut doc, i);
        run.delegation(&id, &doc);
    }
    let versions = snapshot(&run);
    (run, versions)
}

/// Writes the 200 delegations of the reclaim run (real clock: stale for ten minutes).
fn reclaim_run() -> (Run, Vec<(String, Vec<u8>)>) {
    let run = Run::new();
    let now = real_now_ms();
    let stale = rfc3339(now - 600_000);
    let old = rfc3339(now - 3_600_000);
    for i in 0..DELEGATIONS {
        let id = format!("r{i:03}");
        let mut doc = if i % 4 == 3 {
            delegation(
                &id,
                "running",
                json!({"process_id": exited_pid(), "started_at": old, "last_progress_at": old}),
            )
        } else {
            delegation(&id, "running", json!({"last_progress_at": stale}))
        };
        orchestrator_fields(&mut doc, i);
        run.delegation(&id, &doc);
    }
    let versions = snapshot(&run);
    (run, versions)
}

fn snapshot(run: &Run) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(run.path().join("delegations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let bytes = run.read(&format!("delegations/{n}"));
            (n, bytes)
        })
        .collect()
}

/// Puts every delegation back to its old bytes (no flatline is running).
fn restore(run: &Run, old: &[(String, Vec<u8>)]) {
    for (name, bytes) in old {
        let path = run.delegation_path(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

fn command(verb: &str, run: &Run) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args([verb, "--format=ndjson"]);
    if verb == "refresh" {
        cmd.args(["--now", NOW]);
    }
    cmd.arg(run.arg());
    cmd
}

/// Runs `verb` to the end (not killed): the new versions, and how long a whole run takes.
fn full_run(verb: &str, run: &Run) -> (Outcome, Duration) {
    let started = Instant::now();
    let out = run_command(&mut command(verb, run), HANG_GUARD);
    let took = started.elapsed();
    assert_no_crash(&out);
    (out, took)
}

/// Starts `verb`, SIGKILLs it after `delay`, and reaps it.
fn killed_run(verb: &str, run: &Run, delay: Duration) {
    let mut child = command(verb, run)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().unwrap();
}

/// How a crashed run may have left one file.
enum Valid<'a> {
    /// Exactly these new bytes (refresh with --now is deterministic).
    Exact(&'a BTreeMap<String, Vec<u8>>),
    /// A document that parses, keeps every field flatline does not own, and carries
    /// flatline's reclaim or finalization record (reclaim stamps the real time).
    Reclaimed,
}

/// Keys flatline writes; everything else must be exactly as it was.
fn without_flatline_fields(mut doc: Value) -> Value {
    let object = doc.as_object_mut().unwrap();
    for key in [
        "updated_at",
        "completed_at",
        "result_summary",
        "latest_failure",
        "worker_result",
        "reclaim",
    ] {
        object.remove(key);
    }
    for holder in ["child_agent", "executor"] {
        if let Some(h) = object.get_mut(holder).and_then(Value::as_object_mut) {
            h.remove("status");
        }
    }
    if let Some(l) = object
        .get_mut("worker_lifecycle")
        .and_then(Value::as_object_mut)
    {
        for key in [
            "state",
            "reclaim_state",
            "process_last_seen_at",
            "returned_at",
            "last_progress_at",
            "summary",
            "stale_at",
            "timed_out_at",
            "process_fingerprint",
        ] {
            l.remove(key);
        }
    }
    doc
}

/// Checks every file; returns how many hold a new version.
#[track_caller]
fn check_files(run: &Run, old: &[(String, Vec<u8>)], valid: &Valid<'_>, when: &str) -> usize {
    let mut new = 0;
    for (name, old_bytes) in old {
        let bytes = run.read(&format!("delegations/{name}"));
        if &bytes == old_bytes {
            continue;
        }
        new += 1;
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{when}: {name} does not parse ({e}): torn write?\n{}",
                String::from_utf8_lossy(&bytes)
            )
        });
        match valid {
            Valid::Exact(versions) => assert_eq!(
                Some(&bytes),
                versions.get(name),
                "{when}: {name} is neither its old nor its new version"
            ),
            Valid::Reclaimed => {
                let before: Value = serde_json::from_slice(old_bytes).unwrap();
                assert_eq!(
                    without_flatline_fields(doc.clone()),
                    without_flatline_fields(before),
                    "{when}: {name} lost a field flatline does not own"
                );
                let lifecycle = &doc["worker_lifecycle"];
                let reclaimed = lifecycle["reclaim_state"] == "reclaimed"
                    && doc["reclaim"]["termination"] == "no_process"
                    && doc["latest_failure"]["reason"] == "timeout";
                let finalized = doc["worker_result"]["status"].is_string()
                    && matches!(lifecycle["state"].as_str(), Some("returned" | "failed"));
                assert!(
                    reclaimed || finalized,
                    "{when}: {name} is not a complete new version: {doc}"
                );
                assert_eq!(doc["child_agent"]["status"], "failed", "{when}: {name}");
            }
        }
    }
    new
}

/// Kills `verb` `runs` times at seeded random moments spread over a whole run's duration.
fn crash_loop(
    verb: &str,
    run: &Run,
    old: &[(String, Vec<u8>)],
    valid: &Valid<'_>,
    runs: usize,
    seed: u64,
) {
    let dir = run.path().join("delegations");
    // How long an uninterrupted run takes, so the kills cover it from start to end; the span
    // then follows the machine's load (a kill after the last write shrinks it, one before the
    // first write grows it).
    let took = (0..2)
        .map(|_| {
            restore(run, old);
            full_run(verb, run).1
        })
        .min()
        .unwrap();
    let mut span = (took.as_micros() as u64 * 11 / 10).max(2_000);
    eprintln!("{verb}: a whole run takes {took:?}; kills within {span} µs at first");
    let mut rng = XorShift::new(seed);
    let (mut none, mut partial, mut all) = (0, 0, 0);
    let mut most_temps = 0;
    let mut temps_before = 0;
    for i in 0..runs {
        restore(run, old);
        let delay = Duration::from_micros(rng.below(span));
        killed_run(verb, run, delay);
        let when = format!("{verb} run {i} killed after {delay:?}");
        let new = check_files(run, old, valid, &when);
        match new {
            0 => {
                none += 1;
                span = span * 21 / 20;
            }
            n if n == old.len() => {
                all += 1;
                span = (span * 19 / 20).max(2_000);
            }
            _ => partial += 1,
        }
        // One writer, one file at a time: a kill leaves at most one more temp file, and the
        // next run that gets past its lock removes the earlier ones.
        let temps = temp_files(&dir);
        assert!(
            temps.len() <= temps_before + 1,
            "{when}: temp files piling up: {temps:?}"
        );
        most_temps = most_temps.max(temps.len());
        temps_before = temps.len();
    }
    eprintln!(
        "{verb}: {runs} kills: {none} before any write, {partial} mid-run, {all} after the last write; at most {most_temps} temp file(s) left"
    );
    assert!(
        partial >= runs / 4,
        "too few kills landed mid-run ({partial} of {runs}): the test did not test anything"
    );
    assert!(most_temps <= 4, "temp files accumulated: {most_temps}");
    // A run that is not killed finishes the job and removes every leftover temp file.
    restore(run, old);
    let (out, _) = full_run(verb, run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        check_files(run, old, valid, "the final run"),
        old.len(),
        "the final run wrote every delegation"
    );
    assert_eq!(
        temp_files(&dir),
        Vec::<String>::new(),
        "leftover temp files"
    );
}

#[test]
fn refresh_killed_at_random_moments_leaves_old_or_new_files() {
    let (run, old) = refresh_run();
    // The new versions: one uninterrupted run over a pristine copy.
    let (out, _) = full_run("refresh", &run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let new: BTreeMap<String, Vec<u8>> = snapshot(&run).into_iter().collect();
    let changed = old.iter().filter(|(n, b)| new.get(n) != Some(b)).count();
    assert_eq!(changed, DELEGATIONS, "every delegation has a new version");
    let records = out.records();
    let count = |action: &str| records.iter().filter(|r| r["action"] == action).count();
    assert_eq!((count("finalized"), count("progressed")), (120, 80));
    // The new versions are what refresh promises, unknown fields kept exactly.
    let d000: Value = serde_json::from_slice(&new["d000.json"]).unwrap();
    assert_eq!(d000["child_agent"]["status"], "completed");
    assert_eq!(d000["zz_tail"], "last");
    assert_eq!(
        d000["worker_request"]["nested"],
        json!({"deep": [1, {"x": null}]})
    );
    let seed = test_seed(0x5eed_0001);
    crash_loop("refresh", &run, &old, &Valid::Exact(&new), 140, seed);
}

#[test]
fn reclaim_killed_at_random_moments_leaves_old_or_new_files() {
    let (run, old) = reclaim_run();
    let (out, _) = full_run("reclaim", &run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = out.records();
    assert_eq!(records.len(), DELEGATIONS);
    for record in &records {
        let termination = record["termination"].as_str().unwrap_or_default();
        assert!(
            matches!(
                termination,
                "no_process" | "already_exited" | "skipped_reused"
            ),
            "{record}"
        );
        assert_eq!(record["outcome"], "written", "{record}");
    }
    let seed = test_seed(0x5eed_0002);
    crash_loop("reclaim", &run, &old, &Valid::Reclaimed, 70, seed);
}

/// The temp file name flatline uses, for the check below.
fn temp_of(dir: &Path, name: &str, pid: u32) -> PathBuf {
    dir.join(format!(".{name}.flatline.{pid}.tmp"))
}

#[test]
fn a_temp_file_left_by_a_killed_run_is_removed_and_never_read() {
    let (run, old) = refresh_run();
    let dir = run.path().join("delegations");
    // What a run killed between creating its temp file and renaming it leaves behind: a
    // partial document under a hidden name.
    let leftover = temp_of(&dir, "d000.json", 4_194_303);
    std::fs::write(&leftover, &old[0].1[..old[0].1.len() / 2]).unwrap();
    let status = status(&run, &[]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(
        status.records().len(),
        DELEGATIONS,
        "the temp file is no delegation"
    );
    assert!(
        leftover.exists(),
        "status writes nothing, so it removes nothing"
    );
    let (out, _) = full_run("refresh", &run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!leftover.exists(), "refresh removed the leftover temp file");
    assert_eq!(temp_files(&dir), Vec::<String>::new());
}
