//! runs (the scan): reading run directories once — which runs, which delegation files, in what order,
//! and the process facts of running workers.
//!
//! Every command starts here. A run directory named twice is scanned once (by device and
//! inode); `delegations/` is listed once and sorted by name; hidden files and
//! `*.result.json` are skipped; each document is read once into a reused buffer.

mod documents;
pub mod duplicates;
mod process;
mod stream;
mod walk;

pub use process::{Item, LazyHost, inspect, inspect_in};
pub use walk::{Resume, for_each_delegation, for_each_in_listing, for_each_in_listing_from};

use crate::cli::config::Config;
use crate::exit::Exit;
use crate::fs::{self, Dir, Entries, RunRoot};
use crate::output::Diagnostics;
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

/// A run is named by the path the operator typed (the json header lists them).
impl AsRef<Path> for Run {
    fn as_ref(&self) -> &Path {
        &self.path
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
                    _ => fs::io_message(&error),
                };
                diag.error(path, &message, Exit::RunUnusable);
                continue;
            }
        };
        let meta = match dir.meta() {
            Ok(meta) => meta,
            Err(error) => {
                diag.error(path, &fs::io_message(&error), Exit::RunUnusable);
                continue;
            }
        };
        if !seen.insert((meta.dev, meta.ino)) {
            continue;
        }
        if !is_run_directory(&dir) {
            diag.error(path, NOT_A_RUN_DIRECTORY, Exit::RunUnusable);
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

/// The entries one of which makes a directory a run directory (SPEC §6).
pub const RUN_SUBDIRS: [&str; 3] = ["delegations", "workers", "task-cards"];

pub const NOT_A_RUN_DIRECTORY: &str =
    "not a run directory (no delegations/, workers/ or task-cards/)";

/// Whether `dir` has one of `RUN_SUBDIRS`. Only the name is looked at (without following a
/// symlink): a `delegations` that is a symlink or a file is a run directory whose
/// `delegations/` is refused later, with its own message. Pointing a command at the parent
/// of the runs, or at `delegations/` itself, must never pass as an empty run.
pub fn is_run_directory(dir: &Dir) -> bool {
    RUN_SUBDIRS
        .iter()
        .any(|name| match fs::lstatat(dir.fd(), OsStr::new(name)) {
            Ok(_) => true,
            // Present but not looked at (EACCES): let the listing report it.
            Err(error) => error.raw_os_error() != Some(libc::ENOENT),
        })
}

/// A subdirectory of a run, listed.
#[derive(Debug)]
pub struct Listing {
    pub dir: Dir,
    pub entries: Entries,
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
                _ => fs::io_message(&error),
            };
            diag.error(&path, &message, Exit::FileProblem);
            return None;
        }
    };
    match dir.entries() {
        Ok(entries) => Some(Listing { dir, entries }),
        Err(error) => {
            diag.error(&path, &fs::io_message(&error), Exit::FileProblem);
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
        clean_temps(&listing.dir, &listing.entries, diag);
    }
    Some(listing)
}

/// Removes flatline's leftover temp files from a directory it is about to write (the lock
/// is held, so no other flatline is writing there).
pub fn clean_temps(dir: &Dir, entries: &Entries, diag: &mut Diagnostics) {
    if let Err(error) = fs::remove_stale_temps(dir, entries) {
        diag.error(dir.path(), &error.to_string(), Exit::FileProblem);
    }
}

/// `<name>.json` that is neither hidden nor a `*.result.json`.
pub fn is_document_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.starts_with(b".") && bytes.ends_with(b".json") && !bytes.ends_with(b".result.json")
}

/// The path of a file in a listing, for messages and records.
pub fn entry_path(run: &Run, subdir: &str, name: &OsStr) -> PathBuf {
    run.path.join(subdir).join(name)
}

#[cfg(test)]
mod tests;
