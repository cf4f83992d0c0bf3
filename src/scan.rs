//! scan: reading run directories once — which runs, which delegation files, in what order,
//! and the process facts of running workers.
//!
//! Every command starts here. A run directory named twice is scanned once (by device and
//! inode); `delegations/` is listed once and sorted by name; hidden files and
//! `*.result.json` are skipped; each document is read once into a reused buffer.

use crate::exit::Exit;
use crate::files::{self, Dir, Entry, RunRoot};
use crate::lifecycle::{ChildStatus, ProcessFacts, Times};
use crate::output::Diagnostics;
use crate::process::{self, Host, Observation};
use std::cell::OnceCell;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One run directory, opened.
#[derive(Debug)]
pub struct Run {
    /// The path as the operator typed it (used in every message and record).
    pub path: PathBuf,
    pub root: RunRoot,
}

impl Run {
    pub fn dir(&self) -> &Dir {
        &self.root.dir
    }
}

/// Opens each RUN_DIR once. A missing or unreadable one is reported (exit 4) and left out.
pub fn open_runs(paths: &[PathBuf], diag: &mut Diagnostics) -> Vec<Run> {
    let mut seen = HashSet::new();
    let mut runs = Vec::new();
    for path in paths {
        let dir = match Dir::open(path) {
            Ok(dir) => dir,
            Err(error) => {
                let message = match error.raw_os_error() {
                    Some(libc::ENOTDIR) => "not a directory".to_string(),
                    Some(libc::ENOENT) => "no such run directory".to_string(),
                    _ => files::io_message(&error),
                };
                diag.error(path, &message, Exit::RunUnusable);
                continue;
            }
        };
        let meta = match dir.meta() {
            Ok(meta) => meta,
            Err(error) => {
                diag.error(path, &files::io_message(&error), Exit::RunUnusable);
                continue;
            }
        };
        if !seen.insert((meta.dev, meta.ino)) {
            continue;
        }
        let real_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        runs.push(Run {
            path: path.clone(),
            root: RunRoot { dir, real_path },
        });
    }
    runs
}

/// A subdirectory of a run, listed.
#[derive(Debug)]
pub struct Listing {
    pub dir: Dir,
    pub entries: Vec<Entry>,
}

/// Opens and lists `RUN_DIR/<name>/` without following a symlink. `None` when it does not
/// exist (an empty run) or cannot be used (reported, exit 3).
pub fn list_child(run: &Run, name: &str, diag: &mut Diagnostics) -> Option<Listing> {
    let path = run.path.join(name);
    let dir = match run.dir().open_child(OsStr::new(name)) {
        Ok(Some(dir)) => dir,
        Ok(None) => return None,
        Err(error) => {
            let message = match error.raw_os_error() {
                Some(libc::ELOOP) => "is a symlink, refused".to_string(),
                Some(libc::ENOTDIR) => "not a directory".to_string(),
                _ => files::io_message(&error),
            };
            diag.error(&path, &message, Exit::FileProblem);
            return None;
        }
    };
    match dir.entries() {
        Ok(entries) => Some(Listing { dir, entries }),
        Err(error) => {
            diag.error(&path, &files::io_message(&error), Exit::FileProblem);
            None
        }
    }
}

/// `<name>.json` that is neither hidden nor a `*.result.json`.
pub fn is_document_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.starts_with(b".") && bytes.ends_with(b".json") && !bytes.ends_with(b".result.json")
}

/// The host facts, read on first use: a run without running workers never reads them.
#[derive(Debug, Default)]
pub struct LazyHost(OnceCell<Host>);

impl LazyHost {
    pub fn get(&self) -> &Host {
        self.0.get_or_init(Host::read)
    }
}

/// What the process of a delegation looks like now (SPEC §3.1). Only running, unreclaimed
/// delegations are looked at; the others get `NotChecked`.
pub fn process_facts(
    lifecycle: Option<&crate::doc::Lifecycle<'_>>,
    child_status: ChildStatus,
    reclaimed: bool,
    times: &Times,
    host: &LazyHost,
) -> ProcessFacts {
    if child_status != ChildStatus::Running || reclaimed {
        return ProcessFacts::NotChecked;
    }
    let raw = match lifecycle {
        Some(lifecycle) => &lifecycle.process_id,
        None => return ProcessFacts::NoPid,
    };
    let host = match raw {
        crate::doc::Field::Absent | crate::doc::Field::Null => return ProcessFacts::NoPid,
        _ => host.get(),
    };
    let pid = match process::validate(raw, host) {
        None => return ProcessFacts::NoPid,
        Some(Err(invalid)) => return ProcessFacts::Invalid(invalid),
        Some(Ok(pid)) => pid,
    };
    let observation = process::observe(pid, host);
    if observation == Observation::NotThreadGroupLeader {
        return ProcessFacts::Invalid(process::InvalidPid::NotThreadGroupLeader);
    }
    let fingerprint = crate::lifecycle::recorded_fingerprint(lifecycle)
        .ok()
        .flatten();
    let identity = process::identify(observation, times.evidence(), fingerprint.as_ref(), host);
    ProcessFacts::Checked {
        pid,
        observation,
        identity,
    }
}

/// The path of a file in a listing, for messages and records.
pub fn entry_path(run: &Run, subdir: &str, name: &OsStr) -> PathBuf {
    run.path.join(subdir).join(name)
}

/// Renders a path relative to nothing: as given.
pub fn shown(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names() {
        assert!(is_document_name(OsStr::new("d1.json")));
        assert!(!is_document_name(OsStr::new("d1.result.json")));
        assert!(!is_document_name(OsStr::new(".d1.json.flatline.1.tmp")));
        assert!(!is_document_name(OsStr::new(".hidden.json")));
        assert!(!is_document_name(OsStr::new("notes.txt")));
        assert!(!is_document_name(OsStr::new("json")));
    }
}
