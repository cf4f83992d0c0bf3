//! Child statuses, reclaimed and gone workers, invalid pids, work kinds, evidence bounds,
//! anchors, fingerprints, summary counts.

use super::*;

#[test]
fn every_child_status() {
    let cases = [
        (
            r#"{"child_agent":{"status":"completed"}}"#,
            State::Returned,
            ReclaimState::Resumable,
            NextAction::Advance,
            "completed",
        ),
        (
            r#"{"child_agent":{"status":"failed"}}"#,
            State::Failed,
            ReclaimState::NotNeeded,
            NextAction::None,
            "running",
        ),
        (
            r#"{"child_agent":{"status":"cancelled"}}"#,
            State::Cancelled,
            ReclaimState::NotNeeded,
            NextAction::None,
            "running",
        ),
        (
            r#"{"child_agent":{"status":"queued"}}"#,
            State::Queued,
            ReclaimState::NotNeeded,
            NextAction::AwaitWorker,
            "running",
        ),
        (
            r#"{}"#,
            State::Queued,
            ReclaimState::NotNeeded,
            NextAction::AwaitWorker,
            "running",
        ),
        (
            r#"{"executor":{"status":"completed"}}"#,
            State::Returned,
            ReclaimState::Resumable,
            NextAction::Advance,
            "completed",
        ),
    ];
    for (text, state, reclaim, next, transition) in cases {
        let (got, view) = view_of(text, &Thresholds::default(), &ProcessFacts::NotChecked);
        assert_eq!(got, state, "{text}");
        assert_eq!(view.reclaim_state, reclaim, "{text}");
        assert_eq!(view.next_action, next, "{text}");
        assert_eq!(view.transition, transition, "{text}");
        assert!(!view.needs_attention(), "{text}");
    }
    let (state, view) = view_of(
        r#"{"child_agent":{"status":"paused"}}"#,
        &Thresholds::default(),
        &ProcessFacts::NotChecked,
    );
    assert_eq!(state, State::Unknown);
    assert_eq!(view.warnings, [Warning::UnknownStatus]);
    assert_eq!(view.status, "paused");
    assert!(view.needs_attention());
}

#[test]
fn reclaimed_keeps_its_state_and_needs_nothing() {
    let text = format!(
        r#"{{"child_agent":{{"status":"failed"}},"worker_lifecycle":{{"state":"timed_out","reclaim_state":"reclaimed","last_progress_at":"{}"}}}}"#,
        at(-500_000)
    );
    let (state, view) = view_of(&text, &Thresholds::default(), &ProcessFacts::NotChecked);
    assert_eq!(state, State::TimedOut);
    assert_eq!(view.reclaim_state, ReclaimState::Reclaimed);
    assert_eq!(view.next_action, NextAction::None);
    assert_eq!(view.recovery_action, Recovery::AskOperator);
    assert!(!view.needs_attention());
    let mut tally = Tally::default();
    tally.add(&view);
    assert_eq!(
        tally.timed_out, 0,
        "reclaimed workers do not count as timed out"
    );
    assert_eq!(tally.active, 0);
    assert_eq!(tally.reclaimed, 1);
    assert_eq!(tally.failed, 1);
}

#[test]
fn a_gone_process_means_finalize() {
    let host = test_host();
    let pid = crate::core::identity::validate(&Field::Value(4242), &host)
        .unwrap()
        .unwrap();
    let facts = ProcessFacts::Checked {
        pid,
        observation: Observation::Exited,
        identity: Identity::Gone,
    };
    let (_, view) = view_of(
        &running(&format!(
            r#""process_id":4242,"last_progress_at":"{}""#,
            at(-1_000)
        )),
        &Thresholds::default(),
        &facts,
    );
    assert_eq!(view.next_action, NextAction::Finalize);
    assert_eq!(view.process_alive, Some(false));
    assert_eq!(view.process_identity, Some(Identity::Gone));
    assert!(view.needs_attention());
}

#[test]
fn invalid_pids_and_wrong_types_are_reported() {
    let text = running(r#""process_id":"12","last_progress_at":7"#);
    let facts = ProcessFacts::Invalid(InvalidPid::NotAnInteger("a string"));
    let (state, view) = view_of(&text, &Thresholds::default(), &facts);
    assert_eq!(state, State::Unknown);
    assert_eq!(view.process_id, None);
    assert_eq!(
        view.warnings,
        [
            Warning::WrongType("worker_lifecycle.process_id".into()),
            Warning::WrongType("worker_lifecycle.last_progress_at".into()),
            Warning::NoProgressBaseline,
            Warning::InvalidProcessId
        ]
    );
    assert_eq!(
        view.malformed,
        [
            "worker_lifecycle.process_id is a string, expected an integer",
            "worker_lifecycle.last_progress_at is a number, expected a string"
        ]
    );
    assert!(view.needs_attention());
    let bad_time =
        state_of(r#""last_progress_at":"yesterday","started_at":"2026-11-22T07:59:59Z""#);
    assert_eq!(
        bad_time.warnings,
        [Warning::InvalidTimestamp(
            "worker_lifecycle.last_progress_at"
        )]
    );
    assert_eq!(bad_time.elapsed_since_progress_ms, Some(1_000));
}

#[test]
fn work_kind_falls_back() {
    let (_, view) = view_of(
        r#"{"worker_request":{"work_kind":" review "},"worker_launch_evidence":{"work_kind":"x"}}"#,
        &Thresholds::default(),
        &ProcessFacts::NotChecked,
    );
    assert_eq!(view.work_kind, "review");
    let (_, view) = view_of(
        r#"{"work_kind":""}"#,
        &Thresholds::default(),
        &ProcessFacts::NotChecked,
    );
    assert_eq!(view.work_kind, "worker");
}

#[test]
fn evidence_bounds() {
    let text = format!(
        r#"{{"worker_lifecycle":{{"queued_at":"{}","launch_requested_at":"{}","started_at":"{}","process_started_at":"{}","last_progress_at":"{}"}}}}"#,
        at(-50),
        at(-40),
        at(-20),
        at(-30),
        at(-10)
    );
    let doc = parse_delegation(text.as_bytes()).unwrap();
    let lifecycle = doc.worker_lifecycle.value();
    let evidence = Times::of(lifecycle).evidence(lifecycle);
    assert_eq!(evidence.anchor, Some(NOW - 30));
    // Millisecond timestamps: each sign's interval ends 1 ms later, process_started_at's
    // a second later still; the tightest wins (started_at's here).
    assert_eq!(evidence.upper, Some(NOW - 20 + 1));
    assert_eq!(evidence.launch, Some(NOW - 40));
}

#[test]
fn the_anchor_comes_from_the_precision_of_the_signs_and_is_kept() {
    assert_eq!(precision_ms("2026-11-22T08:00:00Z"), 1_000);
    assert_eq!(precision_ms("2026-11-22T08:00:00.1Z"), 100);
    assert_eq!(precision_ms("2026-11-22T08:00:00.12Z"), 10);
    assert_eq!(precision_ms("2026-11-22T08:00:00.123Z"), 1);
    assert_eq!(precision_ms("2026-11-22T08:00:00.123456789+02:00"), 1);
    assert_eq!(precision_ms("2026-11-22T08:00:00+02:00"), 1_000);
    // A whole-second process_started_at may be a second early: U = t + 2 s.
    assert_eq!(
        anchor_of_texts(Some("2026-11-22T08:00:00Z"), None, None),
        Some((NOW, NOW + 2_000))
    );
    // The tightest bound of all signs; E the earliest.
    assert_eq!(
        anchor_of_texts(
            Some("2026-11-22T08:00:00Z"),
            Some("2026-11-22T08:00:00.500Z"),
            Some("2026-11-22T08:00:05Z")
        ),
        Some((NOW, NOW + 501))
    );
    assert_eq!(anchor_of_texts(None, Some("not a time"), None), None);
    // A kept anchor wins over the signs (a last_progress_at flatline wrote later).
    let text = format!(
        r#"{{"worker_lifecycle":{{"process_started_at":"{}","identity_anchor_at":"{}","identity_upper_bound_at":"{}"}}}}"#,
        at(-5_000),
        at(-9_000),
        at(-8_000)
    );
    let doc = parse_delegation(text.as_bytes()).unwrap();
    let lifecycle = doc.worker_lifecycle.value();
    let times = Times::of(lifecycle);
    assert_eq!(
        identity_anchor(lifecycle, &times),
        Some((NOW - 9_000, NOW - 8_000))
    );
}

#[test]
fn fingerprints_must_be_complete() {
    let good = br#"{"worker_lifecycle":{"process_fingerprint":{"start_ticks":5,"boot_id":"b","pid_ns":7}}}"#;
    let doc = parse_delegation(good).unwrap();
    assert_eq!(
        recorded_fingerprint(doc.worker_lifecycle.value()),
        Ok(Some(Fingerprint {
            start_ticks: 5,
            boot_id: "b".into(),
            pid_ns: 7,
            pidfd_ino: None,
        }))
    );
    let partial = br#"{"worker_lifecycle":{"process_fingerprint":{"start_ticks":5}}}"#;
    let doc = parse_delegation(partial).unwrap();
    assert_eq!(
        recorded_fingerprint(doc.worker_lifecycle.value()),
        Err(UnusableFingerprint)
    );
}

#[test]
fn summary_counts() {
    let mut tally = Tally::default();
    for lifecycle in [
        format!(r#""last_progress_at":"{}""#, at(0)),
        format!(r#""last_progress_at":"{}""#, at(-30_000)),
        format!(r#""last_progress_at":"{}""#, at(-50_000)),
        format!(r#""last_progress_at":"{}""#, at(-100_000)),
        format!(r#""launch_requested_at":"{}""#, at(0)),
    ] {
        tally.add(&state_of(&lifecycle));
    }
    for text in [r#"{"child_agent":{"status":"completed"}}"#, r#"{}"#] {
        tally.add(&view_of(text, &Thresholds::default(), &ProcessFacts::NotChecked).1);
    }
    assert_eq!(
        tally,
        Tally {
            total: 7,
            active: 6,
            queued: 1,
            launching: 1,
            running: 1,
            running_quiet: 1,
            running_busy: 0,
            returned: 1,
            completed: 1,
            failed: 0,
            cancelled: 0,
            stale: 1,
            timed_out: 1,
            reclaim_needed: 2,
            reclaimed: 0,
        }
    );
}
