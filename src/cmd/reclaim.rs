//! reclaim: terminates stuck workers and their process trees, all in one grace period, and
//! records the outcome (SPEC §3.3).
//!
//! The pure decisions (`triage`, `Termination`, the `Reclaim` record) live in
//! `core::plan::reclaim`; `termination` and `Reclaim::apply` here decide what the signals
//! showed and what is written. The shell opens each verified worker as a pidfd, snapshots its
//! descendants from `/proc`, sends SIGTERM then SIGCONT to every target of every worker at
//! once, waits for all of them against one deadline, sends SIGKILL to survivors, and records
//! only the workers whose processes are confirmed gone.

use crate::cli::config::Config;
use crate::cmd::refresh;
use crate::core::identity::{self, Identity, Observation, Pid};
use crate::core::lifecycle::{ProcessFacts, ReclaimState, State};
use crate::core::plan::recheck;
use crate::core::plan::reclaim::{Reclaim, Termination, Triage, triage};
use crate::core::plan::refresh::Change;
use crate::exit::Exit;
use crate::fs::RunLock;
use crate::interrupt::Stop;
use crate::model::Int;
use crate::output::{Diagnostics, Output, Ts};
use crate::proc;
use crate::shell::commit::{
    self, ApplyError, DocChange, Place, Written, lifecycle_mut, object_mut, set_status, ts,
};
use crate::shell::runs::{self as scan, LazyHost, Listing, Run};
use crate::shell::state::RunState as StateDoc;
use crate::shell::tree_kill::{self, Descendant};
pub use crate::shell::tree_kill::{Batch, Kill, finish, send_term, signal_all};
use crate::shell::{self, Access};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;

mod dry_run;
mod last_look;
mod notes;
mod record;

pub use dry_run::*;
pub use last_look::*;
pub use notes::*;
pub use record::*;

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

/// Debug builds only: `FLATLINE_TEST_PAUSE_BEFORE_SIGNAL=<path>` makes flatline create
/// `<path>` once its targets are planned, just before their last look, and wait (at most
/// 60 s) until the test removes it: so a test can change a stream or a document between
/// the plan and the signal. Release builds have no such hook.
pub fn test_pause_before_signal() {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("FLATLINE_TEST_PAUSE_BEFORE_SIGNAL") {
        let path = std::path::PathBuf::from(path);
        if std::fs::write(&path, b"paused\n").is_ok() {
            let began = std::time::Instant::now();
            while path.exists() && began.elapsed() < std::time::Duration::from_secs(60) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
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

    let looped = shell::for_each_run(&runs, Access::Write, config, diag, stop, |session, diag| {
        let (run, lock) = (session.run, session.lock);
        let Some(listing) = scan::list_for_writing(run, "delegations", config, diag) else {
            return Ok(());
        };
        let index = states.len();
        let ctx = refresh::Context::new(run, config, &host);
        let mut wrote = false;
        let ledger = match &lock {
            Some(lock) => load_ledger(lock, host.get()).unwrap_or_else(|error| {
                diag.error(
                    &crate::shell::state::path_of(&run.path),
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
                let forced = config.force && recheck::operator_may_force(view);
                if view.reclaim_state != ReclaimState::ReclaimNeeded && !forced {
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
                let decided = nested_guard(decided, owner, config.allow_nested_pidns);
                match crate::shell::launch::launcher_guard(decided, item.doc) {
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
        result
    });
    if let Err(exit) = looped {
        interrupted = Some(exit);
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
                &crate::shell::state::path_of(&state.run.path),
                &error,
                Exit::FileProblem,
            );
        }
        crate::shell::last_run::record(lock.state_dir(), state.run, config, diag.exit, diag);
    }

    for state in &states {
        commit::sync(&state.listing.dir, state.wrote, diag);
    }
    if plan_document {
        print_plan_document(output, diag);
    } else if let Err(error) = output.finish::<Value>(&[], &diag.errors.clone(), "") {
        crate::output::stdout_failed(diag, &error);
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
        recheck::no_process_reclaim_applies(doc, facts, view).then(|| change.clone())
    })
    .map_err(|error| error.to_string())
}

/// Why a target is left alone, in words.
fn skip_reason(termination: Termination, facts: &ProcessFacts, owner: u32) -> String {
    match (termination, facts) {
        (Termination::SkippedInvalidPid, ProcessFacts::Invalid(invalid)) => invalid.to_string(),
        (Termination::SkippedLauncher, _) => {
            "the flatline run that launched it is alive and watches it".to_string()
        }
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

#[cfg(test)]
mod tests;
