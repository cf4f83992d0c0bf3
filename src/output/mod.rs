//! output: records on stdout (ndjson, json, tsv, text) and problems on stderr.
//!
//! stdout is for programs: ndjson streams one compact object per record through a locked
//! `BufWriter`, so memory does not grow with the number of records; json streams its
//! `records` array the same way. tsv and text need every record before the first line (the
//! header is the union of the fields; columns are aligned) and are for small outputs. A
//! closed stdout (`| head`) ends printing quietly; the work goes on.
//! stderr is for people: one line per problem, `flatline: PATH: what is wrong`, with
//! journald priority prefixes when stderr is the journal.

pub mod activity;
mod diag;
mod format;
mod json;
mod metrics;
mod prometheus;
mod records;
pub mod schema;
mod table;
pub(crate) mod watch;

pub use diag::{Diagnostics, stderr_is_journal, stdout_failed};
pub use format::Format;
pub use json::{JsonWriter, PathText, Ts, WriteJson, to_string_safe, to_writer_safe};
pub use metrics::{RunMetrics, add_run_facts};
pub use prometheus::Metrics;
pub use records::*;

use crate::core::time::Millis;
use serde::ser::Serialize;
#[cfg(test)]
use serde_json::Map;
use serde_json::Value;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use table::{TextTables, text_row, tsv_lines};

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
    /// `capture`: the buffer its ndjson records go to, read back by `into_rows`.
    captured: Option<SharedBuffer>,
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
    /// Everything written so far, leaving the buffer empty.
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

/// What a command's configuration says about its output (`cli::config::Config` turns into
/// one, so output does not name the command line).
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub format: Format,
    pub quiet: bool,
    /// `--output`: a file, or stdout when absent or `-`.
    pub file: Option<&'a Path>,
    pub now: Millis,
    /// `--color`, resolved: colour states in text tables.
    pub color: bool,
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
            captured: None,
            tables: TextTables::default(),
            tsv_columns: Vec::new(),
            header,
            line: Vec::with_capacity(1024),
            file: None,
        }
    }

    /// The output of a command over these runs (the json header names them).
    pub fn for_runs<'a>(config: impl Into<Settings<'a>>, runs: &[impl AsRef<Path>]) -> Output {
        let config = config.into();
        let header = Header {
            run_dirs: runs
                .iter()
                .map(|run| run.as_ref().to_string_lossy().into_owned())
                .collect(),
            checked_at: config.now,
        };
        Output::for_config(config, header)
    }

    /// The output a command's configuration asks for: stdout (also `--output -`), or
    /// `--output FILE`.
    pub fn for_config<'a>(config: impl Into<Settings<'a>>, header: Header) -> Output {
        let config = config.into();
        match config.file {
            Some(path) if path.as_os_str() != "-" => {
                let buffer = SharedBuffer::default();
                let mut output = Output::new(
                    config.format,
                    config.quiet,
                    header,
                    Box::new(buffer.clone()),
                );
                output.file = Some((path.to_path_buf(), buffer));
                output
            }
            _ => Output::stdout(config.format, config.quiet, header).colored(config.color),
        }
    }

    /// Records as ndjson into `writer`, whatever the command line asked for: for a command
    /// or a phase that reads them back (`read_ndjson`) to print its own document.
    pub fn ndjson(writer: Box<dyn Write>) -> Output {
        Output::new(Format::Ndjson, false, Header::default(), writer)
    }

    /// `ndjson` into a buffer of its own, read back by `into_rows`.
    #[cfg(test)]
    pub fn capture() -> Output {
        let buffer = SharedBuffer::default();
        let mut output = Output::ndjson(Box::new(buffer.clone()));
        output.captured = Some(buffer);
        output
    }

    /// The records a `capture` output was given, as JSON objects.
    #[cfg(test)]
    pub fn into_rows(mut self) -> Vec<Map<String, Value>> {
        match self.captured.take() {
            Some(buffer) if self.flush().is_ok() => read_ndjson(&buffer.take()),
            _ => Vec::new(),
        }
    }

    /// Hands what is buffered to the writer (`finish` does it too).
    #[cfg(test)]
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// States and healths coloured in text tables (`--color`, resolved in `cli::config`).
    pub fn colored(mut self, color: bool) -> Output {
        self.tables.color = color;
        self
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
                    if self.format == Format::Tsv {
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
        if result.is_ok() && self.captured.is_none() {
            add_schema_version(&mut line);
        }
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
        self,
        summary: &[S],
        errors: &[ErrorEntry],
        tally: &str,
    ) -> io::Result<()> {
        self.finish_with(summary, errors, tally)
    }

    /// `finish` with summary rows made as they are printed: a caller with many rows keeps
    /// their counts, not the rows themselves.
    pub fn finish_with<S: Serialize>(
        mut self,
        summary: impl IntoIterator<Item = S>,
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
                    self.write(b"],\"summary\":[")?;
                    self.summary_rows(summary)?;
                    let mut tail = b"],\"errors\":".to_vec();
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
            if crate::exit::cut_short() {
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
}

impl Output {
    /// The json document's `summary` rows, comma-separated, each written as it comes (one
    /// row in memory at a time, SPEC §8), with its `schema_version` like every record.
    fn summary_rows<S: Serialize>(&mut self, rows: impl IntoIterator<Item = S>) -> io::Result<()> {
        let mut line = std::mem::take(&mut self.line);
        let mut result = Ok(());
        for (i, row) in rows.into_iter().enumerate() {
            line.clear();
            if i > 0 {
                line.push(b',');
            }
            result = to_writer_safe(&mut line, &row).map_err(io::Error::from);
            if result.is_err() {
                break;
            }
            add_schema_version(&mut line);
            result = self.write(&line);
            if result.is_err() {
                break;
            }
        }
        self.line = line;
        result
    }
}

/// The version of the records' schema (SPEC §7): it changes only on a removal, a rename or
/// a type change of a field.
pub const SCHEMA_VERSION: u64 = 1;

/// Every record printed as JSON (ndjson lines, the json document's `records` and `summary`)
/// ends with `"schema_version":1`: one rule, applied here to the record's compact JSON,
/// so no record type carries the field itself. Captured records (`Output::capture`) are
/// read back and printed again, and get it then. Text and tsv do not show it.
fn add_schema_version(line: &mut Vec<u8>) {
    if line.last() != Some(&b'}') {
        return;
    }
    line.pop();
    if line.last() != Some(&b'{') {
        line.push(b',');
    }
    line.extend_from_slice(b"\"schema_version\":1}");
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
    let dir = crate::fs::Dir::open(parent)?;
    crate::fs::write_atomic(&dir, name, bytes, 0o644)
        .map_err(|error| io::Error::other(format!("{}: {error}", path.display())))
}

/// The records of an ndjson output (`Output::ndjson`), one JSON object per line.
#[cfg(test)]
pub fn read_ndjson(bytes: &[u8]) -> Vec<Map<String, Value>> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Map<String, Value>>()
        .map_while(Result::ok)
        .collect()
}

/// Writes a whole text to stdout at once; a closed pipe is not an error.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests;
