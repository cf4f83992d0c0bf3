//! events: the digest of an agent event stream, read in one bounded streaming pass.
//!
//! A worker's stream is untrusted and unbounded: it may be gigabytes long, hold a single
//! line of hundreds of megabytes, mix the shapes of several agent CLIs, or not be JSON at
//! all. The digest reads it once through a fixed buffer, keeps only what finalizing needs
//! (the shape, the last terminal event, ids, short previews, the last usage object) and
//! never holds more than one line of at most `max_line` bytes.
//!
//! Each line is parsed into a small borrowed struct whose fields are all lenient: a field of
//! an unexpected JSON type is read and dropped instead of failing the line, so one odd field
//! never hides a terminal event.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::text::{ASSISTANT_PREVIEW_MAX, PreviewBuilder, RAW_PREVIEW_MAX};

/// Longest line read from a stream; longer lines are skipped and counted (SPEC §1.3).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The read buffer. Lines that fit inside one chunk are parsed where they lie; only a line
/// that straddles two reads is copied.
const READ_CHUNK: usize = 64 * 1024;
/// How many non-JSON lines make the raw preview.
const RAW_PREVIEW_LINES: usize = 4;
/// Longest thread or session id kept, in Unicode scalar values.
const THREAD_ID_MAX: usize = 256;
/// Largest usage object kept, measured as compact JSON: usage is copied into documents.
const USAGE_MAX_BYTES: usize = 16 * 1024;
/// A line buffer grown by one long line is given back once it exceeds this.
const LINE_BUFFER_KEEP: usize = 1024 * 1024;

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

/// The agent CLI whose event shape a line has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Codex CLI `exec --json`.
    Codex,
    /// Legacy Codex `exec` output and Codex session rollout files.
    CodexLegacy,
    /// Claude Code `-p --output-format stream-json`.
    Claude,
    /// Gemini CLI `--output-format stream-json`.
    Gemini,
    /// Kimi CLI `--print --output-format stream-json`.
    Kimi,
    /// No specific shape, only the generic fallbacks (assistant message, usage).
    Generic,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Codex => "codex",
            Format::CodexLegacy => "codex-legacy",
            Format::Claude => "claude",
            Format::Gemini => "gemini",
            Format::Kimi => "kimi",
            Format::Generic => "generic",
        }
    }

    /// Formats whose CLI always ends a finished turn with a terminal event, so a stream
    /// without one means the worker died mid-turn.
    pub fn has_terminal_events(self) -> bool {
        matches!(self, Format::Codex | Format::Claude | Format::Gemini)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// The event that ended a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Terminal {
    /// "turn.completed", "turn.failed", "task_complete", "turn_aborted" or "result".
    pub event: &'static str,
    pub outcome: Outcome,
    /// The turn was interrupted rather than failed (Claude `error_during_execution`, Codex
    /// `turn_aborted`).
    pub interrupted: bool,
    /// The failure text, if the event carried one, cut to `RAW_PREVIEW_MAX`.
    pub message: Option<String>,
}

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

/// How a delegation finalizes from its stream (SPEC §3.2 "Finalizing").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `Success` is `completed`, `Failure` is `failed`.
    pub status: Outcome,
    /// Why it failed: `execution_failed`, `interrupted`, `invalid_output` or `unknown`;
    /// `None` when completed.
    pub reason: Option<&'static str>,
}

impl Verdict {
    /// The lifecycle status word: "completed" or "failed".
    pub fn status_name(&self) -> &'static str {
        match self.status {
            Outcome::Success => "completed",
            Outcome::Failure => "failed",
        }
    }
}

/// The verdict of a stream alone, without a recorded exit code.
pub fn verdict(d: &Digest) -> Verdict {
    verdict_with_exit(d, None)
}

/// The verdict of a stream and the worker's recorded exit code, if any.
///
/// A success terminal event stands even over a non-zero exit code or a transport-failure
/// text: Codex prints "Reconnecting..." errors and still completes the turn. Without a
/// terminal event, the formats that always emit one mean the worker died mid-turn.
pub fn verdict_with_exit(d: &Digest, exit_code: Option<i64>) -> Verdict {
    let exit_failed = matches!(exit_code, Some(code) if code != 0);
    let has_terminal_events = d.format.is_some_and(Format::has_terminal_events);
    let completed = match &d.terminal {
        Some(terminal) => terminal.outcome == Outcome::Success,
        None => {
            !has_terminal_events && !exit_failed && (d.final_text.is_some() || d.usage.is_some())
        }
    };
    if completed {
        return Verdict {
            status: Outcome::Success,
            reason: None,
        };
    }
    let terminal_failed = d
        .terminal
        .as_ref()
        .is_some_and(|t| t.outcome == Outcome::Failure && !t.interrupted);
    let interrupted = match &d.terminal {
        Some(terminal) => terminal.interrupted,
        None => has_terminal_events,
    };
    let reason = if terminal_failed || d.failure_observed || exit_failed {
        "execution_failed"
    } else if interrupted {
        "interrupted"
    } else if d.bytes > 0 {
        "invalid_output"
    } else {
        "unknown"
    };
    Verdict {
        status: Outcome::Failure,
        reason: Some(reason),
    }
}

/// True when `text` holds one of the transport-failure substrings (case-insensitive; the
/// start and end of the text, and any ASCII whitespace, count as a space; `fatal:` counts
/// only as a word of its own, not in "non-fatal:").
pub fn has_transport_failure(text: &str) -> bool {
    has_transport_failure_bytes(text.as_bytes())
}

fn has_transport_failure_bytes(text: &[u8]) -> bool {
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

/// Where the lines of a stream go.
trait LineSink {
    fn line(&mut self, line: &[u8]);
    fn skipped_line(&mut self);
}

/// Cuts chunks into lines. A line that lies inside one chunk is handed over in place; the
/// start of a line that straddles chunks waits in `pending`, which never grows past
/// `max_line`: once a line is known to be too long, the rest of it is discarded unread.
struct LineSplitter {
    max_line: usize,
    pending: Vec<u8>,
    /// Inside a line already known to be too long: drop bytes through the next '\n'.
    skipping: bool,
}

impl LineSplitter {
    fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line,
            pending: Vec::new(),
            skipping: false,
        }
    }

    fn feed(&mut self, chunk: &[u8], sink: &mut impl LineSink) {
        let mut rest = chunk;
        while let Some(end) = find_newline(rest) {
            let piece = &rest[..end];
            rest = &rest[end + 1..];
            if self.skipping {
                self.skipping = false;
            } else if self.pending.is_empty() {
                if piece.len() > self.max_line {
                    sink.skipped_line();
                } else {
                    sink.line(piece);
                }
            } else if self.pending.len() + piece.len() > self.max_line {
                self.release_pending();
                sink.skipped_line();
            } else {
                self.pending.extend_from_slice(piece);
                sink.line(&self.pending);
                self.release_pending();
            }
        }
        if rest.is_empty() || self.skipping {
            return;
        }
        if self.pending.len() + rest.len() > self.max_line {
            self.release_pending();
            self.skipping = true;
            sink.skipped_line();
        } else {
            self.pending.extend_from_slice(rest);
        }
    }

    /// `len` NUL bytes: line content without a newline, kept only while the line fits.
    fn feed_hole(&mut self, len: u64, sink: &mut impl LineSink) {
        if self.skipping {
            return;
        }
        let fits = usize::try_from(len)
            .ok()
            .and_then(|len| self.pending.len().checked_add(len))
            .filter(|total| *total <= self.max_line);
        match fits {
            Some(total) => self.pending.resize(total, 0),
            _ => {
                self.release_pending();
                self.skipping = true;
                sink.skipped_line();
            }
        }
    }

    /// The last line may lack its '\n'.
    fn finish(&mut self, sink: &mut impl LineSink) {
        if !self.skipping && !self.pending.is_empty() {
            sink.line(&self.pending);
        }
        self.release_pending();
        self.skipping = false;
    }

    fn release_pending(&mut self) {
        self.pending.clear();
        if self.pending.capacity() > LINE_BUFFER_KEEP {
            self.pending.shrink_to(READ_CHUNK);
        }
    }
}

/// The index of the first '\n', eight bytes at a time: the scan touches every byte of the
/// stream, so it must not be the bottleneck.
fn find_newline(haystack: &[u8]) -> Option<usize> {
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let value = u64::from_ne_bytes(bytes) ^ NEWLINES;
        // A zero byte in `value` is a newline in the word (the classic has-zero-byte test).
        if value.wrapping_sub(LOW) & !value & HIGH != 0
            && let Some(index) = word.iter().position(|&byte| byte == b'\n')
        {
            return Some(offset + index);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&byte| byte == b'\n')
        .map(|index| offset + index)
}

/// The state of a digest in progress; the candidate texts are bounded previews.
#[derive(Default)]
struct Digester {
    digest: Digest,
    /// The last assistant text of any shape.
    last_assistant: Option<PreviewBuilder>,
    /// The candidate final text: the last assistant text, or a success result's text.
    final_text: Option<PreviewBuilder>,
    /// Gemini assistant deltas that follow each other build one text.
    gemini_delta_run: Option<PreviewBuilder>,
    raw_preview: Option<PreviewBuilder>,
    raw_preview_lines: usize,
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
                    match item.kind.0.as_deref() {
                        Some("agent_message") => self.assistant_text(item.text.0.as_deref()),
                        // Codex reports non-fatal errors as items.
                        Some("error") => self.error_message(item.message.0.as_deref()),
                        _ => {}
                    }
                }
            }
            Some("turn.completed") => {
                shape = Some(Format::Codex);
                self.terminal("turn.completed", Outcome::Success, false, None);
            }
            Some("turn.failed") => {
                shape = Some(Format::Codex);
                let message = line.error.0.as_ref().map(|error| error.0.as_ref());
                self.error_message(message);
                self.terminal(
                    "turn.failed",
                    Outcome::Failure,
                    false,
                    message.and_then(failure_preview),
                );
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
                self.claude_result(&line);
            }
            Some("result") if line.status.0.is_some() => {
                shape = Some(Format::Gemini);
                self.gemini_result(&line);
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
            None => {
                if let Some(msg) = line.msg.0.as_ref().filter(|msg| msg.kind.0.is_some()) {
                    shape = Some(Format::CodexLegacy);
                    self.legacy_event(msg);
                } else if let Some(role) = line.role.0.as_deref() {
                    shape = Some(Format::Kimi);
                    if role == "assistant" {
                        self.assistant_parts(line.content.0.as_ref());
                    }
                }
            }
            _ => {}
        }
        if !gemini_delta {
            self.gemini_delta_run = None;
        }

        let mut generic = false;
        if shape.is_none()
            && let Some(MessageField::Object(message)) = &line.message.0
            && message.role.0.as_deref() == Some("assistant")
        {
            generic = true;
            self.assistant_parts(message.content.0.as_ref());
        }
        let generic_usage = [
            line.usage.0,
            line.response.0.and_then(|response| response.usage.0),
            line.payload.0.and_then(|payload| payload.usage.0),
        ];
        for usage in generic_usage.into_iter().flatten() {
            generic |= self.usage(usage);
        }
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

    fn saw_shape(&mut self, format: Format) {
        match self.digest.format {
            None | Some(Format::Generic) => self.digest.format = Some(format),
            Some(first) if first != format => self.digest.mixed_formats = true,
            Some(_) => {}
        }
    }

    /// Legacy `{"id","msg":{…}}` lines and rollout `event_msg` payloads.
    fn legacy_event(&mut self, event: &Event<'_>) {
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

    fn claude_result(&mut self, line: &Line<'_>) {
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

    fn gemini_result(&mut self, line: &Line<'_>) {
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

    fn gemini_message(&mut self, content: Option<&Content<'_>>, delta: bool) {
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

    fn assistant_text(&mut self, text: Option<&str>) {
        if let Some(text) = text {
            self.assistant_preview(assistant_preview(text));
        }
    }

    /// The text parts of one message, joined by one space.
    fn assistant_parts(&mut self, content: Option<&Content<'_>>) {
        let Some(content) = content else { return };
        let mut preview = PreviewBuilder::new(ASSISTANT_PREVIEW_MAX);
        for part in &content.0 {
            preview.push_break();
            preview.push_str(part);
        }
        self.assistant_preview(preview);
    }

    fn assistant_preview(&mut self, preview: PreviewBuilder) {
        // An empty message (a tool call's, say) is not an answer.
        if !preview.is_empty() {
            self.last_assistant = Some(preview.clone());
            self.final_text = Some(preview);
        }
    }

    fn error_message(&mut self, message: Option<&str>) {
        if !self.digest.failure_observed && message.is_some_and(has_transport_failure) {
            self.digest.failure_observed = true;
        }
    }

    fn terminal(
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

    fn thread_id(&mut self, id: Option<&str>) {
        let Some(id) = id else { return };
        let clean = id
            .chars()
            .filter(|&ch| !crate::text::is_dangerous(ch))
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
    fn usage(&mut self, usage: Map<String, Value>) -> bool {
        let usage = Value::Object(usage);
        let mut size = SizeLimit {
            written: 0,
            limit: USAGE_MAX_BYTES,
        };
        if serde_json::to_writer(&mut size, &usage).is_err() {
            return false;
        }
        let mut usage = usage;
        crate::text::strip_dangerous_json(&mut usage);
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

fn assistant_preview(text: &str) -> PreviewBuilder {
    let mut preview = PreviewBuilder::new(ASSISTANT_PREVIEW_MAX);
    preview.push_str(text);
    preview
}

fn failure_preview(text: &str) -> Option<String> {
    Some(crate::text::preview(text, RAW_PREVIEW_MAX)).filter(|text| !text.is_empty())
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

// ---------------------------------------------------------------------------------------
// The line as read: one struct for every shape, each field lenient.

type Text<'a> = Lenient<Cow<'a, str>>;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Line<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    subtype: Text<'a>,
    #[serde(borrow)]
    thread_id: Text<'a>,
    #[serde(borrow)]
    session_id: Text<'a>,
    #[serde(borrow)]
    item: Lenient<Item<'a>>,
    usage: Lenient<Map<String, Value>>,
    #[serde(borrow)]
    error: Lenient<ErrorText<'a>>,
    #[serde(borrow)]
    message: Lenient<MessageField<'a>>,
    #[serde(borrow)]
    msg: Lenient<Event<'a>>,
    #[serde(borrow)]
    payload: Lenient<Event<'a>>,
    is_error: Lenient<bool>,
    #[serde(borrow)]
    result: Text<'a>,
    #[serde(borrow)]
    errors: Lenient<TextList<'a>>,
    #[serde(borrow)]
    role: Text<'a>,
    #[serde(borrow)]
    content: Lenient<Content<'a>>,
    delta: Lenient<bool>,
    #[serde(borrow)]
    status: Text<'a>,
    stats: Lenient<Map<String, Value>>,
    response: Lenient<Response>,
}

/// A Codex `exec --json` item.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Item<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    text: Text<'a>,
    #[serde(borrow)]
    message: Text<'a>,
}

/// A legacy Codex `msg` or a rollout `payload`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    message: Text<'a>,
    #[serde(borrow)]
    last_agent_message: Text<'a>,
    info: Lenient<TokenInfo>,
    usage: Lenient<Map<String, Value>>,
    #[serde(borrow)]
    session_id: Text<'a>,
    #[serde(borrow)]
    id: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenInfo {
    total_token_usage: Lenient<Map<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Response {
    usage: Lenient<Map<String, Value>>,
}

/// A chat message object (Claude `message`, the generic fallback).
#[derive(Deserialize, Default)]
#[serde(default)]
struct MessageObject<'a> {
    #[serde(borrow)]
    role: Text<'a>,
    #[serde(borrow)]
    content: Lenient<Content<'a>>,
}

/// One part of a content array.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Part<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    text: Text<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorObject<'a> {
    #[serde(borrow)]
    message: Text<'a>,
}

/// `message` is text on Codex and Gemini `error` lines and an object on Claude lines.
enum MessageField<'a> {
    Text(Cow<'a, str>),
    Object(MessageObject<'a>),
}

/// `error` as a string, or the `message` of an error object.
struct ErrorText<'a>(Cow<'a, str>);

/// The text parts of a `content`: a string, or the `text` of each text part of an array.
struct Content<'a>(Vec<Cow<'a, str>>);

/// A string, or the strings of an array (Claude `errors`).
struct TextList<'a>(Vec<Cow<'a, str>>);

// ---------------------------------------------------------------------------------------
// Lenient fields.

/// A field that accepts the JSON types `T` knows and reads and drops any other value, so a
/// wrong-typed field never fails its line.
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

/// What a lenient field makes of each JSON type; `None` drops the value.
trait Accept<'de>: Sized {
    /// Whether strings are wanted at all: an escaped string is otherwise not copied.
    const TAKES_TEXT: bool = false;

    fn text(_text: Cow<'de, str>) -> Option<Self> {
        None
    }

    fn boolean(_value: bool) -> Option<Self> {
        None
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de, T: Accept<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: Accept<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Lenient(T::boolean(value)))
    }

    fn visit_i64<E>(self, _value: i64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_u64<E>(self, _value: u64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_i128<E>(self, _value: i128) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_u128<E>(self, _value: u128) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_f64<E>(self, _value: f64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Lenient(T::text(Cow::Borrowed(value))))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        if !T::TAKES_TEXT {
            return Ok(Lenient(None));
        }
        Ok(Lenient(T::text(Cow::Owned(value.to_owned()))))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Lenient(T::text(Cow::Owned(value))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::seq(seq).map(Lenient)
    }

    // With `arbitrary_precision`, a large or fractional number also arrives here, as a
    // one-entry map; every `map` below reads it like any map and finds nothing it wants.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::map(map).map(Lenient)
    }
}

impl<'de: 'a, 'a> Accept<'de> for Cow<'a, str> {
    const TAKES_TEXT: bool = true;

    fn text(text: Cow<'de, str>) -> Option<Self> {
        Some(text)
    }
}

impl<'de> Accept<'de> for bool {
    fn boolean(value: bool) -> Option<Self> {
        Some(value)
    }
}

impl<'de> Accept<'de> for Map<String, Value> {
    fn map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        match Value::deserialize(MapAccessDeserializer::new(map))? {
            Value::Object(object) => Ok(Some(object)),
            // A number in `arbitrary_precision` disguise.
            _ => Ok(None),
        }
    }
}

/// Objects read field by field through their own (lenient) derived reader.
macro_rules! accept_object {
    ($($name:ident $(<$lifetime:lifetime>)?),* $(,)?) => {$(
        impl<'de: 'a, 'a> Accept<'de> for $name $(<$lifetime>)? {
            fn map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                Self::deserialize(MapAccessDeserializer::new(map)).map(Some)
            }
        }
    )*};
}

accept_object!(
    Item<'a>,
    Event<'a>,
    TokenInfo,
    Response,
    MessageObject<'a>,
    Part<'a>
);

impl<'de: 'a, 'a> Accept<'de> for MessageField<'a> {
    const TAKES_TEXT: bool = true;

    fn text(text: Cow<'de, str>) -> Option<Self> {
        Some(MessageField::Text(text))
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        MessageObject::deserialize(MapAccessDeserializer::new(map))
            .map(|object| Some(MessageField::Object(object)))
    }
}

impl<'de: 'a, 'a> Accept<'de> for ErrorText<'a> {
    const TAKES_TEXT: bool = true;

    fn text(text: Cow<'de, str>) -> Option<Self> {
        Some(ErrorText(text))
    }

    fn map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        let error = ErrorObject::deserialize(MapAccessDeserializer::new(map))?;
        Ok(error.message.0.map(ErrorText))
    }
}

impl<'de: 'a, 'a> Accept<'de> for Content<'a> {
    const TAKES_TEXT: bool = true;

    fn text(text: Cow<'de, str>) -> Option<Self> {
        Some(Content(vec![text]))
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut parts = Vec::new();
        while let Some(part) = seq.next_element::<Lenient<Part<'a>>>()? {
            let Some(part) = part.0 else { continue };
            // Tool calls, tool results, images and thinking are not the answer.
            let is_text = matches!(part.kind.0.as_deref(), Some("text" | "output_text"));
            if let (true, Some(text)) = (is_text, part.text.0) {
                parts.push(text);
            }
        }
        Ok(Some(Content(parts)))
    }
}

impl<'de: 'a, 'a> Accept<'de> for TextList<'a> {
    const TAKES_TEXT: bool = true;

    fn text(text: Cow<'de, str>) -> Option<Self> {
        Some(TextList(vec![text]))
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut texts = Vec::new();
        while let Some(text) = seq.next_element::<Lenient<Cow<'a, str>>>()? {
            texts.extend(text.0);
        }
        Ok(Some(TextList(texts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn digest_str(stream: &str) -> Digest {
        digest(stream.as_bytes()).unwrap()
    }

    fn lines(lines: &[&str]) -> String {
        let mut stream = lines.join("\n");
        stream.push('\n');
        stream
    }

    fn reason(d: &Digest) -> Option<&'static str> {
        verdict(d).reason
    }

    /// Checks every stream listed in a directory's EXPECTED.tsv, and that every stream there
    /// is listed.
    fn check_expected(dir: &Path) {
        let table = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
        let mut listed = Vec::new();
        for row in table
            .lines()
            .filter(|row| !row.starts_with('#') && !row.is_empty())
        {
            let columns: Vec<&str> = row.split('\t').collect();
            let [file, format, terminal, status, thread_id, has_text, reason] = columns[..] else {
                panic!("{}: bad row {row:?}", dir.display());
            };
            listed.push(file.to_owned());
            let file_digest = digest(std::fs::File::open(dir.join(file)).unwrap()).unwrap();
            let found_verdict = verdict(&file_digest);
            let found = [
                file_digest.format.map_or("-", Format::as_str),
                match &file_digest.terminal {
                    None => "none",
                    Some(t) if t.outcome == Outcome::Success => "success",
                    Some(_) => "failure",
                },
                found_verdict.status_name(),
                file_digest.thread_id.as_deref().unwrap_or("-"),
                if file_digest.final_text.is_some() {
                    "yes"
                } else {
                    "no"
                },
                found_verdict.reason.unwrap_or("-"),
            ];
            assert_eq!(
                found,
                [format, terminal, status, thread_id, has_text, reason],
                "{file}: {file_digest:#?}"
            );
        }
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let is_stream = name.ends_with(".jsonl") || name.ends_with(".log");
            assert!(
                !is_stream || listed.contains(&name),
                "{name} not in EXPECTED.tsv"
            );
        }
    }

    #[test]
    fn shared_captures_reach_their_expected_verdicts() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/agent-streams"
        ));
        if !dir.is_dir() {
            eprintln!(
                "note: {} is absent; shared captures not checked",
                dir.display()
            );
            return;
        }
        check_expected(dir);
    }

    #[test]
    fn own_fixture_streams_reach_their_expected_verdicts() {
        check_expected(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/streams"
        )));
    }

    #[test]
    fn turn_failed_after_an_error_line_is_an_execution_failure() {
        let d = digest_str(&lines(&[
            r#"{"type":"thread.started","thread_id":"t-1"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"error","message":"model overloaded"}"#,
            r#"{"type":"turn.failed","error":{"message":"model overloaded, giving up"}}"#,
        ]));
        let terminal = d.terminal.clone().unwrap();
        assert_eq!(terminal.event, "turn.failed");
        assert_eq!(terminal.outcome, Outcome::Failure);
        assert!(!terminal.interrupted);
        assert_eq!(
            terminal.message.as_deref(),
            Some("model overloaded, giving up")
        );
        assert!(!d.failure_observed);
        assert_eq!(
            verdict(&d),
            Verdict {
                status: Outcome::Failure,
                reason: Some("execution_failed")
            }
        );
    }

    #[test]
    fn reconnecting_errors_then_turn_completed_is_completed() {
        let d = digest_str(&lines(&[
            r#"{"type":"thread.started","thread_id":"t-2"}"#,
            r#"{"type":"error","message":"Reconnecting... 1/5"}"#,
            r#"{"type":"error","message":"Reconnecting... 2/5"}"#,
            r#"{"type":"item.completed","item":{"type":"agent_message","text":"done"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":2}}"#,
        ]));
        assert!(d.failure_observed);
        assert_eq!(d.format, Some(Format::Codex));
        assert_eq!(d.final_text.as_deref(), Some("done"));
        assert_eq!(
            d.usage,
            Some(serde_json::json!({"input_tokens":1,"output_tokens":2}))
        );
        assert_eq!(verdict(&d).status, Outcome::Success);
        assert_eq!(verdict_with_exit(&d, Some(1)).status, Outcome::Success);
    }

    #[test]
    fn error_lines_set_no_format() {
        let d = digest_str(&lines(&[
            r#"{"type":"error","message":"Reconnecting... 2/5"}"#,
        ]));
        assert_eq!(d.format, None);
        assert!(d.failure_observed);
        assert_eq!(d.json_lines, 1);
        assert_eq!(reason(&d), Some("execution_failed"));
    }

    #[test]
    fn claude_success_with_is_error_is_a_failure() {
        let d = digest_str(&lines(&[
            r#"{"type":"system","subtype":"init","session_id":"s-1"}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"partial"}]}}"#,
            r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 500"}"#,
        ]));
        let terminal = d.terminal.clone().unwrap();
        assert_eq!(terminal.outcome, Outcome::Failure);
        assert!(!terminal.interrupted);
        assert_eq!(terminal.message.as_deref(), Some("API Error: 500"));
        // The error text is not the answer.
        assert_eq!(d.final_text.as_deref(), Some("partial"));
        assert_eq!(reason(&d), Some("execution_failed"));
    }

    #[test]
    fn claude_result_without_is_error_counts_as_not_error() {
        let d = digest_str(r#"{"type":"result","subtype":"success","result":"ok"}"#);
        assert_eq!(d.terminal.unwrap().outcome, Outcome::Success);
        assert_eq!(d.final_text.as_deref(), Some("ok"));
    }

    #[test]
    fn claude_last_result_wins() {
        let d = digest_str(&lines(&[
            r#"{"type":"system","subtype":"init","session_id":"s-1"}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"one"}]}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"one"}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"two"}]}}"#,
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,"errors":["too many turns"]}"#,
        ]));
        let terminal = d.terminal.clone().unwrap();
        assert_eq!(terminal.outcome, Outcome::Failure);
        assert_eq!(terminal.message.as_deref(), Some("too many turns"));
        assert_eq!(d.final_text.as_deref(), Some("two"));
        assert_eq!(verdict(&d).status, Outcome::Failure);
        assert_eq!(reason(&d), Some("execution_failed"));
    }

    #[test]
    fn claude_interrupt_is_interrupted_and_joins_errors() {
        let d = digest_str(&lines(&[
            r#"{"type":"result","subtype":"error_during_execution","is_error":false,"errors":["Error: one\n  at x","Error: two"]}"#,
        ]));
        let terminal = d.terminal.clone().unwrap();
        assert!(terminal.interrupted);
        assert_eq!(
            terminal.message.as_deref(),
            Some("Error: one at x Error: two")
        );
        assert_eq!(reason(&d), Some("interrupted"));
        // A recorded non-zero exit code outranks the interruption.
        assert_eq!(
            verdict_with_exit(&d, Some(137)).reason,
            Some("execution_failed")
        );
    }

    #[test]
    fn claude_failed_result_text_is_checked_for_transport_failures() {
        let d = digest_str(
            r#"{"type":"result","subtype":"error_during_execution","errors":["Error: getaddrinfo: dns error"]}"#,
        );
        assert!(d.failure_observed);
        assert_eq!(reason(&d), Some("execution_failed"));
    }

    #[test]
    fn transport_words_in_assistant_text_or_tool_output_are_not_failures() {
        let d = digest_str(&lines(&[
            r#"{"type":"thread.started","thread_id":"t-3"}"#,
            r#"{"type":"item.completed","item":{"type":"command_execution","aggregated_output":"fatal: websocket closed"}}"#,
            r#"{"type":"item.completed","item":{"type":"agent_message","text":"I fixed the websocket reconnect; it failed to connect before."}}"#,
            r#"{"type":"turn.completed","usage":{}}"#,
        ]));
        assert!(!d.failure_observed);
        assert_eq!(verdict(&d).status, Outcome::Success);
    }

    #[test]
    fn transport_failure_patterns() {
        assert!(has_transport_failure("Reconnecting... 2/5"));
        assert!(has_transport_failure("error: FAILED TO CONNECT to host"));
        assert!(has_transport_failure("x\nwebsocket closed"));
        assert!(has_transport_failure("git fatal: bad object"));
        assert!(has_transport_failure(
            "stream disconnected before completion"
        ));
        assert!(has_transport_failure("failed to connect"));
        assert!(!has_transport_failure("failed to connected"));
        assert!(!has_transport_failure("mywebsocket"));
        assert!(!has_transport_failure("reconnecting.. 1/5"));
        assert!(!has_transport_failure(""));
        assert!(has_transport_failure("fatal: not a git repository"));
        assert!(has_transport_failure("[fatal: x]"));
        assert!(!has_transport_failure(
            "Error: NON-FATAL: Lock acquisition failed"
        ));
        assert!(!has_transport_failure("nonfatal: x"));
    }

    #[test]
    fn non_json_output_only_is_invalid_output() {
        let d = digest_str("\n  first   line \r\n\nsecond\tline\n{not json\nfourth\nfifth\n");
        assert_eq!(d.raw_preview, "first line second line {not json fourth");
        assert_eq!(d.lines, 5);
        assert_eq!(d.json_lines, 0);
        assert_eq!(d.format, None);
        assert_eq!(
            verdict(&d),
            Verdict {
                status: Outcome::Failure,
                reason: Some("invalid_output")
            }
        );
    }

    #[test]
    fn non_json_transport_failure_is_observed() {
        let d = digest_str("ERROR: error sending request for url\n");
        assert!(d.failure_observed);
        assert_eq!(reason(&d), Some("execution_failed"));
    }

    #[test]
    fn json_values_that_are_not_objects_are_raw_lines() {
        let d = digest_str("[1,2]\n\"text\"\n42\n");
        assert_eq!(d.json_lines, 0);
        assert_eq!(d.raw_preview, "[1,2] \"text\" 42");
    }

    #[test]
    fn empty_stream_is_unknown() {
        let d = digest_str("");
        assert_eq!(d, Digest::default());
        assert_eq!(
            verdict(&d),
            Verdict {
                status: Outcome::Failure,
                reason: Some("unknown")
            }
        );
        let blank = digest_str("\n \r\n\t\n");
        assert_eq!(blank.lines, 0);
        assert_eq!(blank.bytes, 6);
        assert_eq!(reason(&blank), Some("invalid_output"));
    }

    #[test]
    fn over_long_line_is_skipped_and_following_lines_are_read() {
        let long = format!(
            r#"{{"type":"item.completed","item":{{"text":"{}"}}}}"#,
            "x".repeat(5000)
        );
        let d = digest_with_limit(
            lines(&[
                r#"{"type":"thread.started","thread_id":"t-4"}"#,
                &long,
                r#"{"type":"turn.completed"}"#,
            ])
            .as_bytes(),
            100,
        )
        .unwrap();
        assert_eq!(d.skipped_lines, 1);
        assert_eq!(d.lines, 3);
        assert_eq!(d.json_lines, 2);
        assert_eq!(d.thread_id.as_deref(), Some("t-4"));
        assert_eq!(d.terminal.unwrap().event, "turn.completed");
        assert_eq!(d.raw_preview, "");
    }

    #[test]
    fn line_of_exactly_the_limit_is_read() {
        let line = r#"{"type":"turn.completed"}"#;
        let d = digest_with_limit(line.as_bytes(), line.len()).unwrap();
        assert_eq!(d.skipped_lines, 0);
        assert!(d.terminal.is_some());
        let d = digest_with_limit(line.as_bytes(), line.len() - 1).unwrap();
        assert_eq!(d.skipped_lines, 1);
        assert!(d.terminal.is_none());
    }

    /// A stream of one enormous line, produced on the fly so that the test itself holds
    /// none of it.
    struct HugeLine {
        left: u64,
    }

    impl Read for HugeLine {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Ok(0);
            }
            let n = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            buf[..n].fill(b'a');
            self.left -= n as u64;
            if self.left == 0 {
                buf[n - 1] = b'\n';
            }
            Ok(n)
        }
    }

    /// Counts what the splitter hands over, and watches its line buffer.
    #[derive(Default)]
    struct Recorder {
        lines: Vec<usize>,
        skipped: usize,
    }

    impl LineSink for Recorder {
        fn line(&mut self, line: &[u8]) {
            self.lines.push(line.len());
        }

        fn skipped_line(&mut self) {
            self.skipped += 1;
        }
    }

    #[test]
    fn over_long_line_is_never_held() {
        let max_line = 4096;
        let mut splitter = LineSplitter::new(max_line);
        let mut recorder = Recorder::default();
        let mut source = HugeLine { left: 64 << 20 };
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = source.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            // Small pieces make the start of the line wait in the buffer up to the limit.
            for piece in chunk[..n].chunks(1000) {
                splitter.feed(piece, &mut recorder);
                assert!(splitter.pending.capacity() <= 2 * max_line);
            }
        }
        splitter.feed(b"short\n", &mut recorder);
        splitter.finish(&mut recorder);
        assert_eq!(recorder.skipped, 1);
        assert_eq!(recorder.lines, vec![5]);

        let d = digest_with_limit(HugeLine { left: 64 << 20 }, max_line).unwrap();
        assert_eq!((d.bytes, d.lines, d.skipped_lines), (64 << 20, 1, 1));
    }

    #[test]
    fn lines_straddling_reads_are_joined() {
        // A reader that returns one byte at a time puts every line across reads.
        struct ByteAtATime<'a>(&'a [u8]);
        impl Read for ByteAtATime<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        let stream = lines(&[
            r#"{"type":"thread.started","thread_id":"t-5"}"#,
            r#"{"type":"turn.completed"}"#,
        ]);
        let d = digest_with_limit(ByteAtATime(stream.as_bytes()), 100).unwrap();
        assert_eq!(d.thread_id.as_deref(), Some("t-5"));
        assert_eq!(d.json_lines, 2);
        let d = digest_with_limit(ByteAtATime(stream.as_bytes()), 30).unwrap();
        assert_eq!((d.skipped_lines, d.json_lines), (1, 1));
    }

    #[test]
    fn previews_cut_at_scalar_values_and_drop_controls() {
        let text = format!("\u{1b}[31m{}", "é🙂".repeat(200));
        let line = serde_json::json!({"type":"item.completed","item":{"type":"agent_message","text":text}});
        let d = digest_str(&line.to_string());
        let final_text = d.final_text.unwrap();
        assert_eq!(final_text.chars().count(), ASSISTANT_PREVIEW_MAX);
        assert!(final_text.starts_with("[31mé🙂"));
        assert!(final_text.ends_with("..."));

        let exact = "ü".repeat(ASSISTANT_PREVIEW_MAX);
        let line = serde_json::json!({"role":"assistant","content":exact});
        assert_eq!(digest_str(&line.to_string()).final_text.unwrap(), exact);

        let raw = format!("\u{7}{}\n", "日本".repeat(200));
        let d = digest_str(&raw);
        assert_eq!(d.raw_preview.chars().count(), RAW_PREVIEW_MAX);
        assert!(d.raw_preview.starts_with("日本"));
        assert!(d.raw_preview.ends_with("..."));
        let exact = "ß".repeat(RAW_PREVIEW_MAX);
        assert_eq!(digest_str(&exact).raw_preview, exact);

        let failure = format!("{}\u{0}", "ø".repeat(300));
        let line = serde_json::json!({"type":"turn.failed","error":{"message":failure}});
        let message = digest_str(&line.to_string())
            .terminal
            .unwrap()
            .message
            .unwrap();
        assert_eq!(message.chars().count(), RAW_PREVIEW_MAX);
    }

    #[test]
    fn thread_id_is_cleaned_and_bounded() {
        let id = format!("ab\u{0}c\u{1b}{}", "z".repeat(400));
        let line = serde_json::json!({"type":"thread.started","thread_id":id});
        let thread_id = digest_str(&line.to_string()).thread_id.unwrap();
        assert!(thread_id.starts_with("abcz"));
        assert_eq!(thread_id.chars().count(), THREAD_ID_MAX);
        // The last id wins.
        let d = digest_str(&lines(&[
            r#"{"type":"thread.started","thread_id":"first"}"#,
            r#"{"type":"system","subtype":"init","session_id":"second"}"#,
            r#"{"type":"assistant","session_id":"second"}"#,
        ]));
        assert_eq!(d.thread_id.as_deref(), Some("second"));
    }

    #[test]
    fn mixed_codex_and_claude_keeps_the_first_format() {
        let d = digest_str(&lines(&[
            r#"{"type":"thread.started","thread_id":"t-6"}"#,
            r#"{"type":"system","subtype":"init","session_id":"s-6"}"#,
            r#"{"type":"turn.completed"}"#,
        ]));
        assert_eq!(d.format, Some(Format::Codex));
        assert!(d.mixed_formats);
        let same = digest_str(&lines(&[
            r#"{"type":"thread.started","thread_id":"t-6"}"#,
            r#"{"type":"turn.completed"}"#,
        ]));
        assert!(!same.mixed_formats);
    }

    #[test]
    fn generic_never_counts_as_a_second_format() {
        let d = digest_str(&lines(&[
            r#"{"message":{"role":"assistant","content":"generic first"}}"#,
            r#"{"role":"assistant","content":"kimi"}"#,
            r#"{"usage":{"input_tokens":1}}"#,
        ]));
        assert_eq!(d.format, Some(Format::Kimi));
        assert!(!d.mixed_formats);
        assert_eq!(d.final_text.as_deref(), Some("kimi"));
    }

    #[test]
    fn wrong_typed_fields_are_ignored_not_fatal() {
        let d = digest_str(&lines(&[
            r#"{"type":"thread.started","thread_id":7}"#,
            r#"{"type":"item.completed","item":"x"}"#,
            r#"{"type":"item.completed","item":{"type":["agent_message"],"text":{"a":1}}}"#,
            r#"{"type":"item.completed","item":1.5e300}"#,
            r#"{"type":"item.completed","item":123456789012345678901234567890}"#,
            r#"{"type":"assistant","message":{"content":5}}"#,
            r#"{"type":"assistant","message":{"content":[5,"x",{"type":"text","text":null},{"type":"text","text":"kept"}]}}"#,
            r#"{"type":"result","subtype":7,"is_error":"yes","result":["x"],"errors":{"a":1},"usage":[1]}"#,
            r#"{"role":"assistant","content":{"text":"x"}}"#,
            r#"{"type":9,"usage":1.25,"response":"x","payload":[{}]}"#,
            r#"{"type":"turn.failed","error":12}"#,
        ]));
        assert_eq!(d.json_lines, 11);
        assert_eq!(d.raw_preview, "");
        assert_eq!(d.thread_id, None);
        assert_eq!(d.final_text.as_deref(), Some("kept"));
        assert_eq!(d.usage, None);
        let terminal = d.terminal.unwrap();
        assert_eq!(terminal.event, "turn.failed");
        assert_eq!(terminal.message, None);
    }

    #[test]
    fn duplicate_keys_are_json_but_unread() {
        let d = digest_str(r#"{"type":"turn.completed","type":"turn.failed"}"#);
        assert_eq!((d.json_lines, d.raw_preview.as_str()), (1, ""));
    }

    #[test]
    fn deep_nesting_does_not_crash() {
        let brackets = "[".repeat(100_000);
        let d = digest_str(&lines(&[
            &brackets,
            &format!(r#"{{"type":{brackets}"#),
            &format!(r#"{{"x":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000)),
            r#"{"type":"turn.completed"}"#,
        ]));
        assert_eq!(d.lines, 4);
        assert!(d.json_lines >= 1);
        assert_eq!(d.terminal.unwrap().event, "turn.completed");
        assert!(d.raw_preview.starts_with("[[[["));
    }

    #[test]
    fn last_line_without_newline_and_crlf_are_read() {
        let d = digest_str(
            "{\"type\":\"thread.started\",\"thread_id\":\"t-7\"}\r\n{\"type\":\"turn.completed\"}",
        );
        assert_eq!(d.thread_id.as_deref(), Some("t-7"));
        assert_eq!(d.terminal.unwrap().event, "turn.completed");
        assert_eq!(d.json_lines, 2);
        let raw = digest_str("plain\r\nline\r");
        assert_eq!(raw.raw_preview, "plain line");
    }

    #[test]
    fn invalid_utf8_is_a_raw_line_previewed_lossily() {
        let mut stream = b"{\"type\":\"turn.completed\",\"x\":\"\xff\"}\n".to_vec();
        stream.extend_from_slice(b"bad \xc3\x28 byte\n");
        let d = digest(&stream[..]).unwrap();
        assert_eq!(d.json_lines, 0);
        assert!(d.terminal.is_none());
        assert_eq!(d.lines, 2);
        assert!(d.raw_preview.contains('\u{fffd}'));
        assert!(d.raw_preview.ends_with("bad \u{fffd}( byte"));
    }

    #[test]
    fn gemini_deltas_are_concatenated() {
        let d = digest_str(&lines(&[
            r#"{"type":"init","session_id":"g-1"}"#,
            r#"{"type":"message","role":"assistant","content":"Hel","delta":true}"#,
            r#"{"type":"message","role":"assistant","content":"lo wor","delta":true}"#,
            r#"{"type":"message","role":"assistant","content":"ld","delta":true}"#,
            r#"{"type":"result","status":"success","stats":{"total_tokens":3}}"#,
        ]));
        assert_eq!(d.final_text.as_deref(), Some("Hello world"));
        assert_eq!(d.usage, Some(serde_json::json!({"total_tokens":3})));
        assert_eq!(d.thread_id.as_deref(), Some("g-1"));

        let d = digest_str(&lines(&[
            r#"{"type":"message","role":"assistant","content":"old","delta":true}"#,
            r#"{"type":"tool_use","tool_name":"x"}"#,
            r#"{"type":"message","role":"assistant","content":"new","delta":true}"#,
            r#"{"type":"message","role":"assistant","content":"whole"}"#,
        ]));
        assert_eq!(d.final_text.as_deref(), Some("whole"));
        assert_eq!(reason(&d), Some("interrupted"));
    }

    #[test]
    fn a_stream_digest_takes_holes_and_a_gap() {
        let feed = |pieces: &dyn Fn(&mut StreamDigest)| {
            let mut digest = StreamDigest::new(64);
            pieces(&mut digest);
            digest.finish()
        };
        // A short hole inside a line is its NUL bytes; a long one makes the line too long.
        let d = feed(&|d| {
            d.data(b"ab");
            d.hole(10);
            d.data(b"cd\n{\"type\":\"turn.completed\"}\n");
        });
        assert_eq!((d.lines, d.skipped_lines, d.bytes), (2, 0, 41));
        assert!(d.raw_preview.starts_with("ab"));
        let d = feed(&|d| {
            d.data(b"ab");
            d.hole(1 << 40);
            d.data(b"cd\n{\"type\":\"turn.completed\"}\n");
        });
        assert_eq!((d.lines, d.skipped_lines), (2, 1));
        assert!(d.terminal.is_some());
        // The gap drops the head's unfinished line and the tail's partial first line.
        let d = feed(&|d| {
            d.data(b"{\"type\":\"thread.started\",\"thread_id\":\"t\"}\nhead cut");
            d.gap(1000, false);
            d.data(b"tail cut\n{\"type\":\"turn.completed\"}\n");
        });
        assert_eq!((d.lines, d.raw_preview.as_str()), (2, ""));
        assert_eq!((d.truncated, d.skipped_bytes), (true, 1000));
        assert_eq!(d.thread_id.as_deref(), Some("t"));
        // A tail that starts on a line keeps that line.
        let d = feed(&|d| {
            d.data(b"whole head\n");
            d.gap(5, true);
            d.data(b"whole tail\n");
        });
        assert_eq!(d.raw_preview, "whole head whole tail");
    }

    #[test]
    fn a_bare_message_object_identifies_no_format() {
        // The seeds' orchestrator writes `{"type":"message"}` markers into streams of any
        // agent: they must not make a Claude or Kimi stream "gemini" or mixed.
        let d = digest_str(&lines(&[r#"{"type":"message"}"#]));
        assert_eq!(d.format, None);
        assert!(!d.mixed_formats);
        assert_eq!(d.json_lines, 1);
        let d = digest_str(&lines(&[
            r#"{"type":"message","id":7}"#,
            r#"{"type":"system","subtype":"init","session_id":"s-1"}"#,
            r#"{"type":"message"}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#,
        ]));
        assert_eq!(d.format, Some(Format::Claude));
        assert!(!d.mixed_formats);
        // With a role or content it is Gemini's message.
        let d = digest_str(&lines(&[r#"{"type":"message","role":"user"}"#]));
        assert_eq!(d.format, Some(Format::Gemini));
        let d = digest_str(&lines(&[r#"{"type":"message","content":"hi"}"#]));
        assert_eq!(d.format, Some(Format::Gemini));
    }

    #[test]
    fn gemini_error_result_and_warning() {
        let d = digest_str(&lines(&[
            r#"{"type":"error","severity":"warning","message":"websocket reset"}"#,
            r#"{"type":"result","status":"error","error":{"message":"quota exhausted"}}"#,
        ]));
        assert_eq!(d.format, Some(Format::Gemini));
        assert!(d.failure_observed);
        let terminal = d.terminal.unwrap();
        assert_eq!(terminal.message.as_deref(), Some("quota exhausted"));
        assert_eq!(terminal.outcome, Outcome::Failure);
    }

    #[test]
    fn usage_at_response_and_payload_usage() {
        let d = digest_str(r#"{"response":{"id":"r","usage":{"input_tokens":4}}}"#);
        assert_eq!(d.usage, Some(serde_json::json!({"input_tokens":4})));
        assert_eq!(d.format, Some(Format::Generic));
        assert_eq!(verdict(&d).status, Outcome::Success);
        let d = digest_str(&lines(&[
            r#"{"usage":{"a":1}}"#,
            r#"{"payload":{"usage":{"output_tokens":9,"big":123456789012345678901234567890}}}"#,
        ]));
        assert_eq!(
            d.usage.unwrap().to_string(),
            r#"{"output_tokens":9,"big":123456789012345678901234567890}"#
        );
    }

    #[test]
    fn huge_usage_is_dropped() {
        let fields: Vec<String> = (0..2000).map(|i| format!("\"field_{i}\":{i}")).collect();
        let huge = format!("{{\"usage\":{{{}}}}}", fields.join(","));
        assert!(huge.len() > USAGE_MAX_BYTES);
        let d = digest_str(&huge);
        assert_eq!(d.usage, None);
        assert_eq!(d.json_lines, 1);
        let d = digest_str(&lines(&[r#"{"usage":{"kept":1}}"#, &huge]));
        assert_eq!(d.usage, Some(serde_json::json!({"kept":1})));
    }

    #[test]
    fn codex_legacy_lines() {
        let d = digest_str(&lines(&[
            r#"{"id":"0","msg":{"type":"session_configured","session_id":"l-1"}}"#,
            r#"{"id":"1","msg":{"type":"stream_error","message":"stream disconnected - retrying"}}"#,
            r#"{"id":"1","msg":{"type":"agent_message","message":"partial"}}"#,
            r#"{"id":"1","msg":{"type":"task_complete","last_agent_message":""}}"#,
        ]));
        assert_eq!(d.format, Some(Format::CodexLegacy));
        assert_eq!(d.thread_id.as_deref(), Some("l-1"));
        assert_eq!(d.final_text.as_deref(), Some("partial"));
        assert!(d.failure_observed);
        assert_eq!(d.terminal.unwrap().event, "task_complete");

        let rollout = digest_str(&lines(&[
            r#"{"type":"session_meta","payload":{"id":"r-1","cwd":"/tmp"}}"#,
            r#"{"type":"response_item","payload":{"type":"message","role":"user","content":[]}}"#,
            r#"{"type":"event_msg","payload":{"type":"agent_message","message":"answer"}}"#,
        ]));
        assert_eq!(rollout.format, Some(Format::CodexLegacy));
        assert_eq!(rollout.thread_id.as_deref(), Some("r-1"));
        assert_eq!(verdict(&rollout).status, Outcome::Success);
        assert_eq!(
            verdict_with_exit(&rollout, Some(2)),
            Verdict {
                status: Outcome::Failure,
                reason: Some("execution_failed")
            }
        );
        assert_eq!(
            verdict_with_exit(&rollout, Some(0)).status,
            Outcome::Success
        );
    }

    #[test]
    fn kimi_without_text_is_invalid_output() {
        let d = digest_str(r#"{"role":"tool","content":"x"}"#);
        assert_eq!(d.format, Some(Format::Kimi));
        assert_eq!(reason(&d), Some("invalid_output"));
    }

    #[test]
    fn escaped_strings_are_read() {
        let d = digest_str(
            r#"{"type":"item.completed","item":{"type":"agent\u005fmessage","text":"a\"b\nc"}}"#,
        );
        assert_eq!(d.final_text.as_deref(), Some("a\"b c"));
    }

    #[test]
    fn format_names() {
        let all = [
            Format::Codex,
            Format::CodexLegacy,
            Format::Claude,
            Format::Gemini,
            Format::Kimi,
            Format::Generic,
        ];
        let names: Vec<&str> = all.iter().map(|f| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "codex",
                "codex-legacy",
                "claude",
                "gemini",
                "kimi",
                "generic"
            ]
        );
        let terminal: Vec<bool> = all.iter().map(|f| f.has_terminal_events()).collect();
        assert_eq!(terminal, [true, false, true, true, false, false]);
    }

    #[test]
    fn find_newline_matches_a_plain_scan() {
        let mut haystack = vec![b'x'; 100];
        assert_eq!(find_newline(&haystack), None);
        for index in [0, 7, 8, 9, 63, 64, 99] {
            haystack.fill(b'x');
            haystack[index] = b'\n';
            if index + 5 < haystack.len() {
                haystack[index + 5] = b'\n';
            }
            assert_eq!(find_newline(&haystack), Some(index));
            assert_eq!(find_newline(&haystack[..index]), None);
        }
        // Bytes next to '\n' in value must not confuse the word test.
        let near = [0x0b, 0x09, 0x8a, 0x0a];
        assert_eq!(find_newline(&near), Some(3));
        let near: Vec<u8> = (0u8..=255).filter(|b| *b != b'\n').collect();
        assert_eq!(find_newline(&near), None);
    }
}
