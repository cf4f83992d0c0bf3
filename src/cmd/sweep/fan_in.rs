//! The fan-in phase: the members ended by this sweep's changes count as ended, fan-in
//! decides on the resulting states, its stamps join the documents' changes, and its records
//! are printed once the stamps are written (SPEC §3.4).

use super::state::{Entry, Env, RunState, Sweep, count};
use crate::core::lifecycle::ChildStatus;
use crate::core::plan::fan_in::{self, Member};
use crate::core::plan::reclaim::Termination;
use crate::core::plan::refresh::Change;
use crate::exit::Exit;
use crate::output::{Diagnostics, FanInRecord};
use crate::shell::commit;
use crate::shell::fan_in::{self as fanin, FanInStamp, MemberFile};
use crate::shell::state::reported::{self, Reported};
use std::collections::{BTreeMap, HashSet};

/// A member a change of this sweep ends: (run, card, position among the card's members,
/// its status for fan-in).
pub(super) type Ended = (usize, String, usize, ChildStatus);

/// A fan-in record of the run at that index, printed after the writes.
pub(super) type Row<'r> = (usize, FanInRecord<'r>);

/// The members this sweep's planned changes end, in the order their status is set: refresh
/// finalizations first, then workers marked reclaimed without a process.
///
/// A worker marked reclaimed without a process has ended only once that mark is written.
/// Fan-in may count it as failed now (so its card collapses in this sweep) only where the
/// mark is its card's one ending write: the stamps then follow that write and are skipped
/// if it does not land. With other ending writes in the card, one of them could carry its
/// stamp before the mark failed; such a card collapses in the next sweep instead.
pub(super) fn ended_members(entries: &[Entry]) -> Vec<Ended> {
    let mut ended = Vec::new();
    for entry in entries {
        if let (Some((card, position)), Some(Change::Finalize(finalization))) =
            (&entry.card, &entry.changes.refresh)
        {
            let status = if finalization.verdict.status == crate::core::digest::Outcome::Success {
                ChildStatus::Completed
            } else {
                ChildStatus::Failed
            };
            ended.push((entry.run, card.clone(), *position, status));
        }
    }
    let mut ending: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    for entry in entries {
        if let Some((card, _)) = &entry.card
            && entry.changes.ends_member()
        {
            *ending.entry((entry.run, card.as_str())).or_default() += 1;
        }
    }
    for entry in entries {
        if let (Some((card, position)), Some(reclaim)) = (&entry.card, &entry.changes.reclaim)
            && reclaim.termination == Termination::NoProcess
            && ending.get(&(entry.run, card.as_str())) == Some(&1)
        {
            ended.push((entry.run, card.clone(), *position, ChildStatus::Failed));
        }
    }
    ended
}

/// Sets the fan-in status of every member this sweep's changes end.
pub(super) fn mark_ended(sweep: &mut Sweep<'_>) {
    for (run, card, position, status) in ended_members(&sweep.entries) {
        if let Some(member) = sweep.states[run].member_mut(&card, position) {
            member.status = status;
        }
    }
}

/// Fan-in on the resulting states of every run still locked; delegation stamps join the
/// documents' changes. Returns the fan-in records (printed after the writes, `print`) and
/// the cards that cannot be stamped.
pub(super) fn collapse<'r>(
    sweep: &mut Sweep<'r>,
    env: &Env<'_>,
    diag: &mut Diagnostics,
) -> (Vec<Row<'r>>, Vec<(usize, String)>) {
    let mut failed_cards: Vec<(usize, String)> = Vec::new();
    let mut fan_rows: Vec<Row<'r>> = Vec::new();
    // --delegation: the scan saw some members of a card only, so no card is judged.
    if sweep.interrupted.is_some() || !env.config.delegations.is_empty() {
        return (fan_rows, failed_cards);
    }
    for (run_index, state) in sweep.states.iter_mut().enumerate() {
        if !state.locked() {
            continue;
        }
        let mut stamps: Vec<(String, usize, FanInStamp)> = Vec::new();
        let mut collect =
            |card: &str, index: usize, _: &MemberFile, stamp: FanInStamp, _: &mut Diagnostics| {
                stamps.push((card.to_string(), index, stamp));
                true
            };
        let done = fanin::fan_in_run(
            state.run,
            env.config,
            &state.members,
            state.card_listing.as_ref().map(|l| &l.dir),
            &state.cards,
            &mut collect,
            &mut |record, _| {
                fan_rows.push((run_index, record));
                Ok(())
            },
            diag,
        );
        match done {
            Ok(outcome) => {
                for _ in 0..outcome.collapsed {
                    count(&mut sweep.tallies, "fan_in_collapsed");
                }
                if let Some(listing) = &state.card_listing {
                    commit::sync(&listing.dir, outcome.wrote_cards, diag);
                }
            }
            Err(exit) => {
                sweep.interrupted = Some(exit);
                break;
            }
        }
        for (card, index, stamp) in stamps {
            let entry = state
                .member_entries
                .get(&card)
                .and_then(|list| list.get(index))
                .copied()
                .flatten();
            match entry {
                Some(entry) if !sweep.entries[entry].bytes.is_empty() => {
                    sweep.entries[entry].changes.stamp = Some(stamp);
                }
                // Cannot happen: a ready card has no member that kept it blocked, so every
                // finished member's bytes were kept. Said, never silent.
                _ => {
                    if let Some(file) = state.members.get(&card).and_then(|m| m.get(index)) {
                        diag.error(
                            &file.path,
                            "fan-in stamp not written: the document was not kept (a bug)",
                            Exit::FileProblem,
                        );
                    }
                    failed_cards.push((run_index, card.clone()));
                }
            }
        }
    }
    (fan_rows, failed_cards)
}

/// Prints the fan-in records once the writes are done: a collapse whose stamps did not all
/// land is `failed`, a not-ready card counts the members still active on disk.
pub(super) fn print(
    sweep: &mut Sweep<'_>,
    env: &Env<'_>,
    fan_rows: Vec<Row<'_>>,
    failed_cards: &[(usize, String)],
    ended: &HashSet<(usize, String, usize)>,
) {
    for (run_index, mut row) in fan_rows {
        let card = row.task_card_id.clone();
        if row.outcome == Some("collapsed") && failed_cards.contains(&(run_index, card.clone())) {
            row.outcome = Some("failed");
            if let Some(collapsed) = sweep.tallies.actions.get_mut("fan_in_collapsed") {
                *collapsed = collapsed.saturating_sub(1);
            }
        }
        if !row.ready {
            let active = active_after_writes(&sweep.states[run_index], run_index, &card, ended);
            row.active = Some(active);
        }
        if !fan_in_news(&mut sweep.states[run_index].reported, &row, env.config.all) {
            continue;
        }
        if sweep.output.record(&row).is_err() {
            break;
        }
    }
}

/// Whether a fan-in record is printed by a sweep (SPEC §7): a card collapsed (or failing to,
/// or that would in a dry run) always; a card not ready because of something a person must
/// look at (its warnings: a status flatline does not know) when that first appears or
/// changes; a card simply not ready yet, or already collapsed, only with `--all`.
pub(super) fn fan_in_news(reported: &mut Reported, row: &FanInRecord<'_>, all: bool) -> bool {
    if row.ready {
        return all || row.outcome != Some("already_collapsed");
    }
    if row.warnings.as_ref().is_some_and(|w| !w.is_empty()) {
        return reported.problem(&reported::card_subject(&row.task_card_id), row);
    }
    all
}

/// How many of the members that count for `card` are active on disk after this run's writes
/// (SPEC §3.4): active when read, and not ended by a write of this run that landed.
fn active_after_writes(
    state: &RunState<'_>,
    run_index: usize,
    card: &str,
    ended: &HashSet<(usize, String, usize)>,
) -> u64 {
    let Some(files) = state.members.get(card) else {
        return 0;
    };
    let members: Vec<Member> = files.iter().map(|file| file.member.clone()).collect();
    let read_active = state.disk_active.get(card);
    fan_in::counted_members(&members, state.cards.get(card).map(|c| &c.doc))
        .into_iter()
        .filter(|&i| {
            read_active.and_then(|list| list.get(i)).copied() == Some(true)
                && !ended.contains(&(run_index, card.to_string(), i))
        })
        .count() as u64
}
