//! The `--dry-run` plan record (SPEC §3.3.4): one builder, printed by `reclaim` and `sweep`
//! alike for every target whatever would happen to it.

use super::*;

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
        triage: Triage,
    ) -> DryRunTarget {
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
        for entry in tree_kill::live_descendants(table, pid.get(), start_ticks) {
            match tree_kill::judge(entry.pid, owner, config.allow_foreign_uid, host) {
                Descendant::Signal(_) => self.would_signal.push(entry.pid),
                Descendant::Foreign | Descendant::Forbidden => {
                    self.skipped_descendants.push(entry.pid)
                }
            }
        }
    }

    /// The action record's detail: every field, always.
    pub fn detail(&self) -> DryRunDetail {
        DryRunDetail {
            state: self.state.as_str(),
            process_id: self.process_id,
            process_identity: self.process_identity,
            last_progress_at: Ts(self.last_progress_at),
            elapsed_since_progress_ms: self.elapsed_since_progress_ms,
            summary: self.summary,
            termination: self.termination.map(Termination::as_str),
            reason: self.reason.clone(),
            would_signal: self.would_signal.clone(),
            skipped_descendants: self.skipped_descendants.clone(),
        }
    }

    /// A skipped target is said on stderr and needs attention, as in a real run.
    pub fn warn(&self, path: &std::path::Path, diag: &mut Diagnostics) {
        if let (Some(termination), Some(why)) = (self.termination, &self.reason) {
            diag.warning(
                path,
                &format!("would not be reclaimed ({}): {why}", termination.as_str()),
            );
        }
        if self.termination.is_some_and(Termination::needs_attention) {
            diag.raise(Exit::Attention);
        }
    }

    /// Prints the plan record, after `warn`.
    pub fn print(&self, place: Place<'_>, output: &mut Output, diag: &mut Diagnostics) {
        self.warn(place.path, diag);
        // A failing stdout stops the printing (reported where it failed), never the work.
        let _ = place.record(self.action, "dry_run", self.detail(), output, diag);
    }
}

/// A dry-run target kept, with where it is, for the json plan document.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTarget {
    pub command: &'static str,
    pub run_dir: PathBuf,
    pub path: PathBuf,
    pub delegation_id: Option<String>,
    pub target: DryRunTarget,
}

impl PlannedTarget {
    /// Keeps `target` (said on stderr now, as `print` would).
    pub fn keep(target: DryRunTarget, place: Place<'_>, diag: &mut Diagnostics) -> PlannedTarget {
        target.warn(place.path, diag);
        PlannedTarget {
            command: place.command,
            run_dir: place.run.path.clone(),
            path: place.path.to_path_buf(),
            delegation_id: place.delegation_id.map(str::to_string),
            target,
        }
    }

    /// Its action record, as `print` prints it.
    pub fn record(&self) -> Versioned<ActionRecord<'_, DryRunDetail>> {
        Versioned::new(ActionRecord {
            kind: "action",
            command: self.command,
            action: self.target.action,
            outcome: "dry_run",
            run_dir: PathText(&self.run_dir),
            path: PathText(&self.path),
            delegation_id: self.delegation_id.as_deref(),
            detail: self.target.detail(),
        })
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

/// Plans one dry-run target, with the pids it would signal.
pub fn plan_dry_run(
    doc: &crate::model::Delegation<'_>,
    view: &crate::core::lifecycle::View<'_>,
    facts: &ProcessFacts,
    owner: u32,
    config: &Config,
    host: &LazyHost,
    table: &PlanTable,
) -> DryRunTarget {
    // The guards a real reclaim applies, the launcher's included: a worker that a live
    // `flatline run` watches is skipped_launcher in the plan too.
    let triage = crate::shell::launch::launcher_guard(
        nested_guard(
            triage(facts, owner, config.allow_foreign_uid),
            owner,
            config.allow_nested_pidns,
        ),
        doc,
        host.get(),
    );
    let mut target = DryRunTarget::plan(view, facts, owner, triage);
    if target.signal.is_some() {
        target.fill_pids(table.get(), config, host.get());
    }
    target
}

/// Plans and prints one dry-run target.
#[allow(clippy::too_many_arguments)]
pub fn print_dry_run(
    doc: &crate::model::Delegation<'_>,
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
    plan_dry_run(doc, view, facts, owner, config, host, table).print(place, output, diag);
}

/// The json form of a dry run (SPEC §3.3.4), in this order.
#[derive(serde::Serialize)]
struct PlanDocument<'a> {
    worker_auto_reclaim_enabled: bool,
    reclaim_needed_worker_count: usize,
    targets: Vec<Versioned<ActionRecord<'a, DryRunDetail>>>,
    summary: String,
}

/// The json form of a dry run: `{worker_auto_reclaim_enabled, reclaim_needed_worker_count,
/// targets, summary}` (SPEC §3.3.4).
pub(crate) fn print_plan_document(plan: &[PlannedTarget], diag: &mut Diagnostics) {
    let count = plan.len();
    let in_state = |state: State| plan.iter().filter(|p| p.target.state == state).count();
    let (stale, timed_out) = (in_state(State::Stale), in_state(State::TimedOut));
    let summary = if count == 0 {
        "No worker needs reclaim.".to_string()
    } else {
        format!("{count} worker(s) need reclaim ({stale} stale, {timed_out} timed out).")
    };
    let document = PlanDocument {
        worker_auto_reclaim_enabled: true,
        reclaim_needed_worker_count: count,
        targets: plan.iter().map(PlannedTarget::record).collect(),
        summary,
    };
    let mut text = crate::output::to_string_safe(&document).unwrap_or_default();
    text.push('\n');
    if let Err(error) = crate::output::write_stdout(text.as_bytes()) {
        crate::output::stdout_failed(diag, &error);
    }
}
