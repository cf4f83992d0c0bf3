//! Identity from the evidence: verified, reused, unverifiable, fingerprints, gone and
//! exited, forbidden pids, threads, the launch timeout.

use super::*;

#[test]
fn a_live_child_is_verified() {
    let child = Proc::sleep();
    let now = real_now_ms();
    let run = Run::new();
    run.delegation(
        "live",
        &running_pid(
            "live",
            json!(child.pid()),
            json!({"launch_requested_at": rfc3339(now - 1_000), "started_at": rfc3339(now),
                   "process_started_at": rfc3339(now), "last_progress_at": rfc3339(now)}),
        ),
    );
    let out = live_status(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_id("live"),
        json!({"process_id": child.pid(), "process_alive": true, "process_identity": "verified",
               "state": "running_active", "next_action": "await_worker", "warnings": []}),
    );
}

#[test]
fn evidence_an_hour_before_the_process_started_means_reused() {
    let child = Proc::sleep();
    let hour_ago = real_now_ms() - 3_600_000;
    let run = Run::new();
    // The worker wrote its stream an hour ago, before this process existed: certainly
    // another process (SPEC §3.1).
    set_mtime_ms(&run.write("raw-events/old.jsonl", "{}\n"), hour_ago);
    run.delegation(
        "old",
        &running_pid(
            "old",
            json!(child.pid()),
            json!({"started_at": rfc3339(hour_ago), "process_started_at": rfc3339(hour_ago),
                   "last_progress_at": rfc3339(hour_ago)}),
        ),
    );
    let out = flatline([
        std::ffi::OsStr::new("status"),
        std::ffi::OsStr::new("--check"),
        std::ffi::OsStr::new("--format=ndjson"),
        run.arg(),
    ]);
    assert_eq!(
        out.code, 1,
        "a running worker whose process is gone needs attention"
    );
    assert_fields(
        &out.by_id("old"),
        json!({"process_alive": false, "process_identity": "reused", "next_action": "finalize",
               "summary": "running, but its process is gone: finalize with flatline refresh"}),
    );
}

#[test]
fn without_the_stream_written_before_it_started_a_later_process_is_unverifiable() {
    let child = Proc::sleep();
    let hour_ago = real_now_ms() - 3_600_000;
    let run = Run::new();
    // No stream, then one written since the process started: neither is proof.
    for (id, stream_mtime) in [("nostream", None), ("fresh", Some(real_now_ms()))] {
        if let Some(mtime) = stream_mtime {
            set_mtime_ms(&run.write(&format!("raw-events/{id}.jsonl"), "{}\n"), mtime);
        }
        run.delegation(
            id,
            &running_pid(
                id,
                json!(child.pid()),
                json!({"started_at": rfc3339(hour_ago), "process_started_at": rfc3339(hour_ago),
                       "last_progress_at": rfc3339(hour_ago)}),
            ),
        );
    }
    let out = live_status(&run);
    for id in ["nostream", "fresh"] {
        assert_fields(
            &out.by_id(id),
            json!({"process_identity": "unverifiable", "needs_attention": true}),
        );
        assert_ne!(out.by_id(id)["next_action"], "finalize", "{id}");
    }
}

/// A process that started before the recorded launch is not the worker, but not certainly
/// another one either: unverifiable, never finalized (SPEC §3.1).
#[test]
fn a_process_older_than_its_launch_is_unverifiable() {
    let child = Proc::sleep();
    let later = real_now_ms() + 10_000;
    let run = Run::new();
    run.delegation(
        "early",
        &running_pid(
            "early",
            json!(child.pid()),
            json!({"launch_requested_at": rfc3339(later), "started_at": rfc3339(later + 1_000)}),
        ),
    );
    let out = live_status(&run);
    assert_fields(
        &out.by_id("early"),
        json!({"process_identity": "unverifiable", "next_action": "await_worker"}),
    );
}

#[test]
fn no_evidence_is_unverifiable() {
    let child = Proc::sleep();
    let run = Run::new();
    run.delegation(
        "bare",
        &running_pid(
            "bare",
            json!(child.pid()),
            json!({"queued_at": rfc3339(real_now_ms())}),
        ),
    );
    let out = live_status(&run);
    assert_fields(
        &out.by_id("bare"),
        // SPEC §3.1: process_alive is null when the identity cannot be told.
        json!({"process_identity": "unverifiable", "process_alive": null, "needs_attention": true}),
    );
}

#[test]
fn fingerprints_match_or_mismatch() {
    let child = Proc::sleep();
    let hour_ago = real_now_ms() - 3_600_000;
    let evidence =
        json!({"started_at": rfc3339(hour_ago), "last_progress_at": rfc3339(real_now_ms())});
    let fingerprint = |ticks: u64, boot: String| json!({"start_ticks": ticks, "boot_id": boot, "pid_ns": pid_ns()});
    let run = Run::new();
    // The fingerprint wins over the window, which alone would say "reused".
    let mut same = running_pid("same", json!(child.pid()), evidence.clone());
    same["worker_lifecycle"]["process_fingerprint"] = fingerprint(child.start_ticks(), boot_id());
    run.delegation("same", &same);
    let mut other = running_pid("other", json!(child.pid()), evidence.clone());
    other["worker_lifecycle"]["process_fingerprint"] =
        fingerprint(child.start_ticks() + 1, boot_id());
    run.delegation("other", &other);
    let mut rebooted = running_pid("rebooted", json!(child.pid()), evidence);
    rebooted["worker_lifecycle"]["process_fingerprint"] = fingerprint(
        child.start_ticks(),
        "00000000-0000-0000-0000-000000000000".into(),
    );
    run.delegation("rebooted", &rebooted);
    let out = live_status(&run);
    assert_fields(
        &out.by_id("same"),
        json!({"process_identity": "verified", "process_alive": true}),
    );
    assert_fields(
        &out.by_id("other"),
        json!({"process_identity": "reused", "process_alive": false}),
    );
    assert_fields(
        &out.by_id("rebooted"),
        json!({"process_identity": "gone", "next_action": "finalize"}),
    );
}

#[test]
fn an_exited_child_is_gone_and_a_zombie_has_exited() {
    let mut exited = std::process::Command::new("true").spawn().unwrap();
    let exited_pid = exited.id();
    exited.wait().unwrap();
    let mut zombie = Proc::sleep();
    zombie.make_zombie();
    let now = real_now_ms();
    let evidence = json!({"started_at": rfc3339(now), "last_progress_at": rfc3339(now)});
    let run = Run::new();
    run.delegation(
        "exited",
        &running_pid("exited", json!(exited_pid), evidence.clone()),
    );
    run.delegation(
        "zombie",
        &running_pid("zombie", json!(zombie.pid()), evidence),
    );
    let out = live_status(&run);
    for id in ["exited", "zombie"] {
        assert_fields(
            &out.by_id(id),
            json!({"process_alive": false, "process_identity": "gone", "next_action": "finalize", "needs_attention": true}),
        );
    }
}

#[test]
fn forbidden_pids_are_invalid_and_never_looked_up() {
    let run = Run::new();
    let evidence = json!({"last_progress_at": at(-1_000)});
    // The test process is flatline's parent: an ancestor.
    let parent = std::process::id();
    let pid_max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cases = [
        ("p0", json!(0)),
        ("p1", json!(1)),
        ("pminus1", json!(-1)),
        ("p4294967295", json!(4294967295u64)),
        ("p4294967297", json!(4294967297u64)),
        ("pmax", json!(pid_max + 1)),
        ("pparent", json!(parent)),
        ("pfloat", json!(12.5)),
        ("pstring", json!("12")),
    ];
    for (id, pid) in &cases {
        run.delegation(id, &running_pid(id, pid.clone(), evidence.clone()));
    }
    let out = status(&run, &["--check"]);
    assert_eq!(
        out.code, 3,
        "the wrongly typed pids make their files malformed"
    );
    for (id, _) in &cases {
        let record = out.by_id(id);
        assert_fields(
            &record,
            json!({"process_alive": null, "process_identity": null, "needs_attention": true}),
        );
        assert!(
            record["warnings"]
                .as_array()
                .unwrap()
                .contains(&json!("invalid_process_id")),
            "{id}: {record}"
        );
    }
    assert_fields(
        &out.by_id("p4294967297"),
        json!({"process_id": 4294967297u64}),
    );
    assert_fields(&out.by_id("pstring"), json!({"process_id": null}));
}

#[test]
fn a_thread_id_is_not_a_process() {
    // A thread of this test process: kill(tid, 0) answers, but it is not a thread-group
    // leader.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid cannot fail.
        tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = done_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let run = Run::new();
    run.delegation(
        "thread",
        &running_pid(
            "thread",
            json!(tid),
            json!({"last_progress_at": at(-1_000)}),
        ),
    );
    let out = status(&run, &[]);
    done_tx.send(()).unwrap();
    thread.join().unwrap();
    let record = out.by_id("thread");
    assert_fields(
        &record,
        json!({"process_identity": null, "process_id": tid}),
    );
    assert_eq!(record["warnings"], json!(["invalid_process_id"]));
}

/// SPEC §2 (issue 13 item 6): `--launch-timeout` alone judges a launching worker, and any
/// sign of a start ends the launch.
#[test]
fn the_launch_timeout_judges_only_launching_workers() {
    let run = Run::new();
    run.delegation(
        "slow-launch",
        &delegation(
            "slow-launch",
            "running",
            json!({"launch_requested_at": at(-300_000)}),
        ),
    );
    run.delegation(
        "late-launch",
        &delegation(
            "late-launch",
            "running",
            json!({"launch_requested_at": at(-700_000)}),
        ),
    );
    run.delegation(
        "started",
        &delegation(
            "started",
            "running",
            json!({"launch_requested_at": at(-300_000), "process_started_at": at(-300_000)}),
        ),
    );
    let out = status(&run, &["--launch-timeout", "10m"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_id("slow-launch"),
        json!({"state": "launching", "reclaim_state": "not_needed"}),
    );
    assert_fields(
        &out.by_id("late-launch"),
        json!({"state": "stale", "reclaim_state": "reclaim_needed",
               "recovery_reason": "launch took 700000 ms, over the launch timeout 600000 ms"}),
    );
    assert_fields(
        &out.by_id("started"),
        json!({"state": "timed_out", "reclaim_state": "reclaim_needed"}),
    );
    // Without the flag a launching worker ages like a running one.
    let out = status(&run, &[]);
    assert_fields(&out.by_id("slow-launch"), json!({"state": "timed_out"}));
}
