//! Gemini CLI `--output-format stream-json`: results and assistant deltas.

use super::line::{Content, Line};
use super::stream::{Digester, failure_preview};
use super::verdict::Outcome;
use crate::core::text::{ASSISTANT_PREVIEW_MAX, PreviewBuilder};

impl Digester {
    pub(super) fn gemini_result(&mut self, line: &Line<'_>) {
        if line.status.0.as_deref() == Some("success") {
            self.terminal("result", Outcome::Success, false, None);
            return;
        }
        let message = line.error.0.as_ref().map(|error| error.0.as_ref());
        self.error_message(message);
        self.terminal(
            "result",
            Outcome::Failure,
            false,
            message.and_then(failure_preview),
        );
    }

    pub(super) fn gemini_message(&mut self, content: Option<&Content<'_>>, delta: bool) {
        let run = match self.gemini_delta_run.take() {
            Some(run) if delta => run,
            _ => PreviewBuilder::new(ASSISTANT_PREVIEW_MAX),
        };
        let mut run = run;
        for part in content.map_or(&[][..], |content| &content.0[..]) {
            run.push_str(part);
        }
        if !run.is_empty() {
            self.last_assistant = Some(run.clone());
            self.final_text = Some(run.clone());
        }
        if delta {
            self.gemini_delta_run = Some(run);
        }
    }
}
