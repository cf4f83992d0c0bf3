use super::*;
use crate::core::lifecycle::{Thresholds, Times, view};
use crate::model::parse_delegation;

const NOW: Millis = 1_795_334_400_000; // 2026-11-22T08:00:00.000Z

/// Checks `check` against the view of `text` as it would be re-read.
fn with_view<T>(
    text: &str,
    facts: &ProcessFacts,
    check: impl FnOnce(&Delegation<'_>, &View<'_>) -> T,
) -> T {
    let doc = parse_delegation(text.as_bytes()).expect("a test document");
    let times = Times::of(doc.worker_lifecycle.value());
    let view = view(&doc, &times, NOW, &Thresholds::default(), facts);
    check(&doc, &view)
}

fn running(lifecycle: &str) -> String {
    format!(r#"{{"child_agent":{{"status":"running"}},"worker_lifecycle":{{{lifecycle}}}}}"#)
}

const STUCK: &str = r#""last_progress_at":"2026-11-22T06:00:00Z""#;

#[test]
fn a_no_process_mark_applies_only_while_running_stuck_and_without_a_process() {
    let stuck = running(STUCK);
    assert!(with_view(&stuck, &ProcessFacts::NoPid, |doc, v| {
        no_process_reclaim_applies(doc, &ProcessFacts::NoPid, v)
    }));
    let fresh = running(r#""last_progress_at":"2026-11-22T07:59:59Z""#);
    assert!(!with_view(&fresh, &ProcessFacts::NoPid, |doc, v| {
        no_process_reclaim_applies(doc, &ProcessFacts::NoPid, v)
    }));
    let returned =
        format!(r#"{{"child_agent":{{"status":"completed"}},"worker_lifecycle":{{{STUCK}}}}}"#);
    assert!(!with_view(&returned, &ProcessFacts::NoPid, |doc, v| {
        no_process_reclaim_applies(doc, &ProcessFacts::NoPid, v)
    }));
    let named = ProcessFacts::Invalid(crate::core::identity::InvalidPid::OutOfRange(0));
    assert!(!with_view(&stuck, &named, |doc, v| {
        no_process_reclaim_applies(doc, &named, v)
    }));
}

#[test]
fn a_reclaim_is_dropped_when_the_document_moved_on_or_names_another_process() {
    let stuck = running(&format!(r#"{STUCK},"process_id":4242"#));
    assert_eq!(
        with_view(&stuck, &ProcessFacts::NoPid, |_, v| reclaim_dropped(
            v,
            None,
            Some(4242)
        )),
        None
    );
    assert_eq!(
        with_view(&stuck, &ProcessFacts::NoPid, |_, v| reclaim_dropped(
            v,
            None,
            Some(17)
        )),
        Some("its document names another process now".to_string())
    );
    let fresh = running(r#""last_progress_at":"2026-11-22T07:59:59Z","process_id":4242"#);
    assert_eq!(
        with_view(&fresh, &ProcessFacts::NoPid, |_, v| reclaim_dropped(
            v,
            Some(NOW - 1000),
            Some(4242)
        )),
        Some("its event stream was written at 2026-11-22T07:59:59.000Z since the plan".to_string())
    );
    assert_eq!(
        with_view(&fresh, &ProcessFacts::NoPid, |_, v| reclaim_dropped(
            v,
            None,
            Some(4242)
        )),
        Some("its document no longer needs a reclaim".to_string())
    );
}

fn member(text: &str) -> Member {
    Member::of(&parse_delegation(text.as_bytes()).expect("a test document"))
}

#[test]
fn a_stamp_applies_while_the_member_is_over_and_unstamped() {
    let done = member(r#"{"child_agent":{"status":"completed"}}"#);
    let stamped = member(
        r#"{"child_agent":{"status":"completed"},"fan_in_collapsed_at":"2026-11-22T07:00:00Z"}"#,
    );
    let running = member(r#"{"child_agent":{"status":"running"}}"#);
    assert!(stamp_applies(&done));
    assert!(!stamp_applies(&stamped));
    assert!(!stamp_applies(&running));
    // sweep: a member its own changes end is over even while its document still runs.
    assert!(sweep_stamp_applies(&running, true, true));
    assert!(!sweep_stamp_applies(&running, true, false));
    assert!(!sweep_stamp_applies(&running, false, false));
    assert!(sweep_stamp_applies(&done, false, false));
    assert!(!sweep_stamp_applies(&stamped, false, true));
}
