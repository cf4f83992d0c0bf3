use super::*;
use crate::core::digest::Terminal;
use serde_json::json;

pub(crate) const NOW: Millis = 1_795_334_400_000;

pub(crate) fn times(last_progress: Option<Millis>) -> Times {
    Times {
        last_progress_at: last_progress,
        ..Times::default()
    }
}

pub(crate) fn fingerprint() -> Fingerprint {
    Fingerprint {
        start_ticks: 42,
        boot_id: "boot".into(),
        pid_ns: 7,
        pidfd_ino: None,
    }
}

pub(crate) fn stream(mtime: Millis, digest: Option<Digest>) -> Stream {
    Stream {
        mtime_ms: mtime,
        size: 10,
        inode: StreamInode { dev: 1, ino: 2 },
        digest,
    }
}

pub(crate) fn success_digest() -> Digest {
    Digest {
        format: Some(events::Format::Codex),
        terminal: Some(Terminal {
            event: "turn.completed",
            outcome: Outcome::Success,
            interrupted: false,
            message: None,
        }),
        thread_id: Some("thread-1".into()),
        final_text: Some("Done.".into()),
        usage: Some(json!({"input_tokens": 5})),
        bytes: 120,
        lines: 3,
        json_lines: 3,
        ..Digest::default()
    }
}

#[test]
fn live_workers_progress_from_the_mtime_and_get_a_fingerprint() {
    let t = times(Some(NOW - 10_000));
    let newer = stream(NOW - 1_000, None);
    assert_eq!(
        decide(
            Case::Live,
            &t,
            Some(&newer),
            Some(fingerprint()),
            None,
            NOW,
            5_000
        ),
        Some(Change::Progress {
            at: NOW - 1_000,
            fingerprint: Some(fingerprint())
        })
    );
    let older = stream(NOW - 20_000, None);
    assert_eq!(
        decide(Case::Live, &t, Some(&older), None, None, NOW, 5_000),
        None
    );
    assert_eq!(
        decide(
            Case::Live,
            &t,
            Some(&older),
            Some(fingerprint()),
            None,
            NOW,
            5_000
        ),
        Some(Change::Fingerprint(fingerprint()))
    );
    // A stream stamped in the future counts as now.
    let future = stream(NOW + 60_000, None);
    assert_eq!(
        decide(Case::Live, &t, Some(&future), None, None, NOW, 5_000),
        Some(Change::Progress {
            at: NOW,
            fingerprint: None
        })
    );
    assert_eq!(decide(Case::Live, &t, None, None, None, NOW, 5_000), None);
}

#[test]
fn gone_workers_finalize_at_once_on_a_terminal_event() {
    let t = times(Some(NOW - 10_000));
    let fresh = stream(NOW - 100, Some(success_digest()));
    let Some(Change::Finalize(done)) = decide(Case::Gone, &t, Some(&fresh), None, None, NOW, 5_000)
    else {
        panic!("expected a finalization");
    };
    assert_eq!(done.verdict.status, Outcome::Success);
    assert_eq!(done.completed_at, NOW - 100);
}

#[test]
fn gone_workers_without_a_terminal_event_wait_for_the_stream_to_settle() {
    let t = times(Some(NOW - 10_000));
    let partial = Digest {
        format: Some(events::Format::Codex),
        bytes: 50,
        ..Digest::default()
    };
    let unsettled = stream(NOW - 4_999, Some(partial.clone()));
    assert_eq!(
        decide(Case::Gone, &t, Some(&unsettled), None, None, NOW, 5_000),
        None
    );
    let settled = stream(NOW - 5_000, Some(partial));
    let Some(Change::Finalize(done)) =
        decide(Case::Gone, &t, Some(&settled), None, None, NOW, 5_000)
    else {
        panic!("expected a finalization");
    };
    assert_eq!(done.verdict.reason, Some("interrupted"));
}

#[test]
fn gone_workers_without_a_stream_fail_unknown() {
    let Some(Change::Finalize(done)) =
        decide(Case::Gone, &times(None), None, None, None, NOW, 5_000)
    else {
        panic!("expected a finalization");
    };
    assert_eq!(done.verdict.status, Outcome::Failure);
    assert_eq!(done.verdict.reason, Some("unknown"));
    assert_eq!(done.completed_at, NOW);
    assert_eq!(
        result_summary(&done),
        "Worker process exited without an event stream."
    );
    let with_exit = decide(Case::Gone, &times(None), None, None, Some(2), NOW, 5_000);
    let Some(Change::Finalize(done)) = with_exit else {
        panic!()
    };
    assert_eq!(done.verdict.reason, Some("execution_failed"));
}

#[test]
fn unsure_workers_finalize_only_on_a_terminal_event() {
    let t = times(Some(NOW - 10_000));
    let unchanged = stream(NOW - 10_000, None);
    assert_eq!(
        decide(Case::Unsure, &t, Some(&unchanged), None, None, NOW, 5_000),
        None
    );
    let done = stream(NOW - 1_000, Some(success_digest()));
    assert!(matches!(
        decide(Case::Unsure, &t, Some(&done), None, None, NOW, 5_000),
        Some(Change::Finalize(_))
    ));
    let partial = stream(
        NOW - 1_000,
        Some(Digest {
            bytes: 5,
            ..Digest::default()
        }),
    );
    assert_eq!(
        decide(Case::Unsure, &t, Some(&partial), None, None, NOW, 5_000),
        Some(Change::Progress {
            at: NOW - 1_000,
            fingerprint: None
        })
    );
}
