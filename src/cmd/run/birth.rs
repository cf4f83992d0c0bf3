//! The worker's birth (SPEC §12): forked and held before exec while its queued record is
//! placed, then recorded running with the identity its pidfd gives, both under one hold of
//! the run lock; only then may it run. A worker that cannot be recorded never runs.

use crate::output::Diagnostics;
use crate::shell::launch::{self, Held, LaunchChange, LaunchError, Prepared};
use crate::shell::launch::{Stdio, StreamFile, Watch};
use std::fs::File;

/// What a birth gives when nothing failed in `run` itself.
pub(super) enum Birth {
    /// Recorded running, held before exec: `Held::go` lets it run.
    Held(Held),
    /// Recorded queued, but the command could not be forked: to be recorded as not
    /// started (exit 126 or 127).
    CannotFork(std::io::Error),
}

/// Forks the worker (held before exec) while its queued record is placed, then records it
/// running. `Err` when a record could not be made: the child then exits before exec.
pub(super) fn born(
    w: &Watch<'_>,
    id: &str,
    stream: &StreamFile,
    stderr: Option<File>,
    diag: &mut Diagnostics,
) -> Result<Birth, LaunchError> {
    let env = launch::environment(w.prepared, id, stream);
    let stdio = Stdio {
        stdin_inherit: w.config.run.stdin_inherit,
        stream: stream.file.try_clone().map_err(|e| {
            w.prepared.discard_stream(stream);
            LaunchError::failed(&w.prepared.run.path, e.to_string())
        })?,
        stderr,
        tee: w.config.run.tee,
    };
    let now = crate::proc::now_ms();
    let queued = launch::queued_bytes(id, stream, w.config, w.host.get(), now);
    // The lock first: a wait for it holds no child. Then the fork, which overlaps the queued
    // record's write (SPEC §8's launch figure); the command runs only once `go` lets it.
    let held_lock = match w.lock.take(&w.prepared.run) {
        Ok(held_lock) => held_lock,
        Err(error) => {
            w.prepared.discard_stream(stream);
            return Err(error);
        }
    };
    let forking = launch::spawn(&w.config.run.command, stdio, &env);
    if let Err(error) = w.prepared.place_queued(w.name, &queued, &held_lock) {
        if let Ok(forking) = forking {
            forking.abort();
        }
        w.prepared.discard_stream(stream);
        return Err(error);
    }
    diag.notice(&format!("delegation {id}"));
    let worker = match forking.and_then(|forking| forking.held(w.host.get())) {
        Ok(worker) => worker,
        Err(error) => return Ok(Birth::CannotFork(error)),
    };
    let recorded = worker
        .started(w.host.get(), now)
        .ok_or_else(|| {
            LaunchError::failed(
                &w.prepared.run.path,
                "the worker's fingerprint cannot be read".into(),
            )
        })
        .and_then(|started| {
            let change = LaunchChange::Running(started);
            let now = crate::proc::now_ms();
            launch::record_over(w.prepared, w.name, &queued, change, now, &held_lock)
        })
        .and_then(|()| test_unrecordable(w.prepared));
    drop(held_lock);
    match recorded {
        Ok(()) => Ok(Birth::Held(worker)),
        Err(error) => {
            // A worker that cannot be recorded never runs (SPEC §12).
            worker.abort();
            Err(error)
        }
    }
}

/// Debug builds only: `FLATLINE_TEST_UNRECORDABLE` makes the running record fail after it
/// was written, so that a test can see a worker that cannot be recorded never run. Release
/// builds have no such hook.
fn test_unrecordable(prepared: &Prepared) -> Result<(), LaunchError> {
    #[cfg(debug_assertions)]
    if std::env::var_os("FLATLINE_TEST_UNRECORDABLE").is_some() {
        return Err(LaunchError::failed(
            &prepared.run.path,
            "FLATLINE_TEST_UNRECORDABLE: the running record is taken as failed".into(),
        ));
    }
    #[cfg(not(debug_assertions))]
    let _ = prepared;
    Ok(())
}
