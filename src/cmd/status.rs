//! status: the read-only lifecycle view of every delegation (SPEC §2, §6, §7).
//!
//! One pass: list, read, parse, look at the process, compute the view, print, forget. No
//! document outlives its record, so memory stays flat however many files there are.

use crate::config::Config;
use crate::core::lifecycle::{Tally, View};
use crate::exit::Exit;
use crate::fs;
use crate::model::Int;
use crate::output::{Diagnostics, JsonWriter, Metrics, Output, PathText, Ts, WriteJson};
use crate::scan::{self, LazyHost};
use crate::stop::Stop;
use crate::team::{self, WorkerRecord, WorkerSummary, WorkerTally};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

/// A delegation record (SPEC §7), in print order.
#[derive(Debug, Serialize)]
pub struct DelegationRecord<'a> {
    pub kind: &'static str,
    pub run_dir: PathText<'a>,
    pub path: PathText<'a>,
    pub delegation_id: Option<&'a str>,
    pub task_card_id: Option<&'a str>,
    pub work_kind: &'a str,
    pub status: &'a str,
    pub state: &'static str,
    pub reclaim_state: &'static str,
    pub process_id: Option<Int>,
    pub process_alive: Option<bool>,
    pub process_identity: Option<&'static str>,
    pub last_progress_at: Ts,
    pub progress_baseline: Option<&'static str>,
    pub elapsed_since_progress_ms: Option<i64>,
    pub quiet_after_ms: i64,
    pub stale_after_ms: i64,
    pub timeout_after_ms: i64,
    pub stale_at: Ts,
    pub timed_out_at: Ts,
    pub next_action: &'static str,
    pub transition: &'static str,
    pub classification: &'static str,
    pub recovery_action: &'static str,
    pub recovery_reason: &'a str,
    pub summary: &'static str,
    pub needs_attention: bool,
    pub warnings: Vec<Cow<'static, str>>,
}

impl<'a> DelegationRecord<'a> {
    pub fn new(run_dir: &'a Path, path: &'a Path, view: &'a View<'a>) -> DelegationRecord<'a> {
        DelegationRecord {
            kind: "delegation",
            run_dir: PathText(run_dir),
            path: PathText(path),
            delegation_id: view.delegation_id,
            task_card_id: view.task_card_id,
            work_kind: view.work_kind,
            status: view.status,
            state: view.state.as_str(),
            reclaim_state: view.reclaim_state.as_str(),
            process_id: view.process_id,
            process_alive: view.process_alive,
            process_identity: view.process_identity.map(|identity| identity.as_str()),
            last_progress_at: Ts(view.last_progress_at),
            progress_baseline: view.progress_baseline,
            elapsed_since_progress_ms: view.elapsed_since_progress_ms,
            quiet_after_ms: view.thresholds.quiet,
            stale_after_ms: view.thresholds.stale,
            timeout_after_ms: view.thresholds.timeout,
            stale_at: Ts(view.stale_at),
            timed_out_at: Ts(view.timed_out_at),
            next_action: view.next_action.as_str(),
            transition: view.transition,
            classification: view.transition,
            recovery_action: view.recovery_action.as_str(),
            recovery_reason: &view.recovery_reason,
            summary: view.summary,
            needs_attention: view.needs_attention(),
            warnings: view.warnings.iter().map(|w| w.code()).collect(),
        }
    }
}

impl WriteJson for DelegationRecord<'_> {
    fn write_json(&self, out: &mut JsonWriter<'_>) {
        out.key(true, "kind");
        out.str(self.kind);
        out.key(false, "run_dir");
        out.path(self.run_dir.0);
        out.key(false, "path");
        out.path(self.path.0);
        out.key(false, "delegation_id");
        out.opt_str(self.delegation_id);
        out.key(false, "task_card_id");
        out.opt_str(self.task_card_id);
        out.key(false, "work_kind");
        out.str(self.work_kind);
        out.key(false, "status");
        out.str(self.status);
        out.key(false, "state");
        out.str(self.state);
        out.key(false, "reclaim_state");
        out.str(self.reclaim_state);
        out.key(false, "process_id");
        out.opt_int(self.process_id);
        out.key(false, "process_alive");
        out.opt_bool(self.process_alive);
        out.key(false, "process_identity");
        out.opt_str(self.process_identity);
        out.key(false, "last_progress_at");
        out.ts(self.last_progress_at);
        out.key(false, "progress_baseline");
        out.opt_str(self.progress_baseline);
        out.key(false, "elapsed_since_progress_ms");
        out.opt_int(self.elapsed_since_progress_ms);
        out.key(false, "quiet_after_ms");
        out.int(self.quiet_after_ms);
        out.key(false, "stale_after_ms");
        out.int(self.stale_after_ms);
        out.key(false, "timeout_after_ms");
        out.int(self.timeout_after_ms);
        out.key(false, "stale_at");
        out.ts(self.stale_at);
        out.key(false, "timed_out_at");
        out.ts(self.timed_out_at);
        out.key(false, "next_action");
        out.str(self.next_action);
        out.key(false, "transition");
        out.str(self.transition);
        out.key(false, "classification");
        out.str(self.classification);
        out.key(false, "recovery_action");
        out.str(self.recovery_action);
        out.key(false, "recovery_reason");
        out.str(self.recovery_reason);
        out.key(false, "summary");
        out.str(self.summary);
        out.key(false, "needs_attention");
        out.bool(self.needs_attention);
        out.key(false, "warnings");
        out.strs(&self.warnings);
        out.end();
    }
}

/// A `--summary` row: the run, the card, then the counts in SPEC §6 order.
#[derive(Debug)]
pub struct SummaryRecord {
    pub run_dir: String,
    pub task_card_id: Option<String>,
    pub tally: Tally,
}

impl Serialize for SummaryRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.tally.fields();
        let mut map = serializer.serialize_map(Some(4 + fields.len()))?;
        map.serialize_entry("kind", "summary")?;
        map.serialize_entry("scope", "delegations")?;
        map.serialize_entry("run_dir", &self.run_dir)?;
        map.serialize_entry("task_card_id", &self.task_card_id)?;
        for (name, count) in fields {
            map.serialize_entry(name, &count)?;
        }
        map.end()
    }
}

fn summary_record(run_dir: &Path, card: Option<String>, tally: Tally) -> SummaryRecord {
    SummaryRecord {
        run_dir: run_dir.to_string_lossy().into_owned(),
        task_card_id: card,
        tally,
    }
}

/// `flatline status`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let mut output = Output::for_runs(config, &runs);
    let host = LazyHost::default();
    let mut summaries: Vec<serde_json::Value> = Vec::new();
    let mut overall = Tally::default();
    let mut workers_overall = WorkerTally::default();
    let mut attention = false;
    let mut interrupted = None;
    let mut metrics = Metrics::default();
    // Per-card rows are printed with --summary and always in json; otherwise keeping them
    // would only cost memory that grows with the number of cards.
    let want_cards = config.summary || config.format == crate::cli::Format::Json;
    for run in &runs {
        let mut cards = CardTallies::default();
        let mut seen = RunMetrics::default();
        // A holder that kept the run lock across several runs needs a person (SPEC §4).
        let problems_before = diag.errors.len();
        if let Some(streak) = crate::fs::lock_held(run.dir()) {
            diag.warning(&run.path.join(".flatline/lock"), &streak.to_string());
            attention = true;
            if config.attention {
                let lock = run
                    .path
                    .join(".flatline/lock")
                    .to_string_lossy()
                    .into_owned();
                let message = streak.to_string();
                if let Err(error) = output.record(&ProblemRecord::new(run, &lock, &message)) {
                    stdout_failed(diag, &error);
                }
            }
        }
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
        if let Err(exit) = result {
            interrupted = Some(exit);
            break;
        }
        // Heartbeat workers belong to no task card: --task-card (and --delegation) leaves
        // them out.
        if !config.task_cards.is_empty() || !config.delegations.is_empty() {
            seen.add_to(&mut metrics, &run.root.real_path, None);
            continue;
        }
        let mut workers = WorkerTally::default();
        let result = team::for_each_worker(run, config, diag, stop, |worker, diag| {
            let health = worker.view.health;
            attention |= health.needs_attention();
            workers.add(health);
            workers_overall.add(health);
            if !state_selected(config, health.as_str())
                || (config.attention && !health.needs_attention())
            {
                return Ok(());
            }
            output
                .record(&WorkerRecord::new(run, &worker))
                .map_err(|error| stdout_failed(diag, &error))
        });
        seen.add_to(&mut metrics, &run.root.real_path, Some(&workers));
        if workers.total > 0 {
            summaries.push(json_value(&WorkerSummary {
                run_dir: run.path.to_string_lossy().into_owned(),
                tally: workers,
            }));
        }
        if let Err(exit) = result {
            interrupted = Some(exit);
            break;
        }
    }
    if config.summary && config.format != crate::cli::Format::Json {
        for row in &summaries {
            if output.record(row).is_err() {
                break;
            }
        }
    }
    let tally = match (overall.total, workers_overall.total) {
        (_, 0) => text_tally(&overall),
        (0, _) => worker_tally(&workers_overall),
        _ => format!(
            "{}; {}",
            text_tally(&overall),
            worker_tally(&workers_overall)
        ),
    };
    add_run_facts(&mut metrics, config.now, diag.errors.len());
    let finished = output
        .metrics(&metrics)
        .and_then(|()| output.finish(&summaries, &diag.errors.clone(), &tally));
    if let Err(error) = finished {
        diag.error(
            Path::new("stdout"),
            &fs::io_message(&error),
            Exit::FileProblem,
        );
    }
    if let Some(exit) = interrupted {
        diag.raise(exit);
    }
    if config.check && attention {
        diag.raise(Exit::Attention);
    }
    diag.exit
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

/// What a run's delegations look like, for the prometheus gauges.
#[derive(Debug, Default, Clone)]
pub struct RunMetrics {
    pub states: BTreeMap<&'static str, u64>,
    pub reclaim_needed: u64,
    pub attention: u64,
    /// The largest progress age of a running, unreclaimed delegation.
    pub oldest_progress_ms: Option<i64>,
}

impl RunMetrics {
    pub fn add(&mut self, view: &View<'_>) {
        *self.states.entry(metric_state(view)).or_default() += 1;
        if view.reclaim_state == crate::core::lifecycle::ReclaimState::ReclaimNeeded {
            self.reclaim_needed += 1;
        }
        if view.needs_attention() {
            self.attention += 1;
        }
        let running = view.child_status == crate::core::lifecycle::ChildStatus::Running
            && view.reclaim_state != crate::core::lifecycle::ReclaimState::Reclaimed;
        if running && let Some(age) = view.elapsed_since_progress_ms {
            let oldest = self.oldest_progress_ms.get_or_insert(age);
            *oldest = (*oldest).max(age);
        }
    }

    /// A delegation counted in `state` was reclaimed by this run: it counts as reclaimed now.
    pub fn reclaimed_now(&mut self, state: &'static str) {
        if let Some(count) = self.states.get_mut(state)
            && *count > 0
        {
            *count -= 1;
            *self.states.entry("reclaimed").or_default() += 1;
        }
    }

    /// The gauges of one run: delegations by state, those that need reclaim or attention,
    /// the oldest progress age, and (when read) the workers by health. `run` is the run
    /// directory's canonical path (SPEC §7), so one run is one series however it was named.
    pub fn add_to(&self, metrics: &mut Metrics, run: &Path, workers: Option<&WorkerTally>) {
        let run = run.to_string_lossy().into_owned();
        for state in crate::core::lifecycle::STATES.iter().chain(&["reclaimed"]) {
            metrics.gauge(
                "flatline_delegations",
                "Delegations by lifecycle state.",
                vec![("run", run.clone()), ("state", state.to_string())],
                self.states.get(state).copied().unwrap_or(0) as f64,
            );
        }
        metrics.gauge(
            "flatline_delegations_reclaim_needed",
            "Delegations whose worker is stale or timed out and not yet reclaimed.",
            vec![("run", run.clone())],
            self.reclaim_needed as f64,
        );
        metrics.gauge(
            "flatline_delegations_needing_attention",
            "Delegations that need attention (what --check counts).",
            vec![("run", run.clone())],
            self.attention as f64,
        );
        metrics.gauge(
            "flatline_oldest_progress_age_seconds",
            "Progress age of the running delegation that progressed least recently (0 without one).",
            vec![("run", run.clone())],
            self.oldest_progress_ms.unwrap_or(0) as f64 / 1000.0,
        );
        if let Some(workers) = workers {
            for (health, count) in workers.fields().into_iter().skip(1) {
                metrics.gauge(
                    "flatline_workers",
                    "Heartbeat workers by health.",
                    vec![("run", run.clone()), ("health", health.to_string())],
                    count as f64,
                );
            }
        }
    }
}

/// The state a delegation is counted under in `flatline_delegations`: a reclaimed one under
/// `reclaimed`, never under the `stale` or `timed_out` it was reclaimed in, so an alert on
/// stale gauges clears once the worker is reclaimed (SPEC §7).
fn metric_state(view: &View<'_>) -> &'static str {
    if view.reclaim_state == crate::core::lifecycle::ReclaimState::Reclaimed {
        "reclaimed"
    } else {
        view.state.as_str()
    }
}

/// The gauges about the run of flatline itself.
pub fn add_run_facts(metrics: &mut Metrics, now: crate::core::time::Millis, problems: usize) {
    metrics.gauge(
        "flatline_file_problems",
        "Files that could not be read, parsed or written in the last run.",
        vec![],
        problems as f64,
    );
    metrics.gauge(
        "flatline_last_run_timestamp_seconds",
        "When the last run looked, in seconds since the epoch.",
        vec![],
        now as f64 / 1000.0,
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    fn record<'a>(
        path: &'a Path,
        text: &'a str,
        warnings: Vec<&'static str>,
    ) -> DelegationRecord<'a> {
        DelegationRecord {
            kind: "delegation",
            run_dir: PathText(Path::new("/runs/r1")),
            path: PathText(path),
            delegation_id: Some(text),
            task_card_id: None,
            work_kind: text,
            status: "running",
            state: "running_active",
            reclaim_state: "not_needed",
            process_id: Some(-170_141_183_460_469_231_731_687_303_715_884_105_728),
            process_alive: None,
            process_identity: Some("verified"),
            last_progress_at: Ts(Some(1_795_334_400_123)),
            progress_baseline: None,
            elapsed_since_progress_ms: Some(-5),
            quiet_after_ms: 0,
            stale_after_ms: i64::MAX,
            timeout_after_ms: i64::MIN,
            stale_at: Ts(None),
            timed_out_at: Ts(Some(crate::core::time::MIN_MS)),
            next_action: "wait",
            transition: "none",
            classification: "none",
            recovery_action: "none",
            recovery_reason: text,
            summary: "ok",
            needs_attention: true,
            warnings: warnings.into_iter().map(Cow::Borrowed).collect(),
        }
    }

    #[test]
    fn hand_written_json_is_byte_for_byte_serde_json() {
        let texts = [
            "",
            "plain",
            "exactly8",
            "quote\" in the middle of a long text",
            "back\\slash",
            "tab\there, newline\n, nul \u{0}, unit sep \u{1f}, del \u{7f}",
            "non-ASCII — ünïcödé ✓ 日本",
            "\u{1b}[31m escape at the start",
            "ends with a control \u{8}",
            "bidi \u{202e}reversed\u{2069}, separator \u{2028}, c1 \u{9b}, alm \u{61c}",
        ];
        let odd_name = OsStr::from_bytes(b"/runs/r1/delegations/\xff\xfe\"x.json");
        let paths = [
            Path::new("/runs/r1/delegations/d1.json"),
            Path::new(odd_name),
        ];
        for text in texts {
            for path in paths {
                for warnings in [vec![], vec!["clock_skew", "a\"b"]] {
                    let record = record(path, text, warnings);
                    let mut fast = Vec::new();
                    record.write_json(&mut JsonWriter(&mut fast));
                    let mut serde = Vec::new();
                    crate::output::to_writer_safe(&mut serde, &record).unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&fast),
                        String::from_utf8_lossy(&serde),
                        "text {text:?}, path {path:?}"
                    );
                }
            }
        }
    }
}
