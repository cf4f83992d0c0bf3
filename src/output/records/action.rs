//! The action record (SPEC §7): what a command did, or would do, to one document.

use crate::output::PathText;
use serde::Serialize;

/// An action record (SPEC §7).
#[derive(Debug, Serialize)]
pub struct ActionRecord<'a, D> {
    pub kind: &'static str,
    pub command: &'static str,
    pub action: &'static str,
    pub outcome: &'static str,
    pub run_dir: PathText<'a>,
    pub path: PathText<'a>,
    pub delegation_id: Option<&'a str>,
    #[serde(flatten)]
    pub detail: D,
}
