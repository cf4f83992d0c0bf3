//! race: where another writer's rename can land inside one of flatline's reads of a file,
//! named so unit tests can put one there. A rename that lands between the lookup of a name
//! and the stat of what it found leaves a stat of a file with no link left: that is another
//! writer's change, never a hard-link refusal (SPEC §4).
//!
//! Outside unit tests every hook is an empty inline function.

/// How many times a stat that found no link looks at the name again before the caller
/// treats the entry as changing under it.
pub(super) const SETTLE_ATTEMPTS: u32 = 8;

#[cfg(test)]
mod hooks {
    use crate::fs::meta::FileMeta;
    use std::cell::RefCell;

    type AfterOpen = Box<dyn FnMut()>;
    type AfterStat = Box<dyn FnMut(&mut FileMeta)>;

    thread_local! {
        static AFTER_OPEN: RefCell<Option<AfterOpen>> = const { RefCell::new(None) };
        static AFTER_STAT: RefCell<Option<AfterStat>> = const { RefCell::new(None) };
    }

    /// Runs `hook` between every open of an existing file and its fstat, on this thread.
    pub fn set_after_open(hook: Option<AfterOpen>) {
        AFTER_OPEN.with(|slot| *slot.borrow_mut() = hook);
    }

    /// Lets `hook` rewrite what every lstat of an entry shows, on this thread.
    pub fn set_after_stat(hook: Option<AfterStat>) {
        AFTER_STAT.with(|slot| *slot.borrow_mut() = hook);
    }

    pub fn after_open() {
        let hook = AFTER_OPEN.with(|slot| slot.borrow_mut().take());
        if let Some(mut hook) = hook {
            hook();
            AFTER_OPEN.with(|slot| {
                let mut slot = slot.borrow_mut();
                if slot.is_none() {
                    *slot = Some(hook);
                }
            });
        }
    }

    pub fn after_stat(meta: &mut FileMeta) {
        AFTER_STAT.with(|slot| {
            if let Some(hook) = slot.borrow_mut().as_mut() {
                hook(meta);
            }
        });
    }
}

#[cfg(test)]
pub(super) use hooks::*;

#[cfg(not(test))]
#[inline(always)]
pub(super) fn after_open() {}

#[cfg(not(test))]
#[inline(always)]
pub(super) fn after_stat(_meta: &mut crate::fs::meta::FileMeta) {}

#[cfg(test)]
mod tests;
