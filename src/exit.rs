//! exit: every exit status flatline can return, and which one wins when several apply.
//!
//! This table is the one the man page and README print (`TABLE`); a test keeps them equal.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a stop (a signal or the deadline, `interrupt::Stop::check`) has told the run to
/// stop: some work was left undone. Process-wide because the one place that must know, the
/// end of `--output` (an incomplete run never replaces a complete file, SPEC §4), is reached
/// from every command, wherever the stop was noticed. It lives here, beneath `output` and
/// `interrupt`, so that output need not name the signals.
static CUT_SHORT: AtomicBool = AtomicBool::new(false);

/// Whether a signal or the deadline stopped this run before it finished its work.
pub fn cut_short() -> bool {
    CUT_SHORT.load(Ordering::SeqCst)
}

/// Records that the run stops before it finished its work (`cut_short`).
pub(crate) fn mark_cut_short() {
    CUT_SHORT.store(true, Ordering::SeqCst);
}

/// Forgets an earlier pass's stop: `sweep --every` starts each pass as a fresh invocation.
pub(crate) fn clear_cut_short() {
    CUT_SHORT.store(false, Ordering::SeqCst);
}

/// An exit status. Ordered by precedence: when several apply, the one listed first wins
/// (SPEC §7), so combining two is `max` by rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Nothing needs attention.
    Ok,
    /// Something needs attention: `--check` found a record that needs it, a reclaim target
    /// was skipped, not permitted or survived, or a card named with `--task-card` is not ready.
    Attention,
    /// A file could not be read, parsed or written (including a write conflict).
    FileProblem,
    /// A RUN_DIR cannot be used (missing, not a directory, an untrusted `.flatline/`).
    RunUnusable,
    /// The `--deadline` passed before the run finished.
    Deadline,
    /// Interrupted by signal N (exit 128+N).
    Signal(i32),
    /// Another flatline holds the run's lock.
    Busy,
    /// The command line is wrong.
    Usage,
    /// `flatline run`'s status, as timeout(1)'s (SPEC §6): the worker's own, or 124–127,
    /// or 128+N. Passed on as it is, never combined with another.
    Launch(u8),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Attention => 1,
            Exit::Usage => 2,
            Exit::FileProblem => 3,
            Exit::RunUnusable => 4,
            Exit::Busy => 75,
            Exit::Deadline => 124,
            Exit::Signal(n) => 128 + n,
            Exit::Launch(code) => i32::from(code),
        }
    }

    fn rank(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Attention => 1,
            Exit::FileProblem => 2,
            Exit::RunUnusable => 3,
            Exit::Deadline => 4,
            Exit::Signal(_) => 5,
            Exit::Busy => 6,
            Exit::Usage => 7,
            Exit::Launch(_) => 8,
        }
    }

    /// The status that wins when both apply.
    pub fn max(self, other: Exit) -> Exit {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// Raises `self` to `other` when `other` takes precedence.
    pub fn raise(&mut self, other: Exit) {
        *self = self.max(other);
    }
}

/// The exit status table, in precedence order, for `--help`, the man page and the README.
pub const TABLE: &[(&str, &str)] = &[
    ("2", "usage error: the command line is wrong"),
    ("75", "another flatline holds the run's lock (see --wait)"),
    ("128+N", "interrupted by signal N (SIGINT, SIGTERM, SIGHUP)"),
    ("124", "the --deadline passed"),
    (
        "4",
        "a RUN_DIR is unusable (missing, not a directory, unsafe .flatline/)",
    ),
    (
        "3",
        "some file could not be read, parsed or written (including a write conflict)",
    ),
    (
        "1",
        "attention: --check found a record that needs attention, a reclaim target was skipped, \
         not permitted or survived, or a card named with --task-card is not ready",
    ),
    ("0", "otherwise (a dry run with targets included)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_the_table() {
        let order = [
            Exit::Usage,
            Exit::Busy,
            Exit::Signal(15),
            Exit::Deadline,
            Exit::RunUnusable,
            Exit::FileProblem,
            Exit::Attention,
            Exit::Ok,
        ];
        for (i, higher) in order.iter().enumerate() {
            for lower in &order[i..] {
                assert_eq!(higher.max(*lower), *higher);
                assert_eq!(lower.max(*higher), *higher);
            }
        }
        let codes: Vec<String> = order
            .iter()
            .map(|e| match e {
                Exit::Signal(_) => "128+N".to_string(),
                e => e.code().to_string(),
            })
            .collect();
        let table: Vec<&str> = TABLE.iter().map(|(code, _)| *code).collect();
        assert_eq!(codes, table);
    }

    #[test]
    fn codes() {
        assert_eq!(Exit::Signal(2).code(), 130);
        assert_eq!(Exit::Signal(15).code(), 143);
        assert_eq!(Exit::Busy.code(), 75);
        assert_eq!(Exit::Deadline.code(), 124);
    }
}
