use super::*;

#[test]
fn stat_is_parsed_after_the_last_parenthesis() {
    let line = b"4242 (evil) S 1 2 3) R 77 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n";
    let stat = parse_stat(line).unwrap();
    assert_eq!(stat.state, b'R');
    assert_eq!(stat.ppid, 77);
    assert_eq!(stat.start_ticks, 987_654);
    let zombie = b"5 (z) Z 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0";
    assert!(parse_stat(zombie).unwrap().exited());
    // A leader that called pthread_exit while 2 other threads run: alive.
    let leader = b"5 (z) Z 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 3 0 42 0 0";
    assert_eq!(parse_stat(leader).unwrap().threads, 3);
    assert!(!parse_stat(leader).unwrap().exited());
    assert!(
        parse_stat(b"5 (z) X 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 3 0 42 0 0")
            .unwrap()
            .exited()
    );
    assert_eq!(parse_stat(b"garbage"), None);
    assert_eq!(parse_stat(b"1 (x) S 1"), None);
}

#[test]
fn status_gives_tgid_and_real_uid() {
    let text = b"Name:\tsleep\nTgid:\t4242\nPid:\t4243\nUid:\t1000\t0\t0\t0\n";
    assert_eq!(
        parse_status(text),
        Some(Status {
            tgid: 4242,
            uid: 1000
        })
    );
    assert_eq!(parse_status(b"Name:\tx\n"), None);
}

#[test]
fn nspid_lines_tell_nested_namespaces() {
    assert_eq!(nspid_depth(b"Name:\tx\nNSpid:\t42\n"), Some(1));
    assert_eq!(nspid_depth(b"Name:\tx\nNSpid:\t4242\t7\t1\n"), Some(3));
    assert_eq!(nspid_depth(b"Name:\tx\n"), None);
}

#[test]
fn the_tree_walk_finds_descendants_started_after_the_root() {
    let entry = |pid, ppid, start_ticks| ProcEntry {
        pid,
        ppid,
        start_ticks,
        exited: false,
        kernel_thread: false,
    };
    let table = [
        entry(1, 0, 0),
        entry(100, 1, 50),
        entry(101, 100, 60),
        entry(102, 101, 70),
        entry(103, 100, 40), // older than the root: a stale ppid link, not a child
        entry(104, 103, 80),
        entry(200, 1, 55),
        entry(201, 200, 65),
    ];
    let found: Vec<i32> = descendants(&table, 100, 50).iter().map(|e| e.pid).collect();
    assert_eq!(found, [101, 102]);
    assert!(descendants(&table, 102, 70).is_empty());
}
#[test]
fn forbidden_pids_never_validate() {
    let host = test_host();
    for value in [0, 1, -1, -2, 32769, 4_294_967_295, 4_294_967_297, i128::MAX] {
        assert_eq!(
            validate(&Field::Value(value), &host),
            Some(Err(InvalidPid::OutOfRange(value))),
            "{value}"
        );
    }
    assert_eq!(
        validate(&Field::Value(1000), &host),
        Some(Err(InvalidPid::Flatline))
    );
    assert_eq!(
        validate(&Field::Value(999), &host),
        Some(Err(InvalidPid::Ancestor))
    );
    assert_eq!(
        validate(&Field::Value(500), &host),
        Some(Err(InvalidPid::Ancestor))
    );
    assert_eq!(
        validate(&Field::Wrong("a string"), &host),
        Some(Err(InvalidPid::NotAnInteger("a string")))
    );
    assert_eq!(validate(&Field::Absent, &host), None);
    assert_eq!(validate(&Field::Null, &host), None);
    assert_eq!(validate(&Field::Value(2), &host), Some(Ok(Pid(2))));
    assert_eq!(validate(&Field::Value(32768), &host), Some(Ok(Pid(32768))));
}

#[test]
fn start_time_from_ticks() {
    let host = test_host();
    assert_eq!(host.start_ms(0), 1_700_000_000_000);
    assert_eq!(host.start_ms(12_345), 1_700_000_123_450);
}

fn alive(start_ms: Millis, start_ticks: u64) -> Observation {
    Observation::Alive {
        start_ticks,
        start_ms,
        uid: Some(0),
        pidfd_ino: None,
    }
}

const T: Millis = 1_800_000_000_000;

/// A worker whose earliest sign of life is T with a precision of 1 ms (U = T + 1 ms),
/// launched a second before.
fn evidence() -> Evidence {
    Evidence {
        anchor: Some(T),
        upper: Some(T + 1),
        launch: Some(T - 1_000),
        ..Evidence::default()
    }
}

fn verdict(start_ms: Millis, evidence: Evidence) -> Identity {
    identify(
        alive(start_ms, 1),
        evidence,
        None,
        &test_host(),
        WindowPolicy::default(),
    )
}

#[test]
fn the_window_verifies_only_between_its_bounds() {
    // [L, U] = [T − 1 s − 250 ms, T + 1 ms + 250 ms], both ends included.
    assert_eq!(verdict(T, evidence()), Identity::Verified);
    assert_eq!(verdict(T - 1_250, evidence()), Identity::Verified);
    assert_eq!(verdict(T - 1_251, evidence()), Identity::Unverifiable);
    assert_eq!(verdict(T + 251, evidence()), Identity::Verified);
    assert_eq!(verdict(T + 252, evidence()), Identity::Unverifiable);
    // Within 2 s after U: never a fact, whatever the stream says.
    let streamed = Evidence {
        stream_mtime: Some(T + 100),
        ..evidence()
    };
    assert_eq!(verdict(T + 2_251, streamed), Identity::Unverifiable);
    // Past U + 2 s with the stream written before that start: reused.
    assert_eq!(verdict(T + 2_252, streamed), Identity::Reused);
    assert_eq!(verdict(T + 3_600_000, streamed), Identity::Reused);
    // No stream, or a stream written since: not certain, so unverifiable.
    assert_eq!(verdict(T + 3_600_000, evidence()), Identity::Unverifiable);
    let written_since = Evidence {
        stream_mtime: Some(T + 3_600_000),
        ..evidence()
    };
    assert_eq!(
        verdict(T + 3_600_000, written_since),
        Identity::Unverifiable
    );
    // Started before L: unverifiable, never reused (an older process is not proof).
    assert_eq!(verdict(T - 86_400_000, streamed), Identity::Unverifiable);
    // No anchor at all: unverifiable.
    assert_eq!(verdict(T, Evidence::default()), Identity::Unverifiable);
}

#[test]
fn a_whole_second_process_started_at_gives_a_1_25_s_window_above() {
    // process_started_at "…:00Z" (whole second, may be 1 s early): U = T + 2 s.
    let whole = Evidence {
        anchor: Some(T),
        upper: Some(T + 2_000),
        launch: Some(T),
        ..Evidence::default()
    };
    assert_eq!(verdict(T + 2_250, whole), Identity::Verified);
    assert_eq!(verdict(T + 2_251, whole), Identity::Unverifiable);
    assert_eq!(verdict(T - 250, whole), Identity::Verified);
    assert_eq!(verdict(T - 251, whole), Identity::Unverifiable);
}

#[test]
fn the_launch_bound_is_clamped_and_a_late_launch_ignored() {
    // A launch in 1970 opens nothing: L is at most 60 s before E.
    let ancient = Evidence {
        launch: Some(0),
        ..evidence()
    };
    let w = window(&ancient, WindowPolicy::default()).unwrap();
    assert_eq!(w.lower, T - 60_000);
    assert!(!w.launch_after_start);
    assert_eq!(verdict(T - 60_000, ancient), Identity::Verified);
    assert_eq!(verdict(T - 60_001, ancient), Identity::Unverifiable);
    // A launch after E (minus the slack) is ignored, with a warning; the clamp stands.
    let late = Evidence {
        launch: Some(T + 251),
        ..evidence()
    };
    let w = window(&late, WindowPolicy::default()).unwrap();
    assert!(w.launch_after_start);
    assert_eq!(w.lower, T - 60_000);
    let just = Evidence {
        launch: Some(T + 250),
        ..evidence()
    };
    let w = window(&just, WindowPolicy::default()).unwrap();
    assert!(!w.launch_after_start);
    assert_eq!(w.lower, T);
    // No launch recorded: the clamp alone.
    let none = Evidence {
        launch: None,
        ..evidence()
    };
    assert_eq!(
        window(&none, WindowPolicy::default()).unwrap().lower,
        T - 60_000
    );
    // The flags move both bounds.
    let policy = WindowPolicy {
        slack: 0,
        max_spawn_delay: 500,
    };
    let w = window(&ancient, policy).unwrap();
    assert_eq!((w.lower, w.upper), (T - 500, T + 1));
}

#[test]
fn a_clock_step_or_a_foreign_namespace_makes_the_window_unverifiable() {
    let stepped = Evidence {
        clock_stepped: true,
        stream_mtime: Some(T),
        ..evidence()
    };
    assert_eq!(verdict(T, stepped), Identity::Unverifiable);
    assert_eq!(verdict(T + 3_600_000, stepped), Identity::Unverifiable);
    let foreign = Evidence {
        foreign_pid_ns: true,
        ..evidence()
    };
    assert_eq!(verdict(T, foreign), Identity::Unverifiable);
    let host = test_host();
    let policy = WindowPolicy::default();
    // Another namespace: never gone or reused either.
    assert_eq!(
        identify(Observation::Exited, foreign, None, &host, policy),
        Identity::Unverifiable
    );
    assert_eq!(
        identify(Observation::Exited, evidence(), None, &host, policy),
        Identity::Gone
    );
    assert_eq!(
        identify(Observation::Zombie, evidence(), None, &host, policy),
        Identity::Gone
    );
    assert_eq!(
        identify(Observation::Hidden, evidence(), None, &host, policy),
        Identity::Unverifiable
    );
}

#[test]
fn the_clock_is_noted_and_a_step_is_seen() {
    let first = note_clock(None, 1_000_000, T, 250);
    assert_eq!(first.stepped_at, None);
    assert_eq!(first.section["realtime_minus_boottime_ms"], 1_000_000);
    // Within the slack: no step, the recorded offset stays (no rewrite for jitter).
    let same = note_clock(Some(&first.section), 1_000_250, T + 10, 250);
    assert_eq!(same, first);
    let stepped = note_clock(Some(&first.section), 1_000_251, T + 20, 250);
    assert_eq!(stepped.stepped_at, Some(T + 20));
    assert_eq!(stepped.section["realtime_minus_boottime_ms"], 1_000_251);
    // The step is remembered by later runs.
    let later = note_clock(Some(&stepped.section), 1_000_251, T + 30, 250);
    assert_eq!(later.stepped_at, Some(T + 20));
}

#[test]
fn the_pid_namespace_is_noted_once() {
    let (section, foreign) = note_pid_ns(None, Some(7));
    assert_eq!(section, Some(serde_json::json!({"inode": 7})));
    assert!(!foreign);
    let stored = serde_json::json!({"inode": 7});
    assert_eq!(note_pid_ns(Some(&stored), Some(7)), (None, false));
    assert_eq!(note_pid_ns(Some(&stored), Some(8)), (None, true));
    assert_eq!(note_pid_ns(Some(&stored), None), (None, true));
}

#[test]
fn a_fingerprint_decides_when_present() {
    let host = test_host();
    let policy = WindowPolicy::default();
    let fingerprint = Fingerprint {
        start_ticks: 777,
        boot_id: "boot-a".into(),
        pid_ns: 4_026_531_836,
        pidfd_ino: None,
    };
    let evidence = Evidence::default();
    let check = |observation, fingerprint: &Fingerprint| {
        identify(observation, evidence, Some(fingerprint), &host, policy)
    };
    assert_eq!(check(alive(0, 777), &fingerprint), Identity::Verified);
    assert_eq!(check(alive(0, 778), &fingerprint), Identity::Reused);
    assert_eq!(check(Observation::Exited, &fingerprint), Identity::Gone);
    let other_boot = Fingerprint {
        boot_id: "boot-b".into(),
        ..fingerprint.clone()
    };
    assert_eq!(check(alive(0, 777), &other_boot), Identity::Gone);
    let other_ns = Fingerprint {
        pid_ns: 1,
        ..fingerprint.clone()
    };
    assert_eq!(check(alive(0, 777), &other_ns), Identity::Unverifiable);
    // The pidfs inode tells apart two processes of one clock tick; a side that has none
    // skips the field, never a mismatch.
    let with_ino = Fingerprint {
        pidfd_ino: Some(900),
        ..fingerprint
    };
    let alive_ino = |ino| Observation::Alive {
        start_ticks: 777,
        start_ms: 0,
        uid: Some(0),
        pidfd_ino: ino,
    };
    assert_eq!(check(alive_ino(Some(900)), &with_ino), Identity::Verified);
    assert_eq!(check(alive_ino(Some(901)), &with_ino), Identity::Reused);
    assert_eq!(check(alive_ino(None), &with_ino), Identity::Verified);
}
