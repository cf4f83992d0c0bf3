//! Watching the worker (SPEC §12): a poll on its pidfd, the verdict of sweep on its one
//! delegation between polls (reclaiming the tree when it is stale or timed out), signals
//! to `run` forwarded to the worker's group; and on exit, the final record from the real
//! wait status and the stream's digest.

use super::{LaunchChange, LaunchError, LockPolicy, Prepared, Spawned, StreamFile, record};
use crate::cmd::reclaim::{self, Kill, TargetInfo};
use crate::config::Config;
use crate::core::digest;
use crate::core::launch::Ended;
use crate::core::lifecycle::ReclaimState;
use crate::core::plan::refresh::{Change, Finalization};
use crate::exit::Exit;
use crate::output::Diagnostics;
use crate::scan::LazyHost;
use crate::stop::Stop;
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// How often the pidfd is polled, the signal flag checked and the verdict made.
const TICK_MS: i32 = 100;
/// How long the `--tee` copy may take to drain once the worker exited.
const RELAY_DRAIN: Duration = Duration::from_secs(2);

/// How the watch ended.
#[derive(Debug)]
pub enum Watched {
    /// The worker exited by itself (or of a forwarded signal).
    Exited(Ended),
    /// `run` reclaimed it for lack of progress; the record is written.
    Reclaimed,
}

/// What the watch needs to know.
pub struct Watch<'a> {
    pub prepared: &'a Prepared,
    pub name: &'a OsStr,
    pub config: &'a Config,
    pub lock: &'a LockPolicy,
    pub host: &'a LazyHost,
    pub stop: &'a Stop,
}

fn ended_of(status: std::process::ExitStatus) -> Ended {
    match (status.code(), status.signal()) {
        (Some(code), _) => Ended::Exited(code),
        (None, Some(signal)) => Ended::Signalled(signal),
        (None, None) => Ended::Exited(i32::from(crate::core::launch::RUN_FAILED)),
    }
}

fn signal_name(number: i32) -> &'static str {
    match number {
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "SIGTERM",
    }
}

/// Waits for the worker; judges, forwards and reclaims on the way.
pub fn watch(
    w: &Watch<'_>,
    spawned: &mut Spawned,
    diag: &mut Diagnostics,
) -> Result<Watched, LaunchError> {
    let mut forwarded = false;
    loop {
        if spawned.own.exited(TICK_MS) {
            let status = spawned
                .child
                .wait()
                .map_err(|e| LaunchError::failed(&w.prepared.run.path, e.to_string()))?;
            return Ok(Watched::Exited(ended_of(status)));
        }
        if !forwarded && let Some(Exit::Signal(number)) = w.stop.check() {
            forwarded = true;
            // In the terminal's foreground group the worker got SIGINT from the terminal.
            if spawned.own_group || number != libc::SIGINT {
                spawned.own.send(number, spawned.own_group);
            }
            let change = LaunchChange::Forwarded {
                signal: signal_name(number),
                at: crate::proc::now_ms(),
            };
            if let Err(error) = record(w.prepared, w.name, change, w.lock, crate::proc::now_ms()) {
                diag.error(&error.path, &error.message, Exit::FileProblem);
            }
        }
        if w.config.run.no_watch {
            continue;
        }
        if let Some(info) = judge(w) {
            return reclaim_tree(w, spawned, &info, diag);
        }
    }
}

/// The verdict of sweep on the worker now: `Some` when it needs reclaim and its process is
/// verified (it is this run's own child, by its fingerprint).
fn judge(w: &Watch<'_>) -> Option<TargetInfo> {
    let mut bytes = Vec::new();
    w.prepared
        .delegations
        .read_file(w.name, crate::fs::MAX_DOCUMENT_BYTES, &mut bytes)
        .ok()?;
    let mut config = w.config.clone();
    config.now = crate::proc::now_ms();
    let owner = crate::fs::effective_uid();
    crate::scan::inspect_in(
        &w.prepared.run,
        owner,
        &bytes,
        &config,
        w.host,
        |_, _, _, view| {
            let verified = view.process_identity == Some(crate::core::identity::Identity::Verified);
            (view.reclaim_state == ReclaimState::ReclaimNeeded && verified).then_some(TargetInfo {
                state: view.state,
                process_id: view.process_id,
                stale_at: view.stale_at,
                timed_out_at: view.timed_out_at,
            })
        },
    )
    .ok()
    .flatten()
}

/// Reclaims the worker's tree as `reclaim` does (SIGTERM, grace, SIGSTOP, resnapshot,
/// SIGKILL), reaps it and records it. A tree that survives is said and watched again.
fn reclaim_tree(
    w: &Watch<'_>,
    spawned: &mut Spawned,
    info: &TargetInfo,
    diag: &mut Diagnostics,
) -> Result<Watched, LaunchError> {
    let Some(start_ticks) = spawned.own.start_ticks() else {
        return Err(LaunchError::failed(
            &w.prepared.run.path,
            "the worker's start time cannot be read".into(),
        ));
    };
    let mut kill = Kill::new(spawned.pid(), start_ticks, crate::fs::effective_uid());
    // Never stopped by run's own signal flag: a signal to run was forwarded already, and a
    // second one ends run at once.
    let _ = reclaim::signal_all(&mut [&mut kill], w.config, w.host.get(), &Stop::never());
    let path = w.prepared.delegations.join(w.name);
    kill.warn(&path, diag);
    let Some(reclaim) = kill.reclaim(info) else {
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
    record(w.prepared, w.name, change, w.lock, crate::proc::now_ms())?;
    Ok(Watched::Reclaimed)
}

/// Finalizes the delegation at once from the wait status and the stream's digest, read
/// through run's own descriptor (SPEC §3.2 rules; no settling: the worker is reaped).
pub fn finish(
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
    let read =
        crate::cmd::refresh::digest_bounded(&stream.file, meta.size, w.config.max_stream_read)
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
pub fn not_started(
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
