//! What a reclaim writes: the reclaim record merged into the document, a finalization,
//! the records of what the tree kill saw, and the outcome of every signalled worker.

use super::*;

impl DocChange for Reclaim {
    fn action(&self) -> &'static str {
        "reclaimed"
    }

    type Detail = ReclaimDetail;

    fn detail(&self) -> ReclaimDetail {
        ReclaimDetail {
            state: Some(self.state.as_str()),
            process_id: self.process_id,
            termination: self.termination.as_str(),
            signal_via: self.signal_via,
            descendants_signalled: self.descendants_signalled.clone(),
            survivors: self.survivors.clone(),
            summary: Some(self.summary()),
        }
    }

    fn apply(&self, doc: &mut Value, now: i64) -> Result<(), ApplyError> {
        if orchestrator_ended(doc) {
            return self.merge(doc, now);
        }
        let object = object_mut(doc)?;
        lifecycle_mut(object)?;
        let summary = self.summary();
        object.insert("updated_at".into(), ts(now));
        object.insert("completed_at".into(), ts(now));
        object.insert("result_summary".into(), json!(summary));
        // An operator's reclaim (--force) cancels; one for lack of progress fails.
        let (status, reason) = match self.by_operator() {
            true => ("cancelled", "operator"),
            false => ("failed", "timeout"),
        };
        object.insert(
            "latest_failure".into(),
            json!({
                "stage": "execution",
                "reason": reason,
                "summary": summary,
                "recorded_at": ts(now),
            }),
        );
        set_status(object, status);
        object.insert(
            "reclaim".into(),
            json!({
                "signal_via": self.signal_via,
                "termination": self.termination.as_str(),
                "descendants_signalled": self.descendants_signalled,
                "survivors": self.survivors,
            }),
        );
        let lifecycle = lifecycle_mut(object)?;
        let state = if self.by_operator() {
            "cancelled"
        } else {
            self.state.as_str()
        };
        lifecycle.insert("state".into(), json!(state));
        lifecycle.insert("reclaim_state".into(), json!("reclaimed"));
        lifecycle.insert("process_last_seen_at".into(), ts(now));
        lifecycle.insert("returned_at".into(), ts(now));
        lifecycle.insert("summary".into(), json!(summary));
        if let Some(at) = self.stale_at {
            lifecycle.insert("stale_at".into(), ts(at));
        }
        if let Some(at) = self.timed_out_at {
            lifecycle.insert("timed_out_at".into(), ts(at));
        }
        Ok(())
    }
}

/// Whether the orchestrator already gave the document a terminal status (it may reap the
/// child during the grace and record its end): reclaim then merges its fields into it.
pub(super) fn orchestrator_ended(doc: &Value) -> bool {
    matches!(
        doc.get("child_agent")
            .and_then(|agent| agent.get("status"))
            .and_then(Value::as_str),
        Some("completed" | "failed" | "cancelled")
    )
}

impl Reclaim {
    /// Merges flatline's reclaim fields into a document whose terminal status was set by
    /// someone else (SPEC §3.3: once a signal is sent, the record must land): `reclaim`,
    /// `worker_lifecycle.reclaim_state`, and `latest_failure` when none is set. The status
    /// and everything else the orchestrator wrote are kept.
    pub fn merge(&self, doc: &mut Value, now: i64) -> Result<(), ApplyError> {
        let object = object_mut(doc)?;
        lifecycle_mut(object)?.insert("reclaim_state".into(), json!("reclaimed"));
        object.insert(
            "reclaim".into(),
            json!({
                "signal_via": self.signal_via,
                "termination": self.termination.as_str(),
                "descendants_signalled": self.descendants_signalled,
                "survivors": self.survivors,
            }),
        );
        if object.get("latest_failure").is_none_or(Value::is_null) {
            object.insert(
                "latest_failure".into(),
                json!({
                    "stage": "execution",
                    "reason": "timeout",
                    "summary": self.summary(),
                    "recorded_at": ts(now),
                }),
            );
        }
        Ok(())
    }
}

/// A target finalized as refresh would, with the termination that says why.
#[derive(Debug, Clone, PartialEq)]
pub struct Finalized {
    pub change: Change,
    pub termination: Termination,
}

impl DocChange for Finalized {
    fn action(&self) -> &'static str {
        "finalized"
    }

    type Detail = FinalizedDetail;

    fn detail(&self) -> FinalizedDetail {
        FinalizedDetail {
            termination: self.termination.as_str(),
            change: self.change.detail(),
        }
    }

    fn apply(&self, doc: &mut Value, now: i64) -> Result<(), ApplyError> {
        self.change.apply(doc, now)
    }
}

impl Kill {
    /// The record of a worker whose processes are confirmed gone; `None` otherwise.
    pub fn reclaim(&self, target: &TargetInfo) -> Option<Reclaim> {
        let termination = self.termination();
        matches!(termination, Termination::Terminated | Termination::Killed).then(|| Reclaim {
            state: target.state,
            termination,
            process_id: target.process_id,
            stale_at: target.stale_at,
            timed_out_at: target.timed_out_at,
            signal_via: self.signal_via(),
            descendants_signalled: self.descendants_signalled(),
            survivors: self.survivors.clone(),
        })
    }

    /// Warns about what was not reclaimed: surviving descendants, a worker that could not
    /// be signalled or survived. Raises the exit status to 1 for each.
    pub fn warn(&self, path: &std::path::Path, diag: &mut Diagnostics) {
        if !self.survivors.is_empty() {
            diag.warning(
                path,
                &format!(
                    "descendants of worker {} survived SIGKILL: {:?}",
                    self.pid, self.survivors
                ),
            );
            diag.raise(Exit::Attention);
        }
        let termination = self.termination();
        if matches!(
            termination,
            Termination::NotPermitted | Termination::Survived | Termination::Interrupted
        ) {
            diag.warning(
                path,
                &format!(
                    "worker process {} {}: left reclaim_needed",
                    self.pid,
                    if termination == Termination::NotPermitted {
                        "may not be signalled (EPERM)"
                    } else if termination == Termination::Survived {
                        "is still alive after SIGKILL"
                    } else {
                        "is still alive; the run stopped before SIGKILL"
                    }
                ),
            );
            diag.raise(Exit::Attention);
        }
    }

    /// The action record's detail for a worker that was not marked.
    pub fn skipped_detail(&self, target: &TargetInfo) -> ReclaimDetail {
        ReclaimDetail {
            state: Some(target.state.as_str()),
            process_id: target.process_id,
            termination: self.termination().as_str(),
            signal_via: self.signal_via(),
            descendants_signalled: self.descendants_signalled(),
            survivors: self.survivors.clone(),
            summary: None,
        }
    }
}

/// The reclaim record a signalled target will get, as far as it is known before the
/// signals: what the last look applies in memory to check that it can be written.
pub fn placeholder_record(info: &TargetInfo) -> Reclaim {
    Reclaim {
        state: info.state,
        termination: Termination::SkippedUnrecordable,
        process_id: info.process_id,
        stale_at: info.stale_at,
        timed_out_at: info.timed_out_at,
        signal_via: Some("pidfd"),
        descendants_signalled: Vec::new(),
        survivors: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn skip(
    place: Place<'_>,
    termination: Termination,
    state: State,
    process_id: Option<Int>,
    facts: &ProcessFacts,
    owner: u32,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> Result<(), Exit> {
    let why = skip_reason(termination, facts, owner);
    diag.warning(
        place.path,
        &format!("not reclaimed ({}): {why}", termination.as_str()),
    );
    if termination.needs_attention() {
        diag.raise(Exit::Attention);
    }
    let detail = SkippedDetail {
        state: state.as_str(),
        process_id,
        termination: termination.as_str(),
        reason: Some(&why),
    };
    place.record("skipped", "not_written", detail, output, diag)
}

/// Finalizes a target whose process is gone or whose pid was reused, as refresh would.
/// Returns whether a file was written.
#[allow(clippy::too_many_arguments)]
pub(super) fn finalize(
    target: commit::Target<'_>,
    planned: Result<Option<Change>, refresh::StreamError>,
    termination: Termination,
    config: &Config,
    ctx: &refresh::Context<'_>,
    owner: u32,
    place: Place<'_>,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> Result<bool, Exit> {
    let change = match planned {
        Ok(Some(change)) => change,
        Ok(None) => {
            let detail = UnsettledDetail {
                termination: termination.as_str(),
                reason: "its event stream has not settled yet; a later refresh or reclaim finalizes it",
            };
            place.record("skipped", "not_written", detail, output, diag)?;
            return Ok(false);
        }
        Err(problem) => {
            diag.error(place.path, &problem.to_string(), Exit::FileProblem);
            return Ok(false);
        }
    };
    let written = commit::write_change(
        target,
        Finalized {
            change,
            termination,
        },
        config.now,
        config.dry_run,
        |bytes| {
            refresh::replan(ctx, bytes, owner).map(|next| {
                next.map(|change| Finalized {
                    change,
                    termination,
                })
            })
        },
    );
    commit::report(place, &written, output, diag)?;
    Ok(written.wrote())
}

/// Writes the outcome of every signalled worker; only confirmed-gone workers are marked.
pub(crate) fn record_all(
    pending: &mut [Pending],
    states: &mut [RunState<'_>],
    config: &Config,
    host: &LazyHost,
    stop: &Stop,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> Vec<(usize, String)> {
    let mut unlanded = Vec::new();
    for target in pending.iter() {
        // Its run's lock could not be taken again: its note stays for the next run.
        if !states[target.run].locked() {
            unlanded.push((target.run, target.name.to_string_lossy().into_owned()));
            continue;
        }
        let place = target.place(states);
        target.kill.warn(place.path, diag);
        let termination = target.kill.termination();
        let result = if let Some(change) = target.kill.reclaim(&target.info) {
            let state = &states[target.run];
            let file = commit::Target {
                dir: &state.listing.dir,
                name: &target.name,
                bytes: &target.bytes,
            };
            // The signals were sent: the record is merged into whatever is on disk now,
            // and retried until the deadline.
            let written =
                commit::write_change_landing(file, change.clone(), config.now, stop, |_| {
                    Ok(Some(change.clone()))
                });
            let wrote = written.wrote();
            if matches!(written, Written::Conflict(_) | Written::Failed { .. }) {
                unlanded.push((target.run, target.name.to_string_lossy().into_owned()));
            }
            let reported = commit::report(place, &written, output, diag);
            states[target.run].wrote |= wrote;
            reported
        } else if termination == Termination::AlreadyExited {
            // It exited on its own between the scan and the signal: finalize it as refresh
            // would, from the bytes that were read.
            let state = &states[target.run];
            let ctx = refresh::Context::new(state.run, config, host);
            let planned = scan::inspect(&target.bytes, config, host, |doc, times, facts, _| {
                refresh::plan(&ctx, doc, times, facts, target.owner)
            });
            let planned = match planned {
                Ok(planned) => planned,
                Err(error) => {
                    diag.error(&target.path, &error.to_string(), Exit::FileProblem);
                    continue;
                }
            };
            let file = commit::Target {
                dir: &state.listing.dir,
                name: &target.name,
                bytes: &target.bytes,
            };
            match finalize(
                file,
                planned,
                termination,
                config,
                &ctx,
                target.owner,
                place,
                output,
                diag,
            ) {
                Ok(wrote) => {
                    states[target.run].wrote |= wrote;
                    Ok(())
                }
                Err(exit) => Err(exit),
            }
        } else {
            place.record(
                "skipped",
                "not_written",
                target.kill.skipped_detail(&target.info),
                output,
                diag,
            )
        };
        // A failing stdout stops the printing (reported where it failed), never the
        // records of workers already signalled.
        let _ = result;
    }
    unlanded
}
