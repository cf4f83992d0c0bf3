//! config: the command line resolved against the environment (SPEC §2, §6).
//!
//! `cli` records what was typed; this module applies defaults, checks what only makes
//! sense together (threshold order, `--now` with signals), and decides the output format.

use crate::cli::{Command, Format, LowArgs, UsageError};
use crate::core::health::HeartbeatThresholds;
use crate::core::lifecycle::Thresholds;
use crate::core::time::{self, Millis};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// `--max-stream-read` when not given.
pub const DEFAULT_MAX_STREAM_READ: u64 = 32 << 20;

/// Everything a run needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub command: Command,
    pub run_dirs: Vec<PathBuf>,
    pub format: Format,
    /// The instant the run takes as "now": `--now`, else the wall clock read once.
    pub now: Millis,
    pub now_given: bool,
    pub thresholds: Thresholds,
    pub task_cards: Vec<String>,
    /// `--state`: delegation states and worker healths, as typed.
    pub states: Vec<String>,
    pub summary: bool,
    pub check: bool,
    /// How long a stream without a terminal event must be unchanged before finalizing.
    pub settle: Millis,
    pub dry_run: bool,
    /// sweep: print cards and problems that did not change too (SPEC §7).
    pub all: bool,
    pub allow_outside_paths: bool,
    /// `--max-stream-read`: the most bytes read of one event stream, inbox or outbox.
    pub max_stream_read: u64,
    /// How long to wait for another flatline's lock (`None`: not at all).
    pub wait: Option<Duration>,
    /// `--lock-group`, resolved to a gid (`None`: the run directory's group).
    pub lock_group: Option<u32>,
    pub deadline: Option<Duration>,
    /// `--output FILE`: where the output goes instead of stdout.
    pub output: Option<PathBuf>,
    /// reclaim: SIGTERM to SIGKILL, for all workers together.
    pub grace: Duration,
    /// reclaim: how long to wait after SIGKILL.
    pub kill_wait: Duration,
    pub only_process: bool,
    pub allow_foreign_uid: bool,
    /// `--allow-nested-pidns`: signal workers of non-root documents in nested namespaces.
    pub allow_nested_pidns: bool,
    /// `--identity-slack` and `--max-spawn-delay` (SPEC §3.1).
    pub identity: crate::core::identity::WindowPolicy,
    pub heartbeat: HeartbeatThresholds,
    /// What makes a worker's tree busy (SPEC §11); `None` with `--no-activity`.
    pub activity: Option<crate::core::activity::Policy>,
    pub run_id: Option<String>,
    /// beat: what to write and how often.
    pub beat: BeatConfig,
    pub quiet: bool,
    /// `flatline run`'s options (SPEC §12).
    pub run: RunConfig,
    /// doctor: `--check-unit FILE`.
    pub check_unit: Option<PathBuf>,
    /// `sweep --every`: the interval between passes (`deadline` is then per pass).
    pub sweep_every: Option<Duration>,
    /// `--delegation ID`: only `delegations/ID.json` (empty: every delegation).
    pub delegations: Vec<String>,
    /// finalize: `--as` and `--note`.
    pub finalize_as: Option<String>,
    pub note: Option<String>,
    /// status: `--attention`, only what needs a person (and problems as records).
    pub attention: bool,
    /// reclaim: `--force`, an operator's reclaim of the `--delegation` workers.
    pub force: bool,
    /// status: `--watch`, the interval between iterations.
    pub watch: Option<Duration>,
    /// `--color`, resolved: colour states in text tables.
    pub color: bool,
}

/// `flatline run`'s options, resolved: the run directory is `config.run_dirs[0]`.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    pub id: Option<String>,
    pub stream: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    pub stdin_inherit: bool,
    pub tee: bool,
    pub no_watch: bool,
    /// COMMAND and its arguments, never empty.
    pub command: Vec<std::ffi::OsString>,
}

/// `--wait` of `flatline run` when not given: it shares the run with a sweep timer.
pub const DEFAULT_RUN_WAIT_MS: Millis = 10_000;

/// `flatline beat`'s options.
#[derive(Debug, Clone, Default)]
pub struct BeatConfig {
    pub status: Option<String>,
    pub name: Option<String>,
    pub every: Option<Duration>,
    pub while_pid: Option<i64>,
}

pub const DEFAULT_GRACE_MS: Millis = 2_000;
/// SPEC §4: a sweep bounds itself even when the timer forgets to.
pub const DEFAULT_SWEEP_DEADLINE_MS: Millis = 300_000;
pub const DEFAULT_KILL_WAIT_MS: Millis = 500;

/// SPEC §3.2: the orchestrator may still be copying a dead worker's last lines.
pub const DEFAULT_SETTLE_MS: Millis = 5_000;

fn std_duration(ms: Millis) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl<'a> From<&'a Config> for crate::output::Settings<'a> {
    fn from(config: &'a Config) -> Self {
        crate::output::Settings {
            format: config.format,
            quiet: config.quiet,
            file: config.output.as_deref(),
            now: config.now,
            color: config.color,
        }
    }
}

impl Config {
    /// Whether `--delegation` lets the file `delegations/NAME` through (SPEC §13: the file
    /// name, never the delegation_id inside, picks it).
    pub fn delegation_selected(&self, name: &std::ffi::OsStr) -> bool {
        self.delegations.is_empty()
            || self
                .delegations
                .iter()
                .any(|id| name.as_encoded_bytes().strip_suffix(b".json") == Some(id.as_bytes()))
    }

    /// Whether `--task-card` lets this card through.
    pub fn card_selected(&self, card: Option<&str>) -> bool {
        self.task_cards.is_empty()
            || card.is_some_and(|card| self.task_cards.iter().any(|c| c == card))
    }

    /// Whether this command writes the runs it scans (and so may update their state file).
    pub fn writes_runs(&self) -> bool {
        !self.dry_run
            && matches!(
                self.command,
                Command::Refresh | Command::Reclaim | Command::Sweep | Command::FanIn
            )
    }

    /// Whether this command may signal workers (its uid guard needs their real uid).
    pub fn signals_workers(&self) -> bool {
        matches!(self.command, Command::Reclaim | Command::Sweep)
    }
}

/// Resolves parsed arguments for `command`. `stdout_is_terminal` decides the default format.
pub fn resolve(
    low: LowArgs,
    command: Command,
    stdout_is_terminal: bool,
) -> Result<Config, UsageError> {
    let low = run_operands(low, command)?;
    check_operands_and_now(&low, command)?;
    let (thresholds, heartbeat) = resolve_thresholds(&low)?;
    check_command_flags(&low, command)?;
    let format = low.format.unwrap_or(if stdout_is_terminal {
        Format::Text
    } else {
        Format::Ndjson
    });
    let (identity, activity) = (identity_policy(&low), activity_policy(&low));
    Ok(Config {
        command,
        run_dirs: low.operands.into_iter().map(PathBuf::from).collect(),
        format,
        now: low.now.unwrap_or_else(crate::proc::now_ms),
        now_given: low.now.is_some(),
        thresholds,
        task_cards: low.task_cards,
        states: low.states,
        summary: low.summary,
        check: low.check,
        settle: low.settle.unwrap_or(DEFAULT_SETTLE_MS),
        dry_run: low.dry_run,
        all: low.all,
        allow_outside_paths: low.allow_outside_paths,
        max_stream_read: low.max_stream_read.unwrap_or(DEFAULT_MAX_STREAM_READ),
        wait: low.wait.map(std_duration),
        lock_group: match &low.lock_group {
            Some(group) => Some(lock_group(group)?),
            None => None,
        },
        deadline: low
            .deadline
            .or((command == Command::Sweep).then_some(DEFAULT_SWEEP_DEADLINE_MS))
            // `sweep --every`: each pass ends before the next is due (SPEC §9).
            .map(|deadline| match (command, low.every) {
                (Command::Sweep, Some(every)) => deadline.min(every),
                _ => deadline,
            })
            .map(std_duration),
        // `--output -` is stdout, as for most Unix tools.
        output: low.output.filter(|path| path.as_os_str() != "-"),
        grace: std_duration(low.grace.unwrap_or(DEFAULT_GRACE_MS)),
        kill_wait: std_duration(low.kill_wait.unwrap_or(DEFAULT_KILL_WAIT_MS)),
        only_process: low.only_process,
        allow_foreign_uid: low.allow_foreign_uid,
        allow_nested_pidns: low.allow_nested_pidns,
        identity,
        heartbeat,
        activity,
        run_id: low.run_id,
        beat: BeatConfig {
            status: low.beat_status,
            name: low.beat_name,
            every: low.every.map(std_duration),
            while_pid: low.while_pid,
        },
        quiet: low.quiet,
        run: RunConfig {
            id: low.run.id,
            stream: low.run.stream,
            stderr: low.run.stderr,
            stdin_inherit: low.run.stdin_inherit,
            tee: low.run.tee,
            no_watch: low.run.no_watch,
            command: low.run.command,
        },
        check_unit: low.check_unit,
        sweep_every: low
            .every
            .filter(|_| command == Command::Sweep)
            .map(std_duration),
        delegations: low.delegations,
        finalize_as: low.finalize_as,
        note: low.note,
        attention: low.attention,
        force: low.force,
        watch: low.watch.map(std_duration),
        color: color_wanted(
            low.color.as_deref(),
            stdout_is_terminal,
            std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty()),
        ),
    })
}

/// The identity window's policy (SPEC §3.1): `--identity-slack`, `--max-spawn-delay`.
fn identity_policy(low: &LowArgs) -> crate::core::identity::WindowPolicy {
    crate::core::identity::WindowPolicy {
        slack: low
            .identity_slack
            .unwrap_or(crate::core::identity::DEFAULT_IDENTITY_SLACK_MS),
        max_spawn_delay: low
            .max_spawn_delay
            .unwrap_or(crate::core::identity::DEFAULT_MAX_SPAWN_DELAY_MS),
    }
}

/// Activity evidence's policy (SPEC §11), or none with `--no-activity`.
fn activity_policy(low: &LowArgs) -> Option<crate::core::activity::Policy> {
    (!low.no_activity).then(|| {
        let defaults = crate::core::activity::Policy::default();
        crate::core::activity::Policy {
            busy_cpu_bp: low.busy_cpu_bp.unwrap_or(defaults.busy_cpu_bp),
            busy_io: low.busy_io.unwrap_or(defaults.busy_io),
            busy_limit: low.busy_limit.unwrap_or(defaults.busy_limit),
            window: low.activity_window.unwrap_or(defaults.window),
        }
    })
}

/// `flatline run`: its one run directory (--run-dir, else $FLATLINE_RUN_DIR, else the
/// current directory, SPEC §12) becomes the operand, and --wait defaults to 10 s.
fn run_operands(mut low: LowArgs, command: Command) -> Result<LowArgs, UsageError> {
    if command != Command::Run {
        return Ok(low);
    }
    if low.run.command.is_empty() {
        return Err(UsageError(
            "run needs a COMMAND (flatline run [OPTIONS] -- COMMAND [ARG...])".into(),
        ));
    }
    let dir = low
        .run
        .run_dir
        .take()
        .or_else(|| {
            std::env::var_os("FLATLINE_RUN_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("."));
    low.operands = vec![dir.into_os_string()];
    low.wait = low.wait.or(Some(DEFAULT_RUN_WAIT_MS));
    Ok(low)
}

/// The operands a command needs, and `--now` only where no signal can follow.
fn check_operands_and_now(low: &LowArgs, command: Command) -> Result<(), UsageError> {
    if low.operands.is_empty() && !(command == Command::Doctor && low.check_unit.is_some()) {
        return Err(UsageError(if command == Command::Beat {
            "beat needs a HEARTBEAT_FILE".to_string()
        } else {
            format!("{} needs at least one RUN_DIR", command.name())
        }));
    }
    if low.now.is_some() && !low.dry_run && matches!(command, Command::Reclaim | Command::Sweep) {
        return Err(UsageError(format!(
            "--now is refused by {} without --dry-run: flatline never signals on a clock it did not read itself",
            command.name()
        )));
    }
    if low.force && low.delegations.is_empty() {
        return Err(UsageError(
            "--force needs --delegation ID: an operator's reclaim names its worker".into(),
        ));
    }
    Ok(())
}

/// The thresholds of views and heartbeats, checked for their order.
fn resolve_thresholds(low: &LowArgs) -> Result<(Thresholds, HeartbeatThresholds), UsageError> {
    let stale = low
        .stale_after
        .unwrap_or(crate::core::lifecycle::DEFAULT_STALE_MS);
    if let Some(timeout) = low.timeout_after
        && timeout < stale
    {
        return Err(UsageError(format!(
            "--timeout-after {} is below the stale threshold {} (--stale-after); the timeout must not come first",
            time::format_duration(timeout),
            time::format_duration(stale)
        )));
    }
    if let Some(quiet) = low.quiet_after
        && quiet > stale
    {
        return Err(UsageError(format!(
            "--quiet-after {} is above the stale threshold {} (--stale-after)",
            time::format_duration(quiet),
            time::format_duration(stale)
        )));
    }
    let thresholds = Thresholds {
        quiet: low.quiet_after,
        stale: low.stale_after,
        timeout: low.timeout_after,
        stuck: low.stuck_after,
        max_runtime: low.max_runtime,
        launch_timeout: low.launch_timeout,
        max_clock_skew: low
            .max_clock_skew
            .unwrap_or(crate::core::lifecycle::DEFAULT_MAX_CLOCK_SKEW_MS),
    };
    let heartbeat = HeartbeatThresholds {
        stale: low
            .heartbeat_stale
            .unwrap_or(crate::core::health::DEFAULT_HEARTBEAT_STALE_MS),
        dead: low
            .heartbeat_dead
            .unwrap_or(crate::core::health::DEFAULT_HEARTBEAT_DEAD_MS),
        max_clock_skew: thresholds.max_clock_skew,
    };
    if heartbeat.stale >= heartbeat.dead {
        return Err(UsageError(format!(
            "--heartbeat-stale {} must be below --heartbeat-dead {}",
            time::format_duration(heartbeat.stale),
            time::format_duration(heartbeat.dead)
        )));
    }
    Ok((thresholds, heartbeat))
}

/// Flags that only make sense with some commands.
fn check_command_flags(low: &LowArgs, command: Command) -> Result<(), UsageError> {
    if command == Command::Beat {
        if low.operands.len() != 1 {
            return Err(UsageError("beat takes exactly one HEARTBEAT_FILE".into()));
        }
        if low.while_pid.is_some() && low.every.is_none() {
            return Err(UsageError("--while-pid goes with --every".into()));
        }
    }
    if low.format == Some(Format::Prometheus)
        && !matches!(command, Command::Status | Command::Sweep)
    {
        return Err(UsageError(format!(
            "--format prometheus applies to status and sweep, not {}",
            command.name()
        )));
    }
    Ok(())
}

/// `--color WHEN`: always and never decide alone; auto colours a terminal unless `NO_COLOR`
/// is set to something (no-color.org).
pub fn color_wanted(when: Option<&str>, terminal: bool, no_color: bool) -> bool {
    match when {
        Some("always") => true,
        Some("never") => false,
        _ => terminal && !no_color,
    }
}

/// `--lock-group GROUP`: a numeric gid as it is, or a group name looked up.
fn lock_group(group: &str) -> Result<u32, UsageError> {
    match crate::fs::group_id(group) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => Err(UsageError(format!(
            "--lock-group: no group named '{group}'"
        ))),
        Err(error) => Err(UsageError(format!(
            "--lock-group: cannot look up '{group}': {}",
            crate::fs::io_message(&error)
        ))),
    }
}

/// Whether stdout is a terminal (for the default format).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse;

    fn resolve_args(args: &[&str]) -> Result<Config, String> {
        let low = parse(args.iter().copied()).map_err(|e| e.0)?;
        let command = low.command.ok_or("no command")?;
        resolve(low, command, false).map_err(|e| e.0)
    }

    #[test]
    fn defaults() {
        let config = resolve_args(&["status", "run"]).unwrap();
        assert_eq!(config.format, Format::Ndjson);
        assert_eq!(config.thresholds, Thresholds::default());
        assert!(!config.now_given);
        let config = resolve_args(&["status", "--now", "2026-11-22T08:00:00Z", "run"]).unwrap();
        assert_eq!(config.now, 1_795_334_400_000);
        assert!(config.now_given);
    }

    #[test]
    fn lock_group_is_a_gid_or_a_group_name() {
        let gid = |args: &[&str]| resolve_args(args).map(|config| config.lock_group);
        assert_eq!(gid(&["refresh", "run"]), Ok(None));
        assert_eq!(
            gid(&["refresh", "--lock-group", "4321", "run"]),
            Ok(Some(4321))
        );
        assert_eq!(gid(&["sweep", "--lock-group=root", "run"]), Ok(Some(0)));
        assert_eq!(
            gid(&["refresh", "--lock-group", "no-such-group-flatline", "run"]),
            Err("--lock-group: no group named 'no-such-group-flatline'".to_string())
        );
        assert_eq!(
            gid(&["refresh", "--lock-group", "", "run"]),
            Err("--lock-group: the value is empty".to_string())
        );
        // status takes no lock.
        assert!(gid(&["status", "--lock-group", "4321", "run"]).is_err());
    }

    #[test]
    fn terminal_defaults_to_text() {
        let low = parse(["status", "run"]).unwrap();
        assert_eq!(
            resolve(low, Command::Status, true).unwrap().format,
            Format::Text
        );
    }

    #[test]
    fn command_line_thresholds_out_of_order_are_usage_errors() {
        let error = resolve_args(&["status", "--timeout-after", "30s", "run"]).unwrap_err();
        assert!(
            error.contains("--timeout-after 30s is below the stale threshold 45s"),
            "{error}"
        );
        let error = resolve_args(&[
            "status",
            "--stale-after",
            "10s",
            "--timeout-after",
            "5s",
            "run",
        ])
        .unwrap_err();
        assert!(error.contains("below the stale threshold 10s"), "{error}");
        let error = resolve_args(&["status", "--quiet-after", "50s", "run"]).unwrap_err();
        assert!(
            error.contains("--quiet-after 50s is above the stale threshold 45s"),
            "{error}"
        );
        assert!(
            resolve_args(&[
                "status",
                "--stale-after",
                "10s",
                "--timeout-after",
                "10s",
                "--quiet-after",
                "10s",
                "run"
            ])
            .is_ok()
        );
    }

    #[test]
    fn sweep_every_bounds_each_pass_by_the_interval() {
        let config = resolve_args(&["sweep", "--every", "1m", "run"]).unwrap();
        assert_eq!(config.sweep_every, Some(Duration::from_secs(60)));
        assert_eq!(config.deadline, Some(Duration::from_secs(60)));
        let config =
            resolve_args(&["sweep", "--every", "1h", "--deadline", "4min", "run"]).unwrap();
        assert_eq!(config.deadline, Some(Duration::from_secs(240)));
        let config = resolve_args(&["sweep", "run"]).unwrap();
        assert_eq!(config.sweep_every, None);
        assert_eq!(config.deadline, Some(Duration::from_secs(300)));
        assert!(resolve_args(&["status", "--every", "1s", "run"]).is_err());
    }

    #[test]
    fn run_dirs_are_required() {
        assert!(
            resolve_args(&["status"])
                .unwrap_err()
                .contains("needs at least one RUN_DIR")
        );
    }

    #[test]
    fn run_resolves_its_directory_and_its_lock_wait() {
        let config = resolve_args(&["run", "--run-dir", "r", "--", "true"]).unwrap();
        assert_eq!(config.run_dirs, [PathBuf::from("r")]);
        assert_eq!(config.wait, Some(Duration::from_secs(10)));
        assert_eq!(config.run.command, ["true"]);
        let config = resolve_args(&["run", "--wait", "1s", "--", "true"]).unwrap();
        assert_eq!(config.wait, Some(Duration::from_secs(1)));
        assert!(
            resolve_args(&["run", "--run-dir", "r"])
                .unwrap_err()
                .contains("run needs a COMMAND")
        );
    }

    #[test]
    fn delegation_filter_matches_file_names() {
        use std::ffi::OsStr;
        let config =
            resolve_args(&["status", "--delegation", "a", "--delegation", "b.c", "run"]).unwrap();
        assert!(config.delegation_selected(OsStr::new("a.json")));
        assert!(config.delegation_selected(OsStr::new("b.c.json")));
        assert!(!config.delegation_selected(OsStr::new("a.jsonx")));
        assert!(!config.delegation_selected(OsStr::new("ab.json")));
        let all = resolve_args(&["status", "run"]).unwrap();
        assert!(all.delegation_selected(OsStr::new("x.json")));
    }

    #[test]
    fn color_is_auto_always_or_never_and_no_color_turns_auto_off() {
        assert!(color_wanted(None, true, false));
        assert!(!color_wanted(None, false, false));
        assert!(!color_wanted(Some("auto"), true, true));
        assert!(color_wanted(Some("always"), false, true));
        assert!(!color_wanted(Some("never"), true, false));
        assert!(resolve_args(&["status", "--color", "sometimes", "run"]).is_err());
    }

    #[test]
    fn card_filter() {
        let config = resolve_args(&["status", "--task-card", "a", "run"]).unwrap();
        assert!(config.card_selected(Some("a")));
        assert!(!config.card_selected(Some("b")));
        assert!(!config.card_selected(None));
        let all = resolve_args(&["status", "run"]).unwrap();
        assert!(all.card_selected(None));
    }
}
