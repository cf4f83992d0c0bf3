use super::*;
use crate::core::identity::Pid;
use crate::model::parse_delegation;

const NOW: Millis = 1_795_334_400_000;

fn fingerprint(ticks: u64) -> Fingerprint {
    Fingerprint {
        start_ticks: ticks,
        boot_id: "boot".into(),
        pid_ns: 7,
        pidfd_ino: Some(99),
    }
}

fn queued() -> Value {
    let command = vec!["codex".to_string(), "exec".into(), "--json".into()];
    let launcher = fingerprint(5);
    queued_document(&Queued {
        id: "d1",
        task_card: Some("card-1"),
        command: &command,
        raw_events_file: "raw-events/d1.jsonl",
        raw_events_inode: StreamInode { dev: 3, ino: 4 },
        launcher_pid: 4242,
        launcher_fingerprint: Some(&launcher),
        quiet_after_ms: None,
        stale_after_ms: Some(1000),
        timeout_after_ms: None,
        now: NOW,
    })
}

#[test]
fn the_queued_document_is_complete() {
    let doc = queued();
    assert_eq!(doc["delegation_id"], "d1");
    assert_eq!(doc["task_card_id"], "card-1");
    assert_eq!(doc["child_agent"]["status"], "queued");
    let lifecycle = &doc["worker_lifecycle"];
    assert_eq!(lifecycle["state"], "queued");
    assert_eq!(lifecycle["queued_at"], "2026-11-22T08:00:00.000Z");
    assert_eq!(lifecycle["launch_requested_at"], "2026-11-22T08:00:00.000Z");
    assert_eq!(lifecycle["stale_after_ms"], 1000);
    assert!(lifecycle.get("quiet_after_ms").is_none());
    assert_eq!(lifecycle["raw_events_inode"], json!({"dev": 3, "ino": 4}));
    let evidence = &doc["worker_launch_evidence"];
    assert_eq!(evidence["launch_source"], "flatline run");
    assert_eq!(evidence["command"], json!(["codex", "exec", "--json"]));
    assert_eq!(evidence["raw_events_file"], "raw-events/d1.jsonl");
    assert_eq!(evidence["launcher"]["pid"], 4242);
    assert_eq!(
        evidence["launcher"]["fingerprint"],
        json!({"start_ticks": 5, "boot_id": "boot", "pid_ns": 7, "pidfd_ino": 99})
    );
}

#[test]
fn running_records_the_identity_taken_at_birth() {
    let mut doc = queued();
    let started = Started {
        pid: 777,
        started_at: NOW + 3,
        process_started_at: NOW + 2,
        fingerprint: fingerprint(88),
    };
    apply_running(&mut doc, &started, NOW + 4).unwrap();
    assert_eq!(doc["child_agent"]["status"], "running");
    let lifecycle = &doc["worker_lifecycle"];
    assert_eq!(lifecycle["state"], "running_active");
    assert_eq!(lifecycle["process_id"], 777);
    assert_eq!(lifecycle["started_at"], "2026-11-22T08:00:00.003Z");
    assert_eq!(lifecycle["process_started_at"], "2026-11-22T08:00:00.002Z");
    assert_eq!(lifecycle["process_fingerprint"]["start_ticks"], 88);
    assert_eq!(doc["updated_at"], "2026-11-22T08:00:00.004Z");
    // The queued timestamps stay.
    assert_eq!(lifecycle["queued_at"], "2026-11-22T08:00:00.000Z");
}

#[test]
fn running_never_reopens_a_document_someone_ended() {
    let mut doc = queued();
    doc["child_agent"]["status"] = json!("cancelled");
    let started = Started {
        pid: 777,
        started_at: NOW,
        process_started_at: NOW,
        fingerprint: fingerprint(88),
    };
    apply_running(&mut doc, &started, NOW).unwrap();
    assert_eq!(doc["child_agent"]["status"], "cancelled");
    assert_eq!(doc["worker_lifecycle"]["state"], "queued");
    assert_eq!(doc["worker_lifecycle"]["process_id"], 777);
}

#[test]
fn exit_statuses_are_timeouts() {
    assert_eq!(Ended::Exited(0).status(), 0);
    assert_eq!(Ended::Exited(3).status(), 3);
    assert_eq!(Ended::Signalled(9).status(), 137);
    assert_eq!(Ended::Signalled(15).status(), 143);
    assert_eq!(Ended::Exited(3).exit_code(), Some(3));
    assert_eq!(Ended::Signalled(9).exit_code(), None);
    assert_eq!(spawn_failure_status(Some(libc::ENOENT)), 127);
    assert_eq!(spawn_failure_status(Some(libc::EACCES)), 126);
    assert_eq!(spawn_failure_status(Some(libc::ENOEXEC)), 126);
    assert_eq!(spawn_failure_status(None), 126);
}

#[test]
fn ended_records_code_or_signal() {
    let mut doc = queued();
    doc["worker_result"] = json!({"status": "failed", "process_exit": null});
    apply_ended(&mut doc, Ended::Signalled(9)).unwrap();
    assert_eq!(doc["worker_lifecycle"]["exit_signal"], 9);
    assert_eq!(doc["worker_lifecycle"]["exit_code"], Value::Null);
    assert_eq!(
        doc["worker_result"]["process_exit"],
        json!({"success": false, "exit_code": null, "exit_signal": 9})
    );
    apply_ended(&mut doc, Ended::Exited(0)).unwrap();
    assert_eq!(doc["worker_result"]["process_exit"]["success"], true);
    assert_eq!(doc["worker_lifecycle"]["exit_code"], 0);
}

#[test]
fn forwarded_signals_accumulate() {
    let mut doc = queued();
    apply_forwarded(&mut doc, "SIGTERM", NOW).unwrap();
    apply_forwarded(&mut doc, "SIGINT", NOW + 1).unwrap();
    let list = doc["worker_lifecycle"]["forwarded_signals"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["signal"], "SIGTERM");
    assert_eq!(list[1]["at"], "2026-11-22T08:00:00.001Z");
}

#[test]
fn new_ids_are_safe_and_differ_by_their_random_part() {
    let a = new_id(NOW, &[1, 2, 3, 4, 5, 6, 7]);
    let b = new_id(NOW, &[9, 2, 3, 4, 5, 6, 7]);
    assert_eq!(a, "run-20261122T080000000Z-010203040506");
    assert_ne!(a, b);
    assert!(crate::model::safe_id(&a));
}

#[test]
fn the_launcher_is_read_back_only_from_flatline_runs_record() {
    let doc = queued();
    let bytes = serde_json::to_vec(&doc).unwrap();
    let parsed = parse_delegation(&bytes).unwrap();
    let (pid, recorded) = recorded_launcher(&parsed).unwrap();
    assert_eq!(pid, 4242);
    assert_eq!(recorded, fingerprint(5));
    // Another launch source, or an incomplete fingerprint, is no launcher.
    let mut other = doc.clone();
    other["worker_launch_evidence"]["launch_source"] = json!("captain");
    let bytes = serde_json::to_vec(&other).unwrap();
    assert_eq!(recorded_launcher(&parse_delegation(&bytes).unwrap()), None);
    let mut partial = doc;
    partial["worker_launch_evidence"]["launcher"]["fingerprint"] = json!({"start_ticks": 5});
    let bytes = serde_json::to_vec(&partial).unwrap();
    assert_eq!(recorded_launcher(&parse_delegation(&bytes).unwrap()), None);
}

#[test]
fn a_live_launcher_keeps_reclaim_off_its_worker() {
    let host = crate::core::identity::test_host();
    let pid: Pid = crate::core::identity::validate_found(4242, &host).unwrap();
    let signal = Triage::Signal {
        pid,
        start_ticks: 1,
    };
    assert_eq!(
        launcher_guard(signal.clone(), true),
        Triage::Skip(Termination::SkippedLauncher)
    );
    assert_eq!(launcher_guard(signal.clone(), false), signal);
    assert_eq!(
        launcher_guard(Triage::Finalize(Termination::AlreadyExited), true),
        Triage::Skip(Termination::SkippedLauncher)
    );
    assert_eq!(
        launcher_guard(Triage::NoProcess, true),
        Triage::Skip(Termination::SkippedLauncher)
    );
    // A skip keeps its own reason.
    assert_eq!(
        launcher_guard(Triage::Skip(Termination::SkippedForeign), true),
        Triage::Skip(Termination::SkippedForeign)
    );
    assert!(!Termination::SkippedLauncher.needs_attention());
}
