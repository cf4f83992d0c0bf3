//! What reclaim signals and how: plain, TERM-ignoring, stopped and zombie workers, whole
//! trees, --only-process.

use super::*;

#[test]
fn a_plain_sleep_is_terminated_and_recorded() {
    let mut worker = Proc::sleep();
    let run = Run::new();
    let mut doc = stale_delegation("d1", &worker);
    doc["worker_request"] = json!({"prompt": "keep me", "n": 123456789012345678901234567890u128});
    run.delegation("d1", &doc);
    let out = reclaim(&run, &["--grace", "10s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let summary = format!(
        "Worker process {} exceeded the bounded timeout and was reclaimed by flatline (terminated).",
        worker.pid()
    );
    assert_eq!(
        out.records(),
        vec![json!({
            "kind": "action", "command": "reclaim", "action": "reclaimed", "outcome": "written",
            "run_dir": run.path().to_string_lossy(), "path": run.delegation_path("d1.json").to_string_lossy(),
            "delegation_id": "d1", "state": "timed_out", "process_id": worker.pid(), "termination": "terminated",
            "signal_via": "pidfd", "descendants_signalled": [], "survivors": [], "summary": summary
        })]
    );
    let status = worker.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    let written = run.read_json("delegations/d1.json");
    assert_eq!(written["child_agent"]["status"], "failed");
    assert_eq!(written["executor"]["status"], "failed");
    assert_eq!(written["worker_lifecycle"]["reclaim_state"], "reclaimed");
    assert_eq!(written["worker_lifecycle"]["state"], "timed_out");
    assert_eq!(written["latest_failure"]["reason"], "timeout");
    assert_eq!(written["result_summary"], summary);
    assert_eq!(
        written["reclaim"],
        json!({"signal_via": "pidfd", "termination": "terminated", "descendants_signalled": [], "survivors": []})
    );
    assert_eq!(
        written["worker_request"], doc["worker_request"],
        "unknown fields survive"
    );
    // status now says reclaimed; a second reclaim does nothing and writes nothing.
    let view = flatline([
        OsStr::new("status"),
        OsStr::new("--format=ndjson"),
        run.arg(),
    ]);
    assert_fields(
        &view.by_id("d1"),
        json!({"reclaim_state": "reclaimed", "next_action": "none"}),
    );
    let before = run.read("delegations/d1.json");
    let again = reclaim(&run, &[]);
    assert_eq!(
        (again.code, again.stdout.as_str(), again.stderr.as_str()),
        (0, "", "")
    );
    assert_eq!(run.read("delegations/d1.json"), before);
}

#[test]
fn a_sleep_verified_by_the_time_window_is_terminated() {
    // Recorded as an orchestrator does: the launch stamped before the fork and the start
    // when the spawn returned, so the process started within the window (SPEC §3.1) however
    // slowly a loaded machine forks.
    let launched = real_now_ms();
    let worker = Proc::sleep();
    let started = real_now_ms();
    let run = Run::new();
    run.delegation(
        "w",
        &delegation(
            "w",
            "running",
            json!({"process_id": worker.pid(), "launch_requested_at": rfc3339(launched),
                   "started_at": rfc3339(started), "last_progress_at": rfc3339(started)}),
        ),
    );
    // Timed out from 2 ms after the start (twice --stale-after). reclaim refuses --now (it
    // signals only on its own clock) and no threshold is shorter than 1 ms, so the clock
    // must have passed that before reclaim starts: a fast start-up once read 1 ms (stale).
    while real_now_ms() < started + 2 {
        std::hint::spin_loop();
    }
    let out = reclaim(&run, &["--stale-after", "1ms"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("w"),
        json!({"termination": "terminated", "state": "timed_out"}),
    );
    assert!(!alive(worker.pid()));
    // The fingerprint was not stamped by reclaim: the record is what matters, and identity
    // was verified by the window.
}

#[test]
fn a_shell_that_ignores_term_is_killed_after_the_grace() {
    let worker = Worker::shell("trap '' TERM; echo ready; exec sleep 300");
    assert_eq!(worker.line, "ready");
    let run = Run::new();
    run.delegation("d", &stale_delegation("d", &worker.proc));
    let started = Instant::now();
    let out = reclaim(&run, &["--grace", "300ms"]);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the grace was waited out"
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("d"),
        json!({"termination": "killed", "outcome": "written"}),
    );
    assert!(!alive(worker.pid()));
    assert_eq!(
        run.read_json("delegations/d.json")["reclaim"]["termination"],
        "killed"
    );
}

#[test]
fn a_stopped_process_is_continued_and_terminated() {
    let worker = Proc::sleep();
    // SAFETY: stops our own child.
    assert_eq!(unsafe { libc::kill(worker.pid() as i32, libc::SIGSTOP) }, 0);
    while process_state(worker.pid()) != 'T' {
        std::thread::yield_now();
    }
    let run = Run::new();
    run.delegation("d", &stale_delegation("d", &worker));
    let out = reclaim(&run, &["--grace", "10s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(&out.by_action("d"), json!({"termination": "terminated"}));
}

#[test]
fn a_zombie_is_finalized_at_once_without_waiting_for_the_grace() {
    let mut worker = Proc::sleep();
    let doc = stale_delegation("z", &worker);
    worker.make_zombie();
    let run = Run::new();
    run.delegation("z", &doc);
    let started = Instant::now();
    let out = reclaim(&run, &["--grace", "60s"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "no grace spent on a zombie"
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("z"),
        json!({"action": "finalized", "termination": "already_exited", "status": "failed", "reason": "unknown"}),
    );
    assert_eq!(
        run.read_json("delegations/z.json")["child_agent"]["status"],
        "failed"
    );
}

#[test]
fn the_whole_tree_goes_including_a_child_that_called_setsid() {
    let worker = Worker::shell("sleep 300 & a=$!; setsid sleep 300 & b=$!; echo \"$a $b\"; wait");
    let children = worker.child_pids();
    assert_eq!(children.len(), 2, "{}", worker.line);
    // setsid has run once the child is its own session leader.
    let session_of = |pid: u32| -> String {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_string()
    };
    while session_of(children[1]) != children[1].to_string() {
        std::thread::yield_now();
    }
    let run = Run::new();
    run.delegation("t", &stale_delegation("t", &worker.proc));
    let out = reclaim(&run, &["--grace", "10s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = out.by_action("t");
    let mut signalled: Vec<u64> = record["descendants_signalled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    signalled.sort();
    let mut expected: Vec<u64> = children.iter().map(|&p| u64::from(p)).collect();
    expected.sort();
    assert_eq!(signalled, expected);
    assert_fields(
        &record,
        json!({"termination": "terminated", "survivors": []}),
    );
    assert!(!alive(worker.pid()));
    for child in children {
        assert!(!alive(child), "descendant {child} was orphaned");
    }
}

#[test]
fn only_process_leaves_the_children_alive() {
    let worker = Worker::shell("sleep 300 & echo $!; wait");
    let child = worker.child_pids()[0];
    let run = Run::new();
    run.delegation("o", &stale_delegation("o", &worker.proc));
    let out = reclaim(&run, &["--grace", "10s", "--only-process"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("o"),
        json!({"termination": "terminated", "descendants_signalled": []}),
    );
    assert!(!alive(worker.pid()));
    assert!(alive(child), "--only-process must not touch the child");
    // Clean up the orphaned grandchild this test created.
    // SAFETY: the grandchild was spawned by this test's own child.
    unsafe { libc::kill(child as i32, libc::SIGKILL) };
}
