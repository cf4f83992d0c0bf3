//! Legacy Codex `exec` output and Codex session rollout files.

use super::line::Event;
use super::stream::Digester;
use super::verdict::Outcome;

impl Digester {
    /// Legacy `{"id","msg":{…}}` lines and rollout `event_msg` payloads.
    pub(super) fn legacy_event(&mut self, event: &Event<'_>) {
        match event.kind.0.as_deref() {
            Some("task_complete") => {
                let last = event.last_agent_message.0.as_deref();
                if last.is_some_and(|text| !text.is_empty()) {
                    self.assistant_text(last);
                }
                self.terminal("task_complete", Outcome::Success, false, None);
            }
            Some("turn_aborted") => self.terminal("turn_aborted", Outcome::Failure, true, None),
            Some("token_count") => {
                let total = event
                    .info
                    .0
                    .as_ref()
                    .and_then(|info| info.total_token_usage.0.clone());
                if let Some(total) = total {
                    self.usage(total);
                }
            }
            Some("agent_message") => self.assistant_text(event.message.0.as_deref()),
            // `stream_error` carries Codex's "Reconnecting... N/5" retries.
            Some("error" | "stream_error") => self.error_message(event.message.0.as_deref()),
            Some("session_configured") => self.thread_id(event.session_id.0.as_deref()),
            _ => {}
        }
    }
}
