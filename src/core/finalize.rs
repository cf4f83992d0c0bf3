//! finalize: an operator closes a running delegation by hand (SPEC §13). What may be closed,
//! and the words recorded; the shell writes it under the run lock.

use crate::core::lifecycle::{self, ChildStatus};
use crate::model::Delegation;

/// What `flatline finalize` does with one delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Running and not reclaimed: close it.
    Close,
    /// Already terminal or reclaimed: nothing to do (the status, for the message).
    AlreadyDone(&'static str),
    /// Queued or a status flatline does not know: not the operator's tool.
    NotRunning,
}

pub fn decide(doc: &Delegation<'_>) -> Decision {
    if lifecycle::is_reclaimed(doc) {
        return Decision::AlreadyDone("reclaimed");
    }
    match lifecycle::child_status(doc) {
        ChildStatus::Running => Decision::Close,
        ChildStatus::Completed => Decision::AlreadyDone("completed"),
        ChildStatus::Failed => Decision::AlreadyDone("failed"),
        ChildStatus::Cancelled => Decision::AlreadyDone("cancelled"),
        ChildStatus::Queued | ChildStatus::Other => Decision::NotRunning,
    }
}

/// The summary recorded in `latest_failure.summary` and `result_summary`.
pub fn summary(status: &str, note: Option<&str>) -> String {
    let base = format!("Finalized as {status} by an operator with flatline finalize");
    match note.map(|n| crate::core::text::preview(n, 500)) {
        Some(note) if !note.is_empty() => format!("{base}: {note}"),
        _ => format!("{base}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> Decision {
        let doc = crate::model::parse_delegation(json.as_bytes()).unwrap();
        decide(&doc)
    }

    #[test]
    fn only_a_running_unreclaimed_delegation_is_closed() {
        assert_eq!(
            parsed(r#"{"child_agent":{"status":"running"}}"#),
            Decision::Close
        );
        assert_eq!(
            parsed(r#"{"child_agent":{"status":"failed"}}"#),
            Decision::AlreadyDone("failed")
        );
        assert_eq!(
            parsed(
                r#"{"child_agent":{"status":"running"},"worker_lifecycle":{"reclaim_state":"reclaimed"}}"#
            ),
            Decision::AlreadyDone("reclaimed")
        );
        assert_eq!(parsed(r#"{}"#), Decision::NotRunning);
        assert_eq!(
            parsed(r#"{"child_agent":{"status":"paused"}}"#),
            Decision::NotRunning
        );
    }

    #[test]
    fn the_summary_carries_the_note_without_control_characters() {
        assert_eq!(
            summary("failed", None),
            "Finalized as failed by an operator with flatline finalize."
        );
        assert_eq!(
            summary("cancelled", Some("pid 1\u{1b}[2J written by\nmistake")),
            "Finalized as cancelled by an operator with flatline finalize: pid 1[2J written by mistake"
        );
    }
}
