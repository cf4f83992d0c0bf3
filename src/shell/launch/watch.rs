//! Watching the worker (SPEC §12): a poll on its pidfd, the verdict of sweep on its one
//! delegation between polls (a stuck worker is handed back for reclaim), signals to `run`
//! forwarded to the worker's group and recorded.

use super::{LaunchChange, LaunchError, LockPolicy, Prepared, Spawned, record};
use crate::cli::config::Config;
use crate::core::launch::Ended;
use crate::core::lifecycle::ReclaimState;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use crate::shell::runs::LazyHost;
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// How often the pidfd is polled, the signal flag checked and the verdict made.
const TICK_MS: i32 = 100;
/// How long the `--tee` copy may take to drain once the worker exited.
pub const RELAY_DRAIN: Duration = Duration::from_secs(2);

/// How the watch ended.
#[derive(Debug)]
pub enum Watched {
    /// The worker exited by itself (or of a forwarded signal).
    Exited(Ended),
    /// sweep's verdict says it needs reclaim (stale or timed out) and it is verified.
    Stuck(Stuck),
}

/// What a reclaim record needs to know of the stuck worker's view.
#[derive(Debug, Clone)]
pub struct Stuck {
    pub state: crate::core::lifecycle::State,
    pub process_id: Option<crate::model::Int>,
    pub stale_at: Option<crate::core::time::Millis>,
    pub timed_out_at: Option<crate::core::time::Millis>,
}

/// The worker's run as `run` knows it: its files, configuration, lock and host facts
/// (the birth, the watch and the end share it).
pub struct Watch<'a> {
    pub prepared: &'a Prepared,
    pub name: &'a OsStr,
    pub config: &'a Config,
    pub lock: &'a LockPolicy,
    pub host: &'a LazyHost,
    pub stop: &'a Stop,
}

pub fn ended_of(status: std::process::ExitStatus) -> Ended {
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
        if let Some(stuck) = judge(w) {
            return Ok(Watched::Stuck(stuck));
        }
    }
}

/// The verdict of sweep on the worker now: `Some` when it needs reclaim and its process is
/// verified (it is this run's own child, by its fingerprint).
fn judge(w: &Watch<'_>) -> Option<Stuck> {
    let mut bytes = Vec::new();
    w.prepared
        .delegations
        .read_file(w.name, crate::fs::MAX_DOCUMENT_BYTES, &mut bytes)
        .ok()?;
    let mut config = w.config.clone();
    config.now = crate::proc::now_ms();
    let owner = crate::fs::effective_uid();
    // Activity (SPEC §11) as sweep judges it: the tracker samples this one worker's tree.
    w.host.2.borrow_mut().set_current(Some(w.name));
    let stuck = crate::shell::runs::inspect_in(
        &w.prepared.run,
        owner,
        &bytes,
        &config,
        w.host,
        |_, times, _, view| {
            let verified = view.process_identity == Some(crate::core::identity::Identity::Verified);
            let holding = crate::core::activity::awaits_sample(
                view.activity.as_ref(),
                view,
                times,
                config.now,
                &config.thresholds,
                config.activity.as_ref(),
            );
            (view.reclaim_state == ReclaimState::ReclaimNeeded && verified && !holding).then_some(
                Stuck {
                    state: view.state,
                    process_id: view.process_id,
                    stale_at: view.stale_at,
                    timed_out_at: view.timed_out_at,
                },
            )
        },
    )
    .ok()
    .flatten();
    let mut tracker = w.host.2.borrow_mut();
    tracker.set_current(None);
    if let Some(policy) = config.activity {
        tracker.roll(policy.window);
    }
    stuck
}
