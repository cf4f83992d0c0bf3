//! `flatline fan-in`: readiness, the collapse stamp written once, envelopes and lanes.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;

fn fan_in(run: &Run, extra: &[&str]) -> Outcome {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("fan-in"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--now"),
        OsStr::new(NOW),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.push(run.arg());
    flatline(args)
}

fn member(id: &str, card: &str, status: &str, thread: Option<&str>) -> Value {
    let mut doc = delegation(id, status, json!({"last_progress_at": at(-10_000)}));
    doc["task_card_id"] = json!(card);
    if let Some(thread) = thread {
        doc["worker_result"] = json!({"status": status, "thread_id": thread});
    }
    doc
}

#[test]
fn a_card_whose_workers_are_all_done_collapses_once() {
    let run = Run::new();
    run.delegation("a", &member("a", "c1", "completed", Some("t-a")));
    run.delegation("b", &member("b", "c1", "failed", None));
    run.delegation("c", &member("c", "c1", "completed", Some("t-c")));
    let out = fan_in(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.records(),
        vec![json!({
            "kind": "fan_in", "run_dir": run.path().to_string_lossy(), "task_card_id": "c1", "ready": true,
            "outcome": "collapsed", "collapsed_at": at(0), "completed": 2, "failed": 1, "cancelled": 0,
            "summary": "Collapsed fan-in after terminal worker results (2 completed, 1 failed, 0 cancelled).",
            "thread_ids": ["t-a", "t-c"]
        })]
    );
    for id in ["a", "b", "c"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert_eq!(doc["fan_in_collapsed_at"], at(0));
        assert_eq!(doc["updated_at"], at(0));
    }
    // A second run reports the stored time and writes nothing.
    let before: Vec<Vec<u8>> = ["a", "b", "c"]
        .iter()
        .map(|id| run.read(&format!("delegations/{id}.json")))
        .collect();
    let again = fan_in(&run, &["--now", &at(60_000)]);
    assert_eq!(again.code, 0);
    assert_fields(
        &again.records()[0],
        json!({"outcome": "already_collapsed", "collapsed_at": at(0), "completed": 2, "failed": 1}),
    );
    let after: Vec<Vec<u8>> = ["a", "b", "c"]
        .iter()
        .map(|id| run.read(&format!("delegations/{id}.json")))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_running_worker_holds_the_card_and_only_a_named_card_fails_the_run() {
    let run = Run::new();
    run.delegation("a", &member("a", "c1", "completed", None));
    run.delegation("b", &member("b", "c1", "running", None));
    let before = run.read("delegations/a.json");
    let out = fan_in(&run, &[]);
    assert_eq!(
        out.code, 0,
        "a card that is simply not ready is not an error"
    );
    assert_eq!(
        out.records(),
        vec![
            json!({"kind": "fan_in", "run_dir": run.path().to_string_lossy(), "task_card_id": "c1",
                    "ready": false, "active": 1})
        ]
    );
    assert_eq!(run.read("delegations/a.json"), before);
    assert_eq!(fan_in(&run, &["--task-card", "c1"]).code, 1);
    let missing = fan_in(&run, &["--task-card", "nope"]);
    assert_eq!(missing.code, 1);
    assert_fields(
        &missing.records()[0],
        json!({"task_card_id": "nope", "ready": false, "active": 0,
               "warnings": ["no delegation and no task card document"]}),
    );
}

#[test]
fn an_unknown_status_is_active_and_says_why() {
    let run = Run::new();
    run.delegation("a", &member("a", "c1", "completed", None));
    run.delegation("b", &member("b", "c1", "paused", None));
    let out = fan_in(&run, &[]);
    assert_eq!(
        out.records()[0]["warnings"],
        json!(["unknown_status: delegation b has status 'paused' and counts as active"])
    );
    assert_fields(&out.records()[0], json!({"ready": false, "active": 1}));
}

#[test]
fn envelope_statuses_of_cards_without_delegations() {
    let run = Run::new();
    for (card, status) in [
        ("p", "passed"),
        ("q", "canceled"),
        ("r", "error"),
        ("s", " Completed "),
        ("t", "thinking"),
    ] {
        run.write(
            &format!("task-cards/{card}.json"),
            serde_json::to_vec_pretty(&json!({"task_card_id": card, "title": "keep", "worker_result_envelope": {"status": status}})).unwrap(),
        );
    }
    let out = fan_in(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let by_card = |id: &str| {
        out.records()
            .into_iter()
            .find(|r| r["task_card_id"] == id)
            .unwrap()
    };
    assert_fields(
        &by_card("p"),
        json!({"ready": true, "completed": 1, "failed": 0, "cancelled": 0, "outcome": "collapsed"}),
    );
    assert_fields(
        &by_card("q"),
        json!({"ready": true, "completed": 0, "failed": 0, "cancelled": 1}),
    );
    assert_fields(
        &by_card("r"),
        json!({"ready": true, "completed": 0, "failed": 1, "cancelled": 0}),
    );
    assert_fields(&by_card("s"), json!({"ready": true, "completed": 1}));
    assert_fields(
        &by_card("t"),
        json!({"ready": false, "warnings": ["worker_result_envelope status 'thinking' is not terminal"]}),
    );
    // The card document itself is stamped, once.
    let doc = run.read_json("task-cards/p.json");
    assert_eq!(doc["fan_in_collapsed_at"], at(0));
    assert_eq!(doc["title"], "keep");
    assert!(
        run.read_json("task-cards/t.json")
            .get("fan_in_collapsed_at")
            .is_none()
    );
    let before = run.read("task-cards/p.json");
    let again = fan_in(&run, &["--now", &at(1_000)]);
    assert_fields(
        &again
            .records()
            .into_iter()
            .find(|r| r["task_card_id"] == "p")
            .unwrap(),
        json!({"outcome": "already_collapsed", "collapsed_at": at(0)}),
    );
    assert_eq!(run.read("task-cards/p.json"), before);
}

#[test]
fn required_lanes_gate_the_collapse() {
    let run = Run::new();
    run.delegation("a", &member("a", "c1", "completed", Some("t")));
    let card = |b_status: &str| {
        json!({"task_card_id": "c1", "parallel_fanout": {
            "required_lane_ids": ["lane-a", "lane-b"],
            "lanes": {"lane-a": {"lifecycle": {"status": "merged"}}, "lane-b": {"lifecycle": {"status": b_status}}}
        }})
    };
    run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(&card("running")).unwrap(),
    );
    let waiting = fan_in(&run, &[]);
    assert_fields(
        &waiting.records()[0],
        json!({"ready": false, "active": 0, "waiting_lanes": ["lane-b"]}),
    );
    assert!(
        run.read_json("delegations/a.json")
            .get("fan_in_collapsed_at")
            .is_none()
    );
    run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(&card("completed")).unwrap(),
    );
    let ready = fan_in(&run, &[]);
    assert_fields(
        &ready.records()[0],
        json!({"ready": true, "outcome": "collapsed", "thread_ids": ["t"]}),
    );
    assert_eq!(
        run.read_json("delegations/a.json")["fan_in_collapsed_at"],
        at(0)
    );
}

/// `parallel_fanout.lanes` as the orchestrator writes it: an array of lane objects
/// (issue 13 item 9).
#[test]
fn required_lanes_written_as_an_array_of_lane_objects_gate_the_collapse() {
    let run = Run::new();
    run.delegation("a", &member("a", "c1", "completed", Some("t")));
    let card = |b_status: &str| {
        json!({"task_card_id": "c1", "parallel_fanout": {
            "required_lane_ids": ["lane-a", "lane-b"],
            "lanes": [
                {"lane_id": "lane-a", "required": true, "scope": "src/a",
                 "lifecycle": {"status": "merged", "updated_at": at(-5_000)}, "fan_in": {"ready": true}},
                {"lane_id": " lane-b ", "required": true, "scope": "src/b",
                 "lifecycle": {"status": b_status}, "fan_in": {"ready": false}}
            ]
        }})
    };
    run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(&card("running")).unwrap(),
    );
    let waiting = fan_in(&run, &[]);
    assert_eq!(waiting.code, 0, "{}", waiting.stderr);
    assert_fields(
        &waiting.records()[0],
        json!({"ready": false, "active": 0, "waiting_lanes": ["lane-b"]}),
    );
    assert!(
        run.read_json("delegations/a.json")
            .get("fan_in_collapsed_at")
            .is_none()
    );
    run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(&card("completed")).unwrap(),
    );
    let ready = fan_in(&run, &[]);
    assert_fields(
        &ready.records()[0],
        json!({"ready": true, "outcome": "collapsed", "thread_ids": ["t"]}),
    );
}

#[test]
fn task_card_limits_refresh_reclaim_and_fan_in() {
    let run = Run::new();
    let stream = "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"ok\",\"session_id\":\"s\"}\n";
    for (id, card) in [("a", "c1"), ("b", "c2")] {
        let mut doc = member(id, card, "running", None);
        doc["worker_lifecycle"]["last_progress_at"] = json!(at(-600_000));
        run.delegation(id, &doc);
        // a's stream is news to refresh; b's is as old as its recorded progress, so that b
        // stays a reclaim target (a fresh stream is progress, SPEC §2).
        let path = run.write(&format!("raw-events/{id}.jsonl"), stream);
        set_mtime_ms(&path, NOW_MS - if id == "a" { 1_000 } else { 600_000 });
    }
    let refresh = flatline([
        OsStr::new("refresh"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--now"),
        OsStr::new(NOW),
        OsStr::new("--task-card"),
        OsStr::new("c1"),
        run.arg(),
    ]);
    assert_eq!(refresh.code, 0, "{}", refresh.stderr);
    let ids: Vec<Value> = refresh
        .records()
        .iter()
        .map(|r| r["delegation_id"].clone())
        .collect();
    assert_eq!(ids, [json!("a")]);
    assert_eq!(
        run.read_json("delegations/b.json")["child_agent"]["status"],
        "running"
    );
    // reclaim (dry run) sees only c2's worker when asked for c2.
    let reclaim = flatline([
        OsStr::new("reclaim"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--dry-run"),
        OsStr::new("--task-card=c2"),
        run.arg(),
    ]);
    let ids: Vec<Value> = reclaim
        .records()
        .iter()
        .map(|r| r["delegation_id"].clone())
        .collect();
    assert_eq!(ids, [json!("b")]);
    let fan = fan_in(&run, &["--task-card", "c1"]);
    let cards: Vec<Value> = fan
        .records()
        .iter()
        .map(|r| r["task_card_id"].clone())
        .collect();
    assert_eq!(cards, [json!("c1")]);
    assert_eq!(fan.code, 0, "c1 is complete: {}", fan.stderr);
    assert!(
        run.read_json("delegations/b.json")
            .get("fan_in_collapsed_at")
            .is_none()
    );
}

/// A not-ready record counts only members active on disk after the run's own writes
/// (SPEC §3.4, issue 13 item 8): two stale workers without a process are marked reclaimed
/// by this sweep, so only the queued one is still active.
#[test]
fn sweep_counts_as_active_only_what_is_active_after_its_writes() {
    let run = Run::new();
    let stale = |id: &str| {
        let mut doc = delegation(
            id,
            "running",
            json!({"started_at": rfc3339(real_now_ms() - 900_000),
                   "last_progress_at": rfc3339(real_now_ms() - 600_000)}),
        );
        doc["task_card_id"] = json!("c1");
        doc
    };
    run.delegation("s1", &stale("s1"));
    run.delegation("s2", &stale("s2"));
    run.delegation("q", &member("q", "c1", "queued", None));
    run.delegation("done", &member("done", "c1", "completed", None));
    let out = flatline([
        std::ffi::OsStr::new("sweep"),
        std::ffi::OsStr::new("--format=ndjson"),
        // A card that is simply not ready is printed only with --all (SPEC §7).
        std::ffi::OsStr::new("--all"),
        run.arg(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for id in ["s1", "s2"] {
        assert_eq!(
            run.read_json(&format!("delegations/{id}.json"))["worker_lifecycle"]["reclaim_state"],
            "reclaimed",
            "{}",
            out.stdout
        );
    }
    let record = out
        .records()
        .into_iter()
        .find(|r| r["kind"] == "fan_in")
        .unwrap_or_else(|| panic!("no fan_in record: {}", out.stdout));
    assert_fields(
        &record,
        json!({"task_card_id": "c1", "ready": false, "active": 1}),
    );
}
