//! `--delegation ID` (SPEC §13): status, refresh and reclaim look at delegations/ID.json
//! only (the file name picks it), and leave heartbeat workers out.

use crate::support::*;
use serde_json::json;

const CODEX_SUCCESS: &str = include_str!("../fixtures/streams/codex-exec-commands.jsonl");

#[test]
fn status_and_refresh_act_on_the_named_delegations_only() {
    let run = Run::new();
    for id in ["a", "b", "c"] {
        let mut doc = delegation(
            id,
            "running",
            json!({"started_at": at(-120_000), "last_progress_at": at(-60_000)}),
        );
        doc["worker_launch_evidence"] =
            json!({"raw_events_file": format!("raw-events/{id}.jsonl")});
        run.delegation(id, &doc);
        let stream = run.write(&format!("raw-events/{id}.jsonl"), CODEX_SUCCESS);
        set_mtime_ms(&stream, NOW_MS - 10_000);
    }
    // "b.json" claims to be "x": the file name decides (x.json names nothing).
    let mut liar = run.read_json("delegations/b.json");
    liar["delegation_id"] = json!("x");
    write_json(&run.delegation_path("b.json"), &liar);
    run.write(
        "workers/w/worker-spec.json",
        br#"{"name":"w","heartbeat":"heartbeat.json"}"#,
    );
    let out = status(
        &run,
        &[
            "--delegation",
            "a",
            "--delegation",
            "c",
            "--delegation",
            "x",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let paths: Vec<String> = out
        .records()
        .iter()
        .map(|r| r["path"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        paths,
        [
            run.delegation_path("a.json").to_string_lossy().to_string(),
            run.delegation_path("c.json").to_string_lossy().to_string()
        ]
    );
    let out = flatline([
        "refresh",
        "--format",
        "ndjson",
        "--now",
        NOW,
        "--delegation",
        "c",
        run.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let records = out.records();
    assert_eq!(records.len(), 1, "{}", out.stdout);
    assert_eq!(records[0]["delegation_id"], "c");
    assert_eq!(records[0]["action"], "finalized");
    assert_eq!(
        run.read_json("delegations/a.json")["child_agent"]["status"],
        "running"
    );
    assert_eq!(
        run.read_json("delegations/c.json")["child_agent"]["status"],
        "completed"
    );
    // Not a file name: a usage error, before anything is read.
    let out = status(&run, &["--delegation", "../b"]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn attention_prints_only_what_needs_a_person_and_problems_as_records() {
    let run = Run::new();
    run.delegation("done", &delegation("done", "completed", json!({})));
    run.delegation(
        "fresh",
        &delegation(
            "fresh",
            "running",
            json!({"started_at": at(-5_000), "last_progress_at": at(-1_000)}),
        ),
    );
    run.delegation(
        "stuck",
        &delegation(
            "stuck",
            "running",
            json!({"started_at": at(-3_600_000), "last_progress_at": at(-3_600_000)}),
        ),
    );
    run.write("delegations/broken.json", b"{\"delegation_id\": ");
    let out = status(&run, &["--attention"]);
    assert_eq!(out.code, 3, "{out:?}");
    let records = out.records();
    let kinds: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["delegation_id"].as_str().or(r["path"].as_str()).unwrap(),
            )
        })
        .collect();
    let broken = run
        .delegation_path("broken.json")
        .to_string_lossy()
        .to_string();
    assert_eq!(
        kinds,
        [("delegation", "stuck"), ("problem", broken.as_str())],
        "{}",
        out.stdout
    );
    assert_eq!(records[1]["run_dir"], run.path().to_string_lossy().as_ref());
    assert!(
        records[1]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{}",
        records[1]
    );
    // The problem is still said on stderr, as without --attention.
    assert!(out.stderr.contains("broken.json"), "{}", out.stderr);
    // Nothing needs a person: nothing is printed.
    let quiet = Run::new();
    quiet.delegation("done", &delegation("done", "completed", json!({})));
    let out = status(&quiet, &["--attention"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
}

#[test]
fn sweep_with_delegation_finalizes_it_and_judges_no_card() {
    let run = Run::new();
    let now = real_now_ms();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let mut finishing = delegation(
        "a",
        "running",
        json!({"process_id": pid, "started_at": rfc3339(now - 120_000), "last_progress_at": rfc3339(now - 60_000)}),
    );
    finishing["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/a.jsonl"});
    run.delegation("a", &finishing);
    let stream = run.write("raw-events/a.jsonl", CODEX_SUCCESS);
    set_mtime_ms(&stream, now - 10_000);
    run.delegation("b", &delegation("b", "completed", json!({})));
    let sweep = |extra: &[&str]| {
        let mut args = vec!["sweep", "--format", "ndjson"];
        args.extend_from_slice(extra);
        args.push(run.path().to_str().unwrap());
        flatline(args)
    };
    let out = sweep(&["--delegation", "a"]);
    assert_eq!(out.code, 0, "{out:?}");
    let kinds: Vec<(String, String)> = out
        .records()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or("").into(),
                r["delegation_id"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("action".to_string(), "a".to_string())],
        "{}",
        out.stdout
    );
    // Both members are done now, but only a sweep that sees the whole card collapses it.
    assert!(
        run.read_json("delegations/b.json")
            .get("fan_in_collapsed_at")
            .is_none()
    );
    let out = sweep(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.records().iter().any(|r| r["kind"] == "fan_in"),
        "{}",
        out.stdout
    );
}

/// `explain --delegation ID` explains the named delegation whether it needs attention or
/// not, and only it; without it, explain picks the ones that need attention.
#[test]
fn explain_explains_the_named_delegation_even_when_nothing_is_wrong() {
    let run = Run::new();
    run.delegation("done", &delegation("done", "completed", json!({})));
    let stale = delegation(
        "stale",
        "running",
        json!({"started_at": at(-3_600_000), "last_progress_at": at(-3_600_000)}),
    );
    run.delegation("stale", &stale);
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            run.path().to_str().unwrap(),
            "--format",
            "ndjson",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--now", NOW]);
        flatline(args)
    };
    let ids = |out: &Outcome| -> Vec<String> {
        out.stdout
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .map(|record| record["delegation_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let named = explain(&["--delegation", "done"]);
    assert_eq!(named.code, 0, "{}", named.stderr);
    assert_eq!(ids(&named), ["done"], "{}", named.stdout);
    let default = explain(&[]);
    assert_eq!(ids(&default), ["stale"], "{}", default.stdout);
}
