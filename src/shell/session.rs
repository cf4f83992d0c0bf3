//! session: the run loop every command shares. Each RUN_DIR (opened once, in order) is
//! checked for a stop (a signal, the deadline), locked with `--wait` when the command
//! writes (a dry run takes no lock and creates nothing), and handed to the command; a run
//! that cannot be locked is reported and skipped, and the first stop ends the loop. The
//! session also knows where a run cut short stopped (`resume`) and the run's `.flatline/`.

use crate::cli::config::Config;
use crate::exit::Exit;
use crate::fs::{Dir, RunLock};
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use crate::shell::commit;
use crate::shell::runs::{self as scan, Run};

/// What a command does with a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads (`status`): no lock is taken, and the command notices a stop itself.
    Read,
    /// Writes: the run lock is held while the command works on the run; a stop is noticed
    /// before each run.
    Write,
}

/// One run handed to a command: the run and, for a writing command, its lock.
pub struct Session<'r> {
    pub run: &'r Run,
    /// Held until the session is dropped (`None`: a dry run, or a reading command).
    pub lock: Option<RunLock>,
}

impl Session<'_> {
    /// Where the last run cut short stopped: this one starts there (SPEC §4, `--deadline`).
    pub fn resume(&self) -> scan::Resume {
        scan::Resume {
            start: self
                .lock
                .as_ref()
                .and_then(|lock| crate::shell::state::resume::start(lock.state_dir())),
            stopped_at: None,
        }
    }

    /// Records where this scan stopped (nowhere: it was complete), under the lock (not once
    /// the lock was lost during a wait).
    pub fn record_resume(&self, resume: &scan::Resume, diag: &mut Diagnostics) {
        if let Some(lock) = self.lock.as_ref().filter(|lock| lock.is_held()) {
            crate::shell::state::resume::record(
                lock.state_dir(),
                self.run,
                resume.stopped_at.as_deref(),
                diag,
            );
        }
    }

    /// Hands `f` the run's `.flatline/`: the lock's, or, in a dry run that took no lock, the
    /// one that exists (opened to read; none is created); none once the lock was lost.
    pub fn with_state_dir<R>(&self, f: impl FnOnce(Option<&Dir>) -> R) -> R {
        with_state_dir(self.run, self.lock.as_ref(), f)
    }
}

/// `Session::with_state_dir` for a run and its lock kept apart.
pub fn with_state_dir<R>(
    run: &Run,
    lock: Option<&RunLock>,
    f: impl FnOnce(Option<&Dir>) -> R,
) -> R {
    match lock {
        // The lock was lost during a wait: nothing more is written in the run.
        Some(lock) if !lock.is_held() => f(None),
        Some(lock) => f(Some(lock.state_dir())),
        None => {
            let opened = run
                .dir()
                .open_child(std::ffi::OsStr::new(".flatline"))
                .ok()
                .flatten();
            f(opened.as_ref())
        }
    }
}

/// A command's work on each run.
pub trait Visit<'r> {
    /// Before a run is locked (its lock may be waited for).
    fn before_lock(&mut self) {}
    /// The work on one run; `Err` ends the loop with that exit (a stop seen by the work).
    fn run(&mut self, session: Session<'r>, diag: &mut Diagnostics) -> Result<(), Exit>;
}

impl<'r, F> Visit<'r> for F
where
    F: FnMut(Session<'r>, &mut Diagnostics) -> Result<(), Exit>,
{
    fn run(&mut self, session: Session<'r>, diag: &mut Diagnostics) -> Result<(), Exit> {
        self(session, diag)
    }
}

/// Hands every run of `runs` to `visit`, in order, locked when `access` is `Write`. A run
/// whose lock cannot be taken is reported (exit 75, or 4) and skipped. Returns the exit that
/// ended the loop early: a stop seen before a run, or the one the work returned.
pub fn for_each_run<'r>(
    runs: &'r [Run],
    access: Access,
    config: &Config,
    diag: &mut Diagnostics,
    stop: &Stop,
    visit: impl FnMut(Session<'r>, &mut Diagnostics) -> Result<(), Exit>,
) -> Result<(), Exit> {
    visit_runs(runs, access, config, diag, stop, visit)
}

/// `for_each_run` for work that also has something to do before each lock.
pub fn visit_runs<'r>(
    runs: &'r [Run],
    access: Access,
    config: &Config,
    diag: &mut Diagnostics,
    stop: &Stop,
    mut visit: impl Visit<'r>,
) -> Result<(), Exit> {
    for run in runs {
        let lock = match access {
            Access::Read => None,
            Access::Write => {
                if let Some(exit) = stop.check() {
                    return Err(exit);
                }
                visit.before_lock();
                let Some(lock) = commit::lock_run(run, config, stop, diag) else {
                    continue;
                };
                lock
            }
        };
        visit.run(Session { run, lock }, diag)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
