//! recheck: does a planned change still apply to the document as it is now? After a write
//! conflict (another writer replaced the file since it was read) and at the last look before
//! a signal, the shell re-reads and re-parses the document and asks one of these pure
//! predicates, one per kind of change. A refresh change is planned again from scratch
//! (`plan::refresh`), so it needs none.

use crate::core::lifecycle::{ChildStatus, ProcessFacts, ReclaimState, View, child_status};
use crate::core::plan::fan_in::Member;
use crate::core::time::{self, Millis};
use crate::model::{Delegation, Int};

/// A worker marked reclaimed without a process: the mark still applies only while the
/// document is still running, still needs a reclaim and still names no process (an
/// orchestrator may have recorded a pid or fresh progress meanwhile).
pub fn no_process_reclaim_applies(
    doc: &Delegation<'_>,
    facts: &ProcessFacts,
    view: &View<'_>,
) -> bool {
    child_status(doc) == ChildStatus::Running
        && view.reclaim_state == ReclaimState::ReclaimNeeded
        && matches!(facts, ProcessFacts::NoPid)
}

/// A fan-in stamp: still applies while the re-read member lacks it and may need it.
pub fn stamp_applies(member: &Member) -> bool {
    member.may_need_stamp()
}

/// The last look before a signal (SPEC §3.3): `Some(why)` when the view of the document as
/// it is now (with a stream written at `moved` since the plan counted as progress) no longer
/// needs the reclaim planned for `process_id`; `None` while it still does.
pub fn reclaim_dropped(
    view: &View<'_>,
    moved: Option<Millis>,
    process_id: Option<Int>,
) -> Option<String> {
    if view.reclaim_state != ReclaimState::ReclaimNeeded {
        Some(match moved {
            Some(mtime) => format!(
                "its event stream was written at {} since the plan",
                time::format_rfc3339(mtime)
            ),
            None => "its document no longer needs a reclaim".to_string(),
        })
    } else if view.process_id != process_id {
        Some("its document names another process now".to_string())
    } else {
        None
    }
}

/// The last look before an operator's reclaim (`reclaim --delegation ID --force`, SPEC
/// §13): progress does not drop it; a document that is no longer running, is reclaimed
/// already, or names another process does.
pub fn forced_reclaim_dropped(view: &View<'_>, process_id: Option<Int>) -> Option<String> {
    if !operator_may_force(view) {
        Some("its document is no longer running".to_string())
    } else if view.process_id != process_id {
        Some("its document names another process now".to_string())
    } else {
        None
    }
}

/// Whether an operator's `--force` may take this delegation although it does not need a
/// reclaim: running (any sub-state) and not reclaimed yet. The identity and uid guards of
/// triage still decide whether anything is signalled.
pub fn operator_may_force(view: &View<'_>) -> bool {
    view.status == "running" && view.reclaim_state != ReclaimState::Reclaimed
}

/// A fan-in stamp planned by `sweep` with other changes: still applies while the member is
/// unstamped, the changes that were to end it still do (or none were needed), and it is over
/// (ended by these changes, or not queued or running again meanwhile).
pub fn sweep_stamp_applies(member: &Member, planned_ends: bool, still_ends: bool) -> bool {
    member.collapsed_at.is_none()
        && (!planned_ends || still_ends)
        && (!member.is_active() || still_ends)
}

#[cfg(test)]
mod tests;
