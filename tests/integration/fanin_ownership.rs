//! Fan-in ownership (issue 12 classes 6 and 13, SPEC §3.4 second paragraph), played as an
//! attacker: root owns the task card and its members; files of uid 65534 (an agent) try to
//! lift the card's lane gate, join the card, inject a thread id, or get root's delegations
//! stamped. The test runs as root and hands the attacker's files to 65534 with chown.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const AGENT: u32 = 65534;

fn fan_in(run: &Run) -> Outcome {
    flatline([
        OsStr::new("fan-in"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--now"),
        OsStr::new(NOW),
        run.arg(),
    ])
}

fn sweep(run: &Run) -> Outcome {
    flatline([
        OsStr::new("sweep"),
        OsStr::new("--format=ndjson"),
        run.arg(),
    ])
}

fn member(id: &str, card: &str, status: &str, thread: Option<&str>) -> Value {
    let mut doc = delegation(id, status, json!({"last_progress_at": at(-10_000)}));
    doc["task_card_id"] = json!(card);
    if let Some(thread) = thread {
        doc["worker_result"] = json!({"status": status, "thread_id": thread});
    }
    doc
}

fn give_to_agent(path: &Path) {
    std::os::unix::fs::lchown(path, Some(AGENT), Some(AGENT)).unwrap();
}

/// A root card whose required lane `lane-b` is still running.
fn gated_card(id: &str) -> Value {
    json!({
        "task_card_id": id,
        "parallel_fanout": {
            "required_lane_ids": ["lane-a", "lane-b"],
            "lanes": [
                {"lane_id": "lane-a", "required": true, "lifecycle": {"status": "completed"}},
                {"lane_id": "lane-b", "required": true, "lifecycle": {"status": "running"}}
            ]
        }
    })
}

fn stamped(run: &Run, id: &str) -> bool {
    run.read_json(&format!("delegations/{id}.json"))
        .get("fan_in_collapsed_at")
        .is_some()
}

fn fan_record(out: &Outcome, card: &str) -> Value {
    out.records()
        .into_iter()
        .find(|r| r["kind"] == "fan_in" && r["task_card_id"] == card)
        .unwrap_or_else(|| panic!("no fan_in record for {card}: {}", out.stdout))
}

fn skip_unless_root() -> bool {
    if !is_root() {
        eprintln!("SKIPPED: needs root to hand files to uid {AGENT}");
        return true;
    }
    false
}

#[test]
fn a_shadow_card_never_lifts_the_lane_gate() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    run.delegation("r1", &member("r1", "c1", "completed", Some("t-root")));
    let card = run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(&gated_card("c1")).unwrap(),
    );
    let _ = card;
    // Sorted before the real card, claiming its id, with no gate at all.
    let shadow = run.write(
        "task-cards/a-shadow.json",
        serde_json::to_vec_pretty(&json!({"task_card_id": "c1"})).unwrap(),
    );
    give_to_agent(&shadow);
    let out = fan_in(&run);
    assert_eq!(out.code, 3, "a shadow card is a problem: {}", out.stderr);
    assert!(
        out.stderr
            .contains("task-cards/a-shadow.json: duplicate_task_card"),
        "{}",
        out.stderr
    );
    let records: Vec<Value> = out
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "fan_in")
        .collect();
    assert_eq!(records.len(), 1, "never a second card: {}", out.stdout);
    assert_fields(
        &records[0],
        json!({"task_card_id": "c1", "ready": false, "active": 0, "waiting_lanes": ["lane-b"]}),
    );
    assert!(!stamped(&run, "r1"));
    // The same through sweep.
    let swept = sweep(&run);
    assert_eq!(swept.code, 3, "{}", swept.stderr);
    assert!(!stamped(&run, "r1"));
}

#[test]
fn an_agents_completed_delegation_never_joins_a_root_card() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(&json!({"task_card_id": "c1"})).unwrap(),
    );
    run.delegation("r1", &member("r1", "c1", "completed", Some("t-root")));
    run.delegation("r2", &member("r2", "c1", "running", None));
    let evil = run.delegation("evil", &member("evil", "c1", "completed", Some("t-evil")));
    give_to_agent(&evil);
    let evil_before = std::fs::read(&evil).unwrap();
    // r2 still runs: the agent's completed delegation neither counts nor stamps anything.
    let out = fan_in(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &fan_record(&out, "c1"),
        json!({"ready": false, "active": 1, "foreign_members": ["evil"]}),
    );
    assert!(!stamped(&run, "r1"));
    // Once r2 is done the card collapses on root's members alone.
    run.delegation("r2", &member("r2", "c1", "failed", None));
    let out = fan_in(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = fan_record(&out, "c1");
    assert_fields(
        &record,
        json!({"ready": true, "outcome": "collapsed", "completed": 1, "failed": 1,
               "thread_ids": ["t-root"], "foreign_members": ["evil"]}),
    );
    assert!(!out.stdout.contains("t-evil"), "{}", out.stdout);
    assert!(stamped(&run, "r1") && stamped(&run, "r2"));
    assert_eq!(std::fs::read(&evil).unwrap(), evil_before, "never stamped");
}

#[test]
fn an_agents_active_delegation_never_holds_a_root_card_in_sweep() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(&json!({"task_card_id": "c1"})).unwrap(),
    );
    let evil = run.delegation("a-evil", &member("a-evil", "c1", "queued", None));
    give_to_agent(&evil);
    run.delegation("r1", &member("r1", "c1", "completed", Some("t-root")));
    let evil_done = run.delegation(
        "z-evil",
        &member("z-evil", "c1", "completed", Some("t-evil")),
    );
    give_to_agent(&evil_done);
    let out = sweep(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = fan_record(&out, "c1");
    assert_fields(
        &record,
        json!({"ready": true, "outcome": "collapsed", "completed": 1, "failed": 0,
               "thread_ids": ["t-root"], "foreign_members": ["a-evil", "z-evil"]}),
    );
    assert!(stamped(&run, "r1"));
    assert!(!stamped(&run, "a-evil") && !stamped(&run, "z-evil"));
}

#[test]
fn a_card_without_document_belongs_to_root_when_root_has_a_member() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    run.delegation("r1", &member("r1", "c9", "completed", Some("t-root")));
    let evil = run.delegation("evil", &member("evil", "c9", "completed", Some("t-evil")));
    give_to_agent(&evil);
    let evil_before = std::fs::read(&evil).unwrap();
    let out = fan_in(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &fan_record(&out, "c9"),
        json!({"ready": true, "completed": 1, "thread_ids": ["t-root"], "foreign_members": ["evil"]}),
    );
    assert_eq!(std::fs::read(&evil).unwrap(), evil_before);
    // An agent's own card (no document, only its delegations) is its own business.
    let own = run.delegation(
        "mine",
        &member("mine", "c-agent", "completed", Some("t-mine")),
    );
    give_to_agent(&own);
    let out = fan_in(&run);
    assert_fields(
        &fan_record(&out, "c-agent"),
        json!({"ready": true, "completed": 1, "thread_ids": ["t-mine"]}),
    );
}

#[test]
fn a_root_owned_world_writable_delegation_is_foreign() {
    let run = Run::new();
    run.delegation("r1", &member("r1", "c1", "completed", Some("t-root")));
    let forged = run.delegation(
        "forged",
        &member("forged", "c1", "completed", Some("t-forged")),
    );
    std::fs::set_permissions(&forged, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = fan_in(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = fan_record(&out, "c1");
    if is_root() {
        assert_fields(
            &record,
            json!({"ready": true, "thread_ids": ["t-root"], "foreign_members": ["forged"]}),
        );
        assert!(!stamped(&run, "forged"));
    }
}

#[test]
fn a_renamed_card_document_never_opens_its_card() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    run.delegation("r1", &member("r1", "c1", "completed", Some("t-root")));
    run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(&gated_card("c1")).unwrap(),
    );
    // The agent renames root's card away: c1 has no document, the gate would be gone.
    std::fs::rename(
        run.path().join("task-cards/c1.json"),
        run.path().join("task-cards/moved.json"),
    )
    .unwrap();
    let out = fan_in(&run);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("task-cards/moved.json: duplicate_task_card"),
        "{}",
        out.stderr
    );
    let record = fan_record(&out, "c1");
    assert_eq!(record["ready"], false, "{record}");
    assert!(
        record["warnings"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("duplicate_task_card")),
        "{record}"
    );
    assert!(!stamped(&run, "r1"));
    let swept = sweep(&run);
    assert_eq!(swept.code, 3, "{}", swept.stderr);
    assert!(!stamped(&run, "r1"));
}

#[test]
fn a_card_document_renamed_over_another_card_opens_neither() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    run.delegation("r1", &member("r1", "c1", "completed", Some("t-1")));
    run.delegation("r2", &member("r2", "c2", "completed", Some("t-2")));
    run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(&gated_card("c1")).unwrap(),
    );
    run.write(
        "task-cards/c2.json",
        serde_json::to_vec_pretty(&gated_card("c2")).unwrap(),
    );
    // c1's document replaces c2's: both cards have lost their gate.
    std::fs::rename(
        run.path().join("task-cards/c1.json"),
        run.path().join("task-cards/c2.json"),
    )
    .unwrap();
    let out = fan_in(&run);
    assert_eq!(out.code, 3, "{}", out.stderr);
    for card in ["c1", "c2"] {
        let record = fan_record(&out, card);
        assert_eq!(record["ready"], false, "{record}");
        assert_eq!(
            record["warnings"],
            json!([
                "duplicate_task_card: no document of its own, while c2.json claims it; not decided"
            ]),
            "{record}"
        );
    }
    assert!(!stamped(&run, "r1") && !stamped(&run, "r2"));
}

#[test]
fn the_envelope_path_is_closed_once_any_delegation_names_the_card() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    let card = run.write(
        "task-cards/c1.json",
        serde_json::to_vec_pretty(
            &json!({"task_card_id": "c1", "worker_result_envelope": {"status": "passed"}}),
        )
        .unwrap(),
    );
    let evil = run.delegation("evil", &member("evil", "c1", "completed", Some("t-evil")));
    give_to_agent(&evil);
    let before = std::fs::read(&card).unwrap();
    let out = fan_in(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &fan_record(&out, "c1"),
        json!({"ready": false, "active": 0, "foreign_members": ["evil"],
               "warnings": ["every member is foreign to the card's owner: never ready"]}),
    );
    assert_eq!(
        std::fs::read(&card).unwrap(),
        before,
        "the card is not stamped"
    );
    assert!(!stamped(&run, "evil"));
}

#[test]
fn a_root_owned_world_writable_file_renamed_in_as_a_card_is_not_roots_word() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    run.delegation("r1", &member("r1", "c1", "completed", Some("t-root")));
    run.delegation("r2", &member("r2", "c1", "completed", Some("t-root-2")));
    // A root-owned 0666 scratch file the agent rewrote with a card that has a gate it
    // controls, renamed into task-cards/: with several writers it is nobody's card.
    let scratch = run.write(
        "scratch.json",
        serde_json::to_vec_pretty(&json!({"task_card_id": "c1"})).unwrap(),
    );
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::create_dir_all(run.path().join("task-cards")).unwrap();
    std::fs::rename(&scratch, run.path().join("task-cards/c1.json")).unwrap();
    let out = fan_in(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = fan_record(&out, "c1");
    assert_eq!(record["ready"], false, "{record}");
    assert!(
        record["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("foreign")),
        "{record}"
    );
    assert_eq!(record["active"], 0, "{record}");
    assert!(!stamped(&run, "r1") && !stamped(&run, "r2"));
}

/// A root card without a document: the agent creates `task-cards/C.json` itself, so that the
/// card would be "its" card and its completed delegation a member. A non-root document
/// cannot speak for a card that root-owned delegations name: not decided, nothing stamped,
/// and the agent's thread id never appears.
#[test]
fn an_agent_cannot_make_a_root_card_its_own_with_a_document() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    std::fs::create_dir(run.path().join("task-cards")).unwrap();
    run.delegation("r1", &member("r1", "C", "completed", Some("ROOT-THREAD")));
    let evil = run.delegation(
        "evil",
        &member("evil", "C", "completed", Some("EVIL-THREAD")),
    );
    give_to_agent(&evil);
    let card = run.write("task-cards/C.json", "{\"task_card_id\":\"C\"}\n");
    give_to_agent(&card);
    for out in [fan_in(&run), sweep(&run)] {
        assert!(!out.stdout.contains("EVIL-THREAD"), "{}", out.stdout);
        assert!(!stamped(&run, "r1"), "{}", out.stdout);
        assert!(!stamped(&run, "evil"), "{}", out.stdout);
        let record = fan_record(&out, "C");
        assert_eq!(record["ready"], false, "{record}");
        assert!(
            record["warnings"][0]
                .as_str()
                .is_some_and(|w| w.contains("belongs to uid 65534")),
            "{record}"
        );
        assert_eq!(record["foreign_members"], json!(["evil"]), "{record}");
    }
    // The control: without the agent's document, root's card collapses on root's member
    // alone, and the agent's delegation stays foreign.
    std::fs::remove_file(&card).unwrap();
    let out = fan_in(&run);
    let record = fan_record(&out, "C");
    assert_eq!(record["thread_ids"], json!(["ROOT-THREAD"]), "{record}");
    assert!(stamped(&run, "r1"));
    assert!(!stamped(&run, "evil"));
}

/// task-cards/ without the sticky bit: the agent replaces root's gated card document with its
/// own, which has no lane gate. The gate is not lifted: the card is not decided.
#[test]
fn an_agent_cannot_lift_a_lane_gate_by_replacing_the_card_document() {
    if skip_unless_root() {
        return;
    }
    let run = Run::new();
    std::fs::create_dir(run.path().join("task-cards")).unwrap();
    run.delegation("r1", &member("r1", "C", "completed", Some("ROOT-THREAD")));
    let card = run.write("task-cards/C.json", format!("{}\n", gated_card("C")));
    assert_eq!(fan_record(&fan_in(&run), "C")["ready"], false);
    std::fs::remove_file(&card).unwrap();
    let card = run.write("task-cards/C.json", "{\"task_card_id\":\"C\"}\n");
    give_to_agent(&card);
    let out = fan_in(&run);
    assert_eq!(fan_record(&out, "C")["ready"], false, "{}", out.stdout);
    assert!(!stamped(&run, "r1"), "{}", out.stdout);
}
