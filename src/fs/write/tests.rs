use super::*;
use crate::fs::FileMeta;
use crate::fs::group::*;
use crate::fs::lock::*;
use crate::fs::write::temp::{is_temp_name, random_temp_name, remove_stale_temps, temp_name};
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "flatline-store-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn dir(&self) -> Dir {
        Dir::open(&self.0).unwrap()
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn assert_no_temp(&self) {
        let names = self.names();
        assert!(
            names.iter().all(|name| !name.ends_with(".tmp")),
            "temp left behind: {names:?}"
        );
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    files::effective_uid() == 0
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
}

fn mkfifo(path: &Path) {
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    crate::sys::fd::mkfifo(&cpath, 0o600).unwrap();
}

fn name(text: &str) -> &OsStr {
    OsStr::new(text)
}

#[test]
fn replace_checked_writes_and_keeps_mode_and_owner() {
    let scratch = Scratch::new("replace");
    let file = scratch.path().join("d1.json");
    std::fs::write(&file, "old\n").unwrap();
    set_mode(&file, 0o640);
    if is_root() {
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    }
    let before = std::fs::metadata(&file).unwrap();
    let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"old\n", b"new\n").unwrap();
    assert_eq!(outcome, Replaced::Written);
    assert_eq!(std::fs::read(&file).unwrap(), b"new\n");
    let after = std::fs::metadata(&file).unwrap();
    assert_ne!(
        after.ino(),
        before.ino(),
        "replaced by rename, not in place"
    );
    assert_eq!(after.mode() & 0o7777, 0o640);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    if is_root() {
        assert_eq!((after.uid(), after.gid()), (65534, 65534));
    }
    assert_eq!(scratch.names(), ["d1.json"]);
}

#[test]
fn a_document_writable_by_others_is_never_replaced() {
    let scratch = Scratch::new("foreign");
    let file = scratch.path().join("d1.json");
    for mode in [0o666, 0o646] {
        std::fs::write(&file, "old\n").unwrap();
        set_mode(&file, mode);
        let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"old\n", b"new\n");
        assert!(
            matches!(outcome, Err(StoreError::Foreign(_))),
            "{mode:o}: {outcome:?}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"old\n");
    }
    if is_root() {
        // Root's document must not be group-writable either.
        set_mode(&file, 0o664);
        let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"old\n", b"new\n");
        assert!(
            matches!(outcome, Err(StoreError::Foreign(_))),
            "{outcome:?}"
        );
    }
    assert_eq!(scratch.names(), ["d1.json"]);
}

#[test]
fn replace_checked_keeps_set_id_bits_after_chown() {
    if !is_root() {
        return;
    }
    let scratch = Scratch::new("setid");
    let file = scratch.path().join("tool");
    std::fs::write(&file, "x").unwrap();
    std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    set_mode(&file, 0o6750);
    let outcome = replace_checked(&scratch.dir(), name("tool"), b"x", b"y").unwrap();
    assert_eq!(outcome, Replaced::Written);
    assert_eq!(mode_of(&file), 0o6750);
}

#[test]
fn replace_checked_detects_a_change_before_the_rename() {
    let scratch = Scratch::new("changed");
    let file = scratch.path().join("d1.json");
    std::fs::write(&file, "read by flatline").unwrap();
    let mut hook = || std::fs::write(&file, "written by someone else").unwrap();
    let outcome = replace_checked_with(
        &scratch.dir(),
        name("d1.json"),
        b"read by flatline",
        b"flatline's update",
        &mut hook,
    )
    .unwrap();
    assert_eq!(
        outcome,
        Replaced::Changed(b"written by someone else".to_vec())
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"written by someone else");
    scratch.assert_no_temp();
}

#[test]
fn replace_checked_detects_a_replaced_inode_with_the_same_bytes() {
    let scratch = Scratch::new("inode");
    let file = scratch.path().join("d1.json");
    std::fs::write(&file, "same").unwrap();
    let other = scratch.path().join("other");
    let mut hook = || {
        std::fs::write(&other, "same").unwrap();
        std::fs::rename(&other, &file).unwrap();
    };
    let outcome =
        replace_checked_with(&scratch.dir(), name("d1.json"), b"same", b"new", &mut hook).unwrap();
    assert_eq!(outcome, Replaced::Changed(b"same".to_vec()));
    assert_eq!(std::fs::read(&file).unwrap(), b"same");
    scratch.assert_no_temp();
}

#[test]
fn replace_checked_reports_a_file_that_vanished() {
    let scratch = Scratch::new("vanished");
    let file = scratch.path().join("d1.json");
    std::fs::write(&file, "x").unwrap();
    let mut hook = || std::fs::remove_file(&file).unwrap();
    let outcome = replace_checked_with(&scratch.dir(), name("d1.json"), b"x", b"y", &mut hook);
    assert!(
        matches!(outcome, Err(StoreError::Io(ref e)) if e.kind() == io::ErrorKind::NotFound),
        "{outcome:?}"
    );
    assert!(scratch.names().is_empty(), "{:?}", scratch.names());
}

#[test]
fn replace_checked_of_an_unexpected_original_writes_nothing() {
    let scratch = Scratch::new("unexpected");
    let file = scratch.path().join("d1.json");
    std::fs::write(&file, "current").unwrap();
    let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"stale", b"new").unwrap();
    assert_eq!(outcome, Replaced::Changed(b"current".to_vec()));
    assert_eq!(std::fs::read(&file).unwrap(), b"current");
    scratch.assert_no_temp();
}

#[test]
fn replace_checked_refuses_symlinks_hard_links_and_fifos() {
    let scratch = Scratch::new("refuse");
    let target = scratch.path().join("target");
    std::fs::write(&target, "secret").unwrap();
    symlink(&target, scratch.path().join("link.json")).unwrap();
    std::fs::write(scratch.path().join("linked.json"), "x").unwrap();
    std::fs::hard_link(
        scratch.path().join("linked.json"),
        scratch.path().join("second"),
    )
    .unwrap();
    mkfifo(&scratch.path().join("fifo.json"));
    let dir = scratch.dir();

    let symlinked = replace_checked(&dir, name("link.json"), b"secret", b"owned");
    assert!(
        matches!(symlinked, Err(StoreError::Symlink)),
        "{symlinked:?}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"secret");
    assert!(
        std::fs::symlink_metadata(scratch.path().join("link.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let linked = replace_checked(&dir, name("linked.json"), b"x", b"y");
    assert!(
        matches!(linked, Err(StoreError::MultipleLinks(2))),
        "{linked:?}"
    );
    assert_eq!(std::fs::read(scratch.path().join("second")).unwrap(), b"x");

    let fifo = replace_checked(&dir, name("fifo.json"), b"", b"y");
    assert!(
        matches!(fifo, Err(StoreError::NotRegular("a FIFO"))),
        "{fifo:?}"
    );
    assert_eq!(
        fifo.unwrap_err().to_string(),
        "is a FIFO, not a regular file, refused"
    );
    scratch.assert_no_temp();
}

#[test]
fn replace_checked_refuses_names_that_leave_the_directory() {
    let scratch = Scratch::new("names");
    let dir = scratch.dir();
    for bad in ["", ".", "..", "a/b", "../x"] {
        let outcome = replace_checked(&dir, name(bad), b"", b"y");
        assert!(matches!(outcome, Err(StoreError::Io(_))), "{bad:?}");
    }
}

#[test]
fn replace_checked_clears_a_leftover_temp_of_a_recycled_pid() {
    let scratch = Scratch::new("leftover");
    std::fs::write(scratch.path().join("d1.json"), "a").unwrap();
    let leftover = scratch.path().join(temp_name(name("d1.json")));
    std::fs::write(&leftover, "crashed").unwrap();
    let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"a", b"b").unwrap();
    assert_eq!(outcome, Replaced::Written);
    assert_eq!(scratch.names(), ["d1.json"]);
}

#[test]
fn keep_ownership_failure_is_reported_and_cleaned_up() {
    // As root every owner can be kept; without root, a file of another user cannot.
    if is_root() {
        return;
    }
    let Ok(meta) = std::fs::metadata("/etc/passwd") else {
        return;
    };
    let scratch = Scratch::new("ownership");
    std::fs::write(scratch.path().join("f"), "x").unwrap();
    let dir = scratch.dir();
    let temp = TempFile::create(&dir, name("f")).unwrap();
    let foreign = FileMeta {
        uid: meta.uid(),
        gid: meta.gid(),
        ..files::lstatat(dir.fd(), name("f")).unwrap()
    };
    assert!(matches!(
        temp.keep_ownership(&foreign),
        Err(StoreError::KeepOwnership(_))
    ));
    drop(temp);
    assert_eq!(scratch.names(), ["f"]);
}

#[test]
fn write_atomic_creates_replaces_and_refuses_symlinks() {
    let scratch = Scratch::new("atomic");
    let dir = scratch.dir();
    let file = scratch.path().join("state.json");
    write_atomic(&dir, name("state.json"), b"one\n", 0o640).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"one\n");
    assert_eq!(mode_of(&file), 0o640);

    set_mode(&file, 0o604);
    write_atomic(&dir, name("state.json"), b"two\n", 0o600).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"two\n");
    assert_eq!(mode_of(&file), 0o604, "the existing mode wins");

    let target = scratch.path().join("target");
    std::fs::write(&target, "keep").unwrap();
    symlink(&target, scratch.path().join("link")).unwrap();
    let outcome = write_atomic(&dir, name("link"), b"x", 0o644);
    assert!(matches!(outcome, Err(StoreError::Symlink)), "{outcome:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");

    std::fs::hard_link(&target, scratch.path().join("second")).unwrap();
    let outcome = write_atomic(&dir, name("target"), b"x", 0o644);
    assert!(
        matches!(outcome, Err(StoreError::MultipleLinks(2))),
        "{outcome:?}"
    );
    scratch.assert_no_temp();
}

#[test]
fn append_lines_appends_and_refuses_symlinks_and_hard_links() {
    let scratch = Scratch::new("append");
    let dir = scratch.dir();
    let file = scratch.path().join("events.jsonl");
    append_lines(&dir, name("events.jsonl"), &[b"{\"a\":1}\n".to_vec()]).unwrap();
    assert_eq!(mode_of(&file) & !0o022, 0o644 & !0o022);
    append_lines(
        &dir,
        name("events.jsonl"),
        &[b"{\"b\":2}\n".to_vec(), b"{\"c\":3}\n".to_vec()],
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
    );
    let partial = append_lines(&dir, name("events.jsonl"), &[b"no newline".to_vec()]);
    assert!(matches!(partial, Err(StoreError::Io(_))));

    let target = scratch.path().join("target");
    std::fs::write(&target, "keep").unwrap();
    symlink(&target, scratch.path().join("link.jsonl")).unwrap();
    let outcome = append_lines(&dir, name("link.jsonl"), &[b"x\n".to_vec()]);
    assert!(matches!(outcome, Err(StoreError::Symlink)), "{outcome:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");

    symlink(
        scratch.path().join("missing"),
        scratch.path().join("dangling"),
    )
    .unwrap();
    let outcome = append_lines(&dir, name("dangling"), &[b"x\n".to_vec()]);
    assert!(matches!(outcome, Err(StoreError::Symlink)), "{outcome:?}");
    assert!(!scratch.path().join("missing").exists());

    std::fs::hard_link(&target, scratch.path().join("second")).unwrap();
    let outcome = append_lines(&dir, name("target"), &[b"x\n".to_vec()]);
    assert!(
        matches!(outcome, Err(StoreError::MultipleLinks(2))),
        "{outcome:?}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");

    mkfifo(&scratch.path().join("fifo"));
    let outcome = append_lines(&dir, name("fifo"), &[b"x\n".to_vec()]);
    assert!(
        matches!(outcome, Err(StoreError::NotRegular("a FIFO"))),
        "{outcome:?}"
    );
}

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
fn append_lines_never_glues_onto_a_line_without_its_newline() {
    let scratch = Scratch::new("append-mid-line");
    let dir = scratch.dir();
    let file = scratch.path().join("events.jsonl");
    // A writer that died mid-line, or wrote its last event without a newline.
    std::fs::write(&file, b"{\"a\":1}\n{\"b\":2}").unwrap();
    append_lines(
        &dir,
        name("events.jsonl"),
        &[b"{\"c\":3}\n".to_vec(), b"{\"d\":4}\n".to_vec()],
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n"
    );
    // A log that ends well, or is empty, gets no blank line.
    append_lines(&dir, name("events.jsonl"), &[b"{\"e\":5}\n".to_vec()]).unwrap();
    assert!(
        std::fs::read(&file)
            .unwrap()
            .ends_with(b"{\"d\":4}\n{\"e\":5}\n")
    );
    std::fs::write(scratch.path().join("empty.jsonl"), b"").unwrap();
    append_lines(&dir, name("empty.jsonl"), &[b"x\n".to_vec()]).unwrap();
    assert_eq!(
        std::fs::read(scratch.path().join("empty.jsonl")).unwrap(),
        b"x\n"
    );
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
fn remove_stale_temps_removes_only_flatline_temps() {
    let scratch = Scratch::new("stale");
    for file in [
        ".d1.json.flatline.123.tmp",
        ".d1.json.tmp",
        ".other",
        "d1.json",
        ".d1.json.flatline..tmp",
        ".d1.json.flatline.12a.tmp",
    ] {
        std::fs::write(scratch.path().join(file), "x").unwrap();
    }
    std::fs::create_dir(scratch.path().join(".dir.flatline.7.tmp")).unwrap();
    let target = scratch.path().join("target");
    std::fs::write(&target, "keep").unwrap();
    symlink(&target, scratch.path().join(".link.flatline.8.tmp")).unwrap();
    let dir = scratch.dir();
    let removed = remove_stale_temps(&dir, &dir.entries().unwrap()).unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        scratch.names(),
        [
            ".d1.json.flatline..tmp",
            ".d1.json.flatline.12a.tmp",
            ".d1.json.tmp",
            ".dir.flatline.7.tmp",
            ".link.flatline.8.tmp",
            ".other",
            "d1.json",
            "target",
        ]
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
}

#[test]
fn temp_names_round_trip() {
    let temp = temp_name(name("d1.json"));
    assert_eq!(
        temp,
        OsString::from(format!(".d1.json.flatline.{}.tmp", std::process::id()))
    );
    assert!(is_temp_name(&temp));
    assert!(is_temp_name(name(".a.flatline.1.tmp")));
    assert!(!is_temp_name(name("..flatline.1.tmp")));
    assert!(is_temp_name(name(".a.flatline.b.flatline.9.tmp")));
    assert!(!is_temp_name(name(".flatline.1.tmp")));
    assert!(!is_temp_name(name("d1.json.flatline.1.tmp")));
    assert!(!is_temp_name(name(".d1.json.flatline.1.tmp.x")));
    let random = random_temp_name(name("d1.json"), "0123456789abcdef");
    assert!(is_temp_name(&random));
    assert!(!is_temp_name(name(".d1.json.flatline.1.xyz.tmp")));
}

/// A writer of the directory plants what flatline cannot remove (a non-empty directory,
/// a FIFO) at the predictable temp name: the write still lands, through a random name,
/// and the trap is left as it was.
#[test]
fn a_trap_at_the_temp_name_does_not_stop_the_write() {
    let scratch = Scratch::new("trap");
    let dir = scratch.dir();
    std::fs::write(scratch.path().join("d.json"), b"{}\n").unwrap();
    let trap = scratch.path().join(temp_name(name("d.json")));
    std::fs::create_dir(&trap).unwrap();
    std::fs::write(trap.join("inside"), b"x").unwrap();
    write_atomic(&dir, name("d.json"), b"{\"a\":1}\n", 0o644).unwrap();
    assert_eq!(
        std::fs::read(scratch.path().join("d.json")).unwrap(),
        b"{\"a\":1}\n"
    );
    assert!(trap.join("inside").exists(), "the trap is left alone");
    let temps: Vec<String> = scratch
        .names()
        .into_iter()
        .filter(|n| {
            is_temp_name(OsStr::new(n)) && *n != trap.file_name().unwrap().to_string_lossy()
        })
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

#[test]
fn errors_read_as_one_line_causes() {
    assert_eq!(StoreError::Symlink.to_string(), "is a symlink, refused");
    assert_eq!(
        StoreError::MultipleLinks(2).to_string(),
        "has 2 hard links, not replaced"
    );
    let denied = io::Error::from_raw_os_error(libc::EPERM);
    assert_eq!(
        StoreError::KeepOwnership(denied).to_string(),
        "cannot keep its owner, group and mode (operation not permitted), not replaced"
    );
    let missing = io::Error::from_raw_os_error(libc::ENOENT);
    assert_eq!(
        StoreError::Io(missing).to_string(),
        "no such file or directory"
    );
}

#[cfg(debug_assertions)]
#[test]
fn the_test_hook_parses_its_variable() {
    let parsed = test_hook::parse(name("d1.json:2")).unwrap();
    let scratch = Scratch::new("hookparse");
    std::fs::write(scratch.path().join("d1.json"), "{}").unwrap();
    let dir = scratch.dir();
    for _ in 0..3 {
        parsed.apply(&dir, name("d1.json"));
    }
    let text = std::fs::read_to_string(scratch.path().join("d1.json")).unwrap();
    assert!(text.contains("\"test_interference\": 2"), "{text}");
    assert!(test_hook::parse(name("a:b:3")).is_some());
    for bad in [
        "d1.json",
        "d1.json:",
        ":3",
        "d1.json:x",
        "d1.json:-1",
        "d:99999999999",
    ] {
        assert!(test_hook::parse(name(bad)).is_none(), "{bad}");
    }
}

#[cfg(debug_assertions)]
#[test]
fn the_test_hook_forces_a_change_that_is_detected() {
    let scratch = Scratch::new("hook");
    let file = scratch.path().join("d1.json");
    let original = b"{\n  \"id\": \"d1\",\n  \"n\": 12345678901234567890\n}\n";
    std::fs::write(&file, original).unwrap();
    let interference = test_hook::parse(name("d1.json:1")).unwrap();
    let dir = scratch.dir();
    let mut hook = || interference.apply(&dir, name("d1.json"));
    let outcome =
        replace_checked_with(&dir, name("d1.json"), original, b"{}\n", &mut hook).unwrap();
    let Replaced::Changed(current) = outcome else {
        panic!("{outcome:?}");
    };
    let value: serde_json::Value = serde_json::from_slice(&current).unwrap();
    assert_eq!(value["test_interference"], 1);
    assert_eq!(value["n"].to_string(), "12345678901234567890");
    assert_eq!(std::fs::read(&file).unwrap(), current);
    scratch.assert_no_temp();

    // The count is spent: the retry with the new bytes goes through.
    let outcome =
        replace_checked_with(&dir, name("d1.json"), &current, b"{}\n", &mut hook).unwrap();
    assert_eq!(outcome, Replaced::Written);
    assert_eq!(std::fs::read(&file).unwrap(), b"{}\n");
}
