//! `flatline finalize` (SPEC §13): an operator closes a delegation that can never be
//! verified, without a signal, so that the next sweep is clean.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

/// Runs in a private pid namespace (pid 1 there is this script): a sweep, the operator's
/// finalize of the delegation that names pid 1, and a sweep again.
const SCRIPT: &str = r##"
bin=$1; run=$2
"$bin" sweep --format ndjson "$run"; echo "#exit $?"
"$bin" finalize "$run" --delegation pid-one --as failed --note "pid 1 written by a broken orchestrator" --format ndjson; echo "#exit $?"
"$bin" sweep --format ndjson "$run"; echo "#exit $?"
"##;

#[test]
fn finalize_closes_a_pid_1_delegation_so_the_next_sweep_exits_0() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    let now = real_now_ms();
    let mut doc = delegation(
        "pid-one",
        "running",
        json!({"process_id": 1, "started_at": rfc3339(now - 3_600_000), "last_progress_at": rfc3339(now - 3_600_000)}),
    );
    doc.as_object_mut().unwrap().remove("task_card_id");
    run.delegation("pid-one", &doc);
    let mut command = pid_namespace_bash(SCRIPT);
    command.arg(bin()).arg(run.path());
    let out = run_command(&mut command, Duration::from_secs(60));
    let exits: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("#exit"))
        .collect();
    assert_eq!(
        exits,
        ["#exit 1", "#exit 0", "#exit 0"],
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let finalized: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .filter(|l| l.contains("\"command\":\"finalize\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(finalized.len(), 1, "{}", out.stdout);
    assert_eq!(finalized[0]["action"], "finalized");
    assert_eq!(finalized[0]["outcome"], "written");
    assert_eq!(finalized[0]["reason"], "operator");
    let doc = run.read_json("delegations/pid-one.json");
    assert_eq!(doc["child_agent"]["status"], "failed", "{doc}");
    assert_eq!(doc["executor"]["status"], "failed", "{doc}");
    assert_eq!(doc["worker_lifecycle"]["state"], "failed");
    assert_eq!(doc["worker_lifecycle"]["reclaim_state"], "not_needed");
    assert_eq!(doc["latest_failure"]["reason"], "operator");
    assert!(
        doc["latest_failure"]["summary"]
            .as_str()
            .unwrap()
            .ends_with(": pid 1 written by a broken orchestrator")
    );
    // Nothing was ever signalled: the delegation's pid stays as it was written.
    assert_eq!(doc["worker_lifecycle"]["process_id"], 1);
}

#[test]
fn finalize_refuses_duplicates_unknown_ids_and_missing_options() {
    let run = Run::new();
    let running = delegation(
        "d1",
        "running",
        json!({"process_id": 4_000_000, "started_at": at(-60_000)}),
    );
    run.delegation("d1", &running);
    run.delegation("copy", &running);
    let before = run.read("delegations/d1.json");
    let dir = run.path().to_str().unwrap();
    let out = flatline([
        "finalize",
        dir,
        "--delegation",
        "d1",
        "--as",
        "cancelled",
        "--now",
        NOW,
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("duplicate_delegation_id"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("copy.json"), "{}", out.stderr);
    assert_eq!(run.read("delegations/d1.json"), before);
    let out = flatline(["finalize", dir, "--delegation", "nope", "--as", "failed"]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = flatline(["finalize", dir, "--delegation", "d1"]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = flatline(["finalize", dir, "--delegation", "d1", "--as", "done"]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = flatline(["finalize", dir, "--delegation", "../d1", "--as", "failed"]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn finalize_leaves_a_terminal_delegation_alone_and_cancels_a_running_one() {
    let run = Run::new();
    run.delegation("done", &delegation("done", "completed", json!({})));
    run.delegation(
        "live",
        &delegation("live", "running", json!({"process_id": 4_000_000})),
    );
    let dir = run.path().to_str().unwrap();
    let before = run.read("delegations/done.json");
    let out = flatline(["finalize", dir, "--delegation", "done", "--as", "failed"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(run.read("delegations/done.json"), before);
    let out = flatline([
        "finalize",
        dir,
        "--delegation",
        "live",
        "--as",
        "cancelled",
        "--now",
        NOW,
        "--format",
        "ndjson",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let doc = run.read_json("delegations/live.json");
    assert_eq!(doc["child_agent"]["status"], "cancelled");
    assert_eq!(doc["updated_at"], "2026-11-22T08:00:00.000Z");
    assert_eq!(
        doc["latest_failure"]["summary"],
        "Finalized as cancelled by an operator with flatline finalize."
    );
}
