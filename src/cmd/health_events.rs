//! team: heartbeat workers of the team layout, read in the same pass as the delegations
//! (SPEC §1.2, §5), their records in `status`, and `flatline health-events`.
//!
//! `RUN_DIR/workers/<name>/worker-spec.json` names the worker's heartbeat, inbox and outbox.
//! Those paths are untrusted and go through `fs::open_named` like event streams: beneath
//! the run, no symlinks, regular files of the spec's owner or root. Inboxes and outboxes are
//! counted streaming, whatever their size.

use crate::config::Config;
use crate::core::health::{self, Beat, Health, WorkerView};
use crate::core::time::Millis;
use crate::exit::Exit;
use crate::fs::{self, MAX_DOCUMENT_BYTES, NamedPathPolicy, ReadError};
use crate::model::{self, WorkerSpec};
use crate::output::{Diagnostics, Output, PathText, Ts};
use crate::shell::runs::{self as scan, Run};
use crate::shell::state::{self as runstate, RunState};
use crate::stop::Stop;
use serde::Serialize;
use std::borrow::Cow;
use std::ffi::OsStr;
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
pub fn count_lines(reader: impl Read) -> std::io::Result<u64> {
    let mut counter = LineCounter::default();
    feed_all(&mut counter, reader, &mut vec![0u8; 64 * 1024])?;
    Ok(counter.finish())
}

/// `count_lines` for a file, skipping its holes: a hole reads as NUL bytes (content, no
/// newline), so it is counted as such without being read, and a sparse file costs only its
/// data (a 2 TB sparse inbox is not 2 TB of reading).
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
fn missing_warning(what: &str) -> &'static str {
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
        let dir_path = listing.dir.join(&entry.name);
        let worker_dir = match entry.kind {
            fs::EntryKind::Dir | fs::EntryKind::Unknown | fs::EntryKind::Symlink => {
                match listing.dir.open_child(&entry.name) {
                    Ok(Some(dir)) => dir,
                    Ok(None) => continue,
                    Err(error) if error.raw_os_error() == Some(libc::ENOTDIR) => continue,
                    Err(error) => {
                        let message = if error.raw_os_error() == Some(libc::ELOOP) {
                            "is a symlink, refused".to_string()
                        } else {
                            fs::io_message(&error)
                        };
                        diag.error(&dir_path, &message, Exit::FileProblem);
                        continue;
                    }
                }
            }
            // A stray file next to the worker directories is not a worker.
            _ => continue,
        };
        let spec_path = dir_path.join("worker-spec.json");
        let spec_meta = match worker_dir.read_file(
            OsStr::new("worker-spec.json"),
            MAX_DOCUMENT_BYTES,
            &mut spec_buf,
        ) {
            Ok(meta) => meta,
            Err(ReadError::NotFound) => {
                diag.error(
                    &dir_path,
                    "a worker directory without worker-spec.json",
                    Exit::FileProblem,
                );
                continue;
            }
            Err(error) => {
                diag.error(&spec_path, &error.to_string(), Exit::FileProblem);
                continue;
            }
        };
        let spec: WorkerSpec<'_> = match model::parse_object(&spec_buf) {
            Ok(spec) => spec,
            Err(error) => {
                diag.error(&spec_path, &error.to_string(), Exit::FileProblem);
                continue;
            }
        };
        let mut wrong = Vec::new();
        spec.wrong_types(&mut String::new(), &mut wrong);
        if !wrong.is_empty() {
            let problems: Vec<String> = wrong
                .iter()
                .map(|w| format!("{} is {}, expected {}", w.path, w.found, w.expected))
                .collect();
            diag.error(&spec_path, &problems.join("; "), Exit::FileProblem);
        }
        let dir_name = entry.name.to_string_lossy();
        let worker_dir = PathBuf::from("workers").join(&entry.name);
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
            &mut beat_buf,
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
        let worker = Worker {
            spec_path,
            worker_id: dir_name.into_owned(),
            spec_name,
            role: spec.role.str().map(|r| crate::core::text::preview(r, 128)),
            view,
            inbox_count,
            outbox_count,
            missing_paths,
        };
        visit(worker, diag)?;
    }
    Ok(())
}

/// Counts of one workers summary row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerTally {
    pub total: u64,
    pub by_health: [u64; 6],
}

impl WorkerTally {
    pub fn add(&mut self, health: Health) {
        self.total += 1;
        self.by_health[health as usize] += 1;
    }

    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        let mut fields = vec![("total", self.total)];
        for (name, count) in health::HEALTHS.iter().zip(self.by_health) {
            fields.push((name, count));
        }
        fields
    }
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

/// An action record of `health-events`: one appended event.
#[derive(Debug, Serialize)]
pub struct EventRecord<'a> {
    pub kind: &'static str,
    pub command: &'static str,
    pub action: &'static str,
    pub outcome: &'static str,
    pub run_dir: PathText<'a>,
    pub path: PathText<'a>,
    pub worker_id: &'a str,
    pub event_id: &'a str,
    pub previous_health: Option<&'static str>,
    pub health: &'static str,
    pub message: &'a str,
}

/// The run's id for events: `--run-id`, else the run directory's name.
fn run_id(run: &Run, config: &Config) -> String {
    config.run_id.clone().unwrap_or_else(|| {
        run.root
            .real_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| run.path.to_string_lossy().into_owned())
    })
}

/// The run's stored state (`.flatline/state.json`) and the workers' health of the last run
/// (its `workers` section; `None` before the first run).
fn read_state(
    state_dir: Option<&fs::Dir>,
    run: &Run,
    diag: &mut Diagnostics,
) -> (RunState, Option<Vec<(String, Health)>>) {
    let Some(dir) = state_dir else {
        return (RunState::default(), None);
    };
    let state = match RunState::read(dir) {
        Ok(state) => state,
        Err(error) => {
            diag.error(
                &runstate::path_of(&run.path),
                &format!("{error}; starting a new baseline"),
                Exit::FileProblem,
            );
            return (RunState::default(), None);
        }
    };
    let workers = match state.section(health::STATE_SECTION) {
        None => None,
        Some(section) => match health::parse_state(section) {
            Some(workers) => Some(workers),
            None => {
                diag.error(
                    &runstate::path_of(&run.path),
                    "its workers section is not an object; starting a new baseline",
                    Exit::FileProblem,
                );
                None
            }
        },
    };
    (state, workers)
}

/// The section of `.flatline/state.json` that remembers the paths worker specs name and
/// that do not exist: `{worker_id: ["heartbeat", "inbox", …]}`.
pub const MISSING_PATHS_SECTION: &str = "missing_paths";

/// The (worker, kind) pairs of a stored `missing_paths` section; anything else is nothing.
fn parse_missing_paths(section: Option<&serde_json::Value>) -> Vec<(String, String)> {
    let Some(workers) = section.and_then(serde_json::Value::as_object) else {
        return Vec::new();
    };
    workers
        .iter()
        .flat_map(|(worker, kinds)| {
            kinds
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|kind| Some((worker.clone(), kind.as_str()?.to_string())))
        })
        .collect()
}

fn render_missing_paths(missing: &[(String, &'static str)]) -> serde_json::Value {
    let mut workers = serde_json::Map::new();
    for (worker, kind) in missing {
        if let serde_json::Value::Array(kinds) = workers
            .entry(worker.clone())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        {
            kinds.push(serde_json::Value::from(*kind));
        }
    }
    serde_json::Value::Object(workers)
}

/// One event to append, and what its action record says.
struct Emitted {
    worker_id: String,
    event_id: String,
    before: Option<Health>,
    current: Health,
    message: String,
    kind: &'static str,
}

/// Appends the transitions of one run and records the new baseline. Returns the exit status
/// that stopped it, if any.
pub fn health_events_for_run(
    run: &Run,
    config: &Config,
    state_dir: Option<&fs::Dir>,
    diag: &mut Diagnostics,
    stop: &Stop,
    output: &mut Output,
) -> Result<WorkerTally, Exit> {
    let (mut state, previous) = read_state(state_dir, run, diag);
    let mut tally = WorkerTally::default();
    let first_run = previous.is_none();
    let previous = previous.unwrap_or_default();
    let mut next: Vec<(String, Health)> = Vec::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut records: Vec<Emitted> = Vec::new();
    let now = config.now;
    let id = run_id(run, config);
    let known_missing = parse_missing_paths(state.section(MISSING_PATHS_SECTION));
    let mut missing: Vec<(String, &'static str)> = Vec::new();
    let result = for_each_worker(run, config, diag, stop, |worker, diag| {
        for (what, path) in &worker.missing_paths {
            let entry = (worker.worker_id.clone(), *what);
            if !known_missing.contains(&(entry.0.clone(), what.to_string())) {
                diag.warning(
                    &worker.spec_path,
                    &format!(
                        "{what} {} does not exist ({})",
                        fs::display_path(path),
                        missing_warning(what)
                    ),
                );
            }
            missing.push(entry);
        }
        let before = previous
            .iter()
            .find(|(name, _)| *name == worker.worker_id)
            .map(|(_, health)| *health);
        let current = worker.view.health;
        tally.add(current);
        if let Some(transition) = health::transition(before, current) {
            let event_id = health::uuid_v4(crate::proc::random_bytes());
            let message = health::event_message(before, &worker.view);
            lines.push(health::event_line(
                &event_id,
                &id,
                now,
                transition,
                &worker.worker_id,
                &message,
            ));
            records.push(Emitted {
                worker_id: worker.worker_id.clone(),
                event_id,
                before,
                current,
                message,
                kind: transition.kind(),
            });
        }
        if let Some(health) = health::remembered(before, current) {
            next.push((worker.worker_id.clone(), health));
        }
        Ok(())
    });
    // Interrupted while reading: nothing is appended or written.
    result?;
    let events_path = run.path.join("events.jsonl");
    let mut outcome = if config.dry_run {
        "dry_run"
    } else {
        "appended"
    };
    if !config.dry_run
        && let Err(error) = crate::fs::append_lines(run.dir(), OsStr::new("events.jsonl"), &lines)
    {
        diag.error(&events_path, &error.to_string(), Exit::FileProblem);
        outcome = "failed";
    }
    for emitted in &records {
        let record = EventRecord {
            kind: "action",
            command: "health-events",
            action: emitted.kind,
            outcome,
            run_dir: PathText(&run.path),
            path: PathText(&events_path),
            worker_id: &emitted.worker_id,
            event_id: &emitted.event_id,
            previous_health: emitted.before.map(Health::as_str),
            health: emitted.current.as_str(),
            message: &emitted.message,
        };
        output
            .record(&record)
            .map_err(|error| crate::cmd::status::stdout_failed(diag, &error))?;
    }
    // The baseline changes only when a health did; a run without change rewrites nothing.
    let unchanged = !first_run && next == previous;
    if outcome == "appended" && !unchanged {
        state.set_section(health::STATE_SECTION, health::render_state(&next));
    }
    // Missing paths are remembered so that each is told on stderr once, when it appears.
    if !config.dry_run {
        if missing.is_empty() {
            state.remove_section(MISSING_PATHS_SECTION);
        } else {
            state.set_section(MISSING_PATHS_SECTION, render_missing_paths(&missing));
        }
    }
    if !config.dry_run
        && let Some(dir) = state_dir
        && let Err(error) = state.write_if_changed(dir)
    {
        diag.error(
            &runstate::path_of(&run.path),
            &error.to_string(),
            Exit::FileProblem,
        );
    }
    Ok(tally)
}

/// `flatline health-events`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let mut output = Output::for_runs(config, &runs);
    for run in &runs {
        if let Some(exit) = stop.check() {
            diag.raise(exit);
            break;
        }
        let Some(lock) = crate::shell::commit::lock_run(run, config, stop, diag) else {
            continue;
        };
        let state_dir = lock.as_ref().map(|lock| lock.state_dir());
        // A dry run has no lock but may still read a baseline that exists.
        let dry_dir = if state_dir.is_none() {
            run.dir().open_child(OsStr::new(".flatline")).ok().flatten()
        } else {
            None
        };
        let dir = state_dir.or(dry_dir.as_ref());
        if let Err(exit) = health_events_for_run(run, config, dir, diag, stop, &mut output) {
            diag.raise(exit);
            break;
        }
    }
    if let Err(error) = output.finish::<serde_json::Value>(&[], &diag.errors.clone(), "") {
        crate::cmd::status::stdout_failed(diag, &error);
    }
    diag.exit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_non_blank_lines_streaming() {
        assert_eq!(count_lines(&b""[..]).unwrap(), 0);
        assert_eq!(count_lines(&b"a\n\n  \nb\n"[..]).unwrap(), 2);
        assert_eq!(count_lines(&b"a\r\n\t\r\nlast"[..]).unwrap(), 2);
        assert_eq!(count_lines(&b"\n\n\n"[..]).unwrap(), 0);
        let big = "{\"m\":1}\n".repeat(100_000);
        assert_eq!(count_lines(big.as_bytes()).unwrap(), 100_000);
    }

    #[test]
    fn sparse_files_count_their_holes_as_content_without_reading_them() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = std::env::temp_dir().join(format!("flatline-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let count = |name: &str, build: &dyn Fn(&mut std::fs::File)| {
            let path = dir.join(name);
            let mut file = std::fs::File::create(&path).unwrap();
            build(&mut file);
            drop(file);
            let plain = count_lines(std::fs::File::open(&path).unwrap()).unwrap();
            let sparse = count_file_lines(std::fs::File::open(&path).unwrap()).unwrap();
            assert_eq!(sparse, plain, "{name}");
            sparse
        };
        let mib = 1u64 << 20;
        assert_eq!(count("empty", &|_| {}), 0);
        assert_eq!(count("dense", &|f| f.write_all(b"a\n\n b\nc").unwrap()), 3);
        // A hole, then "x\n": the NUL bytes and x are one line.
        assert_eq!(
            count("hole-first", &|f| {
                f.seek(SeekFrom::Start(mib)).unwrap();
                f.write_all(b"x\n").unwrap();
            }),
            1
        );
        // Lines, a hole in the middle (a line of NUL bytes ended by the next newline),
        // lines, and a hole at the end (a last line without newline).
        assert_eq!(
            count("holes", &|f| {
                f.write_all(b"a\nb\n").unwrap();
                f.seek(SeekFrom::Start(mib)).unwrap();
                f.write_all(b"\nc\n\n").unwrap();
                f.set_len(2 * mib).unwrap();
            }),
            5
        );
        // The holes are not read: this thread's read(2) byte count (rchar) barely moves over
        // a 1 GiB hole.
        let rchar = || {
            std::fs::read_to_string("/proc/thread-self/io")
                .ok()
                .and_then(|io| {
                    io.lines()
                        .find_map(|line| line.strip_prefix("rchar: "))
                        .and_then(|n| n.parse::<u64>().ok())
                })
        };
        let path = dir.join("huge-hole");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1 << 30).unwrap();
        drop(file);
        let file = std::fs::File::open(&path).unwrap();
        if let Some(before) = rchar() {
            assert_eq!(count_file_lines(file).unwrap(), 1);
            let read = rchar().unwrap() - before;
            assert!(read < 1 << 20, "{read} bytes read for a 1 GiB hole");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn spec_paths_resolve_from_the_worker_directory() {
        let dir = Path::new("workers/w");
        let at = |named: &str| spec_path_in_run(dir, Path::new(named));
        assert_eq!(at("heartbeat.json"), Path::new("workers/w/heartbeat.json"));
        assert_eq!(at("./state/hb.json"), Path::new("workers/w/state/hb.json"));
        assert_eq!(
            at("../shared/in.jsonl"),
            Path::new("workers/shared/in.jsonl")
        );
        assert_eq!(at("../../queues/out.jsonl"), Path::new("queues/out.jsonl"));
        // Above the run directory stays above it: the confined open refuses it.
        assert_eq!(at("../../../etc/passwd"), Path::new("../etc/passwd"));
        assert_eq!(at("a/../../../../x"), Path::new("../x"));
        // Absolute paths are taken as they are (SPEC §1.3 decides).
        assert_eq!(at("/srv/run/hb.json"), Path::new("/srv/run/hb.json"));
    }

    #[test]
    fn a_queue_is_counted_over_its_first_bytes_only() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("flatline-queue-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inbox.jsonl");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"a\nb\n\nc\nd\n").unwrap();
        drop(file);
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(count_file_lines_bounded(&file, 100).unwrap(), (4, false));
        assert_eq!(count_file_lines_bounded(&file, 9).unwrap(), (4, false));
        assert_eq!(count_file_lines_bounded(&file, 5).unwrap(), (2, true));
        assert_eq!(count_file_lines_bounded(&file, 7).unwrap(), (3, true));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn worker_tally_counts_by_health() {
        let mut tally = WorkerTally::default();
        for health in [
            Health::Healthy,
            Health::Stalled,
            Health::Stalled,
            Health::Dead,
        ] {
            tally.add(health);
        }
        assert_eq!(
            tally.fields(),
            vec![
                ("total", 4),
                ("healthy", 1),
                ("stalled", 2),
                ("dead", 1),
                ("stopped", 0),
                ("starting", 0),
                ("unknown", 0)
            ]
        );
    }
}
