//! Running and launching states from progress ages, baselines, clock skew, the launch
//! timeout.

use super::*;

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
