//! Seeded random input (issue 8 item 5): 10,000 mutations of valid delegations — byte flips,
//! truncations, splices, type swaps of the fields flatline reads, random timestamps and
//! thresholds, and random process ids that include every forbidden value — plus mutated event
//! streams, batched 100 documents to a run directory, through `status`, `refresh --dry-run`
//! and `reclaim --dry-run`. Never a panic, never a hang, always parseable output with one
//! stderr line per problem, and no plan ever holds a forbidden pid: 0, 1, negative, past
//! pid_max, flatline's own or one of its ancestors'. A live child of the test with its exact
//! fingerprint is among the inputs, so plans with pids in them do occur and are checked.
//! Then 4,000 mutated heartbeats, worker specs and inboxes through `status` and
//! `health-events`: the same invariants, and the state file and event log always whole.
//!
//! No new dependency: `XorShift` (support.rs) drives it; `FLATLINE_TEST_SEED` replays a run.

use crate::adversarial::{INTEGER_FIELDS, OBJECT_FIELDS, STRING_FIELDS};
use crate::support::*;
use serde_json::{Value, json};
use std::process::Command;

const RUNS: usize = 100;
const PER_RUN: usize = 100;

const STREAMS: [&str; 6] = [
    include_str!("../fixtures/streams/codex-exec-commands.jsonl"),
    include_str!("../fixtures/streams/codex-exec-no-terminal.jsonl"),
    include_str!("../fixtures/streams/claude-basic.jsonl"),
    include_str!("../fixtures/streams/gemini-deltas.jsonl"),
    include_str!("../fixtures/streams/codex-rollout-turn-aborted.jsonl"),
    include_str!("../fixtures/streams/plain-text-transport-failure.log"),
];

/// What the inputs are made of.
struct Pools {
    pids: Vec<Value>,
    live_pid: u32,
    live_fingerprint: Value,
    pid_max: i64,
}

fn pools(live: &Proc) -> Pools {
    let pid_max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut exited = Command::new("true").spawn().unwrap();
    let exited_pid = exited.id();
    exited.wait().unwrap();
    let ancestors = ancestors_of_test();
    let mut pids = vec![
        json!(0),
        json!(1),
        json!(-1),
        json!(2),
        json!(3),
        json!(pid_max),
        json!(pid_max + 1),
        json!(4_294_967_295u64),
        json!(4_294_967_296u64),
        json!(4_294_967_297u64),
        json!(-4_294_967_295i64),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(i32::MIN),
        json!(live.pid()),
        json!(live.pid()),
        json!(exited_pid),
        json!(12.0),
        json!("42"),
    ];
    pids.extend(ancestors.iter().map(|&p| json!(p)));
    Pools {
        pids,
        live_pid: live.pid(),
        live_fingerprint: json!({"start_ticks": live.start_ticks(), "boot_id": boot_id(), "pid_ns": pid_ns()}),
        pid_max,
    }
}

/// A random instant: mostly around NOW, sometimes far away, in the future, or not a time.
fn timestamp(rng: &mut XorShift) -> Value {
    match rng.below(20) {
        0 => json!("not a time"),
        1 => json!("9999-12-31T23:59:59Z"),
        2 => json!("0000-01-01T00:00:00+00:01"),
        3 => json!("2026-11-22T07:59:60Z"),
        4 => json!(at(rng.below(86_400_000) as i64)),
        5 => json!(rfc3339(real_now_ms() - rng.below(3_600_000) as i64)),
        _ => json!(at(-(rng.below(3_600_000) as i64))),
    }
}

fn threshold(rng: &mut XorShift) -> Value {
    match rng.below(8) {
        0 => json!(0),
        1 => json!(-5),
        2 => json!(u64::MAX),
        3 => json!(1),
        _ => json!(rng.below(120_000) + 1),
    }
}

/// A random JSON value of any type.
fn any_value(rng: &mut XorShift) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() as i64),
        3 => json!(rng.below(1000) as f64 / 7.0),
        4 => json!("x".repeat(rng.below(40) as usize)),
        5 => json!([1, "two", null]),
        6 => json!({"status": "running", "process_id": 1}),
        7 => json!("running"),
        _ => json!(-1),
    }
}

/// A valid delegation with random contents.
fn base_doc(rng: &mut XorShift, id: &str, pools: &Pools) -> Value {
    let status = *rng.pick(&[
        "running",
        "running",
        "running",
        "running",
        "queued",
        "completed",
        "failed",
        "cancelled",
        "paused",
    ]);
    let mut lifecycle = serde_json::Map::new();
    for field in [
        "queued_at",
        "launch_requested_at",
        "started_at",
        "process_started_at",
        "last_progress_at",
        "process_last_seen_at",
        "stale_at",
        "timed_out_at",
    ] {
        if rng.chance(45) {
            lifecycle.insert(field.into(), timestamp(rng));
        }
    }
    if rng.chance(75) {
        lifecycle.insert("process_id".into(), rng.pick(&pools.pids).clone());
        if rng.chance(20) {
            lifecycle.insert("process_id".into(), json!(rng.below(pools.pid_max as u64)));
        }
    }
    if rng.chance(25) {
        let fingerprint = if rng.chance(60) {
            pools.live_fingerprint.clone()
        } else {
            json!({"start_ticks": rng.next() % 100_000, "boot_id": boot_id(), "pid_ns": pid_ns()})
        };
        lifecycle.insert("process_fingerprint".into(), fingerprint);
    }
    for field in ["quiet_after_ms", "stale_after_ms", "timeout_after_ms"] {
        if rng.chance(20) {
            lifecycle.insert(field.into(), threshold(rng));
        }
    }
    if rng.chance(10) {
        lifecycle.insert("reclaim_state".into(), json!("reclaimed"));
    }
    if rng.chance(10) {
        lifecycle.insert("exit_code".into(), json!(rng.below(3) as i64 - 1));
    }
    let mut doc = json!({
        "delegation_id": id,
        "task_card_id": format!("card-{}", rng.below(3)),
        "child_agent": {"status": status},
        "executor": {"status": status},
        "worker_request": {"prompt": "do the thing", "work_kind": "worker"},
        "worker_lifecycle": Value::Object(lifecycle),
    });
    if rng.chance(40) {
        let path = *rng.pick(&[
            "raw-events/{id}.jsonl",
            "/dev/zero",
            "../outside.jsonl",
            "",
            "raw-events",
            "/proc/self/mem",
            "raw-events/{id}.jsonl",
        ]);
        doc["worker_launch_evidence"] = json!({"raw_events_file": path.replace("{id}", id)});
    }
    doc
}

/// The positive control: the live child, exactly fingerprinted, stale: planned for a signal.
fn live_doc(id: &str, pools: &Pools) -> Value {
    json!({
        "delegation_id": id,
        "child_agent": {"status": "running"},
        "worker_lifecycle": {"process_id": pools.live_pid, "last_progress_at": at(-600_000),
                             "process_fingerprint": pools.live_fingerprint},
    })
}

/// Replaces the value at a dotted path with a value of a random type.
fn swap_type(rng: &mut XorShift, doc: &mut Value) {
    let all: Vec<&str> = STRING_FIELDS
        .iter()
        .chain(INTEGER_FIELDS)
        .chain(OBJECT_FIELDS)
        .copied()
        .collect();
    let path = *rng.pick(&all);
    let mut current = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if !current.is_object() {
            return;
        }
        current = current
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert_with(|| json!({}));
    }
    if let Some(object) = current.as_object_mut() {
        object.insert(parts[parts.len() - 1].to_string(), any_value(rng));
    }
}

/// Byte-level damage.
fn mangle(rng: &mut XorShift, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    match rng.below(6) {
        0 => {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
        1 => {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.next() as u8;
        }
        2 => {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes.truncate(at);
        }
        3 => {
            let at = rng.below(bytes.len() as u64) as usize;
            let junk: &[&[u8]] = &[
                b"\0",
                b"\xff\xfe",
                b"\xef\xbb\xbf",
                b"{",
                b"]",
                b"\"",
                b"\\u",
                b"\n",
            ];
            bytes.splice(at..at, rng.pick(junk).iter().copied());
        }
        4 => {
            let from = rng.below(bytes.len() as u64) as usize;
            let to = (from + rng.below(64) as usize).min(bytes.len());
            bytes.drain(from..to);
        }
        _ => {
            let from = rng.below(bytes.len() as u64) as usize;
            let to = (from + rng.below(64) as usize).min(bytes.len());
            let copy = bytes[from..to].to_vec();
            let at = rng.below(bytes.len() as u64) as usize;
            bytes.splice(at..at, copy);
        }
    }
}

/// One mutated document: value-level changes, then sometimes byte-level damage.
fn mutated(rng: &mut XorShift, id: &str, pools: &Pools) -> Vec<u8> {
    let mut doc = base_doc(rng, id, pools);
    for _ in 0..rng.below(3) {
        swap_type(rng, &mut doc);
    }
    if rng.chance(30)
        && let Some(lifecycle) = doc["worker_lifecycle"].as_object_mut()
    {
        lifecycle.insert("process_id".into(), rng.pick(&pools.pids).clone());
    }
    let mut bytes = if rng.chance(50) {
        serde_json::to_vec_pretty(&doc).unwrap()
    } else {
        serde_json::to_vec(&doc).unwrap()
    };
    if rng.chance(35) {
        for _ in 0..=rng.below(3) {
            mangle(rng, &mut bytes);
        }
    }
    bytes
}

/// Runs one command to the end; returns what it printed and its pid.
fn run_flatline(args: &[&str], run: &Run) -> (Outcome, u32) {
    let mut cmd = Command::new(bin());
    cmd.args(args).arg(run.arg());
    let child = start(&mut cmd);
    let pid = child.id();
    (finish(child, HANG_GUARD), pid)
}

/// Output invariants of every command.
#[track_caller]
fn check_output(what: &str, out: &Outcome) -> Vec<Value> {
    assert_no_crash(out);
    assert!(
        [0, 1, 3].contains(&out.code),
        "{what}: exit {}: {}",
        out.code,
        out.stderr
    );
    for line in out.stderr_lines() {
        assert!(
            line.starts_with("flatline: "),
            "{what}: stray stderr {line:?}"
        );
    }
    out.stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{what}: bad ndjson {line:?}: {e}"))
        })
        .collect()
}

#[test]
fn ten_thousand_mutated_delegations_never_crash_hang_or_plan_a_forbidden_signal() {
    let live = Proc::sleep();
    let pools = pools(&live);
    let ancestors = ancestors_of_test();
    let seed = test_seed(0x00f1_a711_0e5e_ed01);
    let mut rng = XorShift::new(seed);
    let forbidden = |pid: i64, flatline_pid: u32| -> bool {
        pid <= 1
            || pid > pools.pid_max
            || pid == i64::from(flatline_pid)
            || ancestors.contains(&pid)
    };
    let (mut planned_signals, mut control_planned, mut records_seen, mut errors_seen) =
        (0, 0, 0, 0);
    for run_index in 0..RUNS {
        let run = write_mutated_run(&mut rng, &pools);
        let what = |command: &str| format!("run {run_index} (seed {seed}), {command}");

        let (status, _) = run_flatline(&["status", "--format=ndjson", "--now", NOW], &run);
        let records = check_output(&what("status"), &status);
        records_seen += records.len();
        errors_seen += status.stderr_lines().len();
        for record in &records {
            // A process is only looked at through a valid pid.
            if !record["process_identity"].is_null() {
                let pid = record["process_id"].as_i64().unwrap_or(-1);
                assert!(
                    pid >= 2 && pid <= pools.pid_max && !ancestors.contains(&pid),
                    "{}: a forbidden pid was looked at: {record}",
                    what("status")
                );
            }
        }

        let (refresh, _) = run_flatline(
            &["refresh", "--dry-run", "--format=ndjson", "--now", NOW],
            &run,
        );
        check_output(&what("refresh --dry-run"), &refresh);

        let (reclaim, flatline_pid) = run_flatline(
            &["reclaim", "--dry-run", "--format=ndjson", "--now", NOW],
            &run,
        );
        for record in check_output(&what("reclaim --dry-run"), &reclaim) {
            if let Some(pids) = record.get("would_signal") {
                for pid in pids.as_array().unwrap() {
                    let pid = pid.as_i64().unwrap_or(-1);
                    assert!(
                        !forbidden(pid, flatline_pid),
                        "{}: forbidden pid {pid} in a plan: {record}",
                        what("reclaim --dry-run")
                    );
                    planned_signals += 1;
                    if pid == i64::from(pools.live_pid) {
                        control_planned += 1;
                    }
                }
            }
            if record["action"] == "reclaimed" && !record["process_id"].is_null() {
                let pid = record["process_id"].as_i64().unwrap_or(-1);
                assert!(
                    !forbidden(pid, flatline_pid),
                    "{}: a plan for forbidden pid {pid}: {record}",
                    what("reclaim --dry-run")
                );
            }
        }
        // Dry runs write nothing and create no state directory.
        assert!(
            !run.path().join(".flatline").exists(),
            "{}",
            what("dry runs")
        );
    }
    eprintln!(
        "{} documents: {records_seen} status records, {errors_seen} error lines, {planned_signals} planned signals ({control_planned} at the live control)",
        RUNS * PER_RUN
    );
    assert!(
        control_planned >= RUNS,
        "the live control must be planned in every run"
    );
    assert!(
        errors_seen > RUNS * 5,
        "the mutations must produce broken files"
    );
    assert!(
        records_seen > RUNS * PER_RUN / 2,
        "most documents still give records"
    );
    assert!(live.child.id() > 0);
}

/// A run of PER_RUN documents: the live control first, then mutated ones, about a third with
/// a mangled stream.
fn write_mutated_run(rng: &mut XorShift, pools: &Pools) -> Run {
    let run = Run::new();
    for i in 0..PER_RUN {
        let id = format!("m{i:03}");
        let bytes = if i == 0 {
            serde_json::to_vec(&live_doc(&id, pools)).unwrap()
        } else {
            mutated(rng, &id, pools)
        };
        run.write(&format!("delegations/{id}.json"), bytes);
        if rng.chance(30) {
            let mut stream = rng.pick(&STREAMS).as_bytes().to_vec();
            for _ in 0..rng.below(4) {
                mangle(rng, &mut stream);
            }
            let path = run.write(&format!("raw-events/{id}.jsonl"), stream);
            // The live control's stream is old: a fresh one would be progress (SPEC §2)
            // and take it out of the plan.
            let control_age = if i == 0 { 3_600_000 } else { 0 };
            set_mtime_ms(&path, NOW_MS - rng.below(60_000) as i64 - control_age);
        }
    }
    run
}

const HEARTBEAT_RUNS: usize = 40;
const WORKERS_PER_RUN: usize = 100;

/// A heartbeat document with random field values and types.
fn heartbeat(rng: &mut XorShift) -> Value {
    let mut beat = json!({
        "status": rng.pick(&["alive", "busy", "idle", "stopped", "starting", "dead", ""]).to_string(),
        "name": "w",
        "ts": timestamp(rng),
    });
    for _ in 0..rng.below(3) {
        let field = *rng.pick(&["status", "name", "ts", "pid", "note"]);
        beat[field] = any_value(rng);
    }
    beat
}

/// A worker spec, sometimes with hostile or wrongly typed paths.
fn worker_spec(rng: &mut XorShift, name: &str) -> Value {
    let mut spec = json!({
        "name": name,
        "role": "coder",
        // Relative to the worker's directory (SPEC §5).
        "heartbeat": "heartbeat.json",
        "inbox": "inbox.jsonl",
        "outbox": "./outbox.jsonl",
    });
    if rng.chance(20) {
        let field = *rng.pick(&["heartbeat", "inbox", "outbox", "name"]);
        spec[field] = match rng.below(6) {
            0 => json!("/dev/zero"),
            1 => json!("../../../etc/passwd"),
            2 => json!("/proc/self/mem"),
            3 => json!(""),
            4 => json!(format!("../{name}/../../../{name}")),
            _ => any_value(rng),
        };
    }
    spec
}

/// 4,000 mutated heartbeats (and worker specs, inboxes) through `status` and
/// `health-events`: never a panic or hang, output always parseable, one `flatline: ` line
/// per problem, and the event log and state file always whole JSON.
#[test]
fn four_thousand_mutated_heartbeats_never_crash_or_tear_the_event_log() {
    let seed = test_seed(0x0b0e_a7b0_0e5e_ed02);
    let mut rng = XorShift::new(seed);
    let (mut records_seen, mut errors_seen) = (0, 0);
    for run_index in 0..HEARTBEAT_RUNS {
        let run = Run::bare();
        for i in 0..WORKERS_PER_RUN {
            let name = format!("w{i:03}");
            let mut spec = serde_json::to_vec(&worker_spec(&mut rng, &name)).unwrap();
            if rng.chance(10) {
                mangle(&mut rng, &mut spec);
            }
            let spec_path = run.write(&format!("workers/{name}/worker-spec.json"), spec);
            set_mtime_ms(&spec_path, NOW_MS - rng.below(600_000) as i64);
            if rng.chance(90) {
                let mut beat = serde_json::to_vec(&heartbeat(&mut rng)).unwrap();
                if rng.chance(35) {
                    for _ in 0..=rng.below(3) {
                        mangle(&mut rng, &mut beat);
                    }
                }
                let path = run.write(&format!("workers/{name}/heartbeat.json"), beat);
                set_mtime_ms(&path, NOW_MS - rng.below(300_000) as i64);
            }
            if rng.chance(30) {
                let mut inbox = b"{\"m\":1}\n\n{\"m\":2}\n".to_vec();
                mangle(&mut rng, &mut inbox);
                run.write(&format!("workers/{name}/inbox.jsonl"), inbox);
            }
        }
        let what = |command: &str| format!("heartbeat run {run_index} (seed {seed}), {command}");
        let (status, _) = run_flatline(&["status", "--format=ndjson", "--now", NOW], &run);
        let records = check_output(&what("status"), &status);
        records_seen += records.len();
        errors_seen += status.stderr_lines().len();
        // Twice, at two instants: a baseline, then transitions.
        for now in [NOW.to_string(), at(120_000)] {
            let (events, _) =
                run_flatline(&["health-events", "--format=ndjson", "--now", &now], &run);
            check_output(&what("health-events"), &events);
        }
        let state = std::fs::read(run.path().join(".flatline/state.json")).unwrap();
        serde_json::from_slice::<Value>(&state)
            .unwrap_or_else(|e| panic!("{}: state.json torn: {e}", what("health-events")));
        if let Ok(log) = std::fs::read_to_string(run.path().join("events.jsonl")) {
            for line in log.lines() {
                let event: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: bad event {line:?}: {e}", what("log")));
                assert_eq!(event["schema_version"], 1);
            }
        }
    }
    eprintln!(
        "{} heartbeats: {records_seen} status records, {errors_seen} error lines",
        HEARTBEAT_RUNS * WORKERS_PER_RUN
    );
    assert!(
        errors_seen > HEARTBEAT_RUNS,
        "the mutations must produce broken files"
    );
    assert!(
        records_seen > HEARTBEAT_RUNS * WORKERS_PER_RUN / 2,
        "most workers still give records"
    );
}
