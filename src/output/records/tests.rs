use super::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

fn record<'a>(path: &'a Path, text: &'a str, warnings: Vec<&'static str>) -> DelegationRecord<'a> {
    DelegationRecord {
        kind: "delegation",
        run_dir: PathText(Path::new("/runs/r1")),
        path: PathText(path),
        delegation_id: Some(text),
        task_card_id: None,
        work_kind: text,
        status: "running",
        state: "running_active",
        reclaim_state: "not_needed",
        process_id: Some(-170_141_183_460_469_231_731_687_303_715_884_105_728),
        process_alive: None,
        process_identity: Some("verified"),
        last_progress_at: Ts(Some(1_795_334_400_123)),
        progress_baseline: None,
        elapsed_since_progress_ms: Some(-5),
        quiet_after_ms: 0,
        stale_after_ms: i64::MAX,
        timeout_after_ms: i64::MIN,
        stale_at: Ts(None),
        timed_out_at: Ts(Some(crate::core::time::MIN_MS)),
        next_action: "wait",
        transition: "none",
        classification: "none",
        recovery_action: "none",
        recovery_reason: text,
        summary: "ok",
        needs_attention: true,
        warnings: warnings.into_iter().map(Cow::Borrowed).collect(),
        activity: None,
        stall: None,
    }
}

#[test]
fn hand_written_json_is_byte_for_byte_serde_json() {
    let texts = [
        "",
        "plain",
        "exactly8",
        "quote\" in the middle of a long text",
        "back\\slash",
        "tab\there, newline\n, nul \u{0}, unit sep \u{1f}, del \u{7f}",
        "non-ASCII — ünïcödé ✓ 日本",
        "\u{1b}[31m escape at the start",
        "ends with a control \u{8}",
        "bidi \u{202e}reversed\u{2069}, separator \u{2028}, c1 \u{9b}, alm \u{61c}",
    ];
    let odd_name = OsStr::from_bytes(b"/runs/r1/delegations/\xff\xfe\"x.json");
    let paths = [
        Path::new("/runs/r1/delegations/d1.json"),
        Path::new(odd_name),
    ];
    for text in texts {
        for path in paths {
            for warnings in [vec![], vec!["clock_skew", "a\"b"]] {
                let record = record(path, text, warnings);
                let mut fast = Vec::new();
                record.write_json(&mut JsonWriter(&mut fast));
                let mut serde = Vec::new();
                crate::output::to_writer_safe(&mut serde, &record).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&serde),
                    "text {text:?}, path {path:?}"
                );
            }
        }
    }
}

#[test]
fn a_skipped_detail_keeps_the_field_order_of_the_action_record() {
    let detail = SkippedDetail {
        state: "stale",
        process_id: Some(42),
        termination: "foreign_uid",
        reason: Some("why"),
    };
    assert_eq!(
        serde_json::to_string(&detail).unwrap_or_default(),
        r#"{"state":"stale","process_id":42,"termination":"foreign_uid","reason":"why"}"#
    );
}

fn compact<T: serde::Serialize>(value: &T) -> String {
    crate::output::to_string_safe(value).unwrap_or_default()
}

fn reclaim_detail(summary: Option<&str>) -> ReclaimDetail {
    ReclaimDetail {
        state: Some("timed_out"),
        process_id: Some(42),
        termination: "terminated",
        signal_via: Some("pidfd"),
        descendants_signalled: vec![43],
        survivors: vec![],
        summary: summary.map(str::to_string),
    }
}

#[test]
fn an_action_record_prints_its_common_fields_then_its_detail() {
    let record = ActionRecord {
        kind: "action",
        command: "sweep",
        action: "reclaimed",
        outcome: "written",
        run_dir: PathText(Path::new("run")),
        path: PathText(Path::new("run/delegations/a.json")),
        delegation_id: Some("a"),
        detail: SweepDetail::new(
            None,
            Some(reclaim_detail(Some("gone"))),
            Some(StampDetail {
                fan_in_collapsed_at: Ts(Some(0)),
            }),
        ),
    };
    assert_eq!(
        compact(&record),
        r#"{"kind":"action","command":"sweep","action":"reclaimed","outcome":"written","run_dir":"run","path":"run/delegations/a.json","delegation_id":"a","state":"timed_out","process_id":42,"termination":"terminated","signal_via":"pidfd","descendants_signalled":[43],"survivors":[],"summary":"gone","fan_in_collapsed_at":"1970-01-01T00:00:00.000Z"}"#
    );
}

#[test]
fn a_field_refresh_and_reclaim_share_is_said_once_where_refresh_says_it() {
    // An activity change then a reclaim: `state` keeps its place and is the reclaim's.
    let detail = SweepDetail::new(
        Some(RefreshDetail::Activity {
            state: "running_quiet",
            last_activity_at: Ts(Some(0)),
        }),
        Some(reclaim_detail(None)),
        None,
    );
    assert_eq!(
        compact(&detail),
        r#"{"state":"timed_out","last_activity_at":"1970-01-01T00:00:00.000Z","process_id":42,"termination":"terminated","signal_via":"pidfd","descendants_signalled":[43],"survivors":[]}"#
    );
    // A finalization then a reclaim: `summary` likewise.
    let finalize = FinalizeDetail {
        status: "failed",
        reason: None,
        completed_at: Ts(None),
        format: None,
        thread_id: None,
        terminal_event: None,
        raw_events_bytes: 7,
        raw_output_truncated: Some(true),
        raw_output_skipped_bytes: Some(3),
        summary: "finalized".into(),
    };
    let detail = SweepDetail::new(
        Some(RefreshDetail::Finalize(finalize)),
        Some(reclaim_detail(Some("reclaimed"))),
        None,
    );
    assert_eq!(
        compact(&detail),
        r#"{"status":"failed","reason":null,"completed_at":null,"format":null,"thread_id":null,"terminal_event":null,"raw_events_bytes":7,"raw_output_truncated":true,"raw_output_skipped_bytes":3,"summary":"reclaimed","state":"timed_out","process_id":42,"termination":"terminated","signal_via":"pidfd","descendants_signalled":[43],"survivors":[]}"#
    );
}

#[test]
fn a_skipped_kill_has_no_summary_and_a_triage_skip_no_reason() {
    assert_eq!(
        compact(&reclaim_detail(None)),
        r#"{"state":"timed_out","process_id":42,"termination":"terminated","signal_via":"pidfd","descendants_signalled":[43],"survivors":[]}"#
    );
    let detail = SkippedDetail {
        state: "stale",
        process_id: None,
        termination: "skipped_foreign",
        reason: None,
    };
    assert_eq!(
        compact(&detail),
        r#"{"state":"stale","process_id":null,"termination":"skipped_foreign"}"#
    );
}
