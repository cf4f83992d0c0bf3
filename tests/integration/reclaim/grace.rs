//! Without pidfds, and signals and deadlines during the grace.

use super::*;

#[test]
fn without_pidfds_the_start_time_is_checked_before_kill() {
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: needs the test hooks of a debug build");
        return;
    }
    let worker = Proc::sleep();
    let run = Run::new();
    run.delegation("k", &stale_delegation("k", &worker));
    let mut command = Command::new(bin());
    command
        .args(["reclaim", "--format=ndjson", "--grace", "10s"])
        .arg(run.arg())
        .env("FLATLINE_TEST_NO_PIDFD", "1");
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("k"),
        json!({"termination": "terminated", "signal_via": "kill"}),
    );
    assert_eq!(
        run.read_json("delegations/k.json")["reclaim"]["signal_via"],
        "kill"
    );
}

/// Starts `flatline reclaim --grace 60s [extra]` over a TERM-ignoring worker and a plain one,
/// and returns once the plain one is gone: flatline is then waiting out the grace.
fn reclaim_in_the_grace(extra: &[&str]) -> (Run, Worker, Proc, std::process::Child) {
    let stubborn = Worker::shell("trap '' TERM; echo ready; exec sleep 300");
    let plain = Proc::sleep();
    let run = Run::new();
    run.delegation(
        "a-stubborn",
        &stale_delegation("a-stubborn", &stubborn.proc),
    );
    run.delegation("b-plain", &stale_delegation("b-plain", &plain));
    let mut command = Command::new(bin());
    command
        .args(["reclaim", "--format=ndjson", "--grace", "60s"])
        .args(extra)
        .arg(run.arg());
    let child = start(&mut command);
    let began = Instant::now();
    while process_state_or_gone(plain.pid()) != 'Z' {
        assert!(
            began.elapsed() < HANG_GUARD,
            "the plain worker was never signalled"
        );
        std::thread::yield_now();
    }
    (run, stubborn, plain, child)
}

/// The state letter of a process, or 'Z' when it is gone.
fn process_state_or_gone(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap())
        .unwrap_or('Z')
}

#[test]
fn a_signal_during_the_grace_records_what_is_gone_and_leaves_the_rest() {
    let (run, stubborn, _plain, child) = reclaim_in_the_grace(&[]);
    // SAFETY: signals the flatline this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = finish(child, HANG_GUARD);
    assert_eq!(out.code, 128 + libc::SIGINT, "{}", out.stderr);
    assert_fields(
        &out.by_action("b-plain"),
        json!({"termination": "terminated", "outcome": "written"}),
    );
    assert_fields(
        &out.by_action("a-stubborn"),
        json!({"action": "skipped", "termination": "interrupted"}),
    );
    assert!(alive(stubborn.pid()), "no SIGKILL after the interruption");
    assert_eq!(
        run.read_json("delegations/b-plain.json")["worker_lifecycle"]["reclaim_state"],
        "reclaimed"
    );
    let left = flatline([
        OsStr::new("status"),
        OsStr::new("--format=ndjson"),
        run.arg(),
    ]);
    assert_fields(
        &left.by_id("a-stubborn"),
        json!({"reclaim_state": "reclaim_needed"}),
    );
}

#[test]
fn the_deadline_during_the_grace_ends_with_124_and_records_what_is_gone() {
    let (run, stubborn, _plain, child) = reclaim_in_the_grace(&["--deadline", "2s"]);
    let out = finish(child, HANG_GUARD);
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert_fields(
        &out.by_action("b-plain"),
        json!({"termination": "terminated"}),
    );
    assert_fields(
        &out.by_action("a-stubborn"),
        json!({"action": "skipped", "termination": "interrupted"}),
    );
    assert!(alive(stubborn.pid()));
    assert_eq!(
        run.read_json("delegations/b-plain.json")["reclaim"]["termination"],
        "terminated"
    );
}
