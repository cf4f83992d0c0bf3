//! The write phase: each changed document written once, with all of its changes: first the
//! documents whose changes end their worker, then those that only get a fan-in stamp. A card
//! whose ending write did not land gets no more stamps (fan-in judged it on that write); nor
//! does any card once the run is interrupted.

use super::changes::{Changes, replan};
use super::state::{Entry, Env, RunState, Sweep, count};
use crate::core::plan::reclaim::Termination;
use crate::exit::Exit;
use crate::output::{Diagnostics, Output};
use crate::shell::commit::{self, DocChange, Place, Written};
use crate::shell::fan_in as fanin;
use crate::shell::refresh;
use std::collections::HashSet;

/// What the write phase leaves for the ones after it.
#[derive(Debug, Default)]
pub(super) struct Landed {
    /// Cards not (all) stamped: their fan-in record says `failed`.
    pub failed_cards: Vec<(usize, String)>,
    /// Members whose ending write landed: no longer active on disk.
    pub ended: HashSet<(usize, String, usize)>,
    /// Signalled workers whose record did not land.
    pub unlanded: Vec<(usize, String)>,
}

/// The effects of the write phase: a double in the unit tests.
pub(super) trait Writer {
    /// A signal or the deadline stopped the sweep.
    fn stopped(&mut self) -> Option<Exit>;
    /// Whether the entry's run is still locked.
    fn locked(&self, entry: &Entry) -> bool;
    /// Writes `changes` to the entry's document; `None` when its run has no listing.
    fn write(
        &mut self,
        entry: &Entry,
        changes: &Changes,
        signalled: bool,
    ) -> Option<Written<Changes>>;
    /// Reports how it went (`nothing_left`: changed by another writer, its card left).
    fn report(
        &mut self,
        entry: &Entry,
        written: &Written<Changes>,
        stamps_only: bool,
        nothing_left: bool,
    );
}

/// Writes every entry with changes, those that end their member first, and says what
/// landed. `interrupted` is updated from `writer.stopped()` before each write.
pub(super) fn write_all(
    entries: &[Entry],
    interrupted: &mut Option<Exit>,
    landed: &mut Landed,
    writer: &mut impl Writer,
) {
    for stamps_only in [false, true] {
        for entry in entries {
            if entry.changes.is_empty() || entry.changes.stamp_only() != stamps_only {
                continue;
            }
            write_one(entry, stamps_only, interrupted, landed, writer);
        }
    }
}

fn write_one(
    entry: &Entry,
    stamps_only: bool,
    interrupted: &mut Option<Exit>,
    landed: &mut Landed,
    writer: &mut impl Writer,
) {
    let failed_cards = &mut landed.failed_cards;
    let card = entry
        .card
        .as_ref()
        .map(|(card, _)| (entry.run, card.clone()));
    // Interrupted (signal, deadline): no further side effect, except recording the
    // workers already signalled, which are gone whatever happens next.
    if interrupted.is_none() {
        *interrupted = writer.stopped();
    }
    let signalled = entry.kill.is_some() && entry.changes.reclaim.is_some();
    if !writer.locked(entry) {
        if signalled {
            landed
                .unlanded
                .push((entry.run, entry.name.to_string_lossy().into_owned()));
        }
        return;
    }
    let mut changes = entry.changes.clone();
    if interrupted.is_some() || card.as_ref().is_some_and(|c| failed_cards.contains(c)) {
        if changes.stamp.take().is_some()
            && let Some(card) = &card
            && !failed_cards.contains(card)
        {
            failed_cards.push(card.clone());
        }
        if changes.is_empty() || (interrupted.is_some() && !signalled) {
            return;
        }
    }
    let Some(written) = writer.write(entry, &changes, signalled) else {
        return;
    };
    if signalled && matches!(written, Written::Conflict(_) | Written::Failed { .. }) {
        landed
            .unlanded
            .push((entry.run, entry.name.to_string_lossy().into_owned()));
    }
    if let (
        Written::Done {
            change,
            dry_run: false,
        },
        Some((card, position)),
    ) = (&written, &entry.card)
        && change.ends_member()
    {
        landed.ended.insert((entry.run, card.clone(), *position));
    }
    let stamped = match &written {
        Written::Done { change, .. } if stamps_only => change.stamp.is_some(),
        Written::Done { change, .. } => !changes.ends_member() || change.ends_member(),
        // A stamp another writer already made.
        Written::NothingLeft => stamps_only,
        _ => false,
    };
    let mut nothing_left = false;
    if !stamped
        && (changes.stamp.is_some() || changes.ends_member())
        && let Some(card) = card
        && !failed_cards.contains(&card)
    {
        nothing_left = matches!(written, Written::NothingLeft);
        failed_cards.push(card);
    }
    writer.report(entry, &written, stamps_only, nothing_left);
}

/// The real writes: through `commit`, reported on the output.
pub(super) struct Commit<'s, 'r> {
    pub env: &'s Env<'s>,
    pub states: &'s mut [RunState<'r>],
    pub output: &'s mut Output,
    pub tallies: &'s mut super::state::Tallies,
    pub diag: &'s mut Diagnostics,
}

impl Writer for Commit<'_, '_> {
    fn stopped(&mut self) -> Option<Exit> {
        self.env.stop.check()
    }

    fn locked(&self, entry: &Entry) -> bool {
        self.states[entry.run].locked()
    }

    fn write(
        &mut self,
        entry: &Entry,
        changes: &Changes,
        signalled: bool,
    ) -> Option<Written<Changes>> {
        let config = self.env.config;
        let state = &self.states[entry.run];
        let listing = state.delegations.as_ref()?;
        let target = commit::Target {
            dir: &listing.dir,
            name: &entry.name,
            bytes: &entry.bytes,
        };
        let ctx = refresh::Context::new(state.run, config, self.env.host);
        let replanned = |bytes: &[u8]| replan(&ctx, bytes, entry.owner, changes);
        // A worker that was signalled: its record must land (merged, retried until the
        // deadline).
        Some(if signalled && !config.dry_run {
            commit::write_change_landing(
                target,
                changes.clone(),
                config.now,
                self.env.stop,
                replanned,
            )
        } else {
            commit::write_change(
                target,
                changes.clone(),
                config.now,
                config.dry_run,
                replanned,
            )
        })
    }

    fn report(
        &mut self,
        entry: &Entry,
        written: &Written<Changes>,
        stamps_only: bool,
        nothing_left: bool,
    ) {
        if let Written::Done {
            change,
            dry_run: false,
        } = written
        {
            count(self.tallies, change.action());
        }
        if nothing_left {
            self.diag.warning(
                &entry.path,
                "changed by another writer meanwhile: left as it is, and its task card's \
                 fan-in left for the next sweep",
            );
        }
        let state = &mut self.states[entry.run];
        // A stamp alone is reported by its card's fan_in record. A failing stdout is
        // reported where it fails and stops the printing, never the writes (SPEC §7).
        if stamps_only {
            if !matches!(written, Written::Done { .. } | Written::NothingLeft) {
                fanin::report_failure(&entry.path, written, self.diag);
            }
        } else {
            let place = Place {
                command: "sweep",
                run: state.run,
                path: &entry.path,
                delegation_id: entry.delegation_id.as_deref(),
            };
            let _ = commit::report(place, written, self.output, self.diag);
        }
        state.wrote |= written.wrote();
        // A worker marked reclaimed without a process no longer needs a reclaim (the
        // signalled ones were taken off when their kill was recorded).
        if let Written::Done {
            change,
            dry_run: false,
        } = written
            && let Some(reclaim) = &change.reclaim
            && reclaim.termination == Termination::NoProcess
        {
            let seen = &mut state.seen;
            seen.reclaim_needed = seen.reclaim_needed.saturating_sub(1);
            seen.attention = seen.attention.saturating_sub(1);
            seen.reclaimed_now(reclaim.state.as_str());
        }
    }
}

/// The write phase of a sweep, then each delegations directory made durable and the signal
/// notes of the records that landed let go.
pub(super) fn run(
    sweep: &mut Sweep<'_>,
    env: &Env<'_>,
    failed_cards: Vec<(usize, String)>,
    diag: &mut Diagnostics,
) -> Landed {
    let mut landed = Landed {
        failed_cards,
        ..Landed::default()
    };
    let mut writer = Commit {
        env,
        states: &mut sweep.states,
        output: &mut sweep.output,
        tallies: &mut sweep.tallies,
        diag,
    };
    write_all(
        &sweep.entries,
        &mut sweep.interrupted,
        &mut landed,
        &mut writer,
    );
    sweep.unlanded.append(&mut landed.unlanded);
    for state in &sweep.states {
        if let Some(listing) = &state.delegations {
            commit::sync(&listing.dir, state.wrote, diag);
        }
    }
    // The notes of this sweep's records that landed, and the orphans it saw, are done.
    for (index, state) in sweep.states.iter().enumerate() {
        let (Some(lock), true) = (&state.lock, state.locked()) else {
            continue;
        };
        let unlanded: Vec<String> = sweep
            .unlanded
            .iter()
            .filter(|(run, _)| *run == index)
            .map(|(_, name)| name.clone())
            .collect();
        if let Err(error) =
            crate::shell::reclaim::forget_notes(lock, env.me, &unlanded, &state.seen_orphans)
        {
            diag.error(
                &crate::shell::state::path_of(&state.run.path),
                &error,
                Exit::FileProblem,
            );
        }
    }
    landed
}
