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

/// The json form of a dry run: `{worker_auto_reclaim_enabled, reclaim_needed_worker_count,
/// targets, summary}` (SPEC §3.3.4).
pub(super) fn print_plan_document(output: Output, diag: &mut Diagnostics) {
    let mut targets = output.into_rows();
    // Captured rows carry no schema_version (the printing adds it); these are printed here.
    for target in &mut targets {
        target.insert(
            "schema_version".into(),
            crate::output::SCHEMA_VERSION.into(),
        );
    }
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
        crate::output::stdout_failed(diag, &error);
    }
}
