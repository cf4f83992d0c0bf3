//! workers: heartbeat workers of the team layout, read in the same pass as the delegations
//! (SPEC §1.2, §5), and their records in `status`.
//!
//! `RUN_DIR/workers/<name>/worker-spec.json` names the worker's heartbeat, inbox and outbox.
//! Those paths are untrusted and go through `fs::open_named` like event streams: beneath
//! the run, no symlinks, regular files of the spec's owner or root. Inboxes and outboxes are
//! counted streaming, whatever their size.

use crate::cli::config::Config;
pub use crate::core::health::WorkerTally;
use crate::core::health::{self, Beat, WorkerView};
use crate::core::time::Millis;
use crate::exit::Exit;
use crate::fs::{self, MAX_DOCUMENT_BYTES, NamedPathPolicy, ReadError};
use crate::interrupt::Stop;
use crate::model::{self, WorkerSpec};
use crate::output::{Diagnostics, PathText, Ts};
use crate::shell::runs::{self as scan, Run};
use serde::Serialize;
use std::borrow::Cow;
use std::ffi::OsStr;
#[cfg(test)]
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One worker, read and looked at.
#[derive(Debug)]
pub struct Worker {
    pub spec_path: PathBuf,
    /// The name of the worker's directory: the worker is its directory (SPEC §5).
    pub worker_id: String,
    /// The spec's `name` when it differs from the directory's (warning `spec_name_mismatch`).
    pub spec_name: Option<String>,
    pub role: Option<String>,
    pub view: WorkerView,
    pub inbox_count: Option<u64>,
    pub outbox_count: Option<u64>,
    /// Paths the spec names that do not exist: `heartbeat`, `inbox` or `outbox`, and the
    /// path as resolved.
    pub missing_paths: Vec<(&'static str, PathBuf)>,
}

/// A worker record (SPEC §5, §7).
#[derive(Debug, Serialize)]
pub struct WorkerRecord<'a> {
    pub kind: &'static str,
    pub run_dir: PathText<'a>,
    pub path: PathText<'a>,
    pub worker_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_name: Option<&'a str>,
    pub role: Option<&'a str>,
    pub health: &'static str,
    pub heartbeat_status: Option<&'a str>,
    pub last_heartbeat: Ts,
    pub heartbeat_age_ms: Option<Millis>,
    pub inbox_count: Option<u64>,
    pub outbox_count: Option<u64>,
    pub message: &'a str,
    pub needs_attention: bool,
    pub warnings: &'a [Cow<'static, str>],
}

impl<'a> WorkerRecord<'a> {
    pub fn new(run: &'a Run, worker: &'a Worker) -> WorkerRecord<'a> {
        WorkerRecord {
            kind: "worker",
            run_dir: PathText(&run.path),
            path: PathText(&worker.spec_path),
            worker_id: &worker.worker_id,
            spec_name: worker.spec_name.as_deref(),
            role: worker.role.as_deref(),
            health: worker.view.health.as_str(),
            heartbeat_status: worker.view.heartbeat_status.as_deref(),
            last_heartbeat: Ts(worker.view.last_heartbeat),
            heartbeat_age_ms: worker.view.heartbeat_age_ms,
            inbox_count: worker.inbox_count,
            outbox_count: worker.outbox_count,
            message: &worker.view.message,
            needs_attention: worker.view.health.needs_attention(),
            warnings: &worker.view.warnings,
        }
    }
}

/// Non-blank lines, counted chunk by chunk.
#[derive(Debug, Default)]
struct LineCounter {
    count: u64,
    /// The current line has a byte that is not blank.
    content: bool,
}

impl LineCounter {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match byte {
                b'\n' => {
                    self.count += u64::from(self.content);
                    self.content = false;
                }
                b' ' | b'\t' | b'\r' | 0x0b | 0x0c => {}
                _ => self.content = true,
            }
        }
    }

    fn finish(self) -> u64 {
        self.count + u64::from(self.content)
    }
}

/// Reads `reader` to its end through `buf` into `counter`; returns how many bytes it read.
#[cfg(test)]
fn feed_all(
    counter: &mut LineCounter,
    mut reader: impl Read,
    buf: &mut [u8],
) -> std::io::Result<u64> {
    let mut read = 0u64;
    loop {
        match reader.read(buf) {
            Ok(0) => return Ok(read),
            Ok(n) => {
                counter.feed(&buf[..n]);
                read += n as u64;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// Counts the non-blank lines of a reader in one bounded pass.
#[cfg(test)]
pub fn count_lines(reader: impl Read) -> std::io::Result<u64> {
    let mut counter = LineCounter::default();
    feed_all(&mut counter, reader, &mut vec![0u8; 64 * 1024])?;
    Ok(counter.finish())
}

/// `count_lines` for a file, skipping its holes: a hole reads as NUL bytes (content, no
/// newline), so it is counted as such without being read, and a sparse file costs only its
/// data (a 2 TB sparse inbox is not 2 TB of reading).
#[cfg(test)]
pub fn count_file_lines(file: std::fs::File) -> std::io::Result<u64> {
    count_file_lines_bounded(&file, u64::MAX).map(|(count, _)| count)
}

/// `count_file_lines` over at most the first `limit` bytes; the flag says whether the file
/// is longer (the count is then of its first `limit` bytes).
pub fn count_file_lines_bounded(file: &std::fs::File, limit: u64) -> std::io::Result<(u64, bool)> {
    let size = file.metadata()?.len();
    let mut counter = LineCounter::default();
    let mut buf = vec![0u8; 64 * 1024];
    fs::read_range(file, 0, size.min(limit), &mut buf, |piece| match piece {
        fs::Piece::Data(bytes) => counter.feed(bytes),
        fs::Piece::Hole(len) => counter.content |= len > 0,
    })?;
    Ok((counter.finish(), size > limit))
}

/// The heartbeat of a worker: read when present, `Missing` when not, `Unreadable` (and
/// reported) when it cannot be read safely.
fn read_heartbeat<'b>(
    run: &Run,
    path: &Path,
    policy: NamedPathPolicy,
    spec_mtime_ms: Millis,
    buf: &'b mut Vec<u8>,
    spec_path: &Path,
    diag: &mut Diagnostics,
) -> Beat<'b> {
    let named = match fs::open_named(&run.root, path, policy) {
        Ok(named) => named,
        Err(ReadError::NotFound) => return Beat::Missing { spec_mtime_ms },
        Err(error) => {
            report_path(diag, spec_path, "heartbeat", path, &error.to_string());
            return Beat::Unreadable;
        }
    };
    let result = named
        .open_for_read(&run.root, path, policy)
        .and_then(|mut file| fs::read_bounded(&mut file, named.meta.size, MAX_DOCUMENT_BYTES, buf));
    match result {
        Ok(()) => Beat::Read {
            bytes: buf,
            mtime_ms: named.meta.mtime_ms,
        },
        Err(error) => {
            report_path(diag, spec_path, "heartbeat", path, &error.to_string());
            Beat::Unreadable
        }
    }
}

/// What counting an inbox or outbox found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueCount {
    /// Non-blank lines of the file (of its first `--max-stream-read` bytes when `truncated`).
    Counted {
        count: u64,
        truncated: bool,
    },
    Missing,
    /// It could not be read safely (reported).
    Unreadable,
}

/// Counts the lines of an inbox or outbox, reading at most `limit` bytes of it.
fn count_queue_bounded(
    run: &Run,
    path: &Path,
    policy: NamedPathPolicy,
    limit: u64,
    what: &str,
    spec_path: &Path,
    diag: &mut Diagnostics,
) -> QueueCount {
    let result = fs::open_named(&run.root, path, policy).and_then(|named| {
        let file = named.open_for_read(&run.root, path, policy)?;
        count_file_lines_bounded(&file, limit).map_err(ReadError::Io)
    });
    match result {
        Ok((count, truncated)) => QueueCount::Counted { count, truncated },
        Err(ReadError::NotFound) => QueueCount::Missing,
        Err(error) => {
            report_path(diag, spec_path, what, path, &error.to_string());
            QueueCount::Unreadable
        }
    }
}

/// Where a path of a worker spec leads, relative to the run directory when relative: from
/// the worker's own directory (SPEC §5). `..` is folded lexically, which is what the
/// kernel would do, since no component may be a symlink; one that climbs above the run
/// directory stays and is refused by the confined open.
pub fn spec_path_in_run(worker_dir: &Path, named: &Path) -> PathBuf {
    use std::path::Component;
    if named.is_absolute() {
        return named.to_path_buf();
    }
    let mut parts: Vec<Component<'_>> = Vec::new();
    for component in worker_dir.components().chain(named.components()) {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match parts.last() {
                Some(Component::Normal(_)) => {
                    parts.pop();
                }
                _ => parts.push(component),
            },
            other => parts.push(other),
        }
    }
    parts.iter().collect()
}

/// `heartbeat_missing`, `inbox_missing` or `outbox_missing` (SPEC §5).
pub(crate) fn missing_warning(what: &str) -> &'static str {
    match what {
        "heartbeat" => "heartbeat_missing",
        "inbox" => "inbox_missing",
        _ => "outbox_missing",
    }
}

/// `inbox_truncated` or `outbox_truncated` (SPEC §5).
fn truncated_warning(what: &str) -> &'static str {
    match what {
        "inbox" => "inbox_truncated",
        _ => "outbox_truncated",
    }
}

fn report_path(diag: &mut Diagnostics, spec_path: &Path, what: &str, path: &Path, error: &str) {
    diag.error(
        spec_path,
        &format!("{what} {}: {error}", fs::display_path(path)),
        Exit::FileProblem,
    );
}

/// Reads every worker of `run` once, in name order, and calls `visit` for each. A worker
/// directory without a spec, or with one that does not parse, is reported (exit 3).
pub fn for_each_worker(
    run: &Run,
    config: &Config,
    diag: &mut Diagnostics,
    stop: &Stop,
    mut visit: impl FnMut(Worker, &mut Diagnostics) -> Result<(), Exit>,
) -> Result<(), Exit> {
    let Some(listing) = scan::list_child(run, "workers", diag) else {
        return Ok(());
    };
    let mut spec_buf = Vec::with_capacity(4096);
    let mut beat_buf = Vec::with_capacity(1024);
    for entry in &listing.entries {
        if entry.name.as_bytes().starts_with(b".") {
            continue;
        }
        if let Some(exit) = stop.check() {
            return Err(exit);
        }
        let dir_path = listing.dir.join(entry.name);
        let Some(worker_dir) = open_worker_dir(&listing.dir, &entry, &dir_path, diag) else {
            continue;
        };
        let spec_path = dir_path.join("worker-spec.json");
        let Some(spec) = read_spec(&worker_dir, &dir_path, &spec_path, &mut spec_buf, diag) else {
            continue;
        };
        let worker = read_worker(run, config, &entry, spec_path, spec, &mut beat_buf, diag);
        visit(worker, diag)?;
    }
    Ok(())
}

/// The heartbeat, queues and warnings of one worker whose spec was read.
fn read_worker(
    run: &Run,
    config: &Config,
    entry: &fs::Entry,
    spec_path: PathBuf,
    (spec_meta, spec): (fs::FileMeta, WorkerSpec<'_>),
    beat_buf: &mut Vec<u8>,
    diag: &mut Diagnostics,
) -> Worker {
    let dir_name = entry.name.to_string_lossy();
    let worker_dir = PathBuf::from("workers").join(entry.name);
    // A path the spec names (`true`), or the default file in the worker's directory.
    let named = |field: Option<&str>, file: &str| match field.filter(|p| !p.is_empty()) {
        Some(path) => (spec_path_in_run(&worker_dir, Path::new(path)), true),
        None => (worker_dir.join(file), false),
    };
    let policy = NamedPathPolicy {
        allow_outside: config.allow_outside_paths,
        owner: crate::fs::guard_owner(&spec_meta),
    };
    let mut missing_paths = Vec::new();
    let (beat_path, beat_named) = named(spec.heartbeat.str(), "heartbeat.json");
    let beat = read_heartbeat(
        run,
        &beat_path,
        policy,
        spec_meta.mtime_ms,
        beat_buf,
        &spec_path,
        diag,
    );
    if beat_named && matches!(beat, Beat::Missing { .. }) {
        missing_paths.push(("heartbeat", beat_path));
    }
    let mut view = health::health(&beat, config.now, &config.heartbeat);
    let mut queue = |field: Option<&str>, file: &str, what: &'static str| {
        let (path, is_named) = named(field, file);
        let counted = count_queue_bounded(
            run,
            &path,
            policy,
            config.max_stream_read,
            what,
            &spec_path,
            diag,
        );
        match counted {
            QueueCount::Counted { count, truncated } => {
                if truncated {
                    view.warnings.push(truncated_warning(what).into());
                }
                Some(count)
            }
            // A default file that is not there yet is an empty queue; a named one that
            // is not there is a typo until it appears, never an empty queue.
            QueueCount::Missing if !is_named => Some(0),
            QueueCount::Missing => {
                missing_paths.push((what, path));
                None
            }
            QueueCount::Unreadable => None,
        }
    };
    let inbox_count = queue(spec.inbox.str(), "inbox.jsonl", "inbox");
    let outbox_count = queue(spec.outbox.str(), "outbox.jsonl", "outbox");
    for (what, _) in &missing_paths {
        view.warnings.push(missing_warning(what).into());
    }
    let spec_name = spec
        .name
        .str()
        .filter(|name| !name.is_empty() && *name != dir_name)
        .map(|name| crate::core::text::preview(name, 128));
    if spec_name.is_some() {
        view.warnings.push("spec_name_mismatch".into());
    }
    Worker {
        spec_path,
        worker_id: dir_name.into_owned(),
        spec_name,
        role: spec.role.str().map(|r| crate::core::text::preview(r, 128)),
        view,
        inbox_count,
        outbox_count,
        missing_paths,
    }
}

/// Opens a worker directory of `workers/` without following a symlink; `None` for an entry
/// that is not a worker directory (a problem is reported).
fn open_worker_dir(
    dir: &fs::Dir,
    entry: &fs::Entry,
    dir_path: &Path,
    diag: &mut Diagnostics,
) -> Option<fs::Dir> {
    match entry.kind {
        fs::EntryKind::Dir | fs::EntryKind::Unknown | fs::EntryKind::Symlink => {
            match dir.open_child(entry.name) {
                Ok(Some(dir)) => Some(dir),
                Ok(None) => None,
                Err(error) if error.raw_os_error() == Some(libc::ENOTDIR) => None,
                Err(error) => {
                    let message = if error.raw_os_error() == Some(libc::ELOOP) {
                        "is a symlink, refused".to_string()
                    } else {
                        fs::io_message(&error)
                    };
                    diag.error(dir_path, &message, Exit::FileProblem);
                    None
                }
            }
        }
        // A stray file next to the worker directories is not a worker.
        _ => None,
    }
}

/// Reads and parses `worker-spec.json` of a worker directory; wrong types are reported and
/// the spec kept, a missing or unparsable spec is reported and `None`.
fn read_spec<'b>(
    dir: &fs::Dir,
    dir_path: &Path,
    spec_path: &Path,
    buf: &'b mut Vec<u8>,
    diag: &mut Diagnostics,
) -> Option<(fs::FileMeta, WorkerSpec<'b>)> {
    let spec_meta = match dir.read_file(OsStr::new("worker-spec.json"), MAX_DOCUMENT_BYTES, buf) {
        Ok(meta) => meta,
        Err(ReadError::NotFound) => {
            diag.error(
                dir_path,
                "a worker directory without worker-spec.json",
                Exit::FileProblem,
            );
            return None;
        }
        Err(error) => {
            diag.error(spec_path, &error.to_string(), Exit::FileProblem);
            return None;
        }
    };
    let spec: WorkerSpec<'_> = match model::parse_object(buf) {
        Ok(spec) => spec,
        Err(error) => {
            diag.error(spec_path, &error.to_string(), Exit::FileProblem);
            return None;
        }
    };
    let mut wrong = Vec::new();
    spec.wrong_types(&mut String::new(), &mut wrong);
    if !wrong.is_empty() {
        let problems: Vec<String> = wrong
            .iter()
            .map(|w| format!("{} is {}, expected {}", w.path, w.found, w.expected))
            .collect();
        diag.error(spec_path, &problems.join("; "), Exit::FileProblem);
    }
    Some((spec_meta, spec))
}

/// A `--summary` row for the workers of a run.
#[derive(Debug)]
pub struct WorkerSummary {
    pub run_dir: String,
    pub tally: WorkerTally,
}

impl Serialize for WorkerSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.tally.fields();
        let mut map = serializer.serialize_map(Some(3 + fields.len()))?;
        map.serialize_entry("kind", "summary")?;
        map.serialize_entry("scope", "workers")?;
        map.serialize_entry("run_dir", &self.run_dir)?;
        for (name, count) in fields {
            map.serialize_entry(name, &count)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests;
