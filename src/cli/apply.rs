//! What each flag means: `apply` gives a parsed flag its place in `LowArgs`, with the value
//! checks of its kind; the groups of flags that belong to one feature have their own function.

use super::parse::*;
use super::*;
use crate::core::time;
use std::path::PathBuf;

/// Gives a flag its meaning. Every `FlagId` is handled here (the match is exhaustive).
pub(super) fn apply(
    low: &mut LowArgs,
    flag: &Flag,
    value: Option<String>,
) -> Result<(), UsageError> {
    let text = value.unwrap_or_default();
    match flag.id {
        FlagId::Format | FlagId::Now => apply_format_and_now(low, flag, &text)?,
        FlagId::QuietAfter => low.quiet_after = Some(positive_duration(flag, &text)?),
        FlagId::StaleAfter => low.stale_after = Some(positive_duration(flag, &text)?),
        FlagId::TimeoutAfter => low.timeout_after = Some(positive_duration(flag, &text)?),
        FlagId::StuckAfter => low.stuck_after = Some(positive_duration(flag, &text)?),
        FlagId::MaxRuntime => low.max_runtime = Some(positive_duration(flag, &text)?),
        FlagId::LaunchTimeout => low.launch_timeout = Some(positive_duration(flag, &text)?),
        FlagId::MaxClockSkew => low.max_clock_skew = Some(duration(flag, &text)?),
        FlagId::TaskCard | FlagId::State => apply_selection(low, flag, text)?,
        FlagId::Summary => low.summary = true,
        FlagId::Check => low.check = true,
        FlagId::Settle => low.settle = Some(duration(flag, &text)?),
        FlagId::DryRun => low.dry_run = true,
        FlagId::All => low.all = true,
        FlagId::AllowOutsidePaths => low.allow_outside_paths = true,
        FlagId::MaxStreamRead => {
            let bytes = parse_size(&text)
                .map_err(|message| UsageError(format!("--{}: {message}", flag.long)))?;
            if bytes < MIN_STREAM_READ {
                return Err(UsageError(format!(
                    "--{}: must be at least 2M (the 1M head and some tail)",
                    flag.long
                )));
            }
            low.max_stream_read = Some(bytes);
        }
        FlagId::Wait => low.wait = Some(duration(flag, &text)?),
        FlagId::LockGroup => low.lock_group = Some(non_empty(flag, text)?),
        FlagId::Deadline => low.deadline = Some(positive_duration(flag, &text)?),
        FlagId::Output => low.output = Some(PathBuf::from(non_empty(flag, text)?)),
        FlagId::Grace => low.grace = Some(duration(flag, &text)?),
        FlagId::KillWait => low.kill_wait = Some(duration(flag, &text)?),
        FlagId::OnlyProcess => low.only_process = true,
        FlagId::AllowForeignUid => low.allow_foreign_uid = true,
        FlagId::AllowNestedPidns => low.allow_nested_pidns = true,
        FlagId::IdentitySlack
        | FlagId::BusyCpu
        | FlagId::BusyIo
        | FlagId::BusyLimit
        | FlagId::ActivityWindow
        | FlagId::NoActivity
        | FlagId::MaxSpawnDelay
        | FlagId::HeartbeatStale
        | FlagId::HeartbeatDead
        | FlagId::RunId
        | FlagId::BeatStatus
        | FlagId::BeatName
        | FlagId::Every
        | FlagId::WhilePid => apply_process(low, flag, text)?,
        FlagId::Quiet => low.quiet = true,
        FlagId::RunDir
        | FlagId::Id
        | FlagId::Stream
        | FlagId::Stderr
        | FlagId::Stdin
        | FlagId::Tee
        | FlagId::NoWatch => apply_run(low, flag, text)?,
        FlagId::CheckUnit
        | FlagId::Delegation
        | FlagId::FinalizeAs
        | FlagId::Note
        | FlagId::Attention
        | FlagId::Force
        | FlagId::Watch
        | FlagId::Color => apply_operator(low, flag, text)?,
        FlagId::Help => low.help = true,
        FlagId::Version => low.version = true,
        FlagId::Generate => match (text.as_str(), Shell::parse(&text)) {
            ("man", _) => low.generate_man = true,
            ("schema", _) => low.generate_schema = true,
            (_, Some(shell)) => low.generate_completions = Some(shell),
            _ => {
                return Err(UsageError(format!(
                    "--generate: unknown target '{text}' (use {})",
                    GENERATE_TARGETS.join(", ")
                )));
            }
        },
    }
    Ok(())
}

/// `--format` and `--now`: a known format, an RFC 3339 instant.
fn apply_format_and_now(low: &mut LowArgs, flag: &Flag, text: &str) -> Result<(), UsageError> {
    match flag.id {
        FlagId::Format => {
            low.format = Some(Format::parse(text).ok_or_else(|| {
                UsageError(format!(
                    "--format: unknown format '{text}' (use text, ndjson, json, tsv or prometheus)"
                ))
            })?);
        }
        FlagId::Now => {
            low.now = Some(time::parse_rfc3339(text).ok_or_else(|| {
                UsageError(format!(
                    "--now: '{text}' is not an RFC 3339 timestamp (e.g. 2026-11-22T08:00:00Z)"
                ))
            })?);
        }
        _ => unreachable!("apply sends only --format and --now here"),
    }
    Ok(())
}

/// The flags of identity, activity evidence, heartbeats and `beat` (SPEC §3.1, §5, §11).
fn apply_process(low: &mut LowArgs, flag: &Flag, text: String) -> Result<(), UsageError> {
    match flag.id {
        FlagId::IdentitySlack => low.identity_slack = Some(duration(flag, &text)?),
        FlagId::BusyCpu => low.busy_cpu_bp = Some(parse_percent(flag, &text)?),
        FlagId::BusyIo => {
            let bytes = parse_size(&text)
                .map_err(|message| UsageError(format!("--{}: {message}", flag.long)))?;
            low.busy_io = Some(bytes);
        }
        FlagId::BusyLimit => low.busy_limit = Some(positive_duration(flag, &text)?),
        FlagId::ActivityWindow => low.activity_window = Some(positive_duration(flag, &text)?),
        FlagId::NoActivity => low.no_activity = true,
        FlagId::MaxSpawnDelay => low.max_spawn_delay = Some(duration(flag, &text)?),
        FlagId::HeartbeatStale => low.heartbeat_stale = Some(positive_duration(flag, &text)?),
        FlagId::HeartbeatDead => low.heartbeat_dead = Some(positive_duration(flag, &text)?),
        FlagId::RunId => low.run_id = Some(non_empty(flag, text)?),
        FlagId::BeatStatus => low.beat_status = Some(non_empty(flag, text)?),
        FlagId::BeatName => low.beat_name = Some(non_empty(flag, text)?),
        FlagId::Every => low.every = Some(positive_duration(flag, &text)?),
        FlagId::WhilePid => {
            low.while_pid = Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|pid| *pid > 0)
                    .ok_or_else(|| {
                        UsageError(format!("--while-pid: '{text}' is not a process id"))
                    })?,
            );
        }
        _ => unreachable!("apply sends only these flags here"),
    }
    Ok(())
}

/// The flags that select what is shown or acted on: `--task-card`, `--state`.
fn apply_selection(low: &mut LowArgs, flag: &Flag, text: String) -> Result<(), UsageError> {
    match flag.id {
        FlagId::TaskCard => {
            if text.is_empty() {
                return Err(UsageError("--task-card: the id is empty".into()));
            }
            low.task_cards.push(text);
        }
        FlagId::State => {
            for state in text.split(',') {
                let known = crate::core::lifecycle::STATES.contains(&state)
                    || crate::core::health::HEALTHS.contains(&state);
                if !known {
                    return Err(UsageError(format!(
                        "--state: unknown state '{state}' (states: {}; worker healths: {})",
                        crate::core::lifecycle::STATES.join(", "),
                        crate::core::health::HEALTHS.join(", ")
                    )));
                }
                low.states.push(state.to_string());
            }
        }
        _ => unreachable!("apply sends only these flags here"),
    }
    Ok(())
}

/// The flags of `flatline run` (SPEC §12).
fn apply_run(low: &mut LowArgs, flag: &Flag, text: String) -> Result<(), UsageError> {
    match flag.id {
        FlagId::RunDir => low.run.run_dir = Some(PathBuf::from(non_empty(flag, text)?)),
        FlagId::Id => {
            if !crate::model::safe_id(&text) {
                return Err(UsageError(format!(
                    "--id: '{}' is not a delegation id (letters, digits, '.', '_', '-'; at most 128)",
                    crate::core::text::escape_control(&text)
                )));
            }
            low.run.id = Some(text);
        }
        FlagId::Stream => low.run.stream = Some(PathBuf::from(non_empty(flag, text)?)),
        FlagId::Stderr => low.run.stderr = Some(PathBuf::from(non_empty(flag, text)?)),
        FlagId::Stdin => {
            low.run.stdin_inherit = match text.as_str() {
                "inherit" => true,
                "null" => false,
                _ => {
                    return Err(UsageError(format!(
                        "--stdin: '{}' is neither inherit nor null",
                        crate::core::text::escape_control(&text)
                    )));
                }
            }
        }
        FlagId::Tee => low.run.tee = true,
        FlagId::NoWatch => low.run.no_watch = true,
        _ => unreachable!("apply sends only run's flags here"),
    }
    Ok(())
}

/// The flags of the operator's tools (SPEC §13).
fn apply_operator(low: &mut LowArgs, flag: &Flag, text: String) -> Result<(), UsageError> {
    match flag.id {
        FlagId::CheckUnit => low.check_unit = Some(PathBuf::from(non_empty(flag, text)?)),
        FlagId::Delegation => {
            if !crate::model::safe_id(&text) {
                return Err(UsageError(format!(
                    "--delegation: '{}' is not a delegation file name (letters, digits, '.', '_' and '-', at most 128)",
                    crate::core::text::escape_control(&text)
                )));
            }
            low.delegations.push(text);
        }
        FlagId::FinalizeAs => {
            if !matches!(text.as_str(), "failed" | "cancelled") {
                return Err(UsageError(format!(
                    "--as: '{}' is not failed or cancelled",
                    crate::core::text::escape_control(&text)
                )));
            }
            low.finalize_as = Some(text);
        }
        FlagId::Note => low.note = Some(non_empty(flag, text)?),
        FlagId::Attention => low.attention = true,
        FlagId::Force => low.force = true,
        FlagId::Watch => low.watch = Some(positive_duration(flag, &text)?),
        FlagId::Color => {
            if !matches!(text.as_str(), "auto" | "always" | "never") {
                return Err(UsageError(format!(
                    "--color: '{}' is not auto, always or never",
                    crate::core::text::escape_control(&text)
                )));
            }
            low.color = Some(text);
        }
        _ => unreachable!("apply sends only the operator's flags here"),
    }
    Ok(())
}
