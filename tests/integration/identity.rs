//! Liveness and identity of worker processes in `status` (SPEC §3.1), with real children.
//! Identity uses the real clocks, so these delegations carry real timestamps; `status`
//! never signals, so forbidden pids are safe to feed it.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;

fn running_pid(id: &str, pid: Value, lifecycle: Value) -> Value {
    let mut lifecycle = lifecycle;
    lifecycle["process_id"] = pid;
    delegation(id, "running", lifecycle)
}

/// `status` without `--now`: process identity is about the real present.
fn live_status(run: &Run) -> Outcome {
    flatline([
        std::ffi::OsStr::new("status"),
        std::ffi::OsStr::new("--format"),
        std::ffi::OsStr::new("ndjson"),
        run.arg(),
    ])
}

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

/// Issue 12 class 14 (SPEC §3.1): flatline run from another pid namespace than the one it
/// recorded for the run (a CronJob pod) sees the host's pids as strangers or nothing: live
/// workers without a fingerprint are unverifiable there, never gone, never finalized.
#[test]
fn a_run_from_another_pid_namespace_finalizes_nothing() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    // A first writing run in the workers' namespace records it.
    let out = flatline([OsStr::new("refresh"), run.arg()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let state = run.read_json(".flatline/state.json");
    assert_eq!(state["pid_ns"]["inode"], json!(pid_ns()), "{state}");
    assert!(
        state["clock"]["realtime_minus_boottime_ms"].is_i64(),
        "{state}"
    );

    let child = Proc::sleep();
    let now = real_now_ms();
    run.delegation(
        "live",
        &running_pid(
            "live",
            json!(child.pid()),
            json!({"launch_requested_at": rfc3339(now - 1_000), "started_at": rfc3339(now),
                   "process_started_at": rfc3339(now), "last_progress_at": rfc3339(now)}),
        ),
    );
    let before = run.read("delegations/live.json");
    let elsewhere = |verb: &str| {
        let mut command = std::process::Command::new("unshare");
        command
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(bin())
            .args([verb, "--format=ndjson"])
            .arg(run.path());
        run_command(&mut command, HANG_GUARD)
    };
    let out = elsewhere("status");
    assert_fields(
        &out.by_id("live"),
        json!({"process_identity": "unverifiable", "needs_attention": true}),
    );
    let out = elsewhere("refresh");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("another pid namespace").count(),
        1,
        "said once per run: {}",
        out.stderr
    );
    assert_eq!(
        run.read("delegations/live.json"),
        before,
        "a live worker was finalized from another namespace"
    );
    // The recorded namespace stays the first one.
    let state = run.read_json(".flatline/state.json");
    assert_eq!(state["pid_ns"]["inode"], json!(pid_ns()), "{state}");
    // Back in the workers' namespace the worker is verified again.
    let out = live_status(&run);
    assert_fields(&out.by_id("live"), json!({"process_identity": "verified"}));
}

/// SPEC §3.1: realtime-from-boottime moves only when the wall clock is stepped. A state.json
/// whose recorded `CLOCK_REALTIME − CLOCK_BOOTTIME` is far from today's means a step since:
/// window verdicts are then unverifiable with the warning `clock_step` (the fingerprint
/// alone still verifies), and the step is remembered.
#[test]
fn after_a_clock_step_the_window_verifies_nothing() {
    let run = Run::new();
    // A first writing run records the clock.
    let out = flatline([OsStr::new("refresh"), run.arg()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut state = run.read_json(".flatline/state.json");
    let offset = state["clock"]["realtime_minus_boottime_ms"]
        .as_i64()
        .unwrap();
    assert!(state["clock"]["stepped_at"].is_null(), "{state}");
    // The clock as it was before a step of one hour.
    state["clock"]["realtime_minus_boottime_ms"] = json!(offset - 3_600_000);
    write_json(&run.path().join(".flatline/state.json"), &state);

    let now = real_now_ms();
    let child = Proc::sleep();
    let evidence = json!({"launch_requested_at": rfc3339(now - 1_000), "started_at": rfc3339(now),
                          "process_started_at": rfc3339(now), "last_progress_at": rfc3339(now)});
    run.delegation(
        "window",
        &running_pid("window", json!(child.pid()), evidence.clone()),
    );
    let mut fingerprinted = running_pid("fp", json!(child.pid()), evidence);
    fingerprinted["worker_lifecycle"]["process_fingerprint"] =
        json!({"start_ticks": child.start_ticks(), "boot_id": boot_id(), "pid_ns": pid_ns()});
    run.delegation("fp", &fingerprinted);
    let out = live_status(&run);
    assert_fields(
        &out.by_id("window"),
        json!({"process_identity": "unverifiable", "warnings": ["clock_step"]}),
    );
    assert_fields(
        &out.by_id("fp"),
        json!({"process_identity": "verified", "warnings": []}),
    );
    // A writing run records the step; later runs still see it for anchors before it.
    let out = flatline([
        OsStr::new("refresh"),
        OsStr::new("--format=ndjson"),
        run.arg(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let state = run.read_json(".flatline/state.json");
    assert!(state["clock"]["stepped_at"].is_string(), "{state}");
    assert_ne!(
        state["clock"]["realtime_minus_boottime_ms"],
        json!(offset - 3_600_000)
    );
    let out = live_status(&run);
    assert_fields(
        &out.by_id("window"),
        json!({"process_identity": "unverifiable", "warnings": ["clock_step"]}),
    );
}

/// SPEC §3.1: a launch recorded after the first sign of life is ignored with the warning
/// `launch_after_start`; the window then opens at most `--max-spawn-delay` before it.
#[test]
fn a_launch_after_the_start_is_ignored_with_a_warning() {
    // Recorded after the process began: it lies below every recorded instant.
    let child = Proc::sleep();
    let now = real_now_ms();
    let run = Run::new();
    run.delegation(
        "late",
        &running_pid(
            "late",
            json!(child.pid()),
            json!({"launch_requested_at": rfc3339(now + 5_000), "started_at": rfc3339(now),
                   "last_progress_at": rfc3339(now)}),
        ),
    );
    let out = live_status(&run);
    assert_fields(
        &out.by_id("late"),
        json!({"process_identity": "verified", "warnings": ["launch_after_start"]}),
    );
    // A spawn delay of zero: the window opens at the recorded start itself, which here is
    // 100 ms after this process began; by default the window reaches 60 s before it.
    run.delegation(
        "ahead",
        &running_pid(
            "ahead",
            json!(child.pid()),
            json!({"launch_requested_at": rfc3339(now + 5_000), "started_at": rfc3339(now + 100)}),
        ),
    );
    let out = live_status(&run);
    assert_eq!(
        out.by_id("ahead")["process_identity"],
        "verified",
        "{}",
        out.stdout
    );
    let out = flatline([
        OsStr::new("status"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--max-spawn-delay=0ms"),
        OsStr::new("--identity-slack=0ms"),
        run.arg(),
    ]);
    assert_eq!(
        out.by_id("ahead")["process_identity"],
        "unverifiable",
        "{}",
        out.stdout
    );
}

/// SPEC §3.1: a running worker fingerprinted in another pid namespace than flatline's shows
/// that the run's pids are not flatline's to judge: workers without a fingerprint judged
/// after it are unverifiable, said once.
#[test]
fn a_fingerprint_from_another_namespace_makes_the_window_unverifiable() {
    let child = Proc::sleep();
    let now = real_now_ms();
    let run = Run::new();
    let evidence = json!({"launch_requested_at": rfc3339(now - 1_000), "started_at": rfc3339(now),
                          "last_progress_at": rfc3339(now)});
    let mut elsewhere = running_pid("a-elsewhere", json!(child.pid()), evidence.clone());
    elsewhere["worker_lifecycle"]["process_fingerprint"] =
        json!({"start_ticks": 1, "boot_id": boot_id(), "pid_ns": pid_ns() + 1});
    run.delegation("a-elsewhere", &elsewhere);
    run.delegation(
        "b-window",
        &running_pid("b-window", json!(child.pid()), evidence.clone()),
    );
    run.delegation(
        "c-window",
        &running_pid("c-window", json!(child.pid()), evidence),
    );
    let out = live_status(&run);
    for id in ["a-elsewhere", "b-window", "c-window"] {
        assert_eq!(out.by_id(id)["process_identity"], "unverifiable", "{id}");
    }
    assert_eq!(
        out.stderr.matches("another pid namespace").count(),
        1,
        "{}",
        out.stderr
    );
    std::fs::remove_file(run.delegation_path("a-elsewhere.json")).unwrap();
    let out = live_status(&run);
    assert_eq!(out.by_id("b-window")["process_identity"], "verified");
}

/// A thread-group leader that called `pthread_exit` shows state Z while its other thread
/// runs: the process is alive, not gone (a verdict of `gone` would finalize a running worker
/// and let it escape reclaim).
#[test]
fn a_zombie_leader_with_a_live_thread_is_alive() {
    if !have("cc") {
        eprintln!("SKIPPED: needs a C compiler (cc)");
        return;
    }
    let scratch = TempDir::new("zleader");
    let source = scratch.join("zleader.c");
    std::fs::write(
        &source,
        "#include <pthread.h>\n#include <unistd.h>\n\
         static void *work(void *a) { (void)a; for (;;) sleep(1000); return 0; }\n\
         int main(void) { pthread_t t; pthread_create(&t, 0, work, 0); pthread_exit(0); }\n",
    )
    .unwrap();
    let program = scratch.join("zleader");
    let built = std::process::Command::new("cc")
        .arg("-pthread")
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .status()
        .unwrap();
    assert!(built.success());
    let now = real_now_ms();
    let child = Proc::spawn(program.to_str().unwrap(), &[]);
    // Wait until the leader has exited (state Z) while its thread runs on.
    let stat_path = format!("/proc/{}/stat", child.pid());
    let zombie_leader = (0..200).any(|_| {
        let stat = std::fs::read_to_string(&stat_path).unwrap_or_default();
        let state = stat[stat.rfind(')').map_or(0, |i| i + 2)..].chars().next();
        if state == Some('Z') {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        false
    });
    assert!(zombie_leader, "the leader never became a zombie");
    let run = Run::new();
    run.delegation(
        "z",
        &running_pid(
            "z",
            json!(child.pid()),
            json!({"launch_requested_at": rfc3339(now - 1_000), "started_at": rfc3339(now),
                   "process_started_at": rfc3339(now), "last_progress_at": rfc3339(now)}),
        ),
    );
    let out = live_status(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_id("z"),
        json!({"process_alive": true, "process_identity": "verified", "next_action": "await_worker"}),
    );
}
