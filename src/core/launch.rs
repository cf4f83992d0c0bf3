//! launch: the pure side of `flatline run` (SPEC §12) — the delegation it records at each
//! step (queued, running, ended, signal forwarded) as changes to a JSON document, its exit
//! status as timeout(1)'s, and the launcher guard that keeps a sweep off a worker whose
//! `flatline run` is alive. `shell::launch` spawns, watches and writes.

use crate::core::identity::Fingerprint;
use crate::core::lifecycle::StreamInode;
use crate::core::plan::reclaim::{Termination, Triage};
use crate::core::time::{self, Millis};
use crate::model::{Delegation, Field};
use serde_json::{Map, Value, json};

/// What `launch_source` says of a delegation `flatline run` wrote.
pub const LAUNCH_SOURCE: &str = "flatline run";
/// timeout(1)'s statuses (SPEC §6).
pub const RECLAIMED: u8 = 124;
pub const RUN_FAILED: u8 = 125;
pub const CANNOT_EXECUTE: u8 = 126;
pub const NOT_FOUND: u8 = 127;
/// The longest `summary` a queued delegation gets, in characters.
const SUMMARY_CHARS: usize = 180;

/// Everything the queued delegation records, known before the worker runs.
#[derive(Debug, Clone)]
pub struct Queued<'a> {
    pub id: &'a str,
    pub task_card: Option<&'a str>,
    /// COMMAND and its arguments (lossily UTF-8).
    pub command: &'a [String],
    /// The stream, relative to the run directory.
    pub raw_events_file: &'a str,
    pub raw_events_inode: StreamInode,
    pub launcher_pid: i64,
    pub launcher_fingerprint: Option<&'a Fingerprint>,
    /// Per-worker thresholds to record (those typed on `run`'s command line), so that a
    /// sweep judges the worker alike once `run` is gone.
    pub quiet_after_ms: Option<Millis>,
    pub stale_after_ms: Option<Millis>,
    pub timeout_after_ms: Option<Millis>,
    pub now: Millis,
}

/// The worker as spawned: the identity taken before it could be reaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pid: i32,
    pub started_at: Millis,
    pub process_started_at: Millis,
    pub fingerprint: Fingerprint,
}

/// How the worker ended, from the real wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signalled(i32),
}

impl Ended {
    /// timeout(1)'s status for it: the child's own, or 128+N for a death by signal N.
    pub fn status(self) -> u8 {
        match self {
            Ended::Exited(code) => u8::try_from(code & 0xff).unwrap_or(RUN_FAILED),
            Ended::Signalled(n) => u8::try_from(128 + (n & 0x7f)).unwrap_or(RUN_FAILED),
        }
    }

    /// The exit code to finalize with (`None` for a death by signal).
    pub fn exit_code(self) -> Option<i64> {
        match self {
            Ended::Exited(code) => Some(i64::from(code)),
            Ended::Signalled(_) => None,
        }
    }
}

/// The status when COMMAND could not be started (errno from exec): 127 when it is not
/// found, 126 when it cannot be executed.
pub fn spawn_failure_status(errno: Option<i32>) -> u8 {
    match errno {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => NOT_FOUND,
        _ => CANNOT_EXECUTE,
    }
}

/// A new unique delegation id from the launch time and random bytes: `run-<time>-<hex>`.
pub fn new_id(now: Millis, random: &[u8]) -> String {
    let stamp: String = time::format_rfc3339(now)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let hex: String = random.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("run-{stamp}-{hex}")
}

fn ts(ms: Millis) -> Value {
    Value::String(time::format_rfc3339(ms))
}

/// The complete `queued` delegation, written before the worker runs.
pub fn queued_document(queued: &Queued<'_>) -> Value {
    let mut launcher = Map::new();
    launcher.insert("pid".into(), json!(queued.launcher_pid));
    launcher.insert(
        "fingerprint".into(),
        queued
            .launcher_fingerprint
            .map_or(Value::Null, crate::core::identity::fingerprint_json),
    );
    let inode = json!({"dev": queued.raw_events_inode.dev, "ino": queued.raw_events_inode.ino});
    let mut lifecycle = Map::new();
    lifecycle.insert("state".into(), json!("queued"));
    lifecycle.insert("queued_at".into(), ts(queued.now));
    lifecycle.insert("launch_requested_at".into(), ts(queued.now));
    lifecycle.insert("raw_events_inode".into(), inode.clone());
    for (key, value) in [
        ("quiet_after_ms", queued.quiet_after_ms),
        ("stale_after_ms", queued.stale_after_ms),
        ("timeout_after_ms", queued.timeout_after_ms),
    ] {
        if let Some(ms) = value {
            lifecycle.insert(key.into(), json!(ms));
        }
    }
    let summary: String = format!("flatline run: {}", queued.command.join(" "))
        .chars()
        .filter(|ch| !ch.is_control())
        .take(SUMMARY_CHARS)
        .collect();
    json!({
        "delegation_id": queued.id,
        "task_card_id": queued.task_card,
        "work_kind": "worker",
        "summary": summary,
        "created_at": ts(queued.now),
        "updated_at": ts(queued.now),
        "child_agent": {"status": "queued"},
        "worker_launch_evidence": {
            "launch_source": LAUNCH_SOURCE,
            "command": queued.command,
            "raw_events_file": queued.raw_events_file,
            "raw_events_inode": inode,
            "launcher": launcher,
        },
        "worker_lifecycle": lifecycle,
    })
}

fn object_mut(doc: &mut Value) -> Result<&mut Map<String, Value>, String> {
    doc.as_object_mut()
        .ok_or_else(|| "not a JSON object; not rewritten".to_string())
}

fn child_mut<'a>(
    object: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    let entry = object
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry
        .as_object_mut()
        .ok_or_else(|| format!("{key} is not an object; not rewritten"))
}

/// Sets `child_agent.status` and, when present, `executor.status`.
fn set_status(object: &mut Map<String, Value>, status: &str) -> Result<(), String> {
    child_mut(object, "child_agent")?.insert("status".into(), json!(status));
    if let Some(executor) = object.get_mut("executor").and_then(Value::as_object_mut) {
        executor.insert("status".into(), json!(status));
    }
    Ok(())
}

/// The worker runs: its identity, verified at birth. A document something else already
/// ended (an operator's `finalize`) keeps its status; the identity is recorded all the same.
pub fn apply_running(doc: &mut Value, started: &Started, now: Millis) -> Result<(), String> {
    let object = object_mut(doc)?;
    child_mut(object, "worker_lifecycle")?;
    let queued = object
        .get("child_agent")
        .and_then(|agent| agent.get("status"))
        .and_then(Value::as_str)
        .is_none_or(|status| status == "queued");
    object.insert("updated_at".into(), ts(now));
    if queued {
        set_status(object, "running")?;
    }
    let lifecycle = child_mut(object, "worker_lifecycle")?;
    if queued {
        lifecycle.insert("state".into(), json!("running_active"));
    }
    lifecycle.insert("started_at".into(), ts(started.started_at));
    lifecycle.insert("process_id".into(), json!(started.pid));
    lifecycle.insert("process_started_at".into(), ts(started.process_started_at));
    lifecycle.insert(
        "process_fingerprint".into(),
        crate::core::identity::fingerprint_json(&started.fingerprint),
    );
    Ok(())
}

/// How the worker ended, added to a finalized (or reclaimed) document: the wait status in
/// `worker_lifecycle` and in `worker_result.process_exit`.
pub fn apply_ended(doc: &mut Value, ended: Ended) -> Result<(), String> {
    let object = object_mut(doc)?;
    let (code, signal) = match ended {
        Ended::Exited(code) => (json!(code), Value::Null),
        Ended::Signalled(n) => (Value::Null, json!(n)),
    };
    let lifecycle = child_mut(object, "worker_lifecycle")?;
    lifecycle.insert("exit_code".into(), code.clone());
    lifecycle.insert("exit_signal".into(), signal.clone());
    if let Some(result) = object
        .get_mut("worker_result")
        .and_then(Value::as_object_mut)
    {
        result.insert(
            "process_exit".into(),
            json!({
                "success": ended == Ended::Exited(0),
                "exit_code": code,
                "exit_signal": signal,
            }),
        );
    }
    Ok(())
}

/// A signal `run` received and forwarded to the worker's process group, recorded in
/// `worker_lifecycle.forwarded_signals`.
pub fn apply_forwarded(doc: &mut Value, signal: &str, at: Millis) -> Result<(), String> {
    let lifecycle = child_mut(object_mut(doc)?, "worker_lifecycle")?;
    let entry = lifecycle
        .entry("forwarded_signals")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    if let Some(list) = entry.as_array_mut() {
        list.push(json!({"signal": signal, "at": time::format_rfc3339(at)}));
    }
    Ok(())
}

/// The launcher a delegation records (`worker_launch_evidence.launcher`): its pid and a
/// complete fingerprint, or `None`.
pub fn recorded_launcher(doc: &Delegation<'_>) -> Option<(i64, Fingerprint)> {
    let evidence = doc.worker_launch_evidence.value()?;
    if evidence.launch_source.str() != Some(LAUNCH_SOURCE) {
        return None;
    }
    let launcher = evidence.launcher.value()?;
    let pid = i64::try_from(*launcher.pid.value()?).ok()?;
    let Field::Value(record) = &launcher.fingerprint else {
        return None;
    };
    let start_ticks = u64::try_from(*record.start_ticks.value()?).ok()?;
    let boot_id = record.boot_id.str().filter(|s| !s.is_empty())?.to_string();
    let pid_ns = u64::try_from(*record.pid_ns.value()?).ok()?;
    let pidfd_ino = record
        .pidfd_ino
        .value()
        .and_then(|ino| u64::try_from(*ino).ok());
    Some((
        pid,
        Fingerprint {
            start_ticks,
            boot_id,
            pid_ns,
            pidfd_ino,
        },
    ))
}

/// The launcher guard of reclaim (SPEC §12): while the worker's `flatline run` is alive and
/// verified by its fingerprint, it owns the worker, and a sweep or reclaim leaves it alone
/// (`skipped_launcher`); once `run` is gone, the triage stands.
pub fn launcher_guard(triage: Triage, launcher_alive: bool) -> Triage {
    match triage {
        Triage::Skip(termination) => Triage::Skip(termination),
        _ if launcher_alive => Triage::Skip(Termination::SkippedLauncher),
        other => other,
    }
}

#[cfg(test)]
mod tests;
