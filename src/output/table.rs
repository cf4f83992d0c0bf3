//! The tsv and text formats: cells, headers, notes, and the bounded text window.

use crate::core::text::escape_control;
use crate::core::time::Millis;
use serde_json::{Map, Value};

/// A tsv cell: strings as they are with `\t`, `\n`, `\r` and `\\` escaped, and every other
/// dangerous character (`text::is_dangerous`) as `\x1b` or `\u202e`; null empty; arrays of
/// strings joined with commas; other values as JSON.
pub(super) fn tsv_cell(value: &Value) -> String {
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
pub(super) fn tsv_text(raw: &str) -> String {
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
pub(super) fn tsv_lines(columns: &mut Vec<String>, row: &Map<String, Value>) -> String {
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
pub(super) fn text_columns(kind: &str) -> &'static [&'static str] {
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

pub(super) fn text_cell(column: &str, value: Option<&Value>) -> String {
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
pub(super) fn header_name(column: &str) -> String {
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
pub(super) fn is_reclaimed(row: &Map<String, Value>) -> bool {
    row.get("reclaim_state").and_then(Value::as_str) == Some("reclaimed")
}

/// The NOTE column: a record's warnings in words (`invalid pid 1`, `pid reused`, `clock
/// skew`), joined with commas; `-` without any.
pub(super) fn note(row: &Map<String, Value>) -> String {
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
    words.extend(super::activity::notes(row));
    if words.is_empty() {
        return "-".into();
    }
    escape_control(&words.join(", ")).into_owned()
}

/// One warning code in words, with the value it is about where the record has it.
pub(super) fn warning_words(code: &str, row: &Map<String, Value>) -> String {
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
pub(super) struct TextRow {
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
pub(super) fn text_row(row: &Map<String, Value>) -> TextRow {
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

/// The ANSI colour of a state or health cell with `--color` (SPEC §13): red for what needs
/// reclaim or is unknown or dead, yellow for what is getting there, green for what is fine.
pub(super) fn state_color(column: &str, value: &str) -> Option<&'static str> {
    if column != "state" && column != "health" {
        return None;
    }
    match value {
        "stale" | "timed_out" | "unknown" | "dead" | "failed" => Some("\x1b[31m"),
        "running_quiet" | "launching" | "stalled" | "starting" | "running_busy" => Some("\x1b[33m"),
        "running_active" | "returned" | "healthy" => Some("\x1b[32m"),
        "reclaimed" | "cancelled" => Some("\x1b[36m"),
        _ => None,
    }
}

/// A table whose columns and widths are fixed.
#[derive(Debug, Clone)]
pub(super) struct FixedTable {
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

    fn line(&self, cells: &[&str], color: bool, out: &mut String) {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            match color
                .then(|| state_color(self.columns.get(i).map_or("", String::as_str), cell))
                .flatten()
            {
                Some(code) => {
                    line.push_str(code);
                    line.push_str(cell);
                    line.push_str("\x1b[0m");
                }
                None => line.push_str(cell),
            }
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
        self.line(&cells, false, out);
    }

    fn row(&self, row: &TextRow, color: bool, out: &mut String) {
        let cells: Vec<&str> = self.columns.iter().map(|c| row.cell(c)).collect();
        self.line(&cells, color, out);
    }
}

/// The text tables of one output: the first `TEXT_WINDOW` rows are kept and printed as one
/// aligned table per kind (in order of first appearance); after them every row is printed as
/// it comes, with the widths its table got from the window, under a repeated header when the
/// kind changes. Memory stays flat in the number of records.
#[derive(Debug, Default)]
pub(super) struct TextTables {
    window: Vec<TextRow>,
    /// Set once the window was printed: rows are streamed from then on.
    fixed: Option<Vec<FixedTable>>,
    /// The table of the row printed last, and whether anything was printed.
    last: Option<String>,
    /// `--color`: states and healths coloured (SPEC §13).
    pub(super) color: bool,
}

impl TextTables {
    /// Takes one row; returns the text to print now (empty while the window fills).
    pub(super) fn push(&mut self, row: TextRow) -> String {
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
                table.row(&row, self.color, &mut out);
            }
        }
        out
    }

    /// Prints the window (if not yet printed) and fixes the widths.
    pub(super) fn flush(&mut self) -> String {
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
                table.row(row, self.color, &mut out);
            }
            self.last = Some(name.to_string());
            tables.push(table);
        }
        self.fixed = Some(tables);
        out
    }

    /// Rows held right now (at most `TEXT_WINDOW`).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.window.len()
    }
}
