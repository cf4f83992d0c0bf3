//! status: the read-only lifecycle view of every delegation (SPEC §2, §6, §7).
//!
//! One pass: list, read, parse, look at the process, compute the view, print, forget. No
//! document outlives its record, so memory stays flat however many files there are.

use crate::cli::config::Config;
use crate::core::lifecycle::{Tally, View};
use crate::exit::Exit;
use crate::fs;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, Metrics, Output, PathText, RunMetrics, add_run_facts};
use crate::shell::activity::Tracker;
use crate::shell::runs::{self as scan, LazyHost};
use crate::shell::workers::{self as team, WorkerRecord, WorkerSummary, WorkerTally};
use crate::shell::{self, Access};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// `status --watch DURATION`: this command again and again, only the changes printed.
pub mod watch;

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
    let mut summaries: Vec<serde_json::Value> = Vec::new();
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
        for (card, tally) in cards.rows() {
            summaries.push(json_value(&summary_record(&run.path, card, tally)));
        }
        if config.attention {
            // Copied: printing may add an error of its own (stdout failed).
            let problems = diag.errors[problems_before..].to_vec();
            print_problems(run, &problems, &mut output, diag);
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
            summaries.push(json_value(&WorkerSummary {
                run_dir: run.path.to_string_lossy().into_owned(),
                tally: workers,
            }));
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
        print_lock_held(run, &streak.to_string(), output, diag);
    }
    true
}

/// `--summary` rows after the records (in json they are the document's `summary`).
fn print_summary_rows(config: &Config, summaries: &[serde_json::Value], output: &mut Output) {
    if config.summary && config.format != crate::cli::Format::Json {
        for row in summaries {
            if output.record(row).is_err() {
                break;
            }
        }
    }
}

pub use crate::output::stdout_failed;

/// With `--attention`, a file that could not be read or used is a record too (SPEC §13):
/// `kind: "problem"`, so that a pipe sees everything that needs a person.
#[derive(Debug, Serialize)]
pub struct ProblemRecord<'a> {
    pub kind: &'static str,
    pub run_dir: PathText<'a>,
    pub path: &'a str,
    pub message: &'a str,
}

impl<'a> ProblemRecord<'a> {
    pub fn new(run: &'a scan::Run, path: &'a str, message: &'a str) -> ProblemRecord<'a> {
        ProblemRecord {
            kind: "problem",
            run_dir: PathText(&run.path),
            path,
            message,
        }
    }
}

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

/// With `--attention`, a run lock held across runs as a problem record.
fn print_lock_held(run: &scan::Run, message: &str, output: &mut Output, diag: &mut Diagnostics) {
    let lock = run
        .path
        .join(".flatline/lock")
        .to_string_lossy()
        .into_owned();
    if let Err(error) = output.record(&ProblemRecord::new(run, &lock, message)) {
        stdout_failed(diag, &error);
    }
}

/// The problems one run reported on stderr, printed as records.
fn print_problems(
    run: &scan::Run,
    problems: &[crate::output::ErrorEntry],
    output: &mut Output,
    diag: &mut Diagnostics,
) {
    for problem in problems {
        let record = ProblemRecord::new(run, &problem.path, &problem.message);
        if let Err(error) = output.record(&record) {
            stdout_failed(diag, &error);
            return;
        }
    }
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

/// The text tally: delegations, heartbeat workers, or both.
fn tally_text(overall: &Tally, workers_overall: &WorkerTally) -> String {
    match (overall.total, workers_overall.total) {
        (_, 0) => text_tally(overall),
        (0, _) => worker_tally(workers_overall),
        _ => format!("{}; {}", text_tally(overall), worker_tally(workers_overall)),
    }
}

/// The metrics and the closing document; a failed stdout is a file problem.
fn finish(
    mut output: Output,
    metrics: &Metrics,
    summaries: &[serde_json::Value],
    tally: &str,
    diag: &mut Diagnostics,
) {
    let finished = output
        .metrics(metrics)
        .and_then(|()| output.finish(summaries, &diag.errors.clone(), tally));
    if let Err(error) = finished {
        diag.error(
            Path::new("stdout"),
            &fs::io_message(&error),
            Exit::FileProblem,
        );
    }
}

/// The `--summary` tallies of one run, by task card (no allocation per delegation: a card's
/// id is copied once, when the card is first seen).
#[derive(Debug, Default)]
struct CardTallies {
    cards: BTreeMap<String, Tally>,
    without_card: Option<Tally>,
}

impl CardTallies {
    fn add(&mut self, view: &View<'_>) {
        let tally = match view.task_card_id {
            None => self.without_card.get_or_insert_with(Tally::default),
            Some(card) => {
                if !self.cards.contains_key(card) {
                    self.cards.insert(card.to_string(), Tally::default());
                }
                match self.cards.get_mut(card) {
                    Some(tally) => tally,
                    None => return,
                }
            }
        };
        tally.add(view);
    }

    /// The rows in print order: delegations without a card first, then by card id.
    fn rows(self) -> impl Iterator<Item = (Option<String>, Tally)> {
        self.without_card
            .map(|tally| (None, tally))
            .into_iter()
            .chain(
                self.cards
                    .into_iter()
                    .map(|(card, tally)| (Some(card), tally)),
            )
    }
}

/// `--state` lets this state or health through.
fn state_selected(config: &Config, state: &str) -> bool {
    config.states.is_empty() || config.states.iter().any(|s| s == state)
}

fn json_value<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn worker_tally(tally: &WorkerTally) -> String {
    let parts: Vec<String> = tally
        .fields()
        .iter()
        .skip(1)
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| format!("{count} {name}"))
        .collect();
    let noun = if tally.total == 1 {
        "worker"
    } else {
        "workers"
    };
    format!("{} {noun}: {}", tally.total, parts.join(", "))
}

/// The one-line tally under the text table.
fn text_tally(tally: &Tally) -> String {
    let mut parts: Vec<String> = tally
        .fields()
        .iter()
        .skip(2)
        .filter(|(name, count)| {
            *count > 0 && !matches!(*name, "completed" | "failed" | "cancelled")
        })
        .map(|(name, count)| format!("{count} {name}"))
        .collect();
    if tally.failed > 0 {
        parts.push(format!("{} failed", tally.failed));
    }
    if tally.cancelled > 0 {
        parts.push(format!("{} cancelled", tally.cancelled));
    }
    let noun = if tally.total == 1 {
        "delegation"
    } else {
        "delegations"
    };
    if parts.is_empty() {
        format!("{} {noun}", tally.total)
    } else {
        format!("{} {noun}: {}", tally.total, parts.join(", "))
    }
}

fn summary_record(run_dir: &Path, card: Option<String>, tally: Tally) -> SummaryRecord {
    SummaryRecord {
        run_dir: run_dir.to_string_lossy().into_owned(),
        task_card_id: card,
        tally,
    }
}
