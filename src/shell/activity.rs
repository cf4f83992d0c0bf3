//! activity: the samples of running workers' process trees across one invocation (SPEC §11).
//!
//! The scan calls `Tracker::judge` for each delegation it inspects: a live, verified worker's
//! tree is sampled (one `/proc` table per look), compared with the sample kept in
//! `RUN_DIR/.flatline/activity.json`, and a stale or timed-out worker whose tree is busy is
//! turned `running_busy`. A worker about to be judged stale without a usable sample is left
//! for the second look: once per invocation, at the end of a run's scan, flatline waits until
//! `--activity-window` has passed since the first sample, takes a fresh table and inspects
//! those workers again. Writing commands (refresh, reclaim, sweep; not with `--dry-run`)
//! store the new samples; `status` writes nothing.

use crate::cli::Command;
use crate::cli::config::Config;
use crate::core::activity::{self, NoSample, ProcessSample, Sample, StoredSample, Verdict};
use crate::core::identity::{Host, Identity, Observation};
use crate::core::lifecycle::{ChildStatus, ProcessFacts, State, Times, View};
use crate::core::plan::refresh::Change;
use crate::core::time::{self, Millis};
use crate::exit::Exit;
use crate::fs::{Dir, ReadError};
use crate::output::Diagnostics;
use crate::proc::activity::Table;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::Path;

/// The file name inside `.flatline/`.
pub const FILE: &str = "activity.json";
/// Mode of a new file: the lock group may read it (SPEC §11).
pub const MODE: u32 = 0o640;
const MAX_BYTES: usize = 16 << 20;

mod carry;
mod stall;

/// What one invocation knows of activity; reset per run by `begin_run`.
#[derive(Debug, Default)]
pub struct Tracker {
    /// The current look at `/proc`, read on first need.
    table: Option<Table>,
    /// The second look (the one wait of this invocation) has been used.
    window_used: bool,
    /// The run being scanned.
    run: RunSamples,
    /// The delegation file being inspected.
    current: Option<String>,
    /// The delegation being inspected waits for the second look.
    defer_current: bool,
    /// The state its view was given after a sample, for the running_busy mark.
    judged: Option<State>,
    /// Reads what quiet trees wait on; one per run (it keeps each network namespace's TCP
    /// table).
    reader: crate::proc::stall::StallReader,
    /// `status --watch`: the previous passes' samples, by run (`carry`); `None` otherwise.
    carried: Option<carry::Carried>,
}

/// A document left for the second look: its name and the bytes and metadata as read (the
/// second look decides on the same document, without reading it again).
#[derive(Debug)]
pub struct Deferred {
    pub name: OsString,
    pub meta: crate::fs::FileMeta,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct RunSamples {
    /// As read from `activity.json`, by delegation file name.
    stored: BTreeMap<String, StoredSample>,
    /// The file's bytes as read (a run that changes nothing writes nothing).
    read_bytes: Option<Vec<u8>>,
    /// Taken in this run.
    fresh: BTreeMap<String, StoredSample>,
    /// The first samples of the documents set aside for the second look: what it compares
    /// with, however often a document is inspected again.
    first: BTreeMap<String, StoredSample>,
    /// Inspected in this run without a sample (not running, not verified): forgotten.
    unsampled: HashSet<String>,
    /// Documents left for the second look, in scan order, as read.
    deferred: Vec<Deferred>,
    /// The second look is running: compare with this run's first samples.
    second_look: bool,
    /// When the first sample of a deferred worker was taken (real clock).
    first_at: Option<Millis>,
    /// The stall diagnoses stored with the samples, by delegation file name.
    stored_stalls: stall::Stalls,
    /// This run's diagnoses (the second look's previous one is the first look's).
    fresh_stalls: stall::Stalls,
    /// A long-lived watch's recent samples of each worker, oldest first (`roll`).
    history: BTreeMap<String, VecDeque<StoredSample>>,
    /// The run's lock could not be taken again after the wait: nothing more is written.
    lock_lost: bool,
}

impl Tracker {
    /// Starts a run: reads its stored samples (a missing file is none).
    pub fn begin_run(
        &mut self,
        run_path: &Path,
        root: &Dir,
        config: &Config,
        diag: &mut Diagnostics,
    ) {
        self.run = RunSamples::default();
        self.reader = crate::proc::stall::StallReader::default();
        self.current = None;
        self.defer_current = false;
        let Some(policy) = config.activity else {
            return;
        };
        // One look at /proc serves every run of an invocation, unless it is older than the
        // window (a process that repeats its passes must not sample an old table).
        if self
            .table
            .as_ref()
            .is_some_and(|table| crate::proc::now_ms() - table.at_ms > policy.window)
        {
            self.table = None;
        }
        self.read_stored(run_path, root, diag);
        self.carry_in(run_path, policy.window, crate::proc::now_ms());
    }

    /// The samples (and stall diagnoses) kept in `.flatline/activity.json`; none when absent.
    fn read_stored(&mut self, run_path: &Path, root: &Dir, diag: &mut Diagnostics) {
        let Ok(Some(dir)) = root.open_child(OsStr::new(".flatline")) else {
            return;
        };
        let mut buf = Vec::new();
        match dir.read_file(OsStr::new(FILE), MAX_BYTES, &mut buf) {
            Ok(_) => match parse(&buf) {
                Some((stored, stalls)) => {
                    self.run.stored = stored;
                    self.run.stored_stalls = stalls;
                    self.run.read_bytes = Some(buf);
                }
                None => diag.warning(
                    &path_of(run_path),
                    "not a flatline activity document; its samples are ignored and replaced",
                ),
            },
            Err(ReadError::NotFound) => {}
            Err(error) => diag.error(&path_of(run_path), &error.to_string(), Exit::FileProblem),
        }
    }

    /// The delegation file about to be inspected (`None` when done).
    pub fn set_current(&mut self, name: Option<&OsStr>) {
        self.current = name.map(|n| n.to_string_lossy().into_owned());
        self.judged = None;
        self.defer_current = false;
    }

    /// The lifecycle state to record for the delegation being inspected when it enters or
    /// leaves `running_busy` (SPEC §11: the only writes activity causes), given the state
    /// its document records.
    pub fn busy_mark(&self, recorded: Option<&str>) -> Option<&'static str> {
        let state = self.judged?;
        let busy = state == State::RunningBusy;
        match (busy, recorded == Some("running_busy")) {
            (true, false) => Some("running_busy"),
            (false, true) => Some(state.as_str()),
            _ => None,
        }
    }

    /// Whether the delegation just inspected waits for the second look (and is kept for it,
    /// with the bytes and metadata it was read with).
    pub fn take_defer(&mut self, name: &OsStr, meta: crate::fs::FileMeta, bytes: &[u8]) -> bool {
        if !std::mem::take(&mut self.defer_current) {
            return false;
        }
        self.run.deferred.push(Deferred {
            name: name.to_os_string(),
            meta,
            bytes: bytes.to_vec(),
        });
        true
    }

    /// Whether documents wait for the second look and `--activity-window` has passed since
    /// their first sample: checked between files, so they are decided without a wait.
    pub fn window_passed(&self, config: &Config) -> bool {
        let window = config.activity.map_or(0, |policy| policy.window);
        match self.run.first_at {
            Some(first) if !self.run.deferred.is_empty() => {
                crate::proc::now_ms() >= first.saturating_add(window)
            }
            _ => false,
        }
    }

    /// Samples a running, verified worker's tree, compares it with the stored sample and,
    /// when it is busy, defers a stale or timed-out verdict (SPEC §11).
    pub fn judge(
        &mut self,
        view: &mut View<'_>,
        times: &Times,
        facts: &ProcessFacts,
        config: &Config,
        host: &Host,
    ) {
        let Some(policy) = config.activity else {
            return;
        };
        if config.command == Command::FanIn {
            return;
        }
        let Some(name) = self.current.clone() else {
            return;
        };
        let (pid, start_ticks) = match facts {
            ProcessFacts::Checked {
                pid,
                observation: Observation::Alive { start_ticks, .. },
                identity: Identity::Verified,
            } if view.child_status == ChildStatus::Running => (pid.get(), *start_ticks),
            _ => {
                self.run.unsampled.insert(name);
                return;
            }
        };
        let Some(current) = self.table.get_or_insert_with(Table::read).sample(
            pid,
            start_ticks,
            host.ticks_per_second,
        ) else {
            return;
        };
        let fingerprint = activity::fingerprint_key(
            pid,
            start_ticks,
            host.boot_id.as_deref().unwrap_or(""),
            host.pid_ns.unwrap_or(0),
        );
        let stored = if self.run.second_look {
            self.run.first.get(&name).or(self.run.stored.get(&name))
        } else {
            self.run.stored.get(&name)
        };
        let judged = activity::verdict(
            stored,
            &current,
            &fingerprint,
            &policy,
            view.thresholds.stale,
            current.at_ms,
        );
        let deferrable = activity::deferrable(view, times, config.now, &config.thresholds, &policy);
        if deferrable && judged.is_busy() {
            activity::defer(view, times, &judged);
        } else if deferrable
            && judged.has_no_sample()
            && !self.window_used
            && !self.run.second_look
            && matches!(
                config.command,
                Command::Status | Command::Explain | Command::Reclaim | Command::Sweep
            )
        {
            self.defer_current = true;
            // A stored sample only too recent to compare with is the first sample: the
            // second look waits out the rest of its window, not a whole one (a watch's
            // previous pass, a sweep a moment ago).
            let first = match (judged.verdict, stored) {
                (Verdict::NoSample(NoSample::TooRecent), Some(stored)) => stored.clone(),
                _ => StoredSample {
                    fingerprint: fingerprint.clone(),
                    sample: current.clone(),
                },
            };
            let first_at = self.run.first_at.get_or_insert(first.sample.at_ms);
            *first_at = (*first_at).min(first.sample.at_ms);
            self.run.first.insert(name.clone(), first);
        }
        self.diagnose_stall(&name, view, &judged, (pid, start_ticks), &fingerprint);
        view.activity = Some(judged);
        // Only the commands that judge on the operator's thresholds record running_busy
        // (refresh takes none: its marks would flap against the sweep's).
        if matches!(config.command, Command::Reclaim | Command::Sweep) {
            self.judged = Some(view.state);
        }
        // Kept for the second look (the first sample is what it compares with) and stored
        // by a writing command at the end of the run.
        self.run.fresh.insert(
            name,
            StoredSample {
                fingerprint,
                sample: current,
            },
        );
    }

    /// For a long-lived watch (`flatline run`), after each look: the samples just taken
    /// become the stored ones of the next look, each worker compared with its newest
    /// sample at least `window` older than the latest (so every look after the first
    /// window has a usable sample); the next look reads `/proc` afresh.
    pub fn roll(&mut self, window: Millis) {
        for (name, fresh) in std::mem::take(&mut self.run.fresh) {
            let history = self.run.history.entry(name.clone()).or_default();
            let latest = fresh.sample.at_ms;
            history.push_back(fresh);
            while history
                .get(1)
                .is_some_and(|next| latest.saturating_sub(next.sample.at_ms) >= window)
            {
                history.pop_front();
            }
            if let Some(base) = history.front() {
                self.run.stored.insert(name, base.clone());
            }
        }
        self.table = None;
    }

    /// The documents left for the second look; empty when there is none.
    pub fn take_deferred(&mut self) -> Vec<Deferred> {
        std::mem::take(&mut self.run.deferred)
    }

    /// Starts the second look of the documents just taken: with `wait` (the end of a run's
    /// scan; this invocation's one wait) first waits, in short steps so that a signal or the
    /// deadline ends it, until `--activity-window` has passed since their first sample, with
    /// every run lock let go meanwhile (SPEC §11); then takes a fresh table of `/proc`.
    /// `Ok(false)`: this run's lock (the one of `run_dir/.flatline`) could not be taken again
    /// (reported), so its documents are not looked at again and nothing more is written in it.
    pub fn second_look(
        &mut self,
        run_dir: &Dir,
        config: &Config,
        stop: &crate::interrupt::Stop,
        wait: bool,
        diag: &mut Diagnostics,
    ) -> Result<bool, Exit> {
        self.table = None;
        self.run.second_look = true;
        if !wait {
            return Ok(true);
        }
        self.window_used = true;
        let window = config.activity.map_or(0, |policy| policy.window);
        let until = self
            .run
            .first_at
            .unwrap_or_else(crate::proc::now_ms)
            .saturating_add(window);
        let (waited, lost) = crate::shell::commit::wait_unlocked(
            || wait_until(until, stop),
            stop,
            "the activity window",
            diag,
        );
        self.run.lock_lost = lost
            .iter()
            .any(|state_dir| state_dir.parent() == Some(run_dir.path()));
        self.table = None;
        waited.map(|()| !self.run.lock_lost)
    }

    /// Ends a second look: later documents are compared with the stored samples again, and
    /// may start a new batch.
    pub fn end_second_look(&mut self) {
        self.run.second_look = false;
        self.run.first_at = None;
    }

    /// Ends a run: a writing command stores this run's samples in `.flatline/activity.json`
    /// (under the run lock it holds); forgets the table so the next run looks afresh. `names`
    /// (the documents scanned) are only gone through by a writing command.
    pub fn finish_run<'n>(
        &mut self,
        run_path: &Path,
        root: &Dir,
        names: impl Iterator<Item = &'n OsStr>,
        config: &Config,
        diag: &mut Diagnostics,
    ) {
        let writing = !config.dry_run
            && config.activity.is_some()
            && matches!(
                config.command,
                Command::Refresh | Command::Reclaim | Command::Sweep
            );
        if let Some(policy) = config.activity {
            self.carry_out(run_path, policy.window);
        }
        let mut run = std::mem::take(&mut self.run);
        if !writing || run.lock_lost {
            return;
        }
        let listed: HashSet<String> = names.map(|n| n.to_string_lossy().into_owned()).collect();
        let mut samples = std::mem::take(&mut run.stored);
        samples.retain(|name, _| listed.contains(name) && !run.unsampled.contains(name));
        let fresh = std::mem::take(&mut run.fresh);
        let stalls = run.stalls_to_store(&samples, &fresh);
        samples.extend(fresh);
        let bytes = render(&samples, &stalls);
        if samples.is_empty() && run.read_bytes.is_none() {
            return;
        }
        if run.read_bytes.as_deref() == Some(bytes.as_slice()) {
            return;
        }
        let Ok(Some(dir)) = root.open_child(OsStr::new(".flatline")) else {
            return;
        };
        if let Err(error) = crate::fs::write_in_dir_group(&dir, OsStr::new(FILE), &bytes, MODE) {
            diag.error(&path_of(run_path), &error.to_string(), Exit::FileProblem);
        }
    }
}

/// Sleeps in short steps until the real clock reaches `until`, or a signal or the deadline
/// says to stop.
fn wait_until(until: Millis, stop: &crate::interrupt::Stop) -> Result<(), Exit> {
    loop {
        if let Some(exit) = stop.check() {
            return Err(exit);
        }
        let now = crate::proc::now_ms();
        if now >= until {
            return Ok(());
        }
        let step = u64::try_from((until - now).min(50)).unwrap_or(50);
        std::thread::sleep(std::time::Duration::from_millis(step));
    }
}

/// Refresh's change with the running_busy mark of the delegation being inspected: alone
/// when refresh has nothing else to write (or only a fingerprint, which it carries); a
/// progress or a finalization writes the state itself.
pub fn with_busy_mark(
    change: Option<Change>,
    host: &crate::shell::runs::LazyHost,
    recorded: Option<&str>,
    now: Millis,
) -> Option<Change> {
    let mark = host.2.borrow().busy_mark(recorded);
    match (change, mark) {
        (None, Some(state)) => Some(Change::Activity {
            state,
            at: now,
            fingerprint: None,
        }),
        (Some(Change::Fingerprint(fingerprint)), Some(state)) => Some(Change::Activity {
            state,
            at: now,
            fingerprint: Some(fingerprint),
        }),
        (change, _) => change,
    }
}

/// The path of a run's activity file, for messages.
pub fn path_of(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join(".flatline").join(FILE)
}

/// The stored samples of an activity document and the stall diagnoses kept with them;
/// `None` when it is not one.
fn parse(bytes: &[u8]) -> Option<(BTreeMap<String, StoredSample>, stall::Stalls)> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let samples = value.get("samples")?.as_object()?;
    let mut found = BTreeMap::new();
    let mut stalls = BTreeMap::new();
    for (name, entry) in samples {
        // One malformed entry is one worker without a sample, not a lost file.
        if let Some(sample) = parse_entry(entry) {
            found.insert(name.clone(), sample);
            if let Some(previous) = stall::parse(entry) {
                stalls.insert(name.clone(), previous);
            }
        }
    }
    Some((found, stalls))
}

fn parse_entry(entry: &Value) -> Option<StoredSample> {
    let procs = entry
        .get("procs")
        .and_then(Value::as_array)
        .map(|procs| {
            procs
                .iter()
                .filter_map(|p| {
                    Some(ProcessSample {
                        pid: i32::try_from(p.get(0)?.as_i64()?).ok()?,
                        start_ticks: p.get(1)?.as_u64()?,
                        cpu_ms: p.get(2)?.as_u64()?,
                        comm: p.get(3)?.as_str()?.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(StoredSample {
        fingerprint: entry.get("fingerprint")?.as_str()?.to_owned(),
        sample: Sample {
            at_ms: time::parse_rfc3339(entry.get("at")?.as_str()?)?,
            cpu_ms: entry.get("cpu_ms")?.as_u64()?,
            io_bytes: match entry.get("io_bytes")? {
                Value::Null => None,
                value => Some(value.as_u64()?),
            },
            processes: entry.get("processes")?.as_u64()?,
            newest_start: entry.get("newest_start")?.as_u64()?,
            procs,
        },
    })
}

fn render(samples: &BTreeMap<String, StoredSample>, stalls: &stall::Stalls) -> Vec<u8> {
    let mut map = Map::new();
    for (name, stored) in samples {
        let sample = &stored.sample;
        let procs: Vec<Value> = sample
            .procs
            .iter()
            .map(|p| json!([p.pid, p.start_ticks, p.cpu_ms, p.comm]))
            .collect();
        let mut entry = json!({
                "fingerprint": stored.fingerprint,
                "at": time::format_rfc3339(sample.at_ms),
                "cpu_ms": sample.cpu_ms,
                "io_bytes": sample.io_bytes,
                "processes": sample.processes,
                "newest_start": sample.newest_start,
                "procs": procs,
        });
        if let (Some(previous), Some(object)) = (stalls.get(name), entry.as_object_mut()) {
            object.insert("stall".into(), stall::render(previous));
        }
        map.insert(name.clone(), entry);
    }
    crate::model::render(&json!({"schema_version": 1, "samples": map}))
}

#[cfg(test)]
mod tests;
