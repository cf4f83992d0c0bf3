//! The last phase: the heartbeat workers' transitions appended (SPEC §5), the problems this
//! sweep printed stored, and the metrics and summary printed.

use super::state::{Env, RunState, Sweep};
use crate::exit::Exit;
use crate::output::{Diagnostics, Metrics};
use crate::shell::session::with_state_dir;
use crate::shell::state::reported;
use serde_json::Value;

/// Heartbeat transitions of every run still locked; the metrics of what the sweep saw.
pub(super) fn run(sweep: &mut Sweep<'_>, env: &Env<'_>, diag: &mut Diagnostics) -> Metrics {
    let mut metrics = Metrics::default();
    // None with --delegation, which names delegations only.
    if sweep.interrupted.is_some() || !env.config.delegations.is_empty() {
        return metrics;
    }
    for state in sweep.states.iter().filter(|state| state.locked()) {
        // A dry run has no lock but may still read a baseline that exists.
        let transitions = with_state_dir(state.run, state.lock.as_ref(), |dir| {
            crate::shell::health_events::health_events_for_run(
                state.run,
                env.config,
                dir,
                diag,
                env.stop,
                &mut sweep.output,
            )
        });
        match transitions {
            Ok(workers) => {
                state
                    .seen
                    .add_to(&mut metrics, &state.run.root.real_path, Some(&workers))
            }
            Err(exit) => {
                sweep.interrupted = Some(exit);
                break;
            }
        }
    }
    metrics
}

/// Stores the problems printed (interrupted: no further side effect; what was printed may
/// be printed again), then prints the metrics and the summary; the exit status.
pub(super) fn finish(
    mut sweep: Sweep<'_>,
    env: &Env<'_>,
    mut metrics: Metrics,
    diag: &mut Diagnostics,
) -> Exit {
    if sweep.interrupted.is_none() {
        let complete = env.config.task_cards.is_empty() && env.config.delegations.is_empty();
        for state in sweep.states.iter().filter(|state| state.locked()) {
            write_reported(state, complete, diag);
            if let Some(lock) = &state.lock {
                let (dir, run) = (lock.state_dir(), state.run);
                crate::shell::last_run::record(dir, run, env.config, diag.exit, diag);
            }
        }
    }
    for (action, count) in &sweep.tallies.actions {
        metrics.gauge(
            "flatline_sweep_actions",
            "Changes the last sweep made, by action.",
            vec![("action", action.to_string())],
            *count as f64,
        );
    }
    metrics.gauge(
        "flatline_sweep_reclaimed_workers",
        "Workers the last sweep terminated and recorded as reclaimed.",
        vec![],
        sweep.tallies.reclaimed_now as f64,
    );
    crate::output::add_run_facts(&mut metrics, env.config.now, diag.errors.len());
    let finished = sweep
        .output
        .metrics(&metrics)
        .and_then(|()| sweep.output.finish::<Value>(&[], &diag.errors.clone(), ""));
    if let Err(error) = finished {
        crate::output::stdout_failed(diag, &error);
    }
    if let Some(exit) = sweep.interrupted {
        diag.raise(exit);
    }
    diag.exit
}

/// Stores the problems this sweep saw (under the run lock; a dry run has none and writes
/// nothing). The state is read again just before, so every other section stays as the other
/// concerns left it.
fn write_reported(state: &RunState<'_>, complete: bool, diag: &mut Diagnostics) {
    let Some(lock) = &state.lock else {
        return;
    };
    let path = crate::shell::state::path_of(&state.run.path);
    let mut stored = match crate::shell::state::RunState::read(lock.state_dir()) {
        Ok(stored) => stored,
        // Already reported by the health transitions; never replace what cannot be read.
        Err(_) => return,
    };
    match state.reported.section(complete) {
        Some(section) => stored.set_section(reported::SECTION, section),
        None => stored.remove_section(reported::SECTION),
    }
    if let Err(error) = stored.write_if_changed(lock.state_dir()) {
        diag.error(&path, &error.to_string(), Exit::FileProblem);
    }
}
