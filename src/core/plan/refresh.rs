//! refresh: the pure decision of SPEC §3.2 for one running delegation — which case it is
//! in, and from the view, the process facts and what the stream's metadata and digest say,
//! the `Change` to record. `refresh` reads the stream, applies the change to the document's
//! JSON and writes it.

use crate::core::digest::{self as events, Digest, Outcome, Verdict};
use crate::core::identity::{self, Fingerprint, Identity};
use crate::core::lifecycle::{self, ProcessFacts, StreamInode, Times};
use crate::core::time::Millis;
use crate::model::Delegation;

/// Which of SPEC §3.2's three cases a running delegation is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Process alive and verified: progress from the stream's mtime, never a read.
    Live,
    /// Process gone (exited, zombie) or the pid reused: read the stream and finalize.
    Gone,
    /// No pid, an invalid one or an unverifiable one: read the stream only when it
    /// changed; finalize only on a terminal event.
    Unsure,
}

/// The case of a delegation, or `None` when refresh has nothing to do with it (not running,
/// or already reclaimed).
pub fn case_of(facts: &ProcessFacts) -> Option<Case> {
    match facts {
        ProcessFacts::NotChecked => None,
        ProcessFacts::Checked {
            identity: Identity::Verified,
            ..
        } => Some(Case::Live),
        ProcessFacts::Checked {
            identity: Identity::Gone | Identity::Reused,
            ..
        } => Some(Case::Gone),
        ProcessFacts::Checked {
            identity: Identity::Unverifiable,
            ..
        }
        | ProcessFacts::NoPid
        | ProcessFacts::Invalid(_) => Some(Case::Unsure),
    }
}

/// What the stream looked like.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Modification time (ms).
    pub mtime_ms: Millis,
    pub size: u64,
    /// Which file it is (recorded on first sight, SPEC §3.2).
    pub inode: StreamInode,
    /// The digest, when the stream was read.
    pub digest: Option<Digest>,
}

/// A final result to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finalization {
    pub verdict: Verdict,
    pub completed_at: Millis,
    /// `None` when the worker left no stream at all.
    pub digest: Option<Digest>,
    pub exit_code: Option<i64>,
}

/// What refresh changes in one delegation.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// New progress (and the fingerprint of the verified process, when not yet stamped).
    Progress {
        at: Millis,
        fingerprint: Option<Fingerprint>,
    },
    /// Only the fingerprint of a verified process is new.
    Fingerprint(Fingerprint),
    Finalize(Box<Finalization>),
    /// The stream seen for the first time: its inode is recorded, with the change that
    /// comes with it, if any (never a finalization: a finished worker needs no record).
    StreamSeen {
        inode: StreamInode,
        then: Option<Box<Change>>,
    },
}

/// Whether the stream holds anything newer than the recorded progress.
pub fn stream_is_newer(times: &Times, stream: &Stream) -> bool {
    times
        .last_progress_at
        .is_none_or(|last| stream.mtime_ms > last)
}

/// Progress to record from a stream's mtime: never in the future, never backwards.
fn progress_at(times: &Times, mtime_ms: Millis, now: Millis) -> Option<Millis> {
    let at = mtime_ms.min(now);
    match times.last_progress_at {
        Some(last) if at <= last => None,
        _ => Some(at),
    }
}

/// The fingerprint to stamp on a verified process: only when none usable is recorded.
pub fn fingerprint_to_stamp(
    doc: &Delegation<'_>,
    facts: &ProcessFacts,
    host: &identity::Host,
) -> Option<Fingerprint> {
    let ProcessFacts::Checked {
        identity: Identity::Verified,
        observation,
        ..
    } = facts
    else {
        return None;
    };
    match lifecycle::recorded_fingerprint(doc.worker_lifecycle.value()) {
        Ok(Some(_)) => None,
        _ => identity::fingerprint_of(*observation, host),
    }
}

/// The decision for one running delegation (SPEC §3.2). `stream` is `None` when the worker
/// has no stream file; for `Case::Gone` and for a changed stream in `Case::Unsure` the
/// caller must have read it (`stream.digest`).
pub fn decide(
    case: Case,
    times: &Times,
    stream: Option<&Stream>,
    stamp: Option<Fingerprint>,
    exit_code: Option<i64>,
    now: Millis,
    settle_ms: Millis,
) -> Option<Change> {
    match case {
        Case::Live => {
            let progress = stream.and_then(|s| progress_at(times, s.mtime_ms, now));
            match (progress, stamp) {
                (Some(at), fingerprint) => Some(Change::Progress { at, fingerprint }),
                (None, Some(fingerprint)) => Some(Change::Fingerprint(fingerprint)),
                (None, None) => None,
            }
        }
        Case::Gone => {
            let Some(stream) = stream else {
                return Some(Change::Finalize(Box::new(Finalization {
                    verdict: events::verdict_with_exit(&Digest::default(), exit_code),
                    completed_at: now,
                    digest: None,
                    exit_code,
                })));
            };
            let digest = stream.digest.as_ref()?;
            let settled = stream.mtime_ms <= now - settle_ms;
            if digest.terminal.is_none() && !settled {
                // The orchestrator may still be copying the worker's last lines.
                return None;
            }
            Some(Change::Finalize(Box::new(Finalization {
                verdict: events::verdict_with_exit(digest, exit_code),
                completed_at: stream.mtime_ms.min(now),
                digest: Some(digest.clone()),
                exit_code,
            })))
        }
        Case::Unsure => {
            let stream = stream?;
            if !stream_is_newer(times, stream) {
                return None;
            }
            let digest = stream.digest.as_ref()?;
            if digest.terminal.is_some() {
                return Some(Change::Finalize(Box::new(Finalization {
                    verdict: events::verdict_with_exit(digest, exit_code),
                    completed_at: stream.mtime_ms.min(now),
                    digest: Some(digest.clone()),
                    exit_code,
                })));
            }
            progress_at(times, stream.mtime_ms, now).map(|at| Change::Progress {
                at,
                fingerprint: None,
            })
        }
    }
}

/// The human line that a finalized delegation carries in `result_summary`.
pub fn result_summary(finalization: &Finalization) -> String {
    let digest = finalization.digest.as_ref();
    match (finalization.verdict.status, finalization.verdict.reason) {
        (Outcome::Success, _) => match digest.and_then(|d| d.final_text.as_deref()) {
            Some(text) => format!("Worker completed: {text}"),
            None => "Worker completed without a final message.".to_string(),
        },
        (Outcome::Failure, reason) => {
            let message = digest
                .and_then(|d| d.terminal.as_ref())
                .and_then(|t| t.message.as_deref());
            match (reason.unwrap_or("unknown"), message) {
                ("execution_failed", Some(message)) => format!("Worker failed: {message}"),
                ("execution_failed", None) => {
                    "Worker failed: the run reported a failure.".to_string()
                }
                ("interrupted", _) => "Worker was interrupted before it finished its turn.".into(),
                ("invalid_output", _) => "Worker exited without usable output.".into(),
                _ if digest.is_none() => "Worker process exited without an event stream.".into(),
                _ => "Worker process exited with an empty event stream.".into(),
            }
        }
    }
}

/// The `latest_failure.summary`: the reason, then what is known of the stream.
pub(crate) fn failure_summary(finalization: &Finalization, reason: &str) -> String {
    let mut parts = vec![result_summary(finalization)];
    if let Some(digest) = &finalization.digest {
        if let Some(terminal) = &digest.terminal {
            parts.push(format!("terminal_event={}", terminal.event));
        }
        parts.push(format!("raw_events_bytes={}", digest.bytes));
        if !digest.raw_preview.is_empty() {
            parts.push(format!(
                "raw_output_preview={}",
                serde_json::to_string(&digest.raw_preview).unwrap_or_default()
            ));
        }
    } else {
        parts.push("raw_events_bytes=0".into());
    }
    if let Some(code) = finalization.exit_code {
        parts.push(format!("exit_code={code}"));
    }
    format!("{reason}: {}", parts.join(" "))
}

#[cfg(test)]
pub(crate) mod tests;
