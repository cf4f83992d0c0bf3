//! What a sweep keeps between its phases: the runs it holds, the documents it may write, and
//! what it did.

use super::changes::Changes;
use super::signal::{Signals, Tree};
use crate::cli::config::Config;
use crate::core::plan::fan_in::Member;
use crate::exit::Exit;
use crate::fs::RunLock;
use crate::interrupt::Stop;
use crate::output::Output;
use crate::output::RunMetrics;
use crate::shell::fan_in::{CardFile, MemberFile};
use crate::shell::reclaim::{self, Kill, TargetInfo};
use crate::shell::runs::{LazyHost, Listing, Run};
use crate::shell::state::reported::Reported;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// A delegation sweep may write: its bytes as read and the changes planned for it.
pub(super) struct Entry {
    pub run: usize,
    pub name: OsString,
    pub path: PathBuf,
    pub owner: u32,
    pub delegation_id: Option<String>,
    pub bytes: Vec<u8>,
    pub changes: Changes,
    pub kill: Option<(Kill, TargetInfo)>,
    /// Its index among its card's members, for the fan-in stamp.
    pub card: Option<(String, usize)>,
}

/// A run being swept: its lock is held until the end.
pub(super) struct RunState<'a> {
    pub run: &'a Run,
    pub lock: Option<RunLock>,
    pub delegations: Option<Listing>,
    pub card_listing: Option<Listing>,
    pub cards: BTreeMap<String, CardFile>,
    pub members: BTreeMap<String, Vec<MemberFile>>,
    /// For each member of each card, the entry that holds its bytes, if any.
    pub member_entries: BTreeMap<String, Vec<Option<usize>>>,
    /// For each member of each card, whether its document on disk was active when read: a
    /// not-ready card's `active` counts those that still are after this run's writes.
    pub disk_active: BTreeMap<String, Vec<bool>>,
    pub wrote: bool,
    /// The delegations as the sweep leaves them, for the metrics.
    pub seen: RunMetrics,
    /// The problems printed before, and those seen in this sweep (SPEC §7).
    pub reported: Reported,
    /// Orphaned signal notes this sweep completed or took over (reclaim::Ledger).
    pub seen_orphans: Vec<String>,
}

impl RunState<'_> {
    /// The lock is held: true in a dry run (which takes none), false once it could not be
    /// taken again after a wait (nothing more is written in that run).
    pub fn locked(&self) -> bool {
        self.lock.as_ref().is_none_or(RunLock::is_held)
    }

    /// The fan-in facts of the member at `position` of `card`.
    pub fn member_mut(&mut self, card: &str, position: usize) -> Option<&mut Member> {
        self.members
            .get_mut(card)
            .and_then(|members| members.get_mut(position))
            .map(|file| &mut file.member)
    }
}

/// What the sweep did, for the metrics.
#[derive(Debug, Default, Clone)]
pub struct Tallies {
    pub reclaimed_now: u64,
    pub actions: BTreeMap<&'static str, u64>,
}

pub(super) fn count(tallies: &mut Tallies, action: &'static str) {
    *tallies.actions.entry(action).or_default() += 1;
}

/// A skipped reclaim as a problem (`Reported`): what the worker's record says, and the
/// action.
#[derive(Debug, Serialize)]
pub(super) struct SkippedProblem<'a, D> {
    #[serde(flatten)]
    pub detail: &'a D,
    pub action: &'static str,
}

pub(super) fn skipped_record<D: Serialize>(detail: &D) -> SkippedProblem<'_, D> {
    SkippedProblem {
        detail,
        action: "skipped",
    }
}

/// What every phase reads and nobody changes.
pub(super) struct Env<'a> {
    pub config: &'a Config,
    pub host: &'a LazyHost,
    pub stop: &'a Stop,
    pub plan_table: &'a reclaim::PlanTable,
    /// This flatline's pid and start time, for the signal notes.
    pub me: (i32, u64),
}

impl Env<'_> {
    /// The real signals, for the signal phase.
    pub fn tree(&self) -> Tree<'_> {
        Tree {
            config: self.config,
            host: self.host,
            stop: self.stop,
        }
    }
}

/// One sweep across its runs: what every phase adds to.
pub(super) struct Sweep<'r> {
    pub output: Output,
    pub states: Vec<RunState<'r>>,
    pub entries: Vec<Entry>,
    pub tallies: Tallies,
    pub signals: Signals<reclaim::Batch>,
    /// Signalled workers whose record did not land: their notes stay for the next run.
    pub unlanded: Vec<(usize, String)>,
    /// A signal or the deadline stopped the sweep.
    pub interrupted: Option<Exit>,
}

impl<'r> Sweep<'r> {
    pub fn new(output: Output) -> Sweep<'r> {
        Sweep {
            output,
            states: Vec::new(),
            entries: Vec::new(),
            tallies: Tallies::default(),
            signals: Signals::default(),
            unlanded: Vec::new(),
            interrupted: None,
        }
    }
}
