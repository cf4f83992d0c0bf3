use super::*;
use serde_json::json;

fn member(status: ChildStatus, collapsed: Option<Millis>, thread: Option<&str>) -> Member {
    Member {
        delegation_id: Some("d".into()),
        status,
        raw_status: "x".into(),
        reclaimed: false,
        collapsed_at: collapsed,
        thread_id: thread.map(str::to_string),
        owner: Some(0),
    }
}

#[test]
fn all_terminal_collapses_once() {
    let members = [
        member(ChildStatus::Completed, None, Some("t1")),
        member(ChildStatus::Completed, Some(5), Some("t2")),
    ];
    let FanIn::Collapse { counts, stamp } = decide(&members, None) else {
        panic!("expected a collapse");
    };
    assert_eq!(stamp, Stamp::Delegations(vec![0]));
    assert_eq!(counts.thread_ids, ["t1", "t2"]);
    assert_eq!(
        counts.summary(),
        "Collapsed fan-in after 2 completed worker result(s)."
    );
    let stamped = [
        member(ChildStatus::Completed, Some(9), None),
        member(ChildStatus::Failed, Some(7), None),
    ];
    let FanIn::Collapsed {
        counts,
        collapsed_at,
    } = decide(&stamped, None)
    else {
        panic!("expected collapsed");
    };
    assert_eq!(collapsed_at, 7);
    assert_eq!(
        counts.summary(),
        "Collapsed fan-in after terminal worker results (1 completed, 1 failed, 0 cancelled)."
    );
}

#[test]
fn an_active_or_unknown_member_blocks_and_says_why() {
    let members = [
        member(ChildStatus::Completed, None, None),
        Member {
            raw_status: "paused".into(),
            ..member(ChildStatus::Other, None, None)
        },
    ];
    assert_eq!(
        decide(&members, None),
        FanIn::NotReady {
            active: 1,
            waiting_lanes: vec![],
            warnings: vec![
                "unknown_status: delegation d has status 'paused' and counts as active".into()
            ]
        }
    );
    let reclaimed = Member {
        reclaimed: true,
        ..member(ChildStatus::Running, None, None)
    };
    assert!(matches!(decide(&[reclaimed], None), FanIn::Collapse { .. }));
}

#[test]
fn envelope_statuses() {
    let card = |status: &str| CardDoc {
        envelope_status: Some(status.into()),
        ..CardDoc::default()
    };
    let counts = |status: &str| match decide(&[], Some(&card(status))) {
        FanIn::Collapse { counts, stamp } => {
            assert_eq!(stamp, Stamp::CardDocument);
            Some((counts.completed, counts.failed, counts.cancelled))
        }
        _ => None,
    };
    assert_eq!(counts("passed"), Some((1, 0, 0)));
    assert_eq!(counts(" Completed "), Some((1, 0, 0)));
    assert_eq!(counts("success"), Some((1, 0, 0)));
    assert_eq!(counts("error"), Some((0, 1, 0)));
    assert_eq!(counts("canceled"), Some((0, 0, 1)));
    assert_eq!(counts("cancelled"), Some((0, 0, 1)));
    assert_eq!(counts("in_progress"), None);
    let done = CardDoc {
        collapsed_at: Some(3),
        ..card("passed")
    };
    assert!(matches!(
        decide(&[], Some(&done)),
        FanIn::Collapsed {
            collapsed_at: 3,
            ..
        }
    ));
}

#[test]
fn required_lanes_gate_the_card() {
    let value = json!({
        "parallel_fanout": {
            "required_lane_ids": ["a", "b"],
            "lanes": {"a": {"lifecycle": {"status": "merged"}}, "b": {"lifecycle": {"status": "running"}}}
        }
    });
    let card = CardDoc::of(&value);
    assert_eq!(card.waiting_lanes, ["b"]);
    let members = [member(ChildStatus::Completed, None, None)];
    assert!(matches!(
        decide(&members, Some(&card)),
        FanIn::NotReady { active: 0, .. }
    ));
    let value = json!({
        "parallel_fanout": {
            "required_lane_ids": ["a"],
            "lanes": {"a": {"lifecycle": {"status": "completed"}}}
        }
    });
    assert!(matches!(
        decide(&members, Some(&CardDoc::of(&value))),
        FanIn::Collapse { .. }
    ));
}

fn owned(owner: Option<u32>, status: ChildStatus, thread: Option<&str>) -> Member {
    Member {
        owner,
        ..member(status, None, thread)
    }
}

fn card_of(owner: u32) -> CardDoc {
    CardDoc {
        owner,
        ..CardDoc::default()
    }
}

#[test]
fn a_root_card_counts_root_members_only() {
    let members = [
        owned(Some(0), ChildStatus::Completed, Some("root-thread")),
        owned(Some(65534), ChildStatus::Completed, Some("injected")),
        owned(None, ChildStatus::Completed, Some("renamed")),
    ];
    let (decision, foreign) = decide_owned(&members, Some(&card_of(0)));
    assert_eq!(foreign, [1, 2]);
    let FanIn::Collapse { counts, stamp } = decision else {
        panic!("expected a collapse: {decision:?}");
    };
    assert_eq!(counts.thread_ids, ["root-thread"]);
    assert_eq!(counts.completed, 1);
    assert_eq!(stamp, Stamp::Delegations(vec![0]));
    // An active foreign member neither holds the card nor counts in `active`.
    let members = [
        owned(Some(65534), ChildStatus::Running, None),
        owned(Some(0), ChildStatus::Completed, None),
    ];
    let (decision, foreign) = decide_owned(&members, Some(&card_of(0)));
    assert_eq!(foreign, [0]);
    assert_eq!(decision_stamp(&decision), Some(vec![1]));
}

fn decision_stamp(decision: &FanIn) -> Option<Vec<usize>> {
    match decision {
        FanIn::Collapse {
            stamp: Stamp::Delegations(indices),
            ..
        } => Some(indices.clone()),
        _ => None,
    }
}

#[test]
fn an_agent_card_counts_its_own_and_never_decides_for_root_members() {
    let members = [
        owned(Some(1000), ChildStatus::Completed, Some("mine")),
        owned(Some(2000), ChildStatus::Completed, Some("theirs")),
    ];
    let (decision, foreign) = decide_owned(&members, Some(&card_of(1000)));
    assert_eq!(foreign, [1]);
    assert_eq!(decision_stamp(&decision), Some(vec![0]));
    // Root-owned members count for every card, but a document that is not root's cannot
    // decide a card they name: it may be an agent's, made to join root's card.
    let members = [
        owned(Some(1000), ChildStatus::Completed, Some("mine")),
        owned(Some(0), ChildStatus::Failed, None),
    ];
    assert_eq!(usurped(&members, Some(&card_of(1000))), Some(1000));
    assert_eq!(usurped(&members, Some(&card_of(0))), None);
    let (decision, foreign) = decide_owned(&members, Some(&card_of(1000)));
    assert_eq!(foreign, [0]);
    assert!(
        matches!(&decision, FanIn::NotReady { warnings, .. } if warnings[0].contains("uid 1000")),
        "{decision:?}"
    );
}

#[test]
fn without_a_document_the_owner_is_root_or_the_common_one() {
    let root = [
        owned(Some(0), ChildStatus::Completed, None),
        owned(Some(65534), ChildStatus::Completed, Some("injected")),
    ];
    assert_eq!(card_owner(&root, None), Some(0));
    let (decision, foreign) = decide_owned(&root, None);
    assert_eq!(foreign, [1]);
    let FanIn::Collapse { counts, .. } = decision else {
        panic!("expected a collapse");
    };
    assert!(counts.thread_ids.is_empty());
    let common = [
        owned(Some(7), ChildStatus::Completed, None),
        owned(None, ChildStatus::Running, None),
        owned(Some(7), ChildStatus::Completed, None),
    ];
    assert_eq!(card_owner(&common, None), Some(7));
    let (decision, foreign) = decide_owned(&common, None);
    assert_eq!(foreign, [1]);
    assert_eq!(decision_stamp(&decision), Some(vec![0, 2]));
    let mixed = [
        owned(Some(7), ChildStatus::Completed, None),
        owned(Some(8), ChildStatus::Completed, None),
    ];
    assert_eq!(card_owner(&mixed, None), None);
    let (decision, foreign) = decide_owned(&mixed, None);
    assert_eq!(foreign, [0, 1]);
    assert!(matches!(decision, FanIn::NotReady { active: 0, .. }));
}

#[test]
fn a_card_whose_members_are_all_foreign_is_never_ready() {
    let members = [owned(Some(65534), ChildStatus::Completed, None)];
    let (decision, foreign) = decide_owned(&members, Some(&card_of(0)));
    assert_eq!(foreign, [0]);
    let FanIn::NotReady { warnings, .. } = decision else {
        panic!("expected not ready");
    };
    assert_eq!(
        warnings,
        ["every member is foreign to the card's owner: never ready"]
    );
    // Foreign members are delegations naming the card: the envelope path is closed too.
    let passed = CardDoc {
        envelope_status: Some("passed".into()),
        ..card_of(0)
    };
    let (decision, _) = decide_owned(&members, Some(&passed));
    assert!(matches!(decision, FanIn::NotReady { .. }));
    let (decision, _) = decide_owned(&[], Some(&passed));
    assert!(matches!(
        decision,
        FanIn::Collapse {
            stamp: Stamp::CardDocument,
            ..
        }
    ));
}

#[test]
fn a_foreign_or_missing_card_document_is_not_decided() {
    let members = [owned(Some(0), ChildStatus::Completed, None)];
    let foreign = CardDoc {
        foreign: true,
        ..card_of(0)
    };
    assert!(matches!(
        decide_owned(&members, Some(&foreign)).0,
        FanIn::NotReady { .. }
    ));
    let missing = CardDoc {
        missing: true,
        claimed_by: vec!["renamed.json".into()],
        ..CardDoc::default()
    };
    let (decision, _) = decide_owned(&members, Some(&missing));
    let FanIn::NotReady { warnings, .. } = decision else {
        panic!("expected not ready");
    };
    assert_eq!(
        warnings,
        ["duplicate_task_card: no document of its own, while renamed.json claims it; not decided"]
    );
}

#[test]
fn a_not_ready_card_counts_only_its_active_counted_members() {
    let members = [
        owned(Some(0), ChildStatus::Running, None),
        owned(Some(65534), ChildStatus::Running, None),
        owned(Some(0), ChildStatus::Completed, None),
    ];
    assert_eq!(counted_members(&members, Some(&card_of(0))), [0, 2]);
    assert!(matches!(
        decide_owned(&members, Some(&card_of(0))).0,
        FanIn::NotReady { active: 1, .. }
    ));
    let missing = CardDoc {
        missing: true,
        claimed_by: vec!["x.json".into()],
        ..CardDoc::default()
    };
    assert_eq!(counted_members(&members, Some(&missing)), [0, 2]);
    assert!(matches!(
        decide_owned(&members, Some(&missing)).0,
        FanIn::NotReady { active: 1, .. }
    ));
}

#[test]
fn lanes_as_the_orchestrator_writes_them_an_array_matched_by_trimmed_lane_id() {
    let value = json!({
        "parallel_fanout": {
            "required_lane_ids": ["api", " docs ", "ui", "gone"],
            "lanes": [
                {"lane_id": "api", "required": true, "scope": "src/api",
                 "lifecycle": {"status": "merged", "updated_at": "x"}, "fan_in": {}},
                {"lane_id": "docs ", "required": true, "lifecycle": {"status": "completed"}},
                {"lane_id": "ui", "required": true, "lifecycle": {"status": "running"}},
                {"required": true, "lifecycle": {"status": "completed"}},
                "not a lane"
            ]
        }
    });
    assert_eq!(CardDoc::of(&value).waiting_lanes, ["ui", "gone"]);
    let done = json!({
        "parallel_fanout": {
            "required_lane_ids": ["api"],
            "lanes": [{"lane_id": " api", "lifecycle": {"status": "stalled"}}]
        }
    });
    assert!(CardDoc::of(&done).waiting_lanes.is_empty());
    // The object form keyed by lane id still works.
    let keyed = json!({
        "parallel_fanout": {
            "required_lane_ids": ["api", "ui"],
            "lanes": {"api": {"lifecycle": {"status": "reclaimed"}}, "ui": {"lifecycle": {"status": "queued"}}}
        }
    });
    assert_eq!(CardDoc::of(&keyed).waiting_lanes, ["ui"]);
}
