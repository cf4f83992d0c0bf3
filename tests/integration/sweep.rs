//! `flatline sweep`: everything at once, once; then nothing; each input read once.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

const CODEX_SUCCESS: &str = include_str!("../fixtures/streams/codex-exec-commands.jsonl");

fn set_mtime(path: &Path, ms: i64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    file.set_times(std::fs::FileTimes::new().set_modified(at).set_accessed(at))
        .unwrap();
}

/// Every file beneath `dir` with its bytes (the lock file included).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.insert(entry.path(), std::fs::read(entry.path()).unwrap());
            }
        }
    }
    files
}

/// A run directory that needs everything at once: a finished worker, a stuck worker that
/// ignores SIGTERM, a complete task card, a stalled heartbeat worker.
struct Scene {
    run: Run,
    stuck: Proc,
}

fn scene() -> Scene {
    let run = Run::new();
    let now = real_now_ms();
    // A finished worker: its process has exited; its stream says it completed.
    let mut exited = Command::new("true").spawn().unwrap();
    let exited_pid = exited.id();
    exited.wait().unwrap();
    let mut done = delegation(
        "d-done",
        "running",
        json!({"process_id": exited_pid, "started_at": rfc3339(now - 120_000), "last_progress_at": rfc3339(now - 60_000)}),
    );
    done["task_card_id"] = json!("c1");
    run.delegation("d-done", &done);
    set_mtime(
        &run.write("raw-events/d-done.jsonl", CODEX_SUCCESS),
        now - 30_000,
    );
    // A stuck worker that ignores SIGTERM.
    let mut child = Command::new("sh")
        .args(["-c", "trap '' TERM; echo ready; exec sleep 300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let stuck = Proc { child };
    let mut stuck_doc = delegation(
        "d-stuck",
        "running",
        json!({"process_id": stuck.pid(), "started_at": rfc3339(now - 600_000), "last_progress_at": rfc3339(now - 300_000),
               "process_fingerprint": {"start_ticks": stuck.start_ticks(), "boot_id": boot_id(), "pid_ns": pid_ns()}}),
    );
    stuck_doc["task_card_id"] = json!("c1");
    run.delegation("d-stuck", &stuck_doc);
    // A card that is complete already.
    let mut complete = delegation(
        "d-complete",
        "completed",
        json!({"last_progress_at": rfc3339(now - 1_000)}),
    );
    complete["task_card_id"] = json!("c2");
    complete["worker_result"] = json!({"status": "completed", "thread_id": "t-c2"});
    run.delegation("d-complete", &complete);
    // A stalled heartbeat worker.
    run.write(
        "workers/w1/worker-spec.json",
        json!({"name": "w1", "role": "coder", "heartbeat": "heartbeat.json"}).to_string(),
    );
    run.write(
        "workers/w1/heartbeat.json",
        json!({"status": "alive", "name": "w1", "ts": rfc3339(now - 75_000)}).to_string(),
    );
    Scene { run, stuck }
}

fn sweep(run: &Run, extra: &[&str]) -> Outcome {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("sweep"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--grace=300ms"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.push(run.arg());
    flatline(args)
}

#[test]
fn one_sweep_does_everything_and_a_second_changes_no_byte() {
    let scene = scene();
    let run = &scene.run;
    let out = sweep(run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = out.records();
    let kinds: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let what = r["action"]
                .as_str()
                .or(r["outcome"].as_str())
                .unwrap_or("")
                .to_string();
            let who = r
                .get("delegation_id")
                .or(r.get("task_card_id"))
                .or(r.get("worker_id"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (what, who)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("finalized".to_string(), "d-done".to_string()),
            ("reclaimed".to_string(), "d-stuck".to_string()),
            ("collapsed".to_string(), "c1".to_string()),
            ("collapsed".to_string(), "c2".to_string()),
            ("worker_stalled".to_string(), "w1".to_string()),
        ],
        "{}",
        out.stdout
    );
    assert_fields(
        &records[1],
        json!({"termination": "killed", "outcome": "written"}),
    );
    assert_fields(
        &records[2],
        json!({"ready": true, "completed": 1, "failed": 1, "thread_ids": ["5e1f0a7c-0001-4c3b-9a10-codexexec001"]}),
    );
    let done = run.read_json("delegations/d-done.json");
    assert_eq!(done["child_agent"]["status"], "completed");
    assert!(
        done["fan_in_collapsed_at"].is_string(),
        "stamped in the same write"
    );
    let stuck = run.read_json("delegations/d-stuck.json");
    assert_eq!(stuck["worker_lifecycle"]["reclaim_state"], "reclaimed");
    assert!(stuck["fan_in_collapsed_at"].is_string());
    assert!(
        !std::path::Path::new(&format!("/proc/{}/cmdline", scene.stuck.pid())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", scene.stuck.pid()))
                .unwrap()
                .contains(") Z")
    );
    let events: Vec<Value> = std::fs::read_to_string(run.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "worker_stalled");

    let before = snapshot(run.path());
    let again = sweep(run, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    for record in again.records() {
        assert_eq!(
            record["kind"], "fan_in",
            "only the collapsed cards are reported: {record}"
        );
        assert_eq!(record["outcome"], "already_collapsed");
    }
    assert_eq!(
        snapshot(run.path()),
        before,
        "a sweep with nothing to do changes no byte"
    );
}

#[test]
fn dry_run_signals_and_writes_nothing() {
    let scene = scene();
    let run = &scene.run;
    let before = snapshot(run.path());
    let out = sweep(run, &["--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let actions: Vec<String> = out
        .records()
        .iter()
        .filter_map(|r| r["outcome"].as_str().map(str::to_string))
        .collect();
    assert!(actions.iter().all(|a| a == "dry_run"), "{}", out.stdout);
    assert_fields(
        &out.by_action("d-stuck"),
        json!({"action": "reclaimed", "outcome": "dry_run", "would_signal": [scene.stuck.pid()]}),
    );
    assert_eq!(snapshot(run.path()), before);
    assert!(
        std::fs::read_to_string(format!("/proc/{}/stat", scene.stuck.pid()))
            .unwrap()
            .contains(") S")
    );
}

#[test]
fn now_is_refused_without_dry_run_and_task_cards_not_ready_are_not_an_error() {
    let run = Run::new();
    let out = sweep(&run, &["--now", NOW]);
    assert_eq!(out.code, 2);
    let mut busy = delegation(
        "a",
        "running",
        json!({"last_progress_at": rfc3339(real_now_ms())}),
    );
    busy["task_card_id"] = json!("c1");
    run.delegation("a", &busy);
    let out = sweep(&run, &["--task-card", "c1"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    // A card simply not ready yet is printed only with --all (SPEC §7).
    let out = sweep(&run, &["--task-card", "c1", "--all"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.records()[0],
        json!({"kind": "fan_in", "ready": false, "active": 1}),
    );
}

#[test]
fn every_input_is_opened_for_reading_once() {
    if !have("strace") {
        return;
    }
    let scene = scene();
    let run = &scene.run;
    // Enough finished delegations (no card, nothing to do) that the listing is read ahead by
    // the second thread: that one reads each of them once too.
    let fillers: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
    for id in &fillers {
        let mut doc = delegation(id, "completed", json!({}));
        doc.as_object_mut().unwrap().remove("task_card_id");
        run.delegation(id, &doc);
    }
    let trace = run
        .path()
        .join("..")
        .join(format!("trace-{}", std::process::id()));
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-e", "trace=openat,openat2,open", "-o"])
        .arg(&trace)
        .arg(bin())
        .args(["sweep", "--format=ndjson", "--grace=300ms"])
        .arg(run.arg());
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    let opens = |name: &str| {
        text.lines()
            .filter(|line| line.contains(&format!("\"{name}\"")) && !line.contains("O_CREAT"))
            .count()
    };
    // Not written: read once. Written: read once, then the store's checks before the rename.
    assert_eq!(
        opens("d-complete.json"),
        2,
        "d-complete.json is stamped: one read, one comparison before the rename\n{text}"
    );
    assert_eq!(
        opens("raw-events/d-done.jsonl"),
        2,
        "the stream is stat'ed for the view (SPEC §2), then resolved once more and read \
         through its descriptor\n{text}"
    );
    assert_eq!(opens("workers/w1/heartbeat.json"), 1, "{text}");
    assert_eq!(opens("worker-spec.json"), 1, "{text}");
    for id in &fillers {
        assert_eq!(opens(&format!("{id}.json")), 1, "{id}.json\n{text}");
    }
    assert_eq!(
        opens("d-done.json"),
        2,
        "d-done.json: one read, one comparison before the rename\n{text}"
    );
    // A worker about to be signalled is read once more just before the signal (SPEC §3.3:
    // progress since the plan drops it).
    assert_eq!(
        opens("d-stuck.json"),
        3,
        "d-stuck.json: one read, one last look before the signal, one comparison before the \
         rename\n{text}"
    );
    // The second, idle sweep reads each delegation exactly once.
    let trace2 = run
        .path()
        .join("..")
        .join(format!("trace2-{}", std::process::id()));
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-e", "trace=openat,openat2,open", "-o"])
        .arg(&trace2)
        .arg(bin())
        .args(["sweep", "--format=ndjson"])
        .arg(run.arg());
    assert_eq!(run_command(&mut command, HANG_GUARD).code, 0);
    let text = std::fs::read_to_string(&trace2).unwrap();
    let _ = std::fs::remove_file(&trace2);
    let names = [
        "d-done.json",
        "d-stuck.json",
        "d-complete.json",
        "worker-spec.json",
        "heartbeat.json",
    ]
    .map(String::from)
    .into_iter()
    .chain(fillers.iter().map(|id| format!("{id}.json")));
    for name in names {
        let count = text
            .lines()
            .filter(|line| line.contains(&format!("{name}\"")))
            .count();
        assert_eq!(count, 1, "{name} opened {count} times\n{text}");
    }
}

/// A delegation of `card` that completed, with its thread id.
fn finished_member(id: &str, card: &str, thread: &str, now: i64) -> Value {
    let mut doc = delegation(
        id,
        "completed",
        json!({"last_progress_at": rfc3339(now - 1_000)}),
    );
    doc["task_card_id"] = json!(card);
    doc["worker_result"] = json!({"status": "completed", "thread_id": thread});
    doc
}

/// A running delegation of `card` without a pid whose last progress is an hour old: stale,
/// to be marked reclaimed without a process.
fn stale_member(id: &str, card: &str, now: i64) -> Value {
    let mut doc = delegation(
        id,
        "running",
        json!({"started_at": rfc3339(now - 7_200_000), "last_progress_at": rfc3339(now - 3_600_000)}),
    );
    doc["task_card_id"] = json!(card);
    doc
}

/// A stale worker that never recorded a pid is marked reclaimed (`no_process`), which makes
/// it a failed member: its card collapses in the same sweep, not the next one.
#[test]
fn a_card_whose_last_member_is_reclaimed_without_a_process_collapses_in_the_same_sweep() {
    let run = Run::new();
    let now = real_now_ms();
    run.delegation("m-done", &finished_member("m-done", "c3", "t-done", now));
    run.delegation("m-stale", &stale_member("m-stale", "c3", now));
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = out.records();
    assert_eq!(records.len(), 2, "{}", out.stdout);
    assert_fields(
        &records[0],
        json!({"kind": "action", "action": "reclaimed", "delegation_id": "m-stale",
               "termination": "no_process", "outcome": "written"}),
    );
    assert_fields(
        &records[1],
        json!({"kind": "fan_in", "task_card_id": "c3", "outcome": "collapsed",
               "completed": 1, "failed": 1, "thread_ids": ["t-done"]}),
    );
    for id in ["m-done", "m-stale"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc["fan_in_collapsed_at"].is_string(), "{id}: {doc}");
    }
    let again = sweep(&run, &[]);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "{}",
        again.stderr
    );
    let again = sweep(&run, &["--all"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_fields(
        &again.records()[0],
        json!({"kind": "fan_in", "outcome": "already_collapsed"}),
    );
}

/// A card with a member still at work is not ready, wherever that member falls in name
/// order (the bytes kept for stamping its finished members are let go once it is seen);
/// once the member finishes, one sweep stamps every member.
#[test]
fn a_card_with_a_member_at_work_is_left_alone_until_it_finishes() {
    let run = Run::new();
    let now = real_now_ms();
    let finished = |id: &str, card: &str| finished_member(id, card, &format!("t-{id}"), now);
    let working = |id: &str, card: &str| {
        let mut doc = delegation(
            id,
            "running",
            json!({"started_at": rfc3339(now - 10_000), "last_progress_at": rfc3339(now - 1_000)}),
        );
        doc["task_card_id"] = json!(card);
        doc
    };
    // c4: two finished members, then the one at work; c5: the one at work first.
    run.delegation("a1", &finished("a1", "c4"));
    run.delegation("a2", &finished("a2", "c4"));
    run.delegation("a3", &working("a3", "c4"));
    run.delegation("b1", &working("b1", "c5"));
    run.delegation("b2", &finished("b2", "c5"));
    let before = snapshot(run.path());
    let out = sweep(&run, &["--all"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let fan: Vec<(Value, Value, Value)> = out
        .records()
        .into_iter()
        .map(|r| {
            (
                r["kind"].clone(),
                r["task_card_id"].clone(),
                r["ready"].clone(),
            )
        })
        .collect();
    assert_eq!(
        fan,
        [
            (json!("fan_in"), json!("c4"), json!(false)),
            (json!("fan_in"), json!("c5"), json!(false)),
        ],
        "{}",
        out.stdout
    );
    let after: BTreeMap<PathBuf, Vec<u8>> = snapshot(run.path())
        .into_iter()
        .filter(|(path, _)| !path.starts_with(run.path().join(".flatline")))
        .collect();
    let before: BTreeMap<PathBuf, Vec<u8>> = before
        .into_iter()
        .filter(|(path, _)| !path.starts_with(run.path().join(".flatline")))
        .collect();
    assert_eq!(
        after, before,
        "nothing written for cards that are not ready"
    );

    run.delegation("a3", &finished("a3", "c4"));
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.records()[0],
        json!({"kind": "fan_in", "task_card_id": "c4", "outcome": "collapsed", "completed": 3,
               "thread_ids": ["t-a1", "t-a2", "t-a3"]}),
    );
    for id in ["a1", "a2", "a3"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc["fan_in_collapsed_at"].is_string(), "{id}: {doc}");
    }
    for id in ["b1", "b2"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc.get("fan_in_collapsed_at").is_none(), "{id}: {doc}");
    }
}

/// A card judged ready because a member is marked reclaimed without a process: when that
/// mark cannot be written (here the file has write access for others, which flatline never
/// replaces), the card's other members are not stamped and the card is reported failed;
/// once the mark can be written, one sweep collapses it. The metrics of a sweep that wrote
/// the mark no longer count that worker as needing a reclaim.
#[test]
fn a_card_is_stamped_only_when_the_write_that_ends_its_member_lands() {
    let run = Run::new();
    let now = real_now_ms();
    run.delegation("m-done", &finished_member("m-done", "c6", "t-done", now));
    let stale_path = run.delegation("m-stale", &stale_member("m-stale", "c6", now));
    // Writable by others: not its owner's word, never replaced (SPEC §1.3). (A second hard
    // link no longer serves: such a document is not even read.)
    let set_mode = |mode| {
        std::fs::set_permissions(&stale_path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(0o666);
    let done_before = String::from_utf8(run.read("delegations/m-done.json")).unwrap();

    let out = sweep(&run, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let fan = out
        .records()
        .into_iter()
        .find(|r| r["kind"] == "fan_in")
        .unwrap();
    assert_fields(&fan, json!({"task_card_id": "c6", "outcome": "failed"}));
    assert_eq!(
        String::from_utf8(run.read("delegations/m-done.json")).unwrap(),
        done_before,
        "a member of a card whose last member is still running on disk was stamped"
    );
    assert_eq!(
        run.read_json("delegations/m-stale.json")["child_agent"]["status"],
        "running"
    );

    set_mode(0o644);
    let metrics = sweep(&run, &["--format=prometheus"]);
    assert_eq!(metrics.code, 0, "{}", metrics.stderr);
    let gauge = |name: &str| {
        metrics
            .stdout
            .lines()
            .find(|line| line.starts_with(&format!("{name}{{")))
            .unwrap_or_else(|| panic!("no {name} in {}", metrics.stdout))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(gauge("flatline_delegations_reclaim_needed"), "0");
    assert_eq!(gauge("flatline_delegations_needing_attention"), "0");
    for id in ["m-done", "m-stale"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc["fan_in_collapsed_at"].is_string(), "{id}: {doc}");
    }
    assert_eq!(
        run.read_json("delegations/m-stale.json")["reclaim"]["termination"],
        "no_process"
    );
}

/// Two members of one card marked reclaimed without a process in the same sweep: the card
/// waits for the next sweep, so neither member can carry a stamp while the other's mark
/// failed (here one of them is writable by others and cannot be replaced).
#[test]
fn two_members_marked_in_one_sweep_are_stamped_only_in_the_next() {
    let run = Run::new();
    let now = real_now_ms();
    for id in ["m-a", "m-b"] {
        run.delegation(id, &stale_member(id, "c7", now));
    }
    // Writable by others: not its owner's word, never replaced (SPEC §1.3).
    let set_mode = |mode| {
        std::fs::set_permissions(
            run.delegation_path("m-b.json"),
            std::fs::Permissions::from_mode(mode),
        )
        .unwrap()
    };
    set_mode(0o666);
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let a = run.read_json("delegations/m-a.json");
    assert_eq!(a["reclaim"]["termination"], "no_process", "{a}");
    assert!(a.get("fan_in_collapsed_at").is_none(), "stamped early: {a}");
    assert_eq!(
        run.read_json("delegations/m-b.json")["child_agent"]["status"],
        "running"
    );
    set_mode(0o644);
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for id in ["m-a", "m-b"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc["fan_in_collapsed_at"].is_string(), "{id}: {doc}");
    }
}

/// stdout failing (a full disk) stops the printing, never the work: every change is
/// written, one stderr line says what happened, exit 3.
#[test]
fn a_failing_stdout_does_not_stop_the_writes() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("SKIPPED: no /dev/full");
        return;
    }
    let run = Run::new();
    let now = real_now_ms();
    for i in 0..300 {
        let id = format!("s{i:03}");
        run.delegation(&id, &stale_member(&id, "card-1", now));
    }
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            "exec \"$0\" sweep --format=ndjson \"$1\" > /dev/full",
            bin(),
        ])
        .arg(run.arg());
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        out.stderr, "flatline: stdout: no space left on device\n",
        "one line"
    );
    for i in 0..300 {
        let doc = run.read_json(&format!("delegations/s{i:03}.json"));
        assert_eq!(doc["reclaim"]["termination"], "no_process", "s{i:03}");
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z' && state != 'X'
        }
        Err(_) => false,
    }
}

/// A stale running delegation (no task card) for `proc`, identified by its fingerprint.
fn stuck_delegation(id: &str, proc: &Proc) -> Value {
    let now = real_now_ms();
    let mut doc = delegation(
        id,
        "running",
        json!({
            "process_id": proc.pid(),
            "started_at": rfc3339(now - 600_000),
            "last_progress_at": rfc3339(now - 300_000),
            "process_fingerprint": {"start_ticks": proc.start_ticks(), "boot_id": boot_id(), "pid_ns": pid_ns()},
        }),
    );
    doc.as_object_mut().unwrap().remove("task_card_id");
    doc
}

/// `count` finished delegations (no task card, nothing to change) between the stuck ones.
fn fillers(run: &Run, count: usize) {
    for i in 0..count {
        let id = format!("m-{i:02}");
        let mut doc = delegation(&id, "completed", json!({}));
        doc.as_object_mut().unwrap().remove("task_card_id");
        run.delegation(&id, &doc);
    }
}

/// A worker of the test that ignores SIGTERM (only SIGKILL ends it), once its trap is set.
fn term_ignoring_worker() -> Proc {
    let proc = Proc::spawn("sh", &["-c", "trap '' TERM; exec sleep 300"]);
    let began = std::time::Instant::now();
    while std::fs::read_to_string(format!("/proc/{}/comm", proc.pid()))
        .map(|comm| comm.trim() != "sleep")
        .unwrap_or(true)
    {
        assert!(began.elapsed() < HANG_GUARD, "the worker never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    proc
}

#[test]
fn a_stuck_worker_found_before_a_slow_scan_is_signalled_before_the_deadline() {
    let run = Run::new();
    let worker = Proc::sleep();
    run.delegation("a-stuck", &stuck_delegation("a-stuck", &worker));
    fillers(&run, 12);
    // Each delegation after the first takes 300 ms: the scan needs 3.3 s, the deadline
    // passes after 2 s, long after the stuck worker was found.
    let mut command = Command::new(bin());
    command
        .args(["sweep", "--format=ndjson", "--grace=1s", "--deadline=2s"])
        .arg(run.arg())
        .env("FLATLINE_TEST_SLOW_SCAN_MS", "300");
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert!(
        !running(worker.pid()),
        "the stuck worker was not signalled before the deadline: {}",
        out.stderr
    );
    // It died of its SIGTERM: recorded by this run, its note done.
    let written = run.read_json("delegations/a-stuck.json");
    assert_eq!(
        written["worker_lifecycle"]["reclaim_state"], "reclaimed",
        "{written}\n{}",
        out.stderr
    );
    assert_eq!(written["reclaim"]["termination"], "terminated");
    assert_fields(
        &out.by_action("a-stuck"),
        json!({"action": "reclaimed", "outcome": "written", "termination": "terminated"}),
    );
    assert!(
        run.read_json(".flatline/state.json")
            .get("signalled")
            .is_none(),
        "the note is done"
    );
}

#[test]
fn stuck_workers_far_apart_in_a_slow_scan_cost_one_grace_not_two() {
    let run = Run::new();
    let first = term_ignoring_worker();
    let last = term_ignoring_worker();
    run.delegation("a-first", &stuck_delegation("a-first", &first));
    fillers(&run, 14);
    run.delegation("z-last", &stuck_delegation("z-last", &last));
    // The scan takes 15 x 300 ms = 4.5 s; the grace is 3 s.
    let mut command = Command::new(bin());
    command
        .args(["sweep", "--format=ndjson", "--grace=3s"])
        .arg(run.arg())
        .env("FLATLINE_TEST_SLOW_SCAN_MS", "300");
    let began = std::time::Instant::now();
    let child = start(&mut command);
    let (mut first_died, mut last_died) = (None, None);
    while first_died.is_none() || last_died.is_none() {
        assert!(
            began.elapsed() < HANG_GUARD,
            "the workers were never killed"
        );
        if first_died.is_none() && !running(first.pid()) {
            first_died = Some(began.elapsed());
        }
        if last_died.is_none() && !running(last.pid()) {
            last_died = Some(began.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = finish(child, HANG_GUARD);
    let elapsed = began.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    for id in ["a-first", "z-last"] {
        assert_fields(
            &out.by_action(id),
            json!({"action": "reclaimed", "outcome": "written", "termination": "killed"}),
        );
        let written = run.read_json(&format!("delegations/{id}.json"));
        assert_eq!(written["worker_lifecycle"]["reclaim_state"], "reclaimed");
    }
    let (first_died, last_died) = (first_died.unwrap(), last_died.unwrap());
    // The first got SIGKILL once its grace had passed, while the scan went on; the last,
    // found at the end of the scan, one grace later.
    assert!(
        last_died > first_died + Duration::from_secs(1),
        "first killed at {first_died:?}, last at {last_died:?}"
    );
    // One grace after a 4.5 s scan, not two (generous bound: 4.5 + 2 x 3 = 10.5 s).
    assert!(
        elapsed < Duration::from_millis(10_500),
        "took {elapsed:?} (first killed at {first_died:?}, last at {last_died:?})"
    );
    assert!(
        run.read_json(".flatline/state.json")
            .get("signalled")
            .is_none(),
        "the notes are done"
    );
}

#[test]
fn a_worker_that_outlives_its_term_when_the_deadline_passes_is_left_noted_for_the_next_sweep() {
    let run = Run::new();
    let worker = term_ignoring_worker();
    run.delegation("a-stuck", &stuck_delegation("a-stuck", &worker));
    fillers(&run, 12);
    let mut command = Command::new(bin());
    command
        .args(["sweep", "--format=ndjson", "--grace=30s", "--deadline=2s"])
        .arg(run.arg())
        .env("FLATLINE_TEST_SLOW_SCAN_MS", "300");
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert!(running(worker.pid()), "SIGKILL only after the grace");
    assert_fields(
        &out.by_action("a-stuck"),
        json!({"action": "skipped", "termination": "interrupted"}),
    );
    let doc = run.read_json("delegations/a-stuck.json");
    assert_eq!(doc["child_agent"]["status"], "running", "{doc}");
    let state = run.read_json(".flatline/state.json");
    let notes = state["signalled"].as_array().expect("its note is kept");
    assert_eq!(notes.len(), 1, "{state}");
    assert_eq!(notes[0]["delegation"], "a-stuck.json");
    // The next sweep completes it.
    let next = flatline([
        OsStr::new("sweep"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--grace=1s"),
        run.arg(),
    ]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert!(!running(worker.pid()));
    assert_fields(
        &next.by_action("a-stuck"),
        json!({"action": "reclaimed", "outcome": "written", "termination": "killed"}),
    );
    assert_eq!(
        run.read_json("delegations/a-stuck.json")["worker_lifecycle"]["reclaim_state"],
        "reclaimed"
    );
    assert!(
        run.read_json(".flatline/state.json")
            .get("signalled")
            .is_none(),
        "the note is done"
    );
}
