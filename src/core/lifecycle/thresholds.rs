//! The thresholds of one worker (SPEC §2): command line, per-worker overrides, defaults,
//! and the warnings a view carries.

use super::*;

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

pub(super) fn positive_threshold(
    field: &Field<Int>,
    warnings: &mut Vec<Warning>,
) -> Option<Millis> {
    match field.value() {
        Some(&value) if value > 0 => Some(Millis::try_from(value).unwrap_or(Millis::MAX)),
        Some(_) => {
            push_once(warnings, Warning::InvalidThreshold);
            None
        }
        None => None,
    }
}

pub(super) fn push_once(warnings: &mut Vec<Warning>, warning: Warning) {
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
