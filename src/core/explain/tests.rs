use super::*;
use crate::core::lifecycle::{self, Times};
use crate::core::time::parse_rfc3339;

const NOW: &str = "2026-11-22T08:00:00Z";

fn now() -> Millis {
    parse_rfc3339(NOW).unwrap()
}

fn uid(file_uid: u32, process_uid: Option<u32>) -> UidFacts {
    UidFacts {
        file_uid,
        foreign: None,
        process_uid,
    }
}

/// The explain object of `doc` (no process looked at, no stream) with `policy`.
fn explained(doc: &str, policy: &Thresholds, origin: Origin, uid: UidFacts) -> Value {
    let delegation = crate::model::parse_delegation(doc.as_bytes()).unwrap();
    let l = delegation.worker_lifecycle.value();
    let times = Times::of(l);
    let view = lifecycle::view(&delegation, &times, now(), policy, &ProcessFacts::NoPid);
    explain(&Inputs {
        run_dir: "run",
        path: "run/delegations/d.json",
        view: &view,
        times: &times,
        lifecycle: l,
        policy,
        origin,
        stream: StreamStat::None,
        process: &ProcessFacts::NoPid,
        fingerprint: None,
        window: None,
        uid,
        stall: None,
    })
}

const STALE: &str = r#"{"delegation_id":"d","child_agent":{"status":"running"},
  "worker_lifecycle":{"started_at":"2026-11-22T07:50:00Z","last_progress_at":"2026-11-22T07:59:00Z",
  "quiet_after_ms":10000}}"#;

#[test]
fn each_threshold_says_where_it_came_from() {
    let policy = Thresholds {
        stale: Some(40_000),
        ..Thresholds::default()
    };
    let record = explained(STALE, &policy, Origin::Flags, uid(0, None));
    let t = &record["thresholds"];
    assert_eq!(t["quiet"]["source"], "document");
    assert_eq!(t["quiet"]["note"], "worker_lifecycle.quiet_after_ms");
    assert_eq!(t["stale"]["source"], "flag");
    assert_eq!(t["stale"]["ms"], 40_000);
    assert_eq!(t["timeout"]["source"], "default");
    assert_eq!(t["timeout"]["note"], "2 × stale");
    assert_eq!(t["max_runtime"]["source"], "none");
    let record = explained(STALE, &policy, Origin::LastSweep(now()), uid(0, None));
    assert_eq!(record["thresholds"]["stale"]["source"], "last_sweep");
    assert_eq!(record["configuration"]["source"], "last_sweep");
    let stuck = Thresholds {
        stuck: Some(30_000),
        ..Thresholds::default()
    };
    let record = explained(STALE, &stuck, Origin::Flags, uid(0, None));
    assert_eq!(record["thresholds"]["stale"]["ms"], 30_000);
    assert_eq!(
        record["thresholds"]["stale"]["note"],
        "45s, capped by --stuck-after"
    );
}

#[test]
fn the_baseline_timestamps_and_next_step_are_named() {
    let record = explained(
        STALE,
        &Thresholds::default(),
        Origin::Defaults,
        uid(0, None),
    );
    assert_eq!(record["kind"], "explain");
    assert_eq!(record["state"], "stale");
    assert_eq!(record["baseline"]["field"], "last_progress_at");
    assert_eq!(record["baseline"]["age_ms"], 60_000);
    assert_eq!(
        record["timestamps"]["started_at"],
        "2026-11-22T07:50:00.000Z"
    );
    assert_eq!(record["next"]["action"], "reclaim");
    assert_eq!(record["next"]["sweep"], "mark_reclaimed");
    assert!(
        record["verdict"]
            .as_str()
            .unwrap()
            .contains("reached the stale threshold 45000 ms")
    );
    let text = to_text(&record);
    for label in [
        "verdict",
        "timestamps",
        "baseline",
        "stream",
        "thresholds",
        "configuration",
        "process",
        "uid guard",
        "activity",
        "stall",
        "next",
    ] {
        assert!(text.contains(&format!("\n  {label} ")), "{label}: {text}");
    }
}

#[test]
fn the_uid_guard_passes_root_documents_and_the_owners_process() {
    assert!(guard(&uid(0, Some(1000))).0);
    assert!(guard(&uid(1000, Some(1000))).0);
    let (passes, why) = guard(&uid(1000, Some(1001)));
    assert!(!passes);
    assert!(why.contains("skipped_foreign"), "{why}");
    assert!(!guard(&uid(1000, None)).0);
    let foreign = UidFacts {
        foreign: Some("has 2 hard links".into()),
        ..uid(0, Some(0))
    };
    let (passes, why) = guard(&foreign);
    assert!(!passes);
    assert!(why.contains("has 2 hard links"), "{why}");
}

#[test]
fn text_escapes_what_documents_wrote() {
    let doc = STALE.replace(r#""d""#, r#""d\u001b]0;pwned\u0007""#);
    let record = explained(&doc, &Thresholds::default(), Origin::Defaults, uid(0, None));
    let text = to_text(&record);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("\\x1b"), "{text:?}");
}

#[test]
fn the_activity_line_says_what_the_sample_showed() {
    assert_eq!(
        activity_text(&Value::Null),
        "not sampled (no live, verified process, or --no-activity)"
    );
    let busy = serde_json::json!({
        "busy": true, "cpu_ms": 50_000, "processes": 3, "cpu_ms_since": 48_100,
        "since": "2026-11-22T07:59:00.000Z", "top": {"pid": 4300, "comm": "cargo"},
    });
    assert_eq!(
        activity_text(&busy),
        "3 process(es), 50000 ms CPU; 48100 ms CPU since the sample of \
         2026-11-22T07:59:00.000Z, top cargo 4300: busy"
    );
    let first = serde_json::json!({
        "busy": false, "cpu_ms": 10, "processes": 1, "cpu_ms_since": null,
        "since": null, "top": null,
    });
    assert_eq!(
        activity_text(&first),
        "1 process(es), 10 ms CPU; no usable earlier sample: not busy"
    );
}
