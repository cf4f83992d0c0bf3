//! The details of action records (SPEC §7): what each action decided, one type per kind of
//! action, each field in print order. An `ActionRecord` flattens one of them after its
//! common fields.

use crate::model::Int;
use crate::output::Ts;
use serde::Serialize;

/// What a refresh change decided (`progressed`, `fingerprinted`, `stream_recorded`, `busy`,
/// `busy_ended`, `finalized`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RefreshDetail {
    Progress {
        last_progress_at: Ts,
        fingerprint_stamped: bool,
    },
    Fingerprint {
        fingerprint_stamped: bool,
    },
    Stream {
        raw_events_inode: InodeRecord,
    },
    Activity {
        state: &'static str,
        last_activity_at: Ts,
    },
    Finalize(FinalizeDetail),
}

/// The event stream's file, as `raw_events_inode` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InodeRecord {
    pub dev: u64,
    pub ino: u64,
}

/// A delegation finalized from its event stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinalizeDetail {
    pub status: &'static str,
    pub reason: Option<&'static str>,
    pub completed_at: Ts,
    pub format: Option<&'static str>,
    pub thread_id: Option<String>,
    pub terminal_event: Option<&'static str>,
    pub raw_events_bytes: u64,
    /// Only when the stream was read in part: `Some(true)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_output_truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_output_skipped_bytes: Option<u64>,
    pub summary: String,
}

/// A worker reclaimed (`reclaimed`), or signalled and left alone (`skipped`, no summary).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReclaimDetail {
    /// `None` only inside a `SweepDetail` whose refresh part says it (see there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    pub process_id: Option<Int>,
    pub termination: &'static str,
    pub signal_via: Option<&'static str>,
    pub descendants_signalled: Vec<i32>,
    pub survivors: Vec<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// A worker reclaim found gone (or reused), finalized as refresh would: why, then what
/// refresh decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinalizedDetail {
    pub termination: &'static str,
    #[serde(flatten)]
    pub change: RefreshDetail,
}

/// A worker left alone (`skipped`), and why; `reason` absent where the termination says it
/// all (sweep's scan).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedDetail<'a> {
    pub state: &'static str,
    pub process_id: Option<Int>,
    pub termination: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

/// A worker whose process is gone but whose stream has not settled: left for later.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnsettledDetail {
    pub termination: &'static str,
    pub reason: &'static str,
}

/// The fan-in collapse stamp on a member (`fan_in_stamped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StampDetail {
    pub fan_in_collapsed_at: Ts,
}

/// A delegation an operator closed (`finalize`, SPEC §13).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorDetail {
    pub status: &'static str,
    pub reason: &'static str,
    pub summary: String,
}

/// An action whose record says nothing beyond where it happened (`flatline run`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NoDetail {}

/// One target of a `--dry-run` plan (SPEC §3.3.4): every field, always.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRunDetail {
    pub state: &'static str,
    pub process_id: Option<Int>,
    pub process_identity: Option<&'static str>,
    pub last_progress_at: Ts,
    pub elapsed_since_progress_ms: Option<i64>,
    pub summary: &'static str,
    pub termination: Option<&'static str>,
    pub reason: Option<String>,
    pub would_signal: Vec<i32>,
    pub skipped_descendants: Vec<i32>,
}

/// Every change a sweep makes to one document, in the order they are applied: refresh,
/// reclaim, fan-in stamp.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepDetail {
    #[serde(flatten)]
    pub refresh: Option<RefreshDetail>,
    #[serde(flatten)]
    pub reclaim: Option<ReclaimDetail>,
    #[serde(flatten)]
    pub stamp: Option<StampDetail>,
}

impl SweepDetail {
    /// The parts as one record. A field both the refresh and the reclaim part have (an
    /// activity change's `state`, a finalization's `summary`) is said once, where refresh
    /// says it, with the reclaim's value: the reclaim is what the document ends with.
    pub fn new(
        mut refresh: Option<RefreshDetail>,
        mut reclaim: Option<ReclaimDetail>,
        stamp: Option<StampDetail>,
    ) -> SweepDetail {
        if let (Some(refresh), Some(reclaim)) = (&mut refresh, &mut reclaim) {
            match refresh {
                RefreshDetail::Activity { state, .. } => {
                    if let Some(reclaimed) = reclaim.state.take() {
                        *state = reclaimed;
                    }
                }
                RefreshDetail::Finalize(finalize) => {
                    if let Some(summary) = reclaim.summary.take() {
                        finalize.summary = summary;
                    }
                }
                _ => {}
            }
        }
        SweepDetail {
            refresh,
            reclaim,
            stamp,
        }
    }
}
