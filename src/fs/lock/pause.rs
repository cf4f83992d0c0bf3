//! pause: the run locks this thread holds, so that all of them can be let go while flatline
//! only waits (a grace, the activity window of SPEC §11) and taken again afterwards. The
//! registry keeps weak references: a dropped `RunLock` closes its descriptor and is gone.

use super::{Core, LockError};
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

thread_local! {
    static HELD: RefCell<Vec<Weak<Core>>> = const { RefCell::new(Vec::new()) };
}

/// Remembers a lock just taken.
pub(super) fn register(core: &Arc<Core>) {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        held.retain(|lock| lock.strong_count() > 0);
        held.push(Arc::downgrade(core));
    });
}

/// Runs `wait` with every run lock this thread holds let go, so that an orchestrator can
/// write meanwhile, then takes each again (for at most `patience`, not cut short by a
/// signal: what was decided must still be recorded). Returns what `wait` returned and the
/// locks that could not be taken again, by their `.flatline/` path: those stay released
/// (`RunLock::is_held` is false) and nothing more may be written in their runs.
pub fn unlocked_while<R>(
    wait: impl FnOnce() -> R,
    patience: Duration,
) -> (R, Vec<(PathBuf, LockError)>) {
    let released: Vec<Arc<Core>> = HELD.with(|held| {
        held.borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|core| core.is_held())
            .collect()
    });
    // A lock that cannot be let go stays held through the wait: nothing is lost with it.
    let paused: Vec<Arc<Core>> = released
        .into_iter()
        .filter(|core| core.release().is_ok())
        .collect();
    let mut lost = Vec::new();
    let result = wait();
    for core in paused {
        if let Err(error) = core.reacquire(Some(patience), &|| false) {
            lost.push((core.path().to_path_buf(), error));
        }
    }
    (result, lost)
}
