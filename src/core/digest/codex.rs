//! Codex CLI `exec --json`: threads, turns and items.

use super::line::{Item, Line};
use super::stream::{Digester, failure_preview};
use super::verdict::Outcome;

impl Digester {
    pub(super) fn codex_item(&mut self, item: &Item<'_>) {
        match item.kind.0.as_deref() {
            Some("agent_message") => self.assistant_text(item.text.0.as_deref()),
            // Codex reports non-fatal errors as items.
            Some("error") => self.error_message(item.message.0.as_deref()),
            _ => {}
        }
    }

    pub(super) fn codex_turn_failed(&mut self, line: &Line<'_>) {
        let message = line.error.0.as_ref().map(|error| error.0.as_ref());
        self.error_message(message);
        self.terminal(
            "turn.failed",
            Outcome::Failure,
            false,
            message.and_then(failure_preview),
        );
    }
}
