//! SPEC §10 defects of the seeds that no other suite pins down by itself.

use crate::support::*;
use serde_json::json;

/// §10: "liveness by spawning `kill -0` per worker". flatline reads `/proc` and pidfds: a
/// status over twenty live workers executes nothing but itself and forks no process
/// (its reader threads are `CLONE_THREAD`).
#[test]
fn liveness_is_read_from_proc_never_by_spawning_kill() {
    if !have("strace") {
        eprintln!("SKIPPED: needs strace");
        return;
    }
    let workers: Vec<Proc> = (0..20).map(|_| Proc::sleep()).collect();
    let now = real_now_ms();
    let run = Run::new();
    for (i, worker) in workers.iter().enumerate() {
        let id = format!("w{i:02}");
        run.delegation(
            &id,
            &delegation(
                &id,
                "running",
                json!({"process_id": worker.pid(), "launch_requested_at": rfc3339(now - 1_000),
                       "started_at": rfc3339(now), "last_progress_at": rfc3339(now)}),
            ),
        );
    }
    let trace = run.path().join("strace.out");
    let mut command = std::process::Command::new("strace");
    command
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=execve,fork,vfork,clone,clone3",
            "-o",
        ])
        .arg(&trace)
        .arg(bin())
        .args(["status", "--format=ndjson"])
        .arg(run.arg());
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.records().len(), 20);
    for record in out.records() {
        assert_eq!(
            (&record["process_alive"], &record["process_identity"]),
            (&json!(true), &json!("verified")),
            "{record}"
        );
    }
    let transcript = std::fs::read_to_string(&trace).unwrap();
    let execs = transcript.lines().filter(|l| l.contains("execve(")).count();
    assert_eq!(execs, 1, "flatline executed something:\n{transcript}");
    for line in transcript.lines() {
        let creates = ["fork(", "vfork(", "clone(", "clone3("].iter().any(|call| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|w| w.starts_with(call))
        });
        if creates {
            assert!(
                line.contains("CLONE_THREAD"),
                "a process was forked: {line}"
            );
        }
    }
}
