//! The parser: only what was typed (`LowArgs`), checked against the flag table.

use super::*;
use crate::core::time::{self, Millis};
use std::ffi::OsString;
use std::path::PathBuf;

use super::apply::apply;

pub use crate::output::Format;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Run(Command),
    Help(Option<Command>),
    Version,
    Man,
    /// `--generate schema`: the records' JSON Schema.
    Schema,
    /// `--generate bash|zsh|fish`.
    Completions(Shell),
    /// No command: the usage goes to stderr, exit 2.
    Usage,
}

/// Only what was typed, validated for syntax; `config` resolves it.
#[derive(Debug, Clone, Default)]
pub struct LowArgs {
    pub command: Option<Command>,
    pub operands: Vec<OsString>,
    pub help: bool,
    pub version: bool,
    pub generate_man: bool,
    /// `--generate schema`.
    pub generate_schema: bool,
    /// `--generate bash|zsh|fish`.
    pub generate_completions: Option<Shell>,
    pub format: Option<Format>,
    pub now: Option<Millis>,
    pub quiet_after: Option<Millis>,
    pub stale_after: Option<Millis>,
    pub timeout_after: Option<Millis>,
    pub stuck_after: Option<Millis>,
    pub max_runtime: Option<Millis>,
    pub launch_timeout: Option<Millis>,
    pub max_clock_skew: Option<Millis>,
    pub task_cards: Vec<String>,
    pub states: Vec<String>,
    pub summary: bool,
    pub check: bool,
    pub settle: Option<Millis>,
    pub dry_run: bool,
    pub all: bool,
    pub allow_outside_paths: bool,
    pub max_stream_read: Option<u64>,
    pub wait: Option<Millis>,
    pub lock_group: Option<String>,
    pub deadline: Option<Millis>,
    pub output: Option<PathBuf>,
    pub grace: Option<Millis>,
    pub kill_wait: Option<Millis>,
    pub only_process: bool,
    pub allow_foreign_uid: bool,
    pub allow_nested_pidns: bool,
    pub identity_slack: Option<Millis>,
    pub max_spawn_delay: Option<Millis>,
    pub busy_cpu_bp: Option<u32>,
    pub busy_io: Option<u64>,
    pub busy_limit: Option<Millis>,
    pub activity_window: Option<Millis>,
    pub no_activity: bool,
    pub heartbeat_stale: Option<Millis>,
    pub heartbeat_dead: Option<Millis>,
    pub run_id: Option<String>,
    pub beat_status: Option<String>,
    pub beat_name: Option<String>,
    pub every: Option<Millis>,
    pub while_pid: Option<i64>,
    pub quiet: bool,
    /// `flatline run`'s own options and its COMMAND.
    pub run: RunArgs,
    /// doctor: `--check-unit FILE`.
    pub check_unit: Option<PathBuf>,
    /// `--delegation ID` (repeatable): file names under `delegations/`, without `.json`.
    pub delegations: Vec<String>,
    /// finalize: `--as failed|cancelled`.
    pub finalize_as: Option<String>,
    /// finalize: `--note TEXT`.
    pub note: Option<String>,
    /// status: `--attention`.
    pub attention: bool,
    /// reclaim: `--force` (with `--delegation`).
    pub force: bool,
    /// status: `--watch DURATION`.
    pub watch: Option<Millis>,
    /// `--color auto|always|never`.
    pub color: Option<String>,
    /// Flags seen, to check they apply to the command.
    pub(super) seen: Vec<FlagId>,
}

/// `flatline run`'s options as typed (SPEC §12); `command` is everything after the first
/// operand (or after `--`), taken as it is, options included.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    pub run_dir: Option<PathBuf>,
    pub id: Option<String>,
    pub stream: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    pub stdin_inherit: bool,
    pub tee: bool,
    pub no_watch: bool,
    pub command: Vec<OsString>,
}

impl LowArgs {
    pub fn mode(&self) -> Mode {
        if self.help {
            Mode::Help(self.command)
        } else if self.version {
            Mode::Version
        } else if self.generate_man {
            Mode::Man
        } else if self.generate_schema {
            Mode::Schema
        } else if let Some(shell) = self.generate_completions {
            Mode::Completions(shell)
        } else {
            match self.command {
                Some(command) => Mode::Run(command),
                None => Mode::Usage,
            }
        }
    }
}

/// A usage error: the message, printed as `flatline: MESSAGE` with a hint, exit 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl From<lexopt::Error> for UsageError {
    fn from(error: lexopt::Error) -> Self {
        UsageError(error.to_string())
    }
}

pub(super) fn find_long(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.long == name)
}

pub(super) fn find_short(short: char) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.short == Some(short))
}

pub(super) fn find_command(name: &str) -> Option<Command> {
    COMMANDS
        .iter()
        .find(|def| def.name == name)
        .map(|def| def.command)
}

/// Parses the arguments after the program name.
pub fn parse<I>(args: I) -> Result<LowArgs, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut low = LowArgs::default();
    while let Some(arg) = parser.next()? {
        let flag = match &arg {
            Long(name) => find_long(name).ok_or_else(|| unknown_flag(&format!("--{name}")))?,
            Short(short) => find_short(*short).ok_or_else(|| unknown_flag(&format!("-{short}")))?,
            Value(value) => {
                if low.command.is_none() && !low.help && value == HELP_COMMAND {
                    // `flatline help [COMMAND]` is `flatline [COMMAND] --help`.
                    low.help = true;
                } else if low.command.is_none() {
                    // `flatline status`, or `flatline --help status`.
                    let name = value.to_string_lossy();
                    low.command = Some(find_command(&name).ok_or_else(|| unknown_command(&name))?);
                } else if low.command == Some(Command::Run) {
                    // `run [OPTIONS] [--] COMMAND [ARG...]`: the worker's argv is taken
                    // as it is, its options included.
                    low.run.command.push(value.clone());
                    low.run.command.extend(parser.raw_args()?);
                } else {
                    low.operands.push(value.clone());
                }
                continue;
            }
        };
        let value = match flag.value {
            Some(_) => Some(
                parser
                    .value()
                    .map_err(|_| UsageError(format!("--{} needs a value", flag.long)))?
                    .into_string()
                    .map_err(|_| UsageError(format!("--{}: the value is not UTF-8", flag.long)))?,
            ),
            None => None,
        };
        apply(&mut low, flag, value)?;
        low.seen.push(flag.id);
    }
    check_applicability(&low)?;
    Ok(low)
}

/// The command that prints help: `flatline help [COMMAND]`.
pub const HELP_COMMAND: &str = "help";

pub(super) fn unknown_flag(spelled: &str) -> UsageError {
    let shown = crate::core::text::escape_control(spelled);
    let name = spelled.trim_start_matches('-');
    let suggestion = if spelled.starts_with("--") {
        nearest(name, FLAGS.iter().map(|flag| flag.long))
    } else {
        None
    };
    match suggestion {
        Some(known) => UsageError(format!(
            "unknown option '{shown}' (did you mean --{known}?)"
        )),
        None => UsageError(format!("unknown option '{shown}'")),
    }
}

pub(super) fn unknown_command(name: &str) -> UsageError {
    let shown = crate::core::text::escape_control(name);
    let names = COMMANDS
        .iter()
        .map(|def| def.name)
        .chain(std::iter::once(HELP_COMMAND));
    match nearest(name, names) {
        Some(known) => UsageError(format!("unknown command '{shown}' (did you mean {known}?)")),
        None => UsageError(format!(
            "unknown command '{shown}' (commands: {})",
            command_names()
        )),
    }
}

/// The known name nearest to `typed`, when it is close: at most 2 edits (insertions,
/// deletions, substitutions, swaps of neighbours) and fewer than half of the typed name's
/// length, so that a short or wholly different word gets no guess. The first of equals wins.
pub fn nearest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let length = typed.chars().count();
    known
        .into_iter()
        .map(|name| (edit_distance(typed, name), name))
        .filter(|(distance, _)| *distance <= 2 && *distance * 2 < length)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// The optimal-string-alignment distance (Damerau-Levenshtein without moving a letter twice).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: the one before the previous, the previous and the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

pub(super) fn command_names() -> String {
    COMMANDS
        .iter()
        .map(|def| def.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The smallest `--max-stream-read`: the 1 MiB head and a tail of at least as much.
pub(super) const MIN_STREAM_READ: u64 = 2 << 20;

/// A size: a number of bytes, or a number with the suffix K, M or G (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().find(|(_, ch)| !ch.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let shift = match unit {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        _ => {
            return Err(format!(
                "'{}' is not a size (bytes, or a number with K, M or G, e.g. 32M)",
                crate::core::text::escape_control(text)
            ));
        }
    };
    let number: u64 = digits.parse().map_err(|_| {
        format!(
            "'{}' is not a size (bytes, or a number with K, M or G, e.g. 32M)",
            crate::core::text::escape_control(text)
        )
    })?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("'{}' is too large", crate::core::text::escape_control(text)))
}

/// A share of one CPU: `5`, `5%`, `2.5%`, `150%`, in hundredths of a percent.
pub fn parse_percent(flag: &Flag, text: &str) -> Result<u32, UsageError> {
    let bad = || {
        UsageError(format!(
            "--{}: '{}' is not a percentage (e.g. 5 or 2.5%)",
            flag.long,
            crate::core::text::escape_control(text)
        ))
    };
    let number = text.strip_suffix('%').unwrap_or(text);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty()
        || fraction.len() > 2
        || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let hundredths: u32 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|bp| bp.checked_add(hundredths))
        .filter(|bp| *bp > 0)
        .ok_or_else(bad)
}

pub(super) fn duration(flag: &Flag, value: &str) -> Result<Millis, UsageError> {
    time::parse_duration(value).map_err(|message| UsageError(format!("--{}: {message}", flag.long)))
}

pub(super) fn positive_duration(flag: &Flag, value: &str) -> Result<Millis, UsageError> {
    let ms = duration(flag, value)?;
    if ms <= 0 {
        return Err(UsageError(format!(
            "--{}: must be greater than 0 ({})",
            flag.long,
            time::DURATION_EXAMPLES
        )));
    }
    Ok(ms)
}

pub(super) fn non_empty(flag: &Flag, text: String) -> Result<String, UsageError> {
    if text.is_empty() {
        return Err(UsageError(format!("--{}: the value is empty", flag.long)));
    }
    Ok(text)
}

pub(super) fn check_applicability(low: &LowArgs) -> Result<(), UsageError> {
    if low.help
        || low.version
        || low.generate_man
        || low.generate_schema
        || low.generate_completions.is_some()
    {
        return Ok(());
    }
    let Some(command) = low.command else {
        return Ok(());
    };
    for id in &low.seen {
        let Some(flag) = FLAGS.iter().find(|flag| flag.id == *id) else {
            continue;
        };
        if flag.commands != 0 && flag.commands & command.bit() == 0 {
            return Err(UsageError(format!(
                "--{} does not apply to '{}' (see flatline {} --help)",
                flag.long,
                command.name(),
                command.name()
            )));
        }
    }
    Ok(())
}
