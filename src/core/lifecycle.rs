//! lifecycle: the pure view of a delegation (SPEC §2), from its document, `now`, the
//! thresholds and the process facts read in the same pass.
//!
//! Nothing here touches a file, a clock or a process: the same inputs always give the same
//! view, which is what the unit tests below pin down with fixed instants.

use crate::core::identity::{self, Evidence, Fingerprint, Identity, InvalidPid, Observation, Pid};
use crate::core::time::{self, Millis};
use crate::model::{Delegation, Field, Int, Lifecycle, Text};
use std::borrow::Cow;

/// Every state a delegation can be in, as printed and as `--state` takes them.
pub const STATES: &[&str] = &[
    "queued",
    "launching",
    "running_active",
    "running_quiet",
    "running_busy",
    "stale",
    "timed_out",
    "returned",
    "failed",
    "cancelled",
    "unknown",
];

pub const DEFAULT_STALE_MS: Millis = 45_000;
pub const DEFAULT_MAX_CLOCK_SKEW_MS: Millis = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Launching,
    RunningActive,
    RunningQuiet,
    /// Past stale, but its process tree is busy (SPEC §11).
    RunningBusy,
    Stale,
    TimedOut,
    Returned,
    Failed,
    Cancelled,
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Launching => "launching",
            State::RunningActive => "running_active",
            State::RunningQuiet => "running_quiet",
            State::RunningBusy => "running_busy",
            State::Stale => "stale",
            State::TimedOut => "timed_out",
            State::Returned => "returned",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        Some(match text {
            "queued" => State::Queued,
            "launching" => State::Launching,
            "running_active" | "running" => State::RunningActive,
            "running_quiet" => State::RunningQuiet,
            "running_busy" => State::RunningBusy,
            "stale" => State::Stale,
            "timed_out" => State::TimedOut,
            "returned" => State::Returned,
            "failed" => State::Failed,
            "cancelled" => State::Cancelled,
            "unknown" => State::Unknown,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimState {
    NotNeeded,
    ReclaimNeeded,
    Resumable,
    Reclaimed,
}

impl ReclaimState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReclaimState::NotNeeded => "not_needed",
            ReclaimState::ReclaimNeeded => "reclaim_needed",
            ReclaimState::Resumable => "resumable",
            ReclaimState::Reclaimed => "reclaimed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAction {
    None,
    Finalize,
    Reclaim,
    Advance,
    AwaitWorker,
}

impl NextAction {
    pub fn as_str(self) -> &'static str {
        match self {
            NextAction::None => "none",
            NextAction::Finalize => "finalize",
            NextAction::Reclaim => "reclaim",
            NextAction::Advance => "advance",
            NextAction::AwaitWorker => "await_worker",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    Reclaim,
    Poll,
    AskOperator,
    Wait,
}

impl Recovery {
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::Reclaim => "reclaim",
            Recovery::Poll => "poll",
            Recovery::AskOperator => "ask_operator",
            Recovery::Wait => "wait",
        }
    }
}

/// The child status of a delegation (`child_agent.status`, else `executor.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    Other,
}

impl ChildStatus {
    fn parse(text: &str) -> ChildStatus {
        match text {
            "queued" => ChildStatus::Queued,
            "running" => ChildStatus::Running,
            "completed" => ChildStatus::Completed,
            "failed" => ChildStatus::Failed,
            "cancelled" => ChildStatus::Cancelled,
            _ => ChildStatus::Other,
        }
    }

    /// completed, failed and cancelled end a worker's life.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ChildStatus::Completed | ChildStatus::Failed | ChildStatus::Cancelled
        )
    }
}

/// The thresholds from the command line (SPEC §2); per-worker values override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub quiet: Option<Millis>,
    pub stale: Option<Millis>,
    pub timeout: Option<Millis>,
    pub stuck: Option<Millis>,
    pub max_runtime: Option<Millis>,
    pub launch_timeout: Option<Millis>,
    pub max_clock_skew: Millis,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            quiet: None,
            stale: None,
            timeout: None,
            stuck: None,
            max_runtime: None,
            launch_timeout: None,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW_MS,
        }
    }
}

impl Thresholds {
    /// The command line's own stale and timeout, with the defaults; `config` checks their
    /// order (a usage error when out of order).
    pub fn command_line_stale(&self) -> Millis {
        self.stale.unwrap_or(DEFAULT_STALE_MS)
    }
}

/// The thresholds in force for one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub quiet: Millis,
    pub stale: Millis,
    pub timeout: Millis,
}

/// A warning code on a record (short, stable, for `jq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    ClockSkew,
    NoProgressBaseline,
    UnknownStatus,
    InvalidThreshold,
    InvalidProcessId,
    InvalidFingerprint,
    /// The wall clock was stepped since the identity anchor: window verdicts are
    /// `unverifiable` (SPEC §3.1).
    ClockStep,
    /// The recorded launch is later than the first sign of life; it was ignored.
    LaunchAfterStart,
    /// A field with the wrong JSON type, by its dotted path.
    WrongType(String),
    /// A timestamp that is not RFC 3339, by its dotted path.
    InvalidTimestamp(&'static str),
    /// The worker's stream is another file than the one first seen (SPEC §3.2).
    StreamReplaced,
    /// The worker's stream was seen once and is gone (SPEC §3.2).
    StreamMissing,
    /// The document's owner could not read the worker's stream (SPEC §1.3).
    StreamNotReadableByOwner,
}

impl Warning {
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Warning::ClockSkew => "clock_skew".into(),
            Warning::NoProgressBaseline => "no_progress_baseline".into(),
            Warning::UnknownStatus => "unknown_status".into(),
            Warning::InvalidThreshold => "invalid_threshold".into(),
            Warning::InvalidProcessId => "invalid_process_id".into(),
            Warning::InvalidFingerprint => "invalid_fingerprint".into(),
            Warning::ClockStep => "clock_step".into(),
            Warning::LaunchAfterStart => "launch_after_start".into(),
            Warning::WrongType(path) => format!("wrong_type:{path}").into(),
            Warning::InvalidTimestamp(path) => format!("invalid_timestamp:{path}").into(),
            Warning::StreamReplaced => "stream_replaced".into(),
            Warning::StreamMissing => "stream_missing".into(),
            Warning::StreamNotReadableByOwner => "not_readable_by_owner".into(),
        }
    }
}

/// What the shell learned about the worker's process, for a running delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessFacts {
    /// Not looked at: the delegation is not running (or is reclaimed).
    NotChecked,
    /// No `process_id` recorded.
    NoPid,
    Invalid(InvalidPid),
    Checked {
        pid: Pid,
        observation: Observation,
        identity: Identity,
    },
}

impl ProcessFacts {
    pub fn identity(&self) -> Option<Identity> {
        match self {
            ProcessFacts::Checked { identity, .. } => Some(*identity),
            _ => None,
        }
    }

    /// Whether the worker's own process is alive: `None` when not checked.
    pub fn alive(&self) -> Option<bool> {
        self.identity().and_then(Identity::worker_alive)
    }
}

/// The timestamps of `worker_lifecycle`, parsed once. Invalid ones are `None` and listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Times {
    pub queued_at: Option<Millis>,
    pub launch_requested_at: Option<Millis>,
    pub started_at: Option<Millis>,
    pub process_started_at: Option<Millis>,
    pub process_last_seen_at: Option<Millis>,
    pub last_progress_at: Option<Millis>,
    pub returned_at: Option<Millis>,
    pub stale_at: Option<Millis>,
    pub timed_out_at: Option<Millis>,
    /// Paths of timestamps that are present but not RFC 3339.
    pub invalid: Vec<&'static str>,
}

impl Times {
    pub fn of(lifecycle: Option<&Lifecycle<'_>>) -> Times {
        let mut times = Times::default();
        let Some(lifecycle) = lifecycle else {
            return times;
        };
        let mut read = |field: &Field<Text<'_>>, path: &'static str| -> Option<Millis> {
            let text = field.str()?;
            let parsed = time::parse_rfc3339(text);
            if parsed.is_none() {
                times.invalid.push(path);
            }
            parsed
        };
        let queued_at = read(&lifecycle.queued_at, "worker_lifecycle.queued_at");
        let launch_requested_at = read(
            &lifecycle.launch_requested_at,
            "worker_lifecycle.launch_requested_at",
        );
        let started_at = read(&lifecycle.started_at, "worker_lifecycle.started_at");
        let process_started_at = read(
            &lifecycle.process_started_at,
            "worker_lifecycle.process_started_at",
        );
        let process_last_seen_at = read(
            &lifecycle.process_last_seen_at,
            "worker_lifecycle.process_last_seen_at",
        );
        let last_progress_at = read(
            &lifecycle.last_progress_at,
            "worker_lifecycle.last_progress_at",
        );
        let returned_at = read(&lifecycle.returned_at, "worker_lifecycle.returned_at");
        let stale_at = read(&lifecycle.stale_at, "worker_lifecycle.stale_at");
        let timed_out_at = read(&lifecycle.timed_out_at, "worker_lifecycle.timed_out_at");
        Times {
            queued_at,
            launch_requested_at,
            started_at,
            process_started_at,
            process_last_seen_at,
            last_progress_at,
            returned_at,
            stale_at,
            timed_out_at,
            invalid: times.invalid,
        }
    }

    /// The progress baseline and the field it came from (SPEC §2).
    pub fn baseline(&self) -> Option<(Millis, &'static str)> {
        [
            (self.last_progress_at, "last_progress_at"),
            (self.started_at, "started_at"),
            (self.process_started_at, "process_started_at"),
            (self.launch_requested_at, "launch_requested_at"),
            (self.queued_at, "queued_at"),
        ]
        .into_iter()
        .find_map(|(at, name)| at.map(|at| (at, name)))
    }

    /// The bounds on when the worker's process can have started (SPEC §3.1): the anchor E
    /// and upper bound U kept in `identity_anchor_at` / `identity_upper_bound_at` when both
    /// are there, else computed from the recorded signs of life; and the launch. The stream,
    /// clock and namespace parts are the shell's to fill in.
    pub fn evidence(&self, lifecycle: Option<&Lifecycle<'_>>) -> Evidence {
        let (anchor, upper) = match identity_anchor(lifecycle, self) {
            Some((anchor, upper)) => (Some(anchor), Some(upper)),
            None => (None, None),
        };
        Evidence {
            anchor,
            upper,
            launch: self.launch_requested_at.or(self.queued_at),
            ..Evidence::default()
        }
    }
}

/// How long an RFC 3339 text stands for: a whole second without a fraction, 100 ms with one
/// digit, 10 ms with two, and 1 ms (flatline's resolution) with three or more.
pub fn precision_ms(text: &str) -> Millis {
    let digits = text
        .as_bytes()
        .get(19..)
        .filter(|rest| rest.first() == Some(&b'.'))
        .map_or(0, |rest| {
            rest[1..].iter().take_while(|b| b.is_ascii_digit()).count()
        });
    match digits {
        0 => 1_000,
        1 => 100,
        2 => 10,
        _ => 1,
    }
}

/// The identity window's anchor E and upper bound U (before the slack), SPEC §3.1. Kept ones
/// (`identity_anchor_at` and `identity_upper_bound_at`, written by the first writing run)
/// win: a `last_progress_at` flatline wrote later never moves them. Else E is the earliest
/// recorded sign of life and U the tightest end of the signs' precision intervals (each
/// sign's own interval; `process_started_at` may be 1 s early).
pub fn identity_anchor(
    lifecycle: Option<&Lifecycle<'_>>,
    times: &Times,
) -> Option<(Millis, Millis)> {
    let lifecycle = lifecycle?;
    let kept = |field: &Field<Text<'_>>| field.str().and_then(time::parse_rfc3339);
    if let (Some(anchor), Some(upper)) = (
        kept(&lifecycle.identity_anchor_at),
        kept(&lifecycle.identity_upper_bound_at),
    ) && anchor <= upper
    {
        return Some((anchor, upper));
    }
    // Invalid timestamps are absent in `times`; their texts are not looked at.
    anchor_of_texts(
        times
            .process_started_at
            .and(lifecycle.process_started_at.str()),
        times.started_at.and(lifecycle.started_at.str()),
        times.last_progress_at.and(lifecycle.last_progress_at.str()),
    )
}

/// E and U (before the slack) from the texts of the signs of life; invalid ones are skipped.
pub fn anchor_of_texts(
    process_started_at: Option<&str>,
    started_at: Option<&str>,
    last_progress_at: Option<&str>,
) -> Option<(Millis, Millis)> {
    let signs = [
        (process_started_at, identity::PROCESS_STARTED_EARLY_MS),
        (started_at, 0),
        (last_progress_at, 0),
    ];
    let mut anchor: Option<Millis> = None;
    let mut upper: Option<Millis> = None;
    for (text, early) in signs {
        let Some(text) = text else {
            continue;
        };
        let Some(at) = time::parse_rfc3339(text) else {
            continue;
        };
        let end = at.saturating_add(precision_ms(text)).saturating_add(early);
        anchor = Some(anchor.map_or(at, |a| a.min(at)));
        upper = Some(upper.map_or(end, |u| u.min(end)));
    }
    Some((anchor?, upper?))
}

/// A `process_fingerprint` that is recorded but incomplete or of the wrong type: it is
/// ignored, with the warning `invalid_fingerprint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnusableFingerprint;

/// The recorded fingerprint when it is complete and well-typed.
pub fn recorded_fingerprint(
    lifecycle: Option<&Lifecycle<'_>>,
) -> Result<Option<Fingerprint>, UnusableFingerprint> {
    let Some(field) = lifecycle.map(|l| &l.process_fingerprint) else {
        return Ok(None);
    };
    let record = match field {
        Field::Absent | Field::Null => return Ok(None),
        Field::Wrong(_) => return Err(UnusableFingerprint),
        Field::Value(record) => record,
    };
    let start_ticks = record
        .start_ticks
        .value()
        .and_then(|v| u64::try_from(*v).ok())
        .ok_or(UnusableFingerprint)?;
    let boot_id = record
        .boot_id
        .str()
        .filter(|s| !s.is_empty())
        .ok_or(UnusableFingerprint)?;
    let pid_ns = record
        .pid_ns
        .value()
        .and_then(|v| u64::try_from(*v).ok())
        .ok_or(UnusableFingerprint)?;
    // Optional: where the kernel had no pidfs inode none was recorded.
    let pidfd_ino = match &record.pidfd_ino {
        Field::Absent | Field::Null => None,
        Field::Value(value) => Some(u64::try_from(*value).map_err(|_| UnusableFingerprint)?),
        Field::Wrong(_) => return Err(UnusableFingerprint),
    };
    Ok(Some(Fingerprint {
        start_ticks,
        boot_id: boot_id.to_string(),
        pid_ns,
        pidfd_ino,
    }))
}

/// The identity of a stream file: what `worker_lifecycle.raw_events_inode` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInode {
    pub dev: u64,
    pub ino: u64,
}

/// The stream inode recorded in the document, when complete and well-typed.
pub fn recorded_stream_inode(lifecycle: Option<&Lifecycle<'_>>) -> Option<StreamInode> {
    let record = lifecycle?.raw_events_inode.value()?;
    Some(StreamInode {
        dev: record.dev.value().and_then(|v| u64::try_from(*v).ok())?,
        ino: record.ino.value().and_then(|v| u64::try_from(*v).ok())?,
    })
}

/// What the shell saw of a running worker's event stream: a stat as the document's owner,
/// never a read (SPEC §2, §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFacts {
    /// Not looked at (not running, no stream path, or a caller that does not look).
    #[default]
    NotLooked,
    /// No file at the stream's path.
    Missing,
    Present {
        inode: StreamInode,
        mtime_ms: Millis,
    },
    /// There, but refused (`open_named`'s rules): no evidence. `not_readable_by_owner`
    /// says whether the owner could not read it.
    Unusable { not_readable_by_owner: bool },
}

/// The stream against the inode recorded on first sight (SPEC §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCheck {
    /// Nothing recorded yet, or nothing seen now: no verdict.
    Unchecked,
    /// The recorded file.
    Same,
    /// Another file: never evidence, never a result.
    Replaced(StreamInode),
    /// Recorded once, gone now.
    Missing,
}

pub fn stream_check(recorded: Option<StreamInode>, facts: &StreamFacts) -> StreamCheck {
    match (recorded, facts) {
        (Some(recorded), StreamFacts::Present { inode, .. }) if *inode == recorded => {
            StreamCheck::Same
        }
        (Some(_), StreamFacts::Present { inode, .. }) => StreamCheck::Replaced(*inode),
        (Some(_), StreamFacts::Missing) => StreamCheck::Missing,
        _ => StreamCheck::Unchecked,
    }
}

/// The progress baseline (SPEC §2): the recorded one, moved to the stream's mtime when the
/// stream was modified after it. An mtime ahead of `now` within the allowed skew counts as
/// now; further ahead it is no evidence (`Err(())`: warn `clock_skew`, the recorded
/// baseline stands). A replaced stream is never evidence.
pub fn progress_baseline(
    times: &Times,
    stream: &StreamFacts,
    check: StreamCheck,
    now: Millis,
    max_clock_skew: Millis,
) -> (Option<(Millis, &'static str)>, Result<(), ()>) {
    let recorded = times.baseline();
    let mtime = match (stream, check) {
        (_, StreamCheck::Replaced(_)) => return (recorded, Ok(())),
        (StreamFacts::Present { mtime_ms, .. }, _) => *mtime_ms,
        _ => return (recorded, Ok(())),
    };
    if mtime > now.saturating_add(max_clock_skew) {
        return (recorded, Err(()));
    }
    let mtime = mtime.min(now);
    match recorded {
        Some((at, _)) if at >= mtime => (recorded, Ok(())),
        _ => (Some((mtime, "stream_mtime")), Ok(())),
    }
}

/// Why a worker is stale or timed out: its progress, its run time or its launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Progress,
    Runtime(Millis),
    Launch(Millis),
}

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

fn positive_threshold(field: &Field<Int>, warnings: &mut Vec<Warning>) -> Option<Millis> {
    match field.value() {
        Some(&value) if value > 0 => Some(Millis::try_from(value).unwrap_or(Millis::MAX)),
        Some(_) => {
            push_once(warnings, Warning::InvalidThreshold);
            None
        }
        None => None,
    }
}

fn push_once(warnings: &mut Vec<Warning>, warning: Warning) {
    if !warnings.contains(&warning) {
        warnings.push(warning);
    }
}

/// The thresholds for one worker (SPEC §2): per-worker, else command line, else defaults;
/// `--stuck-after` caps; out-of-order per-worker values are clamped with a warning.
pub fn effective_thresholds(
    lifecycle: Option<&Lifecycle<'_>>,
    policy: &Thresholds,
    warnings: &mut Vec<Warning>,
) -> Effective {
    let (own_quiet, own_stale, own_timeout) = match lifecycle {
        Some(l) => (
            positive_threshold(&l.quiet_after_ms, warnings),
            positive_threshold(&l.stale_after_ms, warnings),
            positive_threshold(&l.timeout_after_ms, warnings),
        ),
        None => (None, None, None),
    };
    let mut stale = own_stale.or(policy.stale).unwrap_or(DEFAULT_STALE_MS);
    let mut timeout = own_timeout
        .or(policy.timeout)
        .unwrap_or_else(|| stale.saturating_mul(2));
    if let Some(stuck) = policy.stuck {
        stale = stale.min(stuck);
        timeout = timeout.min(stuck);
    }
    if timeout < stale {
        timeout = stale;
        if own_stale.is_some() || own_timeout.is_some() {
            push_once(warnings, Warning::InvalidThreshold);
        }
    }
    let mut quiet = own_quiet.or(policy.quiet).unwrap_or(stale / 2);
    if quiet > stale {
        quiet = stale;
        if own_quiet.is_some() || own_stale.is_some() {
            push_once(warnings, Warning::InvalidThreshold);
        }
    }
    Effective {
        quiet: quiet.max(1),
        stale,
        timeout,
    }
}

fn work_kind<'a>(doc: &'a Delegation<'a>) -> &'a str {
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

fn summary_for(state: State, reclaimed: bool, next: NextAction) -> &'static str {
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

fn transition_for(state: State) -> &'static str {
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
    match check {
        StreamCheck::Replaced(_) => push_once(&mut warnings, Warning::StreamReplaced),
        StreamCheck::Missing => push_once(&mut warnings, Warning::StreamMissing),
        StreamCheck::Same | StreamCheck::Unchecked => {}
    }
    if stream
        == (StreamFacts::Unusable {
            not_readable_by_owner: true,
        })
    {
        push_once(&mut warnings, Warning::StreamNotReadableByOwner);
    }
    if stream_skew.is_err() {
        push_once(&mut warnings, Warning::ClockSkew);
    }
    // Age of the progress baseline; `None` when there is none or it is too far ahead.
    let (elapsed, skew) = match baseline {
        None => (None, None),
        Some((at, _)) if at > now.saturating_add(policy.max_clock_skew) => {
            (None, Some(Warning::ClockSkew))
        }
        Some((at, _)) if at > now => (Some(0), Some(Warning::ClockSkew)),
        Some((at, _)) => (Some(now - at), None),
    };

    let mut cause = Cause::Progress;
    let state = if reclaimed {
        lifecycle
            .and_then(|l| l.state.str())
            .and_then(State::parse)
            .unwrap_or(match child_status {
                ChildStatus::Completed => State::Returned,
                ChildStatus::Cancelled => State::Cancelled,
                _ => State::Failed,
            })
    } else {
        match child_status {
            ChildStatus::Running => {
                if let Some(warning) = skew {
                    push_once(&mut warnings, warning);
                }
                match elapsed {
                    None if baseline.is_none() => {
                        push_once(&mut warnings, Warning::NoProgressBaseline);
                        State::Unknown
                    }
                    None => State::Unknown,
                    Some(age) => {
                        // A stream written since the recorded baseline is a sign of a start.
                        let stream_seen = matches!(baseline, Some((_, "stream_mtime")));
                        let launching = is_launching(times, process.identity(), stream_seen);
                        running_state(age, times, now, policy, thresholds, launching, &mut cause)
                    }
                }
            }
            ChildStatus::Completed => State::Returned,
            ChildStatus::Failed => State::Failed,
            ChildStatus::Cancelled => State::Cancelled,
            ChildStatus::Queued => State::Queued,
            ChildStatus::Other => {
                push_once(&mut warnings, Warning::UnknownStatus);
                State::Unknown
            }
        }
    };

    // While its stream is missing a worker is not judged on its progress: the evidence is
    // gone, not necessarily the worker (SPEC §3.2). --max-runtime still applies.
    let state = match state {
        State::Stale | State::TimedOut
            if check == StreamCheck::Missing && cause == Cause::Progress =>
        {
            let runtime = times.started_at.map(|at| (now - at).max(0));
            match (policy.max_runtime, runtime) {
                (Some(limit), Some(runtime)) if runtime >= limit => {
                    cause = Cause::Runtime(runtime);
                    State::TimedOut
                }
                _ => State::RunningQuiet,
            }
        }
        state => state,
    };

    let reclaim_state = if reclaimed {
        ReclaimState::Reclaimed
    } else {
        match state {
            State::Stale | State::TimedOut => ReclaimState::ReclaimNeeded,
            State::Returned => ReclaimState::Resumable,
            _ => ReclaimState::NotNeeded,
        }
    };

    let baseline_at = baseline.map(|(at, _)| at);
    let stale_at = match (state, reclaimed) {
        (State::Stale, false) => times.stale_at.or(baseline_at),
        _ => times.stale_at,
    };
    let timed_out_at = match (state, reclaimed) {
        (State::TimedOut, false) => times.timed_out_at.or(baseline_at),
        _ => times.timed_out_at,
    };

    let process_id = lifecycle.and_then(|l| l.process_id.value().copied());
    if let ProcessFacts::Invalid(_) = process {
        push_once(&mut warnings, Warning::InvalidProcessId);
    }
    if recorded_fingerprint(lifecycle).is_err() {
        push_once(&mut warnings, Warning::InvalidFingerprint);
    }
    let identity = process.identity();
    let process_gone = matches!(identity, Some(Identity::Gone | Identity::Reused));

    let next_action = if reclaimed {
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
    };

    let age = elapsed.unwrap_or(0);
    let (recovery_action, recovery_reason) = if reclaimed {
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
    };

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
    }
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
fn launch_at(times: &Times) -> Option<Millis> {
    times.launch_requested_at.or(times.queued_at)
}

fn running_state(
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

fn reclaim_reason(
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

/// The counts of one `--summary` row (SPEC §6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub total: u64,
    pub active: u64,
    pub queued: u64,
    pub launching: u64,
    pub running: u64,
    pub running_quiet: u64,
    pub running_busy: u64,
    pub returned: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub stale: u64,
    pub timed_out: u64,
    pub reclaim_needed: u64,
    pub reclaimed: u64,
}

impl Tally {
    pub fn add(&mut self, view: &View<'_>) {
        let reclaimed = view.reclaim_state == ReclaimState::Reclaimed;
        self.total += 1;
        if !view.child_status.is_terminal() && !reclaimed {
            self.active += 1;
        }
        match view.state {
            State::Queued => self.queued += 1,
            State::Launching => self.launching += 1,
            State::RunningActive => self.running += 1,
            State::RunningQuiet => self.running_quiet += 1,
            State::RunningBusy => self.running_busy += 1,
            State::Returned => self.returned += 1,
            State::Stale if !reclaimed => self.stale += 1,
            State::TimedOut if !reclaimed => self.timed_out += 1,
            _ => {}
        }
        match view.child_status {
            ChildStatus::Completed => self.completed += 1,
            ChildStatus::Failed => self.failed += 1,
            ChildStatus::Cancelled => self.cancelled += 1,
            _ => {}
        }
        match view.reclaim_state {
            ReclaimState::ReclaimNeeded => self.reclaim_needed += 1,
            ReclaimState::Reclaimed => self.reclaimed += 1,
            _ => {}
        }
    }

    /// The counts in their printed order.
    pub fn fields(&self) -> [(&'static str, u64); 15] {
        [
            ("total", self.total),
            ("active", self.active),
            ("queued", self.queued),
            ("launching", self.launching),
            ("running", self.running),
            ("running_quiet", self.running_quiet),
            ("running_busy", self.running_busy),
            ("returned", self.returned),
            ("completed", self.completed),
            ("failed", self.failed),
            ("cancelled", self.cancelled),
            ("stale", self.stale),
            ("timed_out", self.timed_out),
            ("reclaim_needed", self.reclaim_needed),
            ("reclaimed", self.reclaimed),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::test_host;
    use crate::model::parse_delegation;

    const NOW: Millis = 1_795_334_400_000; // 2026-11-22T08:00:00.000Z

    fn at(offset_ms: Millis) -> String {
        time::format_rfc3339(NOW + offset_ms)
    }

    fn running(lifecycle: &str) -> String {
        format!(
            r#"{{"delegation_id":"d1","task_card_id":"t1","child_agent":{{"status":"running"}},"worker_lifecycle":{{{lifecycle}}}}}"#
        )
    }

    fn view_of(text: &str, policy: &Thresholds, process: &ProcessFacts) -> (State, View<'static>) {
        let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
        let doc: &'static Delegation<'static> =
            Box::leak(Box::new(parse_delegation(leaked.as_bytes()).unwrap()));
        let times = Times::of(doc.worker_lifecycle.value());
        let view = view(doc, &times, NOW, policy, process);
        (view.state, view)
    }

    fn state_of(lifecycle: &str) -> View<'static> {
        view_of(
            &running(lifecycle),
            &Thresholds::default(),
            &ProcessFacts::NoPid,
        )
        .1
    }

    #[test]
    fn running_states_by_progress_age() {
        let progress = |ago: Millis| state_of(&format!(r#""last_progress_at":"{}""#, at(-ago)));
        assert_eq!(progress(0).state, State::RunningActive);
        assert_eq!(progress(22_499).state, State::RunningActive);
        assert_eq!(progress(22_500).state, State::RunningQuiet);
        assert_eq!(progress(44_999).state, State::RunningQuiet);
        let stale = progress(45_000);
        assert_eq!(stale.state, State::Stale);
        assert_eq!(stale.reclaim_state, ReclaimState::ReclaimNeeded);
        assert_eq!(stale.stale_at, Some(NOW - 45_000));
        assert_eq!(stale.next_action, NextAction::Reclaim);
        assert_eq!(stale.transition, "stalled");
        assert_eq!(
            stale.recovery_reason,
            "worker progress age 45000 ms reached the stale threshold 45000 ms"
        );
        let timed_out = progress(90_000);
        assert_eq!(
            timed_out.state,
            State::TimedOut,
            "default timeout is 2 x stale"
        );
        assert_eq!(timed_out.timed_out_at, Some(NOW - 90_000));
        assert_eq!(timed_out.transition, "reclaimable");
        assert_eq!(
            timed_out.recovery_reason,
            "worker progress age 90000 ms reached the timeout threshold 90000 ms"
        );
        assert_eq!(progress(89_999).state, State::Stale);
        assert!(stale.needs_attention());
        assert!(!progress(0).needs_attention());
    }

    #[test]
    fn stored_stale_at_wins_over_the_baseline() {
        let view = state_of(&format!(
            r#""last_progress_at":"{}","stale_at":"{}""#,
            at(-50_000),
            at(-4_000)
        ));
        assert_eq!(view.stale_at, Some(NOW - 4_000));
    }

    #[test]
    fn the_baseline_falls_back_in_order() {
        let view = state_of(&format!(
            r#""started_at":"{}","process_started_at":"{}","queued_at":"{}""#,
            at(-10_000),
            at(-20_000),
            at(-30_000)
        ));
        assert_eq!(view.elapsed_since_progress_ms, Some(10_000));
        assert_eq!(view.progress_baseline, Some("started_at"));
        let queued_only = state_of(&format!(r#""queued_at":"{}""#, at(-50_000)));
        assert_eq!(queued_only.progress_baseline, Some("queued_at"));
        assert_eq!(queued_only.state, State::Stale);
    }

    #[test]
    fn no_baseline_is_unknown() {
        let view = state_of(r#""process_id":null"#);
        assert_eq!(view.state, State::Unknown);
        assert_eq!(view.warnings, [Warning::NoProgressBaseline]);
        assert_eq!(view.elapsed_since_progress_ms, None);
        assert!(view.needs_attention());
        assert_eq!(view.next_action, NextAction::AwaitWorker);
    }

    #[test]
    fn clock_skew_within_the_limit_is_age_zero() {
        let view = state_of(&format!(r#""last_progress_at":"{}""#, at(30_000)));
        assert_eq!(view.state, State::RunningActive);
        assert_eq!(view.elapsed_since_progress_ms, Some(0));
        assert_eq!(view.warnings, [Warning::ClockSkew]);
        let far = state_of(&format!(r#""last_progress_at":"{}""#, at(86_400_000)));
        assert_eq!(far.state, State::Unknown);
        assert_eq!(far.elapsed_since_progress_ms, None);
        assert_eq!(far.warnings, [Warning::ClockSkew]);
        assert_eq!(far.reclaim_state, ReclaimState::NotNeeded);
    }

    #[test]
    fn launching_until_started() {
        let view = state_of(&format!(r#""launch_requested_at":"{}""#, at(-1_000)));
        assert_eq!(view.state, State::Launching);
        let policy = Thresholds {
            launch_timeout: Some(1_000),
            ..Thresholds::default()
        };
        let (state, timed) = view_of(
            &running(&format!(r#""launch_requested_at":"{}""#, at(-1_000))),
            &policy,
            &ProcessFacts::NoPid,
        );
        assert_eq!(state, State::Stale);
        assert!(timed.recovery_reason.contains("launch timeout 1000 ms"));
    }

    #[test]
    fn the_launch_timeout_alone_judges_a_launching_worker() {
        let policy = Thresholds {
            launch_timeout: Some(600_000),
            ..Thresholds::default()
        };
        let launch = |ago: Millis, more: &str| {
            view_of(
                &running(&format!(r#""launch_requested_at":"{}"{more}"#, at(-ago))),
                &policy,
                &ProcessFacts::NoPid,
            )
        };
        // Far past the stale and timeout thresholds, but under the launch timeout: launching.
        let (state, _) = launch(300_000, "");
        assert_eq!(state, State::Launching);
        let (state, _) = launch(599_999, "");
        assert_eq!(state, State::Launching);
        let (state, view) = launch(600_000, "");
        assert_eq!(state, State::Stale);
        assert_eq!(
            view.recovery_reason,
            "launch took 600000 ms, over the launch timeout 600000 ms"
        );
        // queued_at stands in for launch_requested_at.
        let (state, _) = view_of(
            &running(&format!(r#""queued_at":"{}""#, at(-600_000))),
            &policy,
            &ProcessFacts::NoPid,
        );
        assert_eq!(state, State::Stale);
        // Evidence of a start ends the launch: the worker then ages like any running one.
        for evidence in ["process_started_at", "last_progress_at"] {
            let more = format!(r#","{evidence}":"{}""#, at(-300_000));
            let (state, _) = launch(300_000, &more);
            assert_eq!(state, State::TimedOut, "{evidence}");
            let more = format!(r#","{evidence}":"{}""#, at(-1_000));
            let (state, _) = launch(700_000, &more);
            assert_eq!(state, State::RunningActive, "{evidence}");
        }
        // So does a verified process.
        let host = crate::core::identity::test_host();
        let pid = crate::core::identity::validate_found(4242, &host).unwrap();
        let verified = ProcessFacts::Checked {
            pid,
            observation: Observation::Exited,
            identity: Identity::Verified,
        };
        let (state, _) = view_of(
            &running(&format!(r#""launch_requested_at":"{}""#, at(-300_000))),
            &policy,
            &verified,
        );
        assert_eq!(state, State::TimedOut);
        // Without --launch-timeout a launching worker ages like a running one.
        let (state, _) = view_of(
            &running(&format!(r#""launch_requested_at":"{}""#, at(-50_000))),
            &Thresholds::default(),
            &ProcessFacts::NoPid,
        );
        assert_eq!(state, State::Stale);
        let (state, _) = view_of(
            &running(&format!(r#""launch_requested_at":"{}""#, at(-1_000))),
            &Thresholds::default(),
            &ProcessFacts::NoPid,
        );
        assert_eq!(state, State::Launching);
    }

    #[test]
    fn max_runtime_times_out_a_worker_that_still_progresses() {
        let policy = Thresholds {
            max_runtime: Some(3_600_000),
            ..Thresholds::default()
        };
        let (state, view) = view_of(
            &running(&format!(
                r#""started_at":"{}","last_progress_at":"{}""#,
                at(-3_600_000),
                at(-1)
            )),
            &policy,
            &ProcessFacts::NoPid,
        );
        assert_eq!(state, State::TimedOut);
        assert_eq!(
            view.recovery_reason,
            "worker run time 3600000 ms reached the max runtime 3600000 ms"
        );
    }

    #[test]
    fn thresholds_precedence_and_clamping() {
        let mut warnings = Vec::new();
        let defaults = effective_thresholds(None, &Thresholds::default(), &mut warnings);
        assert_eq!(
            defaults,
            Effective {
                quiet: 22_500,
                stale: 45_000,
                timeout: 90_000
            }
        );
        let command_line = Thresholds {
            stale: Some(10_000),
            ..Thresholds::default()
        };
        assert_eq!(
            effective_thresholds(None, &command_line, &mut warnings),
            Effective {
                quiet: 5_000,
                stale: 10_000,
                timeout: 20_000
            }
        );
        let stuck = Thresholds {
            stuck: Some(30_000),
            ..Thresholds::default()
        };
        assert_eq!(
            effective_thresholds(None, &stuck, &mut warnings),
            Effective {
                quiet: 15_000,
                stale: 30_000,
                timeout: 30_000
            }
        );
        assert!(warnings.is_empty());

        let text = br#"{"worker_lifecycle":{"quiet_after_ms":1000,"stale_after_ms":5000}}"#;
        let doc = parse_delegation(text).unwrap();
        let own = effective_thresholds(doc.worker_lifecycle.value(), &command_line, &mut warnings);
        assert_eq!(
            own,
            Effective {
                quiet: 1_000,
                stale: 5_000,
                timeout: 10_000
            }
        );
        let bad = br#"{"worker_lifecycle":{"quiet_after_ms":9000,"stale_after_ms":5000,"timeout_after_ms":4000}}"#;
        let doc = parse_delegation(bad).unwrap();
        let clamped =
            effective_thresholds(doc.worker_lifecycle.value(), &command_line, &mut warnings);
        assert_eq!(
            clamped,
            Effective {
                quiet: 5_000,
                stale: 5_000,
                timeout: 5_000
            }
        );
        assert_eq!(warnings, [Warning::InvalidThreshold]);
        let mut warnings = Vec::new();
        let zero = br#"{"worker_lifecycle":{"stale_after_ms":0}}"#;
        let doc = parse_delegation(zero).unwrap();
        assert_eq!(
            effective_thresholds(
                doc.worker_lifecycle.value(),
                &Thresholds::default(),
                &mut warnings
            )
            .stale,
            45_000
        );
        assert_eq!(warnings, [Warning::InvalidThreshold]);
    }

    #[test]
    fn per_worker_quiet_after() {
        let view = state_of(&format!(
            r#""last_progress_at":"{}","quiet_after_ms":1000"#,
            at(-1_000)
        ));
        assert_eq!(view.state, State::RunningQuiet);
        assert_eq!(view.thresholds.quiet, 1_000);
        assert_eq!(view.recovery_action, Recovery::Poll);
    }

    #[test]
    fn every_child_status() {
        let cases = [
            (
                r#"{"child_agent":{"status":"completed"}}"#,
                State::Returned,
                ReclaimState::Resumable,
                NextAction::Advance,
                "completed",
            ),
            (
                r#"{"child_agent":{"status":"failed"}}"#,
                State::Failed,
                ReclaimState::NotNeeded,
                NextAction::None,
                "running",
            ),
            (
                r#"{"child_agent":{"status":"cancelled"}}"#,
                State::Cancelled,
                ReclaimState::NotNeeded,
                NextAction::None,
                "running",
            ),
            (
                r#"{"child_agent":{"status":"queued"}}"#,
                State::Queued,
                ReclaimState::NotNeeded,
                NextAction::AwaitWorker,
                "running",
            ),
            (
                r#"{}"#,
                State::Queued,
                ReclaimState::NotNeeded,
                NextAction::AwaitWorker,
                "running",
            ),
            (
                r#"{"executor":{"status":"completed"}}"#,
                State::Returned,
                ReclaimState::Resumable,
                NextAction::Advance,
                "completed",
            ),
        ];
        for (text, state, reclaim, next, transition) in cases {
            let (got, view) = view_of(text, &Thresholds::default(), &ProcessFacts::NotChecked);
            assert_eq!(got, state, "{text}");
            assert_eq!(view.reclaim_state, reclaim, "{text}");
            assert_eq!(view.next_action, next, "{text}");
            assert_eq!(view.transition, transition, "{text}");
            assert!(!view.needs_attention(), "{text}");
        }
        let (state, view) = view_of(
            r#"{"child_agent":{"status":"paused"}}"#,
            &Thresholds::default(),
            &ProcessFacts::NotChecked,
        );
        assert_eq!(state, State::Unknown);
        assert_eq!(view.warnings, [Warning::UnknownStatus]);
        assert_eq!(view.status, "paused");
        assert!(view.needs_attention());
    }

    #[test]
    fn reclaimed_keeps_its_state_and_needs_nothing() {
        let text = format!(
            r#"{{"child_agent":{{"status":"failed"}},"worker_lifecycle":{{"state":"timed_out","reclaim_state":"reclaimed","last_progress_at":"{}"}}}}"#,
            at(-500_000)
        );
        let (state, view) = view_of(&text, &Thresholds::default(), &ProcessFacts::NotChecked);
        assert_eq!(state, State::TimedOut);
        assert_eq!(view.reclaim_state, ReclaimState::Reclaimed);
        assert_eq!(view.next_action, NextAction::None);
        assert_eq!(view.recovery_action, Recovery::AskOperator);
        assert!(!view.needs_attention());
        let mut tally = Tally::default();
        tally.add(&view);
        assert_eq!(
            tally.timed_out, 0,
            "reclaimed workers do not count as timed out"
        );
        assert_eq!(tally.active, 0);
        assert_eq!(tally.reclaimed, 1);
        assert_eq!(tally.failed, 1);
    }

    #[test]
    fn a_gone_process_means_finalize() {
        let host = test_host();
        let pid = crate::core::identity::validate(&Field::Value(4242), &host)
            .unwrap()
            .unwrap();
        let facts = ProcessFacts::Checked {
            pid,
            observation: Observation::Exited,
            identity: Identity::Gone,
        };
        let (_, view) = view_of(
            &running(&format!(
                r#""process_id":4242,"last_progress_at":"{}""#,
                at(-1_000)
            )),
            &Thresholds::default(),
            &facts,
        );
        assert_eq!(view.next_action, NextAction::Finalize);
        assert_eq!(view.process_alive, Some(false));
        assert_eq!(view.process_identity, Some(Identity::Gone));
        assert!(view.needs_attention());
    }

    #[test]
    fn invalid_pids_and_wrong_types_are_reported() {
        let text = running(r#""process_id":"12","last_progress_at":7"#);
        let facts = ProcessFacts::Invalid(InvalidPid::NotAnInteger("a string"));
        let (state, view) = view_of(&text, &Thresholds::default(), &facts);
        assert_eq!(state, State::Unknown);
        assert_eq!(view.process_id, None);
        assert_eq!(
            view.warnings,
            [
                Warning::WrongType("worker_lifecycle.process_id".into()),
                Warning::WrongType("worker_lifecycle.last_progress_at".into()),
                Warning::NoProgressBaseline,
                Warning::InvalidProcessId
            ]
        );
        assert_eq!(
            view.malformed,
            [
                "worker_lifecycle.process_id is a string, expected an integer",
                "worker_lifecycle.last_progress_at is a number, expected a string"
            ]
        );
        assert!(view.needs_attention());
        let bad_time =
            state_of(r#""last_progress_at":"yesterday","started_at":"2026-11-22T07:59:59Z""#);
        assert_eq!(
            bad_time.warnings,
            [Warning::InvalidTimestamp(
                "worker_lifecycle.last_progress_at"
            )]
        );
        assert_eq!(bad_time.elapsed_since_progress_ms, Some(1_000));
    }

    #[test]
    fn work_kind_falls_back() {
        let (_, view) = view_of(
            r#"{"worker_request":{"work_kind":" review "},"worker_launch_evidence":{"work_kind":"x"}}"#,
            &Thresholds::default(),
            &ProcessFacts::NotChecked,
        );
        assert_eq!(view.work_kind, "review");
        let (_, view) = view_of(
            r#"{"work_kind":""}"#,
            &Thresholds::default(),
            &ProcessFacts::NotChecked,
        );
        assert_eq!(view.work_kind, "worker");
    }

    #[test]
    fn evidence_bounds() {
        let text = format!(
            r#"{{"worker_lifecycle":{{"queued_at":"{}","launch_requested_at":"{}","started_at":"{}","process_started_at":"{}","last_progress_at":"{}"}}}}"#,
            at(-50),
            at(-40),
            at(-20),
            at(-30),
            at(-10)
        );
        let doc = parse_delegation(text.as_bytes()).unwrap();
        let lifecycle = doc.worker_lifecycle.value();
        let evidence = Times::of(lifecycle).evidence(lifecycle);
        assert_eq!(evidence.anchor, Some(NOW - 30));
        // Millisecond timestamps: each sign's interval ends 1 ms later, process_started_at's
        // a second later still; the tightest wins (started_at's here).
        assert_eq!(evidence.upper, Some(NOW - 20 + 1));
        assert_eq!(evidence.launch, Some(NOW - 40));
    }

    #[test]
    fn the_anchor_comes_from_the_precision_of_the_signs_and_is_kept() {
        assert_eq!(precision_ms("2026-11-22T08:00:00Z"), 1_000);
        assert_eq!(precision_ms("2026-11-22T08:00:00.1Z"), 100);
        assert_eq!(precision_ms("2026-11-22T08:00:00.12Z"), 10);
        assert_eq!(precision_ms("2026-11-22T08:00:00.123Z"), 1);
        assert_eq!(precision_ms("2026-11-22T08:00:00.123456789+02:00"), 1);
        assert_eq!(precision_ms("2026-11-22T08:00:00+02:00"), 1_000);
        // A whole-second process_started_at may be a second early: U = t + 2 s.
        assert_eq!(
            anchor_of_texts(Some("2026-11-22T08:00:00Z"), None, None),
            Some((NOW, NOW + 2_000))
        );
        // The tightest bound of all signs; E the earliest.
        assert_eq!(
            anchor_of_texts(
                Some("2026-11-22T08:00:00Z"),
                Some("2026-11-22T08:00:00.500Z"),
                Some("2026-11-22T08:00:05Z")
            ),
            Some((NOW, NOW + 501))
        );
        assert_eq!(anchor_of_texts(None, Some("not a time"), None), None);
        // A kept anchor wins over the signs (a last_progress_at flatline wrote later).
        let text = format!(
            r#"{{"worker_lifecycle":{{"process_started_at":"{}","identity_anchor_at":"{}","identity_upper_bound_at":"{}"}}}}"#,
            at(-5_000),
            at(-9_000),
            at(-8_000)
        );
        let doc = parse_delegation(text.as_bytes()).unwrap();
        let lifecycle = doc.worker_lifecycle.value();
        let times = Times::of(lifecycle);
        assert_eq!(
            identity_anchor(lifecycle, &times),
            Some((NOW - 9_000, NOW - 8_000))
        );
    }

    #[test]
    fn fingerprints_must_be_complete() {
        let good = br#"{"worker_lifecycle":{"process_fingerprint":{"start_ticks":5,"boot_id":"b","pid_ns":7}}}"#;
        let doc = parse_delegation(good).unwrap();
        assert_eq!(
            recorded_fingerprint(doc.worker_lifecycle.value()),
            Ok(Some(Fingerprint {
                start_ticks: 5,
                boot_id: "b".into(),
                pid_ns: 7,
                pidfd_ino: None,
            }))
        );
        let partial = br#"{"worker_lifecycle":{"process_fingerprint":{"start_ticks":5}}}"#;
        let doc = parse_delegation(partial).unwrap();
        assert_eq!(
            recorded_fingerprint(doc.worker_lifecycle.value()),
            Err(UnusableFingerprint)
        );
    }

    #[test]
    fn summary_counts() {
        let mut tally = Tally::default();
        for lifecycle in [
            format!(r#""last_progress_at":"{}""#, at(0)),
            format!(r#""last_progress_at":"{}""#, at(-30_000)),
            format!(r#""last_progress_at":"{}""#, at(-50_000)),
            format!(r#""last_progress_at":"{}""#, at(-100_000)),
            format!(r#""launch_requested_at":"{}""#, at(0)),
        ] {
            tally.add(&state_of(&lifecycle));
        }
        for text in [r#"{"child_agent":{"status":"completed"}}"#, r#"{}"#] {
            tally.add(&view_of(text, &Thresholds::default(), &ProcessFacts::NotChecked).1);
        }
        assert_eq!(
            tally,
            Tally {
                total: 7,
                active: 6,
                queued: 1,
                launching: 1,
                running: 1,
                running_quiet: 1,
                running_busy: 0,
                returned: 1,
                completed: 1,
                failed: 0,
                cancelled: 0,
                stale: 1,
                timed_out: 1,
                reclaim_needed: 2,
                reclaimed: 0,
            }
        );
    }

    fn with_stream(lifecycle: &str, stream: StreamFacts, policy: &Thresholds) -> View<'static> {
        let text = running(lifecycle);
        let leaked: &'static str = Box::leak(text.into_boxed_str());
        let doc: &'static Delegation<'static> =
            Box::leak(Box::new(parse_delegation(leaked.as_bytes()).unwrap()));
        let times = Times::of(doc.worker_lifecycle.value());
        view_with_stream(doc, &times, NOW, policy, &ProcessFacts::NoPid, &stream)
    }

    const INODE: StreamInode = StreamInode { dev: 8, ino: 1234 };

    fn stream_at(offset_ms: Millis) -> StreamFacts {
        StreamFacts::Present {
            inode: INODE,
            mtime_ms: NOW + offset_ms,
        }
    }

    #[test]
    fn a_fresh_stream_moves_the_baseline() {
        let stale = format!(r#""last_progress_at":"{}""#, at(-600_000));
        let policy = Thresholds::default();
        let fresh = with_stream(&stale, stream_at(-1_000), &policy);
        assert_eq!(fresh.state, State::RunningActive);
        assert_eq!(fresh.progress_baseline, Some("stream_mtime"));
        assert_eq!(fresh.elapsed_since_progress_ms, Some(1_000));
        assert_eq!(
            fresh.last_progress_at,
            Some(NOW - 600_000),
            "the record stays"
        );
        assert!(fresh.warnings.is_empty(), "{:?}", fresh.warnings);
        // An older stream is no news: the recorded baseline stands.
        let old = with_stream(&stale, stream_at(-700_000), &policy);
        assert_eq!(old.state, State::TimedOut);
        assert_eq!(old.progress_baseline, Some("last_progress_at"));
        // No recorded baseline at all: the stream is one.
        let only = with_stream("", stream_at(-30_000), &policy);
        assert_eq!(only.state, State::RunningQuiet);
        assert_eq!(only.progress_baseline, Some("stream_mtime"));
        // Nothing looked at, nothing moved (the document-only view).
        let blind = with_stream(&stale, StreamFacts::NotLooked, &policy);
        assert_eq!(blind.state, State::TimedOut);
    }

    #[test]
    fn a_stream_from_the_future_counts_as_now_within_the_skew_and_not_beyond() {
        let stale = format!(r#""last_progress_at":"{}""#, at(-600_000));
        let policy = Thresholds::default();
        let near = with_stream(&stale, stream_at(60_000), &policy);
        assert_eq!(near.state, State::RunningActive);
        assert_eq!(near.elapsed_since_progress_ms, Some(0));
        assert_eq!(near.progress_baseline, Some("stream_mtime"));
        assert!(near.warnings.is_empty(), "{:?}", near.warnings);
        let far = with_stream(&stale, stream_at(60_001), &policy);
        assert_eq!(far.state, State::TimedOut, "not evidence");
        assert_eq!(far.progress_baseline, Some("last_progress_at"));
        assert_eq!(far.warnings, [Warning::ClockSkew]);
    }

    #[test]
    fn a_replaced_stream_is_no_evidence_and_needs_attention() {
        let recorded = format!(
            r#""last_progress_at":"{}","raw_events_inode":{{"dev":8,"ino":99}}"#,
            at(-600_000)
        );
        let policy = Thresholds::default();
        let replaced = with_stream(&recorded, stream_at(-1_000), &policy);
        assert_eq!(replaced.state, State::TimedOut);
        assert_eq!(replaced.progress_baseline, Some("last_progress_at"));
        assert_eq!(replaced.warnings, [Warning::StreamReplaced]);
        assert_eq!(Warning::StreamReplaced.code(), "stream_replaced");
        assert!(replaced.needs_attention());
        let same = format!(
            r#""last_progress_at":"{}","raw_events_inode":{{"dev":8,"ino":1234}}"#,
            at(-600_000)
        );
        let fresh = with_stream(&same, stream_at(-1_000), &policy);
        assert_eq!(fresh.state, State::RunningActive);
        assert!(!fresh.needs_attention());
    }

    #[test]
    fn a_missing_stream_needs_attention_and_defers_staleness_but_not_the_max_runtime() {
        let recorded = format!(
            r#""last_progress_at":"{}","started_at":"{}","raw_events_inode":{{"dev":8,"ino":1234}}"#,
            at(-600_000),
            at(-600_000)
        );
        let policy = Thresholds::default();
        let missing = with_stream(&recorded, StreamFacts::Missing, &policy);
        assert_eq!(missing.state, State::RunningQuiet);
        assert_eq!(missing.reclaim_state, ReclaimState::NotNeeded);
        assert_eq!(missing.warnings, [Warning::StreamMissing]);
        assert_eq!(Warning::StreamMissing.code(), "stream_missing");
        assert!(missing.needs_attention());
        let capped = Thresholds {
            max_runtime: Some(300_000),
            ..Thresholds::default()
        };
        let over = with_stream(&recorded, StreamFacts::Missing, &capped);
        assert_eq!(over.state, State::TimedOut);
        assert_eq!(over.reclaim_state, ReclaimState::ReclaimNeeded);
        // Never recorded: a stream that is not there yet is no news.
        let stale = format!(r#""last_progress_at":"{}""#, at(-600_000));
        let never = with_stream(&stale, StreamFacts::Missing, &policy);
        assert_eq!(never.state, State::TimedOut);
        assert!(never.warnings.is_empty());
    }

    #[test]
    fn a_stream_the_owner_cannot_read_is_no_evidence() {
        let stale = format!(r#""last_progress_at":"{}""#, at(-600_000));
        let refused = with_stream(
            &stale,
            StreamFacts::Unusable {
                not_readable_by_owner: true,
            },
            &Thresholds::default(),
        );
        assert_eq!(refused.state, State::TimedOut);
        assert_eq!(refused.warnings, [Warning::StreamNotReadableByOwner]);
        assert_eq!(
            Warning::StreamNotReadableByOwner.code(),
            "not_readable_by_owner"
        );
    }
}
