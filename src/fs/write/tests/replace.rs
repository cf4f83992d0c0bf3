//! Checked and atomic writes: replace_checked, write_atomic, append_lines.

use super::*;

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
