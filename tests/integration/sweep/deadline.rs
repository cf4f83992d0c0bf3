//! Stuck workers in slow scans: signalled before the deadline, one grace for all, noted for
//! the next sweep when the deadline passes.

use super::*;

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
