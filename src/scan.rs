//! scan: reading run directories once — which runs, which delegation files, in what order,
//! and the process facts of running workers.
//!
//! Every command starts here. A run directory named twice is scanned once (by device and
//! inode); `delegations/` is listed once and sorted by name; hidden files and
//! `*.result.json` are skipped; each document is read once into a reused buffer.

use crate::config::Config;
use crate::doc::{self, Delegation, DocError};
use crate::exit::Exit;
use crate::files::{self, Dir, Entry, FileMeta, MAX_DOCUMENT_BYTES, RunRoot};
use crate::lifecycle::{self, ChildStatus, ProcessFacts, Times, View};
use crate::output::Diagnostics;
use crate::process::{self, Host, Observation};
use crate::stop::Stop;
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

/// `list_child` for a command about to write there: flatline's own leftover temp files are
/// removed (the run lock is held), unless this is a dry run, which changes nothing.
pub fn list_for_writing(
    run: &Run,
    name: &str,
    config: &Config,
    diag: &mut Diagnostics,
) -> Option<Listing> {
    let listing = list_child(run, name, diag)?;
    if !config.dry_run {
        crate::commit::clean_temps(&listing.dir, &listing.entries, diag);
    }
    Some(listing)
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
    match observation {
        Observation::NotThreadGroupLeader => {
            return ProcessFacts::Invalid(process::InvalidPid::NotThreadGroupLeader);
        }
        Observation::KernelThread => {
            return ProcessFacts::Invalid(process::InvalidPid::KernelThread);
        }
        _ => {}
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

/// One delegation file, read, parsed and looked at: what every command decides on.
pub struct Item<'a> {
    /// The `delegations/` directory (for writes through its descriptor).
    pub dir: &'a Dir,
    pub name: &'a OsStr,
    pub path: &'a Path,
    pub meta: FileMeta,
    /// The bytes as read: what a write must find unchanged before it replaces the file.
    pub bytes: &'a [u8],
    pub doc: &'a Delegation<'a>,
    pub times: &'a Times,
    pub facts: &'a ProcessFacts,
    pub view: &'a View<'a>,
}

/// Parses `bytes` and computes the view, then hands everything to `f`. Used for the first
/// read and again after a write conflict (the re-read bytes are inspected afresh).
pub fn inspect<R>(
    bytes: &[u8],
    config: &Config,
    host: &LazyHost,
    f: impl FnOnce(&Delegation<'_>, &Times, &ProcessFacts, &View<'_>) -> R,
) -> Result<R, DocError> {
    let delegation = doc::parse_delegation(bytes)?;
    let lifecycle = delegation.worker_lifecycle.value();
    let times = Times::of(lifecycle);
    let facts = process_facts(
        lifecycle,
        lifecycle::child_status(&delegation),
        lifecycle::is_reclaimed(&delegation),
        &times,
        host,
    );
    let view = lifecycle::view(&delegation, &times, config.now, &config.thresholds, &facts);
    Ok(f(&delegation, &times, &facts, &view))
}

/// Reads every delegation of `run` once, in file-name order, and calls `visit` for each
/// one that parsed and passes `--task-card`. File problems are reported here. Stops early
/// when `stop` fires or `visit` returns an exit status.
pub fn for_each_delegation(
    run: &Run,
    config: &Config,
    host: &LazyHost,
    diag: &mut Diagnostics,
    stop: &Stop,
    mut visit: impl FnMut(Item<'_>, &mut Diagnostics) -> Result<(), Exit>,
) -> Result<(), Exit> {
    let Some(listing) = list_child(run, "delegations", diag) else {
        return Ok(());
    };
    for_each_in_listing(run, &listing, config, host, diag, stop, &mut visit)
}

/// `for_each_delegation` over a listing the caller already holds.
pub fn for_each_in_listing(
    run: &Run,
    listing: &Listing,
    config: &Config,
    host: &LazyHost,
    diag: &mut Diagnostics,
    stop: &Stop,
    visit: &mut dyn FnMut(Item<'_>, &mut Diagnostics) -> Result<(), Exit>,
) -> Result<(), Exit> {
    let mut buf = Vec::with_capacity(16 * 1024);
    for entry in &listing.entries {
        if !is_document_name(&entry.name) {
            continue;
        }
        if let Some(exit) = stop.check() {
            return Err(exit);
        }
        let path = entry_path(run, "delegations", &entry.name);
        let meta = match listing.dir.read_entry(entry, MAX_DOCUMENT_BYTES, &mut buf) {
            Ok(meta) => meta,
            Err(error) => {
                diag.error(&path, &error.to_string(), Exit::FileProblem);
                continue;
            }
        };
        let result = inspect(&buf, config, host, |doc, times, facts, view| {
            if !config.card_selected(doc.task_card_id.str()) {
                return Ok(());
            }
            if !view.malformed.is_empty() {
                diag.error(&path, &view.malformed.join("; "), Exit::FileProblem);
            }
            let item = Item {
                dir: &listing.dir,
                name: &entry.name,
                path: &path,
                meta,
                bytes: &buf,
                doc,
                times,
                facts,
                view,
            };
            visit(item, diag)
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(exit)) => return Err(exit),
            Err(error) => diag.error(&path, &error.to_string(), Exit::FileProblem),
        }
    }
    Ok(())
}

/// The path of a file in a listing, for messages and records.
pub fn entry_path(run: &Run, subdir: &str, name: &OsStr) -> PathBuf {
    run.path.join(subdir).join(name)
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
