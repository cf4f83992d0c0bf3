//! The re-check before the first signal: progressing workers, streams and documents that
//! changed, hard links, the 16 MiB bound, an orchestrator that reaps the worker.

use super::*;

/// Inside a private pid namespace: a worker that appends to its stream every second, with a
/// stale `last_progress_at` recorded, then `flatline reclaim` on its own.
const PROGRESSING_WORKER: &str = r#"
run=$1; bin=$2; stale=$3
( while :; do echo '{"type":"tick"}' >> "$run/raw-events/w.jsonl"; sleep 1; done ) &
w=$!
while [ ! -s "$run/raw-events/w.jsonl" ]; do sleep 0.05; done
s=$(cat /proc/$w/stat); s=${s##*) }; set -- $s; ticks=${20}
boot=$(cat /proc/sys/kernel/random/boot_id)
ns=$(stat -L -c %i /proc/self/ns/pid)
printf '{"delegation_id":"w","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s","process_fingerprint":{"start_ticks":%s,"boot_id":"%s","pid_ns":%s}}}\n' \
  "$w" "$stale" "$stale" "$ticks" "$boot" "$ns" > "$run/delegations/w.json"
"$bin" reclaim --format=ndjson --grace 1s "$run"; echo "exit $?"
if kill -0 "$w" 2>/dev/null; then echo "worker alive"; else echo "worker gone"; fi
kill "$w"
"#;

#[test]
fn a_worker_that_keeps_writing_its_stream_is_never_signalled_by_reclaim_alone() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    std::fs::create_dir_all(run.path().join("raw-events")).unwrap();
    let stale = rfc3339(real_now_ms() - 600_000);
    let mut command = pid_namespace_bash(PROGRESSING_WORKER);
    command.arg(run.path()).arg(bin()).arg(&stale);
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[lines.len() - 2..],
        ["exit 0", "worker alive"],
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let doc = run.read_json("delegations/w.json");
    assert_eq!(doc["child_agent"]["status"], "running");
    assert!(doc.get("reclaim").is_none());
}

/// Starts `flatline reclaim` with the debug hook that pauses it between the plan and the
/// first signal; returns once it is paused, with the pause file to remove.
fn paused_reclaim(run: &Run, extra: &[&str]) -> Option<(std::process::Child, std::path::PathBuf)> {
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: needs the test hooks of a debug build");
        return None;
    }
    let pause = run.path().join("paused");
    let mut command = Command::new(bin());
    command
        .args(["reclaim", "--format=ndjson", "--grace", "10s"])
        .args(extra)
        .arg(run.arg())
        .env("FLATLINE_TEST_PAUSE_BEFORE_SIGNAL", &pause);
    let child = start(&mut command);
    let began = Instant::now();
    while !pause.exists() {
        assert!(began.elapsed() < HANG_GUARD, "flatline never paused");
        std::thread::sleep(Duration::from_millis(5));
    }
    Some((child, pause))
}

#[test]
fn a_stream_written_between_the_plan_and_the_signal_drops_the_target() {
    let worker = Proc::sleep();
    let run = Run::new();
    let stream = run.write("raw-events/p.jsonl", "{\"type\":\"tick\"}\n");
    set_mtime_ms(&stream, real_now_ms() - 400_000);
    run.delegation("p", &stale_delegation("p", &worker));
    let Some((child, pause)) = paused_reclaim(&run, &[]) else {
        return;
    };
    let before = run.read("delegations/p.json");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&stream)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"type\":\"tick\"}\n"))
        .unwrap();
    std::fs::remove_file(&pause).unwrap();
    let out = finish(child, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("p"),
        json!({"action": "skipped", "outcome": "not_written", "termination": "progressed"}),
    );
    assert!(alive(worker.pid()), "nothing is signalled");
    assert_eq!(run.read("delegations/p.json"), before, "nothing is written");
}

#[test]
fn a_document_that_moved_between_the_plan_and_the_signal_drops_the_target() {
    let worker = Proc::sleep();
    let run = Run::new();
    let mut doc = stale_delegation("m", &worker);
    run.delegation("m", &doc);
    let Some((child, pause)) = paused_reclaim(&run, &[]) else {
        return;
    };
    doc["worker_lifecycle"]["last_progress_at"] = json!(rfc3339(real_now_ms()));
    run.delegation("m", &doc);
    std::fs::remove_file(&pause).unwrap();
    let out = finish(child, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("m"),
        json!({"action": "skipped", "termination": "progressed"}),
    );
    assert!(alive(worker.pid()), "nothing is signalled");
}

#[test]
fn a_hard_linked_delegation_is_never_signalled_for() {
    let worker = Proc::sleep();
    let run = Run::new();
    let path = run.delegation("h", &stale_delegation("h", &worker));
    std::fs::hard_link(&path, run.path().join("second-name")).unwrap();
    let out = reclaim(&run, &["--grace", "10s"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(alive(worker.pid()), "no signal for what cannot be recorded");
    assert!(run.read_json("delegations/h.json").get("reclaim").is_none());
}

#[test]
fn a_delegation_hard_linked_after_the_plan_is_skipped_unrecordable() {
    let worker = Proc::sleep();
    let run = Run::new();
    let path = run.delegation("l", &stale_delegation("l", &worker));
    let Some((child, pause)) = paused_reclaim(&run, &[]) else {
        return;
    };
    std::fs::hard_link(&path, run.path().join("second-name")).unwrap();
    std::fs::remove_file(&pause).unwrap();
    let out = finish(child, HANG_GUARD);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_fields(
        &out.by_action("l"),
        json!({"action": "skipped", "termination": "skipped_unrecordable"}),
    );
    assert!(
        out.stderr.contains("skipped_unrecordable"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("2 hard links"), "{}", out.stderr);
    assert!(alive(worker.pid()), "nothing is signalled");
}

#[test]
fn a_document_at_the_16_mib_bound_is_never_signalled_for() {
    const MAX: usize = 16 * 1024 * 1024;
    let worker = Proc::sleep();
    let run = Run::new();
    let mut doc = stale_delegation("big", &worker);
    doc["padding"] = json!("");
    let base = serde_json::to_vec_pretty(&doc).unwrap().len() + 1;
    doc["padding"] = json!("x".repeat(MAX - 200 - base));
    let path = run.delegation("big", &doc);
    assert!(std::fs::metadata(&path).unwrap().len() as usize <= MAX);
    let before = run.read("delegations/big.json");
    let out = reclaim(&run, &["--grace", "10s"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_fields(
        &out.by_action("big"),
        json!({"action": "skipped", "termination": "skipped_unrecordable"}),
    );
    assert!(alive(worker.pid()), "nothing is signalled");
    assert_eq!(run.read("delegations/big.json"), before);
}

#[test]
fn an_orchestrator_that_reaps_the_worker_during_the_grace_keeps_its_status_and_the_record_lands() {
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: needs the test hooks of a debug build");
        return;
    }
    // The worker dies on SIGTERM; a descendant that ignores it keeps flatline in the grace.
    let worker = Shell::start("(trap '' TERM; exec sleep 300) & echo ready; exec sleep 300");
    assert_eq!(worker.line, "ready");
    let run = Run::new();
    let mut doc = stale_delegation("o", &worker.proc);
    run.delegation("o", &doc);
    let mut command = Command::new(bin());
    command
        .args(["reclaim", "--format=ndjson", "--grace", "3s"])
        .arg(run.arg())
        // Ten more rewrites at the moment flatline replaces the file: far past 3 conflicts.
        .env("FLATLINE_TEST_INTERFERE", "o.json:10");
    let child = start(&mut command);
    let began = Instant::now();
    while alive(worker.proc.pid()) {
        assert!(
            began.elapsed() < HANG_GUARD,
            "the worker was never signalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The orchestrator reaps its child and records the end, during flatline's grace.
    doc["child_agent"]["status"] = json!("failed");
    doc["executor"]["status"] = json!("failed");
    doc["worker_lifecycle"]["state"] = json!("failed");
    doc["worker_lifecycle"]["exit_signal"] = json!(15);
    doc["latest_failure"] = json!({"stage": "orchestrator", "reason": "reaped"});
    doc["orchestrator_note"] = json!("reaped during the grace");
    run.delegation("o", &doc);
    let out = finish(child, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("o"),
        json!({"action": "reclaimed", "outcome": "written", "termination": "terminated"}),
    );
    let written = run.read_json("delegations/o.json");
    assert_eq!(written["child_agent"]["status"], "failed");
    assert_eq!(written["worker_lifecycle"]["state"], "failed");
    assert_eq!(written["worker_lifecycle"]["exit_signal"], 15);
    assert_eq!(written["worker_lifecycle"]["reclaim_state"], "reclaimed");
    assert_eq!(written["latest_failure"], doc["latest_failure"]);
    assert_eq!(written["orchestrator_note"], "reaped during the grace");
    assert_eq!(
        written["test_interference"], 10,
        "every rewrite was merged into"
    );
    assert_eq!(written["reclaim"]["termination"], "terminated");
}
