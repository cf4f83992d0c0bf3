//! tree_kill: a worker and its process tree signalled together, all workers in one grace
//! (SPEC §3.3 step 2). Each verified worker is opened as a pidfd, its descendants are
//! snapshot from `/proc` through the one descendant filter (`descendants_to_signal`),
//! SIGTERM then SIGCONT go to every target of every worker at once, one wait covers all of
//! them against one deadline, survivors are frozen with SIGSTOP and snapshot again, then get
//! SIGKILL. What the signals showed is folded back per worker into its `Kill`.

use crate::cli::config::Config;
use crate::core::identity::{self, Pid};
use crate::core::plan::reclaim::{Termination, uid_allowed};
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::proc::{self, OpenError, Sent, Signal, Target, Waited};
use std::time::Instant;

/// The termination of a signalled worker. Pure: from what the signals and waits showed.
/// A worker still alive is `survived` only when SIGKILL was sent; otherwise the run was
/// stopped before it (`interrupted`).
pub fn termination(
    term: Sent,
    exited_in_grace: bool,
    exited_after_kill: bool,
    kill_sent: bool,
) -> Termination {
    match term {
        Sent::NotPermitted => Termination::NotPermitted,
        Sent::Gone | Sent::Changed => Termination::AlreadyExited,
        Sent::Delivered if exited_in_grace => Termination::Terminated,
        Sent::Delivered if exited_after_kill => Termination::Killed,
        Sent::Delivered if kill_sent => Termination::Survived,
        Sent::Delivered => Termination::Interrupted,
    }
}

/// What the tree kill does with one descendant of a worker: the one descendant filter, used
/// by the kill and by the dry-run plan alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Descendant {
    /// It may be signalled: a valid pid whose real uid passes the uid guard.
    Signal(Pid),
    /// Another user's process (the uid guard): found, left alone, and said so.
    Foreign,
    /// Flatline itself, one of its ancestors, pid 0 or 1: never a target.
    Forbidden,
}

/// The descendants of `root` still running (not zombies), from a snapshot of `/proc`.
pub fn live_descendants(
    table: &[identity::ProcEntry],
    root: i32,
    root_start: u64,
) -> impl Iterator<Item = identity::ProcEntry> {
    identity::descendants(table, root, root_start)
        .into_iter()
        .filter(|entry| !entry.exited)
}

/// Judges one descendant of a worker whose delegation file `owner` owns.
pub fn judge(pid: i32, owner: u32, allow_foreign: bool, host: &identity::Host) -> Descendant {
    // Never flatline itself or one of its ancestors, never pid 0 or 1.
    let Ok(pid) = identity::validate_found(pid, host) else {
        return Descendant::Forbidden;
    };
    if proc::real_uid(pid).is_some_and(|uid| uid_allowed(uid, owner, allow_foreign)) {
        Descendant::Signal(pid)
    } else {
        Descendant::Foreign
    }
}

/// One worker's processes being reclaimed: what was opened, sent and seen.
#[derive(Debug)]
pub struct Kill {
    pub pid: Pid,
    pub(crate) start_ticks: u64,
    /// The delegation file's owner, for the uid guard of the descendants.
    owner: u32,
    worker: Option<Target>,
    descendants: Vec<Target>,
    /// Descendants found but not signalled (another user's), for the record.
    skipped_descendants: Vec<i32>,
    term: Option<Sent>,
    exited_in_grace: bool,
    exited_after_kill: bool,
    /// SIGKILL was sent (the wait was not interrupted first).
    kill_sent: bool,
    pub(crate) survivors: Vec<i32>,
}

impl Kill {
    pub fn new(pid: Pid, start_ticks: u64, owner: u32) -> Kill {
        Kill {
            pid,
            start_ticks,
            owner,
            worker: None,
            descendants: Vec::new(),
            skipped_descendants: Vec::new(),
            term: None,
            exited_in_grace: false,
            exited_after_kill: false,
            kill_sent: false,
            survivors: Vec::new(),
        }
    }

    /// How the worker ended (call after `signal_all`).
    pub fn termination(&self) -> Termination {
        termination(
            self.term.unwrap_or(Sent::Gone),
            self.exited_in_grace,
            self.exited_after_kill,
            self.kill_sent,
        )
    }

    pub fn signal_via(&self) -> Option<&'static str> {
        self.worker.as_ref().map(|w| w.signal_via())
    }

    /// Every opened handle: the worker first (when it was opened), then its descendants.
    fn handles(&self) -> impl Iterator<Item = &Target> {
        self.worker.iter().chain(self.descendants.iter())
    }

    /// Adds the descendants of `roots` in `table` that are not known yet, each validated,
    /// held to the uid guard and opened (and sent `signal` at once, when given). The walk
    /// goes on through a process the guard excludes; only signalling skips it. Returns how
    /// many handles were added.
    fn adopt(
        &mut self,
        table: &[identity::ProcEntry],
        roots: &[(i32, u64)],
        config: &Config,
        host: &identity::Host,
        budget: &mut u64,
        signal: Option<Signal>,
    ) -> usize {
        let mut added = 0;
        for &(root, root_start) in roots {
            for entry in live_descendants(table, root, root_start) {
                if entry.pid == self.pid.get()
                    || self.descendants.iter().any(|d| d.pid().get() == entry.pid)
                    || self.skipped_descendants.contains(&entry.pid)
                {
                    continue;
                }
                let pid = match judge(entry.pid, self.owner, config.allow_foreign_uid, host) {
                    Descendant::Signal(pid) => pid,
                    Descendant::Foreign => {
                        self.skipped_descendants.push(entry.pid);
                        continue;
                    }
                    Descendant::Forbidden => continue,
                };
                if let Ok(handle) = open_counted(pid, entry.start_ticks, budget) {
                    if let Some(signal) = signal {
                        handle.send(signal);
                    }
                    self.descendants.push(handle);
                    added += 1;
                }
            }
        }
        added
    }

    pub fn descendants_signalled(&self) -> Vec<i32> {
        self.descendants.iter().map(|d| d.pid().get()).collect()
    }
}

/// Opens every worker, snapshots the descendants, signals everyone at once, waits once.
/// Survivors of the grace have their trees frozen with SIGSTOP and snapshot again (children
/// forked during the grace die too), then get SIGKILL (SPEC §3.3 step 2).
/// `Err` when a signal or the deadline stopped it (what was done is still recorded).
pub fn signal_all(
    pending: &mut [&mut Kill],
    config: &Config,
    host: &identity::Host,
    stop: &Stop,
) -> Result<(), Exit> {
    let batch = send_term(pending, config, host, stop)?;
    finish(pending, batch, config, host, stop)
}

/// Workers sent SIGTERM together, waiting out one grace: what was seen to exit, per worker
/// and per handle (the worker first when it was opened, then its descendants).
#[derive(Debug)]
pub struct Batch {
    exited: Vec<Vec<bool>>,
    grace_end: Instant,
}

impl Batch {
    /// Its grace has passed: it is due for SIGKILL.
    pub fn due(&self) -> bool {
        Instant::now() >= self.grace_end
    }

    /// Batches finished together, their workers in the order given: one wait, until the
    /// latest grace.
    pub fn merge(batches: Vec<Batch>) -> Option<Batch> {
        let grace_end = batches.iter().map(|b| b.grace_end).max()?;
        let exited = batches.into_iter().flat_map(|b| b.exited).collect();
        Some(Batch { exited, grace_end })
    }
}

/// The first half of `signal_all`: opens every worker, snapshots the descendants, sends
/// SIGTERM then SIGCONT to all of them. `Err` (nothing sent) when a signal or the deadline
/// stopped the run before the first signal.
pub fn send_term(
    pending: &mut [&mut Kill],
    config: &Config,
    host: &identity::Host,
    stop: &Stop,
) -> Result<Batch, Exit> {
    let mut budget = proc::raise_descriptor_limit();
    for target in pending.iter_mut() {
        match open_counted(target.pid, target.start_ticks, &mut budget) {
            Ok(handle) => target.worker = Some(handle),
            Err(OpenError::Gone) => target.term = Some(Sent::Gone),
            Err(OpenError::Changed) => target.term = Some(Sent::Changed),
        }
    }
    if !config.only_process && pending.iter().any(|t| t.worker.is_some()) {
        let table = proc::process_table();
        for target in pending.iter_mut().filter(|t| t.worker.is_some()) {
            let roots = [(target.pid.get(), target.start_ticks)];
            target.adopt(&table, &roots, config, host, &mut budget, None);
        }
    }
    // The last moment to stop before the first signal.
    if let Some(exit) = stop.check() {
        return Err(exit);
    }
    for target in pending.iter_mut() {
        if let Some(worker) = &target.worker {
            target.term = Some(worker.send(Signal::Term));
        }
        for descendant in &target.descendants {
            descendant.send(Signal::Term);
        }
    }
    // A stopped process handles SIGTERM only once continued.
    for target in pending.iter() {
        for handle in target.handles() {
            handle.send(Signal::Cont);
        }
    }
    let exited: Vec<Vec<bool>> = pending
        .iter()
        .map(|t| vec![false; t.handles().count()])
        .collect();
    Ok(Batch {
        exited,
        grace_end: Instant::now() + config.grace,
    })
}

/// The second half of `signal_all`, for the workers `send_term` made `batch` of (same
/// order): waits until the grace has passed (never past the deadline), freezes the
/// survivors' trees and snapshots them again, sends SIGKILL, waits the kill wait, and
/// folds the outcome into each worker. `Err` when a signal or the deadline stopped it
/// before SIGKILL (what was seen is still folded).
pub fn finish(
    pending: &mut [&mut Kill],
    batch: Batch,
    config: &Config,
    host: &identity::Host,
    stop: &Stop,
) -> Result<(), Exit> {
    let Batch {
        mut exited,
        grace_end,
    } = batch;
    let mut budget = proc::raise_descriptor_limit();
    let grace_end = bounded(grace_end, stop);
    let waited = wait_all(pending, &mut exited, grace_end, stop);
    let in_grace: Vec<bool> = exited
        .iter()
        .map(|flags| flags.first().copied().unwrap_or(false))
        .collect();
    let mut result = Ok(());
    if waited == Waited::Interrupted {
        result = Err(stop.check().unwrap_or(Exit::Signal(libc::SIGTERM)));
    } else if waited == Waited::TimedOut {
        if let Some(exit) = stop.check() {
            result = Err(exit);
        } else {
            freeze_and_resnapshot(pending, &mut exited, config, host, &mut budget);
            for (target, flags) in pending.iter_mut().zip(&exited) {
                for (handle, done) in target.handles().zip(flags) {
                    if !done {
                        handle.send(Signal::Kill);
                    }
                }
                target.kill_sent = true;
            }
            let kill_end = bounded(Instant::now() + config.kill_wait, stop);
            if wait_all(pending, &mut exited, kill_end, stop) == Waited::Interrupted {
                result = Err(stop.check().unwrap_or(Exit::Signal(libc::SIGTERM)));
            }
        }
    }
    // Fold the outcome back per worker: the first handle of a worker that was opened is
    // the worker itself.
    for ((target, flags), grace) in pending.iter_mut().zip(&exited).zip(in_grace) {
        let skip = usize::from(target.worker.is_some());
        if target.worker.is_some() {
            target.exited_in_grace = grace;
            target.exited_after_kill = flags.first().copied().unwrap_or(false);
        }
        target.survivors = target
            .descendants
            .iter()
            .zip(flags.iter().skip(skip))
            .filter(|(_, done)| !**done)
            .map(|(handle, _)| handle.pid().get())
            .collect();
    }
    result
}

/// Opens a target with a pidfd while the descriptor budget lasts, else for `kill()`.
fn open_counted(pid: Pid, start_ticks: u64, budget: &mut u64) -> Result<Target, OpenError> {
    let handle = proc::open_target_with(pid, start_ticks, *budget > 0)?;
    if handle.holds_descriptor() {
        *budget = budget.saturating_sub(1);
    }
    Ok(handle)
}

/// How many rounds of snapshots a frozen tree gets before SIGKILL (SPEC §3.3).
const RESNAPSHOT_ROUNDS: usize = 3;

/// Freezes every process still alive with SIGSTOP, then snapshots `/proc` again (at most
/// `RESNAPSHOT_ROUNDS` times, until no new descendant appears): a child forked during the
/// grace is stopped and joins its worker's targets, so SIGKILL reaches it too.
fn freeze_and_resnapshot(
    pending: &mut [&mut Kill],
    exited: &mut [Vec<bool>],
    config: &Config,
    host: &identity::Host,
    budget: &mut u64,
) {
    for (target, flags) in pending.iter().zip(exited.iter()) {
        for (handle, done) in target.handles().zip(flags) {
            if !done {
                handle.send(Signal::Stop);
            }
        }
    }
    if config.only_process {
        return;
    }
    for _ in 0..RESNAPSHOT_ROUNDS {
        let table = proc::process_table();
        let mut added = 0;
        for (target, flags) in pending.iter_mut().zip(exited.iter_mut()) {
            let roots: Vec<(i32, u64)> = target
                .handles()
                .zip(flags.iter())
                .filter(|(_, done)| !**done)
                .map(|(handle, _)| (handle.pid().get(), handle.start_ticks()))
                .collect();
            if roots.is_empty() {
                continue;
            }
            let new = target.adopt(&table, &roots, config, host, budget, Some(Signal::Stop));
            flags.extend(std::iter::repeat_n(false, new));
            added += new;
        }
        if added == 0 {
            break;
        }
    }
}

/// Waits for every handle of every worker together; `exited` is per worker, per handle.
fn wait_all(pending: &[&mut Kill], exited: &mut [Vec<bool>], end: Instant, stop: &Stop) -> Waited {
    let targets: Vec<&Target> = pending.iter().flat_map(|t| t.handles()).collect();
    let mut flat: Vec<bool> = exited.iter().flatten().copied().collect();
    let stopping = || stop.check().is_some();
    let waited = proc::wait_for_exit(&targets, &mut flat, end, &stopping);
    let mut flags = flat.into_iter();
    for done in exited.iter_mut().flatten() {
        if let Some(flag) = flags.next() {
            *done = flag;
        }
    }
    waited
}

/// A wait deadline that never runs past the run's `--deadline`.
fn bounded(end: Instant, stop: &Stop) -> Instant {
    match stop.remaining() {
        Some(left) => end.min(Instant::now() + left),
        None => end,
    }
}

#[cfg(test)]
mod tests;
