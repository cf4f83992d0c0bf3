use super::*;
use crate::core::digest::Terminal;
use crate::core::digest::Verdict;
use crate::core::plan::refresh::tests::{NOW, fingerprint, success_digest};
use crate::model::safe_id;
use crate::shell::commit::DocChange;

#[test]
fn apply_progress_touches_only_flatlines_fields() {
    let mut doc = json!({
        "delegation_id": "d",
        "worker_lifecycle": {"started_at": "x", "launch_requested_at": "y", "process_started_at": "z", "last_progress_at": "old"},
        "other": {"kept": [1, 2]}
    });
    apply(
        &mut doc,
        &Change::Progress {
            at: NOW,
            fingerprint: Some(fingerprint()),
        },
        NOW,
    )
    .unwrap();
    assert_eq!(
        doc,
        json!({
            "delegation_id": "d",
            "worker_lifecycle": {"started_at": "x", "launch_requested_at": "y", "process_started_at": "z",
                "last_progress_at": "2026-11-22T08:00:00.000Z", "process_last_seen_at": "2026-11-22T08:00:00.000Z",
                "state": "running_active", "process_fingerprint": {"start_ticks": 42, "boot_id": "boot", "pid_ns": 7}},
            "other": {"kept": [1, 2]}
        })
    );
}

#[test]
fn the_first_progress_write_keeps_the_identity_anchor() {
    let progress = |at| Change::Progress {
        at,
        fingerprint: None,
    };
    let mut doc = json!({"worker_lifecycle": {
            "process_id": 4242, "process_started_at": "2026-11-22T07:59:00Z",
            "last_progress_at": "2026-11-22T07:59:30.500Z"}});
    apply(&mut doc, &progress(NOW), NOW).unwrap();
    let lifecycle = &doc["worker_lifecycle"];
    // E the earliest sign; U the whole second + 1 s early of process_started_at.
    assert_eq!(lifecycle["identity_anchor_at"], "2026-11-22T07:59:00.000Z");
    assert_eq!(
        lifecycle["identity_upper_bound_at"],
        "2026-11-22T07:59:02.000Z"
    );
    assert_eq!(lifecycle["last_progress_at"], "2026-11-22T08:00:00.000Z");
    // flatline's own progress never moves it, even when the orchestrator's signs go.
    doc["worker_lifecycle"]
        .as_object_mut()
        .unwrap()
        .remove("process_started_at");
    apply(&mut doc, &progress(NOW + 5_000), NOW + 5_000).unwrap();
    let lifecycle = &doc["worker_lifecycle"];
    assert_eq!(lifecycle["identity_anchor_at"], "2026-11-22T07:59:00.000Z");
    assert_eq!(
        lifecycle["identity_upper_bound_at"],
        "2026-11-22T07:59:02.000Z"
    );
    // Not for a fingerprinted worker, nor without a pid.
    for lifecycle in [
        json!({"process_id": 1, "started_at": "2026-11-22T07:59:00Z",
                   "process_fingerprint": {"start_ticks": 1, "boot_id": "b", "pid_ns": 2}}),
        json!({"started_at": "2026-11-22T07:59:00Z"}),
    ] {
        let mut doc = json!({ "worker_lifecycle": lifecycle });
        apply(&mut doc, &progress(NOW), NOW).unwrap();
        assert!(
            doc["worker_lifecycle"].get("identity_anchor_at").is_none(),
            "{doc}"
        );
    }
}

#[test]
fn apply_finalize_writes_every_field() {
    let mut doc = json!({
        "delegation_id": "d",
        "child_agent": {"status": "running", "agent": "codex"},
        "executor": {"status": "running"},
        "worker_lifecycle": {"started_at": "s", "exit_code": 0}
    });
    let finalization = Finalization {
        verdict: Verdict {
            status: Outcome::Success,
            reason: None,
        },
        completed_at: NOW - 1_000,
        digest: Some(success_digest()),
        exit_code: Some(0),
    };
    apply(&mut doc, &Change::Finalize(Box::new(finalization)), NOW).unwrap();
    assert_eq!(
        doc,
        json!({
            "delegation_id": "d",
            "child_agent": {"status": "completed", "agent": "codex"},
            "executor": {"status": "completed"},
            "worker_lifecycle": {
                "started_at": "s", "exit_code": 0, "state": "returned", "reclaim_state": "resumable",
                "process_last_seen_at": "2026-11-22T07:59:59.000Z", "returned_at": "2026-11-22T07:59:59.000Z",
                "last_progress_at": "2026-11-22T07:59:59.000Z", "summary": "Worker completed: Done."
            },
            "updated_at": "2026-11-22T08:00:00.000Z",
            "completed_at": "2026-11-22T07:59:59.000Z",
            "result_summary": "Worker completed: Done.",
            "worker_result": {
                "status": "completed", "recorded_at": "2026-11-22T08:00:00.000Z", "format": "codex",
                "thread_id": "thread-1", "assistant_message_preview": "Done.",
                "total_token_usage": {"input_tokens": 5}, "process_exit": {"success": true, "exit_code": 0},
                "raw_output_preview": null, "raw_output_bytes": 120
            },
            "latest_failure": null
        })
    );
}

#[test]
fn apply_failure_records_latest_failure() {
    let mut doc = json!({"child_agent": {"status": "running"}});
    let digest = Digest {
        format: Some(events::Format::Codex),
        terminal: Some(Terminal {
            event: "turn.failed",
            outcome: Outcome::Failure,
            interrupted: false,
            message: Some("model overloaded".into()),
        }),
        bytes: 77,
        raw_preview: "boom".into(),
        ..Digest::default()
    };
    let finalization = Finalization {
        verdict: events::verdict(&digest),
        completed_at: NOW,
        digest: Some(digest),
        exit_code: None,
    };
    apply(&mut doc, &Change::Finalize(Box::new(finalization)), NOW).unwrap();
    assert_eq!(doc["child_agent"]["status"], "failed");
    assert_eq!(doc["worker_lifecycle"]["state"], "failed");
    assert_eq!(doc["worker_lifecycle"]["reclaim_state"], "not_needed");
    assert_eq!(
        doc["latest_failure"],
        json!({
            "stage": "execution",
            "reason": "execution_failed",
            "summary": "execution_failed: Worker failed: model overloaded terminal_event=turn.failed raw_events_bytes=77 raw_output_preview=\"boom\"",
            "recorded_at": "2026-11-22T08:00:00.000Z"
        })
    );
}

#[test]
fn a_lifecycle_that_is_not_an_object_is_not_rewritten() {
    let mut doc = json!({"worker_lifecycle": "running"});
    let before = doc.clone();
    let error = apply(
        &mut doc,
        &Change::Progress {
            at: NOW,
            fingerprint: None,
        },
        NOW,
    )
    .unwrap_err();
    assert_eq!(error.0, "worker_lifecycle is not an object; not rewritten");
    let finalization = Finalization {
        verdict: events::verdict(&Digest::default()),
        completed_at: NOW,
        digest: None,
        exit_code: None,
    };
    assert!(apply(&mut doc, &Change::Finalize(Box::new(finalization)), NOW).is_err());
    assert_eq!(doc, before, "nothing changed on failure");
}

fn scratch_file(name: &str, build: impl FnOnce(&mut std::fs::File)) -> std::fs::File {
    let dir = std::env::temp_dir().join(format!("flatline-refresh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    build(&mut file);
    drop(file);
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

#[test]
fn a_long_stream_is_read_as_its_head_and_its_tail() {
    use std::io::Write;
    let mib = 1u64 << 20;
    let filler = format!("{}\n", "x".repeat(99));
    let file = scratch_file("long", |f| {
        f.write_all(b"{\"type\":\"thread.started\",\"thread_id\":\"t-head\"}\n")
            .unwrap();
        // Lines that straddle the end of the head and the start of the tail.
        for _ in 0..(5 * mib / 100) {
            f.write_all(filler.as_bytes()).unwrap();
        }
        f.write_all(b"{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"Done.\"}}\n")
                .unwrap();
        f.write_all(b"{\"type\":\"turn.completed\",\"usage\":{\"output_tokens\":3}}\n")
            .unwrap();
    });
    let size = file.metadata().unwrap().len();
    let digest = digest_bounded(&file, size, 2 * mib).unwrap();
    assert!(digest.truncated);
    assert_eq!(digest.skipped_bytes, size - 2 * mib);
    assert_eq!(digest.bytes, 2 * mib);
    assert_eq!(digest.thread_id.as_deref(), Some("t-head"));
    assert_eq!(digest.final_text.as_deref(), Some("Done."));
    assert_eq!(digest.usage, Some(json!({"output_tokens": 3})));
    assert_eq!(events::verdict(&digest).status, Outcome::Success);
    // Only whole filler lines were seen: the cut ones at both edges were dropped.
    let whole_lines = (mib - 44) / 100 + (mib - 142) / 100;
    assert_eq!(digest.lines, 1 + whole_lines + 2, "{digest:?}");
    assert_eq!(digest.skipped_lines, 0);
    // Within the bound it is read whole.
    let whole = digest_bounded(&file, size, size).unwrap();
    assert!(!whole.truncated);
    assert_eq!((whole.bytes, whole.skipped_bytes), (size, 0));
    let mut finalized = json!({"worker_lifecycle": {}});
    let finalization = Finalization {
        verdict: events::verdict(&digest),
        completed_at: NOW,
        digest: Some(digest),
        exit_code: None,
    };
    apply(
        &mut finalized,
        &Change::Finalize(Box::new(finalization)),
        NOW,
    )
    .unwrap();
    let result = &finalized["worker_result"];
    assert_eq!(result["raw_output_bytes"], json!(size));
    assert_eq!(result["raw_output_truncated"], json!(true));
    assert_eq!(result["raw_output_skipped_bytes"], json!(size - 2 * mib));
}

#[test]
fn a_tail_that_starts_on_a_line_keeps_that_line() {
    use std::io::Write;
    let mib = 1u64 << 20;
    let file = scratch_file("aligned", |f| {
        // 3 MiB of 1 KiB lines: the tail of a 2 MiB bound starts exactly on a line.
        let line = format!("{}\n", "y".repeat(1023));
        for _ in 0..3 * 1024 {
            f.write_all(line.as_bytes()).unwrap();
        }
    });
    let digest = digest_bounded(&file, 3 * mib, 2 * mib).unwrap();
    assert_eq!(digest.lines, 2 * 1024);
}

#[test]
fn a_sparse_stream_costs_its_data_not_its_size() {
    use std::io::{Seek, SeekFrom, Write};
    let tib = 1u64 << 40;
    let last = b"{\"type\":\"turn.completed\",\"usage\":{\"output_tokens\":1}}\n";
    let file = scratch_file("sparse", |f| {
        f.write_all(b"{\"type\":\"thread.started\",\"thread_id\":\"t-1\"}\n")
            .unwrap();
        f.seek(SeekFrom::Start(tib)).unwrap();
        f.write_all(b"\n").unwrap();
        f.write_all(last).unwrap();
    });
    let size = file.metadata().unwrap().len();
    let digest = digest_bounded(&file, size, DEFAULT_MAX_STREAM_READ).unwrap();
    assert_eq!(digest.thread_id.as_deref(), Some("t-1"));
    assert_eq!(
        digest.terminal.as_ref().map(|t| t.event),
        Some("turn.completed")
    );
    assert!(digest.truncated);
    assert_eq!(digest.skipped_bytes, size - DEFAULT_MAX_STREAM_READ);
}

#[test]
fn a_stream_is_digested_once_per_identity() {
    let reading = StreamReading::new(DEFAULT_MAX_STREAM_READ);
    let meta = |size, mtime_ms| fs::FileMeta {
        dev: 1,
        ino: 2,
        mode: 0o100644,
        uid: 0,
        gid: 0,
        nlink: 1,
        size,
        mtime_ms,
    };
    let mut made = 0;
    for _ in 0..3 {
        let digest = reading
            .digest(&meta(10, NOW), || {
                made += 1;
                Ok(success_digest())
            })
            .unwrap();
        assert_eq!(digest, success_digest());
    }
    assert_eq!(made, 1);
    // Another size or mtime is another stream.
    reading
        .digest(&meta(11, NOW), || {
            made += 1;
            Ok(Digest::default())
        })
        .unwrap();
    reading
        .digest(&meta(11, NOW + 1), || {
            made += 1;
            Ok(Digest::default())
        })
        .unwrap();
    assert_eq!(made, 3);
}

#[test]
fn default_stream_paths_come_only_from_safe_ids() {
    assert!(safe_id("d-1.a_b"));
    assert!(!safe_id("."));
    assert!(!safe_id(".."));
    assert!(!safe_id("../x"));
    assert!(!safe_id("a/b"));
    assert!(!safe_id(""));
    assert!(!safe_id(&"x".repeat(129)));
    let doc = crate::model::parse_delegation(br#"{"delegation_id":"../../etc/passwd"}"#).unwrap();
    assert_eq!(stream_path(&doc), None);
    let doc = crate::model::parse_delegation(br#"{"delegation_id":"d1"}"#).unwrap();
    assert_eq!(
        stream_path(&doc),
        Some(PathBuf::from("raw-events/d1.jsonl"))
    );
    let doc = crate::model::parse_delegation(
        br#"{"delegation_id":"d1","worker_launch_evidence":{"raw_events_file":"/abs/s.jsonl"}}"#,
    )
    .unwrap();
    assert_eq!(stream_path(&doc), Some(PathBuf::from("/abs/s.jsonl")));
}

#[test]
fn a_stream_seen_first_is_recorded_with_what_comes_with_it() {
    let inode = StreamInode { dev: 8, ino: 1234 };
    let alone = Change::StreamSeen { inode, then: None };
    assert_eq!(alone.action(), "stream_recorded");
    let mut doc = json!({"worker_lifecycle": {"last_progress_at": "old"}});
    apply(&mut doc, &alone, NOW).unwrap();
    assert_eq!(
        doc,
        json!({"worker_lifecycle": {"last_progress_at": "old", "raw_events_inode": {"dev": 8, "ino": 1234}}})
    );
    let progress = Change::StreamSeen {
        inode,
        then: Some(Box::new(Change::Progress {
            at: NOW,
            fingerprint: None,
        })),
    };
    assert_eq!(progress.action(), "progressed");
    let detail = serde_json::to_value(change_detail(&progress)).unwrap();
    assert!(!detail.as_object().unwrap().contains_key("raw_events_inode"));
    let mut doc = json!({"worker_lifecycle": {}});
    apply(&mut doc, &progress, NOW).unwrap();
    assert_eq!(
        doc["worker_lifecycle"]["last_progress_at"],
        "2026-11-22T08:00:00.000Z"
    );
    assert_eq!(
        doc["worker_lifecycle"]["raw_events_inode"],
        json!({"dev": 8, "ino": 1234})
    );
    let mut not_an_object = json!({"worker_lifecycle": 3});
    assert!(apply(&mut not_an_object, &alone, NOW).is_err());
    assert_eq!(not_an_object, json!({"worker_lifecycle": 3}));
}
