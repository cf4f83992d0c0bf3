//! The run lock, its state directory, the lock group and the busy streak.

use super::*;

fn gid_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().gid()
}

fn refused(outcome: Result<RunLock, LockError>) -> String {
    match outcome {
        Err(LockError::Unusable(what)) => what,
        other => panic!("{other:?}"),
    }
}

#[test]
fn lock_run_creates_the_state_dir_and_excludes_a_second_holder() {
    let scratch = Scratch::new("lock");
    let run = scratch.dir();
    let never = || false;
    let first = lock_run(&run, None, &never).unwrap();
    assert_eq!(mode_of(&scratch.path().join(".flatline")), 0o750);
    assert_eq!(mode_of(&scratch.path().join(".flatline/lock")), 0o640);
    assert_eq!(
        first.state_dir().path(),
        scratch.path().join(".flatline").as_path()
    );

    let started = Instant::now();
    let busy = lock_run(&run, None, &never);
    assert!(started.elapsed() < Duration::from_millis(100));
    let Err(LockError::Busy(busy)) = busy else {
        panic!("{busy:?}");
    };
    // This process holds it (through another descriptor): /proc/locks names it.
    let me = std::process::id() as i32;
    assert_eq!(busy.holder.map(|h| h.pid), Some(me));
    assert_eq!(busy.waited, Duration::ZERO);
    let text = busy.to_string();
    assert!(
        text.starts_with(&format!(
            "held by pid {me} (uid {})",
            files::effective_uid()
        )),
        "{text}"
    );
    assert!(
        text.contains("flatline waited 0 ms (use --wait DURATION"),
        "{text}"
    );

    let waited = lock_run(&run, Some(Duration::from_millis(60)), &never);
    let Err(LockError::Busy(busy)) = waited else {
        panic!("{waited:?}");
    };
    assert!(busy.waited >= Duration::from_millis(60), "{busy:?}");
    assert!(!busy.to_string().contains("use --wait"));

    let stop = || true;
    let stopped = lock_run(&run, Some(Duration::from_secs(10)), &stop);
    assert!(matches!(stopped, Err(LockError::Stopped)), "{stopped:?}");

    drop(first);
    let again = lock_run(&run, None, &never).unwrap();
    write_atomic(again.state_dir(), name("state.json"), b"{}\n", 0o600).unwrap();
    assert!(scratch.path().join(".flatline/state.json").exists());
}

#[test]
fn lock_run_waits_for_a_release() {
    let scratch = Scratch::new("wait");
    let run = scratch.dir();
    let never = || false;
    let first = lock_run(&run, None, &never).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
    });
    let started = Instant::now();
    let second = lock_run(&run, Some(Duration::from_millis(300)), &never);
    assert!(second.is_ok(), "{second:?}");
    assert!(started.elapsed() >= Duration::from_millis(80));
    releaser.join().unwrap();
}

#[test]
fn release_lets_another_holder_in_and_reacquire_takes_it_back() {
    let scratch = Scratch::new("release");
    let run = scratch.dir();
    let never = || false;
    let lock = lock_run(&run, None, &never).unwrap();
    assert!(lock.is_held());
    lock.release().unwrap();
    assert!(!lock.is_held());
    lock.release().unwrap();

    // Someone else takes it meanwhile: reacquire is Busy, at once or after the wait.
    let other = lock_run(&run, None, &never).unwrap();
    assert!(matches!(
        lock.reacquire(None, &never),
        Err(LockError::Busy(_))
    ));
    match lock.reacquire(Some(Duration::from_millis(40)), &never) {
        Err(LockError::Busy(busy)) => assert!(busy.waited >= Duration::from_millis(40)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        lock.reacquire(Some(Duration::from_secs(10)), &|| true),
        Err(LockError::Stopped)
    ));
    assert!(!lock.is_held());

    // Released by the other: taken back, and it excludes a third again.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(60));
        drop(other);
    });
    lock.reacquire(Some(Duration::from_secs(5)), &never)
        .unwrap();
    releaser.join().unwrap();
    assert!(lock.is_held());
    lock.reacquire(None, &never).unwrap();
    assert!(matches!(
        lock_run(&run, None, &never),
        Err(LockError::Busy(_))
    ));

    // A lock file replaced while flatline let go excludes nobody: refused.
    lock.release().unwrap();
    let path = scratch.path().join(".flatline/lock");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "").unwrap();
    set_mode(&path, 0o640);
    match lock.reacquire(None, &never) {
        Err(LockError::Unusable(what)) => assert_eq!(
            what,
            ".flatline/lock was replaced while flatline waited without it, refused"
        ),
        other => panic!("{other:?}"),
    }
    assert!(!lock.is_held());
    drop(lock_run(&run, None, &never).unwrap());
}

#[test]
fn lock_run_refuses_a_symlinked_state_dir() {
    let scratch = Scratch::new("locklink");
    let elsewhere = Scratch::new("locklink-target");
    set_mode(elsewhere.path(), 0o750);
    symlink(elsewhere.path(), scratch.path().join(".flatline")).unwrap();
    let what = refused(lock_run(&scratch.dir(), None, &|| false));
    assert_eq!(what, ".flatline is a symlink, refused");
    assert!(!elsewhere.path().join("lock").exists());
}

#[test]
fn lock_run_refuses_a_state_dir_that_is_a_file() {
    let scratch = Scratch::new("lockfile");
    std::fs::write(scratch.path().join(".flatline"), "").unwrap();
    let outcome = lock_run(&scratch.dir(), None, &|| false);
    assert!(
        matches!(outcome, Err(LockError::Unusable(_))),
        "{outcome:?}"
    );
}

#[test]
fn lock_run_accepts_private_modes_and_refuses_writable_or_open_ones() {
    let scratch = Scratch::new("lockmode");
    let state = scratch.path().join(".flatline");
    std::fs::create_dir(&state).unwrap();
    let shown = state.display().to_string();
    for bad in [0o770, 0o757, 0o2775] {
        set_mode(&state, bad);
        assert_eq!(
            refused(lock_run(&scratch.dir(), None, &|| false)),
            format!(
                ".flatline has mode {bad:04o}, writable by its group or others, refused; \
                 repair: chmod 0750 {shown}"
            )
        );
    }
    // What an earlier flatline made (0700), a set-gid directory, a read-only group: fine.
    for good in [0o700, 0o2750, 0o750, 0o755] {
        set_mode(&state, good);
        drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
    }

    let lock = state.join("lock");
    for good in [0o600, 0o640, 0o660, 0o400] {
        set_mode(&lock, good);
        drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
    }
    set_mode(&lock, 0o644);
    assert_eq!(
        refused(lock_run(&scratch.dir(), None, &|| false)),
        format!(
            ".flatline/lock has mode 0644, with permissions for others, refused; \
             repair: chmod 0640 {}",
            lock.display()
        )
    );
    set_mode(&lock, 0o640);

    let state_file = state.join("state.json");
    std::fs::write(&state_file, "{}\n").unwrap();
    set_mode(&state_file, 0o604);
    assert_eq!(
        refused(lock_run(&scratch.dir(), None, &|| false)),
        format!(
            ".flatline/state.json has mode 0604, with permissions for others, refused; \
             repair: chmod 0640 {}",
            state_file.display()
        )
    );
    // Refused after the flock was taken: it is let go again.
    set_mode(&state_file, 0o600);
    drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
}

#[test]
fn lock_run_refuses_links_symlinks_and_other_kinds_for_lock_and_state() {
    let scratch = Scratch::new("lockowner");
    let state = scratch.path().join(".flatline");
    std::fs::create_dir(&state).unwrap();
    set_mode(&state, 0o750);
    for file in ["lock", "state.json"] {
        let path = state.join(file);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, "{}\n").unwrap();
        set_mode(&path, 0o640);
        std::fs::hard_link(&path, scratch.path().join("alias")).unwrap();
        assert_eq!(
            refused(lock_run(&scratch.dir(), None, &|| false)),
            format!(
                ".flatline/{file} has 2 hard links, refused; repair: rm {} (flatline makes \
                 a new one)",
                path.display()
            )
        );
        std::fs::remove_file(scratch.path().join("alias")).unwrap();

        std::fs::remove_file(&path).unwrap();
        symlink("/etc/passwd", &path).unwrap();
        assert_eq!(
            refused(lock_run(&scratch.dir(), None, &|| false)),
            format!(
                ".flatline/{file} is a symlink, refused; repair: rm {}",
                path.display()
            )
        );
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        assert_eq!(
            refused(lock_run(&scratch.dir(), None, &|| false)),
            format!(
                ".flatline/{file} is a FIFO, not a regular file, refused; repair: rm {}",
                path.display()
            )
        );
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn lock_run_trusts_a_state_dir_of_the_run_directory_owner_only() {
    if !is_root() {
        return;
    }
    let scratch = Scratch::new("lockowners");
    let state = scratch.path().join(".flatline");
    std::fs::create_dir(&state).unwrap();
    set_mode(&state, 0o750);
    std::os::unix::fs::chown(&state, Some(65534), None).unwrap();
    // Neither root's nor the run directory owner's (root's): refused.
    assert_eq!(
        refused(lock_run(&scratch.dir(), None, &|| false)),
        format!(
            ".flatline is owned by uid 65534, neither flatline's uid 0 nor the run \
             directory's owner uid 0, refused; repair: chown 0 {}",
            state.display()
        )
    );
    // The run directory's owner's: root accepts it, and its lock (root's) too.
    std::os::unix::fs::chown(scratch.path(), Some(65534), None).unwrap();
    drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
    std::os::unix::fs::chown(state.join("lock"), Some(65534), None).unwrap();
    drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
}

#[test]
fn new_state_files_get_the_lock_group() {
    if !is_root() {
        return;
    }
    let scratch = Scratch::new("lockgroup");
    std::os::unix::fs::chown(scratch.path(), None, Some(4321)).unwrap();
    // By default the run directory's group.
    let lock = lock_run(&scratch.dir(), None, &|| false).unwrap();
    assert!(lock.notices().is_empty());
    let state = scratch.path().join(".flatline");
    assert_eq!(gid_of(&state), 4321);
    assert_eq!(gid_of(&state.join("lock")), 4321);
    write_in_dir_group(lock.state_dir(), name("state.json"), b"{}\n", 0o640).unwrap();
    assert_eq!(gid_of(&state.join("state.json")), 4321);
    assert_eq!(mode_of(&state.join("state.json")), 0o640);
    drop(lock);

    // --lock-group wins over the run directory's group.
    let other = Scratch::new("lockgroup2");
    std::os::unix::fs::chown(other.path(), None, Some(4321)).unwrap();
    let request = LockRequest {
        group: Some(5432),
        wait: None,
        now: 0,
        stop: &|| false,
    };
    drop(lock_run_as(&other.dir(), &request).unwrap());
    assert_eq!(gid_of(&other.path().join(".flatline")), 5432);
    assert_eq!(gid_of(&other.path().join(".flatline/lock")), 5432);
}

#[test]
fn a_busy_run_counts_the_holders_streak_and_a_taken_lock_ends_it() {
    let scratch = Scratch::new("streak");
    let run = scratch.dir();
    let first = lock_run(&run, None, &|| false).unwrap();
    let me = std::process::id() as i32;
    let mut runs = Vec::new();
    for now in [1_000, 2_000, 3_000] {
        let request = LockRequest {
            group: None,
            wait: None,
            now,
            stop: &|| false,
        };
        let Err(LockError::Busy(busy)) = lock_run_as(&run, &request) else {
            panic!("not busy");
        };
        let streak = busy.streak.clone().unwrap();
        assert_eq!(
            (streak.pid, streak.since.as_str()),
            (me, "1970-01-01T00:00:01.000Z")
        );
        runs.push(streak.runs);
        if streak.runs < 3 {
            assert!(lock_held(&run).is_none());
            assert!(!busy.to_string().contains("lock_held"));
        } else {
            assert!(busy.to_string().ends_with(&format!(
                "; lock_held: pid {me} (uid {}) has held the run lock across 3 runs since \
                 1970-01-01T00:00:01.000Z",
                files::effective_uid()
            )));
        }
    }
    assert_eq!(runs, [1, 2, 3]);
    assert_eq!(lock_held(&run).map(|s| s.runs), Some(3));
    let record = scratch.path().join(".flatline/lock_holders.json");
    assert_eq!(mode_of(&record), 0o640);
    drop(first);
    // No one holds it now: not a problem, even before a run clears the record.
    assert!(lock_held(&run).is_none());
    drop(lock_run(&run, None, &|| false).unwrap());
    assert!(!record.exists());
}

#[test]
fn a_streak_continues_only_with_the_same_pid_and_uid() {
    let holder = LockHolder {
        pid: 42,
        uid: Some(7),
    };
    let one = HolderStreak::next(None, holder, 1_000);
    assert_eq!(one.runs, 1);
    let two = HolderStreak::next(Some(one.clone()), holder, 2_000);
    assert_eq!((two.runs, two.since.as_str()), (2, one.since.as_str()));
    assert_eq!(two.last_seen_at, "1970-01-01T00:00:02.000Z");
    assert!(!two.is_lock_held());
    let three = HolderStreak::next(Some(two.clone()), holder, 3_000);
    assert!(three.is_lock_held());
    let other_pid = LockHolder { pid: 43, ..holder };
    assert_eq!(
        HolderStreak::next(Some(three.clone()), other_pid, 4_000).runs,
        1
    );
    let other_uid = LockHolder {
        uid: Some(8),
        ..holder
    };
    assert_eq!(HolderStreak::next(Some(three), other_uid, 4_000).runs, 1);
}

#[test]
fn proc_locks_names_the_holder_of_one_inode() {
    let text = b"1: POSIX  ADVISORY  WRITE 900 fe:00:77 0 EOF\n\
                 2: FLOCK  ADVISORY  WRITE 4242 fe:00:10011875 0 EOF\n\
                 2: -> FLOCK  ADVISORY  WRITE 5151 fe:00:10011875 0 EOF\n\
                 3: FLOCK  ADVISORY  WRITE 0 103:02:55 0 EOF\n\
                 4: OFDLCK ADVISORY  READ -1 103:02:56 0 EOF\n\
                 garbage\n";
    assert_eq!(lock_holder_pid(text, 0xfe, 0, 10011875), Some(4242));
    assert_eq!(lock_holder_pid(text, 0xfe, 0, 77), Some(900));
    assert_eq!(lock_holder_pid(text, 0xfe, 1, 10011875), None);
    assert_eq!(
        lock_holder_pid(text, 0x103, 2, 55),
        None,
        "pid 0: not mapped here"
    );
    assert_eq!(lock_holder_pid(text, 0x103, 2, 56), None);
    assert_eq!(lock_holder_pid(b"", 1, 1, 1), None);
    // A waiter alone is no holder.
    let waiting = b"2: -> FLOCK  ADVISORY  WRITE 5151 fe:00:9 0 EOF\n";
    assert_eq!(lock_holder_pid(waiting, 0xfe, 0, 9), None);
}

#[test]
fn devices_split_as_glibc_does() {
    assert_eq!(dev_major_minor(0xfe00), (0xfe, 0));
    assert_eq!(dev_major_minor(0x10302), (0x103, 2));
    // glibc's makedev, for devices with big numbers.
    let makedev = |major: u64, minor: u64| {
        (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
    };
    assert_eq!(
        dev_major_minor(makedev(0x12345, 0x6789a)),
        (0x12345, 0x6789a)
    );
}

#[test]
fn groups_resolve_by_number_or_name() {
    assert_eq!(group_id("4321").unwrap(), Some(4321));
    assert_eq!(group_id("root").unwrap(), Some(0));
    assert_eq!(group_id("no-such-group-flatline").unwrap(), None);
    assert!(group_id("99999999999").is_err());
}

#[test]
fn dropping_the_lock_lets_it_go_while_a_forked_child_still_shares_its_descriptor() {
    let scratch = Scratch::new("lock-shared");
    let run = scratch.dir();
    let never = || false;
    let lock = lock_run(&run, None, &never).unwrap();
    // What a worker forked meanwhile holds until it executes (`flatline run`).
    let child_copy = lock.shared_descriptor().unwrap();
    drop(lock);
    let again = lock_run(&run, None, &never);
    assert!(again.is_ok(), "{again:?}");
    drop(child_copy);
}
