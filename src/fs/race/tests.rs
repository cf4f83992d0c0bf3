//! A file another writer replaces (temp file + rename) in the middle of one of flatline's
//! reads is a change: re-read, recomputed, a conflict at worst; never a hard-link refusal,
//! never a foreign document, never a write over the other writer's file.

use super::*;
use crate::fs::{Dir, ReadError, Replaced, StoreError, replace_checked};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "flatline-race-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn file(&self) -> PathBuf {
        self.0.join("d1.json")
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        set_after_open(None);
        set_after_stat(None);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Plays the other writer: a new file with `content` renamed over `target`.
fn rename_over(target: &Path, content: &str) {
    let temp = target.with_extension("other.tmp");
    std::fs::write(&temp, content).unwrap();
    std::fs::rename(&temp, target).unwrap();
}

/// After every open, the other writer renames a new version over the file (up to `times`).
fn replace_after_open(target: PathBuf, times: usize) {
    let mut done = 0;
    set_after_open(Some(Box::new(move || {
        if done < times {
            done += 1;
            rename_over(&target, &format!("{{\"theirs\":{done}}}\n"));
        }
    })));
}

#[test]
fn a_file_replaced_between_open_and_fstat_is_changed_not_refused() {
    for times in [1, 2, 3, 4, 100] {
        let scratch = Scratch::new("write-open");
        std::fs::write(scratch.file(), "{\"old\":1}\n").unwrap();
        replace_after_open(scratch.file(), times);
        let outcome = replace_checked(
            &Dir::open(&scratch.0).unwrap(),
            OsStr::new("d1.json"),
            b"{\"old\":1}\n",
            b"{\"mine\":1}\n",
        );
        set_after_open(None);
        assert!(
            matches!(outcome, Ok(Replaced::Changed(_))),
            "{times}: {outcome:?}"
        );
        let now = std::fs::read_to_string(scratch.file()).unwrap();
        assert!(
            now.starts_with("{\"theirs\":"),
            "{times}: overwritten: {now}"
        );
        assert_eq!(scratch.names(), ["d1.json"], "{times}: a temp file is left");
    }
}

#[test]
fn an_entry_every_lstat_finds_unlinked_is_a_change_not_a_hard_link_refusal() {
    let scratch = Scratch::new("write-stat");
    std::fs::write(scratch.file(), "{\"old\":1}\n").unwrap();
    // Every lstat lands on the old file as it loses its name (a tight rename loop).
    set_after_stat(Some(Box::new(|meta| meta.nlink = 0)));
    let outcome = replace_checked(
        &Dir::open(&scratch.0).unwrap(),
        OsStr::new("d1.json"),
        b"{\"old\":1}\n",
        b"{\"mine\":1}\n",
    );
    set_after_stat(None);
    match outcome {
        Ok(Replaced::Changed(current)) => assert_eq!(current, b"{\"old\":1}\n"),
        Err(StoreError::MultipleLinks(n)) => panic!("refused for {n} hard links"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(scratch.file()).unwrap(),
        "{\"old\":1}\n",
        "nothing written over a changing entry"
    );
    assert_eq!(scratch.names(), ["d1.json"]);
    // A single unlucky lstat settles on the next look and the write goes through.
    let mut left = 1;
    set_after_stat(Some(Box::new(move |meta| {
        if left > 0 {
            left -= 1;
            meta.nlink = 0;
        }
    })));
    let outcome = replace_checked(
        &Dir::open(&scratch.0).unwrap(),
        OsStr::new("d1.json"),
        b"{\"old\":1}\n",
        b"{\"mine\":1}\n",
    );
    assert!(matches!(outcome, Ok(Replaced::Written)), "{outcome:?}");
}

#[test]
fn a_document_replaced_between_open_and_fstat_is_read_from_its_new_file() {
    let scratch = Scratch::new("read-open");
    std::fs::write(scratch.file(), "{\"old\":1}\n").unwrap();
    replace_after_open(scratch.file(), 1);
    let dir = Dir::open(&scratch.0).unwrap();
    let mut buf = Vec::new();
    let meta = dir
        .read_file(OsStr::new("d1.json"), 1024, &mut buf)
        .unwrap();
    // The old file's fstat said no link, which made it nobody's word (a foreign document).
    assert_eq!(meta.nlink, 1);
    assert_eq!(crate::fs::document_owner(&meta), Some(meta.uid));
    assert_eq!(buf, b"{\"theirs\":1}\n");
    // Replaced on every open: an error that says so, not a hard-link refusal.
    replace_after_open(scratch.file(), usize::MAX);
    let error = dir
        .read_file(OsStr::new("d1.json"), 1024, &mut buf)
        .unwrap_err();
    assert!(matches!(error, ReadError::Io(_)), "{error:?}");
    assert!(!error.to_string().contains("hard link"), "{error}");
}
