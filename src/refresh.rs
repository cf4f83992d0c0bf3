//! refresh: brings running delegations up to date from their workers' event streams
//! (SPEC §3.2) — progress for live workers, a final result for finished ones.
//!
//! The decision is pure (`decide`, `apply`): from the view, the process facts and what the
//! stream's metadata and digest say, it returns a `Change` and applies it to the document's
//! JSON. The shell (`run`, `refresh_one`) stats or reads the stream, writes through the
//! store, and re-reads and recomputes when another writer got there first.

use crate::clock::{self, Millis};
use crate::commit::{
    self, ApplyError, DocChange, Place, lifecycle_mut, object_mut, set_status, ts,
};
use crate::config::Config;
use crate::doc::Delegation;
use crate::events::{self, Digest, Outcome, Verdict};
use crate::exit::Exit;
use crate::files::{self, NamedPathPolicy, ReadError, RunRoot};
use crate::lifecycle::{self, ProcessFacts, Times};
use crate::output::{Diagnostics, Output, Ts};
use crate::process::{self, Fingerprint, Identity};
use crate::scan::{self, LazyHost, Run};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// Which of SPEC §3.2's three cases a running delegation is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Process alive and verified: progress from the stream's mtime, never a read.
    Live,
    /// Process gone (exited, zombie) or the pid reused: read the stream and finalize.
    Gone,
    /// No pid, an invalid one or an unverifiable one: read the stream only when it
    /// changed; finalize only on a terminal event.
    Unsure,
}

/// The case of a delegation, or `None` when refresh has nothing to do with it (not running,
/// or already reclaimed).
pub fn case_of(facts: &ProcessFacts) -> Option<Case> {
    match facts {
        ProcessFacts::NotChecked => None,
        ProcessFacts::Checked {
            identity: Identity::Verified,
            ..
        } => Some(Case::Live),
        ProcessFacts::Checked {
            identity: Identity::Gone | Identity::Reused,
            ..
        } => Some(Case::Gone),
        ProcessFacts::Checked {
            identity: Identity::Unverifiable,
            ..
        }
        | ProcessFacts::NoPid
        | ProcessFacts::Invalid(_) => Some(Case::Unsure),
    }
}

/// What the stream looked like.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Modification time (ms).
    pub mtime_ms: Millis,
    pub size: u64,
    /// The digest, when the stream was read.
    pub digest: Option<Digest>,
}

/// A final result to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finalization {
    pub verdict: Verdict,
    pub completed_at: Millis,
    /// `None` when the worker left no stream at all.
    pub digest: Option<Digest>,
    pub exit_code: Option<i64>,
}

/// What refresh changes in one delegation.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// New progress (and the fingerprint of the verified process, when not yet stamped).
    Progress {
        at: Millis,
        fingerprint: Option<Fingerprint>,
    },
    /// Only the fingerprint of a verified process is new.
    Fingerprint(Fingerprint),
    Finalize(Box<Finalization>),
}

impl DocChange for Change {
    fn action(&self) -> &'static str {
        match self {
            Change::Progress { .. } => "progressed",
            Change::Fingerprint(_) => "fingerprinted",
            Change::Finalize(_) => "finalized",
        }
    }

    fn detail(&self) -> Map<String, Value> {
        change_detail(self)
    }

    fn apply(&self, doc: &mut Value, now: Millis) -> Result<(), ApplyError> {
        apply(doc, self, now)
    }
}

/// Whether the stream holds anything newer than the recorded progress.
pub fn stream_is_newer(times: &Times, stream: &Stream) -> bool {
    times
        .last_progress_at
        .is_none_or(|last| stream.mtime_ms > last)
}

/// Progress to record from a stream's mtime: never in the future, never backwards.
fn progress_at(times: &Times, mtime_ms: Millis, now: Millis) -> Option<Millis> {
    let at = mtime_ms.min(now);
    match times.last_progress_at {
        Some(last) if at <= last => None,
        _ => Some(at),
    }
}

/// The fingerprint to stamp on a verified process: only when none usable is recorded.
pub fn fingerprint_to_stamp(
    doc: &Delegation<'_>,
    facts: &ProcessFacts,
    host: &process::Host,
) -> Option<Fingerprint> {
    let ProcessFacts::Checked {
        identity: Identity::Verified,
        observation,
        ..
    } = facts
    else {
        return None;
    };
    match lifecycle::recorded_fingerprint(doc.worker_lifecycle.value()) {
        Ok(Some(_)) => None,
        _ => process::fingerprint_of(*observation, host),
    }
}

/// The decision for one running delegation (SPEC §3.2). `stream` is `None` when the worker
/// has no stream file; for `Case::Gone` and for a changed stream in `Case::Unsure` the
/// caller must have read it (`stream.digest`).
pub fn decide(
    case: Case,
    times: &Times,
    stream: Option<&Stream>,
    stamp: Option<Fingerprint>,
    exit_code: Option<i64>,
    now: Millis,
    settle_ms: Millis,
) -> Option<Change> {
    match case {
        Case::Live => {
            let progress = stream.and_then(|s| progress_at(times, s.mtime_ms, now));
            match (progress, stamp) {
                (Some(at), fingerprint) => Some(Change::Progress { at, fingerprint }),
                (None, Some(fingerprint)) => Some(Change::Fingerprint(fingerprint)),
                (None, None) => None,
            }
        }
        Case::Gone => {
            let Some(stream) = stream else {
                return Some(Change::Finalize(Box::new(Finalization {
                    verdict: events::verdict_with_exit(&Digest::default(), exit_code),
                    completed_at: now,
                    digest: None,
                    exit_code,
                })));
            };
            let digest = stream.digest.as_ref()?;
            let settled = stream.mtime_ms <= now - settle_ms;
            if digest.terminal.is_none() && !settled {
                // The orchestrator may still be copying the worker's last lines.
                return None;
            }
            Some(Change::Finalize(Box::new(Finalization {
                verdict: events::verdict_with_exit(digest, exit_code),
                completed_at: stream.mtime_ms.min(now),
                digest: Some(digest.clone()),
                exit_code,
            })))
        }
        Case::Unsure => {
            let stream = stream?;
            if !stream_is_newer(times, stream) {
                return None;
            }
            let digest = stream.digest.as_ref()?;
            if digest.terminal.is_some() {
                return Some(Change::Finalize(Box::new(Finalization {
                    verdict: events::verdict_with_exit(digest, exit_code),
                    completed_at: stream.mtime_ms.min(now),
                    digest: Some(digest.clone()),
                    exit_code,
                })));
            }
            progress_at(times, stream.mtime_ms, now).map(|at| Change::Progress {
                at,
                fingerprint: None,
            })
        }
    }
}

pub fn fingerprint_value(fingerprint: &Fingerprint) -> Value {
    json!({
        "start_ticks": fingerprint.start_ticks,
        "boot_id": fingerprint.boot_id,
        "pid_ns": fingerprint.pid_ns,
    })
}

/// The human line that a finalized delegation carries in `result_summary`.
pub fn result_summary(finalization: &Finalization) -> String {
    let digest = finalization.digest.as_ref();
    match (finalization.verdict.status, finalization.verdict.reason) {
        (Outcome::Success, _) => match digest.and_then(|d| d.final_text.as_deref()) {
            Some(text) => format!("Worker completed: {text}"),
            None => "Worker completed without a final message.".to_string(),
        },
        (Outcome::Failure, reason) => {
            let message = digest
                .and_then(|d| d.terminal.as_ref())
                .and_then(|t| t.message.as_deref());
            match (reason.unwrap_or("unknown"), message) {
                ("execution_failed", Some(message)) => format!("Worker failed: {message}"),
                ("execution_failed", None) => {
                    "Worker failed: the run reported a failure.".to_string()
                }
                ("interrupted", _) => "Worker was interrupted before it finished its turn.".into(),
                ("invalid_output", _) => "Worker exited without usable output.".into(),
                _ if digest.is_none() => "Worker process exited without an event stream.".into(),
                _ => "Worker process exited with an empty event stream.".into(),
            }
        }
    }
}

/// The `latest_failure.summary`: the reason, then what is known of the stream.
fn failure_summary(finalization: &Finalization, reason: &str) -> String {
    let mut parts = vec![result_summary(finalization)];
    if let Some(digest) = &finalization.digest {
        if let Some(terminal) = &digest.terminal {
            parts.push(format!("terminal_event={}", terminal.event));
        }
        parts.push(format!("raw_events_bytes={}", digest.bytes));
        if !digest.raw_preview.is_empty() {
            parts.push(format!(
                "raw_output_preview={}",
                serde_json::to_string(&digest.raw_preview).unwrap_or_default()
            ));
        }
    } else {
        parts.push("raw_events_bytes=0".into());
    }
    if let Some(code) = finalization.exit_code {
        parts.push(format!("exit_code={code}"));
    }
    format!("{reason}: {}", parts.join(" "))
}

/// Applies a change to a delegation document. Touches only the fields flatline owns; never
/// `launch_requested_at`, `started_at` or `process_started_at`.
fn apply(doc: &mut Value, change: &Change, now: Millis) -> Result<(), ApplyError> {
    let object = object_mut(doc)?;
    match change {
        Change::Progress { at, fingerprint } => {
            let lifecycle = lifecycle_mut(object)?;
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
    }
    Ok(())
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
            "recorded_at": clock::format_rfc3339(now),
            "format": digest.and_then(|d| d.format).map(|f| f.as_str()),
            "thread_id": digest.and_then(|d| d.thread_id.clone()),
            "assistant_message_preview": digest.and_then(|d| d.final_text.clone()),
            "total_token_usage": digest.and_then(|d| d.usage.clone()),
            "process_exit": finalization.exit_code.map(|code| json!({"success": code == 0, "exit_code": code})),
            "raw_output_preview": digest.map(|d| d.raw_preview.clone()).filter(|p| !p.is_empty()),
            "raw_output_bytes": digest.map_or(0, |d| d.bytes),
        }),
    );
    let failure = match finalization.verdict.reason {
        Some(reason) if !completed => json!({
            "stage": "execution",
            "reason": reason,
            "summary": failure_summary(finalization, reason),
            "recorded_at": clock::format_rfc3339(now),
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

/// The path of a delegation's event stream: `worker_launch_evidence.raw_events_file`, else
/// `raw-events/<delegation_id>.jsonl` when the id is a safe file name.
pub fn stream_path(doc: &Delegation<'_>) -> Option<PathBuf> {
    if let Some(path) = doc
        .worker_launch_evidence
        .value()
        .and_then(|e| e.raw_events_file.str())
        .filter(|p| !p.is_empty())
    {
        return Some(PathBuf::from(path));
    }
    let id = doc.delegation_id.str()?;
    safe_id(id).then(|| PathBuf::from(format!("raw-events/{id}.jsonl")))
}

/// `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
pub fn safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

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
            files::display_path(&self.path),
            self.error
        )
    }
}

/// Stats (and, when `read`, digests) a delegation's stream under SPEC §1.3. `Ok(None)` when
/// there is no stream file.
pub fn look_at_stream(
    root: &RunRoot,
    path: &Path,
    policy: NamedPathPolicy,
    read: impl FnOnce(&Stream) -> bool,
) -> Result<Option<Stream>, StreamError> {
    let fail = |error: String| StreamError {
        path: path.to_path_buf(),
        error,
    };
    let named = match files::open_named(root, path, policy) {
        Ok(named) => named,
        Err(ReadError::NotFound) => return Ok(None),
        Err(error) => return Err(fail(error.to_string())),
    };
    let mut stream = Stream {
        mtime_ms: named.meta.mtime_ms,
        size: named.meta.size,
        digest: None,
    };
    if read(&stream) {
        let file = named
            .open_for_read(root, path, policy)
            .map_err(|error| fail(error.to_string()))?;
        let digest = events::digest(file).map_err(|error| fail(files::io_message(&error)))?;
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
}

impl<'a> Context<'a> {
    pub fn new(run: &'a Run, config: &'a Config, host: &'a LazyHost) -> Context<'a> {
        Context {
            run,
            config,
            host,
            settle_ms: config.settle,
            allow_outside: config.allow_outside_paths,
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
    let stream = match stream_path(doc) {
        None => None,
        Some(path) => look_at_stream(&ctx.run.root, &path, policy, |stream| match case {
            Case::Live => false,
            Case::Gone => true,
            Case::Unsure => stream_is_newer(times, stream),
        })?,
    };
    Ok(decide(
        case,
        times,
        stream.as_ref(),
        stamp,
        exit_code,
        ctx.config.now,
        ctx.settle_ms,
    ))
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
                let change = match plan(&ctx, item.doc, item.times, item.facts, item.meta.uid) {
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
                        replan(&ctx, bytes, item.meta.uid)
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
        crate::status::stdout_failed(diag, &error);
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
    use crate::events::Terminal;

    const NOW: Millis = 1_795_334_400_000;

    fn times(last_progress: Option<Millis>) -> Times {
        Times {
            last_progress_at: last_progress,
            ..Times::default()
        }
    }

    fn fingerprint() -> Fingerprint {
        Fingerprint {
            start_ticks: 42,
            boot_id: "boot".into(),
            pid_ns: 7,
        }
    }

    fn stream(mtime: Millis, digest: Option<Digest>) -> Stream {
        Stream {
            mtime_ms: mtime,
            size: 10,
            digest,
        }
    }

    fn success_digest() -> Digest {
        Digest {
            format: Some(events::Format::Codex),
            terminal: Some(Terminal {
                event: "turn.completed",
                outcome: Outcome::Success,
                interrupted: false,
                message: None,
            }),
            thread_id: Some("thread-1".into()),
            final_text: Some("Done.".into()),
            usage: Some(json!({"input_tokens": 5})),
            bytes: 120,
            lines: 3,
            json_lines: 3,
            ..Digest::default()
        }
    }

    #[test]
    fn live_workers_progress_from_the_mtime_and_get_a_fingerprint() {
        let t = times(Some(NOW - 10_000));
        let newer = stream(NOW - 1_000, None);
        assert_eq!(
            decide(
                Case::Live,
                &t,
                Some(&newer),
                Some(fingerprint()),
                None,
                NOW,
                5_000
            ),
            Some(Change::Progress {
                at: NOW - 1_000,
                fingerprint: Some(fingerprint())
            })
        );
        let older = stream(NOW - 20_000, None);
        assert_eq!(
            decide(Case::Live, &t, Some(&older), None, None, NOW, 5_000),
            None
        );
        assert_eq!(
            decide(
                Case::Live,
                &t,
                Some(&older),
                Some(fingerprint()),
                None,
                NOW,
                5_000
            ),
            Some(Change::Fingerprint(fingerprint()))
        );
        // A stream stamped in the future counts as now.
        let future = stream(NOW + 60_000, None);
        assert_eq!(
            decide(Case::Live, &t, Some(&future), None, None, NOW, 5_000),
            Some(Change::Progress {
                at: NOW,
                fingerprint: None
            })
        );
        assert_eq!(decide(Case::Live, &t, None, None, None, NOW, 5_000), None);
    }

    #[test]
    fn gone_workers_finalize_at_once_on_a_terminal_event() {
        let t = times(Some(NOW - 10_000));
        let fresh = stream(NOW - 100, Some(success_digest()));
        let Some(Change::Finalize(done)) =
            decide(Case::Gone, &t, Some(&fresh), None, None, NOW, 5_000)
        else {
            panic!("expected a finalization");
        };
        assert_eq!(done.verdict.status, Outcome::Success);
        assert_eq!(done.completed_at, NOW - 100);
    }

    #[test]
    fn gone_workers_without_a_terminal_event_wait_for_the_stream_to_settle() {
        let t = times(Some(NOW - 10_000));
        let partial = Digest {
            format: Some(events::Format::Codex),
            bytes: 50,
            ..Digest::default()
        };
        let unsettled = stream(NOW - 4_999, Some(partial.clone()));
        assert_eq!(
            decide(Case::Gone, &t, Some(&unsettled), None, None, NOW, 5_000),
            None
        );
        let settled = stream(NOW - 5_000, Some(partial));
        let Some(Change::Finalize(done)) =
            decide(Case::Gone, &t, Some(&settled), None, None, NOW, 5_000)
        else {
            panic!("expected a finalization");
        };
        assert_eq!(done.verdict.reason, Some("interrupted"));
    }

    #[test]
    fn gone_workers_without_a_stream_fail_unknown() {
        let Some(Change::Finalize(done)) =
            decide(Case::Gone, &times(None), None, None, None, NOW, 5_000)
        else {
            panic!("expected a finalization");
        };
        assert_eq!(done.verdict.status, Outcome::Failure);
        assert_eq!(done.verdict.reason, Some("unknown"));
        assert_eq!(done.completed_at, NOW);
        assert_eq!(
            result_summary(&done),
            "Worker process exited without an event stream."
        );
        let with_exit = decide(Case::Gone, &times(None), None, None, Some(2), NOW, 5_000);
        let Some(Change::Finalize(done)) = with_exit else {
            panic!()
        };
        assert_eq!(done.verdict.reason, Some("execution_failed"));
    }

    #[test]
    fn unsure_workers_finalize_only_on_a_terminal_event() {
        let t = times(Some(NOW - 10_000));
        let unchanged = stream(NOW - 10_000, None);
        assert_eq!(
            decide(Case::Unsure, &t, Some(&unchanged), None, None, NOW, 5_000),
            None
        );
        let done = stream(NOW - 1_000, Some(success_digest()));
        assert!(matches!(
            decide(Case::Unsure, &t, Some(&done), None, None, NOW, 5_000),
            Some(Change::Finalize(_))
        ));
        let partial = stream(
            NOW - 1_000,
            Some(Digest {
                bytes: 5,
                ..Digest::default()
            }),
        );
        assert_eq!(
            decide(Case::Unsure, &t, Some(&partial), None, None, NOW, 5_000),
            Some(Change::Progress {
                at: NOW - 1_000,
                fingerprint: None
            })
        );
    }

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

    #[test]
    fn default_stream_paths_come_only_from_safe_ids() {
        assert!(safe_id("d-1.a_b"));
        assert!(!safe_id("."));
        assert!(!safe_id(".."));
        assert!(!safe_id("../x"));
        assert!(!safe_id("a/b"));
        assert!(!safe_id(""));
        assert!(!safe_id(&"x".repeat(129)));
        let doc = crate::doc::parse_delegation(br#"{"delegation_id":"../../etc/passwd"}"#).unwrap();
        assert_eq!(stream_path(&doc), None);
        let doc = crate::doc::parse_delegation(br#"{"delegation_id":"d1"}"#).unwrap();
        assert_eq!(
            stream_path(&doc),
            Some(PathBuf::from("raw-events/d1.jsonl"))
        );
        let doc = crate::doc::parse_delegation(
            br#"{"delegation_id":"d1","worker_launch_evidence":{"raw_events_file":"/abs/s.jsonl"}}"#,
        )
        .unwrap();
        assert_eq!(stream_path(&doc), Some(PathBuf::from("/abs/s.jsonl")));
    }
}
