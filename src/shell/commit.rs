//! commit: turning a planned change of one document into a checked write, and reporting it.
//!
//! Every writing command plans a change (refresh, reclaim, fan-in), then commits it here:
//! the change is applied to the bytes that were read, the store replaces the file only if
//! it still holds those bytes, and on a conflict the file is re-read and the change
//! recomputed — up to `MAX_RECOMPUTE` times, then a conflict is reported and the file left
//! alone. Each outcome becomes one action record.

use crate::cli::config::Config;
use crate::core::time::{self, Millis};
use crate::exit::Exit;
use crate::fs::{self, Dir, Replaced};
use crate::interrupt::Stop;
use crate::output::{ActionRecord, Diagnostics, Output, PathText};
use crate::shell::runs::Run;
pub use crate::shell::runs::clean_temps;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::ffi::OsStr;
use std::path::Path;

/// How many times a change is recomputed after another writer changed the file.
pub const MAX_RECOMPUTE: usize = 3;

/// A change to one document that a command planned.
pub trait DocChange {
    /// The action record's `action` (`progressed`, `finalized`, `reclaimed`, ...).
    fn action(&self) -> &'static str;
    /// What the action decided: the action record's fields after the common ones.
    type Detail: Serialize;
    /// What the action decided, for the action record.
    fn detail(&self) -> Self::Detail;
    /// Applies the change to the document. Touches only the fields flatline owns and, on
    /// error, nothing at all.
    fn apply(&self, doc: &mut Value, now: Millis) -> Result<(), ApplyError>;
}

/// Why a change could not be applied to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError(pub String);

/// A timestamp as flatline writes it.
pub fn ts(ms: Millis) -> Value {
    Value::String(time::format_rfc3339(ms))
}

/// The document as an object; an error when it is not one.
pub fn object_mut(doc: &mut Value) -> Result<&mut Map<String, Value>, ApplyError> {
    doc.as_object_mut()
        .ok_or_else(|| ApplyError("not a JSON object; not rewritten".into()))
}

/// The document's `worker_lifecycle`, created when absent or null; an error when it is
/// something else (flatline does not replace what it cannot read).
pub fn lifecycle_mut(doc: &mut Map<String, Value>) -> Result<&mut Map<String, Value>, ApplyError> {
    let entry = doc
        .entry("worker_lifecycle")
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry
        .as_object_mut()
        .ok_or_else(|| ApplyError("worker_lifecycle is not an object; not rewritten".into()))
}

/// Sets `child_agent.status` and `executor.status` (each when that object exists; the
/// child_agent is created when neither does).
pub fn set_status(doc: &mut Map<String, Value>, status: &str) {
    let mut set = false;
    for key in ["child_agent", "executor"] {
        if let Some(object) = doc.get_mut(key).and_then(Value::as_object_mut) {
            object.insert("status".into(), json!(status));
            set = true;
        }
    }
    if !set && !doc.contains_key("child_agent") {
        doc.insert("child_agent".into(), json!({ "status": status }));
    }
}

/// How a planned change ended.
#[derive(Debug)]
pub enum Written<C> {
    /// Replaced (or would have been, in a dry run).
    Done {
        change: C,
        dry_run: bool,
    },
    /// After a conflict, the recomputed plan needed nothing.
    NothingLeft,
    Conflict(C),
    Failed {
        change: C,
        error: String,
    },
}

impl<C> Written<C> {
    pub fn wrote(&self) -> bool {
        matches!(self, Written::Done { dry_run: false, .. })
    }
}

/// The file a change is for: where it lives and what was read from it.
pub struct Target<'a> {
    pub dir: &'a Dir,
    pub name: &'a OsStr,
    pub bytes: &'a [u8],
}

/// Writes `change` through the store; on a conflict re-reads, recomputes with `replan`
/// (`Ok(None)`: nothing left to do) and tries again, up to `MAX_RECOMPUTE` times.
pub fn write_change<C: DocChange>(
    target: Target<'_>,
    change: C,
    now: Millis,
    dry_run: bool,
    replan: impl FnMut(&[u8]) -> Result<Option<C>, String>,
) -> Written<C> {
    write_change_retrying(target, change, now, dry_run, replan, &mut |recomputed| {
        recomputed < MAX_RECOMPUTE
    })
}

/// How long a record that must land is retried when the run has no `--deadline`.
pub const LANDING_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// `write_change` for a record that must land because a signal was sent (SPEC §3.3): after
/// a conflict it is recomputed and tried again until the run's `--deadline` (without one,
/// for `LANDING_PATIENCE`), never given up after `MAX_RECOMPUTE`.
pub fn write_change_landing<C: DocChange>(
    target: Target<'_>,
    change: C,
    now: Millis,
    stop: &Stop,
    replan: impl FnMut(&[u8]) -> Result<Option<C>, String>,
) -> Written<C> {
    let until = std::time::Instant::now() + stop.remaining().unwrap_or(LANDING_PATIENCE);
    write_change_retrying(target, change, now, false, replan, &mut |recomputed| {
        // Someone rewriting the file in a loop gets a short breath between attempts.
        if recomputed > MAX_RECOMPUTE {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::time::Instant::now() < until
    })
}

/// The write loop: `may_retry(n)` says whether an n-th recomputation after a conflict may
/// be tried.
fn write_change_retrying<C: DocChange>(
    target: Target<'_>,
    change: C,
    now: Millis,
    dry_run: bool,
    mut replan: impl FnMut(&[u8]) -> Result<Option<C>, String>,
    may_retry: &mut dyn FnMut(usize) -> bool,
) -> Written<C> {
    if dry_run {
        return Written::Done {
            change,
            dry_run: true,
        };
    }
    let mut expected = target.bytes.to_vec();
    let mut change = change;
    let mut recomputed = 0;
    loop {
        let mut value: Value = match serde_json::from_slice(&expected) {
            Ok(value) => value,
            Err(error) => {
                return Written::Failed {
                    change,
                    error: format!("cannot rewrite: {error}"),
                };
            }
        };
        if let Err(ApplyError(error)) = change.apply(&mut value, now) {
            return Written::Failed { change, error };
        }
        let new = crate::model::render(&value);
        match fs::replace_checked(target.dir, target.name, &expected, &new) {
            Ok(Replaced::Written) => {
                return Written::Done {
                    change,
                    dry_run: false,
                };
            }
            Ok(Replaced::Changed(current)) => {
                if !may_retry(recomputed) {
                    return Written::Conflict(change);
                }
                recomputed += 1;
                match replan(&current) {
                    Ok(Some(next)) => change = next,
                    Ok(None) => return Written::NothingLeft,
                    Err(error) => return Written::Failed { change, error },
                }
                expected = current;
            }
            Err(error) => {
                return Written::Failed {
                    change,
                    error: error.to_string(),
                };
            }
        }
    }
}

/// Where an action happened, for its record.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub command: &'static str,
    pub run: &'a Run,
    pub path: &'a Path,
    pub delegation_id: Option<&'a str>,
}

impl Place<'_> {
    /// Prints one action record.
    pub fn record<D: Serialize>(
        &self,
        action: &'static str,
        outcome: &'static str,
        detail: D,
        output: &mut Output,
        diag: &mut Diagnostics,
    ) -> Result<(), Exit> {
        let record = ActionRecord {
            kind: "action",
            command: self.command,
            action,
            outcome,
            run_dir: PathText(&self.run.path),
            path: PathText(self.path),
            delegation_id: self.delegation_id,
            detail,
        };
        output
            .record(&record)
            .map_err(|error| crate::output::stdout_failed(diag, &error))
    }
}

/// Reports how a change ended: its action record and, for failures, one error line.
pub fn report<C: DocChange>(
    place: Place<'_>,
    written: &Written<C>,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> Result<(), Exit> {
    let (change, outcome) = match written {
        Written::NothingLeft => return Ok(()),
        Written::Done { change, dry_run } => (change, if *dry_run { "dry_run" } else { "written" }),
        Written::Conflict(change) => {
            diag.error(
                place.path,
                &format!(
                    "changed by another writer {} times while flatline was writing it; left alone",
                    MAX_RECOMPUTE + 1
                ),
                Exit::FileProblem,
            );
            (change, "conflict")
        }
        Written::Failed { change, error } => {
            diag.error(place.path, error, Exit::FileProblem);
            (change, "failed")
        }
    };
    place.record(change.action(), outcome, change.detail(), output, diag)
}

/// Takes the run lock for a writing command (nothing for a dry run, which creates nothing).
/// `None` when the run must be skipped; the reason is reported.
pub fn lock_run(
    run: &Run,
    config: &Config,
    stop: &Stop,
    diag: &mut Diagnostics,
) -> Option<Option<fs::RunLock>> {
    if config.dry_run {
        return Some(None);
    }
    let lock_path = run.path.join(".flatline/lock");
    let request = fs::LockRequest {
        group: config.lock_group,
        wait: config.wait,
        now: config.now,
        stop: &|| stop.check().is_some(),
    };
    match fs::lock_run_as(run.dir(), &request) {
        Ok(lock) => {
            for (path, message) in lock.notices() {
                diag.warning(path, message);
            }
            // A run killed while it replaced state.json left its temp file here.
            match lock.state_dir().entries() {
                Ok(entries) => clean_temps(lock.state_dir(), &entries, diag),
                Err(error) => diag.error(
                    lock.state_dir().path(),
                    &fs::io_message(&error),
                    Exit::FileProblem,
                ),
            }
            Some(Some(lock))
        }
        Err(fs::LockError::Busy(busy)) => {
            if let Some(error) = &busy.record_error {
                diag.warning(Path::new(""), error);
            }
            diag.error(&lock_path, &busy.to_string(), Exit::Busy);
            None
        }
        Err(fs::LockError::Unusable(message)) => {
            diag.error(&run.path, &message, Exit::RunUnusable);
            None
        }
        Err(fs::LockError::Stopped) => {
            if let Some(exit) = stop.check() {
                diag.raise(exit);
            }
            None
        }
        Err(fs::LockError::Io(error)) => {
            diag.error(&lock_path, &fs::io_message(&error), Exit::RunUnusable);
            None
        }
    }
}

/// Runs `wait` with every run lock let go (flatline only waits: a grace, the activity
/// window), then takes them again, each for the time the deadline leaves or
/// `LANDING_PATIENCE`. A run whose lock cannot be taken again is reported (`after` says
/// after what): nothing more is written there, and what it signalled stays noted in its
/// state.json for the next run. Returns what `wait` returned and the `.flatline/` paths of
/// the runs whose lock was lost.
pub fn wait_unlocked<R>(
    wait: impl FnOnce() -> R,
    stop: &Stop,
    after: &str,
    diag: &mut Diagnostics,
) -> (R, Vec<std::path::PathBuf>) {
    let patience = stop.remaining().unwrap_or(LANDING_PATIENCE);
    let (result, lost) = fs::unlocked_while(wait, patience);
    let mut paths = Vec::with_capacity(lost.len());
    for (state_dir, error) in lost {
        diag.error(
            &state_dir.join("lock"),
            &format!(
                "could not take the run's lock again after {after} ({error}); nothing more \
                 is written there, and its reclaims stay noted in state.json for the next run"
            ),
            Exit::FileProblem,
        );
        paths.push(state_dir);
    }
    (result, paths)
}

/// Makes a batch of renames in `dir` durable: one fsync for the whole batch.
pub fn sync(dir: &Dir, wrote: bool, diag: &mut Diagnostics) {
    if wrote && let Err(error) = fs::sync_dir(dir) {
        diag.error(dir.path(), &error.to_string(), Exit::FileProblem);
    }
}

#[cfg(test)]
mod tests;
