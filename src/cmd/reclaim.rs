//! reclaim: terminates stuck workers and their process trees, all in one grace period, and
//! records the outcome (SPEC §3.3).
//!
//! The pure decisions (`triage`, `Termination`, the `Reclaim` record) live in
//! `core::plan::reclaim`; `termination` and `Reclaim::apply` here decide what the signals
//! showed and what is written. The shell opens each verified worker as a pidfd, snapshots its
//! descendants from `/proc`, sends SIGTERM then SIGCONT to every target of every worker at
//! once, waits for all of them against one deadline, sends SIGKILL to survivors, and records
//! only the workers whose processes are confirmed gone.

use crate::cmd::refresh;
use crate::config::Config;
use crate::core::identity::{self, Identity, Observation, Pid};
use crate::core::lifecycle::{ProcessFacts, ReclaimState, State};
use crate::core::plan::reclaim::{Reclaim, Termination, Triage, triage, uid_allowed};
use crate::core::plan::refresh::Change;
use crate::exit::Exit;
use crate::fs::RunLock;
use crate::model::Int;
use crate::output::{Diagnostics, Output, Ts};
use crate::proc::{self, OpenError, Sent, Signal, Target, Waited};
use crate::runstate::RunState as StateDoc;
use crate::scan::{self, LazyHost, Listing, Run};
use crate::shell::commit::{
    self, ApplyError, DocChange, Place, Written, lifecycle_mut, object_mut, set_status, ts,
};
use crate::stop::Stop;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

/// The nested-namespace guard (SPEC §3.1): for a delegation not owned by root, a worker whose
/// `NSpid:` line has more than one entry (a sandbox) is not signalled without
/// `--allow-nested-pidns`; one whose line cannot be read is not signalled either.
pub fn nested_guard(triage: Triage, file_owner: u32, allow_nested: bool) -> Triage {
    match triage {
        Triage::Signal { pid, .. }
            if file_owner != 0
                && !allow_nested
                && crate::proc::in_nested_pid_ns(pid) != Some(false) =>
        {
            Triage::Skip(Termination::SkippedNested)
        }
        other => other,
    }
}

/// The termination of a signalled worker. Pure: from what the signals and waits showed.
/// A worker still alive is `survived` only when SIGKILL was sent; otherwise the run was
/// stopped before it (`interrupted`).
pub fn termination(
    term: Sent,
    exited_in_grace: bool,
    exited_after_kill: bool,
    kill_sent: bool,
) -> Termination {
    match term {
        Sent::NotPermitted => Termination::NotPermitted,
        Sent::Gone | Sent::Changed => Termination::AlreadyExited,
        Sent::Delivered if exited_in_grace => Termination::Terminated,
        Sent::Delivered if exited_after_kill => Termination::Killed,
        Sent::Delivered if kill_sent => Termination::Survived,
        Sent::Delivered => Termination::Interrupted,
    }
}

impl DocChange for Reclaim {
    fn action(&self) -> &'static str {
        "reclaimed"
    }

    fn detail(&self) -> Map<String, Value> {
        let mut detail = Map::new();
        detail.insert("state".into(), json!(self.state.as_str()));
        detail.insert("process_id".into(), json!(self.process_id));
        detail.insert("termination".into(), json!(self.termination.as_str()));
        detail.insert("signal_via".into(), json!(self.signal_via));
        detail.insert(
            "descendants_signalled".into(),
            json!(self.descendants_signalled),
        );
        detail.insert("survivors".into(), json!(self.survivors));
        detail.insert("summary".into(), json!(self.summary()));
        detail
    }

    fn apply(&self, doc: &mut Value, now: i64) -> Result<(), ApplyError> {
        if orchestrator_ended(doc) {
            return self.merge(doc, now);
        }
        let object = object_mut(doc)?;
        lifecycle_mut(object)?;
        let summary = self.summary();
        object.insert("updated_at".into(), ts(now));
        object.insert("completed_at".into(), ts(now));
        object.insert("result_summary".into(), json!(summary));
        // An operator's reclaim (--force) cancels; one for lack of progress fails.
        let (status, reason) = match self.by_operator() {
            true => ("cancelled", "operator"),
            false => ("failed", "timeout"),
        };
        object.insert(
            "latest_failure".into(),
            json!({
                "stage": "execution",
                "reason": reason,
                "summary": summary,
                "recorded_at": ts(now),
            }),
        );
        set_status(object, status);
        object.insert(
            "reclaim".into(),
            json!({
                "signal_via": self.signal_via,
                "termination": self.termination.as_str(),
                "descendants_signalled": self.descendants_signalled,
                "survivors": self.survivors,
            }),
        );
        let lifecycle = lifecycle_mut(object)?;
        let state = if self.by_operator() {
            "cancelled"
        } else {
            self.state.as_str()
        };
        lifecycle.insert("state".into(), json!(state));
        lifecycle.insert("reclaim_state".into(), json!("reclaimed"));
        lifecycle.insert("process_last_seen_at".into(), ts(now));
        lifecycle.insert("returned_at".into(), ts(now));
        lifecycle.insert("summary".into(), json!(summary));
        if let Some(at) = self.stale_at {
            lifecycle.insert("stale_at".into(), ts(at));
        }
        if let Some(at) = self.timed_out_at {
            lifecycle.insert("timed_out_at".into(), ts(at));
        }
        Ok(())
    }
}

/// Whether the orchestrator already gave the document a terminal status (it may reap the
/// child during the grace and record its end): reclaim then merges its fields into it.
fn orchestrator_ended(doc: &Value) -> bool {
    matches!(
        doc.get("child_agent")
            .and_then(|agent| agent.get("status"))
            .and_then(Value::as_str),
        Some("completed" | "failed" | "cancelled")
    )
}

impl Reclaim {
    /// Merges flatline's reclaim fields into a document whose terminal status was set by
    /// someone else (SPEC §3.3: once a signal is sent, the record must land): `reclaim`,
    /// `worker_lifecycle.reclaim_state`, and `latest_failure` when none is set. The status
    /// and everything else the orchestrator wrote are kept.
    pub fn merge(&self, doc: &mut Value, now: i64) -> Result<(), ApplyError> {
        let object = object_mut(doc)?;
        lifecycle_mut(object)?.insert("reclaim_state".into(), json!("reclaimed"));
        object.insert(
            "reclaim".into(),
            json!({
                "signal_via": self.signal_via,
                "termination": self.termination.as_str(),
                "descendants_signalled": self.descendants_signalled,
                "survivors": self.survivors,
            }),
        );
        if object.get("latest_failure").is_none_or(Value::is_null) {
            object.insert(
                "latest_failure".into(),
                json!({
                    "stage": "execution",
                    "reason": "timeout",
                    "summary": self.summary(),
                    "recorded_at": ts(now),
                }),
            );
        }
        Ok(())
    }
}

/// A target finalized as refresh would, with the termination that says why.
#[derive(Debug, Clone, PartialEq)]
pub struct Finalized {
    pub change: Change,
    pub termination: Termination,
}

impl DocChange for Finalized {
    fn action(&self) -> &'static str {
        "finalized"
    }

    fn detail(&self) -> Map<String, Value> {
        let mut detail = Map::new();
        detail.insert("termination".into(), json!(self.termination.as_str()));
        detail.extend(self.change.detail());
        detail
    }

    fn apply(&self, doc: &mut Value, now: i64) -> Result<(), ApplyError> {
        self.change.apply(doc, now)
    }
}

/// A run being reclaimed: its lock is held until the end, but for the waits.
struct RunState<'a> {
    run: &'a Run,
    lock: Option<RunLock>,
    listing: Listing,
    wrote: bool,
    /// Orphaned notes this run completed or took over: dropped from `state.json`.
    seen_orphans: Vec<String>,
    /// The lock is held (false once it could not be taken again after the waits).
    locked: bool,
}

/// A worker to signal, with everything needed to record it afterwards.
struct Pending {
    run: usize,
    name: OsString,
    path: PathBuf,
    bytes: Vec<u8>,
    owner: u32,
    delegation_id: Option<String>,
    info: TargetInfo,
    kill: Kill,
}

/// One worker's processes being reclaimed: what was opened, sent and seen.
#[derive(Debug)]
pub struct Kill {
    pub pid: Pid,
    start_ticks: u64,
    /// The delegation file's owner, for the uid guard of the descendants.
    owner: u32,
    worker: Option<Target>,
    descendants: Vec<Target>,
    /// Descendants found but not signalled (another user's), for the record.
    skipped_descendants: Vec<i32>,
    term: Option<Sent>,
    exited_in_grace: bool,
    exited_after_kill: bool,
    /// SIGKILL was sent (the wait was not interrupted first).
    kill_sent: bool,
    survivors: Vec<i32>,
}

impl Kill {
    pub fn new(pid: Pid, start_ticks: u64, owner: u32) -> Kill {
        Kill {
            pid,
            start_ticks,
            owner,
            worker: None,
            descendants: Vec::new(),
            skipped_descendants: Vec::new(),
            term: None,
            exited_in_grace: false,
            exited_after_kill: false,
            kill_sent: false,
            survivors: Vec::new(),
        }
    }

    /// How the worker ended (call after `signal_all`).
    pub fn termination(&self) -> Termination {
        termination(
            self.term.unwrap_or(Sent::Gone),
            self.exited_in_grace,
            self.exited_after_kill,
            self.kill_sent,
        )
    }

    pub fn signal_via(&self) -> Option<&'static str> {
        self.worker.as_ref().map(|w| w.signal_via())
    }

    /// Every opened handle: the worker first (when it was opened), then its descendants.
    fn handles(&self) -> impl Iterator<Item = &Target> {
        self.worker.iter().chain(self.descendants.iter())
    }

    /// Adds the descendants of `roots` in `table` that are not known yet, each validated,
    /// held to the uid guard and opened (and sent `signal` at once, when given). The walk
    /// goes on through a process the guard excludes; only signalling skips it. Returns how
    /// many handles were added.
    fn adopt(
        &mut self,
        table: &[identity::ProcEntry],
        roots: &[(i32, u64)],
        config: &Config,
        host: &identity::Host,
        budget: &mut u64,
        signal: Option<Signal>,
    ) -> usize {
        let mut added = 0;
        for &(root, root_start) in roots {
            for entry in identity::descendants(table, root, root_start) {
                if entry.exited
                    || entry.pid == self.pid.get()
                    || self.descendants.iter().any(|d| d.pid().get() == entry.pid)
                    || self.skipped_descendants.contains(&entry.pid)
                {
                    continue;
                }
                // Never flatline itself or one of its ancestors, never pid 0 or 1.
                let Ok(pid) = identity::validate_found(entry.pid, host) else {
                    continue;
                };
                let allowed = proc::real_uid(pid)
                    .is_some_and(|uid| uid_allowed(uid, self.owner, config.allow_foreign_uid));
                if !allowed {
                    self.skipped_descendants.push(entry.pid);
                    continue;
                }
                if let Ok(handle) = open_counted(pid, entry.start_ticks, budget) {
                    if let Some(signal) = signal {
                        handle.send(signal);
                    }
                    self.descendants.push(handle);
                    added += 1;
                }
            }
        }
        added
    }

    pub fn descendants_signalled(&self) -> Vec<i32> {
        self.descendants.iter().map(|d| d.pid().get()).collect()
    }

    pub fn survivors(&self) -> &[i32] {
        &self.survivors
    }

    /// The record of a worker whose processes are confirmed gone; `None` otherwise.
    pub fn reclaim(&self, target: &TargetInfo) -> Option<Reclaim> {
        let termination = self.termination();
        matches!(termination, Termination::Terminated | Termination::Killed).then(|| Reclaim {
            state: target.state,
            termination,
            process_id: target.process_id,
            stale_at: target.stale_at,
            timed_out_at: target.timed_out_at,
            signal_via: self.signal_via(),
            descendants_signalled: self.descendants_signalled(),
            survivors: self.survivors.clone(),
        })
    }

    /// Warns about what was not reclaimed: surviving descendants, a worker that could not
    /// be signalled or survived. Raises the exit status to 1 for each.
    pub fn warn(&self, path: &std::path::Path, diag: &mut Diagnostics) {
        if !self.survivors.is_empty() {
            diag.warning(
                path,
                &format!(
                    "descendants of worker {} survived SIGKILL: {:?}",
                    self.pid, self.survivors
                ),
            );
            diag.raise(Exit::Attention);
        }
        let termination = self.termination();
        if matches!(
            termination,
            Termination::NotPermitted | Termination::Survived | Termination::Interrupted
        ) {
            diag.warning(
                path,
                &format!(
                    "worker process {} {}: left reclaim_needed",
                    self.pid,
                    if termination == Termination::NotPermitted {
                        "may not be signalled (EPERM)"
                    } else if termination == Termination::Survived {
                        "is still alive after SIGKILL"
                    } else {
                        "is still alive; the run stopped before SIGKILL"
                    }
                ),
            );
            diag.raise(Exit::Attention);
        }
    }

    /// The action record's detail for a worker that was not marked.
    pub fn skipped_detail(&self, target: &TargetInfo) -> Map<String, Value> {
        let mut detail = Map::new();
        detail.insert("state".into(), json!(target.state.as_str()));
        detail.insert("process_id".into(), json!(target.process_id));
        detail.insert("termination".into(), json!(self.termination().as_str()));
        detail.insert("signal_via".into(), json!(self.signal_via()));
        detail.insert(
            "descendants_signalled".into(),
            json!(self.descendants_signalled()),
        );
        detail.insert("survivors".into(), json!(self.survivors));
        detail
    }
}

/// What the last look before the first signal decided for one target (SPEC §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Still stuck, and its record can be written: it may be signalled.
    Go,
    /// Its stream or document shows progress since the plan, or it no longer needs the
    /// reclaim that was planned: dropped (`progressed`), nothing signalled.
    Progressed(String),
    /// Its record could not be written: never signalled (`skipped_unrecordable`, exit 3).
    Unrecordable(String),
}

/// What the plan knew of a signal target, for the last look at it.
pub struct Planned<'a> {
    pub run: &'a Run,
    pub dir: &'a crate::fs::Dir,
    pub name: &'a std::ffi::OsStr,
    pub owner: u32,
    pub process_id: Option<Int>,
}

/// Room kept under the 16 MiB bound for what is known only once the signals are sent (the
/// descendants signalled, the survivors), so a record that fits now still fits then.
const RECORD_MARGIN: usize = 64 * 1024;

/// The last look at a target just before the first signal: its document is re-read and its
/// stream stat'ed (progress since the plan drops it), and the change it will get is applied
/// and serialized in memory, the file checked replaceable (one link, a regular file in a
/// directory flatline may write). `apply` is that change.
pub fn last_look(
    planned: &Planned<'_>,
    config: &Config,
    host: &LazyHost,
    apply: &dyn Fn(&mut Value) -> Result<(), ApplyError>,
) -> Gate {
    match crate::fs::lstatat(planned.dir.fd(), planned.name) {
        Err(error) => return Gate::Unrecordable(crate::fs::io_message(&error)),
        Ok(meta) if !meta.is_regular() => {
            return Gate::Unrecordable(format!("is {}, not a regular file", meta.kind()));
        }
        Ok(meta) if meta.nlink != 1 => {
            return Gate::Unrecordable(format!(
                "has {} hard links, so it is never replaced",
                meta.nlink
            ));
        }
        Ok(_) => {}
    }
    if !planned.dir.writable() {
        return Gate::Unrecordable("its directory is not writable by flatline".into());
    }
    let mut bytes = Vec::new();
    if let Err(error) =
        planned
            .dir
            .read_file(planned.name, crate::fs::MAX_DOCUMENT_BYTES, &mut bytes)
    {
        return Gate::Unrecordable(error.to_string());
    }
    let stream_mtime = stream_mtime(&bytes, planned, config, host);
    // The clock as it is now, for the clock-skew cut: a stream written since the run read
    // its clock is progress, one dated further ahead is not evidence.
    let now = config.now.max(crate::proc::now_ms());
    match recheck(&bytes, stream_mtime, planned.process_id, now, config, host) {
        Err(error) => return Gate::Unrecordable(error),
        Ok(Some(why)) => return Gate::Progressed(why),
        Ok(None) => {}
    }
    match recorded_size(&bytes, apply) {
        Err(error) => Gate::Unrecordable(error),
        Ok(size) if size.saturating_add(RECORD_MARGIN) > crate::fs::MAX_DOCUMENT_BYTES => {
            Gate::Unrecordable(format!(
                "its record would make it {size} bytes or more, over the 16 MiB bound"
            ))
        }
        Ok(_) => Gate::Go,
    }
}

/// The modification time of the stream a document names (stat only, under SPEC §1.3 as
/// the document's owner); `None` when there is none or it cannot be used.
fn stream_mtime(
    bytes: &[u8],
    planned: &Planned<'_>,
    config: &Config,
    host: &LazyHost,
) -> Option<i64> {
    let path = scan::inspect(bytes, config, host, |doc, _, _, _| {
        refresh::stream_path(doc)
    })
    .ok()
    .flatten()?;
    let policy = crate::fs::NamedPathPolicy {
        allow_outside: config.allow_outside_paths,
        owner: planned.owner,
    };
    refresh::look_at_stream(&planned.run.root, &path, policy, |_| false)
        .ok()
        .flatten()
        .map(|stream| stream.mtime_ms)
}

/// The re-check of SPEC §3.3, pure but for the process facts of the re-read document:
/// `Some(why)` when the document as it is now, with a stream modified after its progress
/// baseline counting as progress at that time, no longer needs the reclaim planned for
/// `process_id`. A stream dated more than `--max-clock-skew` past `now` is not evidence
/// (an agent cannot make itself unreclaimable with `touch -d 2099`).
pub fn recheck(
    bytes: &[u8],
    stream_mtime: Option<i64>,
    process_id: Option<Int>,
    now: i64,
    config: &Config,
    host: &LazyHost,
) -> Result<Option<String>, String> {
    let baseline = scan::inspect(bytes, config, host, |_, _, _, view| view.last_progress_at)
        .map_err(|error| error.to_string())?;
    let trusted =
        stream_mtime.filter(|&mtime| mtime <= now.saturating_add(config.thresholds.max_clock_skew));
    let moved = match (trusted, baseline) {
        (Some(mtime), Some(base)) if mtime > base => Some(mtime),
        (Some(mtime), None) => Some(mtime),
        _ => None,
    };
    let patched;
    let bytes = match moved {
        Some(mtime) => {
            let mut value: Value = serde_json::from_slice(bytes)
                .map_err(|error| format!("cannot rewrite: {error}"))?;
            let object = object_mut(&mut value).map_err(|ApplyError(e)| e)?;
            // Written since the run read its clock: progress now, for this run's view.
            lifecycle_mut(object)
                .map_err(|ApplyError(e)| e)?
                .insert("last_progress_at".into(), ts(mtime.min(config.now)));
            patched = crate::model::render(&value);
            &patched[..]
        }
        None => bytes,
    };
    scan::inspect(bytes, config, host, |_, _, _, view| {
        if view.reclaim_state != ReclaimState::ReclaimNeeded && !forced(config, view) {
            Some(match moved {
                Some(mtime) => format!(
                    "its event stream was written at {} since the plan",
                    crate::core::time::format_rfc3339(mtime)
                ),
                None => "its document no longer needs a reclaim".to_string(),
            })
        } else if view.process_id != process_id {
            Some("its document names another process now".to_string())
        } else {
            None
        }
    })
    .map_err(|error| error.to_string())
}

/// Whether `reclaim --delegation ID --force` takes this delegation although it does not need
/// reclaim: an operator's reclaim of a running worker (any sub-state) that is not reclaimed
/// yet. The identity and uid guards of `triage` still decide whether anything is signalled.
fn forced(config: &Config, view: &crate::core::lifecycle::View<'_>) -> bool {
    config.force && view.status == "running" && view.reclaim_state != ReclaimState::Reclaimed
}

/// The size of a document once `apply` changed it, as it would be written.
fn recorded_size(
    bytes: &[u8],
    apply: &dyn Fn(&mut Value) -> Result<(), ApplyError>,
) -> Result<usize, String> {
    let mut value: Value =
        serde_json::from_slice(bytes).map_err(|error| format!("cannot rewrite: {error}"))?;
    apply(&mut value).map_err(|ApplyError(error)| error)?;
    Ok(crate::model::render(&value).len())
}

/// `last_look`, reported: a dropped target gets its `skipped` action record (and, when its
/// record could not be written, an error line and exit 3). True when it may be signalled.
#[allow(clippy::too_many_arguments)]
pub fn gate(
    planned: &Planned<'_>,
    info: &TargetInfo,
    config: &Config,
    host: &LazyHost,
    apply: &dyn Fn(&mut Value) -> Result<(), ApplyError>,
    place: Place<'_>,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> bool {
    let (termination, why) = match last_look(planned, config, host, apply) {
        Gate::Go => return true,
        Gate::Progressed(why) => (Termination::Progressed, why),
        Gate::Unrecordable(why) => {
            diag.error(
                place.path,
                &format!("not reclaimed (skipped_unrecordable): {why}"),
                Exit::FileProblem,
            );
            (Termination::SkippedUnrecordable, why)
        }
    };
    let mut detail = Map::new();
    detail.insert("state".into(), json!(info.state.as_str()));
    detail.insert("process_id".into(), json!(info.process_id));
    detail.insert("termination".into(), json!(termination.as_str()));
    detail.insert("reason".into(), json!(why));
    // A failing stdout stops the printing, never the work.
    let _ = place.record("skipped", "not_written", detail, output, diag);
    false
}

/// The reclaim record a signalled target will get, as far as it is known before the
/// signals: what the last look applies in memory to check that it can be written.
pub fn placeholder_record(info: &TargetInfo) -> Reclaim {
    Reclaim {
        state: info.state,
        termination: Termination::SkippedUnrecordable,
        process_id: info.process_id,
        stale_at: info.stale_at,
        timed_out_at: info.timed_out_at,
        signal_via: Some("pidfd"),
        descendants_signalled: Vec::new(),
        survivors: Vec::new(),
    }
}

/// Debug builds only: `FLATLINE_TEST_PAUSE_BEFORE_SIGNAL=<path>` makes flatline create
/// `<path>` once its targets are planned, just before their last look, and wait (at most
/// 60 s) until the test removes it: so a test can change a stream or a document between
/// the plan and the signal. Release builds have no such hook.
pub fn test_pause_before_signal() {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("FLATLINE_TEST_PAUSE_BEFORE_SIGNAL") {
        let path = std::path::PathBuf::from(path);
        if std::fs::write(&path, b"paused\n").is_ok() {
            let began = Instant::now();
            while path.exists() && began.elapsed() < std::time::Duration::from_secs(60) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// The `.flatline/state.json` section where signalled targets are noted before the first
/// signal (SPEC §3.3), so that a run stopped before it could record them is completed by
/// the next one, and a run that takes the lock meanwhile leaves them to their flatline.
pub const SIGNALLED: &str = "signalled";

/// One signalled target, as noted in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    /// The delegation's file name in `delegations/`.
    pub delegation: String,
    pub pid: i32,
    pub start_ticks: u64,
    pub boot_id: Option<String>,
    /// `stale` or `timed_out`: what its record will say.
    pub state: &'static str,
    pub signal: &'static str,
    pub time: i64,
    /// The signalling flatline: pid and start time.
    pub flatline_pid: i32,
    pub flatline_start_ticks: u64,
}

impl Noted {
    pub fn to_value(&self) -> Value {
        json!({
            "delegation": self.delegation,
            "pid": self.pid,
            "fingerprint": {"start_ticks": self.start_ticks, "boot_id": self.boot_id},
            "state": self.state,
            "signal": self.signal,
            "time": ts(self.time),
            "flatline": {"pid": self.flatline_pid, "start_ticks": self.flatline_start_ticks},
        })
    }

    /// An entry as stored; `None` for anything flatline did not write.
    pub fn from_value(value: &Value) -> Option<Noted> {
        let int = |v: Option<&Value>| v.and_then(Value::as_i64);
        let fingerprint = value.get("fingerprint")?;
        let flatline = value.get("flatline")?;
        Some(Noted {
            delegation: value.get("delegation")?.as_str()?.to_string(),
            pid: i32::try_from(int(value.get("pid"))?).ok()?,
            start_ticks: fingerprint.get("start_ticks")?.as_u64()?,
            boot_id: fingerprint
                .get("boot_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            state: match value.get("state").and_then(Value::as_str) {
                Some("timed_out") => "timed_out",
                _ => "stale",
            },
            signal: "SIGTERM",
            time: value
                .get("time")
                .and_then(Value::as_str)
                .and_then(crate::core::time::parse_rfc3339)?,
            flatline_pid: i32::try_from(int(flatline.get("pid"))?).ok()?,
            flatline_start_ticks: flatline.get("start_ticks")?.as_u64()?,
        })
    }
}

/// The note of one target about to be signalled by this flatline (`me`).
pub fn note_of(
    name: &std::ffi::OsStr,
    kill: &Kill,
    state: State,
    boot_id: Option<String>,
    now: i64,
    me: (i32, u64),
) -> Noted {
    Noted {
        delegation: name.to_string_lossy().into_owned(),
        pid: kill.pid.get(),
        start_ticks: kill.start_ticks,
        boot_id,
        state: state.as_str(),
        signal: "SIGTERM",
        time: now,
        flatline_pid: me.0,
        flatline_start_ticks: me.1,
    }
}

/// This flatline, as its notes name it: pid and start time.
pub fn own_identity() -> (i32, u64) {
    let pid = i32::try_from(std::process::id()).unwrap_or(0);
    (pid, proc::start_ticks_of(pid).unwrap_or(0))
}

/// What the notes of earlier or concurrent runs mean for this one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// Delegations another flatline, still running, signalled and is waiting on: left to it.
    pub theirs: HashSet<String>,
    /// Targets of a flatline that is gone: this run completes their records.
    pub orphans: BTreeMap<String, Noted>,
}

/// Sorts noted targets by whether their flatline still runs. Pure: `alive(pid)` is the start
/// time of the process holding that pid now.
pub fn classify(
    notes: Vec<Noted>,
    me: (i32, u64),
    boot_id: Option<&str>,
    alive: &dyn Fn(i32) -> Option<u64>,
) -> Ledger {
    let mut ledger = Ledger::default();
    for note in notes {
        let same_boot = note.boot_id.as_deref() == boot_id;
        let running = same_boot
            && (note.flatline_pid, note.flatline_start_ticks) != me
            && alive(note.flatline_pid) == Some(note.flatline_start_ticks);
        if running {
            ledger.theirs.insert(note.delegation);
        } else {
            ledger.orphans.insert(note.delegation.clone(), note);
        }
    }
    ledger
}

/// Whether the process a note names has exited (or the machine was rebooted since). Pure.
pub fn noted_process_gone(
    note: &Noted,
    boot_id: Option<&str>,
    alive: &dyn Fn(i32) -> Option<u64>,
) -> bool {
    note.boot_id.as_deref() != boot_id || alive(note.pid) != Some(note.start_ticks)
}

/// Whether a note still speaks for the document: it names the process the note's signal
/// went to (an orchestrator may have launched another worker in it since).
pub fn note_matches(note: &Noted, view: &crate::core::lifecycle::View<'_>) -> bool {
    view.process_id == Some(Int::from(note.pid))
}

/// The notes in `state.json`, and the state document they came from.
fn read_notes(state_dir: &crate::fs::Dir) -> Result<(StateDoc, Vec<Noted>), String> {
    let state = StateDoc::read(state_dir).map_err(|error| error.to_string())?;
    let notes = state
        .section(SIGNALLED)
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(Noted::from_value).collect())
        .unwrap_or_default();
    Ok((state, notes))
}

/// Reads the ledger of a run whose lock is held.
pub fn load_ledger(lock: &RunLock, host: &identity::Host) -> Result<Ledger, String> {
    let (_, notes) = read_notes(lock.state_dir())?;
    Ok(classify(
        notes,
        own_identity(),
        host.boot_id.as_deref(),
        &proc::start_ticks_of,
    ))
}

/// Rewrites the section under the lock: the notes `keep` accepts, then `add`. Only this
/// section changes; the file is written only when it did.
fn rewrite_notes(
    lock: &RunLock,
    keep: &dyn Fn(&Noted) -> bool,
    add: &[Noted],
) -> Result<(), String> {
    let (mut state, notes) = read_notes(lock.state_dir())?;
    let entries: Vec<Value> = notes
        .iter()
        .filter(|note| keep(note))
        .chain(add.iter())
        .map(Noted::to_value)
        .collect();
    if entries.is_empty() {
        state.remove_section(SIGNALLED);
    } else {
        state.set_section(SIGNALLED, Value::Array(entries));
    }
    state
        .write_if_changed(lock.state_dir())
        .map_err(|error| error.to_string())
}

/// What a reclaim record needs to know of the delegation.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub state: State,
    pub process_id: Option<Int>,
    pub stale_at: Option<i64>,
    pub timed_out_at: Option<i64>,
}

impl Pending {
    fn place<'a>(&'a self, states: &'a [RunState<'_>]) -> Place<'a> {
        Place {
            command: "reclaim",
            run: states[self.run].run,
            path: &self.path,
            delegation_id: self.delegation_id.as_deref(),
        }
    }
}

/// `flatline reclaim`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let plan_document = config.dry_run && config.format == crate::cli::Format::Json;
    let mut output = if plan_document {
        Output::capture()
    } else {
        Output::for_runs(config, &runs)
    };
    let host = LazyHost::default();
    let plan_table = PlanTable::default();
    let mut states: Vec<RunState<'_>> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut interrupted = None;

    for run in &runs {
        if let Some(exit) = stop.check() {
            interrupted = Some(exit);
            break;
        }
        let Some(lock) = commit::lock_run(run, config, stop, diag) else {
            continue;
        };
        let Some(listing) = scan::list_for_writing(run, "delegations", config, diag) else {
            continue;
        };
        let index = states.len();
        let ctx = refresh::Context::new(run, config, &host);
        let mut wrote = false;
        let ledger = match &lock {
            Some(lock) => load_ledger(lock, host.get()).unwrap_or_else(|error| {
                diag.error(
                    &crate::runstate::path_of(&run.path),
                    &error,
                    Exit::FileProblem,
                );
                Ledger::default()
            }),
            None => Ledger::default(),
        };
        let mut seen_orphans = Vec::new();
        let duplicated = match config.force {
            true => crate::cmd::finalize::duplicated(&listing, &config.delegations),
            false => Default::default(),
        };
        let result = scan::for_each_in_listing(
            run,
            &listing,
            config,
            &host,
            diag,
            stop,
            &mut |item, diag| {
                let view = item.view;
                let place = Place {
                    command: "reclaim",
                    run,
                    path: item.path,
                    delegation_id: view.delegation_id,
                };
                let name = item.name.to_string_lossy();
                // Another flatline signalled it and is waiting out its grace: its own.
                if ledger.theirs.contains(name.as_ref()) {
                    return Ok(());
                }
                if let Some(note) = ledger.orphans.get(name.as_ref()) {
                    seen_orphans.push(name.to_string());
                    let boot_id = host.get().boot_id.clone();
                    if note_matches(note, view)
                        && noted_process_gone(note, boot_id.as_deref(), &proc::start_ticks_of)
                    {
                        if crate::core::lifecycle::is_reclaimed(item.doc) {
                            return Ok(());
                        }
                        let target = commit::Target {
                            dir: item.dir,
                            name: item.name,
                            bytes: item.bytes,
                        };
                        let written = complete_orphan(target, note, view, config, stop);
                        wrote |= written.wrote();
                        return commit::report(place, &written, &mut output, diag);
                    }
                }
                if view.reclaim_state != ReclaimState::ReclaimNeeded && !forced(config, view) {
                    return Ok(());
                }
                // --force acts on neither of two files with one delegation_id (SPEC §13).
                if config.force
                    && let Some(other) = duplicated.get(item.name)
                {
                    let message = format!(
                        "duplicate_delegation_id: {} claims the same delegation_id; --force acts on neither",
                        other.to_string_lossy()
                    );
                    diag.error(item.path, &message, Exit::Attention);
                    return Ok(());
                }
                let owner = crate::fs::guard_owner(&item.meta);
                if config.dry_run {
                    print_dry_run(
                        view,
                        item.facts,
                        owner,
                        config,
                        &host,
                        &plan_table,
                        place,
                        &mut output,
                        diag,
                    );
                    return Ok(());
                }
                let decided = match triage(item.facts, owner, config.allow_foreign_uid) {
                    // --force is for a live, verified worker: no process, nothing to force.
                    Triage::NoProcess if config.force => {
                        Triage::Skip(Termination::SkippedInvalidPid)
                    }
                    decided => decided,
                };
                match nested_guard(decided, owner, config.allow_nested_pidns) {
                    Triage::Skip(termination) => skip(
                        place,
                        termination,
                        view.state,
                        view.process_id,
                        item.facts,
                        owner,
                        &mut output,
                        diag,
                    ),
                    Triage::Finalize(termination) => {
                        let planned = refresh::plan(&ctx, item.doc, item.times, item.facts, owner);
                        let target = commit::Target {
                            dir: item.dir,
                            name: item.name,
                            bytes: item.bytes,
                        };
                        let written = finalize(
                            target,
                            planned,
                            termination,
                            config,
                            &ctx,
                            owner,
                            place,
                            &mut output,
                            diag,
                        )?;
                        wrote |= written;
                        Ok(())
                    }
                    Triage::NoProcess => {
                        let change = Reclaim {
                            state: view.state,
                            termination: Termination::NoProcess,
                            process_id: None,
                            stale_at: view.stale_at,
                            timed_out_at: view.timed_out_at,
                            signal_via: None,
                            descendants_signalled: Vec::new(),
                            survivors: Vec::new(),
                        };
                        let target = commit::Target {
                            dir: item.dir,
                            name: item.name,
                            bytes: item.bytes,
                        };
                        let again = change.clone();
                        let written = commit::write_change(
                            target,
                            change,
                            config.now,
                            config.dry_run,
                            |bytes| still_needs_no_process_reclaim(bytes, config, &host, &again),
                        );
                        wrote |= written.wrote();
                        commit::report(place, &written, &mut output, diag)
                    }
                    Triage::Signal {
                        pid, start_ticks, ..
                    } => {
                        pending.push(Pending {
                            run: index,
                            name: item.name.to_os_string(),
                            path: item.path.to_path_buf(),
                            bytes: item.bytes.to_vec(),
                            owner,
                            delegation_id: view.delegation_id.map(str::to_string),
                            info: TargetInfo {
                                state: view.state,
                                process_id: view.process_id,
                                stale_at: view.stale_at,
                                timed_out_at: view.timed_out_at,
                            },
                            kill: Kill::new(pid, start_ticks, owner),
                        });
                        Ok(())
                    }
                }
            },
        );
        states.push(RunState {
            run,
            lock,
            listing,
            wrote,
            seen_orphans,
            locked: true,
        });
        if let Err(exit) = result {
            interrupted = Some(exit);
            break;
        }
    }

    if !config.dry_run && interrupted.is_none() && !pending.is_empty() {
        test_pause_before_signal();
        pending.retain(|target| {
            let state = &states[target.run];
            let planned = Planned {
                run: state.run,
                dir: &state.listing.dir,
                name: &target.name,
                owner: target.owner,
                process_id: target.info.process_id,
            };
            let record = placeholder_record(&target.info);
            gate(
                &planned,
                &target.info,
                config,
                &host,
                &|doc| record.apply(doc, config.now),
                target.place(&states),
                &mut output,
                diag,
            )
        });
    }
    let me = own_identity();
    let mut unlanded: Vec<(usize, String)> = Vec::new();
    if !config.dry_run && interrupted.is_none() && !pending.is_empty() {
        note_targets(
            &mut pending,
            &mut states,
            config,
            me,
            &host,
            &mut output,
            diag,
        );
    }
    if !config.dry_run && interrupted.is_none() && !pending.is_empty() {
        let host_facts = host.get();
        // Nothing but waiting until the records: the lock is let go meanwhile.
        for state in states.iter_mut() {
            if let Some(lock) = &mut state.lock {
                let _ = lock.release();
            }
        }
        let mut kills: Vec<&mut Kill> = pending.iter_mut().map(|p| &mut p.kill).collect();
        match signal_all(&mut kills, config, host_facts, stop) {
            Ok(()) => {}
            Err(exit) => interrupted = Some(exit),
        }
        for state in states.iter_mut() {
            if let Some(lock) = &mut state.lock {
                let wait = stop.remaining().unwrap_or(commit::LANDING_PATIENCE);
                if let Err(error) = lock.reacquire(Some(wait), &|| false) {
                    diag.error(
                        &state.run.path.join(".flatline/lock"),
                        &format!(
                            "could not take the run's lock again after the grace ({error}); \
                             its reclaims stay noted in state.json for the next run"
                        ),
                        Exit::FileProblem,
                    );
                    state.locked = false;
                }
            }
        }
        unlanded = record_all(
            &mut pending,
            &mut states,
            config,
            &host,
            stop,
            &mut output,
            diag,
        );
    }
    // The notes of this run's records that landed, and the orphans it saw, are done.
    for state in states.iter().filter(|s| s.locked) {
        let Some(lock) = &state.lock else {
            continue;
        };
        let index = states
            .iter()
            .position(|s| std::ptr::eq(s, state))
            .unwrap_or(usize::MAX);
        let unlanded: Vec<String> = unlanded
            .iter()
            .filter(|(run, _)| *run == index)
            .map(|(_, name)| name.clone())
            .collect();
        if let Err(error) = forget_notes(lock, me, &unlanded, &state.seen_orphans) {
            diag.error(
                &crate::runstate::path_of(&state.run.path),
                &error,
                Exit::FileProblem,
            );
        }
    }

    for state in &states {
        commit::sync(&state.listing.dir, state.wrote, diag);
    }
    if plan_document {
        print_plan_document(output, diag);
    } else if let Err(error) = output.finish::<Value>(&[], &diag.errors.clone(), "") {
        crate::cmd::status::stdout_failed(diag, &error);
    }
    if let Some(exit) = interrupted {
        diag.raise(exit);
    }
    diag.exit
}

/// After a conflict, for a worker marked reclaimed without a process: the mark still
/// applies only if the re-read document still needs a reclaim and still names no process
/// (an orchestrator may have recorded a pid or fresh progress meanwhile).
pub fn still_needs_no_process_reclaim(
    bytes: &[u8],
    config: &Config,
    host: &LazyHost,
    change: &Reclaim,
) -> Result<Option<Reclaim>, String> {
    scan::inspect(bytes, config, host, |doc, _, facts, view| {
        let running = crate::core::lifecycle::child_status(doc)
            == crate::core::lifecycle::ChildStatus::Running;
        (running
            && view.reclaim_state == ReclaimState::ReclaimNeeded
            && matches!(facts, ProcessFacts::NoPid))
        .then(|| change.clone())
    })
    .map_err(|error| error.to_string())
}

#[allow(clippy::too_many_arguments)]
fn skip(
    place: Place<'_>,
    termination: Termination,
    state: State,
    process_id: Option<Int>,
    facts: &ProcessFacts,
    owner: u32,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> Result<(), Exit> {
    let why = skip_reason(termination, facts, owner);
    diag.warning(
        place.path,
        &format!("not reclaimed ({}): {why}", termination.as_str()),
    );
    diag.raise(Exit::Attention);
    let mut detail = Map::new();
    detail.insert("state".into(), json!(state.as_str()));
    detail.insert("process_id".into(), json!(process_id));
    detail.insert("termination".into(), json!(termination.as_str()));
    detail.insert("reason".into(), json!(why));
    place.record("skipped", "not_written", detail, output, diag)
}

/// Why a target is left alone, in words.
fn skip_reason(termination: Termination, facts: &ProcessFacts, owner: u32) -> String {
    match (termination, facts) {
        (Termination::SkippedInvalidPid, ProcessFacts::Invalid(invalid)) => invalid.to_string(),
        (
            Termination::SkippedForeign,
            ProcessFacts::Checked {
                observation: Observation::Alive { uid, .. },
                pid,
                ..
            },
        ) => {
            let runs_as = match uid {
                Some(uid) => format!("runs as uid {uid}"),
                None => "runs as a uid /proc does not show".to_string(),
            };
            if owner == crate::fs::FOREIGN_OWNER {
                format!(
                    "process {pid} {runs_as}, and the delegation file is nobody's word (several \
                     links, or writable by others: SPEC §1.3)"
                )
            } else {
                format!(
                    "process {pid} {runs_as}, the delegation file belongs to uid {owner} (see --allow-foreign-uid)"
                )
            }
        }
        (Termination::SkippedUnverifiable, ProcessFacts::Checked { pid, .. }) => {
            format!("process {pid} cannot be verified as the worker")
        }
        _ => "the process id cannot be used".to_string(),
    }
}

/// One target of a `--dry-run` plan: the same record, built by the same code, in `reclaim`
/// and in `sweep`, for every target whatever would happen to it (SPEC §3.3.4).
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunTarget {
    /// What would happen: `reclaimed` (signalled, or marked without a process),
    /// `finalized` (its process is gone or its pid reused) or `skipped`.
    pub action: &'static str,
    pub state: State,
    pub process_id: Option<Int>,
    pub process_identity: Option<&'static str>,
    pub last_progress_at: Option<i64>,
    pub elapsed_since_progress_ms: Option<i64>,
    pub summary: &'static str,
    /// The termination it would get; `None` for one to be signalled (the signals decide).
    pub termination: Option<Termination>,
    /// Why it would be left alone.
    pub reason: Option<String>,
    /// The worker to signal, for `would_signal`: (pid, start ticks, file owner).
    signal: Option<(Pid, u64, u32)>,
    pub would_signal: Vec<i32>,
    pub skipped_descendants: Vec<i32>,
}

impl DryRunTarget {
    /// The plan for one `reclaim_needed` view. Pure: `fill_pids` adds the tree.
    pub fn plan(
        view: &crate::core::lifecycle::View<'_>,
        facts: &ProcessFacts,
        owner: u32,
        allow_foreign: bool,
        allow_nested: bool,
    ) -> DryRunTarget {
        let triage = nested_guard(triage(facts, owner, allow_foreign), owner, allow_nested);
        let (action, termination, reason, signal) = match triage {
            Triage::Signal { pid, start_ticks } => {
                ("reclaimed", None, None, Some((pid, start_ticks, owner)))
            }
            Triage::NoProcess => ("reclaimed", Some(Termination::NoProcess), None, None),
            Triage::Finalize(termination) => ("finalized", Some(termination), None, None),
            Triage::Skip(termination) => (
                "skipped",
                Some(termination),
                Some(skip_reason(termination, facts, owner)),
                None,
            ),
        };
        DryRunTarget {
            action,
            state: view.state,
            process_id: view.process_id,
            process_identity: view.process_identity.map(Identity::as_str),
            last_progress_at: view.last_progress_at,
            elapsed_since_progress_ms: view.elapsed_since_progress_ms,
            summary: view.summary,
            termination,
            reason,
            signal,
            would_signal: Vec::new(),
            skipped_descendants: Vec::new(),
        }
    }

    /// The pids a reclaim would signal (the worker and the descendants that pass the same
    /// checks) and those it would skip; nothing is opened or sent.
    pub fn fill_pids(
        &mut self,
        table: &[identity::ProcEntry],
        config: &Config,
        host: &identity::Host,
    ) {
        let Some((pid, start_ticks, owner)) = self.signal else {
            return;
        };
        self.would_signal = vec![pid.get()];
        if config.only_process {
            return;
        }
        for entry in identity::descendants(table, pid.get(), start_ticks) {
            if entry.exited {
                continue;
            }
            match identity::validate_found(entry.pid, host) {
                Ok(found)
                    if proc::real_uid(found)
                        .is_some_and(|uid| uid_allowed(uid, owner, config.allow_foreign_uid)) =>
                {
                    self.would_signal.push(entry.pid)
                }
                _ => self.skipped_descendants.push(entry.pid),
            }
        }
    }

    /// The action record's detail: every field, always.
    pub fn detail(&self) -> Map<String, Value> {
        let mut detail = Map::new();
        detail.insert("state".into(), json!(self.state.as_str()));
        detail.insert("process_id".into(), json!(self.process_id));
        detail.insert("process_identity".into(), json!(self.process_identity));
        detail.insert("last_progress_at".into(), json!(Ts(self.last_progress_at)));
        detail.insert(
            "elapsed_since_progress_ms".into(),
            json!(self.elapsed_since_progress_ms),
        );
        detail.insert("summary".into(), json!(self.summary));
        detail.insert(
            "termination".into(),
            json!(self.termination.map(Termination::as_str)),
        );
        detail.insert("reason".into(), json!(self.reason));
        detail.insert("would_signal".into(), json!(self.would_signal));
        detail.insert(
            "skipped_descendants".into(),
            json!(self.skipped_descendants),
        );
        detail
    }

    /// Prints the plan record; a skipped target is said on stderr and needs attention, as
    /// in a real run.
    pub fn print(&self, place: Place<'_>, output: &mut Output, diag: &mut Diagnostics) {
        if let (Some(termination), Some(why)) = (self.termination, &self.reason) {
            diag.warning(
                place.path,
                &format!("would not be reclaimed ({}): {why}", termination.as_str()),
            );
        }
        if self.termination.is_some_and(Termination::needs_attention) {
            diag.raise(Exit::Attention);
        }
        // A failing stdout stops the printing (reported where it failed), never the work.
        let _ = place.record(self.action, "dry_run", self.detail(), output, diag);
    }
}

/// The process table for dry-run plans: read once, when the first plan needs it.
#[derive(Default)]
pub struct PlanTable(std::cell::OnceCell<Vec<identity::ProcEntry>>);

impl PlanTable {
    pub fn get(&self) -> &[identity::ProcEntry] {
        self.0.get_or_init(proc::process_table)
    }
}

/// Plans and prints one dry-run target.
#[allow(clippy::too_many_arguments)]
pub fn print_dry_run(
    view: &crate::core::lifecycle::View<'_>,
    facts: &ProcessFacts,
    owner: u32,
    config: &Config,
    host: &LazyHost,
    table: &PlanTable,
    place: Place<'_>,
    output: &mut Output,
    diag: &mut Diagnostics,
) {
    let mut target = DryRunTarget::plan(
        view,
        facts,
        owner,
        config.allow_foreign_uid,
        config.allow_nested_pidns,
    );
    if target.signal.is_some() {
        target.fill_pids(table.get(), config, host.get());
    }
    target.print(place, output, diag);
}

/// Finalizes a target whose process is gone or whose pid was reused, as refresh would.
/// Returns whether a file was written.
#[allow(clippy::too_many_arguments)]
fn finalize(
    target: commit::Target<'_>,
    planned: Result<Option<Change>, refresh::StreamError>,
    termination: Termination,
    config: &Config,
    ctx: &refresh::Context<'_>,
    owner: u32,
    place: Place<'_>,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> Result<bool, Exit> {
    let change = match planned {
        Ok(Some(change)) => change,
        Ok(None) => {
            let mut detail = Map::new();
            detail.insert("termination".into(), json!(termination.as_str()));
            detail.insert(
                "reason".into(),
                json!(
                    "its event stream has not settled yet; a later refresh or reclaim finalizes it"
                ),
            );
            place.record("skipped", "not_written", detail, output, diag)?;
            return Ok(false);
        }
        Err(problem) => {
            diag.error(place.path, &problem.to_string(), Exit::FileProblem);
            return Ok(false);
        }
    };
    let written = commit::write_change(
        target,
        Finalized {
            change,
            termination,
        },
        config.now,
        config.dry_run,
        |bytes| {
            refresh::replan(ctx, bytes, owner).map(|next| {
                next.map(|change| Finalized {
                    change,
                    termination,
                })
            })
        },
    );
    commit::report(place, &written, output, diag)?;
    Ok(written.wrote())
}

/// Opens every worker, snapshots the descendants, signals everyone at once, waits once.
/// Survivors of the grace have their trees frozen with SIGSTOP and snapshot again (children
/// forked during the grace die too), then get SIGKILL (SPEC §3.3 step 2).
/// `Err` when a signal or the deadline stopped it (what was done is still recorded).
pub fn signal_all(
    pending: &mut [&mut Kill],
    config: &Config,
    host: &identity::Host,
    stop: &Stop,
) -> Result<(), Exit> {
    let batch = send_term(pending, config, host, stop)?;
    finish(pending, batch, config, host, stop)
}

/// Workers sent SIGTERM together, waiting out one grace: what was seen to exit, per worker
/// and per handle (the worker first when it was opened, then its descendants).
#[derive(Debug)]
pub struct Batch {
    exited: Vec<Vec<bool>>,
    grace_end: Instant,
}

impl Batch {
    /// Its grace has passed: it is due for SIGKILL.
    pub fn due(&self) -> bool {
        Instant::now() >= self.grace_end
    }

    /// Batches finished together, their workers in the order given: one wait, until the
    /// latest grace.
    pub fn merge(batches: Vec<Batch>) -> Option<Batch> {
        let grace_end = batches.iter().map(|b| b.grace_end).max()?;
        let exited = batches.into_iter().flat_map(|b| b.exited).collect();
        Some(Batch { exited, grace_end })
    }
}

/// The first half of `signal_all`: opens every worker, snapshots the descendants, sends
/// SIGTERM then SIGCONT to all of them. `Err` (nothing sent) when a signal or the deadline
/// stopped the run before the first signal.
pub fn send_term(
    pending: &mut [&mut Kill],
    config: &Config,
    host: &identity::Host,
    stop: &Stop,
) -> Result<Batch, Exit> {
    let mut budget = proc::raise_descriptor_limit();
    for target in pending.iter_mut() {
        match open_counted(target.pid, target.start_ticks, &mut budget) {
            Ok(handle) => target.worker = Some(handle),
            Err(OpenError::Gone) => target.term = Some(Sent::Gone),
            Err(OpenError::Changed) => target.term = Some(Sent::Changed),
        }
    }
    if !config.only_process && pending.iter().any(|t| t.worker.is_some()) {
        let table = proc::process_table();
        for target in pending.iter_mut().filter(|t| t.worker.is_some()) {
            let roots = [(target.pid.get(), target.start_ticks)];
            target.adopt(&table, &roots, config, host, &mut budget, None);
        }
    }
    // The last moment to stop before the first signal.
    if let Some(exit) = stop.check() {
        return Err(exit);
    }
    for target in pending.iter_mut() {
        if let Some(worker) = &target.worker {
            target.term = Some(worker.send(Signal::Term));
        }
        for descendant in &target.descendants {
            descendant.send(Signal::Term);
        }
    }
    // A stopped process handles SIGTERM only once continued.
    for target in pending.iter() {
        for handle in target.handles() {
            handle.send(Signal::Cont);
        }
    }
    let exited: Vec<Vec<bool>> = pending
        .iter()
        .map(|t| vec![false; t.handles().count()])
        .collect();
    Ok(Batch {
        exited,
        grace_end: Instant::now() + config.grace,
    })
}

/// The second half of `signal_all`, for the workers `send_term` made `batch` of (same
/// order): waits until the grace has passed (never past the deadline), freezes the
/// survivors' trees and snapshots them again, sends SIGKILL, waits the kill wait, and
/// folds the outcome into each worker. `Err` when a signal or the deadline stopped it
/// before SIGKILL (what was seen is still folded).
pub fn finish(
    pending: &mut [&mut Kill],
    batch: Batch,
    config: &Config,
    host: &identity::Host,
    stop: &Stop,
) -> Result<(), Exit> {
    let Batch {
        mut exited,
        grace_end,
    } = batch;
    let mut budget = proc::raise_descriptor_limit();
    let grace_end = bounded(grace_end, stop);
    let waited = wait_all(pending, &mut exited, grace_end, stop);
    let in_grace: Vec<bool> = exited
        .iter()
        .map(|flags| flags.first().copied().unwrap_or(false))
        .collect();
    let mut result = Ok(());
    if waited == Waited::Interrupted {
        result = Err(stop.check().unwrap_or(Exit::Signal(libc::SIGTERM)));
    } else if waited == Waited::TimedOut {
        if let Some(exit) = stop.check() {
            result = Err(exit);
        } else {
            freeze_and_resnapshot(pending, &mut exited, config, host, &mut budget);
            for (target, flags) in pending.iter_mut().zip(&exited) {
                for (handle, done) in target.handles().zip(flags) {
                    if !done {
                        handle.send(Signal::Kill);
                    }
                }
                target.kill_sent = true;
            }
            let kill_end = bounded(Instant::now() + config.kill_wait, stop);
            if wait_all(pending, &mut exited, kill_end, stop) == Waited::Interrupted {
                result = Err(stop.check().unwrap_or(Exit::Signal(libc::SIGTERM)));
            }
        }
    }
    // Fold the outcome back per worker: the first handle of a worker that was opened is
    // the worker itself.
    for ((target, flags), grace) in pending.iter_mut().zip(&exited).zip(in_grace) {
        let skip = usize::from(target.worker.is_some());
        if target.worker.is_some() {
            target.exited_in_grace = grace;
            target.exited_after_kill = flags.first().copied().unwrap_or(false);
        }
        target.survivors = target
            .descendants
            .iter()
            .zip(flags.iter().skip(skip))
            .filter(|(_, done)| !**done)
            .map(|(handle, _)| handle.pid().get())
            .collect();
    }
    result
}

/// Opens a target with a pidfd while the descriptor budget lasts, else for `kill()`.
fn open_counted(pid: Pid, start_ticks: u64, budget: &mut u64) -> Result<Target, OpenError> {
    let handle = proc::open_target_with(pid, start_ticks, *budget > 0)?;
    if handle.holds_descriptor() {
        *budget = budget.saturating_sub(1);
    }
    Ok(handle)
}

/// How many rounds of snapshots a frozen tree gets before SIGKILL (SPEC §3.3).
const RESNAPSHOT_ROUNDS: usize = 3;

/// Freezes every process still alive with SIGSTOP, then snapshots `/proc` again (at most
/// `RESNAPSHOT_ROUNDS` times, until no new descendant appears): a child forked during the
/// grace is stopped and joins its worker's targets, so SIGKILL reaches it too.
fn freeze_and_resnapshot(
    pending: &mut [&mut Kill],
    exited: &mut [Vec<bool>],
    config: &Config,
    host: &identity::Host,
    budget: &mut u64,
) {
    for (target, flags) in pending.iter().zip(exited.iter()) {
        for (handle, done) in target.handles().zip(flags) {
            if !done {
                handle.send(Signal::Stop);
            }
        }
    }
    if config.only_process {
        return;
    }
    for _ in 0..RESNAPSHOT_ROUNDS {
        let table = proc::process_table();
        let mut added = 0;
        for (target, flags) in pending.iter_mut().zip(exited.iter_mut()) {
            let roots: Vec<(i32, u64)> = target
                .handles()
                .zip(flags.iter())
                .filter(|(_, done)| !**done)
                .map(|(handle, _)| (handle.pid().get(), handle.start_ticks()))
                .collect();
            if roots.is_empty() {
                continue;
            }
            let new = target.adopt(&table, &roots, config, host, budget, Some(Signal::Stop));
            flags.extend(std::iter::repeat_n(false, new));
            added += new;
        }
        if added == 0 {
            break;
        }
    }
}

/// Waits for every handle of every worker together; `exited` is per worker, per handle.
fn wait_all(pending: &[&mut Kill], exited: &mut [Vec<bool>], end: Instant, stop: &Stop) -> Waited {
    let targets: Vec<&Target> = pending.iter().flat_map(|t| t.handles()).collect();
    let mut flat: Vec<bool> = exited.iter().flatten().copied().collect();
    let stopping = || stop.check().is_some();
    let waited = proc::wait_for_exit(&targets, &mut flat, end, &stopping);
    let mut flags = flat.into_iter();
    for done in exited.iter_mut().flatten() {
        if let Some(flag) = flags.next() {
            *done = flag;
        }
    }
    waited
}

/// A wait deadline that never runs past the run's `--deadline`.
fn bounded(end: Instant, stop: &Stop) -> Instant {
    match stop.remaining() {
        Some(left) => end.min(Instant::now() + left),
        None => end,
    }
}

/// Writes the outcome of every signalled worker; only confirmed-gone workers are marked.
fn record_all(
    pending: &mut [Pending],
    states: &mut [RunState<'_>],
    config: &Config,
    host: &LazyHost,
    stop: &Stop,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> Vec<(usize, String)> {
    let mut unlanded = Vec::new();
    for target in pending.iter() {
        // Its run's lock could not be taken again: its note stays for the next run.
        if !states[target.run].locked {
            unlanded.push((target.run, target.name.to_string_lossy().into_owned()));
            continue;
        }
        let place = target.place(states);
        target.kill.warn(place.path, diag);
        let termination = target.kill.termination();
        let result = if let Some(change) = target.kill.reclaim(&target.info) {
            let state = &states[target.run];
            let file = commit::Target {
                dir: &state.listing.dir,
                name: &target.name,
                bytes: &target.bytes,
            };
            // The signals were sent: the record is merged into whatever is on disk now,
            // and retried until the deadline.
            let written =
                commit::write_change_landing(file, change.clone(), config.now, stop, |_| {
                    Ok(Some(change.clone()))
                });
            let wrote = written.wrote();
            if matches!(written, Written::Conflict(_) | Written::Failed { .. }) {
                unlanded.push((target.run, target.name.to_string_lossy().into_owned()));
            }
            let reported = commit::report(place, &written, output, diag);
            states[target.run].wrote |= wrote;
            reported
        } else if termination == Termination::AlreadyExited {
            // It exited on its own between the scan and the signal: finalize it as refresh
            // would, from the bytes that were read.
            let state = &states[target.run];
            let ctx = refresh::Context::new(state.run, config, host);
            let planned = scan::inspect(&target.bytes, config, host, |doc, times, facts, _| {
                refresh::plan(&ctx, doc, times, facts, target.owner)
            });
            let planned = match planned {
                Ok(planned) => planned,
                Err(error) => {
                    diag.error(&target.path, &error.to_string(), Exit::FileProblem);
                    continue;
                }
            };
            let file = commit::Target {
                dir: &state.listing.dir,
                name: &target.name,
                bytes: &target.bytes,
            };
            match finalize(
                file,
                planned,
                termination,
                config,
                &ctx,
                target.owner,
                place,
                output,
                diag,
            ) {
                Ok(wrote) => {
                    states[target.run].wrote |= wrote;
                    Ok(())
                }
                Err(exit) => Err(exit),
            }
        } else {
            place.record(
                "skipped",
                "not_written",
                target.kill.skipped_detail(&target.info),
                output,
                diag,
            )
        };
        // A failing stdout stops the printing (reported where it failed), never the
        // records of workers already signalled.
        let _ = result;
    }
    unlanded
}

/// Notes every target about to be signalled in its run's `state.json` (SPEC §3.3), before
/// the first signal. A run whose notes cannot be written gets no signal: its targets are
/// skipped as unrecordable.
fn note_targets(
    pending: &mut Vec<Pending>,
    states: &mut [RunState<'_>],
    config: &Config,
    me: (i32, u64),
    host: &LazyHost,
    output: &mut Output,
    diag: &mut Diagnostics,
) {
    let boot_id = host.get().boot_id.clone();
    let mut refused = Vec::new();
    for (index, state) in states.iter().enumerate() {
        let notes: Vec<Noted> = pending
            .iter()
            .filter(|target| target.run == index)
            .map(|target| {
                note_of(
                    &target.name,
                    &target.kill,
                    target.info.state,
                    boot_id.clone(),
                    config.now,
                    me,
                )
            })
            .collect();
        let Some(lock) = &state.lock else {
            continue;
        };
        if notes.is_empty() {
            continue;
        }
        if let Err(error) = note_before_signal(lock, &notes, &state.seen_orphans) {
            diag.error(
                &crate::runstate::path_of(&state.run.path),
                &format!("cannot note the targets before signalling them: {error}"),
                Exit::FileProblem,
            );
            refused.push(index);
        }
    }
    pending.retain(|target| {
        if !refused.contains(&target.run) {
            return true;
        }
        let mut detail = Map::new();
        detail.insert("state".into(), json!(target.info.state.as_str()));
        detail.insert("process_id".into(), json!(target.info.process_id));
        detail.insert(
            "termination".into(),
            json!(Termination::SkippedUnrecordable.as_str()),
        );
        detail.insert(
            "reason".into(),
            json!("its signal could not be noted in .flatline/state.json first"),
        );
        let _ = target
            .place(states)
            .record("skipped", "not_written", detail, output, diag);
        false
    });
}

/// Notes this run's targets before the first signal: the notes of the same delegations and
/// the orphans this run completed or took over are replaced.
pub fn note_before_signal(
    lock: &RunLock,
    notes: &[Noted],
    seen_orphans: &[String],
) -> Result<(), String> {
    let keep = |note: &Noted| {
        !seen_orphans.contains(&note.delegation)
            && !notes.iter().any(|n| n.delegation == note.delegation)
    };
    rewrite_notes(lock, &keep, notes)
}

/// Once the records are written: this run's notes are dropped but those whose record did
/// not land (`unlanded`), and so are the orphans it completed or took over.
pub fn forget_notes(
    lock: &RunLock,
    me: (i32, u64),
    unlanded: &[String],
    seen_orphans: &[String],
) -> Result<(), String> {
    let keep = |note: &Noted| {
        let mine = (note.flatline_pid, note.flatline_start_ticks) == me;
        !seen_orphans.contains(&note.delegation) && (!mine || unlanded.contains(&note.delegation))
    };
    rewrite_notes(lock, &keep, &[])
}

/// The record of a target a flatline that is gone signalled (its note is in `state.json`)
/// and whose process has exited since: `reclaimed`, termination `terminated`, never
/// finalized as a natural death.
pub fn orphan_record(note: &Noted, view: &crate::core::lifecycle::View<'_>) -> Reclaim {
    Reclaim {
        state: if note.state == "timed_out" {
            State::TimedOut
        } else {
            State::Stale
        },
        termination: Termination::Terminated,
        process_id: view.process_id,
        stale_at: view.stale_at,
        timed_out_at: view.timed_out_at,
        signal_via: None,
        descendants_signalled: Vec::new(),
        survivors: Vec::new(),
    }
}

/// Writes `orphan_record`, merged and retried like every record of a signal.
fn complete_orphan(
    target: commit::Target<'_>,
    note: &Noted,
    view: &crate::core::lifecycle::View<'_>,
    config: &Config,
    stop: &Stop,
) -> commit::Written<Reclaim> {
    let change = orphan_record(note, view);
    let again = change.clone();
    commit::write_change_landing(target, change, config.now, stop, |_| {
        Ok(Some(again.clone()))
    })
}

/// The json form of a dry run: `{worker_auto_reclaim_enabled, reclaim_needed_worker_count,
/// targets, summary}` (SPEC §3.3.4).
fn print_plan_document(output: Output, diag: &mut Diagnostics) {
    let targets = output.into_rows();
    let count = targets.len();
    let stale = targets
        .iter()
        .filter(|t| t.get("state") == Some(&json!("stale")))
        .count();
    let timed_out = targets
        .iter()
        .filter(|t| t.get("state") == Some(&json!("timed_out")))
        .count();
    let summary = if count == 0 {
        "No worker needs reclaim.".to_string()
    } else {
        format!("{count} worker(s) need reclaim ({stale} stale, {timed_out} timed out).")
    };
    let document = json!({
        "worker_auto_reclaim_enabled": true,
        "reclaim_needed_worker_count": count,
        "targets": targets,
        "summary": summary,
    });
    let mut text = crate::output::to_string_safe(&document).unwrap_or_default();
    text.push('\n');
    if let Err(error) = crate::output::write_stdout(text.as_bytes()) {
        crate::cmd::status::stdout_failed(diag, &error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_no_process_mark_is_dropped_when_the_document_now_names_a_process_or_progress() {
        let low = crate::cli::parse([
            "reclaim",
            "--dry-run",
            "--now",
            "2026-11-22T08:00:00Z",
            "run",
        ])
        .unwrap();
        let command = low.command.unwrap();
        let config = crate::config::resolve(low, command, false).unwrap();
        let host = LazyHost::default();
        let change = Reclaim {
            state: State::Stale,
            termination: Termination::NoProcess,
            process_id: None,
            stale_at: None,
            timed_out_at: None,
            signal_via: None,
            descendants_signalled: Vec::new(),
            survivors: Vec::new(),
        };
        let doc = |lifecycle: &str| {
            format!(
                r#"{{"delegation_id":"d","child_agent":{{"status":"running"}},"worker_lifecycle":{lifecycle}}}"#
            )
        };
        let recheck = |lifecycle: &str| {
            still_needs_no_process_reclaim(doc(lifecycle).as_bytes(), &config, &host, &change)
                .unwrap()
        };
        // Still stale with no process: the mark stands.
        assert!(recheck(r#"{"last_progress_at":"2026-11-22T06:00:00Z"}"#).is_some());
        // The orchestrator recorded fresh progress, or a process, meanwhile: not any more.
        assert!(recheck(r#"{"last_progress_at":"2026-11-22T07:59:59Z"}"#).is_none());
        assert!(
            recheck(r#"{"last_progress_at":"2026-11-22T06:00:00Z","process_id":4242}"#).is_none()
        );
        // Finished meanwhile.
        assert!(
            still_needs_no_process_reclaim(
                br#"{"child_agent":{"status":"completed"},"worker_lifecycle":{}}"#,
                &config,
                &host,
                &change
            )
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn the_last_look_drops_a_target_whose_stream_or_document_moved_since_the_plan() {
        let low = crate::cli::parse([
            "reclaim",
            "--dry-run",
            "--now",
            "2026-11-22T08:00:00Z",
            "run",
        ])
        .unwrap();
        let command = low.command.unwrap();
        let config = crate::config::resolve(low, command, false).unwrap();
        let host = LazyHost::default();
        let now = crate::core::time::parse_rfc3339("2026-11-22T08:00:00Z").unwrap();
        let stale = br#"{"delegation_id":"d","child_agent":{"status":"running"},"worker_lifecycle":{"last_progress_at":"2026-11-22T06:00:00Z"}}"#;
        let check = |bytes: &[u8], mtime: Option<i64>| {
            recheck(bytes, mtime, None, now, &config, &host).unwrap()
        };
        assert_eq!(check(stale, None), None, "no evidence: still stuck");
        assert_eq!(
            check(stale, Some(now - 3 * 3_600_000)),
            None,
            "a stream older than the baseline is no progress"
        );
        assert!(
            check(stale, Some(now - 1_000)).is_some(),
            "a stream written a second ago is progress"
        );
        assert!(
            check(stale, Some(now + 1_000)).is_some(),
            "a stream written after flatline read its clock is progress"
        );
        assert_eq!(
            check(stale, Some(now + 86_400_000)),
            None,
            "a stream dated a day ahead is not evidence"
        );
        let fresh = br#"{"delegation_id":"d","child_agent":{"status":"running"},"worker_lifecycle":{"last_progress_at":"2026-11-22T07:59:59Z"}}"#;
        assert!(check(fresh, None).is_some(), "the document moved");
        let done =
            br#"{"delegation_id":"d","child_agent":{"status":"completed"},"worker_lifecycle":{}}"#;
        assert!(check(done, None).is_some(), "finished meanwhile");
        let other = br#"{"delegation_id":"d","child_agent":{"status":"running"},"worker_lifecycle":{"last_progress_at":"2026-11-22T06:00:00Z"}}"#;
        assert!(
            recheck(other, None, Some(4242), now, &config, &host)
                .unwrap()
                .is_some(),
            "the plan was for process 4242; the document names none now"
        );
    }

    #[test]
    fn a_record_that_would_pass_16_mib_is_not_recordable() {
        let info = TargetInfo {
            state: State::Stale,
            process_id: Some(4242),
            stale_at: None,
            timed_out_at: None,
        };
        let record = placeholder_record(&info);
        let apply = |doc: &mut Value| record.apply(doc, 0);
        let small = recorded_size(br#"{"worker_lifecycle":{}}"#, &apply).unwrap();
        assert!(small > 100);
        assert!(recorded_size(b"[1]", &apply).is_err(), "not an object");
        assert!(
            recorded_size(br#"{"x":"\ud800"}"#, &apply).is_err(),
            "a lone surrogate cannot be written back"
        );
    }

    #[test]
    fn a_record_is_merged_into_a_status_the_orchestrator_set_meanwhile() {
        let reclaim = Reclaim {
            state: State::Stale,
            termination: Termination::Terminated,
            process_id: Some(4242),
            stale_at: Some(0),
            timed_out_at: None,
            signal_via: Some("pidfd"),
            descendants_signalled: vec![4243],
            survivors: vec![],
        };
        let record = json!({"signal_via": "pidfd", "termination": "terminated",
                            "descendants_signalled": [4243], "survivors": []});
        let mut reaped = json!({
            "child_agent": {"status": "failed"},
            "worker_lifecycle": {"state": "failed", "exit_code": 143},
            "latest_failure": {"reason": "killed", "stage": "orchestrator"},
        });
        reclaim.apply(&mut reaped, 1_795_334_400_000).unwrap();
        assert_eq!(
            reaped,
            json!({
                "child_agent": {"status": "failed"},
                "worker_lifecycle": {"state": "failed", "exit_code": 143, "reclaim_state": "reclaimed"},
                "latest_failure": {"reason": "killed", "stage": "orchestrator"},
                "reclaim": record,
            }),
            "the orchestrator's status and failure are kept"
        );
        let mut completed = json!({"child_agent": {"status": "completed"}, "latest_failure": null});
        reclaim.apply(&mut completed, 1_795_334_400_000).unwrap();
        assert_eq!(completed["child_agent"]["status"], "completed");
        assert_eq!(
            completed["latest_failure"]["reason"], "timeout",
            "set when none is"
        );
        assert_eq!(completed["worker_lifecycle"]["reclaim_state"], "reclaimed");
        let mut running = json!({"child_agent": {"status": "running"}});
        reclaim.apply(&mut running, 1_795_334_400_000).unwrap();
        assert_eq!(
            running["child_agent"]["status"], "failed",
            "still running: the full record"
        );
    }

    fn note(delegation: &str, flatline: (i32, u64)) -> Noted {
        Noted {
            delegation: delegation.into(),
            pid: 4242,
            start_ticks: 99,
            boot_id: Some("boot-a".into()),
            state: "timed_out",
            signal: "SIGTERM",
            time: 1_795_334_400_000,
            flatline_pid: flatline.0,
            flatline_start_ticks: flatline.1,
        }
    }

    #[test]
    fn a_note_speaks_only_for_the_process_it_signalled() {
        let low = crate::cli::parse(["reclaim", "--dry-run", "run"]).unwrap();
        let command = low.command.unwrap();
        let config = crate::config::resolve(low, command, false).unwrap();
        let host = LazyHost::default();
        let noted = note("d.json", (77, 5));
        let matches = |lifecycle: &str| {
            let doc = format!(
                r#"{{"child_agent":{{"status":"running"}},"worker_lifecycle":{lifecycle}}}"#
            );
            scan::inspect(doc.as_bytes(), &config, &host, |_, _, _, view| {
                note_matches(&noted, view)
            })
            .unwrap()
        };
        assert!(matches(r#"{"process_id":4242}"#));
        assert!(
            !matches(r#"{"process_id":4243}"#),
            "another worker launched since"
        );
        assert!(!matches("{}"));
    }

    #[test]
    fn a_note_round_trips_and_anything_else_is_no_note() {
        let noted = note("d.json", (77, 5));
        assert_eq!(Noted::from_value(&noted.to_value()), Some(noted.clone()));
        assert_eq!(noted.to_value()["time"], "2026-11-22T08:00:00.000Z");
        assert_eq!(Noted::from_value(&json!({"delegation": "d.json"})), None);
        assert_eq!(Noted::from_value(&json!(42)), None);
    }

    #[test]
    fn notes_of_a_running_flatline_are_its_own_and_the_others_are_orphans() {
        let me = (10, 1);
        // pid 77 started at tick 5 still runs; pid 78 is another process now; 79 is gone.
        let alive = |pid: i32| match pid {
            77 => Some(5),
            78 => Some(6),
            4242 => Some(99),
            _ => None,
        };
        let mut other_boot = note("e.json", (77, 5));
        other_boot.boot_id = Some("boot-b".into());
        let ledger = classify(
            vec![
                note("a.json", (77, 5)),
                note("b.json", (78, 5)),
                note("c.json", (79, 5)),
                note("m.json", me),
                other_boot,
            ],
            me,
            Some("boot-a"),
            &alive,
        );
        assert_eq!(ledger.theirs, HashSet::from(["a.json".to_string()]));
        assert_eq!(
            ledger.orphans.keys().cloned().collect::<Vec<_>>(),
            ["b.json", "c.json", "e.json", "m.json"]
        );
        assert!(!noted_process_gone(
            &note("a.json", me),
            Some("boot-a"),
            &alive
        ));
        assert!(noted_process_gone(
            &note("a.json", me),
            Some("boot-b"),
            &alive
        ));
        let mut reused = note("a.json", me);
        reused.start_ticks = 100;
        assert!(noted_process_gone(&reused, Some("boot-a"), &alive));
    }

    #[test]
    fn terminations_never_claim_a_death_that_was_not_seen() {
        assert_eq!(
            termination(Sent::Delivered, true, true, false),
            Termination::Terminated
        );
        assert_eq!(
            termination(Sent::Delivered, false, true, true),
            Termination::Killed
        );
        assert_eq!(
            termination(Sent::Delivered, false, false, true),
            Termination::Survived
        );
        assert_eq!(
            termination(Sent::Delivered, false, false, false),
            Termination::Interrupted,
            "alive, and no SIGKILL was sent: the run was stopped first"
        );
        assert_eq!(
            termination(Sent::NotPermitted, false, false, false),
            Termination::NotPermitted
        );
        assert_eq!(
            termination(Sent::Gone, false, false, false),
            Termination::AlreadyExited
        );
        for t in [
            Termination::NotPermitted,
            Termination::Survived,
            Termination::Interrupted,
            Termination::SkippedForeign,
            Termination::SkippedInvalidPid,
            Termination::SkippedUnverifiable,
        ] {
            assert!(t.needs_attention());
        }
        assert!(!Termination::Killed.needs_attention());
    }

    #[test]
    fn the_record_carries_every_field() {
        let reclaim = Reclaim {
            state: State::TimedOut,
            termination: Termination::Killed,
            process_id: Some(4242),
            stale_at: None,
            timed_out_at: Some(1_795_334_300_000),
            signal_via: Some("pidfd"),
            descendants_signalled: vec![4243, 4250],
            survivors: vec![],
        };
        let mut doc = json!({
            "delegation_id": "d",
            "child_agent": {"status": "running"},
            "worker_lifecycle": {"started_at": "s", "state": "running_active"},
            "extra": 1
        });
        reclaim.apply(&mut doc, 1_795_334_400_000).unwrap();
        let summary = "Worker process 4242 exceeded the bounded timeout and was reclaimed by flatline (killed).";
        assert_eq!(
            doc,
            json!({
                "delegation_id": "d",
                "child_agent": {"status": "failed"},
                "worker_lifecycle": {
                    "started_at": "s", "state": "timed_out", "reclaim_state": "reclaimed",
                    "process_last_seen_at": "2026-11-22T08:00:00.000Z", "returned_at": "2026-11-22T08:00:00.000Z",
                    "summary": summary, "timed_out_at": "2026-11-22T07:58:20.000Z"
                },
                "extra": 1,
                "updated_at": "2026-11-22T08:00:00.000Z",
                "completed_at": "2026-11-22T08:00:00.000Z",
                "result_summary": summary,
                "latest_failure": {"stage": "execution", "reason": "timeout", "summary": summary,
                                   "recorded_at": "2026-11-22T08:00:00.000Z"},
                "reclaim": {"signal_via": "pidfd", "termination": "killed",
                            "descendants_signalled": [4243, 4250], "survivors": []}
            })
        );
        let stale = Reclaim {
            state: State::Stale,
            termination: Termination::NoProcess,
            process_id: None,
            ..reclaim
        };
        assert_eq!(
            stale.summary(),
            "Worker (no process recorded) stopped making progress and was reclaimed by flatline (no_process)."
        );
    }
}
