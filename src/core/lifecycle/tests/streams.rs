//! The event stream as progress evidence: fresh, from the future, replaced, missing,
//! unreadable.

use super::*;

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
