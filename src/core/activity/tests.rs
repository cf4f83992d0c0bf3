use super::*;
use crate::core::lifecycle::{self, ProcessFacts};

const FP: &str = "boot/4026531836/4242/1000";
const STALE: Millis = 45_000;
const T0: Millis = 1_700_000_000_000;

fn policy() -> Policy {
    Policy::default()
}

fn process(pid: i32, start_ticks: u64, cpu_ms: u64, comm: &str) -> ProcessSample {
    ProcessSample {
        pid,
        start_ticks,
        cpu_ms,
        comm: comm.into(),
    }
}

fn sample(at_ms: Millis, cpu_ms: u64, io: Option<u64>, newest_start: u64) -> Sample {
    Sample {
        at_ms,
        cpu_ms,
        io_bytes: io,
        processes: 2,
        newest_start,
        procs: vec![
            process(4242, 1000, cpu_ms / 4, "codex"),
            process(4300, newest_start, cpu_ms - cpu_ms / 4, "cargo"),
        ],
    }
}

fn stored(at_ms: Millis, cpu_ms: u64, io: Option<u64>, newest_start: u64) -> StoredSample {
    StoredSample {
        fingerprint: FP.into(),
        sample: sample(at_ms, cpu_ms, io, newest_start),
    }
}

fn judge(before: Option<&StoredSample>, now: &Sample) -> Activity {
    verdict(before, now, FP, &policy(), STALE, now.at_ms)
}

#[test]
fn the_first_sample_has_nothing_to_compare_with() {
    let now = sample(T0, 5_000, Some(10), 2000);
    let activity = judge(None, &now);
    assert_eq!(activity.verdict, Verdict::NoSample(NoSample::First));
    assert_eq!(activity.cpu_ms, 5_000);
    assert_eq!(activity.processes, 2);
    assert_eq!(activity.cpu_ms_since, None);
    assert_eq!(activity.since, None);
    assert!(activity.has_no_sample());
}

#[test]
fn cpu_exactly_at_the_threshold_is_busy_and_one_ms_below_is_not() {
    // 5 % of one CPU over 40 s is 2000 ms.
    let before = stored(T0, 1_000, Some(0), 2000);
    let at = sample(T0 + 40_000, 3_000, Some(0), 2000);
    let activity = judge(Some(&before), &at);
    assert_eq!(activity.verdict, Verdict::Busy);
    assert_eq!(activity.busy_by, Some(BusyBy::Cpu));
    assert_eq!(activity.cpu_ms_since, Some(2_000));
    assert_eq!(activity.since, Some(T0));
    let below = sample(T0 + 40_000, 2_999, Some(0), 2000);
    assert_eq!(judge(Some(&before), &below).verdict, Verdict::NotBusy);
}

#[test]
fn io_exactly_at_the_threshold_is_busy_and_one_byte_below_is_not() {
    let before = stored(T0, 1_000, Some(1_000), 2000);
    let at = sample(T0 + 40_000, 1_000, Some(1_000 + DEFAULT_BUSY_IO), 2000);
    let activity = judge(Some(&before), &at);
    assert_eq!(activity.verdict, Verdict::Busy);
    assert_eq!(activity.busy_by, Some(BusyBy::Io));
    assert_eq!(activity.io_bytes_since, Some(DEFAULT_BUSY_IO));
    let below = sample(T0 + 40_000, 1_000, Some(999 + DEFAULT_BUSY_IO), 2000);
    assert_eq!(judge(Some(&before), &below).verdict, Verdict::NotBusy);
}

#[test]
fn unreadable_io_leaves_cpu_alone_to_count() {
    let before = stored(T0, 1_000, None, 2000);
    let idle = sample(T0 + 40_000, 1_000, Some(u64::MAX), 2000);
    let activity = judge(Some(&before), &idle);
    assert_eq!(activity.verdict, Verdict::NotBusy);
    assert_eq!(activity.io_bytes_since, None);
    let busy = sample(T0 + 40_000, 10_000, None, 2000);
    assert_eq!(judge(Some(&before), &busy).verdict, Verdict::Busy);
}

#[test]
fn a_process_started_after_the_stored_sample_makes_the_tree_busy() {
    let before = stored(T0, 1_000, Some(0), 2000);
    let at = sample(T0 + 40_000, 1_000, Some(0), 2001);
    let activity = judge(Some(&before), &at);
    assert_eq!(activity.verdict, Verdict::Busy);
    assert_eq!(activity.busy_by, Some(BusyBy::NewProcess));
    assert!(activity.new_process);
    // The same newest process: nothing new.
    let same = sample(T0 + 40_000, 1_000, Some(0), 2000);
    assert!(!judge(Some(&before), &same).new_process);
}

#[test]
fn a_total_lower_than_stored_is_no_sample() {
    // A process of the tree exited and was reaped by something outside the tree.
    let before = stored(T0, 9_000, Some(500), 2000);
    let fewer_cpu = sample(T0 + 40_000, 8_999, Some(500), 2000);
    assert_eq!(
        judge(Some(&before), &fewer_cpu).verdict,
        Verdict::NoSample(NoSample::Decreased)
    );
    let fewer_io = sample(T0 + 40_000, 9_000, Some(499), 2000);
    assert_eq!(
        judge(Some(&before), &fewer_io).verdict,
        Verdict::NoSample(NoSample::Decreased)
    );
}

#[test]
fn a_sample_older_than_the_stale_threshold_is_no_sample() {
    let before = stored(T0, 0, Some(0), 2000);
    let at_edge = sample(T0 + STALE, 100_000, Some(0), 2000);
    assert_eq!(judge(Some(&before), &at_edge).verdict, Verdict::Busy);
    let past = sample(T0 + STALE + 1, 100_000, Some(0), 2000);
    assert_eq!(
        judge(Some(&before), &past).verdict,
        Verdict::NoSample(NoSample::Stale)
    );
}

#[test]
fn a_sample_of_another_process_is_no_sample() {
    let mut before = stored(T0, 0, Some(0), 2000);
    before.fingerprint = "boot/4026531836/4242/999".into();
    let at = sample(T0 + 10_000, 100_000, Some(0), 2000);
    assert_eq!(
        judge(Some(&before), &at).verdict,
        Verdict::NoSample(NoSample::Foreign)
    );
}

#[test]
fn a_sample_younger_than_the_window_is_no_sample() {
    let before = stored(T0, 0, Some(0), 2000);
    let young = sample(T0 + DEFAULT_WINDOW_MS - 1, 10_000, Some(0), 2000);
    assert_eq!(
        judge(Some(&before), &young).verdict,
        Verdict::NoSample(NoSample::TooRecent)
    );
    let window = sample(T0 + DEFAULT_WINDOW_MS, 10_000, Some(0), 2000);
    assert_eq!(judge(Some(&before), &window).verdict, Verdict::Busy);
}

#[test]
fn the_top_consumer_is_the_process_that_used_most_since() {
    let before = StoredSample {
        fingerprint: FP.into(),
        sample: Sample {
            at_ms: T0,
            cpu_ms: 10_000,
            io_bytes: None,
            processes: 2,
            newest_start: 1500,
            procs: vec![
                process(4242, 1000, 9_000, "codex"),
                process(4300, 1500, 1_000, "cargo"),
            ],
        },
    };
    let now = Sample {
        at_ms: T0 + 40_000,
        cpu_ms: 30_000,
        io_bytes: None,
        processes: 3,
        newest_start: 1600,
        procs: vec![
            process(4242, 1000, 10_000, "codex"),
            process(4300, 1500, 12_000, "cargo"),
            process(4400, 1600, 8_000, "rustc"),
        ],
    };
    let activity = judge(Some(&before), &now);
    assert_eq!(
        activity.top,
        Some(Top {
            pid: 4300,
            comm: "cargo".into(),
            cpu_ms_since: 11_000
        })
    );
    assert_eq!(
        busy_reason(372_000, &activity),
        "no events for 6m12s, but its processes used 20.0 s of CPU in the last 40s"
    );
}

#[test]
fn stat_and_io_are_parsed() {
    let line = b"4242 (a (b) c) S 1 2 3 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 1 0 987654 1000 100";
    assert_eq!(parse_stat_cpu(line), Some(("a (b) c".into(), 210)));
    assert_eq!(parse_stat_cpu(b"4242 (x) S 1"), None);
    let io = b"rchar: 100\nwchar: 23\nsyscr: 1\nsyscw: 2\nread_bytes: 0\n";
    assert_eq!(parse_io(io), Some(123));
    assert_eq!(parse_io(b"syscr: 1\n"), None);
    assert_eq!(ticks_to_ms(250, 100), 2_500);
    assert_eq!(format_duration(372_000), "6m12s");
    assert_eq!(format_duration(800), "800ms");
    assert_eq!(format_duration(3_660_000), "1h1m");
}

/// A running delegation whose progress is `age_ms` old at `NOW`, stale after 45 s.
fn running_doc(age_ms: Millis) -> String {
    let last = crate::core::time::format_rfc3339(NOW - age_ms);
    format!(
        r#"{{"delegation_id":"d1","child_agent":{{"status":"running"}},
        "worker_lifecycle":{{"started_at":"{last}","last_progress_at":"{last}","process_id":4242}}}}"#
    )
}

const NOW: Millis = T0 + 3_600_000;

fn busy() -> Activity {
    let before = stored(T0, 0, Some(0), 2000);
    judge(Some(&before), &sample(T0 + 10_000, 10_000, Some(0), 2000))
}

#[test]
fn a_busy_stale_worker_is_running_busy_until_the_busy_limit() {
    let thresholds = lifecycle::Thresholds::default();
    for (age, expected) in [
        (50_000, State::RunningBusy),
        (100_000, State::RunningBusy),
        (DEFAULT_BUSY_LIMIT_MS - 1, State::RunningBusy),
        (DEFAULT_BUSY_LIMIT_MS, State::TimedOut),
    ] {
        let text = running_doc(age);
        let doc = crate::model::parse_delegation(text.as_bytes()).unwrap();
        let times = Times::of(doc.worker_lifecycle.value());
        let mut view = lifecycle::view(&doc, &times, NOW, &thresholds, &ProcessFacts::NoPid);
        if deferrable(&view, &times, NOW, &thresholds, &policy()) {
            defer(&mut view, &times, &busy());
        }
        assert_eq!(view.state, expected, "age {age}");
        if expected == State::RunningBusy {
            assert_eq!(view.reclaim_state, ReclaimState::NotNeeded);
            assert_eq!(view.next_action, NextAction::AwaitWorker);
            assert_eq!(view.recovery_action, Recovery::Poll);
            assert_eq!(view.transition, "running");
            assert_eq!(view.stale_at, None);
            assert_eq!(view.timed_out_at, None);
            assert!(!view.needs_attention());
        }
    }
}

#[test]
fn busy_defers_neither_the_max_runtime_nor_a_fresh_worker_nor_an_idle_tree() {
    let text = running_doc(50_000);
    let doc = crate::model::parse_delegation(text.as_bytes()).unwrap();
    let times = Times::of(doc.worker_lifecycle.value());
    let capped = lifecycle::Thresholds {
        max_runtime: Some(40_000),
        ..lifecycle::Thresholds::default()
    };
    let view = lifecycle::view(&doc, &times, NOW, &capped, &ProcessFacts::NoPid);
    assert_eq!(view.state, State::TimedOut);
    assert!(!deferrable(&view, &times, NOW, &capped, &policy()));
    // --stuck-after caps --busy-limit.
    let stuck = lifecycle::Thresholds {
        stuck: Some(50_000),
        ..lifecycle::Thresholds::default()
    };
    let view = lifecycle::view(&doc, &times, NOW, &stuck, &ProcessFacts::NoPid);
    assert!(!deferrable(&view, &times, NOW, &stuck, &policy()));
    // Not stale yet: nothing to defer.
    let fresh_text = running_doc(1_000);
    let fresh = crate::model::parse_delegation(fresh_text.as_bytes()).unwrap();
    let fresh_times = Times::of(fresh.worker_lifecycle.value());
    let defaults = lifecycle::Thresholds::default();
    let view = lifecycle::view(&fresh, &fresh_times, NOW, &defaults, &ProcessFacts::NoPid);
    assert!(!deferrable(&view, &fresh_times, NOW, &defaults, &policy()));
    // Stale and idle: stays stale.
    let view = lifecycle::view(&doc, &times, NOW, &defaults, &ProcessFacts::NoPid);
    let mut idle_view = view.clone();
    let before = stored(T0, 0, Some(0), 2000);
    let idle = judge(Some(&before), &sample(T0 + 10_000, 0, Some(0), 2000));
    defer(&mut idle_view, &times, &idle);
    assert_eq!(idle_view, view);
    assert_eq!(view.state, State::Stale);
}

#[test]
fn a_watch_holds_a_reclaim_only_for_a_deferrable_verdict_without_a_sample() {
    let text = running_doc(50_000);
    let doc = crate::model::parse_delegation(text.as_bytes()).unwrap();
    let times = Times::of(doc.worker_lifecycle.value());
    let defaults = lifecycle::Thresholds::default();
    let view = lifecycle::view(&doc, &times, NOW, &defaults, &ProcessFacts::NoPid);
    let before = stored(T0, 0, Some(0), 2000);
    let too_recent = judge(Some(&before), &sample(T0 + 10, 0, Some(0), 2000));
    assert!(too_recent.has_no_sample());
    let held = |activity: &Activity, thresholds: &lifecycle::Thresholds, on: bool| {
        let view = lifecycle::view(&doc, &times, NOW, thresholds, &ProcessFacts::NoPid);
        let policy = policy();
        awaits_sample(
            Some(activity),
            &view,
            &times,
            NOW,
            thresholds,
            on.then_some(&policy),
        )
    };
    assert!(held(&too_recent, &defaults, true));
    // With --no-activity, with a usable sample, or past what busy may defer: no hold.
    assert!(!held(&too_recent, &defaults, false));
    let idle = judge(Some(&before), &sample(T0 + 10_000, 0, Some(0), 2000));
    assert!(!held(&idle, &defaults, true));
    let capped = lifecycle::Thresholds {
        max_runtime: Some(40_000),
        ..lifecycle::Thresholds::default()
    };
    assert!(!held(&too_recent, &capped, true));
    assert!(!awaits_sample(
        None,
        &view,
        &times,
        NOW,
        &defaults,
        Some(&policy())
    ));
}
