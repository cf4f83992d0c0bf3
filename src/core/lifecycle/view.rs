//! The view of one delegation (SPEC §2): what a record prints and a plan decides on.

use super::*;

/// The lifecycle view of one delegation: everything a record prints and a plan decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct View<'a> {
    pub delegation_id: Option<&'a str>,
    pub task_card_id: Option<&'a str>,
    pub work_kind: &'a str,
    /// `child_agent.status` as recorded, or `queued` when missing.
    pub status: &'a str,
    pub child_status: ChildStatus,
    pub state: State,
    pub reclaim_state: ReclaimState,
    /// The recorded `process_id` when it is an integer (valid or not).
    pub process_id: Option<Int>,
    pub process_alive: Option<bool>,
    pub process_identity: Option<Identity>,
    pub last_progress_at: Option<Millis>,
    /// Which field the progress baseline came from.
    pub progress_baseline: Option<&'static str>,
    pub elapsed_since_progress_ms: Option<Millis>,
    pub thresholds: Effective,
    pub stale_at: Option<Millis>,
    pub timed_out_at: Option<Millis>,
    pub next_action: NextAction,
    pub transition: &'static str,
    pub recovery_action: Recovery,
    pub recovery_reason: String,
    pub summary: &'static str,
    pub warnings: Vec<Warning>,
    /// Human descriptions of malformed fields (wrong types, invalid timestamps), for the
    /// one stderr line about this file.
    pub malformed: Vec<String>,
    /// What the worker's process tree did (SPEC §11): set by the shell after the view.
    pub activity: Option<crate::core::activity::Activity>,
    /// What the quiet worker's tree waits on (SPEC §11 "Diagnosis"): set by the shell.
    pub stall: Option<crate::core::stall::Stall>,
}

impl View<'_> {
    /// SPEC §2: what `--check` counts.
    pub fn needs_attention(&self) -> bool {
        if self.reclaim_state == ReclaimState::Reclaimed {
            return false;
        }
        self.reclaim_state == ReclaimState::ReclaimNeeded
            || self.state == State::Unknown
            || self.next_action == NextAction::Finalize
            || (self.child_status == ChildStatus::Running
                && (self.warnings.contains(&Warning::InvalidProcessId)
                    || self.process_identity == Some(Identity::Unverifiable)))
            || self.warnings.contains(&Warning::StreamReplaced)
            || self.warnings.contains(&Warning::StreamMissing)
    }
}

pub(super) fn work_kind<'a>(doc: &'a Delegation<'a>) -> &'a str {
    let non_empty = |text: Option<&'a str>| text.map(str::trim).filter(|t| !t.is_empty());
    non_empty(doc.work_kind.str())
        .or_else(|| non_empty(doc.worker_request.value().and_then(|r| r.work_kind.str())))
        .or_else(|| {
            non_empty(
                doc.worker_launch_evidence
                    .value()
                    .and_then(|e| e.work_kind.str()),
            )
        })
        .unwrap_or("worker")
}

/// The status string as recorded: `child_agent.status`, else `executor.status`.
pub fn recorded_status<'a>(doc: &'a Delegation<'a>) -> Option<&'a str> {
    doc.child_agent
        .value()
        .and_then(|c| c.status.str())
        .or_else(|| doc.executor.value().and_then(|e| e.status.str()))
}

/// The child status, for callers that need only that.
pub fn child_status(doc: &Delegation<'_>) -> ChildStatus {
    recorded_status(doc).map_or(ChildStatus::Queued, ChildStatus::parse)
}

/// Whether the document says flatline (or an orchestrator) already reclaimed the worker.
pub fn is_reclaimed(doc: &Delegation<'_>) -> bool {
    doc.worker_lifecycle
        .value()
        .and_then(|l| l.reclaim_state.str())
        == Some("reclaimed")
}

pub(super) fn summary_for(state: State, reclaimed: bool, next: NextAction) -> &'static str {
    if reclaimed {
        return "reclaimed after it stopped making progress; ask the operator how to recover";
    }
    if next == NextAction::Finalize {
        return "running, but its process is gone: finalize with flatline refresh";
    }
    match state {
        State::Queued => "queued and waiting for launch",
        State::Launching => "launch requested, waiting for the worker to start",
        State::RunningActive => "running with recent progress",
        State::RunningQuiet => "running, quiet: no progress for a while",
        State::RunningBusy => {
            "running, busy: no events past the stale threshold, but its processes are working"
        }
        State::Stale => "stale: no progress past the stale threshold; needs reclaim",
        State::TimedOut => "timed out: past the timeout threshold; needs reclaim",
        State::Returned => "returned; ready for fan-in",
        State::Failed => "failed; needs follow-up",
        State::Cancelled => "cancelled",
        State::Unknown => "state unknown: see warnings",
    }
}

pub(super) fn transition_for(state: State) -> &'static str {
    match state {
        State::Returned => "completed",
        State::TimedOut => "reclaimable",
        State::Stale => "stalled",
        State::RunningQuiet => "quiet",
        _ => "running",
    }
}

/// The view of one delegation (SPEC §2) from its document alone, without the evidence of
/// its stream. `times` must be `Times::of` the same document.
pub fn view<'a>(
    doc: &'a Delegation<'a>,
    times: &Times,
    now: Millis,
    policy: &Thresholds,
    process: &ProcessFacts,
) -> View<'a> {
    view_with_stream(doc, times, now, policy, process, &StreamFacts::NotLooked)
}

/// The view of one delegation (SPEC §2) with what a stat of its stream showed: the view
/// never lags what the files already show.
pub fn view_with_stream<'a>(
    doc: &'a Delegation<'a>,
    times: &Times,
    now: Millis,
    policy: &Thresholds,
    process: &ProcessFacts,
    stream: &StreamFacts,
) -> View<'a> {
    let lifecycle = doc.worker_lifecycle.value();
    let mut warnings = Vec::new();
    let malformed = malformed_fields(doc, times, &mut warnings);

    let thresholds = effective_thresholds(lifecycle, policy, &mut warnings);
    let status_text = recorded_status(doc);
    let child_status = status_text.map_or(ChildStatus::Queued, ChildStatus::parse);
    let reclaimed = is_reclaimed(doc);

    let stream = if child_status == ChildStatus::Running && !reclaimed {
        *stream
    } else {
        StreamFacts::NotLooked
    };
    let check = stream_check(recorded_stream_inode(lifecycle), &stream);
    let (baseline, stream_skew) =
        progress_baseline(times, &stream, check, now, policy.max_clock_skew);
    stream_warnings(check, &stream, stream_skew, &mut warnings);
    let (elapsed, skew) = progress_age(baseline, now, policy.max_clock_skew);

    let mut cause = Cause::Progress;
    let state = if reclaimed {
        reclaimed_state(lifecycle, child_status)
    } else {
        let running = Running {
            skew,
            elapsed,
            baseline,
            times,
            now,
            policy,
            thresholds,
            process,
        };
        unreclaimed_state(child_status, &running, &mut warnings, &mut cause)
    };

    // While its stream is missing a worker is not judged on its progress: the evidence is
    // gone, not necessarily the worker (SPEC §3.2). --max-runtime still applies.
    let state = missing_stream_state(state, check, &mut cause, times, now, policy);

    let reclaim_state = reclaim_state_of(state, reclaimed);

    let (stale_at, timed_out_at) = since(state, reclaimed, times, baseline.map(|(at, _)| at));

    let process_id = lifecycle.and_then(|l| l.process_id.value().copied());
    if let ProcessFacts::Invalid(_) = process {
        push_once(&mut warnings, Warning::InvalidProcessId);
    }
    if recorded_fingerprint(lifecycle).is_err() {
        push_once(&mut warnings, Warning::InvalidFingerprint);
    }
    let identity = process.identity();
    let process_gone = matches!(identity, Some(Identity::Gone | Identity::Reused));

    let next_action = next_action_of(state, reclaimed, child_status, process_gone);

    let age = elapsed.unwrap_or(0);
    let (recovery_action, recovery_reason) =
        recovery(state, reclaimed, cause, age, thresholds, policy);

    View {
        delegation_id: doc.delegation_id.str(),
        task_card_id: doc.task_card_id.str(),
        work_kind: work_kind(doc),
        status: status_text.unwrap_or("queued"),
        child_status,
        state,
        reclaim_state,
        process_id,
        process_alive: process.alive(),
        process_identity: identity,
        last_progress_at: times.last_progress_at,
        progress_baseline: baseline.map(|(_, name)| name),
        elapsed_since_progress_ms: elapsed,
        thresholds,
        stale_at,
        timed_out_at,
        next_action,
        transition: transition_for(state),
        recovery_action,
        recovery_reason,
        summary: summary_for(state, reclaimed, next_action),
        warnings,
        malformed,
        activity: None,
        stall: None,
    }
}

/// The fields of a document of the wrong type and its timestamps that do not parse: each a
/// `malformed` line and a warning.
fn malformed_fields(
    doc: &Delegation<'_>,
    times: &Times,
    warnings: &mut Vec<Warning>,
) -> Vec<String> {
    let mut malformed = Vec::new();
    let mut wrong = Vec::new();
    doc.wrong_types(&mut String::new(), &mut wrong);
    for field in wrong {
        malformed.push(format!(
            "{} is {}, expected {}",
            field.path, field.found, field.expected
        ));
        warnings.push(Warning::WrongType(field.path));
    }
    for path in &times.invalid {
        malformed.push(format!("{path} is not an RFC 3339 timestamp"));
        warnings.push(Warning::InvalidTimestamp(path));
    }
    malformed
}

/// The warnings of what the stream check and the stream's facts found.
fn stream_warnings(
    check: StreamCheck,
    stream: &StreamFacts,
    stream_skew: Result<(), ()>,
    warnings: &mut Vec<Warning>,
) {
    match check {
        StreamCheck::Replaced(_) => push_once(warnings, Warning::StreamReplaced),
        StreamCheck::Missing => push_once(warnings, Warning::StreamMissing),
        StreamCheck::Same | StreamCheck::Unchecked => {}
    }
    if *stream
        == (StreamFacts::Unusable {
            not_readable_by_owner: true,
        })
    {
        push_once(warnings, Warning::StreamNotReadableByOwner);
    }
    if stream_skew.is_err() {
        push_once(warnings, Warning::ClockSkew);
    }
}

/// Age of the progress baseline; `None` when there is none or it is too far ahead.
fn progress_age(
    baseline: Option<(Millis, &'static str)>,
    now: Millis,
    max_clock_skew: Millis,
) -> (Option<Millis>, Option<Warning>) {
    match baseline {
        None => (None, None),
        Some((at, _)) if at > now.saturating_add(max_clock_skew) => {
            (None, Some(Warning::ClockSkew))
        }
        Some((at, _)) if at > now => (Some(0), Some(Warning::ClockSkew)),
        Some((at, _)) => (Some(now - at), None),
    }
}

/// The state a reclaimed worker was left in: as recorded, else from its status.
fn reclaimed_state(lifecycle: Option<&Lifecycle<'_>>, child_status: ChildStatus) -> State {
    lifecycle
        .and_then(|l| l.state.str())
        .and_then(State::parse)
        .unwrap_or(match child_status {
            ChildStatus::Completed => State::Returned,
            ChildStatus::Cancelled => State::Cancelled,
            _ => State::Failed,
        })
}

/// What the state of a running worker is judged on.
struct Running<'t> {
    skew: Option<Warning>,
    elapsed: Option<Millis>,
    baseline: Option<(Millis, &'static str)>,
    times: &'t Times,
    now: Millis,
    policy: &'t Thresholds,
    thresholds: Effective,
    process: &'t ProcessFacts,
}

/// The state of a worker that is not reclaimed, from its recorded status and, while it
/// runs, the age of its progress baseline.
fn unreclaimed_state(
    child_status: ChildStatus,
    running: &Running<'_>,
    warnings: &mut Vec<Warning>,
    cause: &mut Cause,
) -> State {
    match child_status {
        ChildStatus::Running => {
            if let Some(warning) = running.skew.clone() {
                push_once(warnings, warning);
            }
            match running.elapsed {
                None if running.baseline.is_none() => {
                    push_once(warnings, Warning::NoProgressBaseline);
                    State::Unknown
                }
                None => State::Unknown,
                Some(age) => {
                    // A stream written since the recorded baseline is a sign of a start.
                    let stream_seen = matches!(running.baseline, Some((_, "stream_mtime")));
                    let launching =
                        is_launching(running.times, running.process.identity(), stream_seen);
                    running_state(
                        age,
                        running.times,
                        running.now,
                        running.policy,
                        running.thresholds,
                        launching,
                        cause,
                    )
                }
            }
        }
        ChildStatus::Completed => State::Returned,
        ChildStatus::Failed => State::Failed,
        ChildStatus::Cancelled => State::Cancelled,
        ChildStatus::Queued => State::Queued,
        ChildStatus::Other => {
            push_once(warnings, Warning::UnknownStatus);
            State::Unknown
        }
    }
}

/// While its stream is missing a worker is not judged on its progress: the evidence is
/// gone, not necessarily the worker (SPEC §3.2). --max-runtime still applies.
fn missing_stream_state(
    state: State,
    check: StreamCheck,
    cause: &mut Cause,
    times: &Times,
    now: Millis,
    policy: &Thresholds,
) -> State {
    match state {
        State::Stale | State::TimedOut
            if check == StreamCheck::Missing && *cause == Cause::Progress =>
        {
            let runtime = times.started_at.map(|at| (now - at).max(0));
            match (policy.max_runtime, runtime) {
                (Some(limit), Some(runtime)) if runtime >= limit => {
                    *cause = Cause::Runtime(runtime);
                    State::TimedOut
                }
                _ => State::RunningQuiet,
            }
        }
        state => state,
    }
}

/// When a worker became stale or timed out: as recorded, else (while it is) its baseline.
fn since(
    state: State,
    reclaimed: bool,
    times: &Times,
    baseline_at: Option<Millis>,
) -> (Option<Millis>, Option<Millis>) {
    let stale_at = match (state, reclaimed) {
        (State::Stale, false) => times.stale_at.or(baseline_at),
        _ => times.stale_at,
    };
    let timed_out_at = match (state, reclaimed) {
        (State::TimedOut, false) => times.timed_out_at.or(baseline_at),
        _ => times.timed_out_at,
    };
    (stale_at, timed_out_at)
}

fn reclaim_state_of(state: State, reclaimed: bool) -> ReclaimState {
    if reclaimed {
        ReclaimState::Reclaimed
    } else {
        match state {
            State::Stale | State::TimedOut => ReclaimState::ReclaimNeeded,
            State::Returned => ReclaimState::Resumable,
            _ => ReclaimState::NotNeeded,
        }
    }
}

fn next_action_of(
    state: State,
    reclaimed: bool,
    child_status: ChildStatus,
    process_gone: bool,
) -> NextAction {
    if reclaimed {
        NextAction::None
    } else if child_status == ChildStatus::Running && process_gone {
        NextAction::Finalize
    } else {
        match state {
            State::Stale | State::TimedOut => NextAction::Reclaim,
            State::Returned => NextAction::Advance,
            State::Failed | State::Cancelled => NextAction::None,
            _ => NextAction::AwaitWorker,
        }
    }
}

/// What recovers the worker, and why (SPEC §2).
fn recovery(
    state: State,
    reclaimed: bool,
    cause: Cause,
    age: Millis,
    thresholds: Effective,
    policy: &Thresholds,
) -> (Recovery, String) {
    if reclaimed {
        (
            Recovery::AskOperator,
            "the worker was reclaimed; ask the operator how to recover".to_string(),
        )
    } else {
        match state {
            State::Stale | State::TimedOut => (
                Recovery::Reclaim,
                reclaim_reason(state, cause, age, thresholds, policy),
            ),
            State::RunningQuiet | State::RunningBusy => (
                Recovery::Poll,
                format!(
                    "worker progress age {age} ms reached the quiet threshold {} ms",
                    thresholds.quiet
                ),
            ),
            State::Failed | State::Cancelled => (
                Recovery::AskOperator,
                format!(
                    "the worker {}; ask the operator how to recover",
                    if state == State::Failed {
                        "failed"
                    } else {
                        "was cancelled"
                    }
                ),
            ),
            State::Returned => (
                Recovery::Wait,
                "the worker returned; wait for fan-in".to_string(),
            ),
            State::Queued | State::Launching => (
                Recovery::Wait,
                "the worker has not started; wait for launch".to_string(),
            ),
            State::Unknown => (
                Recovery::Wait,
                "the state cannot be determined; see warnings".to_string(),
            ),
            State::RunningActive => (
                Recovery::Wait,
                format!(
                    "worker progress age {age} ms is below the quiet threshold {} ms",
                    thresholds.quiet
                ),
            ),
        }
    }
}
