//! Claude Code `-p --output-format stream-json`: the `result` line.

use super::line::Line;
use super::stream::{Digester, assistant_preview, failure_preview};
use super::verdict::Outcome;
use crate::core::text::{PreviewBuilder, RAW_PREVIEW_MAX};

impl Digester {
    pub(super) fn claude_result(&mut self, line: &Line<'_>) {
        let subtype = line.subtype.0.as_deref();
        let is_error = line.is_error.0.unwrap_or(false);
        // API failures arrive as `success` with `is_error: true`.
        let success = subtype == Some("success") && !is_error;
        let result = line.result.0.as_deref();
        if success {
            if let Some(text) = result.map(assistant_preview).filter(|p| !p.is_empty()) {
                self.final_text = Some(text);
            }
            self.terminal("result", Outcome::Success, false, None);
            return;
        }
        // A failed result's text is an error, not an answer: the final text goes back to
        // the last assistant text.
        self.final_text = self.last_assistant.clone();
        let errors = line.errors.0.as_ref().map_or(&[][..], |list| &list.0[..]);
        self.error_message(result);
        for error in errors {
            self.error_message(Some(error));
        }
        let message = match result.and_then(failure_preview) {
            Some(message) => Some(message),
            None => {
                let mut preview = PreviewBuilder::new(RAW_PREVIEW_MAX);
                for error in errors {
                    preview.push_break();
                    preview.push_str(error);
                }
                Some(preview.finish()).filter(|text| !text.is_empty())
            }
        };
        let interrupted = subtype == Some("error_during_execution");
        self.terminal("result", Outcome::Failure, interrupted, message);
    }
}
