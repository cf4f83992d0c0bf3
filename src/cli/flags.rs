//! The one table of commands and flags: names, applicability, value names and docs.

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
    Explain,
    Run,
    Doctor,
    Finalize,
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
    CommandDef {
        command: Command::Explain,
        name: "explain",
        operands: "RUN_DIR [ID...]",
        about: "say why each delegation is in its state, with every piece of evidence",
        doc: "For each delegation named by ID (its delegation_id or its file name; by default \
              every delegation that needs attention, as status --check counts them, or \
              \"nothing needs attention\" in one line) prints the verdict and the evidence \
              behind it: the recorded timestamps and which one is the progress baseline, the \
              event stream's mtime, size and inode, the thresholds in force and where each \
              came from (the document, a flag, the last sweep's configuration or the \
              default), the process identity and how it was decided (fingerprint, or the time \
              window with its ends), the uid guard, and for a live, verified worker past its \
              quiet threshold what its process tree is waiting on (stall: stdin_pipe, \
              peer_closed, stopped, disk_wait, network_wait, idle, or unknown when the \
              evidence could not be read), and what sweep would do next and why. \
              Without threshold flags it judges with the thresholds the last sweep recorded \
              in RUN_DIR/.flatline/state.json, and says so. \
              In words on a terminal (--format text), else one JSON object per delegation \
              (kind explain). Exit status 2 for an ID that names no delegation.",
        writes: "nothing",
    },
    CommandDef {
        command: Command::Run,
        name: "run",
        operands: "COMMAND [ARG...]",
        about: "launch one worker under watch: record it, stream its output, reclaim it if stuck",
        doc: "Launches COMMAND as a worker of the run directory (--run-dir, else \
              $FLATLINE_RUN_DIR, else the current directory), like timeout(1) but judged on \
              progress. \
              Before the worker runs, a complete queued delegation \
              RUN_DIR/delegations/ID.json is placed without replacing anything (an existing id \
              is a usage error), with queued_at and launch_requested_at; the event stream \
              RUN_DIR/raw-events/ID.jsonl is created (never through a symlink, never an \
              existing file unless --stream names it) and becomes the worker's stdout and \
              stderr. \
              Once the child is spawned its identity is taken from a pidfd before it can be \
              reaped (start ticks, boot id, pid namespace, pidfs inode) and the delegation \
              becomes running with started_at, process_id, process_started_at and \
              process_fingerprint, plus worker_launch_evidence (launch_source, command, \
              raw_events_file, raw_events_inode, launcher): the worker is verified from birth, \
              never by the identity window. \
              The child gets stdin /dev/null (unless --stdin inherit), its own process group, \
              and FLATLINE_RUN_DIR, FLATLINE_DELEGATION_ID and FLATLINE_STREAM in its \
              environment; it waits before exec until it is recorded running, so COMMAND \
              never runs unrecorded, even when flatline run is killed meanwhile. \
              While it runs, flatline run applies the verdict of sweep to it and reclaims its \
              whole tree when it is stale or timed out (exit 124); SIGINT, SIGTERM and SIGHUP \
              are forwarded to its process group and recorded. When it exits, the delegation is \
              finalized at once from the wait status (exit_code or exit_signal) and the \
              stream's digest. A sweep leaves the delegation to flatline run while run is \
              alive (skipped_launcher), and takes over once it is gone. \
              The exit status is that of timeout(1): the child's own, 124 reclaimed, 125 \
              flatline run failed (a worker that cannot be recorded never runs), 126 COMMAND \
              cannot be executed, 127 not found, 128+N the child died of signal N. \
              The delegation id (--id, else a new unique one) is printed on stderr. \
              Options of flatline run come before COMMAND; from COMMAND on (or after --), \
              every argument is the worker's.",
        writes: "its own delegation and event stream (under RUN_DIR/.flatline/lock); signals its own child's tree",
    },
    CommandDef {
        command: Command::Doctor,
        name: "doctor",
        operands: "[RUN_DIR...]",
        about: "check run directories and their deployment; say how to fix each finding",
        doc: "Checks each RUN_DIR and the host it runs on, and prints one finding per problem \
              with how to fix it: not a run directory; RUN_DIR/.flatline/ owned by neither \
              the user that runs flatline (the unit's User=, root when absent, with \
              --check-unit; else the caller) nor the run directory's owner, writable by group \
              or others, or its lock and state.json with permissions for others or several \
              links; members of the lock group that are uids of worker processes or owners of \
              delegations other than the orchestrator (the run directory's owner); every \
              directory beneath RUN_DIR without the sticky bit that users other than its \
              owner can write (another writer could swap one worker's stream for another's); \
              paths named by worker specs and delegations that do not resolve under the rules \
              for named files (resolved, never opened); running delegations missing the \
              timestamps process identity needs; recorded timestamps further in the future \
              than --max-clock-skew; fingerprints of another pid namespace; kernel.pid_max \
              below 4194304; Yama ptrace_scope 3; /proc mounted with hidepid; pidfd_open and \
              openat2 unavailable; fs.protected_hardlinks 0. \
              With --check-unit FILE, the unit's ExecStart= command lines are read as \
              systemd reads them (prefixes -@+!: stripped, %i, %I and %f replaced by a \
              scratch run directory, quoting and escapes applied, ${VAR} expanded from \
              Environment= and reported when it cannot be) and run through flatline's own \
              parser; an unquoted space inside a duration is warned about. \
              Exit status 0 when nothing was found, 1 when something was, 2 for a usage \
              error.",
        writes: "nothing",
    },
    CommandDef {
        command: Command::Finalize,
        name: "finalize",
        operands: "RUN_DIR",
        about: "an operator closes a running delegation that can never be verified",
        doc: "Marks the running delegation --delegation ID (RUN_DIR/delegations/ID.json) \
              terminal, as --as says (failed or cancelled), without signalling anything, \
              under the run lock: child_agent.status, executor.status and \
              worker_lifecycle.state become that status, reclaim_state not_needed, \
              latest_failure {stage operator, reason operator, summary with --note}, and \
              updated_at, completed_at and returned_at now. \
              It is for a delegation whose process can never be verified (a pid recycled \
              within the identity window, pid 1 written by a broken orchestrator), which \
              would otherwise make every sweep exit 1 forever. \
              A delegation that is already terminal is left as it is (exit 0); an unknown id \
              is a usage error (exit 2); another file claiming the same delegation_id is a \
              problem (duplicate_delegation_id, exit 1) and nothing is written.",
        writes: "one delegation (atomically, under RUN_DIR/.flatline/lock)",
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

    pub(super) fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// Which commands a flag applies to, as a bit set over `Command`.
pub(super) const STATUS: u32 = 1 << (Command::Status as u32);
pub(super) const REFRESH: u32 = 1 << (Command::Refresh as u32);
pub(super) const RECLAIM: u32 = 1 << (Command::Reclaim as u32);
pub(super) const HEALTH_EVENTS: u32 = 1 << (Command::HealthEvents as u32);
pub(super) const BEAT: u32 = 1 << (Command::Beat as u32);
pub(super) const FAN_IN: u32 = 1 << (Command::FanIn as u32);
pub(super) const SWEEP: u32 = 1 << (Command::Sweep as u32);
pub(super) const EXPLAIN: u32 = 1 << (Command::Explain as u32);
pub(super) const RUN: u32 = 1 << (Command::Run as u32);
pub(super) const DOCTOR: u32 = 1 << (Command::Doctor as u32);
pub(super) const FINALIZE: u32 = 1 << (Command::Finalize as u32);
/// The commands over run directories (all but beat).
pub(super) const ALL: u32 = STATUS | REFRESH | RECLAIM | HEALTH_EVENTS | FAN_IN | SWEEP;
/// The commands that look at heartbeat workers.
pub(super) const HEARTBEAT_READERS: u32 = STATUS | HEALTH_EVENTS | SWEEP;
/// The commands that look at lifecycle thresholds.
pub(super) const VIEWERS: u32 = STATUS | RECLAIM | SWEEP | EXPLAIN | RUN;
/// The commands that write.
pub(super) const WRITERS: u32 = REFRESH | RECLAIM | HEALTH_EVENTS | FAN_IN | SWEEP;
/// The commands that read event streams.
pub(super) const STREAM_READERS: u32 = REFRESH | RECLAIM | SWEEP;
/// The commands that signal.
pub(super) const SIGNALLERS: u32 = RECLAIM | SWEEP;
/// The commands that read paths named inside documents.
pub(super) const PATH_READERS: u32 = STREAM_READERS | HEARTBEAT_READERS;

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
    BusyCpu,
    BusyIo,
    BusyLimit,
    ActivityWindow,
    NoActivity,
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
    RunDir,
    Id,
    Stream,
    Stderr,
    Stdin,
    Tee,
    NoWatch,
    CheckUnit,
    Delegation,
    FinalizeAs,
    Note,
    Attention,
    Force,
    Watch,
    Color,
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
        commands: ALL | EXPLAIN | DOCTOR | FINALIZE,
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
        commands: ALL | EXPLAIN | DOCTOR | FINALIZE,
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
        commands: VIEWERS | DOCTOR,
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
        commands: ALL | EXPLAIN | RUN,
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
        commands: WRITERS | FINALIZE,
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
        commands: PATH_READERS | EXPLAIN | DOCTOR,
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
        commands: PATH_READERS | RUN,
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
        commands: WRITERS | RUN | FINALIZE,
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
        commands: WRITERS | RUN | FINALIZE,
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
        commands: ALL | EXPLAIN,
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
        commands: ALL | DOCTOR,
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
        commands: SIGNALLERS | RUN,
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
        commands: SIGNALLERS | RUN,
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
        commands: ALL | EXPLAIN,
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
        commands: ALL | EXPLAIN,
        about: "the identity window opens at most this long before its anchor [60s]",
        doc: "Clamps the lower end of the identity window to at most this long before the \
              earliest recorded sign of life, whatever launch time a delegation claims; a \
              launch later than that sign is ignored (warning launch_after_start). \
              Default 60s.",
    },
    Flag {
        id: FlagId::BusyCpu,
        long: "busy-cpu",
        short: None,
        value: Some("PERCENT"),
        commands: VIEWERS,
        about: "a tree that used this share of one CPU since the last sample is busy [5%]",
        doc: "For a running worker whose process is alive and verified, flatline samples its \
              process tree (the worker and its descendants) from /proc: per process the CPU \
              of /proc/PID/stat (utime, stime and the reaped children's cutime and cstime) \
              and the bytes of /proc/PID/io (rchar and wchar), on the real clock. The samples \
              are kept in RUN_DIR/.flatline/activity.json (mode 0640) by refresh, reclaim and \
              sweep; status compares with them and writes nothing. \
              The tree is busy when, since the stored sample, it used at least PERCENT of one \
              CPU over the interval (a number with an optional %, e.g. 5 or 2.5%; above 100 for \
              several CPUs), or moved at least --busy-io, or a process of the tree started. \
              A stale or timed-out worker whose tree is busy is running_busy instead: not \
              reclaimed, for at most --busy-limit. \
              A stored sample of another process, one older than the stale threshold, one \
              younger than --activity-window, or one with higher totals than now counts as \
              none. The default is 5%.",
    },
    Flag {
        id: FlagId::BusyIo,
        long: "busy-io",
        short: None,
        value: Some("SIZE"),
        commands: VIEWERS,
        about: "a tree that read or wrote this much since the last sample is busy [256K]",
        doc: "Bytes read plus written by the worker's tree (rchar + wchar of /proc/PID/io, \
              reaped children included) since the stored sample from which it is busy. \
              Where io cannot be read (another user's process without CAP_SYS_PTRACE) the \
              sample says so and CPU alone counts. \
              SIZE is a number of bytes, or a number with the suffix K, M or G (powers of \
              1024). The default is 256K.",
    },
    Flag {
        id: FlagId::BusyLimit,
        long: "busy-limit",
        short: None,
        value: Some("DURATION"),
        commands: VIEWERS,
        about: "a busy tree defers a stale verdict for at most this progress age [60min]",
        doc: "A busy worker stays running_busy only while its progress age is below this; \
              from then on it is judged on its timestamps alone (stale or timed_out) however \
              busy it is. --stuck-after caps it too, and --max-runtime bounds every worker. \
              The default is 60min.",
    },
    Flag {
        id: FlagId::ActivityWindow,
        long: "activity-window",
        short: None,
        value: Some("DURATION"),
        commands: VIEWERS,
        about: "sample a worker about to be reclaimed without a usable sample again after this [500ms]",
        doc: "A worker about to be judged stale or timed out without a usable stored sample \
              (flatline just deployed, or the sample is too old) is sampled again once this \
              long has passed since its first sample, at the end of the scan of its run: at \
              most one such wait per invocation, across every RUN_DIR, with the run locks \
              let go meanwhile (an orchestrator may write; what flatline writes afterwards is \
              checked against the files again). Samples taken less than this apart are never \
              compared. The default is 500ms.",
    },
    Flag {
        id: FlagId::NoActivity,
        long: "no-activity",
        short: None,
        value: None,
        commands: VIEWERS,
        about: "judge on timestamps alone: no process samples, no running_busy",
        doc: "Restores the timestamp-only verdict: no process tree is sampled, no sample is \
              stored and no worker is running_busy.",
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
        commands: BEAT | SWEEP,
        about: "beat, or sweep, again every DURATION until a signal arrives",
        doc: "beat: writes the heartbeat again every DURATION. \
              The loop ends when the process --while-pid exits, or when flatline receives \
              SIGINT, SIGTERM or SIGHUP; a final heartbeat with status stopped is written \
              then. \
              sweep: for minimal containers without a timer, repeats the sweep every \
              DURATION, each pass exactly a fresh one-shot sweep (every run's lock taken and \
              released, every file read again, its own --deadline, at most DURATION), \
              sleeping between passes. \
              SIGTERM, SIGINT or SIGHUP between passes ends it with exit status 0 (the \
              service stopped normally); within a pass, the pass stops before its next side \
              effect and flatline exits 128+N.",
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
        commands: ALL | EXPLAIN | DOCTOR | FINALIZE,
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
        value: Some("TARGET"),
        commands: 0,
        about: "print the man page (man), the records' JSON Schema (schema) or shell completions (bash, zsh, fish) and exit",
        doc: "Prints what TARGET names, generated from the same table as this help, and exits: \
              man, the manual page in roff; schema, the JSON Schema (draft 2020-12) of every \
              record kind flatline prints, from the field table in src/output/schema.rs; bash, zsh or fish, the completion script for that \
              shell (make install puts them where each shell looks: \
              share/bash-completion/completions/flatline, share/zsh/site-functions/_flatline \
              and share/fish/vendor_completions.d/flatline.fish under PREFIX).",
    },
    Flag {
        id: FlagId::CheckUnit,
        long: "check-unit",
        short: None,
        value: Some("FILE"),
        commands: DOCTOR,
        about: "doctor: run a systemd unit's ExecStart= through flatline's parser",
        doc: "Reads the systemd unit FILE as systemd would (continuation lines, User=, \
              Environment=) and checks each ExecStart= command line: prefixes stripped, \
              specifiers %i, %I and %f resolved for a scratch run directory, split with \
              systemd's quoting, ${VAR} and $VAR expanded from Environment= (a variable the \
              unit does not set is a finding), then parsed and resolved by flatline itself, \
              so that an option flatline refuses is found before the timer runs. \
              A duration option followed by an unquoted word that is itself a duration \
              (--deadline 1h 30min) is a finding. \
              The unit's User= (root when absent) is the user .flatline/ is checked against.",
    },
    Flag {
        id: FlagId::Delegation,
        long: "delegation",
        short: None,
        value: Some("ID"),
        commands: STATUS | REFRESH | RECLAIM | SWEEP | FINALIZE | EXPLAIN,
        about: "only the delegation in RUN_DIR/delegations/ID.json (repeatable)",
        doc: "Limits every record and every action to the delegation whose file is \
              RUN_DIR/delegations/ID.json (the file name picks it; the delegation_id inside \
              is not trusted to). \
              May be given several times; heartbeat workers are left out, and sweep judges \
              no task card's fan-in (it saw only some of its members). \
              finalize needs exactly one; explain explains each one named, whether it needs \
              attention or not. \
              When another file of delegations/ claims the named file's delegation_id, the \
              two are a problem (duplicate_delegation_id: a stderr line naming both files, a \
              problem record with --attention, exit 1) and refresh, reclaim, sweep and \
              finalize act on neither; status still shows the named one.",
    },
    Flag {
        id: FlagId::FinalizeAs,
        long: "as",
        short: None,
        value: Some("STATUS"),
        commands: FINALIZE,
        about: "finalize: the terminal status, failed or cancelled",
        doc: "The status finalize gives the delegation: failed (the worker's work is lost) or \
              cancelled (nobody wants it any more). Required.",
    },
    Flag {
        id: FlagId::Note,
        long: "note",
        short: None,
        value: Some("TEXT"),
        commands: FINALIZE,
        about: "finalize: why, recorded in latest_failure.summary",
        doc: "A sentence recorded in latest_failure.summary and result_summary, so that the \
              next person knows why the delegation was closed by hand. Control characters \
              are dropped.",
    },
    Flag {
        id: FlagId::Attention,
        long: "attention",
        short: None,
        value: None,
        commands: STATUS,
        about: "only what needs a person, with unreadable files as problem records",
        doc: "Prints only the records that need attention, the set --check counts: a worker \
              that needs reclaim, a state of unknown, a running worker whose process is gone \
              or whose process id is invalid or unverifiable, a replaced or missing stream, a \
              stalled or dead heartbeat worker; plus every file that could not be read, \
              parsed or used, and a run lock held across runs, as a record of kind problem \
              ({kind, run_dir, path, message}) besides its line on standard error. \
              Nothing printed means nothing needs a person.",
    },
    Flag {
        id: FlagId::Force,
        long: "force",
        short: None,
        value: None,
        commands: RECLAIM,
        about: "reclaim the --delegation worker although it makes progress (an operator's)",
        doc: "An operator's reclaim of the delegations named with --delegation (required): a \
              running worker (any sub-state, stale or not) is reclaimed without the progress \
              re-check, and recorded as cancelled: child_agent.status, executor.status and \
              worker_lifecycle.state cancelled, latest_failure.reason operator. \
              Every identity and uid guard still holds: only a live, verified process of the \
              delegation file's owner is signalled (with its tree); an unverifiable, invalid \
              or foreign one is skipped (exit 1), and one without a process id is not forced. \
              Two files with one delegation_id are a problem (duplicate_delegation_id) and \
              --force acts on neither.",
    },
    Flag {
        id: FlagId::Watch,
        long: "watch",
        short: None,
        value: Some("DURATION"),
        commands: STATUS,
        about: "status again every DURATION: redraw the table, or print only what changed",
        doc: "Runs status again every DURATION, each time on the real clock (unless --now) and \
              every file read again. \
              In text (on a terminal) the table is redrawn; in ndjson the first iteration \
              prints every record and the later ones only the records in which a field other \
              than the ages (elapsed_since_progress_ms, heartbeat_age_ms), checked_at and \
              the activity counters changed. \
              SIGINT, SIGTERM or SIGHUP ends it with exit status 0.",
    },
    Flag {
        id: FlagId::Color,
        long: "color",
        short: None,
        value: Some("WHEN"),
        commands: ALL,
        about: "colour states in text tables: auto, always or never [auto]",
        doc: "Colours the STATE and HEALTH cells of text tables: red for what needs reclaim, \
              is unknown, failed or dead; yellow for quiet, launching, busy, stalled or \
              starting; green for active, returned or healthy; cyan for reclaimed or \
              cancelled. \
              auto (the default) colours only when standard output is a terminal and the \
              environment variable NO_COLOR is unset or empty; always and never decide \
              alone. Other formats are never coloured.",
    },
    Flag {
        id: FlagId::RunDir,
        long: "run-dir",
        short: None,
        value: Some("DIR"),
        commands: RUN,
        about: "the run directory of the worker [$FLATLINE_RUN_DIR, else .]",
        doc: "The run directory that flatline run records its worker in; it must exist, and \
              delegations/ and raw-events/ are created in it when absent. \
              The default is $FLATLINE_RUN_DIR, else the current directory.",
    },
    Flag {
        id: FlagId::Id,
        long: "id",
        short: None,
        value: Some("ID"),
        commands: RUN,
        about: "the delegation id of the worker [a new unique id]",
        doc: "The delegation id (and file name delegations/ID.json) of the worker: letters, \
              digits, '.', '_' and '-', at most 128. \
              An id that already has a delegation is a usage error. \
              The default is a new unique id, printed on stderr.",
    },
    Flag {
        id: FlagId::Stream,
        long: "stream",
        short: None,
        value: Some("FILE"),
        commands: RUN,
        about: "the worker's event stream [RUN_DIR/raw-events/ID.jsonl]",
        doc: "Where the worker's stdout goes: a path beneath the run directory (a relative \
              one is taken from it), never through a symlink. \
              A new file is created; an existing one is appended to only when it is a regular \
              file with one link owned by flatline run's user. \
              The default is raw-events/ID.jsonl, which must not exist yet.",
    },
    Flag {
        id: FlagId::Stderr,
        long: "stderr",
        short: None,
        value: Some("FILE"),
        commands: RUN,
        about: "send the worker's stderr to FILE instead of its stream",
        doc: "Appends the worker's stderr to FILE, a path beneath the run directory, never \
              through a symlink (created when missing; an existing one must be a regular file \
              with one link owned by flatline run's user). \
              By default stderr goes to the event stream with stdout.",
    },
    Flag {
        id: FlagId::Stdin,
        long: "stdin",
        short: None,
        value: Some("inherit|null"),
        commands: RUN,
        about: "the worker's stdin: /dev/null, or flatline run's own [null]",
        doc: "null (the default) gives the worker /dev/null as stdin, so that an agent CLI \
              can never hang reading a pipe nobody closes. \
              inherit gives it flatline run's own stdin; on a terminal the worker then stays \
              in the foreground process group, and SIGINT from the terminal reaches it \
              directly.",
    },
    Flag {
        id: FlagId::Tee,
        long: "tee",
        short: None,
        value: None,
        commands: RUN,
        about: "also copy the worker's stdout to flatline run's stdout",
        doc: "Gives the worker a pipe as stdout and copies what it writes both to its event \
              stream and to flatline run's stdout. \
              Without it the stream file itself is the worker's stdout: nothing is copied, \
              and a killed flatline run breaks nothing.",
    },
    Flag {
        id: FlagId::NoWatch,
        long: "no-watch",
        short: None,
        value: None,
        commands: RUN,
        about: "only record and wait: never reclaim the worker",
        doc: "Records the worker and waits for it, finalizing its delegation when it exits, \
              but never judges its progress: a sweep reclaims it if it gets stuck.",
    },
];
