//! Other pid namespaces, clock steps, launches after the start, zombie leaders.

use super::*;

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
