//! A flatline in its grace: killed, raced by another run or a sweep; dry-run plans.

use super::*;

/// A worker that dies on SIGTERM with a descendant that ignores it (printed on the ready
/// line), so that a reclaim waits out its whole grace; and a flatline reclaiming it with
/// `--grace 60s`, returned once the worker is gone (flatline is then in the grace).
fn reclaim_waiting_in_the_grace(run: &Run) -> (Shell, u32, std::process::Child) {
    let worker = Shell::start("(trap '' TERM; exec sleep 120) & echo $!; exec sleep 300");
    let descendant: u32 = worker.line.parse().unwrap();
    run.delegation("g", &stale_delegation("g", &worker.proc));
    let mut command = Command::new(bin());
    command
        .args(["reclaim", "--format=ndjson", "--grace", "60s"])
        .arg(run.arg());
    let child = start(&mut command);
    let began = Instant::now();
    while alive(worker.proc.pid()) {
        assert!(
            began.elapsed() < HANG_GUARD,
            "the worker was never signalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (worker, descendant, child)
}

/// Ends the TERM-ignoring descendant a test's worker left behind (the test spawned it).
fn end_descendant(pid: u32) {
    if alive(pid) {
        // SAFETY: signals a descendant this test spawned, still alive (checked just above).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

#[test]
fn a_flatline_killed_in_the_grace_leaves_a_note_the_next_run_completes() {
    let run = Run::new();
    let (worker, descendant, mut child) = reclaim_waiting_in_the_grace(&run);
    let state = run.read_json(".flatline/state.json");
    let notes = state["signalled"]
        .as_array()
        .expect("noted before the signal");
    assert_eq!(notes.len(), 1, "{state}");
    assert_fields(
        &notes[0],
        json!({"delegation": "g.json", "pid": worker.proc.pid(), "signal": "SIGTERM",
               "flatline": {"pid": child.id(), "start_ticks": notes[0]["flatline"]["start_ticks"]}}),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        run.read_json("delegations/g.json")["child_agent"]["status"],
        "running",
        "killed before it could record anything"
    );
    let out = reclaim(&run, &["--grace", "1s"]);
    end_descendant(descendant);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("g"),
        json!({"action": "reclaimed", "outcome": "written", "termination": "terminated"}),
    );
    let written = run.read_json("delegations/g.json");
    assert_eq!(written["worker_lifecycle"]["reclaim_state"], "reclaimed");
    assert_eq!(written["reclaim"]["termination"], "terminated");
    assert_eq!(written["latest_failure"]["reason"], "timeout");
    assert!(
        run.read_json(".flatline/state.json")
            .get("signalled")
            .is_none(),
        "the note is done"
    );
}

#[test]
fn a_run_during_another_flatlines_grace_takes_the_lock_and_leaves_its_targets() {
    let run = Run::new();
    let (_worker, descendant, child) = reclaim_waiting_in_the_grace(&run);
    let before = run.read("delegations/g.json");
    // The first flatline only waits: the lock is free, and its target is its own.
    let out = reclaim(&run, &["--grace", "1s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "", "the other flatline's target is left to it");
    assert_eq!(run.read("delegations/g.json"), before);
    assert_eq!(
        run.read_json(".flatline/state.json")["signalled"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "its note is kept"
    );
    // SAFETY: signals the flatline this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let first = finish(child, HANG_GUARD);
    end_descendant(descendant);
    assert_eq!(first.code, 128 + libc::SIGINT, "{}", first.stderr);
    assert_fields(
        &first.by_action("g"),
        json!({"action": "reclaimed", "termination": "terminated"}),
    );
    assert!(
        run.read_json(".flatline/state.json")
            .get("signalled")
            .is_none()
    );
}

#[test]
fn a_sweep_leaves_the_targets_of_a_flatline_in_its_grace_and_completes_those_of_a_dead_one() {
    let run = Run::new();
    let (_worker, descendant, mut child) = reclaim_waiting_in_the_grace(&run);
    let before = run.read("delegations/g.json");
    let sweep = |run: &Run| {
        flatline([
            OsStr::new("sweep"),
            OsStr::new("--format=ndjson"),
            OsStr::new("--grace=1s"),
            run.arg(),
        ])
    };
    let during = sweep(&run);
    assert_eq!(during.code, 0, "{}", during.stderr);
    assert!(
        during.records().iter().all(|r| r["delegation_id"] != "g"),
        "{}",
        during.stdout
    );
    assert_eq!(
        run.read("delegations/g.json"),
        before,
        "left to its flatline"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let after = sweep(&run);
    end_descendant(descendant);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert_fields(
        &after.by_action("g"),
        json!({"action": "reclaimed", "outcome": "written", "termination": "terminated"}),
    );
    let written = run.read_json("delegations/g.json");
    assert_eq!(written["worker_lifecycle"]["reclaim_state"], "reclaimed");
    assert!(
        run.read_json(".flatline/state.json")
            .get("signalled")
            .is_none()
    );
}

#[test]
fn reclaim_and_sweep_dry_runs_print_the_same_plan_for_every_target() {
    let live = Proc::sleep();
    // The reused pid's process lives until the plans are made.
    let (run, _reused_proc) = every_kind_of_target(&live);
    let now = rfc3339(real_now_ms());
    let (reclaim_code, reclaim_plan) = dry_run_plan(&run, "reclaim", &now);
    let (sweep_code, sweep_plan) = dry_run_plan(&run, "sweep", &now);
    assert_eq!(
        reclaim_plan, sweep_plan,
        "one record, built by the same code"
    );
    assert_eq!(reclaim_code, sweep_code);
    let by_id = |id: &str| {
        reclaim_plan
            .iter()
            .find(|r| r["delegation_id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from the plan: {reclaim_plan:?}"))
            .clone()
    };
    assert_fields(
        &by_id("a-live"),
        json!({"action": "reclaimed", "outcome": "dry_run", "process_identity": "verified",
               "termination": null, "would_signal": [live.pid()], "state": "timed_out"}),
    );
    assert_fields(
        &by_id("b-gone"),
        json!({"action": "finalized", "termination": "already_exited", "process_identity": "gone",
               "would_signal": []}),
    );
    assert_fields(
        &by_id("c-reused"),
        json!({"action": "finalized", "termination": "skipped_reused", "would_signal": []}),
    );
    assert_fields(
        &by_id("d-no-pid"),
        json!({"action": "reclaimed", "termination": "no_process", "would_signal": []}),
    );
    assert_fields(
        &by_id("e-invalid"),
        json!({"action": "skipped", "termination": "skipped_invalid_pid", "would_signal": []}),
    );
    for record in &reclaim_plan {
        for field in [
            "state",
            "process_id",
            "process_identity",
            "last_progress_at",
            "elapsed_since_progress_ms",
            "summary",
            "termination",
            "reason",
            "would_signal",
            "skipped_descendants",
        ] {
            assert!(record.get(field).is_some(), "{field} missing: {record}");
        }
    }
    let document = flatline([
        "reclaim",
        "--dry-run",
        "--format=json",
        "--now",
        &now,
        run.path().to_str().unwrap(),
    ]);
    let document: Value = serde_json::from_str(&document.stdout).unwrap();
    assert_eq!(document["reclaim_needed_worker_count"], 5);
    assert_eq!(document["targets"].as_array().unwrap().len(), 5);
    assert_eq!(
        document["summary"],
        "5 worker(s) need reclaim (0 stale, 5 timed out)."
    );
}

/// A run with one stale delegation per kind of target: a live worker, a gone one, a reused
/// pid, no pid, an invalid pid. Returns it with the process whose pid the reused one names.
fn every_kind_of_target(live: &Proc) -> (Run, Proc) {
    let mut gone = Proc::sleep();
    let gone_doc = stale_delegation("b-gone", &gone);
    gone.child.kill().unwrap();
    gone.child.wait().unwrap();
    let reused_proc = Proc::sleep();
    let run = Run::new();
    run.delegation("a-live", &stale_delegation("a-live", live));
    run.delegation("b-gone", &gone_doc);
    let mut reused = stale_delegation("c-reused", &reused_proc);
    reused["worker_lifecycle"]["process_fingerprint"]["start_ticks"] =
        json!(reused_proc.start_ticks() + 1);
    run.delegation("c-reused", &reused);
    let mut no_pid = stale_delegation("d-no-pid", live);
    no_pid["worker_lifecycle"]
        .as_object_mut()
        .unwrap()
        .remove("process_id");
    run.delegation("d-no-pid", &no_pid);
    let mut invalid = stale_delegation("e-invalid", live);
    invalid["worker_lifecycle"]["process_id"] = json!(0);
    run.delegation("e-invalid", &invalid);
    (run, reused_proc)
}

/// The action records of `COMMAND --dry-run` (without their `command` field), with the exit
/// status.
fn dry_run_plan(run: &Run, command: &str, now: &str) -> (i32, Vec<Value>) {
    let out = flatline([
        command,
        "--dry-run",
        "--format=ndjson",
        "--now",
        now,
        run.path().to_str().unwrap(),
    ]);
    let mut records: Vec<Value> = out
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "action")
        .collect();
    for record in &mut records {
        record.as_object_mut().unwrap().remove("command");
    }
    (out.code, records)
}
