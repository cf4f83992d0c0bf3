//! lifecycle: the pure view of a delegation (SPEC §2), from its document, `now`, the
//! thresholds and the process facts read in the same pass.
//!
//! Nothing here touches a file, a clock or a process: the same inputs always give the same
//! view, which is what the unit tests below pin down with fixed instants.

use crate::core::identity::{self, Evidence, Fingerprint, Identity, InvalidPid, Observation, Pid};
use crate::core::time::{self, Millis};
use crate::model::{Delegation, Field, Int, Lifecycle, Text};
use std::borrow::Cow;

mod baseline;
mod state;
mod thresholds;
mod view;

pub use baseline::*;
pub use state::*;
pub use thresholds::*;
pub use view::*;

/// Every state a delegation can be in, as printed and as `--state` takes them.
pub const STATES: &[&str] = &[
    "queued",
    "launching",
    "running_active",
    "running_quiet",
    "stale",
    "timed_out",
    "returned",
    "failed",
    "cancelled",
    "unknown",
];

pub const DEFAULT_STALE_MS: Millis = 45_000;
pub const DEFAULT_MAX_CLOCK_SKEW_MS: Millis = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Launching,
    RunningActive,
    RunningQuiet,
    Stale,
    TimedOut,
    Returned,
    Failed,
    Cancelled,
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Launching => "launching",
            State::RunningActive => "running_active",
            State::RunningQuiet => "running_quiet",
            State::Stale => "stale",
            State::TimedOut => "timed_out",
            State::Returned => "returned",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        Some(match text {
            "queued" => State::Queued,
            "launching" => State::Launching,
            "running_active" | "running" => State::RunningActive,
            "running_quiet" => State::RunningQuiet,
            "stale" => State::Stale,
            "timed_out" => State::TimedOut,
            "returned" => State::Returned,
            "failed" => State::Failed,
            "cancelled" => State::Cancelled,
            "unknown" => State::Unknown,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimState {
    NotNeeded,
    ReclaimNeeded,
    Resumable,
    Reclaimed,
}

impl ReclaimState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReclaimState::NotNeeded => "not_needed",
            ReclaimState::ReclaimNeeded => "reclaim_needed",
            ReclaimState::Resumable => "resumable",
            ReclaimState::Reclaimed => "reclaimed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAction {
    None,
    Finalize,
    Reclaim,
    Advance,
    AwaitWorker,
}

impl NextAction {
    pub fn as_str(self) -> &'static str {
        match self {
            NextAction::None => "none",
            NextAction::Finalize => "finalize",
            NextAction::Reclaim => "reclaim",
            NextAction::Advance => "advance",
            NextAction::AwaitWorker => "await_worker",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    Reclaim,
    Poll,
    AskOperator,
    Wait,
}

impl Recovery {
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::Reclaim => "reclaim",
            Recovery::Poll => "poll",
            Recovery::AskOperator => "ask_operator",
            Recovery::Wait => "wait",
        }
    }
}

/// The child status of a delegation (`child_agent.status`, else `executor.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    Other,
}

impl ChildStatus {
    fn parse(text: &str) -> ChildStatus {
        match text {
            "queued" => ChildStatus::Queued,
            "running" => ChildStatus::Running,
            "completed" => ChildStatus::Completed,
            "failed" => ChildStatus::Failed,
            "cancelled" => ChildStatus::Cancelled,
            _ => ChildStatus::Other,
        }
    }

    /// completed, failed and cancelled end a worker's life.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ChildStatus::Completed | ChildStatus::Failed | ChildStatus::Cancelled
        )
    }
}

/// The counts of one `--summary` row (SPEC §6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub total: u64,
    pub active: u64,
    pub queued: u64,
    pub launching: u64,
    pub running: u64,
    pub running_quiet: u64,
    pub returned: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub stale: u64,
    pub timed_out: u64,
    pub reclaim_needed: u64,
    pub reclaimed: u64,
}

impl Tally {
    pub fn add(&mut self, view: &View<'_>) {
        let reclaimed = view.reclaim_state == ReclaimState::Reclaimed;
        self.total += 1;
        if !view.child_status.is_terminal() && !reclaimed {
            self.active += 1;
        }
        match view.state {
            State::Queued => self.queued += 1,
            State::Launching => self.launching += 1,
            State::RunningActive => self.running += 1,
            State::RunningQuiet => self.running_quiet += 1,
            State::Returned => self.returned += 1,
            State::Stale if !reclaimed => self.stale += 1,
            State::TimedOut if !reclaimed => self.timed_out += 1,
            _ => {}
        }
        match view.child_status {
            ChildStatus::Completed => self.completed += 1,
            ChildStatus::Failed => self.failed += 1,
            ChildStatus::Cancelled => self.cancelled += 1,
            _ => {}
        }
        match view.reclaim_state {
            ReclaimState::ReclaimNeeded => self.reclaim_needed += 1,
            ReclaimState::Reclaimed => self.reclaimed += 1,
            _ => {}
        }
    }

    /// The counts in their printed order.
    pub fn fields(&self) -> [(&'static str, u64); 14] {
        [
            ("total", self.total),
            ("active", self.active),
            ("queued", self.queued),
            ("launching", self.launching),
            ("running", self.running),
            ("running_quiet", self.running_quiet),
            ("returned", self.returned),
            ("completed", self.completed),
            ("failed", self.failed),
            ("cancelled", self.cancelled),
            ("stale", self.stale),
            ("timed_out", self.timed_out),
            ("reclaim_needed", self.reclaim_needed),
            ("reclaimed", self.reclaimed),
        ]
    }
}

#[cfg(test)]
mod tests;
