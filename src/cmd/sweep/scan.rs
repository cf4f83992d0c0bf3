//! The scan phase: each run locked once and its delegations read once; refresh's change is
//! applied in memory and the document looked at again (in memory) for reclaim triage; stuck
//! workers are handed to the signal phase as they are found, and each card's members are
//! gathered for fan-in.

use super::changes::{Changes, in_memory};
use super::signal::{self, RunRef};
use super::state::{Entry, Env, RunState, Sweep, count, skipped_record};
use crate::cli::config::Config;
use crate::core::lifecycle::ReclaimState;
use crate::core::plan::fan_in::Member;
use crate::core::plan::reclaim::{Reclaim, Termination, Triage, triage};
use crate::exit::Exit;
use crate::fs::RunLock;
use crate::output::Diagnostics;
use crate::output::RunMetrics;
use crate::shell::commit::Place;
use crate::shell::fan_in::{self as fanin, CardFile, MemberFile};
use crate::shell::reclaim::{self, Kill, TargetInfo};
use crate::shell::refresh;
use crate::shell::runs::{self as scan, Item, LazyHost, Run};
use crate::shell::session::{self, Access, Session, Visit};
use crate::shell::state::reported::{self, Reported};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// What the post-refresh look at a document says.
pub(super) struct After {
    pub reclaim_needed: bool,
    pub triage: Triage,
    pub info: TargetInfo,
    pub member: Member,
}

/// One run's scan as it goes: the cards' members and what is known of them.
struct RunScan {
    index: usize,
    members: BTreeMap<String, Vec<MemberFile>>,
    member_entries: BTreeMap<String, Vec<Option<usize>>>,
    disk_active: BTreeMap<String, Vec<bool>>,
    /// Cards with a member that stays active: not ready in this sweep.
    blocked: HashSet<String>,
    seen: RunMetrics,
    reported: Reported,
    seen_orphans: Vec<String>,
}

/// Every run scanned in turn, through the shared run loop.
pub(super) fn all<'r>(
    sweep: &mut Sweep<'r>,
    env: &Env<'_>,
    runs: &'r [Run],
    diag: &mut Diagnostics,
) {
    let scan = Runs {
        sweep: &mut *sweep,
        env,
    };
    if let Err(exit) = session::visit_runs(runs, Access::Write, env.config, diag, env.stop, scan) {
        sweep.interrupted = Some(exit);
    }
}

/// The scan's work on each run.
struct Runs<'s, 'r, 'e> {
    sweep: &'s mut Sweep<'r>,
    env: &'s Env<'e>,
}

impl<'r> Visit<'r> for Runs<'_, 'r, '_> {
    /// Batches of the runs before whose grace has passed (this run's lock may be waited
    /// for).
    fn before_lock(&mut self) {
        if !self.env.config.dry_run {
            self.sweep
                .signals
                .kill_due(&mut self.sweep.entries, &mut self.env.tree());
        }
    }

    fn run(&mut self, session: Session<'r>, diag: &mut Diagnostics) -> Result<(), Exit> {
        let state = run(self.sweep, self.env, session, diag);
        self.sweep.states.push(state);
        match self.sweep.interrupted {
            Some(exit) => Err(exit),
            None => Ok(()),
        }
    }
}

/// Scans one run whose lock is held (`None` in a dry run): its state for the later phases.
fn run<'r>(
    sweep: &mut Sweep<'r>,
    env: &Env<'_>,
    session: Session<'r>,
    diag: &mut Diagnostics,
) -> RunState<'r> {
    let config = env.config;
    let run = session.run;
    let lock = session.lock.as_ref();
    let delegations = scan::list_for_writing(run, "delegations", config, diag);
    // Read first, so that the scan knows which active members surely count (below).
    let (card_listing, cards) = fanin::read_cards(run, config, diag);
    let mut scanning = RunScan {
        index: sweep.states.len(),
        members: BTreeMap::new(),
        member_entries: BTreeMap::new(),
        disk_active: BTreeMap::new(),
        blocked: HashSet::new(),
        seen: RunMetrics::default(),
        reported: read_reported(&session, config),
        seen_orphans: Vec::new(),
    };
    let ledger = load_ledger(run, lock, env.host, diag);
    if let Some(listing) = &delegations {
        let ctx = refresh::Context::new(run, config, env.host);
        // Where the last sweep stopped, if a deadline or signal cut it short.
        let mut resume = session.resume();
        let mut visited = 0usize;
        let result = scan::for_each_in_listing_from(
            run,
            listing,
            config,
            env.host,
            diag,
            env.stop,
            &mut resume,
            &mut |item, diag| {
                test_slow_scan(visited);
                visited += 1;
                // Between files: a batch whose grace has passed gets SIGKILL, and the
                // targets found a while ago get SIGTERM (SPEC §3.3 step 2).
                if !config.dry_run {
                    sweep.signals.kill_due(&mut sweep.entries, &mut env.tree());
                    if sweep.signals.ripe(Instant::now()) {
                        let at = RunRef {
                            run,
                            dir: &listing.dir,
                            lock,
                            seen_orphans: &scanning.seen_orphans,
                        };
                        signal::send(sweep, env, &at, diag);
                    }
                }
                visit(sweep, env, &mut scanning, &ctx, &ledger, &cards, item, diag)
            },
        );
        if let Err(exit) = result {
            sweep.interrupted = Some(exit);
        }
        // The run's targets not sent yet go out now, while its lock and listing are at
        // hand; none once the run is stopped (no further side effect).
        if sweep.interrupted.is_none() && !config.dry_run {
            let at = RunRef {
                run,
                dir: &listing.dir,
                lock,
                seen_orphans: &scanning.seen_orphans,
            };
            signal::send(sweep, env, &at, diag);
        }
        session.record_resume(&resume, diag);
    }
    RunState {
        run,
        lock: session.lock,
        delegations,
        card_listing,
        cards,
        members: scanning.members,
        member_entries: scanning.member_entries,
        disk_active: scanning.disk_active,
        wrote: false,
        seen: scanning.seen,
        reported: scanning.reported,
        seen_orphans: scanning.seen_orphans,
    }
}

/// The signal notes of the run's state.json (none in a dry run, or when unreadable: said).
fn load_ledger(
    run: &Run,
    lock: Option<&RunLock>,
    host: &LazyHost,
    diag: &mut Diagnostics,
) -> reclaim::Ledger {
    match lock {
        Some(lock) => reclaim::load_ledger(lock, host.get()).unwrap_or_else(|error| {
            diag.error(
                &crate::shell::state::path_of(&run.path),
                &error,
                Exit::FileProblem,
            );
            reclaim::Ledger::default()
        }),
        None => reclaim::Ledger::default(),
    }
}

/// One delegation: its refresh, its reclaim triage and its place in its card.
#[allow(clippy::too_many_arguments)]
fn visit(
    sweep: &mut Sweep<'_>,
    env: &Env<'_>,
    scanning: &mut RunScan,
    ctx: &refresh::Context<'_>,
    ledger: &reclaim::Ledger,
    cards: &BTreeMap<String, CardFile>,
    item: Item<'_>,
    diag: &mut Diagnostics,
) -> Result<(), Exit> {
    let config = env.config;
    let owner = crate::fs::guard_owner(&item.meta);
    let name = item.name.to_string_lossy();
    // Signalled by another flatline still waiting out its grace: left to it.
    let theirs = ledger.theirs.contains(name.as_ref());
    // Signalled by a flatline that is gone, and its process exited since.
    let orphan = ledger.orphans.get(name.as_ref()).and_then(|note| {
        scanning.seen_orphans.push(name.to_string());
        let boot_id = env.host.get().boot_id.clone();
        let gone =
            reclaim::noted_process_gone(note, boot_id.as_deref(), &crate::proc::start_ticks_of);
        (gone
            && reclaim::note_matches(note, item.view)
            && !crate::core::lifecycle::is_reclaimed(item.doc))
        .then(|| reclaim::orphan_record(note, item.view))
    });
    let place = Place {
        command: "sweep",
        run: ctx.run,
        path: item.path,
        delegation_id: item.view.delegation_id,
    };
    // A dry run prints the reclaim plan of a target as reclaim does, from the same view,
    // and plans nothing else for it.
    let dry_target = config.dry_run
        && item.view.reclaim_state == ReclaimState::ReclaimNeeded
        && !theirs
        && orphan.is_none();
    if dry_target {
        reclaim::print_dry_run(
            item.doc,
            item.view,
            item.facts,
            owner,
            config,
            env.host,
            env.plan_table,
            place,
            &mut sweep.output,
            diag,
        );
    }
    let planned = if theirs || orphan.is_some() || dry_target {
        None
    } else {
        match refresh::plan(ctx, item.doc, item.times, item.facts, owner) {
            Ok(planned) => planned,
            Err(problem) => {
                diag.error(item.path, &problem.to_string(), Exit::FileProblem);
                None
            }
        }
    };
    let Some(after) = look_again(&item, &planned, config, env.host, owner, scanning, diag) else {
        return Ok(());
    };
    let mut changes = Changes {
        refresh: planned,
        reclaim: orphan.clone(),
        ..Changes::default()
    };
    let mut kill = None;
    if after.reclaim_needed && !theirs && orphan.is_none() && !dry_target {
        kill = triage_target(
            sweep,
            scanning,
            &after,
            &mut changes,
            owner,
            &item,
            place,
            diag,
        )?;
    }
    let member = Member {
        owner: fanin::owned_document(&item.meta),
        ..after.member
    };
    join_card(sweep, scanning, cards, &item, member, owner, changes, kill);
    Ok(())
}

/// The document as refresh leaves it, looked at again in memory (as read when refresh
/// changes nothing). `None` (reported) when that cannot be done.
fn look_again(
    item: &Item<'_>,
    planned: &Option<crate::core::plan::refresh::Change>,
    config: &Config,
    host: &LazyHost,
    owner: u32,
    scanning: &mut RunScan,
    diag: &mut Diagnostics,
) -> Option<After> {
    let refreshed = match planned {
        Some(change) => match in_memory(item.bytes, change, config.now) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                diag.error(item.path, &error, Exit::FileProblem);
                return None;
            }
        },
        None => None,
    };
    match &refreshed {
        Some(bytes) => match look(bytes, config, host, owner, &mut scanning.seen) {
            Ok(after) => Some(after),
            Err(error) => {
                diag.error(item.path, &error.to_string(), Exit::FileProblem);
                None
            }
        },
        None => {
            scanning.seen.add(item.view);
            Some(after_of(
                item.doc, item.facts, item.view, owner, config, host,
            ))
        }
    }
}

/// A worker that needs reclaim: a kill to send, a mark without a process, or a skip
/// (reported once).
#[allow(clippy::too_many_arguments)]
fn triage_target(
    sweep: &mut Sweep<'_>,
    scanning: &mut RunScan,
    after: &After,
    changes: &mut Changes,
    owner: u32,
    item: &Item<'_>,
    place: Place<'_>,
    diag: &mut Diagnostics,
) -> Result<Option<(Kill, TargetInfo)>, Exit> {
    match after.triage {
        Triage::Signal {
            pid, start_ticks, ..
        } => {
            return Ok(Some((
                Kill::new(pid, start_ticks, owner),
                after.info.clone(),
            )));
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
            // Finalize here means refresh could not (its stream has not settled): leave it
            // for a later sweep.
            if termination.needs_attention() {
                diag.raise(Exit::Attention);
            }
            let detail = crate::output::SkippedDetail {
                state: after.info.state.as_str(),
                process_id: after.info.process_id,
                termination: termination.as_str(),
                reason: None,
            };
            count(&mut sweep.tallies, "skipped");
            let subject = reported::delegation_subject(item.name);
            if scanning
                .reported
                .problem(&subject, &skipped_record(&detail))
            {
                place.record("skipped", "not_written", detail, &mut sweep.output, diag)?;
            }
        }
    }
    Ok(None)
}

/// Keeps what a later phase needs of the document (its bytes when it may be written) and
/// adds it to its card's members.
#[allow(clippy::too_many_arguments)]
fn join_card(
    sweep: &mut Sweep<'_>,
    scanning: &mut RunScan,
    cards: &BTreeMap<String, CardFile>,
    item: &Item<'_>,
    member: Member,
    owner: u32,
    changes: Changes,
    kill: Option<(Kill, TargetInfo)>,
) {
    let card = item.doc.task_card_id.str().map(str::to_string);
    // A member that stays active through this sweep (nothing will end it: no kill, no
    // reclaim mark) keeps its card from being ready: the bytes kept for stamping its
    // finished members are let go, and no more are kept, so memory does not grow with the
    // finished members of unfinished cards. Only a member that surely counts for the card
    // does (SPEC §3.4): root's, or that of the owner of the card's document.
    if let Some(card) = &card
        && member.is_active()
        && surely_counts(&member, cards.get(card))
        && kill.is_none()
        && changes.reclaim.is_none()
        && scanning.blocked.insert(card.clone())
    {
        for &index in scanning
            .member_entries
            .get(card)
            .into_iter()
            .flatten()
            .flatten()
        {
            let entry: &mut Entry = &mut sweep.entries[index];
            if entry.changes.is_empty() && entry.kill.is_none() {
                entry.bytes = Vec::new();
            }
        }
    }
    let stamp_candidate = card
        .as_ref()
        .is_some_and(|card| member.may_need_stamp() && !scanning.blocked.contains(card));
    let kill_planned = kill.is_some();
    let keep = !changes.is_empty() || kill_planned || stamp_candidate;
    let entry_index = keep.then(|| {
        sweep.entries.push(Entry {
            run: scanning.index,
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
            sweep.signals.found(sweep.entries.len() - 1, Instant::now());
        }
        sweep.entries.len() - 1
    });
    if let Some(card) = card {
        let list = scanning.members.entry(card.clone()).or_default();
        let position = list.len();
        list.push(MemberFile {
            member,
            name: item.name.to_os_string(),
            path: item.path.to_path_buf(),
            bytes: None,
        });
        scanning
            .member_entries
            .entry(card.clone())
            .or_default()
            .push(entry_index);
        scanning.disk_active.entry(card.clone()).or_default().push(
            !crate::core::lifecycle::is_reclaimed(item.doc)
                && !crate::core::lifecycle::child_status(item.doc).is_terminal(),
        );
        if let Some(entry) = entry_index {
            sweep.entries[entry].card = Some((card, position));
        }
    }
}

/// The problems this run's sweeps printed before (`reported_problems` in `state.json`). An
/// unreadable state counts as none: the health transitions report it. A dry run takes no
/// lock and creates nothing, but reads what is there.
fn read_reported(session: &Session<'_>, config: &Config) -> Reported {
    let state = session
        .with_state_dir(|dir| dir.and_then(|dir| crate::shell::state::RunState::read(dir).ok()));
    Reported::new(
        state.as_ref().and_then(|s| s.section(reported::SECTION)),
        config.all,
    )
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
        std::thread::sleep(std::time::Duration::from_millis(ms.min(60_000)));
    }
    #[cfg(not(debug_assertions))]
    let _ = visited;
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
        after_of(doc, facts, view, owner, config, host)
    })
}

/// Whether `member` counts for its card whatever the card's other members are.
pub(super) fn surely_counts(member: &Member, card: Option<&CardFile>) -> bool {
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
    host: &LazyHost,
) -> After {
    After {
        reclaim_needed: view.reclaim_state == ReclaimState::ReclaimNeeded,
        triage: crate::shell::launch::launcher_guard(
            reclaim::nested_guard(
                triage(facts, owner, config.allow_foreign_uid),
                owner,
                config.allow_nested_pidns,
            ),
            doc,
            host.get(),
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
