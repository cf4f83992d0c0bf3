//! The subcommands: their names, synopses and docs, and the bit sets that say which
//! commands a flag applies to.

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
