//! The action record of `health-events` (SPEC §5): one appended event.

use crate::output::PathText;
use serde::Serialize;

/// An action record of `health-events`: one appended event.
#[derive(Debug, Serialize)]
pub struct EventRecord<'a> {
    pub kind: &'static str,
    pub command: &'static str,
    pub action: &'static str,
    pub outcome: &'static str,
    pub run_dir: PathText<'a>,
    pub path: PathText<'a>,
    pub worker_id: &'a str,
    pub event_id: &'a str,
    pub previous_health: Option<&'static str>,
    pub health: &'static str,
    pub message: &'a str,
}
