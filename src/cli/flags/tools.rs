//! The rest of the flag table, in `--help` order: activity evidence, the team layout,
//! `beat`, the operator's tools and `flatline run`.

use super::{Flag, FlagId};
use crate::cli::commands::*;

pub(super) const TOOLS: &[Flag] = &[
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
