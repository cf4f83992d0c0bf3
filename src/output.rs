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
            let _ = serde_json::to_writer(&mut *self.0, text);
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

/// Whether JSON text needs an escape: a `"`, a `\\` or a control character (below 0x20).
/// Eight bytes at a time (the classic "has a zero byte" and "has a byte less than n" tests).
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
        if zero_in(quote) | zero_in(backslash) | control != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
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
    /// tsv and text: every record, kept until `finish`.
    rows: Vec<Map<String, Value>>,
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

    /// The output a command's configuration asks for: stdout, or `--output FILE`.
    pub fn for_config(config: &crate::config::Config, header: Header) -> Output {
        match &config.output {
            Some(path) => {
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
            None => Output::stdout(config.format, config.quiet, header),
        }
    }

    /// Records kept as JSON objects instead of printed (`into_rows`), for a command that
    /// prints its own document.
    pub fn capture() -> Output {
        Output::new(Format::Tsv, false, Header::default(), Box::new(io::sink()))
    }

    /// The records kept by a capturing (or tsv/text) output.
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
        serde_json::to_writer(&mut head, &self.header.run_dirs)?;
        head.extend_from_slice(b",\"checked_at\":");
        serde_json::to_writer(&mut head, &Ts(Some(self.header.checked_at)))?;
        head.extend_from_slice(b",\"records\":[");
        self.write(&head)
    }

    /// Prints one record (any `Serialize` struct with a `kind` field first).
    pub fn record<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        self.emit(record, |line| Ok(serde_json::to_writer(line, record)?))
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
                    self.rows.push(map);
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
                    serde_json::to_writer(&mut tail, summary)?;
                    tail.extend_from_slice(b",\"errors\":");
                    serde_json::to_writer(&mut tail, errors)?;
                    tail.extend_from_slice(b"}\n");
                    self.write(&tail)?;
                }
                Format::Tsv => {
                    let text = render_tsv(&self.rows);
                    self.write(text.as_bytes())?;
                }
                Format::Prometheus => {}
                Format::Text => {
                    let mut text = render_text(&self.rows);
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

    /// True when records are held until `finish` (tsv, text).
    pub fn buffers(&self) -> bool {
        matches!(self.format, Format::Tsv | Format::Text)
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

/// A tsv cell: strings as they are with `\t`, `\n`, `\r` and `\\` escaped; null empty;
/// arrays of strings joined with commas; other values as JSON.
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
    let mut out = String::with_capacity(raw.len());
    for ch in raw.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ch => out.push(ch),
        }
    }
    out
}

fn render_tsv(rows: &[Map<String, Value>]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let mut out = String::new();
    if columns.is_empty() {
        return out;
    }
    out.push_str(&columns.join("\t"));
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|column| row.get(*column).map(tsv_cell).unwrap_or_default())
            .collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
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
        ],
        "action" => &[
            "command",
            "action",
            "outcome",
            "delegation_id",
            "worker_id",
            "status",
            "termination",
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
            "summary",
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
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
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

fn header_name(column: &str) -> String {
    let name = match column {
        "elapsed_since_progress_ms" => "progress age",
        "process_id" => "pid",
        "process_identity" => "process",
        "delegation_id" => "delegation",
        "task_card_id" => "task card",
        other => other,
    };
    name.to_uppercase()
}

fn render_text(rows: &[Map<String, Value>]) -> String {
    // One table per kind (and scope), in order of first appearance.
    let table_of = |row: &Map<String, Value>| -> String {
        let kind = row.get("kind").and_then(Value::as_str).unwrap_or("");
        match row.get("scope").and_then(Value::as_str) {
            Some(scope) => format!("{kind}:{scope}"),
            None => kind.to_string(),
        }
    };
    let mut kinds: Vec<String> = Vec::new();
    for row in rows {
        let kind = table_of(row);
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let mut out = String::new();
    for (index, kind) in kinds.iter().enumerate() {
        let group: Vec<&Map<String, Value>> =
            rows.iter().filter(|row| table_of(row) == *kind).collect();
        let mut columns: Vec<String> = text_columns(kind).iter().map(|c| c.to_string()).collect();
        if columns.is_empty() {
            for row in &group {
                for key in row.keys().filter(|k| *k != "kind") {
                    if !columns.contains(key) {
                        columns.push(key.clone());
                    }
                }
            }
        }
        // Action records of different commands have different fields: a column that no
        // record of this table has is left out.
        if kind == "action" {
            columns.retain(|c| {
                group
                    .iter()
                    .any(|row| row.get(c).is_some_and(|v| !v.is_null()))
            });
        }
        let table: Vec<Vec<String>> = group
            .iter()
            .map(|row| columns.iter().map(|c| text_cell(c, row.get(c))).collect())
            .collect();
        let headers: Vec<String> = columns.iter().map(|c| header_name(c)).collect();
        let widths: Vec<usize> = (0..columns.len())
            .map(|i| {
                table
                    .iter()
                    .map(|row| row[i].chars().count())
                    .chain(std::iter::once(headers[i].chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        if index > 0 {
            out.push('\n');
        }
        for row in std::iter::once(&headers).chain(table.iter()) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
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
            let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
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
             delegation\td\\t2\u{1b}\tqueued\t\tclock_skew,x\n"
        );
    }

    #[test]
    fn text_aligns_and_escapes() {
        assert_eq!(
            render(Format::Text),
            "DELEGATION  TASK CARD  STATE   PROGRESS AGE  PID  PROCESS  NEXT_ACTION  SUMMARY\n\
             d1          -          stale   1m30s         -    -        -            -\n\
             d\\t2\\u{1b}  -          queued  -             -    -        -            -\n\
             2 delegations\n"
        );
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
