//! cli: the one table of commands and flags, the parser built on it, `--help` and the man page.
//!
//! `COMMANDS` and `FLAGS` are the single source: the parser looks flags up there, `--help`
//! prints them, and `man/flatline.1` is generated from them (a test fails when the committed
//! page differs). Parsing only records what was typed (`LowArgs`); `config` resolves it.

use crate::clock::{self, Millis};
use crate::exit;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

/// A subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Status,
    Refresh,
    Reclaim,
    HealthEvents,
    Beat,
    FanIn,
    Sweep,
}

pub struct CommandDef {
    pub command: Command,
    pub name: &'static str,
    /// What follows the command name in a synopsis.
    pub operands: &'static str,
    /// One line for the command list.
    pub about: &'static str,
    /// Paragraphs for `flatline CMD --help` and the man page.
    pub doc: &'static str,
    pub writes: &'static str,
}

pub const COMMANDS: &[CommandDef] = &[
    CommandDef {
        command: Command::Status,
        name: "status",
        operands: "RUN_DIR...",
        about: "print the lifecycle view of every delegation; change nothing",
        doc: "Reads every RUN_DIR/delegations/*.json once, in file-name order, and prints one \
          record per delegation: its state (queued, launching, running_active, running_quiet, \
          stale, timed_out, returned, failed, cancelled or unknown), whether it needs reclaim, \
          the liveness and identity of its worker process, and what should happen next. \
          It never writes a file and never sends a signal. \
          With --check the exit status says whether anything needs attention.",
        writes: "nothing",
    },
    CommandDef {
        command: Command::Refresh,
        name: "refresh",
        operands: "RUN_DIR...",
        about: "bring running delegations up to date from their event streams",
        doc: "For every running delegation that is not reclaimed: when its process is alive and \
          verified, records progress from the event stream's modification time (the stream is \
          not read) and stamps the process fingerprint; when its process is gone or its pid \
          reused, reads the stream once and finalizes the delegation as completed or failed, \
          with thread id, final message preview, token usage and failure reason (a stream \
          without a terminal event is finalized only once it has been unchanged for \
          --settle); when there is no pid or it cannot be verified, reads the stream only when \
          it changed and finalizes only on a terminal event. \
          Prints one action record per change (action progressed, fingerprinted or \
          finalized). \
          Never writes launch_requested_at, started_at or process_started_at.",
        writes: "delegations (atomically, under RUN_DIR/.flatline/lock)",
    },
    CommandDef {
        command: Command::Reclaim,
        name: "reclaim",
        operands: "RUN_DIR...",
        about: "terminate stuck workers and their process trees; record the outcome",
        doc: "Takes every delegation whose view says reclaim_needed (stale or timed_out). \
              A live worker whose identity is verified and whose user owns the delegation file \
              (or the file is root's, or --allow-foreign-uid) is opened as a pidfd; its \
              descendants are found in /proc before any signal. \
              Just before the first signal each target's document is re-read and its stream \
              stat'ed: one that progressed since the plan is dropped (progressed), one whose \
              record could not be written is never signalled (skipped_unrecordable, exit 3). \
              Then SIGTERM and SIGCONT go to every process of every worker at once, flatline \
              waits for all of them together up to --grace (the run lock let go), freezes the \
              survivors' trees with SIGSTOP, snapshots them again and sends SIGKILL to all, and \
              waits up to --kill-wait more: N stuck workers cost one grace period. \
              Only workers whose processes are confirmed gone are marked reclaimed (terminated \
              or killed). \
              A worker whose process already exited, or whose pid now belongs to another \
              process, is finalized as refresh would (already_exited, skipped_reused); one \
              without a process id is marked reclaimed (no_process); one with an invalid or \
              unverifiable process id or another user's process is skipped (exit 1), as are \
              workers that could not be signalled (not_permitted) or survived; one still alive \
              when a signal or --deadline stopped the run before SIGKILL is interrupted. \
              --now is refused without --dry-run: flatline never signals on a clock it did not \
              read itself.",
        writes: "delegations (atomically, under RUN_DIR/.flatline/lock); sends signals",
    },
    CommandDef {
        command: Command::FanIn,
        name: "fan-in",
        operands: "RUN_DIR...",
        about: "collapse the fan-in of task cards whose workers are all done",
        doc: "A task card is ready when it has delegations and none is active (queued, \
              running, or a status flatline does not know, which is reported), or when it has \
              no delegation and its document RUN_DIR/task-cards/ID.json holds a \
              worker_result_envelope (else subagent_fan_in) whose status is \
              completed|passed|success, failed|error or cancelled|canceled. \
              When the task card document lists parallel_fanout.required_lane_ids, each of \
              those lanes must also be completed, failed, stalled, reclaimed or merged. \
              A ready card is collapsed once: fan_in_collapsed_at and updated_at are stamped \
              on each of its delegations that lacks the stamp (on the task card document when \
              it has no delegation) and a fan_in record is printed with the counts, a summary \
              and the thread ids of the completed workers. \
              An already collapsed card is reported with its stored time and nothing is \
              written; a card that is not ready prints ready false and the number of active \
              delegations. \
              Exit status 1 only when a card named with --task-card is not ready.",
        writes: "delegations and task card documents (atomically, under RUN_DIR/.flatline/lock)",
    },
    CommandDef {
        command: Command::Sweep,
        name: "sweep",
        operands: "RUN_DIR...",
        about: "refresh, reclaim, fan-in and heartbeat transitions in one pass: the timer's job",
        doc: "Does in one pass what refresh, reclaim, fan-in and health-events do, in that \
              order, on an in-memory snapshot: each run's lock is taken once, each input file \
              is read once, stuck workers get SIGTERM as the scan finds them and SIGKILL once \
              their grace has passed (all of them cost one grace period, and a scan cut short \
              by --deadline has still signalled what it found), fan-in decides on the states \
              that result, and each changed document is \
              written once with all of its changes. \
              --deadline defaults to 5m. \
              The exit status is never 1 for cards that are simply not ready yet.",
        writes: "everything the four commands write; sends signals",
    },
    CommandDef {
        command: Command::HealthEvents,
        name: "health-events",
        operands: "RUN_DIR...",
        about: "append an event to RUN_DIR/events.jsonl when a heartbeat worker's health changes",
        doc: "Computes the health of every heartbeat worker (RUN_DIR/workers/*/worker-spec.json) \
              as status does, compares it with the health recorded by the previous run in \
              RUN_DIR/.flatline/state.json, and appends one line per change to \
              RUN_DIR/events.jsonl: worker_stalled (to stalled), worker_dead (to dead), \
              worker_recovered (from stalled or dead to healthy or stopped); no other change \
              emits. \
              The first run records a baseline and emits only for workers already stalled or \
              dead. \
              A run without change appends nothing and rewrites nothing.",
        writes: "RUN_DIR/.flatline/state.json (atomically) and RUN_DIR/events.jsonl (appends), under RUN_DIR/.flatline/lock",
    },
    CommandDef {
        command: Command::Beat,
        name: "beat",
        operands: "HEARTBEAT_FILE",
        about: "write a heartbeat file atomically, once or every interval while a process lives",
        doc: "Writes {\"status\", \"name\", \"ts\"} to HEARTBEAT_FILE atomically (a temporary \
              file, fsync, rename, directory fsync), creating it when missing, so that a reader \
              never sees a half-written heartbeat. \
              With --every, writes again every interval until the process --while-pid exits or \
              flatline is signalled, then writes a final status stopped. \
              The heartbeat's directory is not a run directory: no lock is taken.",
        writes: "HEARTBEAT_FILE",
    },
];

impl Command {
    pub fn def(self) -> &'static CommandDef {
        // The table has one entry per variant; a unit test checks it.
        COMMANDS
            .iter()
            .find(|def| def.command == self)
            .unwrap_or(&COMMANDS[0])
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// Which commands a flag applies to, as a bit set over `Command`.
const STATUS: u32 = 1 << (Command::Status as u32);
const REFRESH: u32 = 1 << (Command::Refresh as u32);
const RECLAIM: u32 = 1 << (Command::Reclaim as u32);
const HEALTH_EVENTS: u32 = 1 << (Command::HealthEvents as u32);
const BEAT: u32 = 1 << (Command::Beat as u32);
const FAN_IN: u32 = 1 << (Command::FanIn as u32);
const SWEEP: u32 = 1 << (Command::Sweep as u32);
/// The commands over run directories (all but beat).
const ALL: u32 = STATUS | REFRESH | RECLAIM | HEALTH_EVENTS | FAN_IN | SWEEP;
/// The commands that look at heartbeat workers.
const HEARTBEAT_READERS: u32 = STATUS | HEALTH_EVENTS | SWEEP;
/// The commands that look at lifecycle thresholds.
const VIEWERS: u32 = STATUS | RECLAIM | SWEEP;
/// The commands that write.
const WRITERS: u32 = REFRESH | RECLAIM | HEALTH_EVENTS | FAN_IN | SWEEP;
/// The commands that read event streams.
const STREAM_READERS: u32 = REFRESH | RECLAIM | SWEEP;
/// The commands that signal.
const SIGNALLERS: u32 = RECLAIM | SWEEP;
/// The commands that read paths named inside documents.
const PATH_READERS: u32 = STREAM_READERS | HEARTBEAT_READERS;

/// Identifies a flag in the table; `apply` gives each its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagId {
    Format,
    Now,
    QuietAfter,
    StaleAfter,
    TimeoutAfter,
    StuckAfter,
    MaxRuntime,
    LaunchTimeout,
    MaxClockSkew,
    TaskCard,
    State,
    Summary,
    Check,
    Settle,
    DryRun,
    All,
    AllowOutsidePaths,
    MaxStreamRead,
    Wait,
    LockGroup,
    Deadline,
    Output,
    Grace,
    KillWait,
    OnlyProcess,
    AllowForeignUid,
    AllowNestedPidns,
    IdentitySlack,
    MaxSpawnDelay,
    HeartbeatStale,
    HeartbeatDead,
    RunId,
    BeatStatus,
    BeatName,
    Every,
    WhilePid,
    Quiet,
    Help,
    Version,
    Generate,
}

pub struct Flag {
    pub id: FlagId,
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in synopses; `None` for a switch.
    pub value: Option<&'static str>,
    /// The commands it applies to (a bit set); 0 means "not a command option" (help, version).
    pub commands: u32,
    /// One line for `--help`.
    pub about: &'static str,
    /// The full description for `CMD --help` and the man page.
    pub doc: &'static str,
}

pub const FLAGS: &[Flag] = &[
    Flag {
        id: FlagId::Format,
        long: "format",
        short: None,
        value: Some("FORMAT"),
        commands: ALL,
        about: "output format: text, ndjson, json, tsv or prometheus",
        doc: "How records are printed on stdout. \
              text: an aligned table and a one-line tally, for people. \
              ndjson: one compact JSON object per line, for jq and log pipelines. \
              json: one document {run_dirs, checked_at, records, summary, errors}. \
              tsv: a header with the union of the fields, then one row per record. \
              prometheus (status and sweep): gauges in the Prometheus text format instead of \
              records, for node_exporter's textfile collector (see --output). \
              The default is text when stdout is a terminal, else ndjson.",
    },
    Flag {
        id: FlagId::Now,
        long: "now",
        short: None,
        value: Some("RFC3339"),
        commands: ALL,
        about: "take this instant as the current time",
        doc: "Uses this instant instead of the wall clock for every age and every timestamp \
              flatline writes, so that a run can be reproduced exactly. \
              Process identity always uses the real clocks.",
    },
    Flag {
        id: FlagId::QuietAfter,
        long: "quiet-after",
        short: None,
        value: Some("DURATION"),
        commands: VIEWERS,
        about: "a running worker without progress this long is running_quiet [stale/2]",
        doc: "Progress age from which a running worker is reported running_quiet. \
              A per-worker worker_lifecycle.quiet_after_ms takes precedence. \
              The default is half the stale threshold; the value is kept between 1ms and the \
              stale threshold.",
    },
    Flag {
        id: FlagId::StaleAfter,
        long: "stale-after",
        short: None,
        value: Some("DURATION"),
        commands: VIEWERS,
        about: "a running worker without progress this long is stale [45s]",
        doc: "Progress age from which a running worker is stale and needs reclaim. \
              A per-worker worker_lifecycle.stale_after_ms takes precedence. \
              The default is 45s.",
    },
    Flag {
        id: FlagId::TimeoutAfter,
        long: "timeout-after",
        short: None,
        value: Some("DURATION"),
        commands: VIEWERS,
        about: "a running worker without progress this long has timed out [2 x stale]",
        doc: "Progress age from which a running worker is timed_out. \
              A per-worker worker_lifecycle.timeout_after_ms takes precedence. \
              The default is twice the stale threshold, so that both states are reachable. \
              It must not be below the stale threshold.",
    },
    Flag {
        id: FlagId::StuckAfter,
        long: "stuck-after",
        short: None,
        value: Some("DURATION"),
        commands: VIEWERS,
        about: "cap both the stale and the timeout threshold",
        doc: "Caps the stale and the timeout thresholds (per-worker values included) at this \
              age; the timeout is then raised to at least the stale threshold.",
    },
    Flag {
        id: FlagId::MaxRuntime,
        long: "max-runtime",
        short: None,
        value: Some("DURATION"),
        commands: VIEWERS,
        about: "a running worker started this long ago has timed out [none]",
        doc: "Caps the time since worker_lifecycle.started_at (start-to-close): a running \
              worker past it is timed_out whatever its progress. \
              No default.",
    },
    Flag {
        id: FlagId::LaunchTimeout,
        long: "launch-timeout",
        short: None,
        value: Some("DURATION"),
        commands: VIEWERS,
        about: "a launching worker is judged by this alone: stale past it [none]",
        doc: "Judges a launching worker alone (schedule-to-start): one whose \
              worker_lifecycle.launch_requested_at (else queued_at) is this long ago is stale, \
              never earlier, whatever the stale and timeout thresholds say. A worker is \
              launching only while started_at, process_started_at, stream evidence \
              (last_progress_at or a stream written) and a verified process are all absent; \
              any of them ends the launch. Without this flag a launching worker ages like a \
              running one. No default.",
    },
    Flag {
        id: FlagId::MaxClockSkew,
        long: "max-clock-skew",
        short: None,
        value: Some("DURATION"),
        commands: VIEWERS,
        about: "trust progress timestamps at most this far in the future [60s]",
        doc: "A progress baseline in the future by no more than this is taken as age 0 with \
              the warning clock_skew; one further in the future is not trusted: the state is \
              unknown. \
              The default is 60s.",
    },
    Flag {
        id: FlagId::TaskCard,
        long: "task-card",
        short: None,
        value: Some("ID"),
        commands: ALL,
        about: "only delegations of this task card (repeatable)",
        doc: "Limits every record and every action to delegations whose task_card_id is ID. \
              May be given several times.",
    },
    Flag {
        id: FlagId::State,
        long: "state",
        short: None,
        value: Some("S[,S...]"),
        commands: STATUS,
        about: "only records in one of these states",
        doc: "Prints only records whose state is one of the comma-separated states: queued, \
              launching, running_active, running_quiet, stale, timed_out, returned, failed, \
              cancelled, unknown; for heartbeat workers, their health: healthy, stalled, dead, \
              stopped, starting, unknown. \
              May be given several times.",
    },
    Flag {
        id: FlagId::Summary,
        long: "summary",
        short: None,
        value: None,
        commands: STATUS,
        about: "add one summary row per run directory and task card",
        doc: "After the records, prints one row (kind summary) per run directory and task card \
              (delegations without a card share a row whose task_card_id is null) with the \
              counts total, active, queued, launching, running, running_quiet, returned, \
              completed, failed, cancelled, stale, timed_out, reclaim_needed and reclaimed.",
    },
    Flag {
        id: FlagId::Check,
        long: "check",
        short: None,
        value: None,
        commands: STATUS,
        about: "exit 1 when a record needs attention",
        doc: "Exits with status 1 when any record needs attention: a worker that needs \
              reclaim, a state of unknown, a running worker whose process is gone (next_action \
              finalize), or a running worker with an invalid or unverifiable process id.",
    },
    Flag {
        id: FlagId::Settle,
        long: "settle",
        short: None,
        value: Some("DURATION"),
        commands: STREAM_READERS,
        about: "finalize a stream without a terminal event once unchanged this long [5s]",
        doc: "A worker whose process is gone and whose stream has no terminal event is \
              finalized only once the stream has not changed for this long: the orchestrator \
              may still be copying the worker's last lines. \
              The default is 5s.",
    },
    Flag {
        id: FlagId::DryRun,
        long: "dry-run",
        short: None,
        value: None,
        commands: WRITERS,
        about: "print what would be done; write nothing",
        doc: "Prints the action records of what would be done, and writes nothing: no \
              delegation, no lock, no RUN_DIR/.flatline directory. \
              In a sweep's dry run, fan-in counts a worker that would be signalled as still \
              running (whether the signal ends it is not known without sending it), and one \
              that would be marked reclaimed without a process as failed.",
    },
    Flag {
        id: FlagId::All,
        long: "all",
        short: None,
        value: None,
        commands: SWEEP,
        about: "also print what did not change: cards not ready or already collapsed, standing problems",
        doc: "A sweep prints only what changed or needs a person: action records, collapsed \
              cards, appended events, and a problem (a worker it could not reclaim, a card \
              blocked by a status it does not know) when it first appears or changes; the \
              problems already reported are remembered in RUN_DIR/.flatline/state.json. \
              A settled run prints nothing. \
              With --all it also prints the cards that are not ready yet or already collapsed \
              and every standing problem.",
    },
    Flag {
        id: FlagId::AllowOutsidePaths,
        long: "allow-outside-paths",
        short: None,
        value: None,
        commands: PATH_READERS,
        about: "accept absolute paths outside the run directory in documents",
        doc: "Paths named inside documents (event streams; heartbeat, inbox and outbox files) \
              are untrusted: a relative path is resolved beneath RUN_DIR (a worker spec's from \
              the worker's directory) and an absolute one must lie beneath it, else it is \
              refused as path_outside_run. \
              This option accepts absolute paths elsewhere; symlinks are still refused and only \
              regular files owned by the delegation's owner or root are read.",
    },
    Flag {
        id: FlagId::MaxStreamRead,
        long: "max-stream-read",
        short: None,
        value: Some("SIZE"),
        commands: PATH_READERS,
        about: "read at most this much of one event stream, inbox or outbox [32M]",
        doc: "Bounds what is read of one file that a document names, whatever its size. \
              An event stream longer than SIZE is read as its first 1M (format, thread and \
              session ids) and its last SIZE minus 1M (terminal event, final text, usage); \
              the record of a stream read that way says raw_output_truncated and \
              raw_output_skipped_bytes. \
              An inbox or outbox is counted over its first SIZE bytes, with the warning \
              inbox_truncated or outbox_truncated when it is longer. \
              Holes of sparse files are skipped, never read. \
              SIZE is a number of bytes, or a number with the suffix K, M or G (powers of \
              1024), at least 2M. \
              The default is 32M.",
    },
    Flag {
        id: FlagId::Wait,
        long: "wait",
        short: None,
        value: Some("DURATION"),
        commands: WRITERS,
        about: "wait this long for another flatline's lock instead of exiting 75",
        doc: "Writing commands hold an exclusive lock on RUN_DIR/.flatline/lock for the whole \
              run. \
              When another process holds it (another flatline, or an orchestrator using \
              flock), flatline exits 75 at once naming the holder's pid and uid, or with this \
              option waits up to DURATION for it.",
    },
    Flag {
        id: FlagId::LockGroup,
        long: "lock-group",
        short: None,
        value: Some("GROUP"),
        commands: WRITERS,
        about: "the group that may take the run lock [the run directory's group]",
        doc: "A new RUN_DIR/.flatline/ is created mode 0750 and its lock and state.json \
              mode 0640 with this group (a name or a numeric gid; default: the run \
              directory's group), so that a member of it, such as the orchestrator's user, \
              can hold the lock with flock RUN_DIR/.flatline/lock CMD while it writes. \
              A creator that is not in the group gives its own primary group instead and \
              says so. \
              An existing .flatline/ keeps its group (flatline says so when it differs).",
    },
    Flag {
        id: FlagId::Deadline,
        long: "deadline",
        short: None,
        value: Some("DURATION"),
        commands: ALL,
        about: "stop before the next side effect once this much time has passed",
        doc: "Bounds the whole run: past the deadline flatline stops before its next side \
              effect, keeps what it completed, says so on standard error (how many delegations \
              of how many it got through) and exits 124. \
              sweep and refresh record in RUN_DIR/.flatline/state.json the file they stopped \
              before; the next run starts there and wraps around, so one slow file cannot \
              starve the files after it. \
              If a read is stuck in the kernel, a watchdog ends the process 5s after the \
              deadline (atomic writes make that safe). \
              No default, except for sweep: 5m.",
    },
    Flag {
        id: FlagId::Output,
        long: "output",
        short: None,
        value: Some("FILE"),
        commands: ALL,
        about: "write the output to FILE atomically instead of stdout",
        doc: "Writes what would go to stdout to FILE instead, atomically (a temporary file in \
              the same directory, fsync, rename), so that a reader such as node_exporter's \
              textfile collector never sees a partial file. \
              FILE itself must not be a symlink; - is standard output. \
              A run that a signal or the deadline cut short leaves FILE as it was: an \
              incomplete output never replaces a complete one.",
    },
    Flag {
        id: FlagId::Grace,
        long: "grace",
        short: None,
        value: Some("DURATION"),
        commands: SIGNALLERS,
        about: "time between SIGTERM and SIGKILL, for all workers together [2s]",
        doc: "After SIGTERM (and SIGCONT) reach every process of every worker, flatline waits \
              for all of them together until this much time has passed, then sends SIGKILL \
              to the survivors. \
              The default is 2s.",
    },
    Flag {
        id: FlagId::KillWait,
        long: "kill-wait",
        short: None,
        value: Some("DURATION"),
        commands: SIGNALLERS,
        about: "how long to wait for processes to vanish after SIGKILL [500ms]",
        doc: "After SIGKILL, flatline waits up to this long for the processes to exit; one \
              still alive is reported as survived and its delegation stays reclaim_needed. \
              The default is 500ms.",
    },
    Flag {
        id: FlagId::OnlyProcess,
        long: "only-process",
        short: None,
        value: None,
        commands: SIGNALLERS,
        about: "signal the recorded process only, not its descendants",
        doc: "Signals only the recorded worker process, not the processes it spawned. \
              By default flatline signals the whole tree, because killing only the agent \
              orphans its shells, test runners and servers.",
    },
    Flag {
        id: FlagId::AllowForeignUid,
        long: "allow-foreign-uid",
        short: None,
        value: None,
        commands: SIGNALLERS,
        about: "signal processes of another user than the delegation file's owner",
        doc: "By default a process whose real uid differs from the owner of its delegation \
              file is never signalled (skipped_foreign), unless the file is owned by root: an \
              agent that can write a delegation must not be able to make flatline kill another \
              user's processes. \
              This option lifts that guard.",
    },
    Flag {
        id: FlagId::AllowNestedPidns,
        long: "allow-nested-pidns",
        short: None,
        value: None,
        commands: SIGNALLERS,
        about: "signal workers of non-root delegations that live in nested pid namespaces",
        doc: "By default, for a delegation file not owned by root, a recorded worker whose \
              NSpid line in /proc/PID/status has more than one entry (it lives in a nested \
              pid namespace, a sandbox) is not signalled (skipped_nested): a writer of \
              delegations must not be able to name a sandboxed process of its uid. Its \
              descendants are still found through it. This option lifts that guard.",
    },
    Flag {
        id: FlagId::IdentitySlack,
        long: "identity-slack",
        short: None,
        value: Some("DURATION"),
        commands: ALL,
        about: "how far a process start may lie outside the recorded times [250ms]",
        doc: "Without a process_fingerprint a process is the worker only when it started \
              within the identity window: from the launch (launch_requested_at, else \
              queued_at) minus this slack, to the end of the earliest recorded sign of life's \
              own precision (a whole-second timestamp stands for the whole second; \
              process_started_at may be 1 s early) plus this slack. The window is anchored once \
              (worker_lifecycle.identity_anchor_at and identity_upper_bound_at) and never \
              grows with time. A wall-clock step larger than the slack makes window verdicts \
              unverifiable (warning clock_step). Default 250ms.",
    },
    Flag {
        id: FlagId::MaxSpawnDelay,
        long: "max-spawn-delay",
        short: None,
        value: Some("DURATION"),
        commands: ALL,
        about: "the identity window opens at most this long before its anchor [60s]",
        doc: "Clamps the lower end of the identity window to at most this long before the \
              earliest recorded sign of life, whatever launch time a delegation claims; a \
              launch later than that sign is ignored (warning launch_after_start). \
              Default 60s.",
    },
    Flag {
        id: FlagId::HeartbeatStale,
        long: "heartbeat-stale",
        short: None,
        value: Some("DURATION"),
        commands: HEARTBEAT_READERS,
        about: "a heartbeat this old means stalled [60s]",
        doc: "A heartbeat worker whose last heartbeat is at least this old is stalled. \
              It must be below --heartbeat-dead. \
              The default is 60s.",
    },
    Flag {
        id: FlagId::HeartbeatDead,
        long: "heartbeat-dead",
        short: None,
        value: Some("DURATION"),
        commands: HEARTBEAT_READERS,
        about: "a heartbeat this old (or none this long) means dead [180s]",
        doc: "A heartbeat worker whose last heartbeat is at least this old is dead; so is one \
              without any heartbeat whose worker-spec.json is at least this old (younger, it \
              is starting). \
              The default is 180s.",
    },
    Flag {
        id: FlagId::RunId,
        long: "run-id",
        short: None,
        value: Some("ID"),
        commands: HEALTH_EVENTS | SWEEP,
        about: "the run_id of appended events [the run directory's name]",
        doc: "The run_id written into each event appended to RUN_DIR/events.jsonl. \
              The default is the run directory's name.",
    },
    Flag {
        id: FlagId::BeatStatus,
        long: "status",
        short: None,
        value: Some("STATUS"),
        commands: BEAT,
        about: "the status written into the heartbeat [alive]",
        doc: "The status field of the heartbeat: ready, alive, stopped or any word the \
              orchestrator uses. \
              stopped tells flatline the worker ended on purpose. \
              The default is alive.",
    },
    Flag {
        id: FlagId::BeatName,
        long: "name",
        short: None,
        value: Some("NAME"),
        commands: BEAT,
        about: "the worker name written into the heartbeat [the file's directory name]",
        doc: "The name field of the heartbeat. \
              The default is the name of the directory that holds HEARTBEAT_FILE.",
    },
    Flag {
        id: FlagId::Every,
        long: "every",
        short: None,
        value: Some("DURATION"),
        commands: BEAT,
        about: "beat again every DURATION until --while-pid exits or a signal arrives",
        doc: "Writes the heartbeat again every DURATION. \
              The loop ends when the process --while-pid exits, or when flatline receives \
              SIGINT, SIGTERM or SIGHUP; a final heartbeat with status stopped is written \
              then.",
    },
    Flag {
        id: FlagId::WhilePid,
        long: "while-pid",
        short: None,
        value: Some("PID"),
        commands: BEAT,
        about: "with --every: stop beating when this process exits",
        doc: "With --every: the process whose life the heartbeat reports, typically the \
              worker's own shell ($$). \
              flatline watches it through a pidfd and never signals it. \
              A PID that names no process is a usage error (exit 2): nothing is written.",
    },
    Flag {
        id: FlagId::Quiet,
        long: "quiet",
        short: Some('q'),
        value: None,
        commands: ALL,
        about: "print no records; problems still go to stderr",
        doc: "Prints nothing on stdout. \
              Problems are still reported on stderr and the exit status is unchanged.",
    },
    Flag {
        id: FlagId::Help,
        long: "help",
        short: Some('h'),
        value: None,
        commands: 0,
        about: "print help (for a command: flatline CMD --help) and exit",
        doc: "Prints help and exits. \
              After a command, prints that command's help.",
    },
    Flag {
        id: FlagId::Version,
        long: "version",
        short: Some('V'),
        value: None,
        commands: 0,
        about: "print the version and exit",
        doc: "Prints the version and exits.",
    },
    Flag {
        id: FlagId::Generate,
        long: "generate",
        short: None,
        value: Some("man"),
        commands: 0,
        about: "print the man page (roff) and exit",
        doc: "Prints the manual page in roff, generated from the same table as this help, and \
              exits.",
    },
];

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Ndjson,
    Json,
    Tsv,
    Prometheus,
}

impl Format {
    fn parse(text: &str) -> Option<Format> {
        match text {
            "text" => Some(Format::Text),
            "ndjson" => Some(Format::Ndjson),
            "json" => Some(Format::Json),
            "tsv" => Some(Format::Tsv),
            "prometheus" => Some(Format::Prometheus),
            _ => None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Run(Command),
    Help(Option<Command>),
    Version,
    Man,
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
    pub heartbeat_stale: Option<Millis>,
    pub heartbeat_dead: Option<Millis>,
    pub run_id: Option<String>,
    pub beat_status: Option<String>,
    pub beat_name: Option<String>,
    pub every: Option<Millis>,
    pub while_pid: Option<i64>,
    pub quiet: bool,
    /// Flags seen, to check they apply to the command.
    seen: Vec<FlagId>,
}

impl LowArgs {
    pub fn mode(&self) -> Mode {
        if self.help {
            Mode::Help(self.command)
        } else if self.version {
            Mode::Version
        } else if self.generate_man {
            Mode::Man
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

fn find_long(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.long == name)
}

fn find_short(short: char) -> Option<&'static Flag> {
    FLAGS.iter().find(|flag| flag.short == Some(short))
}

fn find_command(name: &str) -> Option<Command> {
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

fn unknown_flag(spelled: &str) -> UsageError {
    let shown = crate::text::escape_control(spelled);
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

fn unknown_command(name: &str) -> UsageError {
    let shown = crate::text::escape_control(name);
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

fn command_names() -> String {
    COMMANDS
        .iter()
        .map(|def| def.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The smallest `--max-stream-read`: the 1 MiB head and a tail of at least as much.
const MIN_STREAM_READ: u64 = 2 << 20;

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
                crate::text::escape_control(text)
            ));
        }
    };
    let number: u64 = digits.parse().map_err(|_| {
        format!(
            "'{}' is not a size (bytes, or a number with K, M or G, e.g. 32M)",
            crate::text::escape_control(text)
        )
    })?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("'{}' is too large", crate::text::escape_control(text)))
}

fn duration(flag: &Flag, value: &str) -> Result<Millis, UsageError> {
    clock::parse_duration(value)
        .map_err(|message| UsageError(format!("--{}: {message}", flag.long)))
}

fn positive_duration(flag: &Flag, value: &str) -> Result<Millis, UsageError> {
    let ms = duration(flag, value)?;
    if ms <= 0 {
        return Err(UsageError(format!(
            "--{}: must be greater than 0 ({})",
            flag.long,
            clock::DURATION_EXAMPLES
        )));
    }
    Ok(ms)
}

/// Gives a flag its meaning. Every `FlagId` is handled here (the match is exhaustive).
fn apply(low: &mut LowArgs, flag: &Flag, value: Option<String>) -> Result<(), UsageError> {
    let text = value.unwrap_or_default();
    match flag.id {
        FlagId::Format => {
            low.format = Some(Format::parse(&text).ok_or_else(|| {
                UsageError(format!(
                    "--format: unknown format '{text}' (use text, ndjson, json, tsv or prometheus)"
                ))
            })?);
        }
        FlagId::Now => {
            low.now = Some(clock::parse_rfc3339(&text).ok_or_else(|| {
                UsageError(format!(
                    "--now: '{text}' is not an RFC 3339 timestamp (e.g. 2026-11-22T08:00:00Z)"
                ))
            })?);
        }
        FlagId::QuietAfter => low.quiet_after = Some(positive_duration(flag, &text)?),
        FlagId::StaleAfter => low.stale_after = Some(positive_duration(flag, &text)?),
        FlagId::TimeoutAfter => low.timeout_after = Some(positive_duration(flag, &text)?),
        FlagId::StuckAfter => low.stuck_after = Some(positive_duration(flag, &text)?),
        FlagId::MaxRuntime => low.max_runtime = Some(positive_duration(flag, &text)?),
        FlagId::LaunchTimeout => low.launch_timeout = Some(positive_duration(flag, &text)?),
        FlagId::MaxClockSkew => low.max_clock_skew = Some(duration(flag, &text)?),
        FlagId::TaskCard => {
            if text.is_empty() {
                return Err(UsageError("--task-card: the id is empty".into()));
            }
            low.task_cards.push(text);
        }
        FlagId::State => {
            for state in text.split(',') {
                let known = crate::lifecycle::STATES.contains(&state)
                    || crate::heartbeat::HEALTHS.contains(&state);
                if !known {
                    return Err(UsageError(format!(
                        "--state: unknown state '{state}' (states: {}; worker healths: {})",
                        crate::lifecycle::STATES.join(", "),
                        crate::heartbeat::HEALTHS.join(", ")
                    )));
                }
                low.states.push(state.to_string());
            }
        }
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
        FlagId::IdentitySlack => low.identity_slack = Some(duration(flag, &text)?),
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
        FlagId::Quiet => low.quiet = true,
        FlagId::Help => low.help = true,
        FlagId::Version => low.version = true,
        FlagId::Generate => {
            if text != "man" {
                return Err(UsageError(format!(
                    "--generate: unknown target '{text}' (only 'man')"
                )));
            }
            low.generate_man = true;
        }
    }
    Ok(())
}

fn non_empty(flag: &Flag, text: String) -> Result<String, UsageError> {
    if text.is_empty() {
        return Err(UsageError(format!("--{}: the value is empty", flag.long)));
    }
    Ok(text)
}

fn check_applicability(low: &LowArgs) -> Result<(), UsageError> {
    if low.help || low.version || low.generate_man {
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

fn flag_synopsis(flag: &Flag) -> String {
    let mut text = String::new();
    if let Some(short) = flag.short {
        let _ = write!(text, "-{short}, ");
    }
    let _ = write!(text, "--{}", flag.long);
    if let Some(value) = flag.value {
        let _ = write!(text, " {value}");
    }
    text
}

fn wrap(text: &str, indent: usize, width: usize, out: &mut String) {
    let mut column = 0;
    for word in text.split_whitespace() {
        if column > indent && column + 1 + word.len() > width {
            out.push('\n');
            column = 0;
        }
        if column == 0 {
            out.push_str(&" ".repeat(indent));
            column = indent;
        } else {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push('\n');
}

/// `flatline --help`: commands, every flag in one line, the exit statuses.
pub fn help_text() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "flatline {} - watchdog for the worker processes of AI-agent orchestrators\n",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str("Usage: flatline COMMAND [OPTIONS] RUN_DIR...\n\nCommands:\n");
    command_list(&mut out);
    out.push_str("\nOptions:\n");
    let width = FLAGS
        .iter()
        .map(|flag| flag_synopsis(flag).len())
        .max()
        .unwrap_or(0);
    for flag in FLAGS {
        let _ = writeln!(out, "  {:<width$}  {}", flag_synopsis(flag), flag.about);
    }
    out.push_str(
        "\nDurations are systemd time spans: 1500ms, 45s, 1.5s, 4min, 1m30s, 1h 30min, 2d, 1w;\n\
         a bare number is seconds; parts of a millisecond round up (see DURATIONS in the man page).\n\
         Every option takes its value as the next argument or after '='.\n\nExit status:\n",
    );
    for (code, meaning) in exit::TABLE {
        let mut line = String::new();
        wrap(meaning, 9, 90, &mut line);
        let _ = write!(out, "  {code:<6}{}", &line[8..]);
    }
    out.push_str("\n'flatline COMMAND --help' describes a command and its options in full;\n'man flatline' has everything.\n");
    out
}

/// The commands, one line each, `help` last.
fn command_list(out: &mut String) {
    for def in COMMANDS {
        let _ = writeln!(out, "  {:<15} {}", def.name, def.about);
    }
    out.push_str("  help [COMMAND]  print this help, or a command's (flatline COMMAND --help)\n");
}

/// Bare `flatline`: what to type, on stderr (exit 2).
pub fn usage_text() -> String {
    let mut out = String::from("Usage: flatline COMMAND [OPTIONS] RUN_DIR...\n\nCommands:\n");
    command_list(&mut out);
    out.push_str(
        "\n'flatline --help' lists every option; 'flatline help COMMAND' describes a command.\n",
    );
    out
}

/// `flatline CMD --help`: the command's description and each of its flags in full.
pub fn command_help_text(command: Command) -> String {
    let def = command.def();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "flatline {} - {}\n\nUsage: flatline {} [OPTIONS] {}\n",
        def.name, def.about, def.name, def.operands
    );
    wrap(def.doc, 2, 90, &mut out);
    let _ = writeln!(out, "\n  Writes: {}\n\nOptions:", def.writes);
    for flag in FLAGS
        .iter()
        .filter(|flag| flag.commands & command.bit() != 0 || flag.commands == 0)
    {
        let _ = writeln!(out, "  {}", flag_synopsis(flag));
        wrap(flag.doc, 10, 90, &mut out);
    }
    out
}

/// `flatline --version`: the version, and the commit and its date when the build knew them
/// (build.rs asks git; a build without git or .git has only the version).
pub fn version_text() -> String {
    version_line(
        env!("CARGO_PKG_VERSION"),
        option_env!("FLATLINE_COMMIT"),
        option_env!("FLATLINE_COMMIT_DATE"),
    )
}

fn version_line(version: &str, commit: Option<&str>, date: Option<&str>) -> String {
    match (commit, date) {
        (Some(commit), Some(date)) => format!("flatline {version} ({commit} {date})\n"),
        (Some(commit), None) => format!("flatline {version} ({commit})\n"),
        _ => format!("flatline {version}\n"),
    }
}

/// Escapes text for roff: backslashes, leading dots and quotes, and ASCII hyphens in option
/// names (`\-`), so that mandoc and groff render them as typed.
fn roff(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// Roff text: every sentence starts a new line (as roff wants), and lines wrap before 80
/// columns.
fn roff_paragraph(text: &str, out: &mut String) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut line = String::new();
    for (i, word) in words.iter().enumerate() {
        let word = roff(word);
        if !line.is_empty() && line.len() + 1 + word.len() > 78 {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if line.is_empty() && (word.starts_with('.') || word.starts_with('\'')) {
            line.push_str("\\&");
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
        let next_starts_sentence = words
            .get(i + 1)
            .and_then(|next| next.chars().next())
            .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit());
        if (word.ends_with('.') && next_starts_sentence)
            || (word.ends_with(':') && i + 1 < words.len())
        {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
    }
    if !line.is_empty() {
        out.push_str(&line);
        out.push('\n');
    }
}

/// The date on the man page; change it with the text.
const MAN_DATE: &str = "November 22, 2026";

/// The man page, generated from `COMMANDS`, `FLAGS`, `exit::TABLE` and `man_sections()`.
pub fn man_page() -> String {
    let mut out = String::new();
    out.push_str(".\\\" Generated by 'flatline --generate man' from src/cli.rs; do not edit.\n");
    let _ = writeln!(out, ".Dd {MAN_DATE}\n.Dt FLATLINE 1\n.Os");
    out.push_str(
        ".Sh NAME\n.Nm flatline\n.Nd watchdog for the worker processes of AI-agent orchestrators\n",
    );
    out.push_str(".Sh SYNOPSIS\n");
    for def in COMMANDS {
        let _ = writeln!(
            out,
            ".Nm\n.Cm {}\n.Op Ar options\n.Ar {}",
            def.name,
            def.operands.trim_end_matches("...")
        );
        if def.operands.ends_with("...") {
            out.push_str(".Ar ...\n");
        }
    }
    out.push_str(".Nm\n.Cm help\n.Op Ar command\n");
    out.push_str(".Sh DESCRIPTION\n");
    paragraphs(crate::manual::DESCRIPTION, &mut out);
    out.push_str(".Sh COMMANDS\n.Bl -tag -width Ds\n");
    for def in COMMANDS {
        let _ = writeln!(
            out,
            ".It Cm {} Ar {}",
            def.name,
            def.operands.trim_end_matches("...")
        );
        roff_paragraph(def.doc, &mut out);
        out.push_str(".Pp\n");
        roff_paragraph(&format!("Writes: {}.", def.writes), &mut out);
        let options: Vec<&str> = FLAGS
            .iter()
            .filter(|flag| flag.commands & def.command.bit() != 0)
            .map(|flag| flag.long)
            .collect();
        if !options.is_empty() {
            out.push_str(".Pp\nOptions:\n");
            for (i, long) in options.iter().enumerate() {
                let separator = if i + 1 < options.len() { " ," } else { "" };
                let _ = writeln!(out, ".Fl \\-{}{separator}", roff(long));
            }
        }
    }
    out.push_str(
        ".It Cm help Op Ar command\nPrints the help, or that of\n.Ar command :\n\
         .Nm Cm help Ar command\nis\n.Nm Ar command Fl \\-help .\n",
    );
    out.push_str(".El\n.Sh OPTIONS\n.Bl -tag -width Ds\n");
    for flag in FLAGS {
        out.push_str(".It");
        if let Some(short) = flag.short {
            let _ = write!(out, " Fl {short} ,");
        }
        let _ = write!(out, " Fl \\-{}", roff(flag.long));
        if let Some(value) = flag.value {
            let _ = write!(out, " Ar {}", roff(value));
        }
        out.push('\n');
        roff_paragraph(flag.doc, &mut out);
    }
    out.push_str(".El\n");
    for (title, paragraphs) in crate::manual::SECTIONS {
        let _ = writeln!(out, ".Sh {title}");
        self::paragraphs(paragraphs, &mut out);
    }
    out.push_str(
        ".Sh EXIT STATUS\nWhen several apply, the first listed wins.\n.Bl -tag -width Ds\n",
    );
    for (code, meaning) in exit::TABLE {
        let _ = writeln!(out, ".It {}", roff(code));
        roff_paragraph(meaning, &mut out);
    }
    out.push_str(".El\n.Sh EXAMPLES\n");
    for (i, (what, command)) in crate::manual::EXAMPLES.iter().enumerate() {
        if i > 0 {
            out.push_str(".Pp\n");
        }
        roff_paragraph(what, &mut out);
        let _ = writeln!(out, ".Bd -literal -offset indent\n{}\n.Ed", roff(command));
    }
    // Plain names rather than .Xr: the lint would otherwise depend on which manuals the
    // machine running it has installed.
    out.push_str(".Sh SEE ALSO\njq(1), flock(2), kill(2), pidfd_open(2), proc(5)\n");
    out
}

/// Paragraphs after a section heading (the first needs no paragraph macro).
fn paragraphs(texts: &[&str], out: &mut String) {
    for (i, paragraph) in texts.iter().enumerate() {
        if i > 0 {
            out.push_str(".Pp\n");
        }
        roff_paragraph(paragraph, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> LowArgs {
        parse(args.iter().copied()).unwrap()
    }

    fn parse_err(args: &[&str]) -> String {
        parse(args.iter().copied()).unwrap_err().0
    }

    #[test]
    fn every_command_variant_has_one_table_entry() {
        for def in COMMANDS {
            assert_eq!(def.command.def().name, def.name);
            assert_eq!(
                COMMANDS.iter().filter(|d| d.command == def.command).count(),
                1
            );
        }
    }

    #[test]
    fn max_stream_read_takes_bytes_or_k_m_g() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        for bad in ["", "M", "1.5M", "32MB", "-1", "1T", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        let a = parse_ok(&["refresh", "--max-stream-read", "8M", "run"]);
        assert_eq!(a.max_stream_read, Some(8 << 20));
        assert!(parse_err(&["sweep", "--max-stream-read=1M", "run"]).contains("at least 2M"));
        assert!(parse_err(&["beat", "--max-stream-read=8M", "hb"]).contains("does not apply"));
    }

    #[test]
    fn flag_names_are_unique() {
        for flag in FLAGS {
            assert_eq!(
                FLAGS.iter().filter(|f| f.long == flag.long).count(),
                1,
                "{}",
                flag.long
            );
            assert_eq!(FLAGS.iter().filter(|f| f.id == flag.id).count(), 1);
            if let Some(short) = flag.short {
                assert_eq!(FLAGS.iter().filter(|f| f.short == Some(short)).count(), 1);
            }
        }
    }

    #[test]
    fn values_come_after_equals_or_as_the_next_argument() {
        let a = parse_ok(&["status", "--stale-after=30s", "--format", "json", "run"]);
        assert_eq!(a.command, Some(Command::Status));
        assert_eq!(a.stale_after, Some(30_000));
        assert_eq!(a.format, Some(Format::Json));
        assert_eq!(a.operands, vec![OsString::from("run")]);
        let b = parse_ok(&["--format=tsv", "status", "a", "b"]);
        assert_eq!(b.format, Some(Format::Tsv));
        assert_eq!(b.operands.len(), 2);
    }

    #[test]
    fn every_duration_option_takes_a_systemd_time_span() {
        for flag in FLAGS.iter().filter(|flag| flag.value == Some("DURATION")) {
            let command = COMMANDS
                .iter()
                .find(|def| flag.commands & def.command.bit() != 0)
                .map_or("status", |def| def.name);
            for text in ["4min", "1h 30min", "1.5"] {
                let typed = format!("--{}={text}", flag.long);
                let low = parse_ok(&[command, &typed, "r"]);
                assert!(low.seen.contains(&flag.id), "{typed}");
            }
            let message = parse_err(&[command, &format!("--{}", flag.long), "4 lightyears"]);
            assert!(
                message.starts_with(&format!("--{}: ", flag.long)),
                "{message}"
            );
            assert!(message.contains("e.g. 45s, 4min"), "{message}");
        }
        let low = parse_ok(&["sweep", "--deadline", "4min", "--grace=1m30s", "r"]);
        assert_eq!(low.deadline, Some(240_000));
        assert_eq!(low.grace, Some(90_000));
        let low = parse_ok(&["status", "--stale-after", "1h 30min", "r"]);
        assert_eq!(low.stale_after, Some(5_400_000));
    }

    #[test]
    fn unknown_names_get_the_nearest_known_one_when_it_is_close() {
        for (typed, message) in [
            (
                vec!["status", "--fromat=json"],
                "unknown option '--fromat' (did you mean --format?)",
            ),
            (
                vec!["status", "--formt"],
                "unknown option '--formt' (did you mean --format?)",
            ),
            (
                vec!["status", "--stale-afte", "1s"],
                "(did you mean --stale-after?)",
            ),
            (
                vec!["sweep", "--dedline", "4min"],
                "(did you mean --deadline?)",
            ),
            (
                vec!["stauts"],
                "unknown command 'stauts' (did you mean status?)",
            ),
            (
                vec!["reclam"],
                "unknown command 'reclam' (did you mean reclaim?)",
            ),
            (
                vec!["fanin"],
                "unknown command 'fanin' (did you mean fan-in?)",
            ),
            (vec!["hlep"], "unknown command 'hlep' (did you mean help?)"),
        ] {
            let error = parse_err(&typed);
            assert!(error.contains(message), "{typed:?}: {error}");
        }
        for typed in [
            vec!["status", "--bogus"],
            vec!["status", "-x"],
            vec!["status", "--ab"],
            vec!["frobnicate"],
            vec!["st"],
        ] {
            let error = parse_err(&typed);
            assert!(!error.contains("did you mean"), "{typed:?}: {error}");
        }
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("format", "format"), 0);
        assert_eq!(edit_distance("fromat", "format"), 1);
        assert_eq!(edit_distance("formt", "format"), 1);
        assert_eq!(edit_distance("formats", "format"), 1);
        assert_eq!(edit_distance("fxrmat", "format"), 1);
        assert_eq!(edit_distance("ofrmta", "format"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("bogus", "beat"), 4);
    }

    #[test]
    fn the_version_names_the_commit_and_its_date_when_known() {
        assert_eq!(version_line("1.2.3", None, None), "flatline 1.2.3\n");
        assert_eq!(
            version_line("1.2.3", Some("abc1234"), Some("2026-12-01")),
            "flatline 1.2.3 (abc1234 2026-12-01)\n"
        );
        assert_eq!(
            version_line("1.2.3", Some("abc1234"), None),
            "flatline 1.2.3 (abc1234)\n"
        );
        assert!(
            version_text().starts_with(&format!("flatline {} ", env!("CARGO_PKG_VERSION")))
                || version_text() == format!("flatline {}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn the_usage_lists_every_command_and_help() {
        let usage = usage_text();
        for def in COMMANDS {
            assert!(usage.contains(&format!("  {} ", def.name)), "{}", def.name);
        }
        assert!(usage.contains("  help [COMMAND] "));
        assert!(help_text().contains("  help [COMMAND] "));
    }

    #[test]
    fn repeatable_filters_accumulate() {
        let a = parse_ok(&[
            "status",
            "--task-card",
            "t1",
            "--task-card=t2",
            "--state",
            "stale,timed_out",
            "--state=queued",
            "r",
        ]);
        assert_eq!(a.task_cards, ["t1", "t2"]);
        assert_eq!(a.states, ["stale", "timed_out", "queued"]);
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        assert!(parse_err(&["frobnicate"]).contains("unknown command 'frobnicate'"));
        assert!(parse_err(&["status", "--bogus"]).contains("unknown option '--bogus'"));
        assert!(
            parse_err(&["status", "--stale-after", "45x"])
                .contains("--stale-after: invalid duration '45x': unknown unit 'x'")
        );
        assert!(parse_err(&["status", "--stale-after", "45x"]).contains("e.g. 45s, 4min"));
        assert!(parse_err(&["status", "--stale-after", "0s"]).contains("greater than 0"));
        assert!(parse_err(&["status", "--format", "xml"]).contains("unknown format 'xml'"));
        assert!(parse_err(&["status", "--now", "noon"]).contains("not an RFC 3339"));
        assert!(parse_err(&["status", "--state", "sleepy"]).contains("unknown state 'sleepy'"));
        assert!(parse_err(&["status", "--stale-after"]).contains("needs a value"));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_ok(&["--help"]).mode(), Mode::Help(None));
        assert_eq!(
            parse_ok(&["status", "-h"]).mode(),
            Mode::Help(Some(Command::Status))
        );
        assert_eq!(
            parse_ok(&["--help", "status"]).mode(),
            Mode::Help(Some(Command::Status))
        );
        assert_eq!(parse_ok(&["-V"]).mode(), Mode::Version);
        assert_eq!(parse_ok(&["--generate", "man"]).mode(), Mode::Man);
        assert_eq!(parse_ok(&[]).mode(), Mode::Usage);
        assert_eq!(parse_ok(&["--format=json"]).mode(), Mode::Usage);
        assert_eq!(parse_ok(&["help"]).mode(), Mode::Help(None));
        assert_eq!(
            parse_ok(&["help", "sweep"]).mode(),
            Mode::Help(Some(Command::Sweep))
        );
        assert!(parse_err(&["help", "swep"]).contains("did you mean sweep?"));
        assert_eq!(
            parse_ok(&["status", "r"]).mode(),
            Mode::Run(Command::Status)
        );
    }

    #[test]
    fn help_names_every_flag_and_exit_status() {
        let help = help_text();
        for flag in FLAGS {
            assert!(help.contains(&format!("--{}", flag.long)), "{}", flag.long);
        }
        for (code, _) in exit::TABLE {
            assert!(help.contains(&format!("  {code} ")), "{code}");
        }
        for def in COMMANDS {
            let command_help = command_help_text(def.command);
            for flag in FLAGS.iter().filter(|f| f.commands & def.command.bit() != 0) {
                assert!(command_help.contains(&format!("--{}", flag.long)));
            }
        }
    }

    #[test]
    fn the_committed_man_page_is_generated_from_the_table() {
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/flatline.1"))
                .unwrap_or_default();
        assert!(
            committed == man_page(),
            "man/flatline.1 differs from the flag table: run `make man` and commit the result"
        );
    }

    #[test]
    fn the_man_page_documents_every_flag() {
        let page = man_page();
        for flag in FLAGS {
            assert!(
                page.contains(&format!("Fl \\-{}", roff(flag.long))),
                "{}",
                flag.long
            );
        }
    }
}
