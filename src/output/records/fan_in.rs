//! The `fan_in` record (SPEC §3.4, §7): one per task card fan-in judged.

use crate::core::plan::fan_in::FanIn;
use crate::core::time::Millis;
use crate::output::{PathText, Ts};
use serde::Serialize;
use std::path::Path;

/// A `fan_in` record (SPEC §3.4, §7). It owns what it says, so a sweep can keep it until
/// its writes are done and settle `outcome` and `active` on it before printing.
#[derive(Debug, Clone, Serialize)]
pub struct FanInRecord<'a> {
    pub kind: &'static str,
    pub run_dir: PathText<'a>,
    pub task_card_id: String,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collapsed_at: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_lanes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
    /// Delegations (file names without `.json`) that name the card but are not its owner's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_members: Option<Vec<String>>,
}

impl<'a> FanInRecord<'a> {
    /// The record of a decision; `outcome` says what this run did for a ready card
    /// (`collapsed`, `already_collapsed`, `dry_run`, `failed`).
    pub fn new(
        run_dir: &'a Path,
        card: &str,
        decision: &FanIn,
        collapsed_at: Millis,
        outcome: &'static str,
    ) -> FanInRecord<'a> {
        let empty = FanInRecord {
            kind: "fan_in",
            run_dir: PathText(run_dir),
            task_card_id: card.to_string(),
            ready: true,
            outcome: None,
            collapsed_at: None,
            completed: None,
            failed: None,
            cancelled: None,
            summary: None,
            thread_ids: None,
            active: None,
            waiting_lanes: None,
            warnings: None,
            foreign_members: None,
        };
        match decision {
            FanIn::NotReady {
                active,
                waiting_lanes,
                warnings,
            } => FanInRecord {
                ready: false,
                active: Some(*active),
                waiting_lanes: (!waiting_lanes.is_empty()).then(|| waiting_lanes.clone()),
                warnings: (!warnings.is_empty()).then(|| warnings.clone()),
                ..empty
            },
            FanIn::Collapse { counts, .. } | FanIn::Collapsed { counts, .. } => FanInRecord {
                outcome: Some(outcome),
                collapsed_at: Some(Ts(Some(collapsed_at))),
                completed: Some(counts.completed),
                failed: Some(counts.failed),
                cancelled: Some(counts.cancelled),
                summary: Some(counts.summary()),
                thread_ids: Some(counts.thread_ids.clone()),
                ..empty
            },
        }
    }
}
