//! launch: `flatline run`'s shell (SPEC §12). `files` prepares the run directory, the stream
//! and the queued delegation; `spawn` starts the worker and takes its identity from a pidfd
//! before it can be reaped; `watch` waits on that pidfd, judges the worker as sweep would
//! (handing a stuck one back to `cmd::run` for the tree kill) and forwards signals; `relay` is
//! `--tee`'s copy; here, every later change of the delegation, written under the run lock,
//! and the launcher guard of reclaim. The documents themselves are built by `core::launch`.

mod files;
mod relay;
mod spawn;
mod watch;

pub use files::{Prepared, StreamFile};
pub use relay::Relay;
pub use spawn::{Held, Spawned, Stdio, environment, launcher_fingerprint, spawn};
pub use watch::{RELAY_DRAIN, Stuck, Watch, Watched, ended_of, watch};

use crate::core::launch::{self, Ended, Started};
use crate::core::plan::reclaim::{Reclaim, Triage};
use crate::core::plan::refresh::Change;
use crate::core::time::Millis;
use crate::fs::{self, RunLock};
use crate::interrupt::Stop;
use crate::shell::commit::{self, ApplyError, DocChange, Written};
use crate::shell::runs::Run;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong before or around the worker: a usage error (exit 2) or a failure of
/// `run` itself (exit 125), with the file it is about.
#[derive(Debug)]
pub struct LaunchError {
    pub path: PathBuf,
    pub message: String,
    pub usage: bool,
}

impl LaunchError {
    pub fn usage(path: &Path, message: String) -> LaunchError {
        LaunchError {
            path: path.to_path_buf(),
            message,
            usage: true,
        }
    }

    pub fn failed(path: &Path, message: String) -> LaunchError {
        LaunchError {
            path: path.to_path_buf(),
            message,
            usage: false,
        }
    }
}

/// How `run` takes the run lock for each write: `--lock-group`, `--wait` (10 s by default).
#[derive(Debug, Clone, Copy)]
pub struct LockPolicy {
    pub group: Option<u32>,
    pub wait: Option<Duration>,
}

impl LockPolicy {
    /// Takes the lock; it is held until the returned value is dropped.
    pub fn take(&self, run: &Run) -> Result<RunLock, LaunchError> {
        let request = fs::LockRequest {
            group: self.group,
            wait: self.wait,
            now: crate::proc::now_ms(),
            stop: &|| false,
        };
        let path = run.path.join(".flatline/lock");
        fs::lock_run_as(run.dir(), &request).map_err(|error| match error {
            fs::LockError::Busy(busy) => LaunchError::failed(&path, busy.to_string()),
            fs::LockError::Unusable(message) => LaunchError::failed(&run.path, message),
            fs::LockError::Stopped => LaunchError::failed(&path, "stopped".into()),
            fs::LockError::Io(error) => LaunchError::failed(&path, fs::io_message(&error)),
        })
    }
}

/// A change `run` makes to its delegation after the queued one.
#[derive(Debug, Clone)]
pub enum LaunchChange {
    Running(Started),
    Forwarded {
        signal: &'static str,
        at: Millis,
    },
    /// Finalized from the wait status and the stream's digest (SPEC §3.2 rules).
    Finished {
        finalize: Change,
        ended: Ended,
    },
    /// Reclaimed by `run` for lack of progress (SPEC §3.3 record).
    Reclaimed {
        reclaim: Reclaim,
        ended: Ended,
    },
}

fn reclaimed(doc: &Value) -> bool {
    doc.pointer("/worker_lifecycle/reclaim_state")
        .and_then(Value::as_str)
        == Some("reclaimed")
}

impl DocChange for LaunchChange {
    fn action(&self) -> &'static str {
        match self {
            LaunchChange::Running(_) => "started",
            LaunchChange::Forwarded { .. } => "signal_forwarded",
            LaunchChange::Finished { .. } => "finalized",
            LaunchChange::Reclaimed { .. } => "reclaimed",
        }
    }

    type Detail = crate::output::NoDetail;

    fn detail(&self) -> crate::output::NoDetail {
        crate::output::NoDetail {}
    }

    fn apply(&self, doc: &mut Value, now: Millis) -> Result<(), ApplyError> {
        let done = match self {
            LaunchChange::Running(started) => launch::apply_running(doc, started, now),
            LaunchChange::Forwarded { signal, at } => launch::apply_forwarded(doc, signal, *at),
            // A record someone else made of the worker's end (a sweep after run was
            // stopped) keeps its verdict; the real wait status is added to it.
            LaunchChange::Finished { finalize, ended } => {
                if !reclaimed(doc) {
                    finalize.apply(doc, now)?;
                }
                launch::apply_ended(doc, *ended)
            }
            LaunchChange::Reclaimed { reclaim, ended } => {
                reclaim.apply(doc, now)?;
                launch::apply_ended(doc, *ended)
            }
        };
        done.map_err(ApplyError)
    }
}

/// Writes `change` to `delegations/<name>` under the run lock; it must land (retried
/// after another writer's change, re-applied to what is on disk then), and the directory
/// is fsynced after it.
pub fn record(
    prepared: &Prepared,
    name: &OsStr,
    change: LaunchChange,
    lock: &LockPolicy,
    now: Millis,
) -> Result<(), LaunchError> {
    let held = lock.take(&prepared.run)?;
    let written = record_held(prepared, name, change, now, &held);
    drop(held);
    let _ = fs::sync_dir(&prepared.delegations);
    written
}

/// `record` under a lock the caller holds, without the directory's fsync: the document is
/// complete and its data durable (temp file, fsync, rename); the rename itself is made
/// durable by the caller (SPEC §4: once per directory per batch).
fn record_held(
    prepared: &Prepared,
    name: &OsStr,
    change: LaunchChange,
    now: Millis,
    held: &RunLock,
) -> Result<(), LaunchError> {
    let path = prepared.delegations.join(name);
    let mut bytes = Vec::new();
    prepared
        .delegations
        .read_file(name, fs::MAX_DOCUMENT_BYTES, &mut bytes)
        .map_err(|error| LaunchError::failed(&path, error.to_string()))?;
    record_over(prepared, name, &bytes, change, now, held)
}

/// `record_held` over a document whose bytes the caller knows (the queued record it has
/// just placed under the same hold of the lock), without reading it back: just before the
/// rename the file is still compared with `current`, and another writer's change is
/// re-read and the change re-applied to it, as for any write (SPEC §4). The running record
/// takes this path so that the worker is let go without waiting for the directory, whose
/// fsync `Prepared::sync_delegations` makes after: a power loss kills the worker with the
/// machine, and a `run` killed in between leaves the record in the page cache, where every
/// reader sees it (BENCHMARKS.md, `flatline run`).
pub fn record_over(
    prepared: &Prepared,
    name: &OsStr,
    current: &[u8],
    change: LaunchChange,
    now: Millis,
    _held: &RunLock,
) -> Result<(), LaunchError> {
    let path = prepared.delegations.join(name);
    let target = commit::Target {
        dir: &prepared.delegations,
        name,
        bytes: current,
    };
    let again = change.clone();
    let written = commit::write_change_landing(target, change, now, &Stop::never(), |_| {
        Ok(Some(again.clone()))
    });
    match written {
        Written::Done { .. } | Written::NothingLeft => Ok(()),
        Written::Conflict(_) => Err(LaunchError::failed(
            &path,
            "changed by another writer again and again; not recorded".into(),
        )),
        Written::Failed { error, .. } => Err(LaunchError::failed(&path, error)),
    }
}

/// The launcher guard (SPEC §12), for reclaim's and sweep's triage: a worker whose
/// `flatline run` is alive and verified by its fingerprint is left to it
/// (`skipped_launcher`). Reads `/proc` only for a delegation that records a launcher.
pub fn launcher_guard(
    triage: Triage,
    doc: &crate::model::Delegation<'_>,
    host: &crate::core::identity::Host,
) -> Triage {
    if matches!(triage, Triage::Skip(_)) {
        return triage;
    }
    let Some((pid, fingerprint)) = launch::recorded_launcher(doc) else {
        return triage;
    };
    let alive = match i32::try_from(pid).map(|pid| crate::core::identity::validate_found(pid, host))
    {
        // The launcher is this very process's ancestor: it is alive, and it is run's.
        Ok(Err(crate::core::identity::InvalidPid::Ancestor)) => true,
        Ok(Ok(pid)) => {
            let observation = crate::proc::observe(pid, host, false);
            crate::core::identity::identify(
                observation,
                crate::core::identity::Evidence::default(),
                Some(&fingerprint),
                host,
                crate::core::identity::WindowPolicy::default(),
            ) == crate::core::identity::Identity::Verified
        }
        _ => false,
    };
    launch::launcher_guard(triage, alive)
}

/// The complete `queued` delegation (SPEC §12), rendered, for `Prepared::place_queued`.
pub fn queued_bytes(
    id: &str,
    stream: &StreamFile,
    config: &crate::cli::config::Config,
    host: &crate::core::identity::Host,
    now: Millis,
) -> Vec<u8> {
    let launcher = launcher_fingerprint(host);
    let command: Vec<String> = config
        .run
        .command
        .iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let rel = stream.rel.to_string_lossy().into_owned();
    let queued = launch::queued_document(&launch::Queued {
        id,
        task_card: config.task_cards.first().map(String::as_str),
        command: &command,
        raw_events_file: &rel,
        raw_events_inode: crate::core::lifecycle::StreamInode {
            dev: stream.meta.dev,
            ino: stream.meta.ino,
        },
        launcher_pid: i64::from(std::process::id()),
        launcher_fingerprint: launcher.as_ref(),
        quiet_after_ms: config.thresholds.quiet,
        stale_after_ms: config.thresholds.stale,
        timeout_after_ms: config.thresholds.timeout,
        now,
    });
    crate::model::render(&queued)
}
