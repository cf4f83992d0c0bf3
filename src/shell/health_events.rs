//! The heartbeat workers' transitions of one run (SPEC §5), shared by `health-events` and
//! `sweep`: the last baseline read from `.flatline/state.json`, each change of health turned
//! into an event (the decision is `core::health`), the events appended to
//! `RUN_DIR/events.jsonl`, their records printed and the new baseline kept.

use crate::cli::config::Config;
use crate::core::health::{self, Health};
use crate::exit::Exit;
use crate::fs;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, EventRecord, Output, PathText};
use crate::shell::runs::Run;
use crate::shell::state::{self as runstate, RunState};
use crate::shell::workers::{Worker, WorkerTally, for_each_worker, missing_warning};
use std::ffi::OsStr;
use std::path::Path;

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
    let known_missing = health::parse_missing_paths(state.section(health::MISSING_PATHS_SECTION));
    let mut missing: Vec<(String, &'static str)> = Vec::new();
    let result = for_each_worker(run, config, diag, stop, |worker, diag| {
        note_missing_paths(&worker, &known_missing, &mut missing, diag);
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
    print_events(
        &records,
        (config.command, outcome),
        run,
        &events_path,
        output,
        diag,
    )?;
    // The baseline changes only when a health did; a run without change rewrites nothing.
    let changed = outcome == "appended" && (first_run || next != previous);
    store_state(
        &mut state,
        state_dir,
        run,
        config,
        changed.then_some(&next),
        &missing,
        diag,
    );
    Ok(tally)
}

/// Writes the run's state.json sections of heartbeat health: the new baseline (`next`, when
/// a health changed) and the missing paths already told (not in a dry run).
fn store_state(
    state: &mut RunState,
    state_dir: Option<&fs::Dir>,
    run: &Run,
    config: &Config,
    next: Option<&Vec<(String, Health)>>,
    missing: &[(String, &'static str)],
    diag: &mut Diagnostics,
) {
    if config.dry_run {
        return;
    }
    if let Some(next) = next {
        state.set_section(health::STATE_SECTION, health::render_state(next));
    }
    // Missing paths are remembered so that each is told on stderr once, when it appears.
    if missing.is_empty() {
        state.remove_section(health::MISSING_PATHS_SECTION);
    } else {
        state.set_section(
            health::MISSING_PATHS_SECTION,
            health::render_missing_paths(missing),
        );
    }
    if let Some(dir) = state_dir
        && let Err(error) = state.write_if_changed(dir)
    {
        diag.error(
            &runstate::path_of(&run.path),
            &error.to_string(),
            Exit::FileProblem,
        );
    }
}

/// Warns of each missing path of `worker` not already told in an earlier run, and notes
/// every missing path in `missing` (to be remembered).
fn note_missing_paths(
    worker: &Worker,
    known_missing: &[(String, String)],
    missing: &mut Vec<(String, &'static str)>,
    diag: &mut Diagnostics,
) {
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
}

/// Prints the action record of each appended (or, in a dry run, planned) event.
fn print_events(
    records: &[Emitted],
    (command, outcome): (crate::cli::Command, &'static str),
    run: &Run,
    events_path: &Path,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> Result<(), Exit> {
    for emitted in records {
        let record = EventRecord {
            kind: "action",
            command: command.name(),
            // SPEC §7: sweep prints what it appended as `event_appended`.
            action: match command {
                crate::cli::Command::Sweep => "event_appended",
                _ => emitted.kind,
            },
            event: emitted.kind,
            outcome,
            run_dir: PathText(&run.path),
            path: PathText(events_path),
            worker_id: &emitted.worker_id,
            event_id: &emitted.event_id,
            previous_health: emitted.before.map(Health::as_str),
            health: emitted.current.as_str(),
            message: &emitted.message,
        };
        output
            .record(&record)
            .map_err(|error| crate::output::stdout_failed(diag, &error))?;
    }
    Ok(())
}
