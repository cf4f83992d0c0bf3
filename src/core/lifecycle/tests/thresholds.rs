//! The maximum runtime, and thresholds: precedence, clamping, per worker.

use super::*;

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
