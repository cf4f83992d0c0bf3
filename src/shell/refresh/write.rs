//! What refresh writes: a change applied to the document as JSON, and its action record's
//! detail.

use super::*;

impl DocChange for Change {
    fn action(&self) -> &'static str {
        match self {
            Change::Progress { .. } => "progressed",
            Change::Fingerprint(_) => "fingerprinted",
            Change::Finalize(_) => "finalized",
            Change::StreamSeen {
                then: Some(then), ..
            } => then.action(),
            Change::StreamSeen { then: None, .. } => "stream_recorded",
            Change::Activity {
                state: "running_busy",
                ..
            } => "busy",
            Change::Activity { .. } => "busy_ended",
        }
    }

    type Detail = RefreshDetail;

    fn detail(&self) -> RefreshDetail {
        change_detail(self)
    }

    fn apply(&self, doc: &mut Value, now: Millis) -> Result<(), ApplyError> {
        apply(doc, self, now)
    }
}

pub use crate::core::identity::fingerprint_json as fingerprint_value;

/// Keeps the identity window's anchor (SPEC §3.1) with flatline's first progress write to a
/// delegation whose identity rests on the window (a recorded pid, no fingerprint): from then
/// on a `last_progress_at` that flatline wrote never moves it.
pub(super) fn keep_identity_anchor(lifecycle: &mut Map<String, Value>) {
    if lifecycle.contains_key("identity_anchor_at")
        || lifecycle.contains_key("process_fingerprint")
        || !lifecycle.contains_key("process_id")
    {
        return;
    }
    let text = |key: &str| lifecycle.get(key).and_then(Value::as_str);
    let Some((anchor, upper)) = lifecycle::anchor_of_texts(
        text("process_started_at"),
        text("started_at"),
        text("last_progress_at"),
    ) else {
        return;
    };
    lifecycle.insert("identity_anchor_at".into(), ts(anchor));
    lifecycle.insert("identity_upper_bound_at".into(), ts(upper));
}

/// Applies a change to a delegation document. Touches only the fields flatline owns; never
/// `launch_requested_at`, `started_at` or `process_started_at`.
pub(super) fn apply(doc: &mut Value, change: &Change, now: Millis) -> Result<(), ApplyError> {
    let object = object_mut(doc)?;
    match change {
        Change::Progress { at, fingerprint } => {
            let lifecycle = lifecycle_mut(object)?;
            if fingerprint.is_none() {
                keep_identity_anchor(lifecycle);
            }
            lifecycle.insert("last_progress_at".into(), ts(*at));
            lifecycle.insert("process_last_seen_at".into(), ts(*at));
            lifecycle.insert("state".into(), json!("running_active"));
            if let Some(fingerprint) = fingerprint {
                lifecycle.insert("process_fingerprint".into(), fingerprint_value(fingerprint));
            }
        }
        Change::Fingerprint(fingerprint) => {
            let lifecycle = lifecycle_mut(object)?;
            lifecycle.insert("process_fingerprint".into(), fingerprint_value(fingerprint));
        }
        Change::Finalize(finalization) => apply_finalization(object, finalization, now)?,
        Change::StreamSeen { inode, then } => {
            lifecycle_mut(object)?;
            if let Some(then) = then {
                apply(doc, then, now)?;
            }
            let lifecycle = lifecycle_mut(object_mut(doc)?)?;
            lifecycle.insert("raw_events_inode".into(), inode_value(*inode));
        }
        Change::Activity {
            state,
            at,
            fingerprint,
        } => {
            let lifecycle = lifecycle_mut(object)?;
            lifecycle.insert("state".into(), json!(state));
            if *state == "running_busy" {
                lifecycle.insert("last_activity_at".into(), ts(*at));
            }
            if let Some(fingerprint) = fingerprint {
                lifecycle.insert("process_fingerprint".into(), fingerprint_value(fingerprint));
            }
        }
    }
    Ok(())
}

pub(super) fn inode_value(inode: StreamInode) -> Value {
    json!({"dev": inode.dev, "ino": inode.ino})
}

pub(super) fn apply_finalization(
    object: &mut Map<String, Value>,
    finalization: &Finalization,
    now: Millis,
) -> Result<(), ApplyError> {
    // Check before changing anything: a document is rewritten whole or not at all.
    lifecycle_mut(object)?;
    let completed = finalization.verdict.status == Outcome::Success;
    let status = if completed { "completed" } else { "failed" };
    let summary = result_summary(finalization);
    let digest = finalization.digest.as_ref();
    let at = finalization.completed_at;
    object.insert("updated_at".into(), ts(now));
    object.insert("completed_at".into(), ts(at));
    object.insert("result_summary".into(), json!(summary));
    object.insert(
        "worker_result".into(),
        json!({
            "status": status,
            "recorded_at": time::format_rfc3339(now),
            "format": digest.and_then(|d| d.format).map(|f| f.as_str()),
            "thread_id": digest.and_then(|d| d.thread_id.clone()),
            "assistant_message_preview": digest.and_then(|d| d.final_text.clone()),
            "total_token_usage": digest.and_then(|d| d.usage.clone()),
            "process_exit": finalization.exit_code.map(|code| json!({"success": code == 0, "exit_code": code})),
            "raw_output_preview": digest.map(|d| d.raw_preview.clone()).filter(|p| !p.is_empty()),
            "raw_output_bytes": digest.map_or(0, |d| d.bytes + d.skipped_bytes),
        }),
    );
    if let Some(digest) = digest.filter(|d| d.truncated)
        && let Some(Value::Object(result)) = object.get_mut("worker_result")
    {
        result.insert("raw_output_truncated".into(), json!(true));
        result.insert(
            "raw_output_skipped_bytes".into(),
            json!(digest.skipped_bytes),
        );
    }
    let failure = match finalization.verdict.reason {
        Some(reason) if !completed => json!({
            "stage": "execution",
            "reason": reason,
            "summary": failure_summary(finalization, reason),
            "recorded_at": time::format_rfc3339(now),
        }),
        _ => Value::Null,
    };
    object.insert("latest_failure".into(), failure);
    set_status(object, status);
    let lifecycle = lifecycle_mut(object)?;
    lifecycle.insert(
        "state".into(),
        json!(if completed { "returned" } else { "failed" }),
    );
    lifecycle.insert(
        "reclaim_state".into(),
        json!(if completed { "resumable" } else { "not_needed" }),
    );
    lifecycle.insert("process_last_seen_at".into(), ts(at));
    lifecycle.insert("returned_at".into(), ts(at));
    lifecycle.insert("last_progress_at".into(), ts(at));
    lifecycle.insert("summary".into(), json!(summary));
    Ok(())
}

pub use crate::model::stream_path;

/// What a change decided, for its action record.
pub(super) fn change_detail(change: &Change) -> RefreshDetail {
    match change {
        Change::Progress { at, fingerprint } => RefreshDetail::Progress {
            last_progress_at: Ts(Some(*at)),
            fingerprint_stamped: fingerprint.is_some(),
        },
        Change::Fingerprint(_) => RefreshDetail::Fingerprint {
            fingerprint_stamped: true,
        },
        // The record of what came with it reads as that change alone.
        Change::StreamSeen {
            then: Some(then), ..
        } => change_detail(then),
        Change::StreamSeen { inode, then: None } => RefreshDetail::Stream {
            raw_events_inode: InodeRecord {
                dev: inode.dev,
                ino: inode.ino,
            },
        },
        Change::Activity { state, at, .. } => RefreshDetail::Activity {
            state,
            last_activity_at: Ts(Some(*at)),
        },
        Change::Finalize(finalization) => {
            let digest = finalization.digest.as_ref();
            let truncated = digest.filter(|d| d.truncated);
            RefreshDetail::Finalize(FinalizeDetail {
                status: finalization.verdict.status_name(),
                reason: finalization.verdict.reason,
                completed_at: Ts(Some(finalization.completed_at)),
                format: digest.and_then(|d| d.format).map(|f| f.as_str()),
                thread_id: digest.and_then(|d| d.thread_id.clone()),
                terminal_event: digest.and_then(|d| d.terminal.as_ref()).map(|t| t.event),
                raw_events_bytes: digest.map_or(0, |d| d.bytes),
                raw_output_truncated: truncated.map(|_| true),
                raw_output_skipped_bytes: truncated.map(|d| d.skipped_bytes),
                summary: result_summary(finalization),
            })
        }
    }
}
