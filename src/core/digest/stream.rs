//! The digest of one stream: a single bounded pass that keeps only what finalizing needs.

use std::io::{self, Read};

use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::format::Format;
use super::line::{Content, Line, MessageField};
use super::lines::{LineSink, LineSplitter, READ_CHUNK};
use super::transport::{has_transport_failure, has_transport_failure_bytes};
use super::verdict::{Outcome, Terminal};
use crate::core::text::{ASSISTANT_PREVIEW_MAX, PreviewBuilder, RAW_PREVIEW_MAX};

/// Longest line read from a stream; longer lines are skipped and counted (SPEC §1.3).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// How many non-JSON lines make the raw preview.
pub(super) const RAW_PREVIEW_LINES: usize = 4;
/// Longest thread or session id kept, in Unicode scalar values.
pub(super) const THREAD_ID_MAX: usize = 256;
/// Largest usage object kept, measured as compact JSON: usage is copied into documents.
pub(super) const USAGE_MAX_BYTES: usize = 16 * 1024;

/// What one pass over an event stream found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Digest {
    /// The first specific shape seen; `Generic` only when no specific shape was seen.
    pub format: Option<Format>,
    /// A second, different specific shape was seen.
    pub mixed_formats: bool,
    /// The last terminal event.
    pub terminal: Option<Terminal>,
    /// The last thread or session id seen: control characters stripped, at most 256 scalar
    /// values.
    pub thread_id: Option<String>,
    /// The final assistant text, cut to `ASSISTANT_PREVIEW_MAX`.
    pub final_text: Option<String>,
    /// The last usage object, as found (always a JSON object of at most 16 KiB).
    pub usage: Option<Value>,
    /// A transport-failure text was seen in a non-JSON line or an error message.
    pub failure_observed: bool,
    /// The first non-blank non-JSON lines, joined by one space, cut to `RAW_PREVIEW_MAX`.
    pub raw_preview: String,
    /// Bytes read.
    pub bytes: u64,
    /// Non-blank lines seen, skipped ones included.
    pub lines: u64,
    /// Lines that parsed as a JSON object.
    pub json_lines: u64,
    /// Lines longer than the limit, skipped unread.
    pub skipped_lines: u64,
    /// The stream was longer than the read bound: only its head and tail were digested.
    pub truncated: bool,
    /// Bytes between the head and the tail, not read.
    pub skipped_bytes: u64,
}

/// Digests a stream with the default line limit.
pub fn digest<R: Read>(reader: R) -> io::Result<Digest> {
    digest_with_limit(reader, MAX_LINE_BYTES)
}

/// Digests a stream in one pass; lines longer than `max_line` bytes are skipped and counted.
/// Only I/O errors are errors: whatever the bytes are, the stream has a digest.
pub fn digest_with_limit<R: Read>(mut reader: R, max_line: usize) -> io::Result<Digest> {
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut splitter = LineSplitter::new(max_line);
    let mut digester = Digester::default();
    loop {
        let read = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        digester.digest.bytes += read as u64;
        splitter.feed(&chunk[..read], &mut digester);
    }
    splitter.finish(&mut digester);
    Ok(digester.finish())
}

/// A digest fed piece by piece, for a reader that walks a file itself: skipping its holes,
/// or reading only its head and its tail (SPEC §1.4).
pub struct StreamDigest {
    splitter: LineSplitter,
    digester: Digester,
}

impl StreamDigest {
    pub fn new(max_line: usize) -> StreamDigest {
        StreamDigest {
            splitter: LineSplitter::new(max_line),
            digester: Digester::default(),
        }
    }

    /// Bytes read from the stream.
    pub fn data(&mut self, bytes: &[u8]) {
        self.digester.digest.bytes += bytes.len() as u64;
        self.splitter.feed(bytes, &mut self.digester);
    }

    /// A hole of `len` NUL bytes, taken as read without being read.
    pub fn hole(&mut self, len: u64) {
        self.digester.digest.bytes += len;
        self.splitter.feed_hole(len, &mut self.digester);
    }

    /// `len` bytes left out between the head and the tail: the head's unfinished last line
    /// is dropped, and so is the tail's first line unless `tail_at_line_start`.
    pub fn gap(&mut self, len: u64, tail_at_line_start: bool) {
        self.digester.digest.truncated = true;
        self.digester.digest.skipped_bytes += len;
        self.digester.gemini_delta_run = None;
        self.splitter.release_pending();
        self.splitter.skipping = !tail_at_line_start;
    }

    pub fn finish(mut self) -> Digest {
        self.splitter.finish(&mut self.digester);
        self.digester.finish()
    }
}

/// The state of a digest in progress; the candidate texts are bounded previews.
#[derive(Default)]
pub(super) struct Digester {
    pub(super) digest: Digest,
    /// The last assistant text of any shape.
    pub(super) last_assistant: Option<PreviewBuilder>,
    /// The candidate final text: the last assistant text, or a success result's text.
    pub(super) final_text: Option<PreviewBuilder>,
    /// Gemini assistant deltas that follow each other build one text.
    pub(super) gemini_delta_run: Option<PreviewBuilder>,
    pub(super) raw_preview: Option<PreviewBuilder>,
    pub(super) raw_preview_lines: usize,
}

impl LineSink for Digester {
    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(start) = line.iter().position(|byte| !byte.is_ascii_whitespace()) else {
            return;
        };
        self.digest.lines += 1;
        if line[start] == b'{'
            && let Ok(text) = std::str::from_utf8(line)
        {
            match serde_json::from_str::<Line<'_>>(text) {
                Ok(event) => {
                    self.digest.json_lines += 1;
                    self.event(event);
                    return;
                }
                // A JSON object the typed reader refuses (duplicate keys) is still JSON,
                // just not one we can read.
                Err(_) if serde_json::from_str::<IgnoredAny>(text).is_ok() => {
                    self.digest.json_lines += 1;
                    self.gemini_delta_run = None;
                    return;
                }
                Err(_) => {}
            }
        }
        self.raw_line(line);
    }

    fn skipped_line(&mut self) {
        self.digest.lines += 1;
        self.digest.skipped_lines += 1;
    }
}

impl Digester {
    fn raw_line(&mut self, line: &[u8]) {
        if self.raw_preview_lines < RAW_PREVIEW_LINES {
            self.raw_preview_lines += 1;
            let preview = self
                .raw_preview
                .get_or_insert_with(|| PreviewBuilder::new(RAW_PREVIEW_MAX));
            preview.push_break();
            // Lossy without copying: a non-UTF-8 line may be megabytes long.
            for piece in line.utf8_chunks() {
                if preview.is_full() {
                    break;
                }
                preview.push_str(piece.valid());
                if !piece.invalid().is_empty() {
                    preview.push_str(char::REPLACEMENT_CHARACTER.encode_utf8(&mut [0; 4]));
                }
            }
        }
        if !self.digest.failure_observed && has_transport_failure_bytes(line) {
            self.digest.failure_observed = true;
        }
    }

    fn event(&mut self, line: Line<'_>) {
        let kind = line.kind.0.as_deref();
        let (shape, gemini_delta) = self.shaped_event(kind, &line);
        if !gemini_delta {
            self.gemini_delta_run = None;
        }

        let mut generic = shape.is_none() && self.generic_message(line.message.0.as_ref());
        generic |= self.generic_usage([
            line.usage.0,
            line.response.0.and_then(|response| response.usage.0),
            line.payload.0.and_then(|payload| payload.usage.0),
        ]);
        // Shape-specific usage comes last so that it wins on its own line.
        if shape == Some(Format::Gemini)
            && kind == Some("result")
            && let Some(stats) = line.stats.0
        {
            self.usage(stats);
        }

        match shape {
            Some(format) => self.saw_shape(format),
            None if generic && self.digest.format.is_none() => {
                self.digest.format = Some(Format::Generic);
            }
            None => {}
        }
    }

    /// Reads one line by its `type`: the agent shape it names (if any) and whether it was
    /// a Gemini assistant delta.
    #[inline]
    fn shaped_event(&mut self, kind: Option<&str>, line: &Line<'_>) -> (Option<Format>, bool) {
        let mut shape = None;
        let mut gemini_delta = false;
        match kind {
            Some("thread.started") => {
                shape = Some(Format::Codex);
                self.thread_id(line.thread_id.0.as_deref());
            }
            Some("turn.started") => shape = Some(Format::Codex),
            Some("item.started" | "item.updated" | "item.completed") => {
                shape = Some(Format::Codex);
                if let Some(item) = &line.item.0 {
                    self.codex_item(item);
                }
            }
            Some("turn.completed") => {
                shape = Some(Format::Codex);
                self.terminal("turn.completed", Outcome::Success, false, None);
            }
            Some("turn.failed") => {
                shape = Some(Format::Codex);
                self.codex_turn_failed(line);
            }
            // Codex and Gemini both print warnings and retries as `error` lines; they are not
            // terminal and say nothing about the shape.
            Some("error") => {
                if let Some(MessageField::Text(message)) = &line.message.0 {
                    self.error_message(Some(message));
                }
                self.error_message(line.error.0.as_ref().map(|error| error.0.as_ref()));
            }
            Some(
                "system"
                | "assistant"
                | "user"
                | "stream_event"
                | "control_request"
                | "control_response"
                | "control_cancel_request",
            ) => {
                shape = Some(Format::Claude);
                self.thread_id(line.session_id.0.as_deref());
                if kind == Some("assistant")
                    && let Some(MessageField::Object(message)) = &line.message.0
                {
                    self.assistant_parts(message.content.0.as_ref());
                }
            }
            Some("result") if line.subtype.0.is_some() => {
                shape = Some(Format::Claude);
                self.thread_id(line.session_id.0.as_deref());
                self.claude_result(line);
            }
            Some("result") if line.status.0.is_some() => {
                shape = Some(Format::Gemini);
                self.gemini_result(line);
            }
            Some("init") => {
                shape = Some(Format::Gemini);
                self.thread_id(line.session_id.0.as_deref());
            }
            // A bare `{"type":"message"}` carries none of Gemini's fields: it names no shape.
            Some("message") if line.role.0.is_some() || line.content.0.is_some() => {
                shape = Some(Format::Gemini);
                if line.role.0.as_deref() == Some("assistant") {
                    gemini_delta = line.delta.0 == Some(true);
                    self.gemini_message(line.content.0.as_ref(), gemini_delta);
                }
            }
            Some("tool_use" | "tool_result") => shape = Some(Format::Gemini),
            Some("event_msg" | "response_item" | "session_meta" | "turn_context" | "compacted")
                if line.payload.0.is_some() =>
            {
                shape = Some(Format::CodexLegacy);
                if let Some(payload) = &line.payload.0 {
                    if kind == Some("session_meta") {
                        self.thread_id(payload.id.0.as_deref());
                    } else {
                        self.legacy_event(payload);
                    }
                }
            }
            None => shape = self.untyped_event(line),
            _ => {}
        }
        (shape, gemini_delta)
    }

    /// A line without `type`: Codex's legacy `msg` envelope or a Kimi message.
    #[inline]
    fn untyped_event(&mut self, line: &Line<'_>) -> Option<Format> {
        if let Some(msg) = line.msg.0.as_ref().filter(|msg| msg.kind.0.is_some()) {
            self.legacy_event(msg);
            Some(Format::CodexLegacy)
        } else if let Some(role) = line.role.0.as_deref() {
            self.kimi_message(role, line.content.0.as_ref());
            Some(Format::Kimi)
        } else {
            None
        }
    }

    fn saw_shape(&mut self, format: Format) {
        match self.digest.format {
            None | Some(Format::Generic) => self.digest.format = Some(format),
            Some(first) if first != format => self.digest.mixed_formats = true,
            Some(_) => {}
        }
    }

    pub(super) fn assistant_text(&mut self, text: Option<&str>) {
        if let Some(text) = text {
            self.assistant_preview(assistant_preview(text));
        }
    }

    /// The text parts of one message, joined by one space.
    pub(super) fn assistant_parts(&mut self, content: Option<&Content<'_>>) {
        let Some(content) = content else { return };
        let mut preview = PreviewBuilder::new(ASSISTANT_PREVIEW_MAX);
        for part in &content.0 {
            preview.push_break();
            preview.push_str(part);
        }
        self.assistant_preview(preview);
    }

    pub(super) fn assistant_preview(&mut self, preview: PreviewBuilder) {
        // An empty message (a tool call's, say) is not an answer.
        if !preview.is_empty() {
            self.last_assistant = Some(preview.clone());
            self.final_text = Some(preview);
        }
    }

    pub(super) fn error_message(&mut self, message: Option<&str>) {
        if !self.digest.failure_observed && message.is_some_and(has_transport_failure) {
            self.digest.failure_observed = true;
        }
    }

    pub(super) fn terminal(
        &mut self,
        event: &'static str,
        outcome: Outcome,
        interrupted: bool,
        message: Option<String>,
    ) {
        self.digest.terminal = Some(Terminal {
            event,
            outcome,
            interrupted,
            message,
        });
    }

    pub(super) fn thread_id(&mut self, id: Option<&str>) {
        let Some(id) = id else { return };
        let clean = id
            .chars()
            .filter(|&ch| !crate::core::text::is_dangerous(ch))
            .take(THREAD_ID_MAX);
        // Claude repeats its session id on every line: compare before allocating.
        if let Some(current) = &self.digest.thread_id
            && current.chars().eq(clean.clone())
        {
            return;
        }
        let clean: String = clean.collect();
        if !clean.is_empty() {
            self.digest.thread_id = Some(clean);
        }
    }

    /// Keeps a usage object unless it is too large to copy into a document; a dropped one
    /// leaves the previous usage in place. Returns whether it was kept.
    pub(super) fn usage(&mut self, usage: Map<String, Value>) -> bool {
        let usage = Value::Object(usage);
        let mut size = SizeLimit {
            written: 0,
            limit: USAGE_MAX_BYTES,
        };
        if serde_json::to_writer(&mut size, &usage).is_err() {
            return false;
        }
        let mut usage = usage;
        crate::core::text::strip_dangerous_json(&mut usage);
        self.digest.usage = Some(usage);
        true
    }

    fn finish(self) -> Digest {
        let mut digest = self.digest;
        digest.final_text = self
            .final_text
            .map(PreviewBuilder::finish)
            .filter(|text| !text.is_empty());
        digest.raw_preview = self
            .raw_preview
            .map(PreviewBuilder::finish)
            .unwrap_or_default();
        digest
    }
}

pub(super) fn assistant_preview(text: &str) -> PreviewBuilder {
    let mut preview = PreviewBuilder::new(ASSISTANT_PREVIEW_MAX);
    preview.push_str(text);
    preview
}

pub(super) fn failure_preview(text: &str) -> Option<String> {
    Some(crate::core::text::preview(text, RAW_PREVIEW_MAX)).filter(|text| !text.is_empty())
}

/// Measures compact JSON without keeping it, failing once past the limit.
struct SizeLimit {
    written: usize,
    limit: usize,
}

impl io::Write for SizeLimit {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        if self.written > self.limit {
            return Err(io::Error::other("usage object too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
