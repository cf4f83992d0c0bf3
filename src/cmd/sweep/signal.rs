//! The signal phase: stuck workers get SIGTERM as the scan finds them (in batches, each noted
//! in state.json first), SIGKILL once their batch's grace has passed (checked between
//! files), the last batches waited for together after the scan (one grace period), and each
//! target's outcome becomes its reclaim record (SPEC §3.3 step 2).

use super::changes::Changes;
use super::state::{Entry, Env, Sweep, count, skipped_record};
use crate::cli::config::Config;
use crate::core::plan::reclaim::Termination;
use crate::exit::Exit;
use crate::fs::RunLock;
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use crate::shell::commit::{self, DocChange, Place};
use crate::shell::reclaim::{self, Kill};
use crate::shell::runs::{LazyHost, Run};
use crate::shell::state::reported;
use std::time::{Duration, Instant};

/// How long targets found by the scan wait for others to join their batch before SIGTERM:
/// a scan shorter than this signals them all together after it, as one batch.
pub(super) const BATCH_AFTER: Duration = Duration::from_millis(200);

/// What sends the signals: the tree kill of `reclaim` (unit tests use a double).
pub(super) trait Signaller {
    type Batch;
    /// SIGTERM (and SIGCONT) to every target of `kills`; `Err` when nothing was sent.
    fn term(&mut self, kills: &mut [&mut Kill]) -> Result<Self::Batch, Exit>;
    /// The batch's grace has passed.
    fn due(&self, batch: &Self::Batch) -> bool;
    /// Waits out the grace, sends SIGKILL and folds the outcome into `kills` (same order).
    fn kill(&mut self, kills: &mut [&mut Kill], batch: Self::Batch) -> Result<(), Exit>;
    /// Batches finished together: one wait, until the latest grace.
    fn merge(&self, batches: Vec<Self::Batch>) -> Option<Self::Batch>;
}

/// The real signals: `reclaim`'s tree kill.
pub(super) struct Tree<'a> {
    pub config: &'a Config,
    pub host: &'a LazyHost,
    pub stop: &'a Stop,
}

impl Signaller for Tree<'_> {
    type Batch = reclaim::Batch;

    fn term(&mut self, kills: &mut [&mut Kill]) -> Result<reclaim::Batch, Exit> {
        reclaim::send_term(kills, self.config, self.host.get(), self.stop)
    }

    fn due(&self, batch: &reclaim::Batch) -> bool {
        batch.due()
    }

    fn kill(&mut self, kills: &mut [&mut Kill], batch: reclaim::Batch) -> Result<(), Exit> {
        reclaim::finish(kills, batch, self.config, self.host.get(), self.stop)
    }

    fn merge(&self, batches: Vec<reclaim::Batch>) -> Option<reclaim::Batch> {
        reclaim::Batch::merge(batches)
    }
}

/// Stuck workers signalled as the scan finds them (SPEC §3.3 step 2). Targets found wait in
/// `pending` until a batch is sent (its last look, one state.json note, SIGTERM); a batch in
/// flight gets SIGKILL once its grace has passed, checked between files; the last ones are
/// waited for together after the scan.
pub(super) struct Signals<B> {
    /// Entries with a kill not sent yet, all of the run being scanned.
    pending: Vec<usize>,
    /// When the first of them was found.
    since: Option<Instant>,
    in_flight: Vec<InFlight<B>>,
    /// The debug pause before the first signal was taken.
    paused: bool,
}

impl<B> Default for Signals<B> {
    fn default() -> Self {
        Signals {
            pending: Vec::new(),
            since: None,
            in_flight: Vec::new(),
            paused: false,
        }
    }
}

/// A batch sent SIGTERM: its entries, in order, and what its wait has seen.
struct InFlight<B> {
    entries: Vec<usize>,
    batch: B,
}

/// The run a batch belongs to.
pub(super) struct RunRef<'a> {
    pub run: &'a Run,
    pub dir: &'a crate::fs::Dir,
    pub lock: Option<&'a RunLock>,
    pub seen_orphans: &'a [String],
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

impl<B> Signals<B> {
    /// A stuck worker found at `now`: signalled with the next batch.
    pub fn found(&mut self, entry: usize, now: Instant) {
        self.pending.push(entry);
        self.since.get_or_insert(now);
    }

    /// Targets have waited long enough for their batch.
    pub fn ripe(&self, now: Instant) -> bool {
        self.since
            .is_some_and(|since| now.saturating_duration_since(since) >= BATCH_AFTER)
    }

    /// Batches sent and not finished yet.
    pub fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The pending targets as one batch to send; none (they stay pending) when there are
    /// none or `stopped()` says the run is stopped.
    pub(super) fn take_batch(&mut self, stopped: impl FnOnce() -> bool) -> Option<Vec<usize>> {
        self.since = None;
        let batch = std::mem::take(&mut self.pending);
        if batch.is_empty() || stopped() {
            self.pending = batch;
            return None;
        }
        Some(batch)
    }

    /// SIGTERM to the targets of `batch` still to signal: in flight from now on. Stopped
    /// before the first signal, nothing was sent and nothing is recorded (their notes are
    /// dropped with this run's).
    pub fn term<S: Signaller<Batch = B>>(
        &mut self,
        entries: &mut [Entry],
        batch: Vec<usize>,
        signaller: &mut S,
    ) {
        let mut kills = kills_of(entries, &batch);
        match signaller.term(&mut kills) {
            Ok(sent) => self.in_flight.push(InFlight {
                entries: batch,
                batch: sent,
            }),
            Err(_) => {
                for index in batch {
                    entries[index].kill = None;
                }
            }
        }
    }

    /// Between files: every batch whose grace has passed is frozen, snapshot again and
    /// sent SIGKILL.
    pub fn kill_due<S: Signaller<Batch = B>>(&mut self, entries: &mut [Entry], signaller: &mut S) {
        if !self.in_flight.iter().any(|f| signaller.due(&f.batch)) {
            return;
        }
        let (due, waiting): (Vec<InFlight<B>>, Vec<InFlight<B>>) =
            std::mem::take(&mut self.in_flight)
                .into_iter()
                .partition(|f| signaller.due(&f.batch));
        self.in_flight = waiting;
        for flight in due {
            let mut kills = kills_of(entries, &flight.entries);
            // A stop is seen by the scan before the next file.
            let _ = signaller.kill(&mut kills, flight.batch);
        }
    }

    /// Targets found but never sent are not signalled (a stopped run, a dry run).
    pub fn drop_pending(&mut self, entries: &mut [Entry]) {
        for index in std::mem::take(&mut self.pending) {
            entries[index].kill = None;
        }
        self.since = None;
    }

    /// The batches still in flight, waited for together: one wait until the latest grace.
    pub fn finish_all<S: Signaller<Batch = B>>(
        &mut self,
        entries: &mut [Entry],
        signaller: &mut S,
    ) -> Result<(), Exit> {
        let flights = std::mem::take(&mut self.in_flight);
        let mut indices: Vec<usize> = Vec::new();
        let mut batches = Vec::new();
        for flight in flights {
            indices.extend(flight.entries);
            batches.push(flight.batch);
        }
        debug_assert!(indices.windows(2).all(|w| w[0] < w[1]));
        let Some(batch) = signaller.merge(batches) else {
            return Ok(());
        };
        let mut kills = kills_of(entries, &indices);
        signaller.kill(&mut kills, batch)
    }
}

/// Sends the pending targets of `at` as one batch: each gets its last look (progress since
/// the plan, a record that can be written), the survivors are noted in the run's
/// state.json (one write; none signalled if it fails), then SIGTERM and SIGCONT. Nothing at
/// all once the run is stopped.
pub(super) fn send(sweep: &mut Sweep<'_>, env: &Env<'_>, at: &RunRef<'_>, diag: &mut Diagnostics) {
    let Some(mut batch) = sweep.signals.take_batch(|| env.stop.check().is_some()) else {
        return;
    };
    if !sweep.signals.paused {
        sweep.signals.paused = true;
        reclaim::test_pause_before_signal();
    }
    last_look(sweep, env, at, &batch, diag);
    batch.retain(|&index| sweep.entries[index].kill.is_some());
    if batch.is_empty() {
        return;
    }
    // Noted in the run's state.json before the first signal; a batch whose notes cannot
    // be written gets no signal.
    if let Some(lock) = at.lock
        && !note(sweep, env, at, lock, &batch, diag)
    {
        return;
    }
    sweep
        .signals
        .term(&mut sweep.entries, batch, &mut env.tree());
}

/// Each target of `batch` checked once more just before the first signal: one that shows
/// progress since the plan, or whose record could not be written, is dropped.
fn last_look(
    sweep: &mut Sweep<'_>,
    env: &Env<'_>,
    at: &RunRef<'_>,
    batch: &[usize],
    diag: &mut Diagnostics,
) {
    let config = env.config;
    for &index in batch {
        let entry = &mut sweep.entries[index];
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
            env.host,
            &|doc| changes.apply(doc, config.now),
            place,
            &mut sweep.output,
            diag,
        ) {
            entry.kill = None;
            count(&mut sweep.tallies, "skipped");
        }
    }
}

/// Notes the targets of `batch` in the run's state.json; when that fails, none of them is
/// signalled and each is reported skipped.
fn note(
    sweep: &mut Sweep<'_>,
    env: &Env<'_>,
    at: &RunRef<'_>,
    lock: &RunLock,
    batch: &[usize],
    diag: &mut Diagnostics,
) -> bool {
    let boot_id = env.host.get().boot_id.clone();
    let notes: Vec<reclaim::Noted> = batch
        .iter()
        .filter_map(|&index| {
            let entry = &sweep.entries[index];
            let (kill, info) = entry.kill.as_ref()?;
            Some(reclaim::note_of(
                &entry.name,
                kill,
                info.state,
                boot_id.clone(),
                env.config.now,
                env.me,
            ))
        })
        .collect();
    let Err(error) = reclaim::note_before_signal(lock, &notes, at.seen_orphans) else {
        return true;
    };
    diag.error(
        &crate::shell::state::path_of(&at.run.path),
        &format!("cannot note the targets before signalling them: {error}"),
        Exit::FileProblem,
    );
    for &index in batch {
        let entry = &mut sweep.entries[index];
        let Some((_, info)) = entry.kill.take() else {
            continue;
        };
        let place = Place {
            command: "sweep",
            run: at.run,
            path: &entry.path,
            delegation_id: entry.delegation_id.as_deref(),
        };
        let detail = reclaim::unrecordable_detail(&info);
        count(&mut sweep.tallies, "skipped");
        let _ = place.record("skipped", "not_written", detail, &mut sweep.output, diag);
    }
    false
}

/// The batches still in flight after the scan, waited for together: one grace period at
/// most. Targets found but not sent (a stopped run, a dry run) are not signalled. A stopped
/// run waits no more: a target that died of its SIGTERM is recorded, one still alive is
/// `interrupted` and its note kept for the next run.
pub(super) fn wait(sweep: &mut Sweep<'_>, env: &Env<'_>, diag: &mut Diagnostics) {
    let mut tree = env.tree();
    sweep.signals.drop_pending(&mut sweep.entries);
    // Those whose grace has passed already are not kept waiting for the others.
    if sweep.interrupted.is_none() {
        sweep.signals.kill_due(&mut sweep.entries, &mut tree);
    }
    if !sweep.signals.in_flight() {
        return;
    }
    // Nothing but waiting until the records: the locks are let go meanwhile (not once the
    // run is stopped: it writes only what it must, at once).
    let result = if sweep.interrupted.is_none() {
        let (entries, signals) = (&mut sweep.entries, &mut sweep.signals);
        commit::wait_unlocked(
            || signals.finish_all(entries, &mut tree),
            env.stop,
            "the grace",
            diag,
        )
        .0
    } else {
        sweep.signals.finish_all(&mut sweep.entries, &mut tree)
    };
    if let Err(exit) = result {
        sweep.interrupted.get_or_insert(exit);
    }
}

/// Every target left with a kill was signalled: a worker confirmed gone gets its reclaim
/// record (and counts as a failed member for fan-in), any other is reported skipped.
pub(super) fn record(sweep: &mut Sweep<'_>, diag: &mut Diagnostics) {
    for entry in sweep.entries.iter_mut() {
        let Some((kill, info)) = &entry.kill else {
            continue;
        };
        kill.warn(&entry.path, diag);
        if let Some(record) = kill.reclaim(info) {
            entry.changes.reclaim = Some(record);
            sweep.tallies.reclaimed_now += 1;
            let seen = &mut sweep.states[entry.run].seen;
            seen.reclaim_needed = seen.reclaim_needed.saturating_sub(1);
            seen.attention = seen.attention.saturating_sub(1);
            seen.reclaimed_now(info.state.as_str());
            // The worker is gone: for fan-in it is a failed delegation now.
            if let Some((card, position)) = &entry.card
                && let Some(member) = sweep.states[entry.run].member_mut(card, *position)
            {
                member.status = crate::core::lifecycle::ChildStatus::Failed;
            }
        } else {
            let state = &mut sweep.states[entry.run];
            let place = Place {
                command: "sweep",
                run: state.run,
                path: &entry.path,
                delegation_id: entry.delegation_id.as_deref(),
            };
            count(&mut sweep.tallies, "skipped");
            // Stopped before SIGKILL and still alive: its note stays, so the next run
            // completes it.
            if kill.termination() == Termination::Interrupted {
                sweep
                    .unlanded
                    .push((entry.run, entry.name.to_string_lossy().into_owned()));
            }
            let detail = kill.skipped_detail(info);
            let subject = reported::delegation_subject(&entry.name);
            if state.reported.problem(&subject, &skipped_record(&detail)) {
                let _ = place.record("skipped", "not_written", detail, &mut sweep.output, diag);
            }
        }
    }
}
