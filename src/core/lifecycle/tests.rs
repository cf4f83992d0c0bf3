use super::*;
use crate::core::identity::test_host;
use crate::model::parse_delegation;

const NOW: Millis = 1_795_334_400_000; // 2026-11-22T08:00:00.000Z

fn at(offset_ms: Millis) -> String {
    time::format_rfc3339(NOW + offset_ms)
}

fn running(lifecycle: &str) -> String {
    format!(
        r#"{{"delegation_id":"d1","task_card_id":"t1","child_agent":{{"status":"running"}},"worker_lifecycle":{{{lifecycle}}}}}"#
    )
}

fn view_of(text: &str, policy: &Thresholds, process: &ProcessFacts) -> (State, View<'static>) {
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    let doc: &'static Delegation<'static> =
        Box::leak(Box::new(parse_delegation(leaked.as_bytes()).unwrap()));
    let times = Times::of(doc.worker_lifecycle.value());
    let view = view(doc, &times, NOW, policy, process);
    (view.state, view)
}

fn state_of(lifecycle: &str) -> View<'static> {
    view_of(
        &running(lifecycle),
        &Thresholds::default(),
        &ProcessFacts::NoPid,
    )
    .1
}

#[test]
fn running_states_by_progress_age() {
    let progress = |ago: Millis| state_of(&format!(r#""last_progress_at":"{}""#, at(-ago)));
    assert_eq!(progress(0).state, State::RunningActive);
    assert_eq!(progress(22_499).state, State::RunningActive);
    assert_eq!(progress(22_500).state, State::RunningQuiet);
    assert_eq!(progress(44_999).state, State::RunningQuiet);
    let stale = progress(45_000);
    assert_eq!(stale.state, State::Stale);
    assert_eq!(stale.reclaim_state, ReclaimState::ReclaimNeeded);
    assert_eq!(stale.stale_at, Some(NOW - 45_000));
    assert_eq!(stale.next_action, NextAction::Reclaim);
    assert_eq!(stale.transition, "stalled");
    assert_eq!(
        stale.recovery_reason,
        "worker progress age 45000 ms reached the stale threshold 45000 ms"
    );
    let timed_out = progress(90_000);
    assert_eq!(
        timed_out.state,
        State::TimedOut,
        "default timeout is 2 x stale"
    );
    assert_eq!(timed_out.timed_out_at, Some(NOW - 90_000));
    assert_eq!(timed_out.transition, "reclaimable");
    assert_eq!(
        timed_out.recovery_reason,
        "worker progress age 90000 ms reached the timeout threshold 90000 ms"
    );
    assert_eq!(progress(89_999).state, State::Stale);
    assert!(stale.needs_attention());
    assert!(!progress(0).needs_attention());
}

#[test]
fn stored_stale_at_wins_over_the_baseline() {
    let view = state_of(&format!(
        r#""last_progress_at":"{}","stale_at":"{}""#,
        at(-50_000),
        at(-4_000)
    ));
    assert_eq!(view.stale_at, Some(NOW - 4_000));
}

#[test]
fn the_baseline_falls_back_in_order() {
    let view = state_of(&format!(
        r#""started_at":"{}","process_started_at":"{}","queued_at":"{}""#,
        at(-10_000),
        at(-20_000),
        at(-30_000)
    ));
    assert_eq!(view.elapsed_since_progress_ms, Some(10_000));
    assert_eq!(view.progress_baseline, Some("started_at"));
    let queued_only = state_of(&format!(r#""queued_at":"{}""#, at(-50_000)));
    assert_eq!(queued_only.progress_baseline, Some("queued_at"));
    assert_eq!(queued_only.state, State::Stale);
}

#[test]
fn no_baseline_is_unknown() {
    let view = state_of(r#""process_id":null"#);
    assert_eq!(view.state, State::Unknown);
    assert_eq!(view.warnings, [Warning::NoProgressBaseline]);
    assert_eq!(view.elapsed_since_progress_ms, None);
    assert!(view.needs_attention());
    assert_eq!(view.next_action, NextAction::AwaitWorker);
}

#[test]
fn clock_skew_within_the_limit_is_age_zero() {
    let view = state_of(&format!(r#""last_progress_at":"{}""#, at(30_000)));
    assert_eq!(view.state, State::RunningActive);
    assert_eq!(view.elapsed_since_progress_ms, Some(0));
    assert_eq!(view.warnings, [Warning::ClockSkew]);
    let far = state_of(&format!(r#""last_progress_at":"{}""#, at(86_400_000)));
    assert_eq!(far.state, State::Unknown);
    assert_eq!(far.elapsed_since_progress_ms, None);
    assert_eq!(far.warnings, [Warning::ClockSkew]);
    assert_eq!(far.reclaim_state, ReclaimState::NotNeeded);
}

#[test]
fn launching_until_started() {
    let view = state_of(&format!(r#""launch_requested_at":"{}""#, at(-1_000)));
    assert_eq!(view.state, State::Launching);
    let policy = Thresholds {
        launch_timeout: Some(1_000),
        ..Thresholds::default()
    };
    let (state, timed) = view_of(
        &running(&format!(r#""launch_requested_at":"{}""#, at(-1_000))),
        &policy,
        &ProcessFacts::NoPid,
    );
    assert_eq!(state, State::Stale);
    assert!(timed.recovery_reason.contains("launch timeout 1000 ms"));
}

#[test]
fn the_launch_timeout_alone_judges_a_launching_worker() {
    let policy = Thresholds {
        launch_timeout: Some(600_000),
        ..Thresholds::default()
    };
    let launch = |ago: Millis, more: &str| {
        view_of(
            &running(&format!(r#""launch_requested_at":"{}"{more}"#, at(-ago))),
            &policy,
            &ProcessFacts::NoPid,
        )
    };
    // Far past the stale and timeout thresholds, but under the launch timeout: launching.
    let (state, _) = launch(300_000, "");
    assert_eq!(state, State::Launching);
    let (state, _) = launch(599_999, "");
    assert_eq!(state, State::Launching);
    let (state, view) = launch(600_000, "");
    assert_eq!(state, State::Stale);
    assert_eq!(
        view.recovery_reason,
        "launch took 600000 ms, over the launch timeout 600000 ms"
    );
    // queued_at stands in for launch_requested_at.
    let (state, _) = view_of(
        &running(&format!(r#""queued_at":"{}""#, at(-600_000))),
        &policy,
        &ProcessFacts::NoPid,
    );
    assert_eq!(state, State::Stale);
    // Evidence of a start ends the launch: the worker then ages like any running one.
    for evidence in ["process_started_at", "last_progress_at"] {
        let more = format!(r#","{evidence}":"{}""#, at(-300_000));
        let (state, _) = launch(300_000, &more);
        assert_eq!(state, State::TimedOut, "{evidence}");
        let more = format!(r#","{evidence}":"{}""#, at(-1_000));
        let (state, _) = launch(700_000, &more);
        assert_eq!(state, State::RunningActive, "{evidence}");
    }
    // So does a verified process.
    let host = crate::core::identity::test_host();
    let pid = crate::core::identity::validate_found(4242, &host).unwrap();
    let verified = ProcessFacts::Checked {
        pid,
        observation: Observation::Exited,
        identity: Identity::Verified,
    };
    let (state, _) = view_of(
        &running(&format!(r#""launch_requested_at":"{}""#, at(-300_000))),
        &policy,
        &verified,
    );
    assert_eq!(state, State::TimedOut);
    // Without --launch-timeout a launching worker ages like a running one.
    let (state, _) = view_of(
        &running(&format!(r#""launch_requested_at":"{}""#, at(-50_000))),
        &Thresholds::default(),
        &ProcessFacts::NoPid,
    );
    assert_eq!(state, State::Stale);
    let (state, _) = view_of(
        &running(&format!(r#""launch_requested_at":"{}""#, at(-1_000))),
        &Thresholds::default(),
        &ProcessFacts::NoPid,
    );
    assert_eq!(state, State::Launching);
}

#[test]
fn max_runtime_times_out_a_worker_that_still_progresses() {
    let policy = Thresholds {
        max_runtime: Some(3_600_000),
        ..Thresholds::default()
    };
    let (state, view) = view_of(
        &running(&format!(
            r#""started_at":"{}","last_progress_at":"{}""#,
            at(-3_600_000),
            at(-1)
        )),
        &policy,
        &ProcessFacts::NoPid,
    );
    assert_eq!(state, State::TimedOut);
    assert_eq!(
        view.recovery_reason,
        "worker run time 3600000 ms reached the max runtime 3600000 ms"
    );
}

#[test]
fn thresholds_precedence_and_clamping() {
    let mut warnings = Vec::new();
    let defaults = effective_thresholds(None, &Thresholds::default(), &mut warnings);
    assert_eq!(
        defaults,
        Effective {
            quiet: 22_500,
            stale: 45_000,
            timeout: 90_000
        }
    );
    let command_line = Thresholds {
        stale: Some(10_000),
        ..Thresholds::default()
    };
    assert_eq!(
        effective_thresholds(None, &command_line, &mut warnings),
        Effective {
            quiet: 5_000,
            stale: 10_000,
            timeout: 20_000
        }
    );
    let stuck = Thresholds {
        stuck: Some(30_000),
        ..Thresholds::default()
    };
    assert_eq!(
        effective_thresholds(None, &stuck, &mut warnings),
        Effective {
            quiet: 15_000,
            stale: 30_000,
            timeout: 30_000
        }
    );
    assert!(warnings.is_empty());

    let text = br#"{"worker_lifecycle":{"quiet_after_ms":1000,"stale_after_ms":5000}}"#;
    let doc = parse_delegation(text).unwrap();
    let own = effective_thresholds(doc.worker_lifecycle.value(), &command_line, &mut warnings);
    assert_eq!(
        own,
        Effective {
            quiet: 1_000,
            stale: 5_000,
            timeout: 10_000
        }
    );
    let bad = br#"{"worker_lifecycle":{"quiet_after_ms":9000,"stale_after_ms":5000,"timeout_after_ms":4000}}"#;
    let doc = parse_delegation(bad).unwrap();
    let clamped = effective_thresholds(doc.worker_lifecycle.value(), &command_line, &mut warnings);
    assert_eq!(
        clamped,
        Effective {
            quiet: 5_000,
            stale: 5_000,
            timeout: 5_000
        }
    );
    assert_eq!(warnings, [Warning::InvalidThreshold]);
    let mut warnings = Vec::new();
    let zero = br#"{"worker_lifecycle":{"stale_after_ms":0}}"#;
    let doc = parse_delegation(zero).unwrap();
    assert_eq!(
        effective_thresholds(
            doc.worker_lifecycle.value(),
            &Thresholds::default(),
            &mut warnings
        )
        .stale,
        45_000
    );
    assert_eq!(warnings, [Warning::InvalidThreshold]);
}

#[test]
fn per_worker_quiet_after() {
    let view = state_of(&format!(
        r#""last_progress_at":"{}","quiet_after_ms":1000"#,
        at(-1_000)
    ));
    assert_eq!(view.state, State::RunningQuiet);
    assert_eq!(view.thresholds.quiet, 1_000);
    assert_eq!(view.recovery_action, Recovery::Poll);
}

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

fn with_stream(lifecycle: &str, stream: StreamFacts, policy: &Thresholds) -> View<'static> {
    let text = running(lifecycle);
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    let doc: &'static Delegation<'static> =
        Box::leak(Box::new(parse_delegation(leaked.as_bytes()).unwrap()));
    let times = Times::of(doc.worker_lifecycle.value());
    view_with_stream(doc, &times, NOW, policy, &ProcessFacts::NoPid, &stream)
}

const INODE: StreamInode = StreamInode { dev: 8, ino: 1234 };

fn stream_at(offset_ms: Millis) -> StreamFacts {
    StreamFacts::Present {
        inode: INODE,
        mtime_ms: NOW + offset_ms,
    }
}

#[test]
fn a_fresh_stream_moves_the_baseline() {
    let stale = format!(r#""last_progress_at":"{}""#, at(-600_000));
    let policy = Thresholds::default();
    let fresh = with_stream(&stale, stream_at(-1_000), &policy);
    assert_eq!(fresh.state, State::RunningActive);
    assert_eq!(fresh.progress_baseline, Some("stream_mtime"));
    assert_eq!(fresh.elapsed_since_progress_ms, Some(1_000));
    assert_eq!(
        fresh.last_progress_at,
        Some(NOW - 600_000),
        "the record stays"
    );
    assert!(fresh.warnings.is_empty(), "{:?}", fresh.warnings);
    // An older stream is no news: the recorded baseline stands.
    let old = with_stream(&stale, stream_at(-700_000), &policy);
    assert_eq!(old.state, State::TimedOut);
    assert_eq!(old.progress_baseline, Some("last_progress_at"));
    // No recorded baseline at all: the stream is one.
    let only = with_stream("", stream_at(-30_000), &policy);
    assert_eq!(only.state, State::RunningQuiet);
    assert_eq!(only.progress_baseline, Some("stream_mtime"));
    // Nothing looked at, nothing moved (the document-only view).
    let blind = with_stream(&stale, StreamFacts::NotLooked, &policy);
    assert_eq!(blind.state, State::TimedOut);
}

#[test]
fn a_stream_from_the_future_counts_as_now_within_the_skew_and_not_beyond() {
    let stale = format!(r#""last_progress_at":"{}""#, at(-600_000));
    let policy = Thresholds::default();
    let near = with_stream(&stale, stream_at(60_000), &policy);
    assert_eq!(near.state, State::RunningActive);
    assert_eq!(near.elapsed_since_progress_ms, Some(0));
    assert_eq!(near.progress_baseline, Some("stream_mtime"));
    assert!(near.warnings.is_empty(), "{:?}", near.warnings);
    let far = with_stream(&stale, stream_at(60_001), &policy);
    assert_eq!(far.state, State::TimedOut, "not evidence");
    assert_eq!(far.progress_baseline, Some("last_progress_at"));
    assert_eq!(far.warnings, [Warning::ClockSkew]);
}

#[test]
fn a_replaced_stream_is_no_evidence_and_needs_attention() {
    let recorded = format!(
        r#""last_progress_at":"{}","raw_events_inode":{{"dev":8,"ino":99}}"#,
        at(-600_000)
    );
    let policy = Thresholds::default();
    let replaced = with_stream(&recorded, stream_at(-1_000), &policy);
    assert_eq!(replaced.state, State::TimedOut);
    assert_eq!(replaced.progress_baseline, Some("last_progress_at"));
    assert_eq!(replaced.warnings, [Warning::StreamReplaced]);
    assert_eq!(Warning::StreamReplaced.code(), "stream_replaced");
    assert!(replaced.needs_attention());
    let same = format!(
        r#""last_progress_at":"{}","raw_events_inode":{{"dev":8,"ino":1234}}"#,
        at(-600_000)
    );
    let fresh = with_stream(&same, stream_at(-1_000), &policy);
    assert_eq!(fresh.state, State::RunningActive);
    assert!(!fresh.needs_attention());
}

#[test]
fn a_missing_stream_needs_attention_and_defers_staleness_but_not_the_max_runtime() {
    let recorded = format!(
        r#""last_progress_at":"{}","started_at":"{}","raw_events_inode":{{"dev":8,"ino":1234}}"#,
        at(-600_000),
        at(-600_000)
    );
    let policy = Thresholds::default();
    let missing = with_stream(&recorded, StreamFacts::Missing, &policy);
    assert_eq!(missing.state, State::RunningQuiet);
    assert_eq!(missing.reclaim_state, ReclaimState::NotNeeded);
    assert_eq!(missing.warnings, [Warning::StreamMissing]);
    assert_eq!(Warning::StreamMissing.code(), "stream_missing");
    assert!(missing.needs_attention());
    let capped = Thresholds {
        max_runtime: Some(300_000),
        ..Thresholds::default()
    };
    let over = with_stream(&recorded, StreamFacts::Missing, &capped);
    assert_eq!(over.state, State::TimedOut);
    assert_eq!(over.reclaim_state, ReclaimState::ReclaimNeeded);
    // Never recorded: a stream that is not there yet is no news.
    let stale = format!(r#""last_progress_at":"{}""#, at(-600_000));
    let never = with_stream(&stale, StreamFacts::Missing, &policy);
    assert_eq!(never.state, State::TimedOut);
    assert!(never.warnings.is_empty());
}

#[test]
fn a_stream_the_owner_cannot_read_is_no_evidence() {
    let stale = format!(r#""last_progress_at":"{}""#, at(-600_000));
    let refused = with_stream(
        &stale,
        StreamFacts::Unusable {
            not_readable_by_owner: true,
        },
        &Thresholds::default(),
    );
    assert_eq!(refused.state, State::TimedOut);
    assert_eq!(refused.warnings, [Warning::StreamNotReadableByOwner]);
    assert_eq!(
        Warning::StreamNotReadableByOwner.code(),
        "not_readable_by_owner"
    );
}
