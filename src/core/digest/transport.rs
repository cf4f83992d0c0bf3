//! The texts that mean a worker lost its connection to the model.

/// Text that means the worker lost its connection to the model, matched case-insensitively
/// with the edges of the text counting as spaces.
const TRANSPORT_FAILURES: [&str; 8] = [
    " failed to connect ",
    " dns error",
    " stream disconnected",
    " transport channel closed",
    " error sending request",
    " websocket",
    " reconnecting...",
    "fatal:",
];

/// start and end of the text, and any ASCII whitespace, count as a space; `fatal:` counts
/// only as a word of its own, not in "non-fatal:").
pub fn has_transport_failure(text: &str) -> bool {
    has_transport_failure_bytes(text.as_bytes())
}

pub(super) fn has_transport_failure_bytes(text: &[u8]) -> bool {
    // The text as if framed by spaces, lower-cased, every ASCII whitespace a space: the
    // patterns are ASCII, so comparing bytes is exact even for non-UTF-8 lines.
    let framed_len = text.len() + 2;
    let at = |index: usize| -> u8 {
        if index == 0 || index == framed_len - 1 {
            return b' ';
        }
        let byte = text[index - 1];
        if byte.is_ascii_whitespace() {
            b' '
        } else {
            byte.to_ascii_lowercase()
        }
    };
    (0..framed_len).any(|start| {
        let first = at(start);
        if first != b' ' && first != b'f' {
            return false;
        }
        TRANSPORT_FAILURES.iter().any(|pattern| {
            pattern.len() <= framed_len - start
                && pattern
                    .bytes()
                    .enumerate()
                    .all(|(offset, byte)| at(start + offset) == byte)
                // `fatal:` must be a word of its own: Claude reports lock contention as
                // "NON-FATAL: Lock acquisition failed", which is no transport failure.
                && (pattern.starts_with(' ') || start == 0 || !is_word_byte(at(start - 1)))
        })
    })
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}
