//! sweep: the one-shot job for a timer — refresh, reclaim, fan-in and heartbeat
//! transitions in one pass, each input read once, each changed document written once.
//!
//! Every run's lock is taken once and held to the end. The delegations are scanned once;
//! refresh's change is applied in memory and the document looked at again (in memory) for
//! reclaim; stuck workers get SIGTERM as the scan finds them (in batches, each noted in
//! state.json first) and SIGKILL once their batch's grace has passed, checked between files,
//! the last batches waited for together after the scan (one grace period); fan-in decides
//! on the resulting states; then each document is written once with all its changes
//! composed — first those whose changes end their worker, then those that only get a fan-in
//! stamp, skipped for a card whose ending write did not land — and the heartbeat
//! transitions are appended.

use crate::cmd::fanin::{self, CardFile, FanInStamp, MemberFile};
use crate::cmd::reclaim::{self, Kill, TargetInfo};
use crate::cmd::refresh;
use crate::cmd::status::RunMetrics;
use crate::config::Config;
use crate::core::lifecycle::ReclaimState;
use crate::core::plan::fan_in::{self, Member};
use crate::core::plan::reclaim::{Reclaim, Termination, Triage, triage};
use crate::core::plan::refresh::Change;
use crate::exit::Exit;
use crate::fs::RunLock;
use crate::output::{Diagnostics, Metrics, Output};
use crate::reported::{self, Reported};
use crate::scan::{self, LazyHost, Listing, Run};
use crate::shell::commit::{self, ApplyError, DocChange, Place, Written};
use crate::stop::Stop;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Every change sweep makes to one document, applied in order: refresh, reclaim, fan-in.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub refresh: Option<Change>,
    pub reclaim: Option<Reclaim>,
    pub stamp: Option<FanInStamp>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.refresh.is_none() && self.reclaim.is_none() && self.stamp.is_none()
    }

    /// Whether these changes end the worker's delegation (a reclaim, or refresh finalizing
    /// it): what fan-in counted on when it judged the card.
    fn ends_member(&self) -> bool {
        self.reclaim.is_some() || matches!(self.refresh, Some(Change::Finalize(_)))
    }

    /// Only a fan-in stamp.
    fn stamp_only(&self) -> bool {
        self.refresh.is_none() && self.reclaim.is_none() && self.stamp.is_some()
    }
}

impl DocChange for Changes {
    fn action(&self) -> &'static str {
        match (&self.refresh, &self.reclaim) {
            (_, Some(reclaim)) => reclaim.action(),
            (Some(refresh), None) => refresh.action(),
            (None, None) => "fan_in_stamped",
        }
    }

    fn detail(&self) -> Map<String, Value> {
        let mut detail = Map::new();
        if let Some(refresh) = &self.refresh {
            detail.extend(refresh.detail());
        }
        if let Some(reclaim) = &self.reclaim {
            detail.extend(reclaim.detail());
        }
        if let Some(stamp) = &self.stamp {
            detail.extend(stamp.detail());
        }
        detail
    }

    fn apply(&self, doc: &mut Value, now: i64) -> Result<(), ApplyError> {
        // All or nothing: work on a copy.
        let mut copy = doc.clone();
        if let Some(refresh) = &self.refresh {
            refresh.apply(&mut copy, now)?;
        }
        if let Some(reclaim) = &self.reclaim {
            reclaim.apply(&mut copy, now)?;
        }
        if let Some(stamp) = &self.stamp {
            stamp.apply(&mut copy, now)?;
        }
        *doc = copy;
        Ok(())
    }
}

/// A delegation sweep may write: its bytes as read and the changes planned for it.
struct Entry {
    run: usize,
    name: OsString,
    path: PathBuf,
    owner: u32,
    delegation_id: Option<String>,
    bytes: Vec<u8>,
    changes: Changes,
    kill: Option<(Kill, TargetInfo)>,
    /// Its index among its card's members, for the fan-in stamp.
    card: Option<(String, usize)>,
}

/// A run being swept: its lock is held until the end.
struct RunState<'a> {
    run: &'a Run,
    lock: Option<RunLock>,
    delegations: Option<Listing>,
    card_listing: Option<Listing>,
    cards: BTreeMap<String, CardFile>,
    members: BTreeMap<String, Vec<MemberFile>>,
    /// For each member of each card, the entry that holds its bytes, if any.
    member_entries: BTreeMap<String, Vec<Option<usize>>>,
    /// For each member of each card, whether its document on disk was active when read: a
    /// not-ready card's `active` counts those that still are after this run's writes.
    disk_active: BTreeMap<String, Vec<bool>>,
    wrote: bool,
    /// The delegations as the sweep leaves them, for the metrics.
    seen: RunMetrics,
    /// The problems printed before, and those seen in this sweep (SPEC §7).
    reported: Reported,
    /// Orphaned signal notes this sweep completed or took over (reclaim::Ledger).
    seen_orphans: Vec<String>,
    /// The lock is held (false once it could not be taken again after the grace: nothing
    /// more is written in that run).
    locked: bool,
}

/// What the sweep did, for the metrics.
#[derive(Debug, Default, Clone)]
pub struct Tallies {
    pub reclaimed_now: u64,
    pub actions: BTreeMap<&'static str, u64>,
}

impl RunState<'_> {
    /// The fan-in facts of the member at `position` of `card`.
    fn member_mut(&mut self, card: &str, position: usize) -> Option<&mut Member> {
        self.members
            .get_mut(card)
            .and_then(|members| members.get_mut(position))
            .map(|file| &mut file.member)
    }
}

/// What the post-refresh look at a document says.
struct After {
    reclaim_needed: bool,
    triage: Triage,
    info: TargetInfo,
    member: Member,
}

/// `flatline sweep`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let mut output = Output::for_runs(config, &runs);
    let host = LazyHost::default();
    let plan_table = reclaim::PlanTable::default();
    let mut states: Vec<RunState<'_>> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut tallies = Tallies::default();
    let mut interrupted = None;
    let me = reclaim::own_identity();
    let mut signals = Signals::default();
    let mut unlanded: Vec<(usize, String)> = Vec::new();

    // 1. One scan: refresh in memory, then reclaim triage on the refreshed view.
    for run in &runs {
        if let Some(exit) = stop.check() {
            interrupted = Some(exit);
            break;
        }
        // Batches of the runs before whose grace has passed (this run's lock may be waited
        // for).
        if !config.dry_run {
            signals.kill_due(&mut entries, config, &host, stop);
        }
        let Some(lock) = commit::lock_run(run, config, stop, diag) else {
            continue;
        };
        let index = states.len();
        let delegations = scan::list_for_writing(run, "delegations", config, diag);
        let mut members: BTreeMap<String, Vec<MemberFile>> = BTreeMap::new();
        let mut member_entries: BTreeMap<String, Vec<Option<usize>>> = BTreeMap::new();
        let mut disk_active: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        // Cards with a member that stays active: not ready in this sweep.
        let mut blocked: HashSet<String> = HashSet::new();
        let mut seen = RunMetrics::default();
        // Read first, so that the scan knows which active members surely count (below).
        let (card_listing, cards) = fanin::read_cards(run, config, diag);
        let mut reported = read_reported(run, lock.as_ref(), config);
        let ledger = match &lock {
            Some(lock) => reclaim::load_ledger(lock, host.get()).unwrap_or_else(|error| {
                diag.error(
                    &crate::runstate::path_of(&run.path),
                    &error,
                    Exit::FileProblem,
                );
                reclaim::Ledger::default()
            }),
            None => reclaim::Ledger::default(),
        };
        let mut seen_orphans: Vec<String> = Vec::new();
        if let Some(listing) = &delegations {
            let ctx = refresh::Context::new(run, config, &host);
            // Where the last sweep stopped, if a deadline or signal cut it short.
            let mut resume = scan::Resume {
                start: lock
                    .as_ref()
                    .and_then(|lock| crate::resume::start(lock.state_dir())),
                stopped_at: None,
            };
            let mut visited = 0usize;
            let result = scan::for_each_in_listing_from(
                run,
                listing,
                config,
                &host,
                diag,
                stop,
                &mut resume,
                &mut |item, diag| {
                    test_slow_scan(visited);
                    visited += 1;
                    // Between files: a batch whose grace has passed gets SIGKILL, and the
                    // targets found a while ago get SIGTERM (SPEC §3.3 step 2).
                    if !config.dry_run {
                        signals.kill_due(&mut entries, config, &host, stop);
                        if signals.ripe() {
                            let at = RunRef {
                                run,
                                dir: &listing.dir,
                                lock: lock.as_ref(),
                                seen_orphans: &seen_orphans,
                            };
                            signals.send(
                                &mut entries,
                                &at,
                                config,
                                &host,
                                me,
                                stop,
                                &mut tallies,
                                &mut output,
                                diag,
                            );
                        }
                    }
                    let owner = crate::fs::guard_owner(&item.meta);
                    let name = item.name.to_string_lossy();
                    // Signalled by another flatline still waiting out its grace: left to it.
                    let theirs = ledger.theirs.contains(name.as_ref());
                    // Signalled by a flatline that is gone, and its process exited since.
                    let orphan = ledger.orphans.get(name.as_ref()).and_then(|note| {
                        seen_orphans.push(name.to_string());
                        let boot_id = host.get().boot_id.clone();
                        let gone = reclaim::noted_process_gone(
                            note,
                            boot_id.as_deref(),
                            &crate::proc::start_ticks_of,
                        );
                        (gone
                            && reclaim::note_matches(note, item.view)
                            && !crate::core::lifecycle::is_reclaimed(item.doc))
                        .then(|| reclaim::orphan_record(note, item.view))
                    });
                    // A dry run prints the reclaim plan of a target as reclaim does, from the
                    // same view, and plans nothing else for it.
                    let dry_target = config.dry_run
                        && item.view.reclaim_state == ReclaimState::ReclaimNeeded
                        && !theirs
                        && orphan.is_none();
                    if dry_target {
                        let place = Place {
                            command: "sweep",
                            run,
                            path: item.path,
                            delegation_id: item.view.delegation_id,
                        };
                        reclaim::print_dry_run(
                            item.view,
                            item.facts,
                            owner,
                            config,
                            &host,
                            &plan_table,
                            place,
                            &mut output,
                            diag,
                        );
                    }
                    let planned = if theirs || orphan.is_some() || dry_target {
                        None
                    } else {
                        match refresh::plan(&ctx, item.doc, item.times, item.facts, owner) {
                            Ok(planned) => planned,
                            Err(problem) => {
                                diag.error(item.path, &problem.to_string(), Exit::FileProblem);
                                None
                            }
                        }
                    };
                    // The document as refresh leaves it, looked at again in memory.
                    let refreshed = match &planned {
                        Some(change) => match in_memory(item.bytes, change, config.now) {
                            Ok(bytes) => Some(bytes),
                            Err(error) => {
                                diag.error(item.path, &error, Exit::FileProblem);
                                return Ok(());
                            }
                        },
                        None => None,
                    };
                    let after = match &refreshed {
                        Some(bytes) => match look(bytes, config, &host, owner, &mut seen) {
                            Ok(after) => after,
                            Err(error) => {
                                diag.error(item.path, &error.to_string(), Exit::FileProblem);
                                return Ok(());
                            }
                        },
                        None => {
                            seen.add(item.view);
                            after_of(item.doc, item.facts, item.view, owner, config)
                        }
                    };
                    let mut changes = Changes {
                        refresh: planned,
                        reclaim: orphan.clone(),
                        ..Changes::default()
                    };
                    let mut kill = None;
                    let place = Place {
                        command: "sweep",
                        run,
                        path: item.path,
                        delegation_id: item.view.delegation_id,
                    };
                    if after.reclaim_needed && !theirs && orphan.is_none() && !dry_target {
                        match after.triage {
                            Triage::Signal {
                                pid, start_ticks, ..
                            } => {
                                kill =
                                    Some((Kill::new(pid, start_ticks, owner), after.info.clone()));
                            }
                            Triage::NoProcess => {
                                changes.reclaim = Some(Reclaim {
                                    state: after.info.state,
                                    termination: Termination::NoProcess,
                                    process_id: None,
                                    stale_at: after.info.stale_at,
                                    timed_out_at: after.info.timed_out_at,
                                    signal_via: None,
                                    descendants_signalled: Vec::new(),
                                    survivors: Vec::new(),
                                });
                            }
                            Triage::Skip(termination) | Triage::Finalize(termination) => {
                                // Finalize here means refresh could not (its stream has not
                                // settled): leave it for a later sweep.
                                if termination.needs_attention() {
                                    diag.raise(Exit::Attention);
                                }
                                let mut detail = Map::new();
                                detail.insert("state".into(), json!(after.info.state.as_str()));
                                detail.insert("process_id".into(), json!(after.info.process_id));
                                detail.insert("termination".into(), json!(termination.as_str()));
                                count(&mut tallies, "skipped");
                                let subject = reported::delegation_subject(item.name);
                                if reported.problem(&subject, &skipped_record(&detail)) {
                                    place.record(
                                        "skipped",
                                        "not_written",
                                        detail,
                                        &mut output,
                                        diag,
                                    )?;
                                }
                            }
                        }
                    }
                    let card = item.doc.task_card_id.str().map(str::to_string);
                    let member = Member {
                        owner: fanin::owned_document(&item.meta),
                        ..after.member
                    };
                    // A member that stays active through this sweep (nothing will end it:
                    // no kill, no reclaim mark) keeps its card from being ready: the bytes
                    // kept for stamping its finished members are let go, and no more are
                    // kept, so memory does not grow with the finished members of
                    // unfinished cards. Only a member that surely counts for the card does
                    // (SPEC §3.4): root's, or that of the owner of the card's document.
                    if let Some(card) = &card
                        && member.is_active()
                        && surely_counts(&member, cards.get(card))
                        && kill.is_none()
                        && changes.reclaim.is_none()
                        && blocked.insert(card.clone())
                    {
                        for &index in member_entries.get(card).into_iter().flatten().flatten() {
                            let entry: &mut Entry = &mut entries[index];
                            if entry.changes.is_empty() && entry.kill.is_none() {
                                entry.bytes = Vec::new();
                            }
                        }
                    }
                    let stamp_candidate = card
                        .as_ref()
                        .is_some_and(|card| member.may_need_stamp() && !blocked.contains(card));
                    let kill_planned = kill.is_some();
                    let keep = !changes.is_empty() || kill_planned || stamp_candidate;
                    let entry_index = keep.then(|| {
                        entries.push(Entry {
                            run: index,
                            name: item.name.to_os_string(),
                            path: item.path.to_path_buf(),
                            owner,
                            delegation_id: item.view.delegation_id.map(str::to_string),
                            bytes: item.bytes.to_vec(),
                            changes,
                            kill,
                            card: None,
                        });
                        // A stuck worker: signalled with the next batch.
                        if kill_planned {
                            signals.found(entries.len() - 1);
                        }
                        entries.len() - 1
                    });
                    if let Some(card) = card {
                        let list = members.entry(card.clone()).or_default();
                        let position = list.len();
                        list.push(MemberFile {
                            member,
                            name: item.name.to_os_string(),
                            path: item.path.to_path_buf(),
                            bytes: None,
                        });
                        member_entries
                            .entry(card.clone())
                            .or_default()
                            .push(entry_index);
                        disk_active.entry(card.clone()).or_default().push(
                            !crate::core::lifecycle::is_reclaimed(item.doc)
                                && !crate::core::lifecycle::child_status(item.doc).is_terminal(),
                        );
                        if let Some(entry) = entry_index {
                            entries[entry].card = Some((card, position));
                        }
                    }
                    Ok(())
                },
            );
            if let Err(exit) = result {
                interrupted = Some(exit);
            }
            // The run's targets not sent yet go out now, while its lock and listing are at
            // hand; none once the run is stopped (no further side effect).
            if interrupted.is_none() && !config.dry_run {
                let at = RunRef {
                    run,
                    dir: &listing.dir,
                    lock: lock.as_ref(),
                    seen_orphans: &seen_orphans,
                };
                signals.send(
                    &mut entries,
                    &at,
                    config,
                    &host,
                    me,
                    stop,
                    &mut tallies,
                    &mut output,
                    diag,
                );
            }
            if let Some(lock) = &lock {
                crate::resume::record(lock.state_dir(), run, resume.stopped_at.as_deref(), diag);
            }
        }
        states.push(RunState {
            run,
            lock,
            delegations,
            card_listing,
            cards,
            members,
            member_entries,
            disk_active,
            wrote: false,
            seen,
            reported,
            seen_orphans,
            locked: true,
        });
        if interrupted.is_some() {
            break;
        }
    }

    // 2. The batches still in flight after the scan, waited for together: one grace
    // period at most. Targets found but not sent (a stopped run, a dry run) are not
    // signalled. A stopped run waits no more: a target that died of its SIGTERM is
    // recorded, one still alive is `interrupted` and its note kept for the next run.
    signals.drop_pending(&mut entries);
    // Those whose grace has passed already are not kept waiting for the others.
    if interrupted.is_none() {
        signals.kill_due(&mut entries, config, &host, stop);
    }
    if !signals.in_flight.is_empty() {
        let release = interrupted.is_none();
        // Nothing but waiting until the records: the locks are let go meanwhile.
        if release {
            for state in states.iter_mut() {
                if let Some(lock) = &mut state.lock {
                    let _ = lock.release();
                }
            }
        }
        if let Err(exit) = signals.finish_all(&mut entries, config, &host, stop) {
            interrupted.get_or_insert(exit);
        }
        if release {
            for state in states.iter_mut() {
                if let Some(lock) = &mut state.lock {
                    let wait = stop.remaining().unwrap_or(commit::LANDING_PATIENCE);
                    if let Err(error) = lock.reacquire(Some(wait), &|| false) {
                        diag.error(
                            &state.run.path.join(".flatline/lock"),
                            &format!(
                                "could not take the run's lock again after the grace ({error}); \
                                 nothing more is written there, and its reclaims stay noted in \
                                 state.json for the next run"
                            ),
                            Exit::FileProblem,
                        );
                        state.locked = false;
                    }
                }
            }
        }
    }
    // Every target left with a kill was signalled.
    for entry in entries.iter_mut() {
        let Some((kill, info)) = &entry.kill else {
            continue;
        };
        kill.warn(&entry.path, diag);
        if let Some(record) = kill.reclaim(info) {
            entry.changes.reclaim = Some(record);
            tallies.reclaimed_now += 1;
            let seen = &mut states[entry.run].seen;
            seen.reclaim_needed = seen.reclaim_needed.saturating_sub(1);
            seen.attention = seen.attention.saturating_sub(1);
            seen.reclaimed_now(info.state.as_str());
            // The worker is gone: for fan-in it is a failed delegation now.
            if let Some((card, position)) = &entry.card
                && let Some(member) = states[entry.run].member_mut(card, *position)
            {
                member.status = crate::core::lifecycle::ChildStatus::Failed;
            }
        } else {
            let state = &mut states[entry.run];
            let place = Place {
                command: "sweep",
                run: state.run,
                path: &entry.path,
                delegation_id: entry.delegation_id.as_deref(),
            };
            count(&mut tallies, "skipped");
            // Stopped before SIGKILL and still alive: its note stays, so the next run
            // completes it.
            if kill.termination() == Termination::Interrupted {
                unlanded.push((entry.run, entry.name.to_string_lossy().into_owned()));
            }
            let detail = kill.skipped_detail(info);
            let subject = reported::delegation_subject(&entry.name);
            if state.reported.problem(&subject, &skipped_record(&detail)) {
                let _ = place.record("skipped", "not_written", detail, &mut output, diag);
            }
        }
    }
    // A refresh finalization also ends a member.
    for entry in &entries {
        if let (Some((card, position)), Some(Change::Finalize(finalization))) =
            (&entry.card, &entry.changes.refresh)
            && let Some(member) = states[entry.run].member_mut(card, *position)
        {
            member.status = if finalization.verdict.status == crate::core::digest::Outcome::Success
            {
                crate::core::lifecycle::ChildStatus::Completed
            } else {
                crate::core::lifecycle::ChildStatus::Failed
            };
        }
    }

    // A worker marked reclaimed without a process has ended only once that mark is written.
    // Fan-in may count it as failed now (so its card collapses in this sweep) only where the
    // mark is its card's one ending write: the stamps then follow that write and are skipped
    // if it does not land. With other ending writes in the card, one of them could carry its
    // stamp before the mark failed; such a card collapses in the next sweep instead.
    let mut ending: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    for entry in &entries {
        if let Some((card, _)) = &entry.card
            && entry.changes.ends_member()
        {
            *ending.entry((entry.run, card.as_str())).or_default() += 1;
        }
    }
    for entry in &entries {
        if let (Some((card, position)), Some(reclaim)) = (&entry.card, &entry.changes.reclaim)
            && reclaim.termination == Termination::NoProcess
            && ending.get(&(entry.run, card.as_str())) == Some(&1)
            && let Some(member) = states[entry.run].member_mut(card, *position)
        {
            member.status = crate::core::lifecycle::ChildStatus::Failed;
        }
    }

    // 3. Fan-in on the resulting states; delegation stamps join the documents' changes. Its
    // records are printed once the stamps are written.
    let mut failed_cards: Vec<(usize, String)> = Vec::new();
    let mut fan_rows: Vec<(usize, Map<String, Value>)> = Vec::new();
    // --delegation: the scan saw some members of a card only, so no card is judged.
    if interrupted.is_none() && config.delegations.is_empty() {
        for (run_index, state) in states.iter_mut().enumerate() {
            if !state.locked {
                continue;
            }
            let mut fan_output = Output::capture();
            let mut stamps: Vec<(String, usize, FanInStamp)> = Vec::new();
            let mut collect = |card: &str,
                               index: usize,
                               _: &MemberFile,
                               stamp: FanInStamp,
                               _: &mut Diagnostics| {
                stamps.push((card.to_string(), index, stamp));
                true
            };
            let done = fanin::fan_in_run(
                state.run,
                config,
                &state.members,
                state.card_listing.as_ref().map(|l| &l.dir),
                &state.cards,
                &mut collect,
                &mut fan_output,
                diag,
            );
            fan_rows.extend(
                fan_output
                    .into_rows()
                    .into_iter()
                    .map(|row| (run_index, row)),
            );
            match done {
                Ok(outcome) => {
                    for _ in 0..outcome.collapsed {
                        count(&mut tallies, "fan_in_collapsed");
                    }
                    if let Some(listing) = &state.card_listing {
                        commit::sync(&listing.dir, outcome.wrote_cards, diag);
                    }
                }
                Err(exit) => {
                    interrupted = Some(exit);
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
                    Some(entry) if !entries[entry].bytes.is_empty() => {
                        entries[entry].changes.stamp = Some(stamp);
                    }
                    // Cannot happen: a ready card has no member that kept it blocked, so
                    // every finished member's bytes were kept. Said, never silent.
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
    }

    // 4. Each changed document written once, with all of its changes: first the documents
    // whose changes end their worker, then those that only get a fan-in stamp. A card whose
    // ending write did not land gets no more stamps (fan-in judged it on that write); nor
    // does any card once the run is interrupted.
    // Members whose ending write landed: no longer active on disk.
    let mut ended: HashSet<(usize, String, usize)> = HashSet::new();
    for stamps_only in [false, true] {
        for entry in &entries {
            if entry.changes.is_empty() || entry.changes.stamp_only() != stamps_only {
                continue;
            }
            let card = entry
                .card
                .as_ref()
                .map(|(card, _)| (entry.run, card.clone()));
            // Interrupted (signal, deadline): no further side effect, except recording the
            // workers already signalled, which are gone whatever happens next.
            if interrupted.is_none() {
                interrupted = stop.check();
            }
            let signalled = entry.kill.is_some() && entry.changes.reclaim.is_some();
            if !states[entry.run].locked {
                if signalled {
                    unlanded.push((entry.run, entry.name.to_string_lossy().into_owned()));
                }
                continue;
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
                    continue;
                }
            }
            let state = &states[entry.run];
            let Some(listing) = &state.delegations else {
                continue;
            };
            let target = commit::Target {
                dir: &listing.dir,
                name: &entry.name,
                bytes: &entry.bytes,
            };
            let ctx = refresh::Context::new(state.run, config, &host);
            let replanned = |bytes: &[u8]| replan(&ctx, bytes, entry.owner, &changes);
            // A worker that was signalled: its record must land (merged, retried until the
            // deadline).
            let written = if signalled && !config.dry_run {
                commit::write_change_landing(target, changes.clone(), config.now, stop, replanned)
            } else {
                commit::write_change(
                    target,
                    changes.clone(),
                    config.now,
                    config.dry_run,
                    replanned,
                )
            };
            let wrote = written.wrote();
            if signalled && matches!(written, Written::Conflict(_) | Written::Failed { .. }) {
                unlanded.push((entry.run, entry.name.to_string_lossy().into_owned()));
            }
            let place = Place {
                command: "sweep",
                run: state.run,
                path: &entry.path,
                delegation_id: entry.delegation_id.as_deref(),
            };
            if let Written::Done {
                change,
                dry_run: false,
            } = &written
            {
                count(&mut tallies, change.action());
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
                ended.insert((entry.run, card.clone(), *position));
            }
            let landed = match &written {
                Written::Done { change, .. } if stamps_only => change.stamp.is_some(),
                Written::Done { change, .. } => !changes.ends_member() || change.ends_member(),
                // A stamp another writer already made.
                Written::NothingLeft => stamps_only,
                _ => false,
            };
            if !landed
                && (changes.stamp.is_some() || changes.ends_member())
                && let Some(card) = card
                && !failed_cards.contains(&card)
            {
                if matches!(written, Written::NothingLeft) {
                    diag.warning(
                        &entry.path,
                        "changed by another writer meanwhile: left as it is, and its task card's \
                         fan-in left for the next sweep",
                    );
                }
                failed_cards.push(card);
            }
            // A stamp alone is reported by its card's fan_in record. A failing stdout is
            // reported where it fails and stops the printing, never the writes (SPEC §7).
            if stamps_only {
                if !matches!(written, Written::Done { .. } | Written::NothingLeft) {
                    fanin::report_failure(&entry.path, &written, diag);
                }
            } else {
                let _ = commit::report(place, &written, &mut output, diag);
            }
            states[entry.run].wrote |= wrote;
            // A worker marked reclaimed without a process no longer needs a reclaim (the
            // signalled ones were taken off when their kill was recorded).
            if let Written::Done {
                change,
                dry_run: false,
            } = &written
                && change
                    .reclaim
                    .as_ref()
                    .is_some_and(|r| r.termination == Termination::NoProcess)
            {
                let seen = &mut states[entry.run].seen;
                seen.reclaim_needed = seen.reclaim_needed.saturating_sub(1);
                seen.attention = seen.attention.saturating_sub(1);
                if let Some(reclaim) = &change.reclaim {
                    seen.reclaimed_now(reclaim.state.as_str());
                }
            }
        }
    }
    for state in &states {
        if let Some(listing) = &state.delegations {
            commit::sync(&listing.dir, state.wrote, diag);
        }
    }
    // The notes of this sweep's records that landed, and the orphans it saw, are done.
    for (index, state) in states.iter().enumerate() {
        let (Some(lock), true) = (&state.lock, state.locked) else {
            continue;
        };
        let unlanded: Vec<String> = unlanded
            .iter()
            .filter(|(run, _)| *run == index)
            .map(|(_, name)| name.clone())
            .collect();
        if let Err(error) = reclaim::forget_notes(lock, me, &unlanded, &state.seen_orphans) {
            diag.error(
                &crate::runstate::path_of(&state.run.path),
                &error,
                Exit::FileProblem,
            );
        }
    }
    for (run_index, mut row) in fan_rows {
        let card = row
            .get("task_card_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if row.get("outcome").and_then(Value::as_str) == Some("collapsed")
            && failed_cards.contains(&(run_index, card.clone()))
        {
            row.insert("outcome".into(), json!("failed"));
            if let Some(collapsed) = tallies.actions.get_mut("fan_in_collapsed") {
                *collapsed = collapsed.saturating_sub(1);
            }
        }
        if row.get("ready") == Some(&json!(false)) {
            let active = active_after_writes(&states[run_index], run_index, &card, &ended);
            row.insert("active".into(), json!(active));
        }
        if !fan_in_news(&mut states[run_index].reported, &row, config.all) {
            continue;
        }
        if output.record(&row).is_err() {
            break;
        }
    }

    // 5. Heartbeat transitions (none with --delegation, which names delegations only).
    let mut metrics = Metrics::default();
    if interrupted.is_none() && config.delegations.is_empty() {
        for state in states.iter().filter(|state| state.locked) {
            let state_dir = state.lock.as_ref().map(|lock| lock.state_dir());
            let dry_dir = if state_dir.is_none() {
                state
                    .run
                    .dir()
                    .open_child(std::ffi::OsStr::new(".flatline"))
                    .ok()
                    .flatten()
            } else {
                None
            };
            let dir = state_dir.or(dry_dir.as_ref());
            match crate::team::health_events_for_run(
                state.run,
                config,
                dir,
                diag,
                stop,
                &mut output,
            ) {
                Ok(workers) => {
                    state
                        .seen
                        .add_to(&mut metrics, &state.run.root.real_path, Some(&workers))
                }
                Err(exit) => {
                    interrupted = Some(exit);
                    break;
                }
            }
        }
    }

    // Interrupted: no further side effect; what was printed may be printed again.
    if interrupted.is_none() {
        let complete = config.task_cards.is_empty() && config.delegations.is_empty();
        for state in &states {
            write_reported(state, complete, diag);
        }
    }

    for (action, count) in &tallies.actions {
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
        tallies.reclaimed_now as f64,
    );
    crate::cmd::status::add_run_facts(&mut metrics, config.now, diag.errors.len());
    let finished = output
        .metrics(&metrics)
        .and_then(|()| output.finish::<Value>(&[], &diag.errors.clone(), ""));
    if let Err(error) = finished {
        crate::cmd::status::stdout_failed(diag, &error);
    }
    if let Some(exit) = interrupted {
        diag.raise(exit);
    }
    diag.exit
}

/// The problems this run's sweeps printed before (`reported_problems` in `state.json`). An
/// unreadable state counts as none: the health transitions report it.
fn read_reported(run: &Run, lock: Option<&RunLock>, config: &Config) -> Reported {
    let opened;
    let dir = match lock {
        Some(lock) => Some(lock.state_dir()),
        // A dry run takes no lock and creates nothing, but reads what is there.
        None => {
            opened = run
                .dir()
                .open_child(std::ffi::OsStr::new(".flatline"))
                .ok()
                .flatten();
            opened.as_ref()
        }
    };
    let state = dir.and_then(|dir| crate::runstate::RunState::read(dir).ok());
    Reported::new(
        state.as_ref().and_then(|s| s.section(reported::SECTION)),
        config.all,
    )
}

/// Stores the problems this sweep saw (under the run lock; a dry run has none and writes
/// nothing). The state is read again just before, so every other section stays as the other
/// concerns left it.
fn write_reported(state: &RunState<'_>, complete: bool, diag: &mut Diagnostics) {
    let Some(lock) = &state.lock else {
        return;
    };
    let path = crate::runstate::path_of(&state.run.path);
    let mut stored = match crate::runstate::RunState::read(lock.state_dir()) {
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

/// A skipped reclaim as a problem: the record's fields that say what it is.
fn skipped_record(detail: &Map<String, Value>) -> Map<String, Value> {
    let mut record = detail.clone();
    record.insert("action".into(), json!("skipped"));
    record
}

/// Whether a fan-in record is printed by a sweep (SPEC §7): a card collapsed (or failing to,
/// or that would in a dry run) always; a card not ready because of something a person must
/// look at (its warnings: a status flatline does not know) when that first appears or
/// changes; a card simply not ready yet, or already collapsed, only with `--all`.
fn fan_in_news(reported: &mut Reported, row: &Map<String, Value>, all: bool) -> bool {
    let outcome = row.get("outcome").and_then(Value::as_str);
    let ready = row.get("ready").and_then(Value::as_bool).unwrap_or(false);
    let warned = row
        .get("warnings")
        .and_then(Value::as_array)
        .is_some_and(|w| !w.is_empty());
    if ready {
        return all || outcome != Some("already_collapsed");
    }
    if warned {
        let card = row
            .get("task_card_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        return reported.problem(&reported::card_subject(card), row);
    }
    all
}

/// How long targets found by the scan wait for others to join their batch before SIGTERM:
/// a scan shorter than this signals them all together after it, as one batch.
const BATCH_AFTER: Duration = Duration::from_millis(200);

/// Stuck workers signalled as the scan finds them (SPEC §3.3 step 2). Targets found wait in
/// `pending` until a batch is sent (its last look, one state.json note, SIGTERM); a batch in
/// flight gets SIGKILL once its grace has passed, checked between files; the last ones are
/// waited for together after the scan.
#[derive(Default)]
struct Signals {
    /// Entries with a kill not sent yet, all of the run being scanned.
    pending: Vec<usize>,
    /// When the first of them was found.
    since: Option<Instant>,
    in_flight: Vec<InFlight>,
    /// The debug pause before the first signal was taken.
    paused: bool,
}

/// A batch sent SIGTERM: its entries, in order, and what its wait has seen.
struct InFlight {
    entries: Vec<usize>,
    batch: reclaim::Batch,
}

/// The run a batch belongs to.
struct RunRef<'a> {
    run: &'a Run,
    dir: &'a crate::fs::Dir,
    lock: Option<&'a RunLock>,
    seen_orphans: &'a [String],
}

/// The kills of `indices` (ascending), in that order.
fn kills_of<'e>(entries: &'e mut [Entry], indices: &[usize]) -> Vec<&'e mut Kill> {
    entries
        .iter_mut()
        .enumerate()
        .filter(|(index, _)| indices.binary_search(index).is_ok())
        .filter_map(|(_, entry)| entry.kill.as_mut().map(|(kill, _)| kill))
        .collect()
}

impl Signals {
    fn found(&mut self, entry: usize) {
        self.pending.push(entry);
        self.since.get_or_insert_with(Instant::now);
    }

    /// Targets have waited long enough for their batch.
    fn ripe(&self) -> bool {
        self.since
            .is_some_and(|since| since.elapsed() >= BATCH_AFTER)
    }

    /// Sends the pending targets of `at` as one batch: each gets its last look (progress
    /// since the plan, a record that can be written), the survivors are noted in the run's
    /// state.json (one write; none signalled if it fails), then SIGTERM and SIGCONT. Nothing
    /// at all once the run is stopped.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        entries: &mut [Entry],
        at: &RunRef<'_>,
        config: &Config,
        host: &LazyHost,
        me: (i32, u64),
        stop: &Stop,
        tallies: &mut Tallies,
        output: &mut Output,
        diag: &mut Diagnostics,
    ) {
        self.since = None;
        let mut batch = std::mem::take(&mut self.pending);
        if batch.is_empty() || stop.check().is_some() {
            self.pending = batch;
            return;
        }
        if !self.paused {
            self.paused = true;
            reclaim::test_pause_before_signal();
        }
        for &index in &batch {
            let entry = &mut entries[index];
            let Some((_, info)) = &entry.kill else {
                continue;
            };
            let planned = reclaim::Planned {
                run: at.run,
                dir: at.dir,
                name: &entry.name,
                owner: entry.owner,
                process_id: info.process_id,
            };
            let changes = Changes {
                refresh: entry.changes.refresh.clone(),
                reclaim: Some(reclaim::placeholder_record(info)),
                stamp: None,
            };
            let place = Place {
                command: "sweep",
                run: at.run,
                path: &entry.path,
                delegation_id: entry.delegation_id.as_deref(),
            };
            if !reclaim::gate(
                &planned,
                info,
                config,
                host,
                &|doc| changes.apply(doc, config.now),
                place,
                output,
                diag,
            ) {
                entry.kill = None;
                count(tallies, "skipped");
            }
        }
        batch.retain(|&index| entries[index].kill.is_some());
        if batch.is_empty() {
            return;
        }
        // Noted in the run's state.json before the first signal; a batch whose notes cannot
        // be written gets no signal.
        if let Some(lock) = at.lock {
            let boot_id = host.get().boot_id.clone();
            let notes: Vec<reclaim::Noted> = batch
                .iter()
                .filter_map(|&index| {
                    let entry = &entries[index];
                    let (kill, info) = entry.kill.as_ref()?;
                    Some(reclaim::note_of(
                        &entry.name,
                        kill,
                        info.state,
                        boot_id.clone(),
                        config.now,
                        me,
                    ))
                })
                .collect();
            if let Err(error) = reclaim::note_before_signal(lock, &notes, at.seen_orphans) {
                diag.error(
                    &crate::runstate::path_of(&at.run.path),
                    &format!("cannot note the targets before signalling them: {error}"),
                    Exit::FileProblem,
                );
                for &index in &batch {
                    let entry = &mut entries[index];
                    let Some((_, info)) = entry.kill.take() else {
                        continue;
                    };
                    let place = Place {
                        command: "sweep",
                        run: at.run,
                        path: &entry.path,
                        delegation_id: entry.delegation_id.as_deref(),
                    };
                    let mut detail = Map::new();
                    detail.insert("state".into(), json!(info.state.as_str()));
                    detail.insert("process_id".into(), json!(info.process_id));
                    detail.insert(
                        "termination".into(),
                        json!(Termination::SkippedUnrecordable.as_str()),
                    );
                    detail.insert(
                        "reason".into(),
                        json!("its signal could not be noted in .flatline/state.json first"),
                    );
                    count(tallies, "skipped");
                    let _ = place.record("skipped", "not_written", detail, output, diag);
                }
                return;
            }
        }
        let mut kills = kills_of(entries, &batch);
        match reclaim::send_term(&mut kills, config, host.get(), stop) {
            Ok(sent) => self.in_flight.push(InFlight {
                entries: batch,
                batch: sent,
            }),
            // Stopped before the first signal: nothing was sent, nothing is recorded (their
            // notes are dropped with this run's).
            Err(_) => {
                for index in batch {
                    entries[index].kill = None;
                }
            }
        }
    }

    /// Between files: every batch whose grace has passed is frozen, snapshot again and
    /// sent SIGKILL.
    fn kill_due(&mut self, entries: &mut [Entry], config: &Config, host: &LazyHost, stop: &Stop) {
        if !self.in_flight.iter().any(|f| f.batch.due()) {
            return;
        }
        let (due, waiting): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|f| f.batch.due());
        self.in_flight = waiting;
        for flight in due {
            let mut kills = kills_of(entries, &flight.entries);
            // A stop is seen by the scan before the next file.
            let _ = reclaim::finish(&mut kills, flight.batch, config, host.get(), stop);
        }
    }

    /// Targets found but never sent are not signalled (a stopped run, a dry run).
    fn drop_pending(&mut self, entries: &mut [Entry]) {
        for index in std::mem::take(&mut self.pending) {
            entries[index].kill = None;
        }
        self.since = None;
    }

    /// The batches still in flight, waited for together: one wait until the latest grace.
    fn finish_all(
        &mut self,
        entries: &mut [Entry],
        config: &Config,
        host: &LazyHost,
        stop: &Stop,
    ) -> Result<(), Exit> {
        let flights = std::mem::take(&mut self.in_flight);
        let mut indices: Vec<usize> = Vec::new();
        let mut batches = Vec::new();
        for flight in flights {
            indices.extend(flight.entries);
            batches.push(flight.batch);
        }
        debug_assert!(indices.windows(2).all(|w| w[0] < w[1]));
        let Some(batch) = reclaim::Batch::merge(batches) else {
            return Ok(());
        };
        let mut kills = kills_of(entries, &indices);
        reclaim::finish(&mut kills, batch, config, host.get(), stop)
    }
}

/// Debug builds only: `FLATLINE_TEST_SLOW_SCAN_MS=<ms>` makes sweep's scan sleep that long
/// before each delegation after the first, so a test can make a scan slow. Release builds
/// have no such hook.
fn test_slow_scan(visited: usize) {
    #[cfg(debug_assertions)]
    if visited > 0
        && let Some(ms) = std::env::var("FLATLINE_TEST_SLOW_SCAN_MS")
            .ok()
            .and_then(|ms| ms.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms.min(60_000)));
    }
    #[cfg(not(debug_assertions))]
    let _ = visited;
}

fn count(tallies: &mut Tallies, action: &'static str) {
    *tallies.actions.entry(action).or_default() += 1;
}

/// The bytes of a document after a refresh change, as they would be written.
fn in_memory(bytes: &[u8], change: &Change, now: i64) -> Result<Vec<u8>, String> {
    let mut value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("cannot rewrite: {e}"))?;
    change.apply(&mut value, now).map_err(|ApplyError(e)| e)?;
    Ok(crate::model::render(&value))
}

/// Looks at a document as refresh leaves it (in memory) for reclaim and fan-in.
fn look(
    bytes: &[u8],
    config: &Config,
    host: &LazyHost,
    owner: u32,
    seen: &mut RunMetrics,
) -> Result<After, crate::model::DocError> {
    scan::inspect(bytes, config, host, |doc, _, facts, view| {
        seen.add(view);
        after_of(doc, facts, view, owner, config)
    })
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

/// Whether `member` counts for its card whatever the card's other members are.
fn surely_counts(member: &Member, card: Option<&CardFile>) -> bool {
    member.owner == Some(0)
        || card.is_some_and(|card| {
            !card.doc.missing && !card.doc.foreign && member.owner == Some(card.doc.owner)
        })
}

fn after_of(
    doc: &crate::model::Delegation<'_>,
    facts: &crate::core::lifecycle::ProcessFacts,
    view: &crate::core::lifecycle::View<'_>,
    owner: u32,
    config: &Config,
) -> After {
    After {
        reclaim_needed: view.reclaim_state == ReclaimState::ReclaimNeeded,
        triage: reclaim::nested_guard(
            triage(facts, owner, config.allow_foreign_uid),
            owner,
            config.allow_nested_pidns,
        ),
        info: TargetInfo {
            state: view.state,
            process_id: view.process_id,
            stale_at: view.stale_at,
            timed_out_at: view.timed_out_at,
        },
        member: Member::of(doc),
    }
}

/// After a conflict: refresh is planned again from the new bytes; the reclaim record (the
/// signals were sent) and the stamp still apply while the document still needs them.
fn replan(
    ctx: &refresh::Context<'_>,
    bytes: &[u8],
    owner: u32,
    planned: &Changes,
) -> Result<Option<Changes>, String> {
    let (unstamped, active) = scan::inspect(bytes, ctx.config, ctx.host, |doc, _, _, _| {
        let member = Member::of(doc);
        (member.collapsed_at.is_none(), member.is_active())
    })
    .map_err(|error| error.to_string())?;
    let reclaim = match &planned.reclaim {
        // Marked without a process: only while the document still needs it and names none.
        Some(change) if change.termination == Termination::NoProcess => {
            reclaim::still_needs_no_process_reclaim(bytes, ctx.config, ctx.host, change)?
        }
        // A worker that was signalled and is gone: true whatever the document says now,
        // merged into a terminal status the orchestrator set meanwhile (Reclaim::apply).
        other => other.clone(),
    };
    let mut changes = Changes {
        refresh: if planned.refresh.is_some() && planned.reclaim.is_none() {
            refresh::replan(ctx, bytes, owner)?
        } else {
            None
        },
        reclaim,
        stamp: None,
    };
    // The stamp was planned on this member being over: ended by these changes, or finished
    // already (not queued or running again meanwhile). Otherwise its card is not ready.
    let still_ends = !planned.ends_member() || changes.ends_member();
    let over = !active || changes.ends_member();
    changes.stamp = planned.stamp.filter(|_| unstamped && still_ends && over);
    Ok((!changes.is_empty()).then_some(changes))
}
