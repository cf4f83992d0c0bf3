//! How a `flatline run` worker ends in its delegation: reclaimed by `run` (the tree kill of
//! `reclaim`, and its record), finalized from the wait status and the stream's digest, or
//! never started (SPEC §12, §3.2, §3.3).

use crate::core::digest;
use crate::core::launch::Ended;
use crate::core::plan::refresh::{Change, Finalization};
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use crate::shell::launch::{
    LaunchChange, LaunchError, LockPolicy, Prepared, RELAY_DRAIN, Spawned, StreamFile, Stuck,
    Watch, ended_of, record,
};
use crate::shell::reclaim::TargetInfo;
use crate::shell::refresh::digest_bounded;
use crate::shell::tree_kill::{Kill, signal_all};
use std::ffi::OsStr;

/// Reclaims the worker's tree as `reclaim` does (SIGTERM, grace, SIGSTOP, resnapshot,
/// SIGKILL), reaps it and records it. A tree that survives is said and watched again.
pub(super) fn reclaim_tree(
    w: &Watch<'_>,
    spawned: &mut Spawned,
    stuck: &Stuck,
    diag: &mut Diagnostics,
) -> Result<(), LaunchError> {
    let info = TargetInfo {
        state: stuck.state,
        process_id: stuck.process_id,
        stale_at: stuck.stale_at,
        timed_out_at: stuck.timed_out_at,
    };
    let Some(start_ticks) = spawned.own.start_ticks() else {
        return Err(LaunchError::failed(
            &w.prepared.run.path,
            "the worker's start time cannot be read".into(),
        ));
    };
    let mut kill = Kill::new(spawned.pid(), start_ticks, crate::fs::effective_uid());
    // Never stopped by run's own signal flag: a signal to run was forwarded already, and a
    // second one ends run at once.
    let _ = signal_all(&mut [&mut kill], w.config, w.host.get(), &Stop::never());
    let path = w.prepared.delegations.join(w.name);
    kill.warn(&path, diag);
    let Some(reclaim) = kill.reclaim(&info) else {
        return Err(LaunchError::failed(
            &path,
            format!("worker {} could not be reclaimed", spawned.pid()),
        ));
    };
    let status = spawned
        .child
        .wait()
        .map_err(|e| LaunchError::failed(&path, e.to_string()))?;
    if let Some(relay) = spawned.relay.take() {
        relay.finish(RELAY_DRAIN);
    }
    let change = LaunchChange::Reclaimed {
        reclaim,
        ended: ended_of(status),
    };
    record(w.prepared, w.name, change, w.lock, crate::proc::now_ms())
}

/// Finalizes the delegation at once from the wait status and the stream's digest, read
/// through run's own descriptor (SPEC §3.2 rules; no settling: the worker is reaped).
pub(super) fn finish(
    w: &Watch<'_>,
    spawned: &mut Spawned,
    stream: &StreamFile,
    ended: Ended,
) -> Result<(), LaunchError> {
    if let Some(relay) = spawned.relay.take() {
        relay.finish(RELAY_DRAIN);
    }
    let shown = w.prepared.run.path.join(&stream.rel);
    let meta = crate::fs::fstat(std::os::fd::AsFd::as_fd(&stream.file))
        .map_err(|e| LaunchError::failed(&shown, crate::fs::io_message(&e)))?;
    let read = digest_bounded(&stream.file, meta.size, w.config.max_stream_read)
        .map_err(|e| LaunchError::failed(&shown, crate::fs::io_message(&e)))?;
    let now = crate::proc::now_ms();
    let exit_code = ended.exit_code();
    let finalization = Finalization {
        verdict: digest::verdict_with_exit(&read, exit_code),
        completed_at: meta.mtime_ms.min(now),
        digest: Some(read),
        exit_code,
    };
    let change = LaunchChange::Finished {
        finalize: Change::Finalize(Box::new(finalization)),
        ended,
    };
    record(w.prepared, w.name, change, w.lock, now)
}

/// COMMAND could not be executed: the queued delegation is finalized as failed, with the
/// status timeout(1) gives (127 not found, 126 cannot execute) as its exit code.
pub(super) fn not_started(
    prepared: &Prepared,
    name: &OsStr,
    lock: &LockPolicy,
    error: &std::io::Error,
) -> Result<u8, LaunchError> {
    let status = crate::core::launch::spawn_failure_status(error.raw_os_error());
    let ended = Ended::Exited(i32::from(status));
    let finalization = Finalization {
        verdict: digest::verdict_with_exit(&Default::default(), ended.exit_code()),
        completed_at: crate::proc::now_ms(),
        digest: None,
        exit_code: ended.exit_code(),
    };
    let change = LaunchChange::Finished {
        finalize: Change::Finalize(Box::new(finalization)),
        ended,
    };
    record(prepared, name, change, lock, crate::proc::now_ms())?;
    Ok(status)
}
