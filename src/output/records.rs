//! The records flatline prints, as types: one per delegation (SPEC §7), one `--summary` row
//! per run or card. Each is serialized one way, in print order.

use super::{JsonWriter, PathText, Ts, WriteJson};
use crate::core::lifecycle::{Tally, View};
use crate::model::Int;
use serde::Serialize;
use std::borrow::Cow;
use std::path::Path;

/// A delegation record (SPEC §7), in print order.
#[derive(Debug, Serialize)]
pub struct DelegationRecord<'a> {
    pub kind: &'static str,
    pub run_dir: PathText<'a>,
    pub path: PathText<'a>,
    pub delegation_id: Option<&'a str>,
    pub task_card_id: Option<&'a str>,
    pub work_kind: &'a str,
    pub status: &'a str,
    pub state: &'static str,
    pub reclaim_state: &'static str,
    pub process_id: Option<Int>,
    pub process_alive: Option<bool>,
    pub process_identity: Option<&'static str>,
    pub last_progress_at: Ts,
    pub progress_baseline: Option<&'static str>,
    pub elapsed_since_progress_ms: Option<i64>,
    pub quiet_after_ms: i64,
    pub stale_after_ms: i64,
    pub timeout_after_ms: i64,
    pub stale_at: Ts,
    pub timed_out_at: Ts,
    pub next_action: &'static str,
    pub transition: &'static str,
    pub classification: &'static str,
    pub recovery_action: &'static str,
    pub recovery_reason: &'a str,
    pub summary: &'static str,
    pub needs_attention: bool,
    pub warnings: Vec<Cow<'static, str>>,
    /// What the worker's process tree did (SPEC §11), or null.
    pub activity: Option<crate::output::activity::ActivityRecord<'a>>,
    /// What the quiet worker's tree waits on (SPEC §11), or null.
    pub stall: Option<crate::output::activity::StallRecord<'a>>,
}

impl<'a> DelegationRecord<'a> {
    pub fn new(run_dir: &'a Path, path: &'a Path, view: &'a View<'a>) -> DelegationRecord<'a> {
        DelegationRecord {
            kind: "delegation",
            run_dir: PathText(run_dir),
            path: PathText(path),
            delegation_id: view.delegation_id,
            task_card_id: view.task_card_id,
            work_kind: view.work_kind,
            status: view.status,
            state: view.state.as_str(),
            reclaim_state: view.reclaim_state.as_str(),
            process_id: view.process_id,
            process_alive: view.process_alive,
            process_identity: view.process_identity.map(|identity| identity.as_str()),
            last_progress_at: Ts(view.last_progress_at),
            progress_baseline: view.progress_baseline,
            elapsed_since_progress_ms: view.elapsed_since_progress_ms,
            quiet_after_ms: view.thresholds.quiet,
            stale_after_ms: view.thresholds.stale,
            timeout_after_ms: view.thresholds.timeout,
            stale_at: Ts(view.stale_at),
            timed_out_at: Ts(view.timed_out_at),
            next_action: view.next_action.as_str(),
            transition: view.transition,
            classification: view.transition,
            recovery_action: view.recovery_action.as_str(),
            recovery_reason: &view.recovery_reason,
            summary: view.summary,
            needs_attention: view.needs_attention(),
            warnings: view.warnings.iter().map(|w| w.code()).collect(),
            activity: view
                .activity
                .as_ref()
                .map(crate::output::activity::ActivityRecord::new),
            stall: view
                .stall
                .as_ref()
                .map(crate::output::activity::StallRecord::new),
        }
    }
}

impl WriteJson for DelegationRecord<'_> {
    fn write_json(&self, out: &mut JsonWriter<'_>) {
        out.key(true, "kind");
        out.str(self.kind);
        out.key(false, "run_dir");
        out.path(self.run_dir.0);
        out.key(false, "path");
        out.path(self.path.0);
        out.key(false, "delegation_id");
        out.opt_str(self.delegation_id);
        out.key(false, "task_card_id");
        out.opt_str(self.task_card_id);
        out.key(false, "work_kind");
        out.str(self.work_kind);
        out.key(false, "status");
        out.str(self.status);
        out.key(false, "state");
        out.str(self.state);
        out.key(false, "reclaim_state");
        out.str(self.reclaim_state);
        out.key(false, "process_id");
        out.opt_int(self.process_id);
        out.key(false, "process_alive");
        out.opt_bool(self.process_alive);
        out.key(false, "process_identity");
        out.opt_str(self.process_identity);
        out.key(false, "last_progress_at");
        out.ts(self.last_progress_at);
        out.key(false, "progress_baseline");
        out.opt_str(self.progress_baseline);
        out.key(false, "elapsed_since_progress_ms");
        out.opt_int(self.elapsed_since_progress_ms);
        out.key(false, "quiet_after_ms");
        out.int(self.quiet_after_ms);
        out.key(false, "stale_after_ms");
        out.int(self.stale_after_ms);
        out.key(false, "timeout_after_ms");
        out.int(self.timeout_after_ms);
        out.key(false, "stale_at");
        out.ts(self.stale_at);
        out.key(false, "timed_out_at");
        out.ts(self.timed_out_at);
        out.key(false, "next_action");
        out.str(self.next_action);
        out.key(false, "transition");
        out.str(self.transition);
        out.key(false, "classification");
        out.str(self.classification);
        out.key(false, "recovery_action");
        out.str(self.recovery_action);
        out.key(false, "recovery_reason");
        out.str(self.recovery_reason);
        out.key(false, "summary");
        out.str(self.summary);
        out.key(false, "needs_attention");
        out.bool(self.needs_attention);
        out.key(false, "warnings");
        out.strs(&self.warnings);
        out.key(false, "activity");
        match &self.activity {
            Some(activity) => activity.write_json(out),
            None => out.null(),
        }
        out.key(false, "stall");
        match &self.stall {
            Some(stall) => stall.write_json(out),
            None => out.null(),
        }
        out.end();
    }
}

/// A `--summary` row: the run, the card, then the counts in SPEC §6 order.
#[derive(Debug)]
pub struct SummaryRecord {
    pub run_dir: String,
    pub task_card_id: Option<String>,
    pub tally: Tally,
}

impl Serialize for SummaryRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.tally.fields();
        let mut map = serializer.serialize_map(Some(4 + fields.len()))?;
        map.serialize_entry("kind", "summary")?;
        map.serialize_entry("scope", "delegations")?;
        map.serialize_entry("run_dir", &self.run_dir)?;
        map.serialize_entry("task_card_id", &self.task_card_id)?;
        for (name, count) in fields {
            map.serialize_entry(name, &count)?;
        }
        map.end()
    }
}

/// A record as the json formats print it: its fields, then `schema_version` (what
/// `Output` adds to the records it prints; for a document a command prints itself).
#[derive(Debug, Serialize)]
pub struct Versioned<T> {
    #[serde(flatten)]
    pub record: T,
    pub schema_version: u64,
}

impl<T> Versioned<T> {
    pub fn new(record: T) -> Versioned<T> {
        Versioned {
            record,
            schema_version: super::SCHEMA_VERSION,
        }
    }
}

mod action;
mod detail;
mod event;
mod fan_in;
mod finding;
mod problem;
mod summary;

pub use action::ActionRecord;
pub use detail::*;
pub use event::EventRecord;
pub use fan_in::FanInRecord;
pub use finding::FindingRecord;
pub(crate) use problem::{print_lock_held, print_problems};
pub(crate) use summary::tally_text;

#[cfg(test)]
mod tests;
