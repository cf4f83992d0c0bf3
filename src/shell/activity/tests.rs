use super::*;

#[test]
fn the_busy_mark_is_written_only_when_entering_or_leaving_running_busy() {
    let mut tracker = Tracker::default();
    assert_eq!(tracker.busy_mark(Some("running_busy")), None, "not sampled");
    tracker.judged = Some(State::RunningBusy);
    assert_eq!(tracker.busy_mark(None), Some("running_busy"));
    assert_eq!(
        tracker.busy_mark(Some("running_active")),
        Some("running_busy")
    );
    assert_eq!(tracker.busy_mark(Some("running_busy")), None);
    tracker.judged = Some(State::TimedOut);
    assert_eq!(tracker.busy_mark(Some("running_busy")), Some("timed_out"));
    assert_eq!(tracker.busy_mark(Some("running_quiet")), None);
    tracker.defer_current = true;
    tracker.set_current(None);
    assert_eq!(
        tracker.busy_mark(Some("running_busy")),
        None,
        "another document"
    );
    // A set-aside that was not taken (the document was not visited) ends with it.
    let meta = crate::fs::FileMeta {
        dev: 0,
        ino: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        nlink: 1,
        size: 0,
        mtime_ms: 0,
    };
    assert!(!tracker.take_defer(OsStr::new("d.json"), meta, b"{}"));
}

fn stored_at(at_ms: Millis) -> StoredSample {
    StoredSample {
        fingerprint: "f".into(),
        sample: Sample {
            at_ms,
            ..Sample::default()
        },
    }
}

#[test]
fn a_watch_compares_with_the_newest_sample_at_least_a_window_old() {
    let mut tracker = Tracker::default();
    let base = |tracker: &Tracker| tracker.run.stored.get("d.json").map(|s| s.sample.at_ms);
    for (at, expected) in [
        (1_000, 1_000),
        (1_100, 1_000),
        (1_200, 1_000),
        (1_300, 1_100),
        (1_400, 1_200),
        // A late look: everything but the previous sample is older than the window.
        (2_000, 1_400),
    ] {
        tracker.run.fresh.insert("d.json".into(), stored_at(at));
        tracker.table = Some(Table::default());
        tracker.roll(200);
        assert_eq!(base(&tracker), Some(expected), "after the look at {at}");
        assert!(tracker.run.fresh.is_empty());
        assert!(tracker.table.is_none(), "the next look reads /proc afresh");
    }
}

#[test]
fn samples_survive_a_round_trip_through_the_file() {
    let mut samples = BTreeMap::new();
    samples.insert(
        "d1.json".to_string(),
        StoredSample {
            fingerprint: "boot/1/4242/99".into(),
            sample: Sample {
                at_ms: 1_700_000_000_123,
                cpu_ms: 4_500,
                io_bytes: None,
                processes: 2,
                newest_start: 120,
                procs: vec![ProcessSample {
                    pid: 4242,
                    start_ticks: 99,
                    cpu_ms: 4_500,
                    comm: "co\"dex".into(),
                }],
            },
        },
    );
    let bytes = render(&samples, &BTreeMap::new());
    assert_eq!(parse(&bytes), Some((samples.clone(), BTreeMap::new())));
    assert_eq!(parse(b"[]"), None);
    // The stall diagnosis is kept with its sample (since and disk_wait across runs).
    let previous = crate::core::stall::Previous {
        stall: crate::core::stall::Stall {
            code: crate::core::stall::StallCode::DiskWait,
            detail: "process 4242 (co\"dex) is in disk sleep".into(),
            since: 1_700_000_000_001,
        },
        disk_sleepers: vec![4242],
    };
    let stalls = BTreeMap::from([("d1.json".to_string(), previous)]);
    let bytes = render(&samples, &stalls);
    assert_eq!(parse(&bytes), Some((samples, stalls)));
    // A malformed entry is dropped, the others kept.
    let partial = br#"{"samples":{"a.json":{"fingerprint":1},"b.json":{"fingerprint":"f","at":"2026-01-01T00:00:00.000Z","cpu_ms":1,"io_bytes":2,"processes":1,"newest_start":3}}}"#;
    let (parsed, _) = parse(partial).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed["b.json"].sample.io_bytes, Some(2));
}
