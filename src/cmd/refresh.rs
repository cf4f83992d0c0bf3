//! refresh: brings running delegations up to date from their workers' event streams
//! (SPEC §3.2) — progress for live workers, a final result for finished ones.
//!
//! The decision is pure and lives in `core::plan::refresh`; `apply` writes its `Change` into
//! the document's JSON. The shell (`run`, `refresh_one`) stats or reads the stream, writes
//! through the store, and re-reads and recomputes when another writer got there first.

use crate::config::Config;
use crate::core::digest::{self as events, Digest, Outcome};
use crate::core::identity::Fingerprint;
use crate::core::lifecycle::{self, ProcessFacts, StreamInode, Times};
use crate::core::plan::refresh::{
    Case, Change, Finalization, Stream, case_of, decide, failure_summary, fingerprint_to_stamp,
    result_summary, stream_is_newer,
};
use crate::core::time::{self, Millis};
use crate::exit::Exit;
use crate::fs::{self, NamedPathPolicy, ReadError, RunRoot};
use crate::model::Delegation;
use crate::output::{Diagnostics, Output, Ts};
use crate::scan::{self, LazyHost, Run};
use crate::shell::commit::{
    self, ApplyError, DocChange, Place, lifecycle_mut, object_mut, set_status, ts,
};
use serde_json::{Map, Value, json};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

impl DocChange for Change {
    fn action(&self) -> &'static str {
        match self {
            Change::Progress { .. } => "progressed",
            Change::Fingerprint(_) => "fingerprinted",
            Change::Finalize(_) => "finalized",
            Change::StreamSeen {
                then: Some(then), ..
            } => then.action(),
            Change::StreamSeen { then: None, .. } => "stream_recorded",
            Change::Activity {
                state: "running_busy",
                ..
            } => "busy",
            Change::Activity { .. } => "busy_ended",
        }
    }

    fn detail(&self) -> Map<String, Value> {
        change_detail(self)
    }

    fn apply(&self, doc: &mut Value, now: Millis) -> Result<(), ApplyError> {
        apply(doc, self, now)
    }
}

pub fn fingerprint_value(fingerprint: &Fingerprint) -> Value {
    let mut value = json!({
        "start_ticks": fingerprint.start_ticks,
        "boot_id": fingerprint.boot_id,
        "pid_ns": fingerprint.pid_ns,
    });
    // Only where the kernel has a pidfs inode; a missing field is skipped, never a mismatch.
    if let (Some(ino), Some(object)) = (fingerprint.pidfd_ino, value.as_object_mut()) {
        object.insert("pidfd_ino".into(), json!(ino));
    }
    value
}

/// Keeps the identity window's anchor (SPEC §3.1) with flatline's first progress write to a
/// delegation whose identity rests on the window (a recorded pid, no fingerprint): from then
/// on a `last_progress_at` that flatline wrote never moves it.
fn keep_identity_anchor(lifecycle: &mut Map<String, Value>) {
    if lifecycle.contains_key("identity_anchor_at")
        || lifecycle.contains_key("process_fingerprint")
        || !lifecycle.contains_key("process_id")
    {
        return;
    }
    let text = |key: &str| lifecycle.get(key).and_then(Value::as_str);
    let Some((anchor, upper)) = lifecycle::anchor_of_texts(
        text("process_started_at"),
        text("started_at"),
        text("last_progress_at"),
    ) else {
        return;
    };
    lifecycle.insert("identity_anchor_at".into(), ts(anchor));
    lifecycle.insert("identity_upper_bound_at".into(), ts(upper));
}

/// Applies a change to a delegation document. Touches only the fields flatline owns; never
/// `launch_requested_at`, `started_at` or `process_started_at`.
fn apply(doc: &mut Value, change: &Change, now: Millis) -> Result<(), ApplyError> {
    let object = object_mut(doc)?;
    match change {
        Change::Progress { at, fingerprint } => {
            let lifecycle = lifecycle_mut(object)?;
            if fingerprint.is_none() {
                keep_identity_anchor(lifecycle);
            }
            lifecycle.insert("last_progress_at".into(), ts(*at));
            lifecycle.insert("process_last_seen_at".into(), ts(*at));
            lifecycle.insert("state".into(), json!("running_active"));
            if let Some(fingerprint) = fingerprint {
                lifecycle.insert("process_fingerprint".into(), fingerprint_value(fingerprint));
            }
        }
        Change::Fingerprint(fingerprint) => {
            let lifecycle = lifecycle_mut(object)?;
            lifecycle.insert("process_fingerprint".into(), fingerprint_value(fingerprint));
        }
        Change::Finalize(finalization) => apply_finalization(object, finalization, now)?,
        Change::StreamSeen { inode, then } => {
            lifecycle_mut(object)?;
            if let Some(then) = then {
                apply(doc, then, now)?;
            }
            let lifecycle = lifecycle_mut(object_mut(doc)?)?;
            lifecycle.insert("raw_events_inode".into(), inode_value(*inode));
        }
        Change::Activity {
            state,
            at,
            fingerprint,
        } => {
            let lifecycle = lifecycle_mut(object)?;
            lifecycle.insert("state".into(), json!(state));
            if *state == "running_busy" {
                lifecycle.insert("last_activity_at".into(), ts(*at));
            }
            if let Some(fingerprint) = fingerprint {
                lifecycle.insert("process_fingerprint".into(), fingerprint_value(fingerprint));
            }
        }
    }
    Ok(())
}

fn inode_value(inode: StreamInode) -> Value {
    json!({"dev": inode.dev, "ino": inode.ino})
}

fn apply_finalization(
    object: &mut Map<String, Value>,
    finalization: &Finalization,
    now: Millis,
) -> Result<(), ApplyError> {
    // Check before changing anything: a document is rewritten whole or not at all.
    lifecycle_mut(object)?;
    let completed = finalization.verdict.status == Outcome::Success;
    let status = if completed { "completed" } else { "failed" };
    let summary = result_summary(finalization);
    let digest = finalization.digest.as_ref();
    let at = finalization.completed_at;
    object.insert("updated_at".into(), ts(now));
    object.insert("completed_at".into(), ts(at));
    object.insert("result_summary".into(), json!(summary));
    object.insert(
        "worker_result".into(),
        json!({
            "status": status,
            "recorded_at": time::format_rfc3339(now),
            "format": digest.and_then(|d| d.format).map(|f| f.as_str()),
            "thread_id": digest.and_then(|d| d.thread_id.clone()),
            "assistant_message_preview": digest.and_then(|d| d.final_text.clone()),
            "total_token_usage": digest.and_then(|d| d.usage.clone()),
            "process_exit": finalization.exit_code.map(|code| json!({"success": code == 0, "exit_code": code})),
            "raw_output_preview": digest.map(|d| d.raw_preview.clone()).filter(|p| !p.is_empty()),
            "raw_output_bytes": digest.map_or(0, |d| d.bytes + d.skipped_bytes),
        }),
    );
    if let Some(digest) = digest.filter(|d| d.truncated)
        && let Some(Value::Object(result)) = object.get_mut("worker_result")
    {
        result.insert("raw_output_truncated".into(), json!(true));
        result.insert(
            "raw_output_skipped_bytes".into(),
            json!(digest.skipped_bytes),
        );
    }
    let failure = match finalization.verdict.reason {
        Some(reason) if !completed => json!({
            "stage": "execution",
            "reason": reason,
            "summary": failure_summary(finalization, reason),
            "recorded_at": time::format_rfc3339(now),
        }),
        _ => Value::Null,
    };
    object.insert("latest_failure".into(), failure);
    set_status(object, status);
    let lifecycle = lifecycle_mut(object)?;
    lifecycle.insert(
        "state".into(),
        json!(if completed { "returned" } else { "failed" }),
    );
    lifecycle.insert(
        "reclaim_state".into(),
        json!(if completed { "resumable" } else { "not_needed" }),
    );
    lifecycle.insert("process_last_seen_at".into(), ts(at));
    lifecycle.insert("returned_at".into(), ts(at));
    lifecycle.insert("last_progress_at".into(), ts(at));
    lifecycle.insert("summary".into(), json!(summary));
    Ok(())
}

pub use crate::model::{safe_id, stream_path};

/// Why the stream could not be used.
#[derive(Debug)]
pub struct StreamError {
    pub path: PathBuf,
    pub error: String,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event stream {}: {}",
            fs::display_path(&self.path),
            self.error
        )
    }
}

/// The head of a long stream that is always digested: format, thread and session ids
/// (SPEC §1.4).
pub const STREAM_HEAD_BYTES: u64 = 1 << 20;
pub use crate::config::DEFAULT_MAX_STREAM_READ;
/// Memory the digests remembered in one run may take, roughly; past it streams are digested
/// again when named again (each read is still bounded).
const DIGEST_CACHE_BYTES: usize = 64 << 20;

/// How streams are read in one run: the read bound, and the digests already made, so a
/// stream named by many delegations is digested once per (dev, inode, size, mtime).
#[derive(Debug)]
pub struct StreamReading {
    pub max_read: u64,
    digests: RefCell<HashMap<(u64, u64, u64, Millis), Digest>>,
    cached_bytes: Cell<usize>,
}

impl StreamReading {
    pub fn new(max_read: u64) -> StreamReading {
        StreamReading {
            max_read,
            digests: RefCell::new(HashMap::new()),
            cached_bytes: Cell::new(0),
        }
    }

    /// The digest of the stream `meta` describes: remembered, or made by `make`.
    fn digest(
        &self,
        meta: &fs::FileMeta,
        make: impl FnOnce() -> Result<Digest, String>,
    ) -> Result<Digest, String> {
        let key = (meta.dev, meta.ino, meta.size, meta.mtime_ms);
        if let Some(digest) = self.digests.borrow().get(&key) {
            return Ok(digest.clone());
        }
        let digest = make()?;
        let cost = digest_cost(&digest);
        if self.cached_bytes.get() + cost <= DIGEST_CACHE_BYTES {
            self.cached_bytes.set(self.cached_bytes.get() + cost);
            self.digests.borrow_mut().insert(key, digest.clone());
        }
        Ok(digest)
    }
}

/// Roughly the memory a remembered digest takes.
fn digest_cost(digest: &Digest) -> usize {
    let text = |text: &Option<String>| text.as_ref().map_or(0, String::len);
    256 + text(&digest.thread_id)
        + text(&digest.final_text)
        + digest.raw_preview.len()
        + digest
            .terminal
            .as_ref()
            .map_or(0, |terminal| text(&terminal.message))
        + digest
            .usage
            .as_ref()
            .map_or(0, |usage| usage.to_string().len() * 4)
}

/// Digests a stream of `size` bytes (its size when opened) reading at most `max_read` bytes
/// of it and none of its holes: a longer stream is read as its first `STREAM_HEAD_BYTES`
/// and its last `max_read - STREAM_HEAD_BYTES` (SPEC §1.4).
pub fn digest_bounded(file: &std::fs::File, size: u64, max_read: u64) -> std::io::Result<Digest> {
    use std::os::unix::fs::FileExt;
    let mut digest = events::StreamDigest::new(events::MAX_LINE_BYTES);
    let mut buf = vec![0u8; 64 * 1024];
    let feed = |piece: fs::Piece<'_>, digest: &mut events::StreamDigest| match piece {
        fs::Piece::Data(bytes) => digest.data(bytes),
        fs::Piece::Hole(len) => digest.hole(len),
    };
    if size <= max_read {
        fs::read_range(file, 0, size, &mut buf, |piece| feed(piece, &mut digest))?;
        return Ok(digest.finish());
    }
    let head = STREAM_HEAD_BYTES.min(max_read);
    let tail_start = size - (max_read - head);
    fs::read_range(file, 0, head, &mut buf, |piece| feed(piece, &mut digest))?;
    let mut before = [0u8; 1];
    let at_line_start =
        matches!(file.read_at(&mut before, tail_start - 1), Ok(1) if before[0] == b'\n');
    digest.gap(tail_start - head, at_line_start);
    fs::read_range(file, tail_start, size, &mut buf, |piece| {
        feed(piece, &mut digest)
    })?;
    Ok(digest.finish())
}

/// Stats (and, when `read`, digests) a delegation's stream under SPEC §1.3. `Ok(None)` when
/// there is no stream file.
pub fn look_at_stream(
    root: &RunRoot,
    path: &Path,
    policy: NamedPathPolicy,
    read: impl FnOnce(&Stream) -> bool,
) -> Result<Option<Stream>, StreamError> {
    look_at_stream_with(
        root,
        path,
        policy,
        &StreamReading::new(DEFAULT_MAX_STREAM_READ),
        read,
    )
}

/// `look_at_stream` with the run's read bound and the digests it already made.
pub fn look_at_stream_with(
    root: &RunRoot,
    path: &Path,
    policy: NamedPathPolicy,
    reading: &StreamReading,
    read: impl FnOnce(&Stream) -> bool,
) -> Result<Option<Stream>, StreamError> {
    let fail = |error: String| StreamError {
        path: path.to_path_buf(),
        error,
    };
    let named = match fs::open_named(root, path, policy) {
        Ok(named) => named,
        Err(ReadError::NotFound) => return Ok(None),
        Err(error) => return Err(fail(error.to_string())),
    };
    let mut stream = Stream {
        mtime_ms: named.meta.mtime_ms,
        size: named.meta.size,
        inode: StreamInode {
            dev: named.meta.dev,
            ino: named.meta.ino,
        },
        digest: None,
    };
    if read(&stream) {
        let digest = reading
            .digest(&named.meta, || {
                let file = named
                    .open_for_read(root, path, policy)
                    .map_err(|error| error.to_string())?;
                digest_bounded(&file, named.meta.size, reading.max_read)
                    .map_err(|error| fs::io_message(&error))
            })
            .map_err(fail)?;
        stream.digest = Some(digest);
    }
    Ok(Some(stream))
}

/// What a change decided, for its action record.
fn change_detail(change: &Change) -> Map<String, Value> {
    let mut detail = Map::new();
    match change {
        Change::Progress { at, fingerprint } => {
            detail.insert("last_progress_at".into(), json!(Ts(Some(*at))));
            detail.insert("fingerprint_stamped".into(), json!(fingerprint.is_some()));
        }
        Change::Fingerprint(_) => {
            detail.insert("fingerprint_stamped".into(), json!(true));
        }
        // The record of what came with it reads as that change alone.
        Change::StreamSeen {
            then: Some(then), ..
        } => detail = change_detail(then),
        Change::StreamSeen { inode, then: None } => {
            detail.insert("raw_events_inode".into(), inode_value(*inode));
        }
        Change::Activity { state, at, .. } => {
            detail.insert("state".into(), json!(state));
            detail.insert("last_activity_at".into(), json!(Ts(Some(*at))));
        }
        Change::Finalize(finalization) => {
            let digest = finalization.digest.as_ref();
            detail.insert("status".into(), json!(finalization.verdict.status_name()));
            detail.insert("reason".into(), json!(finalization.verdict.reason));
            detail.insert(
                "completed_at".into(),
                json!(Ts(Some(finalization.completed_at))),
            );
            detail.insert(
                "format".into(),
                json!(digest.and_then(|d| d.format).map(|f| f.as_str())),
            );
            detail.insert(
                "thread_id".into(),
                json!(digest.and_then(|d| d.thread_id.clone())),
            );
            detail.insert(
                "terminal_event".into(),
                json!(digest.and_then(|d| d.terminal.as_ref()).map(|t| t.event)),
            );
            detail.insert(
                "raw_events_bytes".into(),
                json!(digest.map_or(0, |d| d.bytes)),
            );
            if let Some(digest) = digest.filter(|d| d.truncated) {
                detail.insert("raw_output_truncated".into(), json!(true));
                detail.insert(
                    "raw_output_skipped_bytes".into(),
                    json!(digest.skipped_bytes),
                );
            }
            detail.insert("summary".into(), json!(result_summary(finalization)));
        }
    }
    detail
}

/// The inputs refresh needs beyond the item: computed afresh after a conflict.
pub struct Context<'a> {
    pub run: &'a Run,
    pub config: &'a Config,
    pub host: &'a LazyHost,
    pub settle_ms: Millis,
    pub allow_outside: bool,
    pub reading: StreamReading,
    pub max_clock_skew: Millis,
}

impl<'a> Context<'a> {
    pub fn new(run: &'a Run, config: &'a Config, host: &'a LazyHost) -> Context<'a> {
        Context {
            run,
            config,
            host,
            settle_ms: config.settle,
            allow_outside: config.allow_outside_paths,
            reading: StreamReading::new(config.max_stream_read),
            max_clock_skew: config.thresholds.max_clock_skew,
        }
    }
}

/// The change for one delegation, or `None`. Stream problems are returned for reporting.
pub fn plan(
    ctx: &Context<'_>,
    doc: &Delegation<'_>,
    times: &Times,
    facts: &ProcessFacts,
    owner: u32,
) -> Result<Option<Change>, StreamError> {
    let Some(case) = case_of(facts) else {
        return Ok(None);
    };
    let stamp = match case {
        Case::Live => fingerprint_to_stamp(doc, facts, ctx.host.get()),
        _ => None,
    };
    let exit_code = doc
        .worker_lifecycle
        .value()
        .and_then(|l| l.exit_code.value().copied())
        .and_then(|code| i64::try_from(code).ok());
    let policy = NamedPathPolicy {
        allow_outside: ctx.allow_outside,
        owner,
    };
    let recorded = lifecycle::recorded_stream_inode(doc.worker_lifecycle.value());
    let now = ctx.config.now;
    // An mtime further ahead than the allowed skew is no progress (SPEC §2).
    let too_far_ahead = |stream: &Stream| stream.mtime_ms > now.saturating_add(ctx.max_clock_skew);
    let path = stream_path(doc);
    let stream = match &path {
        None => None,
        Some(path) => look_at_stream_with(&ctx.run.root, path, policy, &ctx.reading, |stream| {
            if recorded.is_some_and(|inode| inode != stream.inode) {
                return false;
            }
            match case {
                Case::Live => false,
                Case::Gone => true,
                Case::Unsure => stream_is_newer(times, stream),
            }
        })?,
    };
    match (recorded, &stream, &path) {
        (Some(recorded), Some(stream), Some(path)) if stream.inode != recorded => {
            return Err(StreamError {
                path: path.clone(),
                error: stream_replaced(recorded, stream.inode),
            });
        }
        // stream_missing: the view says so; nothing is decided without the stream.
        (Some(_), None, _) => return Ok(None),
        _ => {}
    }
    // Recorded while the worker may still write: a gone worker's stream is its result,
    // finalized now or once settled, and the record would only be noise in between.
    let first_sight = match (recorded, case) {
        (None, Case::Live | Case::Unsure) => stream.as_ref().map(|stream| stream.inode),
        _ => None,
    };
    let change = decide(
        case,
        times,
        stream.as_ref(),
        stamp,
        exit_code,
        now,
        ctx.settle_ms,
    );
    // An mtime from too far ahead is no progress (its events may still end the worker).
    let change = match change {
        Some(Change::Progress { fingerprint, .. })
            if stream.as_ref().is_some_and(too_far_ahead) =>
        {
            fingerprint.map(Change::Fingerprint)
        }
        change => change,
    };
    let recorded_state = doc.worker_lifecycle.value().and_then(|l| l.state.str());
    let change = crate::shell::activity::with_busy_mark(change, ctx.host, recorded_state, now);
    Ok(match (first_sight, change) {
        (_, Some(Change::Finalize(finalization))) => Some(Change::Finalize(finalization)),
        (Some(inode), then) => Some(Change::StreamSeen {
            inode,
            then: then.map(Box::new),
        }),
        (None, change) => change,
    })
}

/// Why a stream that is another file than the one first seen is refused.
fn stream_replaced(recorded: StreamInode, found: StreamInode) -> String {
    format!(
        "stream_replaced: it is inode {}:{} now, not {}:{} as first seen; another file is \
         never this worker's progress or result",
        found.dev, found.ino, recorded.dev, recorded.ino
    )
}

/// `flatline refresh`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &crate::stop::Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let mut output = Output::for_runs(config, &runs);
    let host = LazyHost::default();
    for run in &runs {
        if let Some(exit) = stop.check() {
            diag.raise(exit);
            break;
        }
        let Some(lock) = commit::lock_run(run, config, stop, diag) else {
            continue;
        };
        let Some(listing) = scan::list_for_writing(run, "delegations", config, diag) else {
            continue;
        };
        let ctx = Context::new(run, config, &host);
        let mut wrote = false;
        // Where a run cut short stopped: this one starts there (SPEC §4, --deadline).
        let mut resume = scan::Resume {
            start: lock
                .as_ref()
                .and_then(|lock| crate::resume::start(lock.state_dir())),
            stopped_at: None,
        };
        let result = scan::for_each_in_listing_from(
            run,
            &listing,
            config,
            &host,
            diag,
            stop,
            &mut resume,
            &mut |item, diag| {
                let change = match plan(
                    &ctx,
                    item.doc,
                    item.times,
                    item.facts,
                    crate::fs::guard_owner(&item.meta),
                ) {
                    Ok(Some(change)) => change,
                    Ok(None) => return Ok(()),
                    Err(problem) => {
                        diag.error(item.path, &problem.to_string(), Exit::FileProblem);
                        return Ok(());
                    }
                };
                let target = commit::Target {
                    dir: item.dir,
                    name: item.name,
                    bytes: item.bytes,
                };
                let written =
                    commit::write_change(target, change, config.now, config.dry_run, |bytes| {
                        replan(&ctx, bytes, crate::fs::guard_owner(&item.meta))
                    });
                wrote |= written.wrote();
                let place = Place {
                    command: "refresh",
                    run,
                    path: item.path,
                    delegation_id: item.view.delegation_id,
                };
                commit::report(place, &written, &mut output, diag)
            },
        );
        commit::sync(&listing.dir, wrote, diag);
        if let Some(lock) = &lock {
            crate::resume::record(lock.state_dir(), run, resume.stopped_at.as_deref(), diag);
        }
        if let Err(exit) = result {
            diag.raise(exit);
            break;
        }
    }
    if let Err(error) = output.finish::<Value>(&[], &diag.errors.clone(), "") {
        crate::cmd::status::stdout_failed(diag, &error);
    }
    diag.exit
}

/// The plan for bytes re-read after a conflict: inspected afresh, as on the first read.
pub fn replan(ctx: &Context<'_>, bytes: &[u8], owner: u32) -> Result<Option<Change>, String> {
    scan::inspect(bytes, ctx.config, ctx.host, |doc, times, facts, _| {
        if !ctx.config.card_selected(doc.task_card_id.str()) {
            return Ok(None);
        }
        plan(ctx, doc, times, facts, owner).map_err(|problem| problem.to_string())
    })
    .map_err(|error| error.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::digest::Terminal;
    use crate::core::digest::Verdict;
    use crate::core::plan::refresh::tests::{NOW, fingerprint, success_digest};
    use crate::shell::commit::DocChange;

    #[test]
    fn apply_progress_touches_only_flatlines_fields() {
        let mut doc = json!({
            "delegation_id": "d",
            "worker_lifecycle": {"started_at": "x", "launch_requested_at": "y", "process_started_at": "z", "last_progress_at": "old"},
            "other": {"kept": [1, 2]}
        });
        apply(
            &mut doc,
            &Change::Progress {
                at: NOW,
                fingerprint: Some(fingerprint()),
            },
            NOW,
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "delegation_id": "d",
                "worker_lifecycle": {"started_at": "x", "launch_requested_at": "y", "process_started_at": "z",
                    "last_progress_at": "2026-11-22T08:00:00.000Z", "process_last_seen_at": "2026-11-22T08:00:00.000Z",
                    "state": "running_active", "process_fingerprint": {"start_ticks": 42, "boot_id": "boot", "pid_ns": 7}},
                "other": {"kept": [1, 2]}
            })
        );
    }

    #[test]
    fn the_first_progress_write_keeps_the_identity_anchor() {
        let progress = |at| Change::Progress {
            at,
            fingerprint: None,
        };
        let mut doc = json!({"worker_lifecycle": {
            "process_id": 4242, "process_started_at": "2026-11-22T07:59:00Z",
            "last_progress_at": "2026-11-22T07:59:30.500Z"}});
        apply(&mut doc, &progress(NOW), NOW).unwrap();
        let lifecycle = &doc["worker_lifecycle"];
        // E the earliest sign; U the whole second + 1 s early of process_started_at.
        assert_eq!(lifecycle["identity_anchor_at"], "2026-11-22T07:59:00.000Z");
        assert_eq!(
            lifecycle["identity_upper_bound_at"],
            "2026-11-22T07:59:02.000Z"
        );
        assert_eq!(lifecycle["last_progress_at"], "2026-11-22T08:00:00.000Z");
        // flatline's own progress never moves it, even when the orchestrator's signs go.
        doc["worker_lifecycle"]
            .as_object_mut()
            .unwrap()
            .remove("process_started_at");
        apply(&mut doc, &progress(NOW + 5_000), NOW + 5_000).unwrap();
        let lifecycle = &doc["worker_lifecycle"];
        assert_eq!(lifecycle["identity_anchor_at"], "2026-11-22T07:59:00.000Z");
        assert_eq!(
            lifecycle["identity_upper_bound_at"],
            "2026-11-22T07:59:02.000Z"
        );
        // Not for a fingerprinted worker, nor without a pid.
        for lifecycle in [
            json!({"process_id": 1, "started_at": "2026-11-22T07:59:00Z",
                   "process_fingerprint": {"start_ticks": 1, "boot_id": "b", "pid_ns": 2}}),
            json!({"started_at": "2026-11-22T07:59:00Z"}),
        ] {
            let mut doc = json!({ "worker_lifecycle": lifecycle });
            apply(&mut doc, &progress(NOW), NOW).unwrap();
            assert!(
                doc["worker_lifecycle"].get("identity_anchor_at").is_none(),
                "{doc}"
            );
        }
    }

    #[test]
    fn apply_finalize_writes_every_field() {
        let mut doc = json!({
            "delegation_id": "d",
            "child_agent": {"status": "running", "agent": "codex"},
            "executor": {"status": "running"},
            "worker_lifecycle": {"started_at": "s", "exit_code": 0}
        });
        let finalization = Finalization {
            verdict: Verdict {
                status: Outcome::Success,
                reason: None,
            },
            completed_at: NOW - 1_000,
            digest: Some(success_digest()),
            exit_code: Some(0),
        };
        apply(&mut doc, &Change::Finalize(Box::new(finalization)), NOW).unwrap();
        assert_eq!(
            doc,
            json!({
                "delegation_id": "d",
                "child_agent": {"status": "completed", "agent": "codex"},
                "executor": {"status": "completed"},
                "worker_lifecycle": {
                    "started_at": "s", "exit_code": 0, "state": "returned", "reclaim_state": "resumable",
                    "process_last_seen_at": "2026-11-22T07:59:59.000Z", "returned_at": "2026-11-22T07:59:59.000Z",
                    "last_progress_at": "2026-11-22T07:59:59.000Z", "summary": "Worker completed: Done."
                },
                "updated_at": "2026-11-22T08:00:00.000Z",
                "completed_at": "2026-11-22T07:59:59.000Z",
                "result_summary": "Worker completed: Done.",
                "worker_result": {
                    "status": "completed", "recorded_at": "2026-11-22T08:00:00.000Z", "format": "codex",
                    "thread_id": "thread-1", "assistant_message_preview": "Done.",
                    "total_token_usage": {"input_tokens": 5}, "process_exit": {"success": true, "exit_code": 0},
                    "raw_output_preview": null, "raw_output_bytes": 120
                },
                "latest_failure": null
            })
        );
    }

    #[test]
    fn apply_failure_records_latest_failure() {
        let mut doc = json!({"child_agent": {"status": "running"}});
        let digest = Digest {
            format: Some(events::Format::Codex),
            terminal: Some(Terminal {
                event: "turn.failed",
                outcome: Outcome::Failure,
                interrupted: false,
                message: Some("model overloaded".into()),
            }),
            bytes: 77,
            raw_preview: "boom".into(),
            ..Digest::default()
        };
        let finalization = Finalization {
            verdict: events::verdict(&digest),
            completed_at: NOW,
            digest: Some(digest),
            exit_code: None,
        };
        apply(&mut doc, &Change::Finalize(Box::new(finalization)), NOW).unwrap();
        assert_eq!(doc["child_agent"]["status"], "failed");
        assert_eq!(doc["worker_lifecycle"]["state"], "failed");
        assert_eq!(doc["worker_lifecycle"]["reclaim_state"], "not_needed");
        assert_eq!(
            doc["latest_failure"],
            json!({
                "stage": "execution",
                "reason": "execution_failed",
                "summary": "execution_failed: Worker failed: model overloaded terminal_event=turn.failed raw_events_bytes=77 raw_output_preview=\"boom\"",
                "recorded_at": "2026-11-22T08:00:00.000Z"
            })
        );
    }

    #[test]
    fn a_lifecycle_that_is_not_an_object_is_not_rewritten() {
        let mut doc = json!({"worker_lifecycle": "running"});
        let before = doc.clone();
        let error = apply(
            &mut doc,
            &Change::Progress {
                at: NOW,
                fingerprint: None,
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(error.0, "worker_lifecycle is not an object; not rewritten");
        let finalization = Finalization {
            verdict: events::verdict(&Digest::default()),
            completed_at: NOW,
            digest: None,
            exit_code: None,
        };
        assert!(apply(&mut doc, &Change::Finalize(Box::new(finalization)), NOW).is_err());
        assert_eq!(doc, before, "nothing changed on failure");
    }

    fn scratch_file(name: &str, build: impl FnOnce(&mut std::fs::File)) -> std::fs::File {
        let dir = std::env::temp_dir().join(format!("flatline-refresh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path).unwrap();
        build(&mut file);
        drop(file);
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn a_long_stream_is_read_as_its_head_and_its_tail() {
        use std::io::Write;
        let mib = 1u64 << 20;
        let filler = format!("{}\n", "x".repeat(99));
        let file = scratch_file("long", |f| {
            f.write_all(b"{\"type\":\"thread.started\",\"thread_id\":\"t-head\"}\n")
                .unwrap();
            // Lines that straddle the end of the head and the start of the tail.
            for _ in 0..(5 * mib / 100) {
                f.write_all(filler.as_bytes()).unwrap();
            }
            f.write_all(b"{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"Done.\"}}\n")
                .unwrap();
            f.write_all(b"{\"type\":\"turn.completed\",\"usage\":{\"output_tokens\":3}}\n")
                .unwrap();
        });
        let size = file.metadata().unwrap().len();
        let digest = digest_bounded(&file, size, 2 * mib).unwrap();
        assert!(digest.truncated);
        assert_eq!(digest.skipped_bytes, size - 2 * mib);
        assert_eq!(digest.bytes, 2 * mib);
        assert_eq!(digest.thread_id.as_deref(), Some("t-head"));
        assert_eq!(digest.final_text.as_deref(), Some("Done."));
        assert_eq!(digest.usage, Some(json!({"output_tokens": 3})));
        assert_eq!(events::verdict(&digest).status, Outcome::Success);
        // Only whole filler lines were seen: the cut ones at both edges were dropped.
        let whole_lines = (mib - 44) / 100 + (mib - 142) / 100;
        assert_eq!(digest.lines, 1 + whole_lines + 2, "{digest:?}");
        assert_eq!(digest.skipped_lines, 0);
        // Within the bound it is read whole.
        let whole = digest_bounded(&file, size, size).unwrap();
        assert!(!whole.truncated);
        assert_eq!((whole.bytes, whole.skipped_bytes), (size, 0));
        let mut finalized = json!({"worker_lifecycle": {}});
        let finalization = Finalization {
            verdict: events::verdict(&digest),
            completed_at: NOW,
            digest: Some(digest),
            exit_code: None,
        };
        apply(
            &mut finalized,
            &Change::Finalize(Box::new(finalization)),
            NOW,
        )
        .unwrap();
        let result = &finalized["worker_result"];
        assert_eq!(result["raw_output_bytes"], json!(size));
        assert_eq!(result["raw_output_truncated"], json!(true));
        assert_eq!(result["raw_output_skipped_bytes"], json!(size - 2 * mib));
    }

    #[test]
    fn a_tail_that_starts_on_a_line_keeps_that_line() {
        use std::io::Write;
        let mib = 1u64 << 20;
        let file = scratch_file("aligned", |f| {
            // 3 MiB of 1 KiB lines: the tail of a 2 MiB bound starts exactly on a line.
            let line = format!("{}\n", "y".repeat(1023));
            for _ in 0..3 * 1024 {
                f.write_all(line.as_bytes()).unwrap();
            }
        });
        let digest = digest_bounded(&file, 3 * mib, 2 * mib).unwrap();
        assert_eq!(digest.lines, 2 * 1024);
    }

    #[test]
    fn a_sparse_stream_costs_its_data_not_its_size() {
        use std::io::{Seek, SeekFrom, Write};
        let tib = 1u64 << 40;
        let last = b"{\"type\":\"turn.completed\",\"usage\":{\"output_tokens\":1}}\n";
        let file = scratch_file("sparse", |f| {
            f.write_all(b"{\"type\":\"thread.started\",\"thread_id\":\"t-1\"}\n")
                .unwrap();
            f.seek(SeekFrom::Start(tib)).unwrap();
            f.write_all(b"\n").unwrap();
            f.write_all(last).unwrap();
        });
        let size = file.metadata().unwrap().len();
        let digest = digest_bounded(&file, size, DEFAULT_MAX_STREAM_READ).unwrap();
        assert_eq!(digest.thread_id.as_deref(), Some("t-1"));
        assert_eq!(
            digest.terminal.as_ref().map(|t| t.event),
            Some("turn.completed")
        );
        assert!(digest.truncated);
        assert_eq!(digest.skipped_bytes, size - DEFAULT_MAX_STREAM_READ);
    }

    #[test]
    fn a_stream_is_digested_once_per_identity() {
        let reading = StreamReading::new(DEFAULT_MAX_STREAM_READ);
        let meta = |size, mtime_ms| fs::FileMeta {
            dev: 1,
            ino: 2,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            nlink: 1,
            size,
            mtime_ms,
        };
        let mut made = 0;
        for _ in 0..3 {
            let digest = reading
                .digest(&meta(10, NOW), || {
                    made += 1;
                    Ok(success_digest())
                })
                .unwrap();
            assert_eq!(digest, success_digest());
        }
        assert_eq!(made, 1);
        // Another size or mtime is another stream.
        reading
            .digest(&meta(11, NOW), || {
                made += 1;
                Ok(Digest::default())
            })
            .unwrap();
        reading
            .digest(&meta(11, NOW + 1), || {
                made += 1;
                Ok(Digest::default())
            })
            .unwrap();
        assert_eq!(made, 3);
    }

    #[test]
    fn default_stream_paths_come_only_from_safe_ids() {
        assert!(safe_id("d-1.a_b"));
        assert!(!safe_id("."));
        assert!(!safe_id(".."));
        assert!(!safe_id("../x"));
        assert!(!safe_id("a/b"));
        assert!(!safe_id(""));
        assert!(!safe_id(&"x".repeat(129)));
        let doc =
            crate::model::parse_delegation(br#"{"delegation_id":"../../etc/passwd"}"#).unwrap();
        assert_eq!(stream_path(&doc), None);
        let doc = crate::model::parse_delegation(br#"{"delegation_id":"d1"}"#).unwrap();
        assert_eq!(
            stream_path(&doc),
            Some(PathBuf::from("raw-events/d1.jsonl"))
        );
        let doc = crate::model::parse_delegation(
            br#"{"delegation_id":"d1","worker_launch_evidence":{"raw_events_file":"/abs/s.jsonl"}}"#,
        )
        .unwrap();
        assert_eq!(stream_path(&doc), Some(PathBuf::from("/abs/s.jsonl")));
    }

    #[test]
    fn a_stream_seen_first_is_recorded_with_what_comes_with_it() {
        let inode = StreamInode { dev: 8, ino: 1234 };
        let alone = Change::StreamSeen { inode, then: None };
        assert_eq!(alone.action(), "stream_recorded");
        let mut doc = json!({"worker_lifecycle": {"last_progress_at": "old"}});
        apply(&mut doc, &alone, NOW).unwrap();
        assert_eq!(
            doc,
            json!({"worker_lifecycle": {"last_progress_at": "old", "raw_events_inode": {"dev": 8, "ino": 1234}}})
        );
        let progress = Change::StreamSeen {
            inode,
            then: Some(Box::new(Change::Progress {
                at: NOW,
                fingerprint: None,
            })),
        };
        assert_eq!(progress.action(), "progressed");
        assert!(!change_detail(&progress).contains_key("raw_events_inode"));
        let mut doc = json!({"worker_lifecycle": {}});
        apply(&mut doc, &progress, NOW).unwrap();
        assert_eq!(
            doc["worker_lifecycle"]["last_progress_at"],
            "2026-11-22T08:00:00.000Z"
        );
        assert_eq!(
            doc["worker_lifecycle"]["raw_events_inode"],
            json!({"dev": 8, "ino": 1234})
        );
        let mut not_an_object = json!({"worker_lifecycle": 3});
        assert!(apply(&mut not_an_object, &alone, NOW).is_err());
        assert_eq!(not_an_object, json!({"worker_lifecycle": 3}));
    }
}
