//! The delegation document (SPEC §1.1): only the fields flatline reads.

use super::document::{DocError, parse_object};
use super::lenient::{Int, Text};
use super::object::lenient_object;
use std::path::PathBuf;

lenient_object! {
    /// `child_agent` and `executor`: the worker's status.
    pub struct StatusHolder<'de> {
        status: Text<'de> = "status",
    }
}

lenient_object! {
    /// `worker_request`: where a work kind may be recorded.
    pub struct WorkerRequest<'de> {
        work_kind: Text<'de> = "work_kind",
    }
}

lenient_object! {
    /// `worker_launch_evidence.launcher`: the `flatline run` that launched the worker.
    pub struct Launcher<'de> {
        pid: Int = "pid",
        fingerprint: Fingerprint<'de> = "fingerprint",
    }
}

lenient_object! {
    /// `worker_launch_evidence`: the launch record.
    pub struct LaunchEvidence<'de> {
        work_kind: Text<'de> = "work_kind",
        raw_events_file: Text<'de> = "raw_events_file",
        launch_source: Text<'de> = "launch_source",
        launcher: Launcher<'de> = "launcher",
    }
}

lenient_object! {
    /// `worker_lifecycle.process_fingerprint`: the identity flatline stamped (SPEC §3.1).
    pub struct Fingerprint<'de> {
        start_ticks: Int = "start_ticks",
        boot_id: Text<'de> = "boot_id",
        pid_ns: Int = "pid_ns",
        pidfd_ino: Int = "pidfd_ino",
    }
}

lenient_object! {
    /// `worker_lifecycle.raw_events_inode`: the stream flatline saw first (SPEC §3.2).
    pub struct StreamInode<'de> {
        dev: Int = "dev",
        ino: Int = "ino",
    }
}

lenient_object! {
    /// `worker_lifecycle`: the orchestrator's record of the worker's life.
    pub struct Lifecycle<'de> {
        state: Text<'de> = "state",
        reclaim_state: Text<'de> = "reclaim_state",
        queued_at: Text<'de> = "queued_at",
        launch_requested_at: Text<'de> = "launch_requested_at",
        started_at: Text<'de> = "started_at",
        process_id: Int = "process_id",
        process_started_at: Text<'de> = "process_started_at",
        process_last_seen_at: Text<'de> = "process_last_seen_at",
        last_progress_at: Text<'de> = "last_progress_at",
        returned_at: Text<'de> = "returned_at",
        raw_events_inode: StreamInode<'de> = "raw_events_inode",
        stale_at: Text<'de> = "stale_at",
        timed_out_at: Text<'de> = "timed_out_at",
        exit_code: Int = "exit_code",
        process_fingerprint: Fingerprint<'de> = "process_fingerprint",
        quiet_after_ms: Int = "quiet_after_ms",
        stale_after_ms: Int = "stale_after_ms",
        timeout_after_ms: Int = "timeout_after_ms",
        identity_anchor_at: Text<'de> = "identity_anchor_at",
        identity_upper_bound_at: Text<'de> = "identity_upper_bound_at",
        pid_ns: Int = "pid_ns",
    }
}

lenient_object! {
    /// `worker_result`: what refresh recorded when the worker finished.
    pub struct WorkerResult<'de> {
        status: Text<'de> = "status",
        thread_id: Text<'de> = "thread_id",
    }
}

lenient_object! {
    /// A delegation document (SPEC §1.1): only the fields flatline reads.
    pub struct Delegation<'de> {
        delegation_id: Text<'de> = "delegation_id",
        task_card_id: Text<'de> = "task_card_id",
        work_kind: Text<'de> = "work_kind",
        child_agent: StatusHolder<'de> = "child_agent",
        executor: StatusHolder<'de> = "executor",
        worker_request: WorkerRequest<'de> = "worker_request",
        worker_launch_evidence: LaunchEvidence<'de> = "worker_launch_evidence",
        worker_lifecycle: Lifecycle<'de> = "worker_lifecycle",
        worker_result: WorkerResult<'de> = "worker_result",
        fan_in_collapsed_at: Text<'de> = "fan_in_collapsed_at",
    }
}

/// Parses a delegation document.
pub fn parse_delegation(bytes: &[u8]) -> Result<Delegation<'_>, DocError> {
    parse_object(bytes)
}

/// The path of a delegation's event stream: `worker_launch_evidence.raw_events_file`, else
/// `raw-events/<delegation_id>.jsonl` when the id is a safe file name.
pub fn stream_path(doc: &Delegation<'_>) -> Option<PathBuf> {
    if let Some(path) = doc
        .worker_launch_evidence
        .value()
        .and_then(|e| e.raw_events_file.str())
        .filter(|p| !p.is_empty())
    {
        return Some(PathBuf::from(path));
    }
    let id = doc.delegation_id.str()?;
    safe_id(id).then(|| PathBuf::from(format!("raw-events/{id}.jsonl")))
}

/// `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
pub fn safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
