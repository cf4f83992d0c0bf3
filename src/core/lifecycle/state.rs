//! The state of a running worker and why it is stale or timed out (SPEC §2).

use super::*;

/// Why a worker is stale or timed out: its progress, its run time or its launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    Progress,
    Runtime(Millis),
    Launch(Millis),
}

/// Whether a running worker is still launching (SPEC §2): no `started_at`, no
/// `process_started_at`, no stream evidence (a `last_progress_at`) and no verified process.
/// A caller that has fresher stream evidence (a stream mtime) ORs it in as `stream_seen`.
pub fn is_launching(times: &Times, identity: Option<Identity>, stream_seen: bool) -> bool {
    times.started_at.is_none()
        && times.process_started_at.is_none()
        && times.last_progress_at.is_none()
        && identity != Some(Identity::Verified)
        && !stream_seen
}

/// When the launch was asked for: `launch_requested_at`, else `queued_at`.
pub(super) fn launch_at(times: &Times) -> Option<Millis> {
    times.launch_requested_at.or(times.queued_at)
}

pub(super) fn running_state(
    age: Millis,
    times: &Times,
    now: Millis,
    policy: &Thresholds,
    thresholds: Effective,
    launching: bool,
    cause: &mut Cause,
) -> State {
    let runtime = times.started_at.map(|at| (now - at).max(0));
    if let (Some(limit), Some(runtime)) = (policy.max_runtime, runtime)
        && runtime >= limit
    {
        *cause = Cause::Runtime(runtime);
        return State::TimedOut;
    }
    // With --launch-timeout a launching worker is judged by it alone: stale past it, never
    // earlier (a slow container pull must not look like a hang).
    if launching && let Some(limit) = policy.launch_timeout {
        let waited = launch_at(times).map_or(age, |at| (now - at).max(0));
        if waited >= limit {
            *cause = Cause::Launch(waited);
            return State::Stale;
        }
        return State::Launching;
    }
    if age >= thresholds.timeout {
        return State::TimedOut;
    }
    if age >= thresholds.stale {
        return State::Stale;
    }
    if launching {
        return State::Launching;
    }
    if age >= thresholds.quiet {
        State::RunningQuiet
    } else {
        State::RunningActive
    }
}

pub(super) fn reclaim_reason(
    state: State,
    cause: Cause,
    age: Millis,
    thresholds: Effective,
    policy: &Thresholds,
) -> String {
    match cause {
        Cause::Runtime(runtime) => format!(
            "worker run time {runtime} ms reached the max runtime {} ms",
            policy.max_runtime.unwrap_or(0)
        ),
        Cause::Launch(waited) => format!(
            "launch took {waited} ms, over the launch timeout {} ms",
            policy.launch_timeout.unwrap_or(0)
        ),
        Cause::Progress if state == State::TimedOut => format!(
            "worker progress age {age} ms reached the timeout threshold {} ms",
            thresholds.timeout
        ),
        Cause::Progress => format!(
            "worker progress age {age} ms reached the stale threshold {} ms",
            thresholds.stale
        ),
    }
}
