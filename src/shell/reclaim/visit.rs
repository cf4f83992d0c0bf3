//! The scan phase of reclaim: each delegation of a run is triaged once; finalizations and
//! no-process marks are written at once, the workers to signal are collected as `Pending`.

use super::*;
use crate::shell::runs::Item;

/// One run's scan: what the per-document step reads and what it collects.
pub(super) struct Visit<'a, 'o> {
    pub run: &'a Run,
    /// The index of this run's `RunState`.
    pub index: usize,
    pub config: &'a Config,
    pub stop: &'a Stop,
    pub host: &'a LazyHost,
    pub ctx: refresh::Context<'a>,
    pub plan_table: &'a PlanTable,
    pub ledger: Ledger,
    pub seen_orphans: Vec<String>,
    pub wrote: bool,
    pub output: &'o mut Output,
    pub pending: &'o mut Vec<Pending>,
    /// The targets of a json plan document, kept instead of printed.
    pub plan: &'o mut Option<Vec<PlannedTarget>>,
}

impl Visit<'_, '_> {
    /// One delegation: left to another flatline, an orphaned note completed, a dry-run plan
    /// printed, or triaged.
    pub(super) fn item(&mut self, item: Item<'_>, diag: &mut Diagnostics) -> Result<(), Exit> {
        let view = item.view;
        let place = Place {
            command: "reclaim",
            run: self.run,
            path: item.path,
            delegation_id: view.delegation_id,
        };
        let name = item.name.to_string_lossy();
        // Another flatline signalled it and is waiting out its grace: its own.
        if self.ledger.theirs.contains(name.as_ref()) {
            return Ok(());
        }
        if let Some(note) = self.ledger.orphans.get(name.as_ref()) {
            self.seen_orphans.push(name.to_string());
            let boot_id = self.host.get().boot_id.clone();
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
                let written = complete_orphan(target, note, view, self.config, self.stop);
                self.wrote |= written.wrote();
                return commit::report(place, &written, self.output, diag);
            }
        }
        let forced = self.config.force && recheck::operator_may_force(view);
        if view.reclaim_state != ReclaimState::ReclaimNeeded && !forced {
            return Ok(());
        }
        let owner = crate::fs::guard_owner(&item.meta);
        if self.config.dry_run {
            let (config, host, table) = (self.config, self.host, self.plan_table);
            let target = plan_dry_run(item.doc, view, item.facts, owner, config, host, table);
            match self.plan.as_mut() {
                Some(plan) => plan.push(PlannedTarget::keep(target, place, diag)),
                None => target.print(place, self.output, diag),
            }
            return Ok(());
        }
        self.triaged(item, owner, place, diag)
    }
}

impl Visit<'_, '_> {
    /// A delegation that needs a reclaim, out of a dry run: skipped, finalized, marked
    /// without a process, or pending its signals.
    fn triaged(
        &mut self,
        item: Item<'_>,
        owner: u32,
        place: Place<'_>,
        diag: &mut Diagnostics,
    ) -> Result<(), Exit> {
        let (view, config) = (item.view, self.config);
        let decided = match triage(item.facts, owner, config.allow_foreign_uid) {
            // --force is for a live, verified worker: no process, nothing to force.
            Triage::NoProcess if config.force => Triage::Skip(Termination::SkippedInvalidPid),
            decided => decided,
        };
        let decided = nested_guard(decided, owner, config.allow_nested_pidns);
        match crate::shell::launch::launcher_guard(decided, item.doc, self.host.get()) {
            Triage::Skip(termination) => skip(
                place,
                termination,
                view.state,
                view.process_id,
                item.facts,
                owner,
                self.output,
                diag,
            ),
            Triage::Finalize(termination) => {
                let planned = refresh::plan(&self.ctx, item.doc, item.times, item.facts, owner);
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
                    &self.ctx,
                    owner,
                    place,
                    self.output,
                    diag,
                )?;
                self.wrote |= written;
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
                let host = self.host;
                let written =
                    commit::write_change(target, change, config.now, config.dry_run, |bytes| {
                        still_needs_no_process_reclaim(bytes, config, host, &again)
                    });
                self.wrote |= written.wrote();
                commit::report(place, &written, self.output, diag)
            }
            Triage::Signal {
                pid, start_ticks, ..
            } => {
                self.pending.push(Pending {
                    run: self.index,
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
    }
}
