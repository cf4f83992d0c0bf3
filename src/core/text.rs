//! text: making untrusted text short and safe before it reaches a document, stdout or stderr.
//!
//! Everything an agent writes is untrusted: it may hold terminal escape sequences, NUL bytes
//! or megabytes of output. Two operations cover every use: `preview` for text copied into
//! documents and records (one line, bounded, counted in Unicode scalar values), and
//! `escape_control` for text shown to people (nothing dropped, every control made visible).
//! Both, and the JSON writers of `output`, use the one set of dangerous characters,
//! `is_dangerous` (SPEC §7).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest assistant-text preview copied from an event stream, in Unicode scalar values.
pub const ASSISTANT_PREVIEW_MAX: usize = 180;
/// Longest raw-output preview (the non-JSON lines of a stream), in Unicode scalar values.
pub const RAW_PREVIEW_MAX: usize = 220;
/// The marker that ends a cut preview; it counts towards the limit.
pub const ELLIPSIS: &str = "...";

/// Whether a character can steer a terminal or a viewer: C0 and C1 controls, DEL, the Arabic
/// letter mark, the directional marks, the line and paragraph separators, and the bidi
/// embeddings, overrides and isolates. The one definition of the set (SPEC §7): escaped in
/// text, tsv and stderr, `\uXXXX` in json, stripped from text copied into documents.
pub fn is_dangerous(ch: char) -> bool {
    matches!(
        ch,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'..='\u{200f}'
            | '\u{2028}'..='\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// Whether UTF-8 text may hold a dangerous character beyond ASCII's C0 controls: a DEL byte
/// or a lead byte of one of the other characters of the set (a cheap first look for the
/// JSON writers; `is_dangerous` decides).
pub fn may_hold_dangerous_beyond_c0(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|&b| matches!(b, 0x7f | 0xc2 | 0xd8 | 0xe2))
}

/// A one-line preview: dangerous characters (`is_dangerous`) dropped, every run of whitespace collapsed to one
/// space, trimmed, and cut to at most `max` scalar values (ending in `...` when cut).
pub fn preview(input: &str, max: usize) -> String {
    let mut out = PreviewBuilder::new(max);
    out.push_str(input);
    out.finish()
}

/// Builds a preview from several pieces (stream lines, deltas) without ever holding more than
/// the limit plus one character: pieces are joined as if separated by whitespace only when the
/// caller says so (`push_break`).
#[derive(Debug, Clone)]
pub struct PreviewBuilder {
    max: usize,
    text: String,
    chars: usize,
    pending_space: bool,
    overflowed: bool,
}

impl PreviewBuilder {
    pub fn new(max: usize) -> Self {
        PreviewBuilder {
            max,
            text: String::new(),
            chars: 0,
            pending_space: false,
            overflowed: false,
        }
    }

    /// Appends text; whitespace inside collapses (line breaks and tabs included), the other
    /// dangerous characters vanish.
    pub fn push_str(&mut self, piece: &str) {
        for ch in piece.chars() {
            if self.overflowed {
                return;
            }
            if ch.is_whitespace() {
                self.pending_space = self.chars > 0;
            } else if !is_dangerous(ch) {
                if self.pending_space {
                    self.pending_space = false;
                    self.push_char(' ');
                }
                self.push_char(ch);
            }
        }
    }

    /// Separates what comes next from what came before by one space (a line break in the
    /// source). Leading and repeated breaks collapse like any whitespace.
    pub fn push_break(&mut self) {
        self.pending_space = self.chars > 0;
    }

    /// True once the limit has been passed: further input cannot change the result.
    pub fn is_full(&self) -> bool {
        self.overflowed
    }

    pub fn is_empty(&self) -> bool {
        self.chars == 0
    }

    fn push_char(&mut self, ch: char) {
        // Keep one character beyond the limit so `finish` knows the text was longer.
        if self.chars == self.max {
            self.overflowed = true;
            return;
        }
        self.text.push(ch);
        self.chars += 1;
    }

    /// The preview: the text itself when it fits, else its first `max - 3` scalar values
    /// followed by `...`.
    pub fn finish(self) -> String {
        if !self.overflowed {
            return self.text;
        }
        let keep = self.max.saturating_sub(ELLIPSIS.len());
        let cut = self
            .text
            .char_indices()
            .nth(keep)
            .map_or(self.text.len(), |(index, _)| index);
        let mut text = self.text;
        text.truncate(cut);
        // A cut right after a space would leave "foo ...": drop the space.
        while text.ends_with(' ') {
            text.pop();
        }
        text.push_str(&ELLIPSIS[..ELLIPSIS.len().min(self.max)]);
        text
    }
}

/// Makes every dangerous character visible (`\n`, `\t`, `\r`, `\x1b`, `\u202e` …) so that
/// text from a file cannot move the cursor, set a window title, reverse text or forge a log
/// line.
pub fn escape_control(input: &str) -> Cow<'_, str> {
    if !input.chars().any(is_dangerous) {
        return Cow::Borrowed(input);
    }
    let mut out = String::with_capacity(input.len() + 8);
    for ch in input.chars() {
        match ch {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ch if is_dangerous(ch) => {
                let code = ch as u32;
                let _ = if code < 0x100 {
                    write!(out, "\\x{code:02x}")
                } else {
                    write!(out, "\\u{code:04x}")
                };
            }
            ch => out.push(ch),
        }
    }
    Cow::Owned(out)
}

/// A JSON value copied from a stream into a document (a usage object) with every dangerous
/// character dropped from its keys and strings; untouched (no allocation) when it has none.
pub fn strip_dangerous_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    fn strip(text: &str) -> Option<String> {
        text.chars()
            .any(is_dangerous)
            .then(|| text.chars().filter(|&ch| !is_dangerous(ch)).collect())
    }
    match value {
        Value::String(text) => {
            if let Some(clean) = strip(text) {
                *text = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_dangerous_json),
        Value::Object(map) => {
            if map.keys().any(|key| key.chars().any(is_dangerous)) {
                let old = std::mem::take(map);
                for (key, item) in old {
                    let key = strip(&key).unwrap_or(key);
                    map.insert(key, item);
                }
            }
            map.values_mut().for_each(strip_dangerous_json);
        }
        _ => {}
    }
}

/// Lossy UTF-8 for bytes that came from outside (file names, non-UTF-8 stream lines).
pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_with_whitespace_collapsed() {
        assert_eq!(preview("  hello \n\t world  ", 20), "hello world");
    }

    #[test]
    fn control_characters_are_dropped() {
        assert_eq!(preview("a\u{1b}[31mb\u{0}c\u{7f}d", 20), "a[31mbcd");
    }

    #[test]
    fn cut_counts_scalar_values_and_ends_with_ellipsis() {
        let text = "é".repeat(300);
        let cut = preview(&text, 180);
        assert_eq!(cut.chars().count(), 180);
        assert!(cut.ends_with("..."));
        assert_eq!(cut.chars().filter(|c| *c == 'é').count(), 177);
    }

    #[test]
    fn text_of_exactly_the_limit_is_not_cut() {
        let text = "x".repeat(180);
        assert_eq!(preview(&text, 180), text);
        let longer = "x".repeat(181);
        assert_eq!(preview(&longer, 180), format!("{}...", "x".repeat(177)));
    }

    #[test]
    fn emoji_and_cjk_are_never_split() {
        let text = "日本語🙂".repeat(100);
        let cut = preview(&text, 10);
        assert_eq!(cut, "日本語🙂日本語...");
    }

    #[test]
    fn builder_joins_pieces_with_one_space() {
        let mut builder = PreviewBuilder::new(50);
        builder.push_break();
        builder.push_str("first line ");
        builder.push_break();
        builder.push_str("  second");
        builder.push_break();
        assert_eq!(builder.finish(), "first line second");
    }

    #[test]
    fn builder_reports_full() {
        let mut builder = PreviewBuilder::new(5);
        builder.push_str("abcdef");
        assert!(builder.is_full());
        assert_eq!(builder.finish(), "ab...");
    }

    #[test]
    fn escape_control_makes_controls_visible() {
        assert_eq!(escape_control("plain"), "plain");
        assert_eq!(escape_control("a\nb\tc\u{1b}d"), "a\\nb\\tc\\x1bd");
        assert_eq!(escape_control("x\u{202e}y"), "x\\u202ey");
        assert_eq!(escape_control("back\\slash\n"), "back\\slash\\n");
        assert_eq!(
            escape_control("\u{1b}]0;pwned\u{7}\u{7f}\u{9b}\u{61c}\u{200f}\u{2028}\u{2069}"),
            "\\x1b]0;pwned\\x07\\x7f\\x9b\\u061c\\u200f\\u2028\\u2069"
        );
    }

    /// Every character of the set, and its neighbours outside it.
    const DANGEROUS: &[char] = &[
        '\u{0}', '\u{7}', '\u{1b}', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9b}', '\u{9f}',
        '\u{61c}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{202e}',
        '\u{2066}', '\u{2069}',
    ];
    const SAFE: &[char] = &[
        ' ', '~', '\u{a0}', '\u{61b}', '\u{61d}', '\u{200d}', '\u{2010}', '\u{2027}', '\u{202f}',
        '\u{2065}', '\u{206a}', 'é', '日', '🙂',
    ];

    #[test]
    fn the_dangerous_set_is_exactly_the_spec_s() {
        for &ch in DANGEROUS {
            assert!(is_dangerous(ch), "{ch:?}");
            let mut buf = [0; 4];
            let encoded = ch.encode_utf8(&mut buf).as_bytes();
            assert!(
                ch < ' ' || may_hold_dangerous_beyond_c0(encoded),
                "{ch:?} escapes the byte look"
            );
        }
        for &ch in SAFE {
            assert!(!is_dangerous(ch), "{ch:?}");
        }
        // Every character, against the first look the JSON writers take.
        for code in 0x20..0x3_0000u32 {
            if let Some(ch) = char::from_u32(code)
                && is_dangerous(ch)
            {
                let mut buf = [0; 4];
                assert!(may_hold_dangerous_beyond_c0(
                    ch.encode_utf8(&mut buf).as_bytes()
                ));
            }
        }
    }

    #[test]
    fn json_copied_into_documents_loses_its_dangerous_characters() {
        let mut value = serde_json::json!({"in\u{202e}put": [1, "a\u{1b}]0;x\u{7}b"],
            "plain": {"k": "v\u{2028}w"}, "n": 12345678901234567890u64});
        strip_dangerous_json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"input": [1, "a]0;xb"], "plain": {"k": "vw"},
                "n": 12345678901234567890u64})
        );
        let mut clean = serde_json::json!({"output_tokens": 9, "model": "gpt-é"});
        let before = clean.clone();
        strip_dangerous_json(&mut clean);
        assert_eq!(clean, before);
    }

    #[test]
    fn previews_drop_every_dangerous_character() {
        let text: String = DANGEROUS.iter().flat_map(|&c| [c, 'a']).collect();
        let cut = preview(&text, 200);
        assert!(!cut.chars().any(is_dangerous), "{cut:?}");
        assert!(cut.contains("aa"));
        assert_eq!(preview("\u{1b}]0;pwned\u{7}x\u{202e}y", 50), "]0;pwnedxy");
    }
}
