use super::*;

#[test]
fn a_no_process_mark_is_dropped_when_the_document_now_names_a_process_or_progress() {
    let low = crate::cli::parse([
        "reclaim",
        "--dry-run",
        "--now",
        "2026-11-22T08:00:00Z",
        "run",
    ])
    .unwrap();
    let command = low.command.unwrap();
    let config = crate::cli::config::resolve(low, command, false).unwrap();
    let host = LazyHost::default();
    let change = Reclaim {
        state: State::Stale,
        termination: Termination::NoProcess,
        process_id: None,
        stale_at: None,
        timed_out_at: None,
        signal_via: None,
        descendants_signalled: Vec::new(),
        survivors: Vec::new(),
    };
    let doc = |lifecycle: &str| {
        format!(
            r#"{{"delegation_id":"d","child_agent":{{"status":"running"}},"worker_lifecycle":{lifecycle}}}"#
        )
    };
    let recheck = |lifecycle: &str| {
        still_needs_no_process_reclaim(doc(lifecycle).as_bytes(), &config, &host, &change).unwrap()
    };
    // Still stale with no process: the mark stands.
    assert!(recheck(r#"{"last_progress_at":"2026-11-22T06:00:00Z"}"#).is_some());
    // The orchestrator recorded fresh progress, or a process, meanwhile: not any more.
    assert!(recheck(r#"{"last_progress_at":"2026-11-22T07:59:59Z"}"#).is_none());
    assert!(recheck(r#"{"last_progress_at":"2026-11-22T06:00:00Z","process_id":4242}"#).is_none());
    // Finished meanwhile.
    assert!(
        still_needs_no_process_reclaim(
            br#"{"child_agent":{"status":"completed"},"worker_lifecycle":{}}"#,
            &config,
            &host,
            &change
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn the_last_look_drops_a_target_whose_stream_or_document_moved_since_the_plan() {
    let low = crate::cli::parse([
        "reclaim",
        "--dry-run",
        "--now",
        "2026-11-22T08:00:00Z",
        "run",
    ])
    .unwrap();
    let command = low.command.unwrap();
    let config = crate::cli::config::resolve(low, command, false).unwrap();
    let host = LazyHost::default();
    let now = crate::core::time::parse_rfc3339("2026-11-22T08:00:00Z").unwrap();
    let stale = br#"{"delegation_id":"d","child_agent":{"status":"running"},"worker_lifecycle":{"last_progress_at":"2026-11-22T06:00:00Z"}}"#;
    let check = |bytes: &[u8], mtime: Option<i64>| {
        recheck(bytes, mtime, None, now, &config, &host).unwrap()
    };
    assert_eq!(check(stale, None), None, "no evidence: still stuck");
    assert_eq!(
        check(stale, Some(now - 3 * 3_600_000)),
        None,
        "a stream older than the baseline is no progress"
    );
    assert!(
        check(stale, Some(now - 1_000)).is_some(),
        "a stream written a second ago is progress"
    );
    assert!(
        check(stale, Some(now + 1_000)).is_some(),
        "a stream written after flatline read its clock is progress"
    );
    assert_eq!(
        check(stale, Some(now + 86_400_000)),
        None,
        "a stream dated a day ahead is not evidence"
    );
    let fresh = br#"{"delegation_id":"d","child_agent":{"status":"running"},"worker_lifecycle":{"last_progress_at":"2026-11-22T07:59:59Z"}}"#;
    assert!(check(fresh, None).is_some(), "the document moved");
    let done =
        br#"{"delegation_id":"d","child_agent":{"status":"completed"},"worker_lifecycle":{}}"#;
    assert!(check(done, None).is_some(), "finished meanwhile");
    let other = br#"{"delegation_id":"d","child_agent":{"status":"running"},"worker_lifecycle":{"last_progress_at":"2026-11-22T06:00:00Z"}}"#;
    assert!(
        recheck(other, None, Some(4242), now, &config, &host)
            .unwrap()
            .is_some(),
        "the plan was for process 4242; the document names none now"
    );
}

#[test]
fn a_record_that_would_pass_16_mib_is_not_recordable() {
    let info = TargetInfo {
        state: State::Stale,
        process_id: Some(4242),
        stale_at: None,
        timed_out_at: None,
    };
    let record = placeholder_record(&info);
    let apply = |doc: &mut Value| record.apply(doc, 0);
    let small = recorded_size(br#"{"worker_lifecycle":{}}"#, &apply).unwrap();
    assert!(small > 100);
    assert!(recorded_size(b"[1]", &apply).is_err(), "not an object");
    assert!(
        recorded_size(br#"{"x":"\ud800"}"#, &apply).is_err(),
        "a lone surrogate cannot be written back"
    );
}

#[test]
fn a_record_is_merged_into_a_status_the_orchestrator_set_meanwhile() {
    let reclaim = Reclaim {
        state: State::Stale,
        termination: Termination::Terminated,
        process_id: Some(4242),
        stale_at: Some(0),
        timed_out_at: None,
        signal_via: Some("pidfd"),
        descendants_signalled: vec![4243],
        survivors: vec![],
    };
    let record = json!({"signal_via": "pidfd", "termination": "terminated",
                            "descendants_signalled": [4243], "survivors": []});
    let mut reaped = json!({
        "child_agent": {"status": "failed"},
        "worker_lifecycle": {"state": "failed", "exit_code": 143},
        "latest_failure": {"reason": "killed", "stage": "orchestrator"},
    });
    reclaim.apply(&mut reaped, 1_795_334_400_000).unwrap();
    assert_eq!(
        reaped,
        json!({
            "child_agent": {"status": "failed"},
            "worker_lifecycle": {"state": "failed", "exit_code": 143, "reclaim_state": "reclaimed"},
            "latest_failure": {"reason": "killed", "stage": "orchestrator"},
            "reclaim": record,
        }),
        "the orchestrator's status and failure are kept"
    );
    let mut completed = json!({"child_agent": {"status": "completed"}, "latest_failure": null});
    reclaim.apply(&mut completed, 1_795_334_400_000).unwrap();
    assert_eq!(completed["child_agent"]["status"], "completed");
    assert_eq!(
        completed["latest_failure"]["reason"], "timeout",
        "set when none is"
    );
    assert_eq!(completed["worker_lifecycle"]["reclaim_state"], "reclaimed");
    let mut running = json!({"child_agent": {"status": "running"}});
    reclaim.apply(&mut running, 1_795_334_400_000).unwrap();
    assert_eq!(
        running["child_agent"]["status"], "failed",
        "still running: the full record"
    );
}

fn note(delegation: &str, flatline: (i32, u64)) -> Noted {
    Noted {
        delegation: delegation.into(),
        pid: 4242,
        start_ticks: 99,
        boot_id: Some("boot-a".into()),
        state: "timed_out",
        signal: "SIGTERM",
        time: 1_795_334_400_000,
        flatline_pid: flatline.0,
        flatline_start_ticks: flatline.1,
    }
}

#[test]
fn a_note_speaks_only_for_the_process_it_signalled() {
    let low = crate::cli::parse(["reclaim", "--dry-run", "run"]).unwrap();
    let command = low.command.unwrap();
    let config = crate::cli::config::resolve(low, command, false).unwrap();
    let host = LazyHost::default();
    let noted = note("d.json", (77, 5));
    let matches = |lifecycle: &str| {
        let doc =
            format!(r#"{{"child_agent":{{"status":"running"}},"worker_lifecycle":{lifecycle}}}"#);
        scan::inspect(doc.as_bytes(), &config, &host, |_, _, _, view| {
            note_matches(&noted, view)
        })
        .unwrap()
    };
    assert!(matches(r#"{"process_id":4242}"#));
    assert!(
        !matches(r#"{"process_id":4243}"#),
        "another worker launched since"
    );
    assert!(!matches("{}"));
}

#[test]
fn a_note_round_trips_and_anything_else_is_no_note() {
    let noted = note("d.json", (77, 5));
    assert_eq!(Noted::from_value(&noted.to_value()), Some(noted.clone()));
    assert_eq!(noted.to_value()["time"], "2026-11-22T08:00:00.000Z");
    assert_eq!(Noted::from_value(&json!({"delegation": "d.json"})), None);
    assert_eq!(Noted::from_value(&json!(42)), None);
}

#[test]
fn notes_of_a_running_flatline_are_its_own_and_the_others_are_orphans() {
    let me = (10, 1);
    // pid 77 started at tick 5 still runs; pid 78 is another process now; 79 is gone.
    let alive = |pid: i32| match pid {
        77 => Some(5),
        78 => Some(6),
        4242 => Some(99),
        _ => None,
    };
    let mut other_boot = note("e.json", (77, 5));
    other_boot.boot_id = Some("boot-b".into());
    let ledger = classify(
        vec![
            note("a.json", (77, 5)),
            note("b.json", (78, 5)),
            note("c.json", (79, 5)),
            note("m.json", me),
            other_boot,
        ],
        me,
        Some("boot-a"),
        &alive,
    );
    assert_eq!(ledger.theirs, HashSet::from(["a.json".to_string()]));
    assert_eq!(
        ledger.orphans.keys().cloned().collect::<Vec<_>>(),
        ["b.json", "c.json", "e.json", "m.json"]
    );
    assert!(!noted_process_gone(
        &note("a.json", me),
        Some("boot-a"),
        &alive
    ));
    assert!(noted_process_gone(
        &note("a.json", me),
        Some("boot-b"),
        &alive
    ));
    let mut reused = note("a.json", me);
    reused.start_ticks = 100;
    assert!(noted_process_gone(&reused, Some("boot-a"), &alive));
}

#[test]
fn the_record_carries_every_field() {
    let reclaim = Reclaim {
        state: State::TimedOut,
        termination: Termination::Killed,
        process_id: Some(4242),
        stale_at: None,
        timed_out_at: Some(1_795_334_300_000),
        signal_via: Some("pidfd"),
        descendants_signalled: vec![4243, 4250],
        survivors: vec![],
    };
    let mut doc = json!({
        "delegation_id": "d",
        "child_agent": {"status": "running"},
        "worker_lifecycle": {"started_at": "s", "state": "running_active"},
        "extra": 1
    });
    reclaim.apply(&mut doc, 1_795_334_400_000).unwrap();
    let summary =
        "Worker process 4242 exceeded the bounded timeout and was reclaimed by flatline (killed).";
    assert_eq!(
        doc,
        json!({
            "delegation_id": "d",
            "child_agent": {"status": "failed"},
            "worker_lifecycle": {
                "started_at": "s", "state": "timed_out", "reclaim_state": "reclaimed",
                "process_last_seen_at": "2026-11-22T08:00:00.000Z", "returned_at": "2026-11-22T08:00:00.000Z",
                "summary": summary, "timed_out_at": "2026-11-22T07:58:20.000Z"
            },
            "extra": 1,
            "updated_at": "2026-11-22T08:00:00.000Z",
            "completed_at": "2026-11-22T08:00:00.000Z",
            "result_summary": summary,
            "latest_failure": {"stage": "execution", "reason": "timeout", "summary": summary,
                               "recorded_at": "2026-11-22T08:00:00.000Z"},
            "reclaim": {"signal_via": "pidfd", "termination": "killed",
                        "descendants_signalled": [4243, 4250], "survivors": []}
        })
    );
    let stale = Reclaim {
        state: State::Stale,
        termination: Termination::NoProcess,
        process_id: None,
        ..reclaim
    };
    assert_eq!(
        stale.summary(),
        "Worker (no process recorded) stopped making progress and was reclaimed by flatline (no_process)."
    );
}
