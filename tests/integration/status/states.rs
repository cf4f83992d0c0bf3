//! Records field by field: states, thresholds, child statuses.

use super::*;

#[test]
fn a_full_record_has_every_field_in_order() {
    let run = Run::new();
    run.delegation(
        "d1",
        &running(
            "d1",
            json!({"last_progress_at": at(-60_000), "started_at": at(-120_000)}),
        ),
    );
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let run_dir = run.path().to_string_lossy().into_owned();
    let expected = json!({
        "kind": "delegation",
        "run_dir": run_dir,
        "path": format!("{run_dir}/delegations/d1.json"),
        "delegation_id": "d1",
        "task_card_id": "card-1",
        "work_kind": "worker",
        "status": "running",
        "state": "stale",
        "reclaim_state": "reclaim_needed",
        "process_id": null,
        "process_alive": null,
        "process_identity": null,
        "last_progress_at": "2026-11-22T07:59:00.000Z",
        "progress_baseline": "last_progress_at",
        "elapsed_since_progress_ms": 60000,
        "quiet_after_ms": 22500,
        "stale_after_ms": 45000,
        "timeout_after_ms": 90000,
        "stale_at": "2026-11-22T07:59:00.000Z",
        "timed_out_at": null,
        "next_action": "reclaim",
        "transition": "stalled",
        "classification": "stalled",
        "recovery_action": "reclaim",
        "recovery_reason": "worker progress age 60000 ms reached the stale threshold 45000 ms",
        "summary": "stale: no progress past the stale threshold; needs reclaim",
        "needs_attention": true,
        "warnings": [],
        "activity": null,
        "stall": null
    });
    let records = out.records();
    assert_eq!(records, vec![expected.clone()]);
    // Key order is part of the format.
    let keys: Vec<&String> = records[0].as_object().unwrap().keys().collect();
    let expected_keys: Vec<&String> = expected.as_object().unwrap().keys().collect();
    assert_eq!(keys, expected_keys);
}

#[test]
fn every_state_of_a_running_worker() {
    let run = Run::new();
    run.delegation(
        "a-active",
        &running("a-active", json!({"last_progress_at": at(-1_000)})),
    );
    run.delegation(
        "b-quiet",
        &running("b-quiet", json!({"last_progress_at": at(-30_000)})),
    );
    run.delegation(
        "c-stale",
        &running("c-stale", json!({"last_progress_at": at(-45_000)})),
    );
    run.delegation(
        "d-timed-out",
        &running("d-timed-out", json!({"last_progress_at": at(-90_000)})),
    );
    run.delegation(
        "e-launching",
        &running("e-launching", json!({"launch_requested_at": at(-5_000)})),
    );
    run.delegation("f-no-baseline", &running("f-no-baseline", json!({})));
    run.delegation(
        "g-skew",
        &running("g-skew", json!({"last_progress_at": at(30_000)})),
    );
    run.delegation(
        "h-far",
        &running("h-far", json!({"last_progress_at": at(86_400_000)})),
    );
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expect = |id: &str, fields: Value| assert_fields(&out.by_id(id), fields);
    expect(
        "a-active",
        json!({"state": "running_active", "reclaim_state": "not_needed", "elapsed_since_progress_ms": 1000,
               "next_action": "await_worker", "transition": "running", "recovery_action": "wait", "warnings": []}),
    );
    expect(
        "b-quiet",
        json!({"state": "running_quiet", "transition": "quiet", "classification": "quiet", "recovery_action": "poll",
               "recovery_reason": "worker progress age 30000 ms reached the quiet threshold 22500 ms"}),
    );
    expect(
        "c-stale",
        json!({"state": "stale", "reclaim_state": "reclaim_needed", "stale_at": at(-45_000), "timed_out_at": null,
               "next_action": "reclaim", "needs_attention": true}),
    );
    expect(
        "d-timed-out",
        json!({"state": "timed_out", "reclaim_state": "reclaim_needed", "timed_out_at": at(-90_000),
               "timeout_after_ms": 90000, "transition": "reclaimable", "classification": "reclaimable",
               "recovery_reason": "worker progress age 90000 ms reached the timeout threshold 90000 ms"}),
    );
    expect(
        "e-launching",
        json!({"state": "launching", "reclaim_state": "not_needed", "progress_baseline": "launch_requested_at",
               "elapsed_since_progress_ms": 5000, "next_action": "await_worker"}),
    );
    expect(
        "f-no-baseline",
        json!({"state": "unknown", "elapsed_since_progress_ms": null, "warnings": ["no_progress_baseline"],
               "needs_attention": true, "reclaim_state": "not_needed"}),
    );
    expect(
        "g-skew",
        json!({"state": "running_active", "elapsed_since_progress_ms": 0, "warnings": ["clock_skew"]}),
    );
    expect(
        "h-far",
        json!({"state": "unknown", "elapsed_since_progress_ms": null, "warnings": ["clock_skew"],
               "reclaim_state": "not_needed", "needs_attention": true}),
    );
}

#[test]
fn thresholds_per_worker_default_and_capped() {
    let run = Run::new();
    run.delegation(
        "own-quiet",
        &running(
            "own-quiet",
            json!({"last_progress_at": at(-2_000), "quiet_after_ms": 1000}),
        ),
    );
    run.delegation(
        "plain",
        &running("plain", json!({"last_progress_at": at(-70_000)})),
    );
    let out = status(&run, &["--stale-after", "30s"]);
    assert_fields(
        &out.by_id("own-quiet"),
        json!({"state": "running_quiet", "quiet_after_ms": 1000, "stale_after_ms": 30000, "timeout_after_ms": 60000}),
    );
    assert_fields(
        &out.by_id("plain"),
        json!({"state": "timed_out", "quiet_after_ms": 15000, "stale_after_ms": 30000, "timeout_after_ms": 60000}),
    );
    let capped = status(&run, &["--stuck-after", "20s"]);
    assert_fields(
        &capped.by_id("plain"),
        json!({"state": "timed_out", "stale_after_ms": 20000, "timeout_after_ms": 20000, "quiet_after_ms": 10000}),
    );
    let out_of_order = status(&run, &["--stale-after", "30s", "--timeout-after", "10s"]);
    assert_eq!(out_of_order.code, 2);
    assert_eq!(out_of_order.stdout, "");
    assert!(
        out_of_order
            .stderr
            .contains("--timeout-after 10s is below the stale threshold 30s"),
        "{}",
        out_of_order.stderr
    );
}

#[test]
fn every_child_status_and_an_unknown_one() {
    let run = Run::new();
    let done = json!({"last_progress_at": at(-500_000)});
    run.delegation(
        "completed",
        &delegation("completed", "completed", done.clone()),
    );
    run.delegation("failed", &delegation("failed", "failed", done.clone()));
    run.delegation(
        "cancelled",
        &delegation("cancelled", "cancelled", done.clone()),
    );
    run.delegation(
        "queued",
        &delegation("queued", "queued", json!({"queued_at": at(-10)})),
    );
    run.delegation("missing", &json!({"delegation_id": "missing"}));
    run.delegation("paused", &delegation("paused", "paused", done.clone()));
    let out = status(&run, &["--check"]);
    let expect = |id: &str, fields: Value| assert_fields(&out.by_id(id), fields);
    expect(
        "completed",
        json!({"state": "returned", "reclaim_state": "resumable", "next_action": "advance", "transition": "completed", "recovery_action": "wait"}),
    );
    expect(
        "failed",
        json!({"state": "failed", "reclaim_state": "not_needed", "next_action": "none", "recovery_action": "ask_operator"}),
    );
    expect(
        "cancelled",
        json!({"state": "cancelled", "reclaim_state": "not_needed", "next_action": "none", "recovery_action": "ask_operator"}),
    );
    expect(
        "queued",
        json!({"state": "queued", "status": "queued", "next_action": "await_worker"}),
    );
    expect(
        "missing",
        json!({"state": "queued", "status": "queued", "task_card_id": null}),
    );
    expect(
        "paused",
        json!({"state": "unknown", "status": "paused", "warnings": ["unknown_status"], "needs_attention": true}),
    );
    assert_eq!(out.code, 1, "the unknown status needs attention");
}

#[test]
fn reclaimed_keeps_its_state_and_needs_nothing() {
    let run = Run::new();
    run.delegation(
        "r",
        &delegation(
            "r",
            "failed",
            json!({"state": "timed_out", "reclaim_state": "reclaimed", "last_progress_at": at(-900_000)}),
        ),
    );
    let out = status(&run, &["--check"]);
    assert_eq!(out.code, 0);
    assert_fields(
        &out.by_id("r"),
        json!({"state": "timed_out", "reclaim_state": "reclaimed", "next_action": "none",
               "recovery_action": "ask_operator", "needs_attention": false, "process_identity": null}),
    );
}
