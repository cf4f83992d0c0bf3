//! No specific shape: the generic fallbacks (an assistant message, usage).

use serde_json::{Map, Value};

use super::line::MessageField;
use super::stream::Digester;

impl Digester {
    /// An assistant message object; true when there was one.
    pub(super) fn generic_message(&mut self, message: Option<&MessageField<'_>>) -> bool {
        if let Some(MessageField::Object(message)) = message
            && message.role.0.as_deref() == Some("assistant")
        {
            self.assistant_parts(message.content.0.as_ref());
            return true;
        }
        false
    }

    /// Usage at the top level, in `response` or in `payload`; true when one was kept.
    pub(super) fn generic_usage(&mut self, usages: [Option<Map<String, Value>>; 3]) -> bool {
        let mut kept = false;
        for usage in usages.into_iter().flatten() {
            kept |= self.usage(usage);
        }
        kept
    }
}
