//! reclaim's machinery (SPEC §3.3), shared by `reclaim`, `sweep` and `run`: the phases of
//! a reclaim (`phases`: the scan through `visit`, the last look, the signals, the notes that
//! are done), the notes and ledger of signalled workers in `state.json` (`notes`), the
//! records written afterwards (`record`) and the dry-run plan (`dry_run`).
//!
//! The pure decisions (`triage`, `Termination`, the `Reclaim` record) live in
//! `core::plan::reclaim`; `termination` and `Reclaim::apply` here decide what the signals
//! showed and what is written. The shell opens each verified worker as a pidfd, snapshots its
//! descendants from `/proc`, sends SIGTERM then SIGCONT to every target of every worker at
//! once, waits for all of them against one deadline, sends SIGKILL to survivors, and records
//! only the workers whose processes are confirmed gone.

use crate::cli::config::Config;
use crate::core::identity::{self, Identity, Observation, Pid};
use crate::core::lifecycle::{ProcessFacts, ReclaimState, State};
use crate::core::plan::recheck;
use crate::core::plan::reclaim::{Reclaim, Termination, Triage, triage};
use crate::core::plan::refresh::Change;
use crate::exit::Exit;
use crate::fs::RunLock;
use crate::interrupt::Stop;
use crate::model::Int;
use crate::output::{
    ActionRecord, Diagnostics, DryRunDetail, FinalizedDetail, Output, PathText, ReclaimDetail,
    SkippedDetail, Ts, UnsettledDetail, Versioned,
};
use crate::proc;
use crate::shell::commit::{
    self, ApplyError, DocChange, Place, Written, lifecycle_mut, object_mut, set_status, ts,
};
use crate::shell::refresh;
use crate::shell::runs::{self as scan, LazyHost, Listing, Run};
use crate::shell::state::RunState as StateDoc;
use crate::shell::tree_kill::{self, Descendant};
pub use crate::shell::tree_kill::{Batch, Kill, finish, send_term, signal_all};
use crate::shell::{self, Access};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;

mod dry_run;
mod last_look;
mod notes;
mod phases;
mod record;
mod visit;

pub use dry_run::*;
pub use last_look::*;
pub use notes::*;
pub(crate) use phases::Reclaiming;
pub use record::*;
use visit::Visit;

/// The nested-namespace guard (SPEC §3.1): for a delegation not owned by root, a worker whose
/// `NSpid:` line has more than one entry (a sandbox) is not signalled without
/// `--allow-nested-pidns`; one whose line cannot be read is not signalled either.
pub fn nested_guard(triage: Triage, file_owner: u32, allow_nested: bool) -> Triage {
    match triage {
        Triage::Signal { pid, .. }
            if file_owner != 0
                && !allow_nested
                && crate::proc::in_nested_pid_ns(pid) != Some(false) =>
        {
            Triage::Skip(Termination::SkippedNested)
        }
        other => other,
    }
}

/// A run being reclaimed: its lock is held until the end, but for the waits.
pub(crate) struct RunState<'a> {
    run: &'a Run,
    lock: Option<RunLock>,
    pub(crate) listing: Listing,
    pub(crate) wrote: bool,
    /// Orphaned notes this run completed or took over: dropped from `state.json`.
    seen_orphans: Vec<String>,
}

impl RunState<'_> {
    /// The lock is held: true in a dry run (which takes none), false once it could not be
    /// taken again after a wait (nothing more is written in that run).
    fn locked(&self) -> bool {
        self.lock.as_ref().is_none_or(RunLock::is_held)
    }
}

/// A worker to signal, with everything needed to record it afterwards.
pub(crate) struct Pending {
    run: usize,
    name: OsString,
    path: PathBuf,
    bytes: Vec<u8>,
    owner: u32,
    delegation_id: Option<String>,
    info: TargetInfo,
    kill: Kill,
}

/// Debug builds only: `FLATLINE_TEST_PAUSE_BEFORE_SIGNAL=<path>` makes flatline create
/// `<path>` once its targets are planned, just before their last look, and wait (at most
/// 60 s) until the test removes it: so a test can change a stream or a document between
/// the plan and the signal. Release builds have no such hook.
pub fn test_pause_before_signal() {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("FLATLINE_TEST_PAUSE_BEFORE_SIGNAL") {
        let path = std::path::PathBuf::from(path);
        if std::fs::write(&path, b"paused\n").is_ok() {
            let began = std::time::Instant::now();
            while path.exists() && began.elapsed() < std::time::Duration::from_secs(60) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// What a reclaim record needs to know of the delegation.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub state: State,
    pub process_id: Option<Int>,
    pub stale_at: Option<i64>,
    pub timed_out_at: Option<i64>,
}

impl Pending {
    fn place<'a>(&'a self, states: &'a [RunState<'_>]) -> Place<'a> {
        Place {
            command: "reclaim",
            run: states[self.run].run,
            path: &self.path,
            delegation_id: self.delegation_id.as_deref(),
        }
    }
}

/// After a conflict, for a worker marked reclaimed without a process: the mark still
/// applies only if the re-read document still needs a reclaim and still names no process
/// (an orchestrator may have recorded a pid or fresh progress meanwhile).
pub fn still_needs_no_process_reclaim(
    bytes: &[u8],
    config: &Config,
    host: &LazyHost,
    change: &Reclaim,
) -> Result<Option<Reclaim>, String> {
    scan::inspect(bytes, config, host, |doc, _, facts, view| {
        recheck::no_process_reclaim_applies(doc, facts, view).then(|| change.clone())
    })
    .map_err(|error| error.to_string())
}

/// Why a target is left alone, in words.
fn skip_reason(termination: Termination, facts: &ProcessFacts, owner: u32) -> String {
    match (termination, facts) {
        (Termination::SkippedInvalidPid, ProcessFacts::Invalid(invalid)) => invalid.to_string(),
        (Termination::SkippedLauncher, _) => {
            "the flatline run that launched it is alive and watches it".to_string()
        }
        (
            Termination::SkippedForeign,
            ProcessFacts::Checked {
                observation: Observation::Alive { uid, .. },
                pid,
                ..
            },
        ) => {
            let runs_as = match uid {
                Some(uid) => format!("runs as uid {uid}"),
                None => "runs as a uid /proc does not show".to_string(),
            };
            if owner == crate::fs::FOREIGN_OWNER {
                format!(
                    "process {pid} {runs_as}, and the delegation file is nobody's word (several \
                     links, or writable by others: SPEC §1.3)"
                )
            } else {
                format!(
                    "process {pid} {runs_as}, the delegation file belongs to uid {owner} (see --allow-foreign-uid)"
                )
            }
        }
        (Termination::SkippedUnverifiable, ProcessFacts::Checked { pid, .. }) => {
            format!("process {pid} cannot be verified as the worker")
        }
        _ => "the process id cannot be used".to_string(),
    }
}

#[cfg(test)]
mod tests;
