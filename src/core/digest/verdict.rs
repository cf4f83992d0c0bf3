//! How a digested stream finalizes: its terminal event and the verdict (SPEC §3.2).

use super::format::Format;
use super::stream::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// The event that ended a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Terminal {
    /// "turn.completed", "turn.failed", "task_complete", "turn_aborted" or "result".
    pub event: &'static str,
    pub outcome: Outcome,
    /// The turn was interrupted rather than failed (Claude `error_during_execution`, Codex
    /// `turn_aborted`).
    pub interrupted: bool,
    /// The failure text, if the event carried one, cut to `RAW_PREVIEW_MAX`.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `Success` is `completed`, `Failure` is `failed`.
    pub status: Outcome,
    /// Why it failed: `execution_failed`, `interrupted`, `invalid_output` or `unknown`;
    /// `None` when completed.
    pub reason: Option<&'static str>,
}

impl Verdict {
    /// The lifecycle status word: "completed" or "failed".
    pub fn status_name(&self) -> &'static str {
        match self.status {
            Outcome::Success => "completed",
            Outcome::Failure => "failed",
        }
    }
}

/// The verdict of a stream alone, without a recorded exit code.
pub fn verdict(d: &Digest) -> Verdict {
    verdict_with_exit(d, None)
}

/// The verdict of a stream and the worker's recorded exit code, if any.
///
/// A success terminal event stands even over a non-zero exit code or a transport-failure
/// text: Codex prints "Reconnecting..." errors and still completes the turn. Without a
/// terminal event, the formats that always emit one mean the worker died mid-turn.
pub fn verdict_with_exit(d: &Digest, exit_code: Option<i64>) -> Verdict {
    let exit_failed = matches!(exit_code, Some(code) if code != 0);
    let has_terminal_events = d.format.is_some_and(Format::has_terminal_events);
    let completed = match &d.terminal {
        Some(terminal) => terminal.outcome == Outcome::Success,
        None => {
            !has_terminal_events && !exit_failed && (d.final_text.is_some() || d.usage.is_some())
        }
    };
    if completed {
        return Verdict {
            status: Outcome::Success,
            reason: None,
        };
    }
    let terminal_failed = d
        .terminal
        .as_ref()
        .is_some_and(|t| t.outcome == Outcome::Failure && !t.interrupted);
    let interrupted = match &d.terminal {
        Some(terminal) => terminal.interrupted,
        None => has_terminal_events,
    };
    let reason = if terminal_failed || d.failure_observed || exit_failed {
        "execution_failed"
    } else if interrupted {
        "interrupted"
    } else if d.bytes > 0 {
        "invalid_output"
    } else {
        "unknown"
    };
    Verdict {
        status: Outcome::Failure,
        reason: Some(reason),
    }
}
