//! output: records on stdout (ndjson, json, tsv, text) and problems on stderr.
//!
//! stdout is for programs: ndjson streams one compact object per record through a locked
//! `BufWriter`, so memory does not grow with the number of records; json streams its
//! `records` array the same way. tsv and text need every record before the first line (the
//! header is the union of the fields; columns are aligned) and are for small outputs. A
//! closed stdout (`| head`) ends printing quietly; the work goes on.
//! stderr is for people: one line per problem, `flatline: PATH: what is wrong`, with
//! journald priority prefixes when stderr is the journal.

use crate::cli::Format;
use crate::clock::{self, Millis};
use crate::exit::Exit;
use crate::text::escape_control;
use serde::ser::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// A timestamp that serializes as RFC 3339 (or null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ts(pub Option<Millis>);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(ms) => serializer.serialize_str(&clock::format_rfc3339(ms)),
            None => serializer.serialize_none(),
        }
    }
}

/// A path that serializes as (lossy) UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct PathText<'a>(pub &'a Path);

impl Serialize for PathText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_string_lossy())
    }
}

/// A record that writes its own compact JSON, byte for byte what serde_json writes for its
/// `Serialize` form (a test in each implementing module compares the two).
pub trait WriteJson {
    fn write_json(&self, out: &mut JsonWriter<'_>);
}

/// Compact JSON into a byte buffer, for `WriteJson` records: keys are literals the caller
/// knows need no escaping; text is copied as it is when no byte needs an escape, else written
/// by serde_json so the escapes are its own.
pub struct JsonWriter<'a>(pub &'a mut Vec<u8>);

impl JsonWriter<'_> {
    /// `{"key":` or `,"key":`: the first key opens the object.
    pub fn key(&mut self, first: bool, key: &str) {
        let open: &[u8] = if first { b"{\"" } else { b",\"" };
        self.0.reserve(key.len() + 4);
        self.0.extend_from_slice(open);
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    pub fn end(&mut self) {
        self.0.push(b'}');
    }

    pub fn str(&mut self, text: &str) {
        if needs_escape(text.as_bytes()) {
            // Writing into a Vec cannot fail.
            let _ = to_writer_safe(&mut *self.0, text);
        } else {
            self.0.push(b'"');
            self.0.extend_from_slice(text.as_bytes());
            self.0.push(b'"');
        }
    }

    pub fn opt_str(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.str(text),
            None => self.null(),
        }
    }

    pub fn path(&mut self, path: &Path) {
        match path.to_str() {
            Some(text) => self.str(text),
            None => self.str(&path.to_string_lossy()),
        }
    }

    pub fn int(&mut self, value: impl Into<i128>) {
        let value = value.into();
        // Digit by digit for the common case; 128-bit formatting is slow.
        match u64::try_from(value.unsigned_abs()) {
            Ok(mut magnitude) => {
                if value < 0 {
                    self.0.push(b'-');
                }
                let mut digits = [0u8; 20];
                let mut at = digits.len();
                loop {
                    at -= 1;
                    digits[at] = b'0' + (magnitude % 10) as u8;
                    magnitude /= 10;
                    if magnitude == 0 {
                        break;
                    }
                }
                self.0.extend_from_slice(&digits[at..]);
            }
            // Writing into a Vec cannot fail.
            Err(_) => {
                let _ = write!(self.0, "{value}");
            }
        }
    }

    pub fn opt_int(&mut self, value: Option<impl Into<i128>>) {
        match value {
            Some(value) => self.int(value),
            None => self.null(),
        }
    }

    pub fn bool(&mut self, value: bool) {
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    pub fn opt_bool(&mut self, value: Option<bool>) {
        match value {
            Some(value) => self.bool(value),
            None => self.null(),
        }
    }

    pub fn ts(&mut self, ts: Ts) {
        match ts.0 {
            Some(ms) => {
                self.0.push(b'"');
                clock::write_rfc3339_bytes(self.0, ms);
                self.0.push(b'"');
            }
            None => self.null(),
        }
    }

    pub fn strs<S: AsRef<str>>(&mut self, items: &[S]) {
        self.0.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.str(item.as_ref());
        }
        self.0.push(b']');
    }

    pub fn null(&mut self) {
        self.0.extend_from_slice(b"null");
    }
}

/// serde_json's compact output with every dangerous character (`text::is_dangerous`)
/// written as a `\uXXXX` escape: serde_json escapes only C0 controls by itself, and DEL, C1
/// controls or a bidi override must not reach a terminal through `jq -r` or a log viewer
/// (SPEC §7). The same bytes as serde_json for every other text.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if !crate::text::may_hold_dangerous_beyond_c0(fragment.as_bytes()) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (at, ch) in fragment.char_indices() {
            if crate::text::is_dangerous(ch) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                write!(writer, "\\u{:04x}", ch as u32)?;
                start = at + ch.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Compact JSON through `SafeFormatter`: what every record on stdout is written with.
pub fn to_writer_safe<W: Write, T: ?Sized + Serialize>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, SafeFormatter);
    value.serialize(&mut serializer)
}

/// `to_writer_safe` into a new string.
pub fn to_string_safe<T: ?Sized + Serialize>(value: &T) -> serde_json::Result<String> {
    let mut bytes = Vec::with_capacity(128);
    to_writer_safe(&mut bytes, value)?;
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether JSON text needs an escape: a `"`, a `\\`, a control character (below 0x20), or
/// possibly another dangerous character (`text::may_hold_dangerous_beyond_c0`: a DEL or the
/// lead byte of one). Eight bytes at a time (the classic "has a zero byte" and "has a byte
/// less than n" tests).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        // Bytes below 0x20: (x - 0x20 per byte) borrows into the high bit, bytes >= 0x80 excluded.
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let beyond_c0 = zero_in(x ^ (ONES * 0x7f))
            | zero_in(x ^ (ONES * 0xc2))
            | zero_in(x ^ (ONES * 0xd8))
            | zero_in(x ^ (ONES * 0xe2));
        if zero_in(quote) | zero_in(backslash) | control | beyond_c0 != 0 {
            return true;
        }
    }
    let rest = chunks.remainder();
    rest.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
        || crate::text::may_hold_dangerous_beyond_c0(rest)
}

/// Where records go.
pub struct Output {
    format: Format,
    quiet: bool,
    out: BufWriter<Box<dyn Write>>,
    /// stdout was closed by the reader, or failed: stop printing, keep working.
    closed: bool,
    /// Why stdout failed (not a closed pipe), for `finish` to report once.
    failed: Option<io::Error>,
    /// json: the document's opening has been written.
    opened: bool,
    /// json: records written so far (for commas).
    written: u64,
    /// `capture`: every record, kept for `into_rows`.
    rows: Vec<Map<String, Value>>,
    capturing: bool,
    /// text: the bounded window of rows and the widths fixed from it.
    tables: TextTables,
    /// tsv: the header line last printed (a record with other fields prints a new one).
    tsv_columns: Vec<String>,
    header: Header,
    line: Vec<u8>,
    /// `--output FILE`: everything goes to a buffer, written atomically at the end.
    file: Option<(std::path::PathBuf, SharedBuffer)>,
}

/// A buffer shared with the writer that fills it.
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut bytes) => {
                bytes.extend_from_slice(buf);
                Ok(buf.len())
            }
            Err(_) => Err(io::Error::other("output buffer poisoned")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SharedBuffer {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

/// The json document's fields that are known before the first record.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub run_dirs: Vec<String>,
    pub checked_at: Millis,
}

/// One problem, for the json document's `errors`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErrorEntry {
    pub path: String,
    pub message: String,
}

impl Output {
    pub fn new(format: Format, quiet: bool, header: Header, sink: Box<dyn Write>) -> Output {
        Output {
            format,
            quiet,
            out: BufWriter::with_capacity(64 * 1024, sink),
            closed: false,
            failed: None,
            opened: false,
            written: 0,
            rows: Vec::new(),
            capturing: false,
            tables: TextTables::default(),
            tsv_columns: Vec::new(),
            header,
            line: Vec::with_capacity(1024),
            file: None,
        }
    }

    /// The output of a command over these runs (the json header names them).
    pub fn for_runs(config: &crate::config::Config, runs: &[crate::scan::Run]) -> Output {
        let header = Header {
            run_dirs: runs
                .iter()
                .map(|run| run.path.to_string_lossy().into_owned())
                .collect(),
            checked_at: config.now,
        };
        Output::for_config(config, header)
    }

    /// The output a command's configuration asks for: stdout (also `--output -`), or
    /// `--output FILE`.
    pub fn for_config(config: &crate::config::Config, header: Header) -> Output {
        match &config.output {
            Some(path) if path.as_os_str() != "-" => {
                let buffer = SharedBuffer::default();
                let mut output = Output::new(
                    config.format,
                    config.quiet,
                    header,
                    Box::new(buffer.clone()),
                );
                output.file = Some((path.clone(), buffer));
                output
            }
            _ => Output::stdout(config.format, config.quiet, header),
        }
    }

    /// Records kept as JSON objects instead of printed (`into_rows`), for a command that
    /// prints its own document.
    pub fn capture() -> Output {
        let mut output = Output::new(Format::Tsv, false, Header::default(), Box::new(io::sink()));
        output.capturing = true;
        output
    }

    /// The records kept by a capturing output.
    pub fn into_rows(self) -> Vec<Map<String, Value>> {
        self.rows
    }

    /// Output on the process's stdout.
    pub fn stdout(format: Format, quiet: bool, header: Header) -> Output {
        Output::new(format, quiet, header, Box::new(io::stdout().lock()))
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.out.write_all(bytes) {
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            // Any other failure (a full disk behind stdout): printing stops there, the work
            // goes on (SPEC §7), and `finish` returns the error for its one stderr line.
            Err(error) => {
                self.closed = true;
                self.failed = Some(error);
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    fn open_json(&mut self) -> io::Result<()> {
        if self.opened {
            return Ok(());
        }
        self.opened = true;
        let mut head = b"{\"run_dirs\":".to_vec();
        to_writer_safe(&mut head, &self.header.run_dirs)?;
        head.extend_from_slice(b",\"checked_at\":");
        serde_json::to_writer(&mut head, &Ts(Some(self.header.checked_at)))?;
        head.extend_from_slice(b",\"records\":[");
        self.write(&head)
    }

    /// Prints one record (any `Serialize` struct with a `kind` field first).
    pub fn record<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        self.emit(record, |line| Ok(to_writer_safe(line, record)?))
    }

    /// Prints one record through its hand-written JSON (`WriteJson`): the same bytes as
    /// `record`, written without serde's per-byte escaping for the text that needs none. For
    /// the records printed once per file.
    pub fn record_fast<T: Serialize + WriteJson>(&mut self, record: &T) -> io::Result<()> {
        self.emit(record, |line| {
            record.write_json(&mut JsonWriter(line));
            Ok(())
        })
    }

    fn emit<T: Serialize>(
        &mut self,
        record: &T,
        to_json: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.quiet || self.closed {
            return Ok(());
        }
        let separator: &[u8] = match self.format {
            Format::Ndjson => b"",
            Format::Json => {
                self.open_json()?;
                if self.written > 0 { b"," } else { b"" }
            }
            Format::Tsv | Format::Text => {
                if let Value::Object(map) = serde_json::to_value(record)? {
                    if self.capturing {
                        self.rows.push(map);
                    } else if self.format == Format::Tsv {
                        let text = tsv_lines(&mut self.tsv_columns, &map);
                        self.write(text.as_bytes())?;
                    } else {
                        let text = self.tables.push(text_row(&map));
                        self.write(text.as_bytes())?;
                    }
                }
                return Ok(());
            }
            // Metrics are aggregates: the records themselves are not printed.
            Format::Prometheus => return Ok(()),
        };
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        line.extend_from_slice(separator);
        let mut result = to_json(&mut line);
        if result.is_ok() {
            if self.format == Format::Ndjson {
                line.push(b'\n');
            } else {
                self.written += 1;
            }
            result = self.write(&line);
        }
        self.line = line;
        result
    }

    /// Ends a prometheus output with its exposition text (other formats ignore it).
    pub fn metrics(&mut self, metrics: &Metrics) -> io::Result<()> {
        if self.format == Format::Prometheus && !self.quiet {
            let text = metrics.render();
            self.write(text.as_bytes())?;
        }
        Ok(())
    }

    /// Ends the output: the json document's tail (`summary`, `errors`), or the tsv/text
    /// table. Summary rows are printed as records in the other formats by the caller.
    pub fn finish<S: Serialize>(
        mut self,
        summary: &[S],
        errors: &[ErrorEntry],
        tally: &str,
    ) -> io::Result<()> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        if !self.quiet {
            match self.format {
                Format::Ndjson => {}
                Format::Json => {
                    self.open_json()?;
                    let mut tail = b"],\"summary\":".to_vec();
                    to_writer_safe(&mut tail, summary)?;
                    tail.extend_from_slice(b",\"errors\":");
                    to_writer_safe(&mut tail, errors)?;
                    tail.extend_from_slice(b"}\n");
                    self.write(&tail)?;
                }
                Format::Tsv => {}
                Format::Prometheus => {}
                Format::Text => {
                    let mut text = self.tables.flush();
                    if !tally.is_empty() {
                        text.push_str(tally);
                        text.push('\n');
                    }
                    self.write(text.as_bytes())?;
                }
            }
        }
        // Once closed (a reader gone, or a failure already reported), nothing more to say.
        let flushed = match self.out.flush() {
            _ if self.closed => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        };
        flushed?;
        if let Some((path, buffer)) = self.file.take() {
            // An incomplete run never replaces a complete file: the old one stays, and its
            // age tells the monitoring that runs are failing (SPEC §4).
            if crate::stop::cut_short() {
                Diagnostics::new(stderr_is_journal()).warning(
                    &path,
                    "not replaced: the run stopped before it finished; the file keeps the last complete output",
                );
                return Ok(());
            }
            write_file_atomically(&path, &buffer.take())?;
        }
        Ok(())
    }

    /// True when records are held until `finish` (a capturing output; text holds at most
    /// `TEXT_WINDOW` rows).
    pub fn buffers(&self) -> bool {
        self.capturing
    }
}

/// `--output FILE`: written atomically (temp, fsync, rename, directory fsync), as
/// node_exporter's textfile collector wants: it never reads a partial file.
fn write_file_atomically(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--output names no file"))?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    let dir = crate::files::Dir::open(parent)?;
    crate::store::write_atomic(&dir, name, bytes, 0o644)
        .map_err(|error| io::Error::other(format!("{}: {error}", path.display())))
}

/// Prometheus metrics (text exposition format 0.0.4): gauges only, since every figure is
/// what this run saw, not a count that grows across runs.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    families: Vec<Family>,
}

#[derive(Debug, Clone)]
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Metrics {
    /// Adds one gauge sample; samples of one name share one HELP and TYPE.
    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(family) => family.samples.push((labels, value)),
            None => self.families.push(Family {
                name,
                help,
                samples: vec![(labels, value)],
            }),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in &self.families {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} gauge", family.name);
            for (labels, value) in &family.samples {
                out.push_str(family.name);
                if !labels.is_empty() {
                    let rendered: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                        .collect();
                    out.push('{');
                    out.push_str(&rendered.join(","));
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_value(*value));
            }
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Writes a whole text to stdout at once; a closed pipe is not an error.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A tsv cell: strings as they are with `\t`, `\n`, `\r` and `\\` escaped, and every other
/// dangerous character (`text::is_dangerous`) as `\x1b` or `\u202e`; null empty; arrays of
/// strings joined with commas; other values as JSON.
fn tsv_cell(value: &Value) -> String {
    let raw = match value {
        Value::Null => return String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    tsv_text(&raw)
}

/// Text in a tsv line: `\\` doubled, every dangerous character escaped (`\t`, `\x1b`).
fn tsv_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for ch in raw.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ch => out.push_str(&escape_control(ch.encode_utf8(&mut [0; 4]))),
        }
    }
    out
}

/// The tsv lines of one record, streamed: its row, after a header line when its fields are
/// not those of the header printed last (the first record, a change of kind, a record kind
/// whose optional fields differ). Nothing is kept but the last header.
fn tsv_lines(columns: &mut Vec<String>, row: &Map<String, Value>) -> String {
    let mut out = String::new();
    if !columns
        .iter()
        .map(String::as_str)
        .eq(row.keys().map(String::as_str))
    {
        *columns = row.keys().cloned().collect();
        let header: Vec<String> = columns.iter().map(|c| tsv_text(c)).collect();
        out.push_str(&header.join("\t"));
        out.push('\n');
    }
    let cells: Vec<String> = row.values().map(tsv_cell).collect();
    out.push_str(&cells.join("\t"));
    out.push('\n');
    out
}

/// The columns the text table shows for each kind of record.
fn text_columns(kind: &str) -> &'static [&'static str] {
    match kind {
        "delegation" => &[
            "delegation_id",
            "task_card_id",
            "state",
            "elapsed_since_progress_ms",
            "process_id",
            "process_identity",
            "next_action",
            "summary",
            "note",
        ],
        "action" => &[
            "command",
            "action",
            "outcome",
            "delegation_id",
            "worker_id",
            "status",
            "termination",
            "would_signal",
            "summary",
            "message",
        ],
        "fan_in" => &[
            "task_card_id",
            "ready",
            "outcome",
            "completed",
            "failed",
            "cancelled",
            "active",
            "waiting_lanes",
            "summary",
            "note",
        ],
        "worker" => &[
            "worker_id",
            "role",
            "health",
            "heartbeat_status",
            "heartbeat_age_ms",
            "inbox_count",
            "outbox_count",
            "message",
            "note",
        ],
        "summary:workers" => &[
            "run_dir", "total", "healthy", "stalled", "dead", "stopped", "starting", "unknown",
        ],
        "summary:delegations" => &[
            "run_dir",
            "task_card_id",
            "total",
            "active",
            "queued",
            "launching",
            "running",
            "running_quiet",
            "returned",
            "failed",
            "stale",
            "timed_out",
            "reclaim_needed",
            "reclaimed",
        ],
        _ => &[],
    }
}

fn text_cell(column: &str, value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "-".into();
    };
    let text = match value {
        Value::Null => "-".to_string(),
        Value::Number(n) if column.ends_with("_ms") => n
            .as_i64()
            .map(human_duration)
            .unwrap_or_else(|| n.to_string()),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        // Lists of names or pids (waiting lanes, the pids a dry run would signal).
        Value::Array(items) if items.iter().all(|v| v.is_string() || v.is_number()) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    escape_control(&text).into_owned()
}

/// `90000` → `1m30s`, for people.
pub fn human_duration(ms: Millis) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m"),
    }
}

/// A column's header, in one style: upper case with underscores, `_ms` columns named for
/// what their values show (`PROGRESS_AGE` shows `1m30s`, not milliseconds).
fn header_name(column: &str) -> String {
    let name = match column {
        "elapsed_since_progress_ms" => "progress_age",
        "process_id" => "pid",
        "process_identity" => "process",
        "delegation_id" => "delegation",
        "worker_id" => "worker",
        "task_card_id" => "task_card",
        other => other.strip_suffix("_ms").unwrap_or(other),
    };
    escape_control(&name.to_uppercase()).into_owned()
}

/// Whether a record is of a reclaimed worker: its STATE reads `reclaimed` in a text table,
/// whatever state it was reclaimed in (the record keeps both fields).
fn is_reclaimed(row: &Map<String, Value>) -> bool {
    row.get("reclaim_state").and_then(Value::as_str) == Some("reclaimed")
}

/// The NOTE column: a record's warnings in words (`invalid pid 1`, `pid reused`, `clock
/// skew`), joined with commas; `-` without any.
fn note(row: &Map<String, Value>) -> String {
    let mut words: Vec<String> = Vec::new();
    let codes = row
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    for code in codes {
        // Some records (fan-in) already say their warnings in words.
        if code.contains(char::is_whitespace) {
            words.push(code.to_string());
        } else {
            words.push(warning_words(code, row));
        }
    }
    if row.get("process_identity").and_then(Value::as_str) == Some("reused")
        && !words.iter().any(|w| w == "pid reused")
    {
        words.push("pid reused".into());
    }
    if words.is_empty() {
        return "-".into();
    }
    escape_control(&words.join(", ")).into_owned()
}

/// One warning code in words, with the value it is about where the record has it.
fn warning_words(code: &str, row: &Map<String, Value>) -> String {
    let value = |key: &str| match row.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let (name, path) = match code.split_once(':') {
        Some((name, path)) => (name, Some(path)),
        None => (code, None),
    };
    let words = match name {
        "invalid_process_id" => match value("process_id") {
            Some(pid) => format!("invalid pid {pid}"),
            None => "invalid pid".into(),
        },
        "pid_reused" | "reused" => "pid reused".into(),
        "unknown_status" => match value("status") {
            Some(status) => format!("unknown status {status}"),
            None => "unknown status".into(),
        },
        "wrong_type" => "wrong type".into(),
        "invalid_timestamp" => "invalid timestamp".into(),
        other => other.replace('_', " "),
    };
    match path {
        Some(path) => format!("{words} at {path}"),
        None => words,
    }
}

/// Rows of text kept to measure the columns' widths; the rows after them are streamed with
/// those widths (a wider cell just overflows), so text holds at most this many rows.
pub const TEXT_WINDOW: usize = 1000;

/// One row of a text table: the table it belongs to (kind, and scope for summaries) and the
/// cells it has, by column, already escaped. Nulls are left out for the known kinds (their
/// cell is `-`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TextRow {
    table: String,
    cells: Vec<(String, String)>,
}

impl TextRow {
    fn cell(&self, column: &str) -> &str {
        self.cells
            .iter()
            .find(|(c, _)| c == column)
            .map_or("-", |(_, cell)| cell.as_str())
    }
}

/// A record as a text row: only the cells its table shows.
fn text_row(row: &Map<String, Value>) -> TextRow {
    let kind = row.get("kind").and_then(Value::as_str).unwrap_or("");
    let table = match row.get("scope").and_then(Value::as_str) {
        Some(scope) => format!("{kind}:{scope}"),
        None => kind.to_string(),
    };
    let columns = text_columns(&table);
    let mut cells = Vec::with_capacity(columns.len());
    if columns.is_empty() {
        for (key, value) in row.iter().filter(|(k, _)| *k != "kind") {
            cells.push((key.clone(), text_cell(key, Some(value))));
        }
    } else {
        for &column in columns {
            let value = match column {
                "note" => {
                    cells.push((column.to_string(), note(row)));
                    continue;
                }
                "state" if is_reclaimed(row) => {
                    cells.push((column.to_string(), "reclaimed".into()));
                    continue;
                }
                _ => row.get(column),
            };
            if let Some(value) = value.filter(|v| !v.is_null()) {
                cells.push((column.to_string(), text_cell(column, Some(value))));
            }
        }
    }
    TextRow { table, cells }
}

/// A table whose columns and widths are fixed.
#[derive(Debug, Clone)]
struct FixedTable {
    table: String,
    columns: Vec<String>,
    widths: Vec<usize>,
}

impl FixedTable {
    /// Columns and widths from the rows of one table (the header counts too).
    fn measure(table: &str, rows: &[&TextRow]) -> FixedTable {
        let mut columns: Vec<String> = text_columns(table).iter().map(|c| c.to_string()).collect();
        if columns.is_empty() {
            for row in rows {
                for (key, _) in &row.cells {
                    if !columns.contains(key) {
                        columns.push(key.clone());
                    }
                }
            }
        }
        // Action records of different commands have different fields: a column that no
        // record of this table has is left out.
        if table == "action" {
            columns.retain(|c| rows.iter().any(|row| row.cells.iter().any(|(k, _)| k == c)));
        }
        let widths = columns
            .iter()
            .map(|column| {
                rows.iter()
                    .map(|row| row.cell(column).chars().count())
                    .chain(std::iter::once(header_name(column).chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        FixedTable {
            table: table.to_string(),
            columns,
            widths,
        }
    }

    fn line(&self, cells: &[&str], out: &mut String) {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < cells.len() {
                let pad = self.widths[i].saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }

    fn header(&self, out: &mut String) {
        let headers: Vec<String> = self.columns.iter().map(|c| header_name(c)).collect();
        let cells: Vec<&str> = headers.iter().map(String::as_str).collect();
        self.line(&cells, out);
    }

    fn row(&self, row: &TextRow, out: &mut String) {
        let cells: Vec<&str> = self.columns.iter().map(|c| row.cell(c)).collect();
        self.line(&cells, out);
    }
}

/// The text tables of one output: the first `TEXT_WINDOW` rows are kept and printed as one
/// aligned table per kind (in order of first appearance); after them every row is printed as
/// it comes, with the widths its table got from the window, under a repeated header when the
/// kind changes. Memory stays flat in the number of records.
#[derive(Debug, Default)]
struct TextTables {
    window: Vec<TextRow>,
    /// Set once the window was printed: rows are streamed from then on.
    fixed: Option<Vec<FixedTable>>,
    /// The table of the row printed last, and whether anything was printed.
    last: Option<String>,
}

impl TextTables {
    /// Takes one row; returns the text to print now (empty while the window fills).
    fn push(&mut self, row: TextRow) -> String {
        let mut out = String::new();
        match &mut self.fixed {
            None => {
                self.window.push(row);
                if self.window.len() >= TEXT_WINDOW {
                    out = self.flush();
                }
            }
            Some(tables) => {
                let index = match tables.iter().position(|t| t.table == row.table) {
                    Some(index) => index,
                    None => {
                        tables.push(FixedTable::measure(&row.table, &[&row]));
                        tables.len() - 1
                    }
                };
                let table = &tables[index];
                if self.last.as_deref() != Some(row.table.as_str()) {
                    if self.last.is_some() {
                        out.push('\n');
                    }
                    table.header(&mut out);
                    self.last = Some(row.table.clone());
                }
                table.row(&row, &mut out);
            }
        }
        out
    }

    /// Prints the window (if not yet printed) and fixes the widths.
    fn flush(&mut self) -> String {
        let mut out = String::new();
        if self.fixed.is_some() {
            return out;
        }
        let window = std::mem::take(&mut self.window);
        let mut names: Vec<&str> = Vec::new();
        for row in &window {
            if !names.contains(&row.table.as_str()) {
                names.push(&row.table);
            }
        }
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            let rows: Vec<&TextRow> = window.iter().filter(|row| row.table == name).collect();
            let table = FixedTable::measure(name, &rows);
            if self.last.is_some() {
                out.push('\n');
            }
            table.header(&mut out);
            for row in rows {
                table.row(row, &mut out);
            }
            self.last = Some(name.to_string());
            tables.push(table);
        }
        self.fixed = Some(tables);
        out
    }

    /// Rows held right now (at most `TEXT_WINDOW`).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.window.len()
    }
}

/// How a problem line is classed for the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

/// Problems found during a run: printed to stderr at once, kept for the json document,
/// and folded into the exit status.
#[derive(Debug)]
pub struct Diagnostics {
    pub exit: Exit,
    pub errors: Vec<ErrorEntry>,
    journal: bool,
    quiet_warnings: bool,
}

impl Diagnostics {
    pub fn new(journal: bool) -> Diagnostics {
        Diagnostics {
            exit: Exit::Ok,
            errors: Vec::new(),
            journal,
            quiet_warnings: false,
        }
    }

    fn emit(&mut self, level: Level, path: &str, message: &str) {
        let prefix = match (self.journal, level) {
            (false, _) => "",
            (true, Level::Error) => "<3>",
            (true, Level::Warning) => "<4>",
            (true, Level::Notice) => "<6>",
        };
        let line = if path.is_empty() {
            format!("{prefix}flatline: {}\n", escape_control(message))
        } else {
            format!(
                "{prefix}flatline: {}: {}\n",
                escape_control(path),
                escape_control(message)
            )
        };
        // A closed stderr must not stop the work either.
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }

    /// A problem with one file or directory: one line, and the exit status it implies.
    pub fn error(&mut self, path: &Path, message: &str, exit: Exit) {
        let path = path.to_string_lossy();
        self.emit(Level::Error, &path, message);
        self.errors.push(ErrorEntry {
            path: path.into_owned(),
            message: message.to_string(),
        });
        self.exit.raise(exit);
    }

    /// Something worth knowing that changes no exit status.
    pub fn warning(&mut self, path: &Path, message: &str) {
        if !self.quiet_warnings {
            self.emit(Level::Warning, &path.to_string_lossy(), message);
        }
    }

    pub fn notice(&mut self, message: &str) {
        if !self.quiet_warnings {
            self.emit(Level::Notice, "", message);
        }
    }

    /// A usage error: what is wrong and where to look.
    pub fn notice_usage(&mut self, message: &str) {
        self.emit(Level::Error, "", message);
        self.emit(Level::Error, "", "see 'flatline --help'");
    }

    pub fn raise(&mut self, exit: Exit) {
        self.exit.raise(exit);
    }
}

/// True when stderr is the journal: `JOURNAL_STREAM` names stderr's device and inode.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    use std::os::fd::AsFd;
    match crate::files::fstat(io::stderr().as_fd()) {
        Ok(meta) => meta.dev == dev && meta.ino == ino,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn needs_escape_finds_every_byte_that_json_escapes_wherever_it_is() {
        for byte in 0..=255u8 {
            let expected = byte < 0x20
                || byte == b'"'
                || byte == b'\\'
                || matches!(byte, 0x7f | 0xc2 | 0xd8 | 0xe2);
            for at in 0..19 {
                let mut text = vec![b'a'; 19];
                text[at] = byte;
                assert_eq!(needs_escape(&text), expected, "byte {byte:#x} at {at}");
                // Neighbours that are high bytes must not hide or fake a match.
                let mut high = vec![0xff; 19];
                high[at] = byte;
                assert_eq!(
                    needs_escape(&high),
                    expected,
                    "byte {byte:#x} at {at} in 0xff"
                );
            }
        }
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[derive(serde::Serialize)]
    struct Row<'a> {
        kind: &'a str,
        delegation_id: &'a str,
        state: &'a str,
        elapsed_since_progress_ms: Option<i64>,
        warnings: Vec<&'a str>,
    }

    fn rows() -> Vec<Row<'static>> {
        vec![
            Row {
                kind: "delegation",
                delegation_id: "d1",
                state: "stale",
                elapsed_since_progress_ms: Some(90_000),
                warnings: vec![],
            },
            Row {
                kind: "delegation",
                delegation_id: "d\t2\u{1b}",
                state: "queued",
                elapsed_since_progress_ms: None,
                warnings: vec!["clock_skew", "x"],
            },
        ]
    }

    fn render(format: Format) -> String {
        let capture = Capture::default();
        let header = Header {
            run_dirs: vec!["run".into()],
            checked_at: 0,
        };
        let mut output = Output::new(format, false, header, Box::new(capture.clone()));
        for row in rows() {
            output.record(&row).unwrap();
        }
        let summary: Vec<Value> = vec![serde_json::json!({"kind": "summary", "total": 2})];
        output.finish(&summary, &[], "2 delegations").unwrap();
        let bytes = capture.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn ndjson_is_one_object_per_line() {
        assert_eq!(
            render(Format::Ndjson),
            "{\"kind\":\"delegation\",\"delegation_id\":\"d1\",\"state\":\"stale\",\"elapsed_since_progress_ms\":90000,\"warnings\":[]}\n\
             {\"kind\":\"delegation\",\"delegation_id\":\"d\\t2\\u001b\",\"state\":\"queued\",\"elapsed_since_progress_ms\":null,\"warnings\":[\"clock_skew\",\"x\"]}\n"
        );
    }

    #[test]
    fn json_is_one_document() {
        let text = render(Format::Json);
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["run_dirs"], serde_json::json!(["run"]));
        assert_eq!(doc["checked_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(doc["records"].as_array().unwrap().len(), 2);
        assert_eq!(doc["summary"][0]["total"], 2);
        assert_eq!(doc["errors"], serde_json::json!([]));
    }

    #[test]
    fn tsv_escapes_and_unions() {
        assert_eq!(
            render(Format::Tsv),
            "kind\tdelegation_id\tstate\telapsed_since_progress_ms\twarnings\n\
             delegation\td1\tstale\t90000\t\n\
             delegation\td\\t2\\x1b\tqueued\t\tclock_skew,x\n"
        );
    }

    #[test]
    fn text_aligns_and_escapes() {
        assert_eq!(
            render(Format::Text),
            "DELEGATION  TASK_CARD  STATE   PROGRESS_AGE  PID  PROCESS  NEXT_ACTION  SUMMARY  NOTE\n\
             d1          -          stale   1m30s         -    -        -            -        -\n\
             d\\t2\\x1b    -          queued  -             -    -        -            -        clock skew, x\n\
             2 delegations\n"
        );
    }

    const HOSTILE: &str =
        "a\u{1b}]0;pwned\u{7}b\u{1b}[2Jc\u{202e}d\u{2028}e\u{85}f\u{7f}g\u{61c}h\u{2066}i";

    fn hostile_rows() -> Vec<Value> {
        vec![
            serde_json::json!({"kind": "delegation", "delegation_id": HOSTILE, "state": "stale",
                "summary": HOSTILE, "warnings": [HOSTILE]}),
            serde_json::json!({"kind": "action", "command": "sweep", "action": HOSTILE,
                "message": HOSTILE}),
            serde_json::json!({"kind": "odd", HOSTILE: HOSTILE}),
        ]
    }

    fn render_rows(format: Format, rows: &[Value]) -> String {
        let capture = Capture::default();
        let header = Header {
            run_dirs: vec![HOSTILE.into()],
            checked_at: 0,
        };
        let mut output = Output::new(format, false, header, Box::new(capture.clone()));
        for row in rows {
            output.record(row).unwrap();
        }
        let errors = [ErrorEntry {
            path: HOSTILE.into(),
            message: HOSTILE.into(),
        }];
        output.finish::<Value>(&[], &errors, "").unwrap();
        let bytes = capture.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn no_dangerous_character_reaches_any_format_raw() {
        for format in [Format::Ndjson, Format::Json, Format::Tsv, Format::Text] {
            let text = render_rows(format, &hostile_rows());
            let raw: Vec<char> = text
                .chars()
                .filter(|&c| c != '\n' && !(c == '\t' && format == Format::Tsv))
                .filter(|&c| crate::text::is_dangerous(c))
                .collect();
            assert!(raw.is_empty(), "{format:?}: {raw:?} in {text:?}");
            assert!(text.contains("pwned"), "{format:?}: {text}");
        }
        let ndjson = render_rows(Format::Ndjson, &hostile_rows());
        assert!(ndjson.contains(r"a\u001b]0;pwned\u0007b"), "{ndjson}");
        assert!(
            ndjson.contains(r"c\u202ed\u2028e\u0085f\u007fg\u061ch\u2066i"),
            "{ndjson}"
        );
        // The escapes are JSON's own: the text reads back exactly.
        for line in ndjson.lines() {
            let value: Value = serde_json::from_str(line).unwrap();
            assert!(value.to_string().contains("pwned"));
        }
        let doc: Value = serde_json::from_str(&render_rows(Format::Json, &hostile_rows())).unwrap();
        assert_eq!(doc["run_dirs"][0], HOSTILE);
        assert_eq!(doc["errors"][0]["message"], HOSTILE);
        assert_eq!(doc["records"][0]["summary"], HOSTILE);
        let tsv = render_rows(Format::Tsv, &hostile_rows());
        assert!(
            tsv.contains(r"a\x1b]0;pwned\x07b\x1b[2Jc\u202ed\u2028e\x85f\x7fg\u061ch\u2066i"),
            "{tsv}"
        );
    }

    #[test]
    fn the_hand_written_json_escapes_what_serde_path_escapes() {
        for text in [
            HOSTILE,
            "plain",
            "\u{9f}",
            "\u{200e}x",
            "ok \u{e9}\u{2014}\u{65e5}",
            "\u{2029}",
        ] {
            let mut fast = Vec::new();
            JsonWriter(&mut fast).str(text);
            let mut safe = Vec::new();
            to_writer_safe(&mut safe, text).unwrap();
            assert_eq!(fast, safe, "{text:?}");
            let back: String = serde_json::from_slice(&fast).unwrap();
            assert_eq!(back, text);
        }
        // Text without a dangerous character is written as serde_json writes it.
        let text = "quote\" back\\ tab\t \u{e9}\u{2014}\u{65e5}\u{1f642}";
        assert_eq!(
            to_string_safe(text).unwrap(),
            serde_json::to_string(text).unwrap()
        );
    }

    #[test]
    fn tsv_prints_a_new_header_when_the_fields_change() {
        let rows = [
            serde_json::json!({"kind": "delegation", "a": 1}),
            serde_json::json!({"kind": "delegation", "a": 2}),
            serde_json::json!({"kind": "fan_in", "b": "x"}),
            serde_json::json!({"kind": "delegation", "a": 3}),
        ];
        assert_eq!(
            render_rows(Format::Tsv, &rows),
            "kind\ta\ndelegation\t1\ndelegation\t2\nkind\tb\nfan_in\tx\nkind\ta\ndelegation\t3\n"
        );
    }

    fn delegation_row(id: &str, reclaim_state: &str) -> Value {
        serde_json::json!({"kind": "delegation", "delegation_id": id, "state": "stale",
            "reclaim_state": reclaim_state, "elapsed_since_progress_ms": 90_000,
            "process_id": 1, "process_identity": "reused",
            "warnings": ["invalid_process_id", "clock_skew", "wrong_type:worker_lifecycle.state"]})
    }

    #[test]
    fn text_says_reclaimed_and_notes_the_warnings_in_words() {
        let text = render_rows(
            Format::Text,
            &[
                delegation_row("d1", "reclaimed"),
                delegation_row("d2", "reclaim_needed"),
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("DELEGATION  TASK_CARD  STATE      PROGRESS_AGE  PID"),
            "{text}"
        );
        assert!(lines[0].ends_with("  NOTE"), "{text}");
        assert!(
            lines[1].starts_with("d1          -          reclaimed  1m30s         1"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("d2          -          stale      1m30s"),
            "{text}"
        );
        assert!(
            lines[1].ends_with(
                "invalid pid 1, clock skew, wrong type at worker_lifecycle.state, pid reused"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_dry_run_table_shows_the_pids_it_would_signal_and_sentences_stay_sentences() {
        let rows = [
            serde_json::json!({"kind": "action", "command": "sweep", "action": "reclaimed",
                "outcome": "dry_run", "delegation_id": "d1", "would_signal": [4242, 4243]}),
            serde_json::json!({"kind": "fan_in", "task_card_id": "c", "ready": false,
                "warnings": ["unknown_status: delegation odd has status 'paused'"]}),
        ];
        let text = render_rows(Format::Text, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("  WOULD_SIGNAL"), "{text}");
        assert!(lines[1].ends_with("  4242,4243"), "{text}");
        assert!(
            lines[4].ends_with("  unknown_status: delegation odd has status 'paused'"),
            "{text}"
        );
    }

    #[test]
    fn the_fan_in_table_shows_the_waiting_lanes() {
        let rows = [
            serde_json::json!({"kind": "fan_in", "task_card_id": "card-1", "ready": false,
            "active": 0, "waiting_lanes": ["api", "docs"]}),
        ];
        let text = render_rows(Format::Text, &rows);
        assert_eq!(
            text,
            "TASK_CARD  READY  OUTCOME  COMPLETED  FAILED  CANCELLED  ACTIVE  WAITING_LANES  SUMMARY  NOTE\n\
             card-1     false  -        -          -       -          0       api,docs       -        -\n"
        );
    }

    #[test]
    fn text_holds_at_most_a_window_of_rows_then_streams_with_its_widths() {
        let mut tables = TextTables::default();
        let mut printed = String::new();
        for i in 0..TEXT_WINDOW - 1 {
            printed.push_str(&tables.push(text_row(
                delegation_row(&format!("d{i}"), "x").as_object().unwrap(),
            )));
            assert!(tables.held() <= TEXT_WINDOW);
        }
        assert!(printed.is_empty(), "nothing before the window is full");
        printed.push_str(&tables.push(text_row(
            delegation_row("last-of-window", "x").as_object().unwrap(),
        )));
        assert_eq!(tables.held(), 0);
        assert_eq!(printed.lines().count(), TEXT_WINDOW + 1);
        let width = printed.lines().next().unwrap().find("TASK_CARD").unwrap();
        for i in 0..10_000 {
            let id = if i == 5 {
                "a-much-longer-delegation-id-than-any-in-the-window".to_string()
            } else {
                format!("e{i}")
            };
            let line = tables.push(text_row(delegation_row(&id, "x").as_object().unwrap()));
            assert_eq!(tables.held(), 0, "streamed rows are not kept");
            assert_eq!(line.lines().count(), 1);
            if i != 5 {
                assert_eq!(line.find("-  ").unwrap(), width, "{line}");
            } else {
                assert!(
                    line.starts_with(&format!("{id}  -")),
                    "a wider cell overflows: {line}"
                );
            }
        }
        // A change of kind after the window repeats a header.
        let other =
            serde_json::json!({"kind": "action", "command": "sweep", "action": "reclaimed"});
        let text = tables.push(text_row(other.as_object().unwrap()));
        assert_eq!(text, "\nCOMMAND  ACTION\nsweep    reclaimed\n");
        assert_eq!(tables.flush(), "");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(999), "999ms");
        assert_eq!(human_duration(45_000), "45s");
        assert_eq!(human_duration(90_000), "1m30s");
        assert_eq!(human_duration(7_260_000), "2h01m");
    }

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_closed_pipe_is_the_end_of_output_not_an_error() {
        let mut output = Output::new(Format::Ndjson, false, Header::default(), Box::new(Closed));
        for _ in 0..10_000 {
            output.record(&rows()[0]).unwrap();
        }
        output.finish::<Value>(&[], &[], "").unwrap();
    }
}
