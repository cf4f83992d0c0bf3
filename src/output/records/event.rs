//! The action record of an appended event (SPEC §5): `health-events` names it by the
//! event's kind, `sweep` as `event_appended` (SPEC §7); both carry the kind in `event`.

use crate::output::PathText;
use serde::Serialize;

/// An action record of one appended event.
#[derive(Debug, Serialize)]
pub struct EventRecord<'a> {
    pub kind: &'static str,
    pub command: &'static str,
    pub action: &'static str,
    /// The event's kind: `worker_stalled`, `worker_dead`, `worker_recovered`.
    pub event: &'static str,
    pub outcome: &'static str,
    pub run_dir: PathText<'a>,
    pub path: PathText<'a>,
    pub worker_id: &'a str,
    pub event_id: &'a str,
    pub previous_health: Option<&'static str>,
    pub health: &'static str,
    pub message: &'a str,
}
