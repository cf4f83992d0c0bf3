//! The write-retry loop over a real scratch directory: success, a conflict re-checked
//! (the change kept or dropped), the retry bound, a write that fails.

use super::*;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "flatline-commit-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(name), bytes).unwrap();
    }

    fn get(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.0.join(name)).unwrap()
    }

    fn dir(&self) -> Dir {
        Dir::open(&self.0).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sets one top-level field.
#[derive(Debug, Clone, PartialEq)]
struct Set(&'static str, i64);

impl DocChange for Set {
    fn action(&self) -> &'static str {
        "set"
    }

    type Detail = Map<String, Value>;

    fn detail(&self) -> Map<String, Value> {
        Map::new()
    }

    fn apply(&self, doc: &mut Value, _: Millis) -> Result<(), ApplyError> {
        object_mut(doc)?.insert(self.0.into(), json!(self.1));
        Ok(())
    }
}

fn parsed(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

const READ: &[u8] = b"{\n  \"a\": 1\n}\n";

#[test]
fn a_change_to_the_bytes_read_is_written() {
    let scratch = Scratch::new("success");
    scratch.put("d.json", READ);
    let dir = scratch.dir();
    let target = Target {
        dir: &dir,
        name: OsStr::new("d.json"),
        bytes: READ,
    };
    let written = write_change(target, Set("b", 2), 0, false, |_| {
        panic!("no conflict, no replan")
    });
    assert!(matches!(written, Written::Done { dry_run: false, .. }));
    assert!(written.wrote());
    assert_eq!(parsed(&scratch.get("d.json")), json!({"a": 1, "b": 2}));
}

#[test]
fn a_dry_run_writes_nothing() {
    let scratch = Scratch::new("dry");
    scratch.put("d.json", READ);
    let dir = scratch.dir();
    let target = Target {
        dir: &dir,
        name: OsStr::new("d.json"),
        bytes: READ,
    };
    let written = write_change(target, Set("b", 2), 0, true, |_| panic!("no replan"));
    assert!(matches!(written, Written::Done { dry_run: true, .. }));
    assert!(!written.wrote());
    assert_eq!(scratch.get("d.json"), READ);
}

#[test]
fn after_a_conflict_the_change_is_recomputed_on_the_new_bytes_and_kept() {
    let scratch = Scratch::new("kept");
    // Another writer got there first: the file is not what was read.
    scratch.put("d.json", b"{\"a\": 1, \"theirs\": true}");
    let dir = scratch.dir();
    let target = Target {
        dir: &dir,
        name: OsStr::new("d.json"),
        bytes: READ,
    };
    let seen = Cell::new(0);
    let written = write_change(target, Set("b", 2), 0, false, |current| {
        seen.set(seen.get() + 1);
        assert_eq!(parsed(current), json!({"a": 1, "theirs": true}));
        Ok(Some(Set("b", 3)))
    });
    assert_eq!(seen.get(), 1);
    match written {
        Written::Done { change, .. } => assert_eq!(change, Set("b", 3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parsed(&scratch.get("d.json")),
        json!({"a": 1, "theirs": true, "b": 3}),
        "their change kept, ours on top"
    );
}

#[test]
fn after_a_conflict_a_change_no_longer_needed_is_dropped() {
    let scratch = Scratch::new("dropped");
    let theirs = b"{\"a\": 1, \"b\": 2}";
    scratch.put("d.json", theirs);
    let dir = scratch.dir();
    let target = Target {
        dir: &dir,
        name: OsStr::new("d.json"),
        bytes: READ,
    };
    let written = write_change(target, Set("b", 2), 0, false, |_| Ok(None));
    assert!(matches!(written, Written::NothingLeft));
    assert!(!written.wrote());
    assert_eq!(
        scratch.get("d.json"),
        theirs,
        "left as the other writer made it"
    );
}

#[test]
fn a_file_changed_on_every_attempt_is_a_conflict_after_the_retry_bound() {
    let scratch = Scratch::new("bound");
    scratch.put("d.json", b"{\"a\": 0}");
    let dir = scratch.dir();
    let target = Target {
        dir: &dir,
        name: OsStr::new("d.json"),
        bytes: READ,
    };
    let replans = Cell::new(0);
    let written = write_change(target, Set("b", 2), 0, false, |_| {
        replans.set(replans.get() + 1);
        // The other writer changes it again before the next attempt.
        scratch.put("d.json", format!("{{\"a\": {}}}", replans.get()).as_bytes());
        Ok(Some(Set("b", 2)))
    });
    assert!(matches!(written, Written::Conflict(Set("b", 2))));
    assert_eq!(replans.get(), MAX_RECOMPUTE);
    assert_eq!(
        parsed(&scratch.get("d.json")),
        json!({"a": MAX_RECOMPUTE}),
        "left alone"
    );
}

#[test]
fn a_write_that_fails_carries_its_error_and_changes_nothing() {
    let scratch = Scratch::new("failed");
    scratch.put("d.json", READ);
    std::os::unix::fs::symlink(scratch.0.join("d.json"), scratch.0.join("link.json")).unwrap();
    let dir = scratch.dir();
    // Through a symlink: refused by the store.
    let target = Target {
        dir: &dir,
        name: OsStr::new("link.json"),
        bytes: READ,
    };
    let written = write_change(target, Set("b", 2), 0, false, |_| panic!("no replan"));
    match &written {
        Written::Failed { change, error } => {
            assert_eq!(change, &Set("b", 2));
            assert!(!error.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(scratch.get("d.json"), READ);
    // A change that cannot be applied: reported with its reason, nothing written.
    let target = Target {
        dir: &dir,
        name: OsStr::new("d.json"),
        bytes: b"[1]",
    };
    let written = write_change(target, Set("b", 2), 0, false, |_| panic!("no replan"));
    match &written {
        Written::Failed { error, .. } => assert_eq!(error, "not a JSON object; not rewritten"),
        other => panic!("{other:?}"),
    }
    assert_eq!(scratch.get("d.json"), READ);
}

#[test]
fn a_replan_that_fails_is_a_failed_write() {
    let scratch = Scratch::new("replan");
    scratch.put("d.json", b"{\"a\": 2}");
    let dir = scratch.dir();
    let target = Target {
        dir: &dir,
        name: OsStr::new("d.json"),
        bytes: READ,
    };
    let written = write_change(target, Set("b", 2), 0, false, |_| Err("unreadable".into()));
    match written {
        Written::Failed { error, .. } => assert_eq!(error, "unreadable"),
        other => panic!("{other:?}"),
    }
}
