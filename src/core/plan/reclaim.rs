//! reclaim: the pure decisions of SPEC §3.3 — what may be done with each target before
//! anything is signalled (`triage`, with the uid guard), how a target ended (`Termination`)
//! and what is recorded for it (`Reclaim`). `reclaim` opens, signals, waits and writes.

use crate::core::identity::{Identity, Observation, Pid};
use crate::core::lifecycle::{ProcessFacts, State};
use crate::model::Int;

/// How a reclaim target ended (SPEC §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Exited after SIGTERM, within the grace period.
    Terminated,
    /// Exited after SIGKILL.
    Killed,
    /// EPERM: flatline may not signal it.
    NotPermitted,
    /// Still alive after SIGKILL and the kill wait.
    Survived,
    /// Still alive: a signal or `--deadline` stopped the run before SIGKILL.
    Interrupted,
    /// Dropped just before the first signal: its stream or document showed progress since
    /// the plan, or it no longer needs reclaim. Nothing signalled.
    Progressed,
    /// Its record could not be written (hard-linked, not a regular file, over 16 MiB once
    /// changed, not rewritable): never signalled (exit 3).
    SkippedUnrecordable,
    /// Its process had already exited: finalized as refresh would.
    AlreadyExited,
    /// Its pid belongs to another process now: finalized as refresh would, nothing signalled.
    SkippedReused,
    /// No process id recorded: marked reclaimed without a signal.
    NoProcess,
    SkippedInvalidPid,
    SkippedUnverifiable,
    /// The process runs as another user than the one owning the delegation file.
    SkippedForeign,
    /// The worker of a non-root delegation lives in a nested pid namespace (SPEC §3.1).
    SkippedNested,
    /// The worker's `flatline run` is alive and verified: it watches the worker itself
    /// (SPEC §12). Not a problem: nothing needs a person.
    SkippedLauncher,
}

impl Termination {
    pub fn as_str(self) -> &'static str {
        match self {
            Termination::Terminated => "terminated",
            Termination::Killed => "killed",
            Termination::NotPermitted => "not_permitted",
            Termination::Survived => "survived",
            Termination::Interrupted => "interrupted",
            Termination::Progressed => "progressed",
            Termination::SkippedUnrecordable => "skipped_unrecordable",
            Termination::AlreadyExited => "already_exited",
            Termination::SkippedReused => "skipped_reused",
            Termination::NoProcess => "no_process",
            Termination::SkippedInvalidPid => "skipped_invalid_pid",
            Termination::SkippedUnverifiable => "skipped_unverifiable",
            Termination::SkippedForeign => "skipped_foreign",
            Termination::SkippedNested => "skipped_nested",
            Termination::SkippedLauncher => "skipped_launcher",
        }
    }

    /// The target stays `reclaim_needed` and the run exits 1.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            Termination::NotPermitted
                | Termination::Survived
                | Termination::Interrupted
                | Termination::SkippedInvalidPid
                | Termination::SkippedUnverifiable
                | Termination::SkippedForeign
                | Termination::SkippedNested
        )
    }
}

/// What reclaim does with one target, decided before anything is signalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triage {
    /// A live, verified process of the right user: signal it (and its descendants).
    Signal { pid: Pid, start_ticks: u64 },
    /// The process is gone (`AlreadyExited`) or the pid reused (`SkippedReused`).
    Finalize(Termination),
    /// No process id: mark it reclaimed.
    NoProcess,
    /// Leave it alone: it stays `reclaim_needed`.
    Skip(Termination),
}

/// The confused-deputy guard (SPEC §3.1): a process may be signalled for a delegation
/// file owned by root, by its own user, or with `--allow-foreign-uid`.
pub fn uid_allowed(process_uid: u32, file_owner: u32, allow_foreign: bool) -> bool {
    file_owner == 0 || allow_foreign || process_uid == file_owner
}

/// Decides what may be done with a target from its process facts. Pure.
pub fn triage(facts: &ProcessFacts, file_owner: u32, allow_foreign: bool) -> Triage {
    match facts {
        ProcessFacts::NoPid => Triage::NoProcess,
        ProcessFacts::Invalid(_) | ProcessFacts::NotChecked => {
            Triage::Skip(Termination::SkippedInvalidPid)
        }
        ProcessFacts::Checked {
            identity,
            observation,
            pid,
        } => match (identity, observation) {
            (Identity::Gone, _) => Triage::Finalize(Termination::AlreadyExited),
            (Identity::Reused, _) => Triage::Finalize(Termination::SkippedReused),
            (Identity::Unverifiable, _) => Triage::Skip(Termination::SkippedUnverifiable),
            (
                Identity::Verified,
                Observation::Alive {
                    start_ticks, uid, ..
                },
            ) => {
                // The uid is read only when the command asked for it (reclaim and sweep
                // always do; a hidden process is `Hidden`, never here). Should it be missing,
                // only what passes for any uid passes: a root-owned file, --allow-foreign-uid.
                let allowed = match uid {
                    Some(uid) => uid_allowed(*uid, file_owner, allow_foreign),
                    None => file_owner == 0 || allow_foreign,
                };
                if allowed {
                    Triage::Signal {
                        pid: *pid,
                        start_ticks: *start_ticks,
                    }
                } else {
                    Triage::Skip(Termination::SkippedForeign)
                }
            }
            (Identity::Verified, _) => Triage::Skip(Termination::SkippedUnverifiable),
        },
    }
}

/// What reclaim writes for a worker whose processes are confirmed gone (SPEC §3.3.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Reclaim {
    pub state: State,
    pub termination: Termination,
    pub process_id: Option<Int>,
    pub stale_at: Option<i64>,
    pub timed_out_at: Option<i64>,
    pub signal_via: Option<&'static str>,
    pub descendants_signalled: Vec<i32>,
    pub survivors: Vec<i32>,
}

impl Reclaim {
    /// Whether an operator asked for it (`reclaim --delegation ID --force`, SPEC §13): only
    /// then is a worker that is neither stale nor timed out reclaimed. Recorded as
    /// `cancelled`, reason `operator`.
    pub fn by_operator(&self) -> bool {
        !matches!(self.state, State::Stale | State::TimedOut)
    }

    /// "Worker process 4242 exceeded the bounded timeout and was reclaimed by flatline
    /// (killed)."
    pub fn summary(&self) -> String {
        let who = match self.process_id {
            Some(pid) => format!("Worker process {pid}"),
            None => "Worker (no process recorded)".to_string(),
        };
        if self.by_operator() {
            return format!(
                "{who} was cancelled by an operator with flatline reclaim --force ({}).",
                self.termination.as_str()
            );
        }
        let what = if self.state == State::TimedOut {
            "exceeded the bounded timeout"
        } else {
            "stopped making progress"
        };
        format!(
            "{who} {what} and was reclaimed by flatline ({}).",
            self.termination.as_str()
        )
    }
}

#[cfg(test)]
mod tests;
