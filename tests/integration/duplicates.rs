//! `duplicate_delegation_id` (SPEC §13): `--delegation ID` names `delegations/ID.json`; a
//! second file claiming the same `delegation_id` is a problem for every command that takes
//! `--delegation` (a stderr line naming both files and the fix, a problem record with
//! `--attention`, exit 1), and no writing command acts on either file. finalize and
//! `reclaim --force` are tested in their own files.

use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;

const CODEX_SUCCESS: &str = include_str!("../fixtures/streams/codex-exec-commands.jsonl");

/// A running worker without a process id, past every threshold, whose stream ended with a
/// terminal event: refresh would finalize it, reclaim and sweep would close it.
fn twins(run: &Run) {
    let now = real_now_ms();
    let mut doc = delegation(
        "twin",
        "running",
        json!({"started_at": rfc3339(now - 3_600_000), "last_progress_at": rfc3339(now - 3_600_000)}),
    );
    doc["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/twin.jsonl"});
    run.delegation("twin", &doc);
    run.delegation("twin-copy", &doc);
    let stream = run.write("raw-events/twin.jsonl", CODEX_SUCCESS);
    set_mtime_ms(&stream, now - 600_000);
}

fn said(out: &Outcome, run: &Run) {
    let line = out
        .stderr_lines()
        .into_iter()
        .find(|l| l.contains("duplicate_delegation_id"))
        .unwrap_or_else(|| panic!("no duplicate_delegation_id line: {out:?}"));
    for file in ["twin.json", "twin-copy.json"] {
        let path = run.delegation_path(file);
        assert!(line.contains(path.to_str().unwrap()), "{line}");
    }
    assert!(line.contains("acts on neither"), "{line}");
}

#[test]
fn status_says_the_duplicate_and_prints_it_as_a_problem_with_attention() {
    let run = Run::new();
    twins(&run);
    run.delegation("other", &delegation("other", "queued", json!({})));
    let out = status(&run, &["--delegation", "twin", "--attention"]);
    assert_eq!(out.code, 1, "{out:?}");
    said(&out, &run);
    let records = out.records();
    let kinds: Vec<&str> = records.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, ["delegation", "problem"], "{}", out.stdout);
    let problem = &records[1];
    let twin = run.delegation_path("twin.json");
    assert_eq!(problem["path"], twin.to_str().unwrap());
    let message = problem["message"].as_str().unwrap();
    assert!(message.starts_with("duplicate_delegation_id"), "{message}");
    assert!(message.contains("twin-copy.json"), "{message}");
    // Without --attention: the record, the stderr line, exit 1.
    let out = status(&run, &["--delegation", "twin"]);
    assert_eq!(out.code, 1, "{out:?}");
    said(&out, &run);
    assert_eq!(out.records().len(), 1, "{}", out.stdout);
    // Another delegation alone, and status without --delegation, are not concerned.
    let out = status(&run, &["--delegation", "other"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("duplicate"), "{}", out.stderr);
}

/// `command --delegation twin` inside a private pid namespace (reclaim and sweep may signal).
fn writer(run: &Run, command: &str) -> Outcome {
    let script = format!(r#""$1" {command} --format ndjson --delegation twin "$2""#);
    let mut shell = pid_namespace_bash(&script);
    shell.arg(bin()).arg(run.path());
    run_command(&mut shell, Duration::from_secs(60))
}

#[test]
fn refresh_reclaim_and_sweep_act_on_neither_file() {
    if !is_root() || !have("unshare") {
        eprintln!("skipped: needs root and unshare");
        return;
    }
    for command in ["refresh", "reclaim", "sweep"] {
        let run = Run::new();
        twins(&run);
        let before: Vec<Vec<u8>> = ["twin.json", "twin-copy.json"]
            .iter()
            .map(|f| run.read(&format!("delegations/{f}")))
            .collect();
        let out = writer(&run, command);
        assert_eq!(out.code, 1, "{command}: {out:?}");
        said(&out, &run);
        let about_twin: Vec<Value> = out
            .records()
            .into_iter()
            .filter(|r| r["delegation_id"] == "twin")
            .collect();
        assert_eq!(about_twin, Vec::<Value>::new(), "{command}");
        assert_eq!(run.read("delegations/twin.json"), before[0], "{command}");
        assert_eq!(
            run.read("delegations/twin-copy.json"),
            before[1],
            "{command}"
        );
        // The copy claims another id: the same command now closes the named one.
        let mut copy = run.read_json("delegations/twin-copy.json");
        copy["delegation_id"] = json!("copy");
        write_json(&run.delegation_path("twin-copy.json"), &copy);
        let out = writer(&run, command);
        assert_eq!(out.code, 0, "{command}: {out:?}");
        assert!(!out.stderr.contains("duplicate"), "{}", out.stderr);
        let doc = run.read_json("delegations/twin.json");
        assert_ne!(
            doc["child_agent"]["status"], "running",
            "{command}: {doc:#}"
        );
        assert_eq!(
            run.read_json("delegations/twin-copy.json")["child_agent"]["status"],
            "running",
            "{command}"
        );
    }
}
