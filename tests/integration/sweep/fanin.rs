//! Fan-in during a sweep: when a card whose members end is collapsed and stamped.

use super::*;

/// A stale worker that never recorded a pid is marked reclaimed (`no_process`), which makes
/// it a failed member: its card collapses in the same sweep, not the next one.
#[test]
fn a_card_whose_last_member_is_reclaimed_without_a_process_collapses_in_the_same_sweep() {
    let run = Run::new();
    let now = real_now_ms();
    run.delegation("m-done", &finished_member("m-done", "c3", "t-done", now));
    run.delegation("m-stale", &stale_member("m-stale", "c3", now));
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = out.records();
    assert_eq!(records.len(), 2, "{}", out.stdout);
    assert_fields(
        &records[0],
        json!({"kind": "action", "action": "reclaimed", "delegation_id": "m-stale",
               "termination": "no_process", "outcome": "written"}),
    );
    assert_fields(
        &records[1],
        json!({"kind": "fan_in", "task_card_id": "c3", "outcome": "collapsed",
               "completed": 1, "failed": 1, "thread_ids": ["t-done"]}),
    );
    for id in ["m-done", "m-stale"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc["fan_in_collapsed_at"].is_string(), "{id}: {doc}");
    }
    let again = sweep(&run, &[]);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "{}",
        again.stderr
    );
    let again = sweep(&run, &["--all"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_fields(
        &again.records()[0],
        json!({"kind": "fan_in", "outcome": "already_collapsed"}),
    );
}

/// A card with a member still at work is not ready, wherever that member falls in name
/// order (the bytes kept for stamping its finished members are let go once it is seen);
/// once the member finishes, one sweep stamps every member.
#[test]
fn a_card_with_a_member_at_work_is_left_alone_until_it_finishes() {
    let run = Run::new();
    let now = real_now_ms();
    let finished = |id: &str, card: &str| finished_member(id, card, &format!("t-{id}"), now);
    let working = |id: &str, card: &str| {
        let mut doc = delegation(
            id,
            "running",
            json!({"started_at": rfc3339(now - 10_000), "last_progress_at": rfc3339(now - 1_000)}),
        );
        doc["task_card_id"] = json!(card);
        doc
    };
    // c4: two finished members, then the one at work; c5: the one at work first.
    run.delegation("a1", &finished("a1", "c4"));
    run.delegation("a2", &finished("a2", "c4"));
    run.delegation("a3", &working("a3", "c4"));
    run.delegation("b1", &working("b1", "c5"));
    run.delegation("b2", &finished("b2", "c5"));
    let before = snapshot(run.path());
    let out = sweep(&run, &["--all"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let fan: Vec<(Value, Value, Value)> = out
        .records()
        .into_iter()
        .map(|r| {
            (
                r["kind"].clone(),
                r["task_card_id"].clone(),
                r["ready"].clone(),
            )
        })
        .collect();
    assert_eq!(
        fan,
        [
            (json!("fan_in"), json!("c4"), json!(false)),
            (json!("fan_in"), json!("c5"), json!(false)),
        ],
        "{}",
        out.stdout
    );
    let after: BTreeMap<PathBuf, Vec<u8>> = snapshot(run.path())
        .into_iter()
        .filter(|(path, _)| !path.starts_with(run.path().join(".flatline")))
        .collect();
    let before: BTreeMap<PathBuf, Vec<u8>> = before
        .into_iter()
        .filter(|(path, _)| !path.starts_with(run.path().join(".flatline")))
        .collect();
    assert_eq!(
        after, before,
        "nothing written for cards that are not ready"
    );

    run.delegation("a3", &finished("a3", "c4"));
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.records()[0],
        json!({"kind": "fan_in", "task_card_id": "c4", "outcome": "collapsed", "completed": 3,
               "thread_ids": ["t-a1", "t-a2", "t-a3"]}),
    );
    for id in ["a1", "a2", "a3"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc["fan_in_collapsed_at"].is_string(), "{id}: {doc}");
    }
    for id in ["b1", "b2"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc.get("fan_in_collapsed_at").is_none(), "{id}: {doc}");
    }
}

/// A card judged ready because a member is marked reclaimed without a process: when that
/// mark cannot be written (here the file has write access for others, which flatline never
/// replaces), the card's other members are not stamped and the card is reported failed;
/// once the mark can be written, one sweep collapses it. The metrics of a sweep that wrote
/// the mark no longer count that worker as needing a reclaim.
#[test]
fn a_card_is_stamped_only_when_the_write_that_ends_its_member_lands() {
    let run = Run::new();
    let now = real_now_ms();
    run.delegation("m-done", &finished_member("m-done", "c6", "t-done", now));
    let stale_path = run.delegation("m-stale", &stale_member("m-stale", "c6", now));
    // Writable by others: not its owner's word, never replaced (SPEC §1.3). (A second hard
    // link no longer serves: such a document is not even read.)
    let set_mode = |mode| {
        std::fs::set_permissions(&stale_path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(0o666);
    let done_before = String::from_utf8(run.read("delegations/m-done.json")).unwrap();

    let out = sweep(&run, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let fan = out
        .records()
        .into_iter()
        .find(|r| r["kind"] == "fan_in")
        .unwrap();
    assert_fields(&fan, json!({"task_card_id": "c6", "outcome": "failed"}));
    assert_eq!(
        String::from_utf8(run.read("delegations/m-done.json")).unwrap(),
        done_before,
        "a member of a card whose last member is still running on disk was stamped"
    );
    assert_eq!(
        run.read_json("delegations/m-stale.json")["child_agent"]["status"],
        "running"
    );

    set_mode(0o644);
    let metrics = sweep(&run, &["--format=prometheus"]);
    assert_eq!(metrics.code, 0, "{}", metrics.stderr);
    let gauge = |name: &str| {
        metrics
            .stdout
            .lines()
            .find(|line| line.starts_with(&format!("{name}{{")))
            .unwrap_or_else(|| panic!("no {name} in {}", metrics.stdout))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(gauge("flatline_delegations_reclaim_needed"), "0");
    assert_eq!(gauge("flatline_delegations_needing_attention"), "0");
    for id in ["m-done", "m-stale"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc["fan_in_collapsed_at"].is_string(), "{id}: {doc}");
    }
    assert_eq!(
        run.read_json("delegations/m-stale.json")["reclaim"]["termination"],
        "no_process"
    );
}

/// Two members of one card marked reclaimed without a process in the same sweep: the card
/// waits for the next sweep, so neither member can carry a stamp while the other's mark
/// failed (here one of them is writable by others and cannot be replaced).
#[test]
fn two_members_marked_in_one_sweep_are_stamped_only_in_the_next() {
    let run = Run::new();
    let now = real_now_ms();
    for id in ["m-a", "m-b"] {
        run.delegation(id, &stale_member(id, "c7", now));
    }
    // Writable by others: not its owner's word, never replaced (SPEC §1.3).
    let set_mode = |mode| {
        std::fs::set_permissions(
            run.delegation_path("m-b.json"),
            std::fs::Permissions::from_mode(mode),
        )
        .unwrap()
    };
    set_mode(0o666);
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let a = run.read_json("delegations/m-a.json");
    assert_eq!(a["reclaim"]["termination"], "no_process", "{a}");
    assert!(a.get("fan_in_collapsed_at").is_none(), "stamped early: {a}");
    assert_eq!(
        run.read_json("delegations/m-b.json")["child_agent"]["status"],
        "running"
    );
    set_mode(0o644);
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = sweep(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for id in ["m-a", "m-b"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(doc["fan_in_collapsed_at"].is_string(), "{id}: {doc}");
    }
}
