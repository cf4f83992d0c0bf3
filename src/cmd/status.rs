//! status: the read-only lifecycle view of every delegation (SPEC §2, §6, §7).
//!
//! One pass: list, read, parse, look at the process, compute the view, print, forget. No
//! document outlives its record, so memory stays flat however many files there are.

use crate::cli::config::Config;
use crate::core::lifecycle::Tally;
use crate::exit::Exit;
use crate::fs;
use crate::interrupt::Stop;
use crate::output::{
    Diagnostics, Metrics, Output, RunMetrics, add_run_facts, print_lock_held, print_problems,
    tally_text,
};
use crate::shell::activity::Tracker;
use crate::shell::runs::{self as scan, LazyHost};
use crate::shell::workers::{self as team, WorkerRecord, WorkerSummary, WorkerTally};
use crate::shell::{self, Access};
use serde::Serialize;
use std::path::Path;

mod summary;
/// `status --watch DURATION`: this command again and again, only the changes printed.
pub mod watch;

use summary::{CardTallies, Summaries};

pub use crate::output::{DelegationRecord, SummaryRecord};

/// `flatline status`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    run_to(config, diag, stop, None, &mut Tracker::default())
}

/// `run` with its output written to `sink` instead of stdout, and the activity samples of
/// `tracker` (`status --watch` keeps them from one pass to the next).
pub fn run_to(
    config: &Config,
    diag: &mut Diagnostics,
    stop: &Stop,
    sink: Option<Box<dyn std::io::Write>>,
    tracker: &mut Tracker,
) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let mut output = output_for(config, &runs, sink);
    let host = LazyHost::default();
    host.2.replace(std::mem::take(tracker));
    let mut summaries = Summaries::default();
    let mut overall = Tally::default();
    let mut workers_overall = WorkerTally::default();
    let mut attention = false;
    let mut interrupted = None;
    let mut metrics = Metrics::default();
    // Per-card rows are printed with --summary and always in json; otherwise keeping them
    // would only cost memory that grows with the number of cards.
    let want_cards = config.summary || config.format == crate::cli::Format::Json;
    let looped = shell::for_each_run(&runs, Access::Read, config, diag, stop, |session, diag| {
        let run = session.run;
        let mut cards = CardTallies::default();
        let mut seen = RunMetrics::default();
        // A holder that kept the run lock across several runs needs a person (SPEC §4).
        let problems_before = diag.errors.len();
        attention |= note_lock_held(run, config, &mut output, diag);
        let result = scan::for_each_delegation(run, config, &host, diag, stop, |item, diag| {
            let view = item.view;
            seen.add(view);
            if view.needs_attention() {
                attention = true;
            }
            overall.add(view);
            if want_cards {
                cards.add(view);
            }
            if !state_selected(config, view.state.as_str())
                || (config.attention && !view.needs_attention())
            {
                return Ok(());
            }
            output
                .record_fast(&DelegationRecord::new(&run.path, item.path, view))
                .map_err(|error| stdout_failed(diag, &error))
        });
        if want_cards {
            summaries.push_cards(&run.path, cards);
        }
        if config.attention {
            // Copied: printing may add an error of its own (stdout failed).
            let problems = diag.errors[problems_before..].to_vec();
            print_problems(&run.path, &problems, &mut output, diag);
        }
        result?;
        // Heartbeat workers belong to no task card: --task-card (and --delegation) leaves
        // them out.
        if !config.task_cards.is_empty() || !config.delegations.is_empty() {
            seen.add_to(&mut metrics, &run.root.real_path, None);
            return Ok(());
        }
        let mut workers = WorkerTally::default();
        let result = list_workers(
            run,
            config,
            &mut output,
            (&mut workers, &mut workers_overall, &mut attention),
            diag,
            stop,
        );
        seen.add_to(&mut metrics, &run.root.real_path, Some(&workers));
        if workers.total > 0 {
            summaries.push_workers(&run.path, workers);
        }
        result
    });
    if let Err(exit) = looped {
        interrupted = Some(exit);
    }
    *tracker = host.2.take();
    print_summary_rows(config, &summaries, &mut output);
    let tally = tally_text(&overall, &workers_overall);
    add_run_facts(&mut metrics, config.now, diag.errors.len());
    finish(output, &metrics, &summaries, &tally, diag);
    if let Some(exit) = interrupted {
        diag.raise(exit);
    }
    if config.check && attention {
        diag.raise(Exit::Attention);
    }
    diag.exit
}

/// A holder that kept the run lock across several runs needs a person (SPEC §4): a warning,
/// and with `--attention` a problem record. Whether it was held.
fn note_lock_held(
    run: &scan::Run,
    config: &Config,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> bool {
    let Some(streak) = crate::fs::lock_held(run.dir()) else {
        return false;
    };
    diag.warning(&run.path.join(".flatline/lock"), &streak.to_string());
    if config.attention {
        print_lock_held(&run.path, &streak.to_string(), output, diag);
    }
    true
}

/// `--summary` rows after the records (in json they are the document's `summary`).
fn print_summary_rows(config: &Config, summaries: &Summaries, output: &mut Output) {
    if config.summary && config.format != crate::cli::Format::Json {
        for row in summaries.rows() {
            if output.record(&row).is_err() {
                break;
            }
        }
    }
}

pub use crate::output::stdout_failed;

/// Where status prints: stdout or `--output` as configured, or `sink` (`--watch`).
fn output_for(
    config: &Config,
    runs: &[scan::Run],
    sink: Option<Box<dyn std::io::Write>>,
) -> Output {
    let Some(sink) = sink else {
        return Output::for_runs(config, runs);
    };
    let header = crate::output::Header {
        run_dirs: runs
            .iter()
            .map(|run| run.path.to_string_lossy().into_owned())
            .collect(),
        checked_at: config.now,
    };
    Output::new(config.format, config.quiet, header, sink).colored(config.color)
}

/// The heartbeat workers of one run, each printed unless `--state` leaves it out; their
/// health is added to `workers` (this run), `overall` and `attention`.
fn list_workers(
    run: &scan::Run,
    config: &Config,
    output: &mut Output,
    (workers, overall, attention): (&mut WorkerTally, &mut WorkerTally, &mut bool),
    diag: &mut Diagnostics,
    stop: &Stop,
) -> Result<(), Exit> {
    team::for_each_worker(run, config, diag, stop, |worker, diag| {
        let health = worker.view.health;
        *attention |= health.needs_attention();
        workers.add(health);
        overall.add(health);
        if !state_selected(config, health.as_str())
            || (config.attention && !health.needs_attention())
        {
            return Ok(());
        }
        output
            .record(&WorkerRecord::new(run, &worker))
            .map_err(|error| stdout_failed(diag, &error))
    })
}

/// The metrics and the closing document; a failed stdout is a file problem.
fn finish(
    mut output: Output,
    metrics: &Metrics,
    summaries: &Summaries,
    tally: &str,
    diag: &mut Diagnostics,
) {
    let finished = output
        .metrics(metrics)
        .and_then(|()| output.finish_with(summaries.rows(), &diag.errors.clone(), tally));
    if let Err(error) = finished {
        diag.error(
            Path::new("stdout"),
            &fs::io_message(&error),
            Exit::FileProblem,
        );
    }
}

/// `--state` lets this state or health through.
fn state_selected(config: &Config, state: &str) -> bool {
    config.states.is_empty() || config.states.iter().any(|s| s == state)
}
