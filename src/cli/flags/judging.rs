//! The first part of the flag table, in `--help` order: the output, the thresholds and the
//! selection, and how the writing and reclaiming commands act.

use super::{Flag, FlagId};
use crate::cli::commands::*;

pub(super) const JUDGING: &[Flag] = &[
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
];
