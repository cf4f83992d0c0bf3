//! The phases of a reclaim, in order: the scan (each document triaged by `Visit`), the last
//! look (gate), the signals in one grace, and forgetting the notes that are done.

use super::*;

/// What a reclaim carries from one phase to the next.
pub(crate) struct Reclaiming<'r> {
    pub config: &'r Config,
    pub host: LazyHost,
    pub states: Vec<RunState<'r>>,
    pub pending: Vec<Pending>,
    pub output: Output,
    /// `--dry-run --format json`: the targets, for the plan document.
    pub plan: Option<Vec<PlannedTarget>>,
}

impl<'r> Reclaiming<'r> {
    /// The scan: every run locked in turn, its delegations triaged (`Visit::item`).
    pub(crate) fn scan(
        &mut self,
        runs: &'r [Run],
        diag: &mut Diagnostics,
        stop: &Stop,
    ) -> Result<(), Exit> {
        let (config, host) = (self.config, &self.host);
        let plan_table = PlanTable::default();
        let (states, pending, output) = (&mut self.states, &mut self.pending, &mut self.output);
        let plan = &mut self.plan;
        shell::for_each_run(runs, Access::Write, config, diag, stop, |session, diag| {
            let (run, lock) = (session.run, session.lock);
            let Some(listing) = scan::list_for_writing(run, "delegations", config, diag) else {
                return Ok(());
            };
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
            let mut visit = Visit {
                run,
                index: states.len(),
                config,
                stop,
                host,
                ctx: refresh::Context::new(run, config, host),
                plan_table: &plan_table,
                ledger,
                seen_orphans: Vec::new(),
                wrote: false,
                output: &mut *output,
                pending: &mut *pending,
                plan: &mut *plan,
            };
            let result = scan::for_each_in_listing(
                run,
                &listing,
                config,
                host,
                diag,
                stop,
                &mut |item, diag| visit.item(item, diag),
            );
            states.push(RunState {
                run,
                lock,
                listing,
                wrote: visit.wrote,
                seen_orphans: visit.seen_orphans,
            });
            result
        })
    }

    /// The last look at every pending target: those that changed are dropped.
    pub(crate) fn gate(&mut self, diag: &mut Diagnostics) {
        if self.pending.is_empty() {
            return;
        }
        test_pause_before_signal();
        let (config, host, states) = (self.config, &self.host, &self.states);
        let output = &mut self.output;
        self.pending.retain(|target| {
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
                host,
                &|doc| record.apply(doc, config.now),
                target.place(states),
                output,
                diag,
            )
        });
    }

    /// The signals: every lock let go, every target signalled in one grace, the locks taken
    /// again (nothing more is written in a run whose lock cannot be).
    pub(crate) fn signal(&mut self, diag: &mut Diagnostics, stop: &Stop) -> Result<(), Exit> {
        let host_facts = self.host.get();
        let mut kills: Vec<&mut Kill> = self.pending.iter_mut().map(|p| &mut p.kill).collect();
        // Nothing but waiting until the records: the locks are let go meanwhile.
        let (signalled, _) = commit::wait_unlocked(
            || signal_all(&mut kills, self.config, host_facts, stop),
            stop,
            "the grace",
            diag,
        );
        signalled
    }

    /// The notes of this run's records that landed, and the orphans it saw, are done.
    pub(crate) fn forget_done_notes(
        &self,
        me: (i32, u64),
        unlanded: &[(usize, String)],
        diag: &mut Diagnostics,
    ) {
        for (index, state) in self.states.iter().enumerate().filter(|(_, s)| s.locked()) {
            let Some(lock) = &state.lock else {
                continue;
            };
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
            let config = self.config;
            crate::shell::last_run::record(lock.state_dir(), state.run, config, diag.exit, diag);
        }
    }
}
