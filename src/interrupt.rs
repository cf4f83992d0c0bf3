//! interrupt: the signals and the deadline that end a run early, checked between units of work.
//!
//! SIGINT, SIGTERM and SIGHUP (unless ignored when flatline started) only set a flag
//! (signal-hook); the shell checks it before each side effect, never inside an atomic write,
//! records what was completed and exits 128+N. A second signal of the same kind ends the
//! process at once. `--deadline` works the same way
//! (exit 124), with a watchdog thread as the last resort for a read that never returns.

use crate::exit::Exit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::time::{Duration, Instant};

const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// How long the watchdog waits past the deadline before it ends the process itself.
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(5);

/// Ends a pass's watchdog when dropped (see `Stop::for_pass`).
#[derive(Debug)]
pub struct PassGuard(Arc<AtomicBool>);

impl Drop for PassGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone)]
pub struct Stop {
    signal: Arc<AtomicUsize>,
    deadline: Option<Instant>,
}

impl Stop {
    /// A `Stop` that never fires (tests, `beat` children).
    pub fn never() -> Stop {
        Stop {
            signal: Arc::new(AtomicUsize::new(0)),
            deadline: None,
        }
    }

    /// Registers the signal handlers. Call first thing, before any work. A signal ignored
    /// when flatline started (`nohup`) stays ignored, for flatline and for the workers
    /// `flatline run` starts (SPEC §12: their dispositions are the ones run was given).
    pub fn install() -> std::io::Result<Stop> {
        let signal = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicBool::new(false));
        for number in SIGNALS {
            if crate::sys::host::is_ignored(number).unwrap_or(false) {
                continue;
            }
            // Order matters: the conditional shutdown must see the flag of an earlier signal,
            // so it is registered before the handler that sets it.
            signal_hook::flag::register_conditional_shutdown(number, 128 + number, seen.clone())?;
            signal_hook::flag::register(number, seen.clone())?;
            signal_hook::flag::register_usize(number, signal.clone(), number as usize)?;
        }
        Ok(Stop {
            signal,
            deadline: None,
        })
    }

    /// Sets the deadline `after` from now and starts the watchdog that exits with 124 at
    /// deadline + WATCHDOG_GRACE if the run has not ended by then (a read stuck in the
    /// kernel cannot check a flag; atomic writes make ending there safe).
    pub fn with_deadline(mut self, after: Duration) -> Stop {
        // A deadline past what the clock can hold (`--deadline 500y`) is no deadline.
        let Some(deadline) = Instant::now()
            .checked_add(after)
            .filter(|deadline| deadline.checked_add(WATCHDOG_GRACE).is_some())
        else {
            return self;
        };
        self.deadline = Some(deadline);
        let _ = std::thread::Builder::new()
            .name("flatline-watchdog".into())
            .spawn(move || {
                let end = deadline + WATCHDOG_GRACE;
                loop {
                    let now = Instant::now();
                    if now >= end {
                        eprintln!(
                            "flatline: the deadline passed and a read did not return; exiting"
                        );
                        // The only exit outside main: the main thread is stuck.
                        std::process::exit(Exit::Deadline.code());
                    }
                    std::thread::sleep(end - now);
                }
            });
        self
    }

    /// This `Stop` with a deadline `after` from now for one pass of `sweep --every`: the
    /// same signals, and a watchdog that ends the process only while the returned guard
    /// lives (a pass that finished must not be ended by its watchdog later).
    pub fn for_pass(&self, after: Duration) -> (Stop, PassGuard) {
        // Each pass is a fresh run: an earlier pass cut short says nothing about this one.
        crate::exit::clear_cut_short();
        let finished = Arc::new(AtomicBool::new(false));
        let guard = PassGuard(finished.clone());
        let Some(deadline) = Instant::now()
            .checked_add(after)
            .filter(|deadline| deadline.checked_add(WATCHDOG_GRACE).is_some())
        else {
            return (self.clone(), guard);
        };
        let _ = std::thread::Builder::new()
            .name("flatline-pass-watchdog".into())
            .spawn(move || {
                let end = deadline + WATCHDOG_GRACE;
                while !finished.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if now >= end {
                        eprintln!(
                            "flatline: the deadline passed and a read did not return; exiting"
                        );
                        // The only exit outside main: the main thread is stuck.
                        std::process::exit(Exit::Deadline.code());
                    }
                    std::thread::sleep((end - now).min(Duration::from_millis(200)));
                }
            });
        let stop = Stop {
            signal: self.signal.clone(),
            deadline: Some(deadline),
        };
        (stop, guard)
    }

    /// A signal that arrived, without marking the run cut short (`sweep --every` between
    /// passes: nothing is left undone there).
    pub fn signalled(&self) -> Option<Exit> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            number => Some(Exit::Signal(i32::try_from(number).unwrap_or(15))),
        }
    }

    /// Why the run must stop now, if it must. Once it says so, the run is incomplete
    /// (`cut_short`).
    pub fn check(&self) -> Option<Exit> {
        let exit = match self.signal.load(Ordering::SeqCst) {
            0 => match self.deadline {
                Some(deadline) if Instant::now() >= deadline => Some(Exit::Deadline),
                _ => None,
            },
            number => Some(Exit::Signal(i32::try_from(number).unwrap_or(15))),
        };
        if exit.is_some() {
            crate::exit::mark_cut_short();
        }
        exit
    }

    /// The time left before the deadline (`None` without one).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }
}

/// Sleeps until `until`, waking every 50 ms to look for a signal; true when one arrived.
pub fn sleep_until(until: std::time::Instant, stop: &Stop) -> bool {
    const TICK: Duration = Duration::from_millis(50);
    loop {
        if stop.signalled().is_some() {
            return true;
        }
        let now = std::time::Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep((until - now).min(TICK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::cut_short;

    #[test]
    fn never_does_not_fire() {
        assert_eq!(Stop::never().check(), None);
        assert_eq!(Stop::never().remaining(), None);
    }

    #[test]
    fn a_passed_deadline_fires() {
        let stop = Stop {
            signal: Arc::new(AtomicUsize::new(0)),
            deadline: Some(Instant::now()),
        };
        assert_eq!(stop.check(), Some(Exit::Deadline));
    }

    #[test]
    fn a_stop_marks_the_run_cut_short() {
        // Process-wide and never cleared: other tests may have set it already, so only the
        // effect of this check is asserted.
        let stop = Stop {
            signal: Arc::new(AtomicUsize::new(libc::SIGTERM as usize)),
            deadline: None,
        };
        assert_eq!(stop.check(), Some(Exit::Signal(libc::SIGTERM)));
        assert!(cut_short());
    }

    #[test]
    fn a_deadline_past_what_the_clock_holds_is_no_deadline() {
        let stop = Stop::never().with_deadline(Duration::MAX);
        assert_eq!(stop.remaining(), None);
    }

    #[test]
    fn a_pass_has_its_own_deadline_and_the_same_signals() {
        let signal = Arc::new(AtomicUsize::new(0));
        let stop = Stop {
            signal: signal.clone(),
            deadline: None,
        };
        let (pass, guard) = stop.for_pass(Duration::ZERO);
        assert_eq!(pass.check(), Some(Exit::Deadline));
        assert_eq!(stop.check(), None);
        drop(guard);
        signal.store(15, Ordering::SeqCst);
        assert_eq!(stop.signalled(), Some(Exit::Signal(15)));
        let (pass, _guard) = stop.for_pass(Duration::from_secs(60));
        assert_eq!(pass.check(), Some(Exit::Signal(15)));
    }

    #[test]
    fn a_signal_takes_precedence_over_the_deadline() {
        let stop = Stop {
            signal: Arc::new(AtomicUsize::new(15)),
            deadline: Some(Instant::now()),
        };
        assert_eq!(stop.check(), Some(Exit::Signal(15)));
    }
}
