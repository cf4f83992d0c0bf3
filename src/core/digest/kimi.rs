//! Kimi CLI `--print --output-format stream-json`: bare role messages.

use super::line::Content;
use super::stream::Digester;

impl Digester {
    pub(super) fn kimi_message(&mut self, role: &str, content: Option<&Content<'_>>) {
        if role == "assistant" {
            self.assistant_parts(content);
        }
    }
}
