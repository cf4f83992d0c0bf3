//! man: the man page, generated from the flag table (`man_page`) and the prose that is not
//! (`DESCRIPTION`, `SECTIONS`, `EXAMPLES`).
//!
//! Paragraphs are plain text (one sentence may span lines); `man_page` turns them into
//! mdoc, one sentence per line.

use super::*;
use crate::exit;
use std::fmt::Write as _;

pub const DESCRIPTION: &[&str] = &[
    "flatline watches over the worker processes of AI-agent orchestrators (Codex CLI, Claude \
     Code, Gemini CLI, Kimi CLI and the like). \
     Orchestrators record each worker's life in files beneath a run directory: one JSON \
     delegation document per worker, the worker's JSON Lines event stream, and heartbeat files. \
     flatline reads those files in a single pass, computes the lifecycle view of every worker, \
     and prints it for people or for programs.",
    "Every command takes one or more run directories. \
     A directory named twice is read once. \
     A run directory without a delegations directory is empty, not an error. \
     Files are processed in file-name order, so output is deterministic. \
     One file's problem is one line on standard error and the run goes on.",
];

pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "RUN DIRECTORY",
        &[
            "A RUN_DIR has at least one of delegations/, workers/ and task-cards/; any other \
             directory is refused (exit 4, not a run directory) and the other RUN_DIRs are \
             still processed, so that pointing a command at the parent of the runs, or at \
             delegations/ itself, never passes as an empty run.",
            "RUN_DIR/delegations/NAME.json holds one delegation each. \
             Files whose names start with a dot (writers' temporary files) and NAME.result.json \
             files are skipped. \
             Only regular files are read, never through a symlink, at most 16 MiB each: a \
             FIFO, device or symlink in their place is an error for that entry, never a hang.",
            "flatline reads these fields of a delegation, all optional; a field of the wrong \
             JSON type counts as absent and is reported: delegation_id, task_card_id, \
             work_kind (else worker_request.work_kind, else worker_launch_evidence.work_kind), \
             child_agent.status (else executor.status; missing means queued), and in \
             worker_lifecycle: state, reclaim_state, queued_at, launch_requested_at, \
             started_at, process_id, process_started_at, process_last_seen_at, \
             last_progress_at, returned_at, stale_at, timed_out_at, exit_code, \
             process_fingerprint, quiet_after_ms, stale_after_ms and timeout_after_ms. \
             Timestamps are RFC 3339; an invalid one counts as absent and is reported.",
        ],
    ),
    (
        "HEARTBEAT WORKERS",
        &[
            "A run directory may also hold the team layout: \
             RUN_DIR/workers/NAME/worker-spec.json describes the worker (role) and its \
             heartbeat, inbox and outbox files (by default heartbeat.json, inbox.jsonl and \
             outbox.jsonl in the worker's directory). \
             The worker is its directory: its worker_id is NAME, whatever the spec's name \
             says (a different one is printed as spec_name with the warning \
             spec_name_mismatch). \
             Relative paths resolve from the worker's directory; then they are read under \
             the same rules as event streams: beneath RUN_DIR, no symlinks, regular files of \
             the spec's owner or root. \
             A path the spec names that does not exist gives the warning heartbeat_missing, \
             inbox_missing or outbox_missing in every record (a missing queue counts null), \
             and health-events and sweep say so on stderr once, when it first appears. \
             A worker directory without a spec, or a spec that does not parse, is reported. \
             A heartbeat is {\"status\", \"name\", \"ts\"}.",
            "Health: healthy while the last heartbeat is younger than --heartbeat-stale \
             (60s); stalled from then; dead from --heartbeat-dead (180s); stopped when the \
             heartbeat's status is stopped (not an issue, however old); starting when there is \
             no heartbeat yet and the spec is younger than the dead threshold, dead when it is \
             older. \
             A heartbeat that does not parse or has no ts falls back to the file's \
             modification time with the warning heartbeat_unparsable, so a writer caught \
             mid-write does not flap a worker to stalled. \
             A ts in the future follows the clock-skew rule of the lifecycle; too far ahead, \
             or a heartbeat that cannot be read, is unknown. \
             --check counts stalled, dead and unknown workers, not stopped or starting ones.",
            "A worker record has kind worker, run_dir, path, worker_id, spec_name (only \
             when it differs), role, health, heartbeat_status, last_heartbeat, heartbeat_age_ms, inbox_count and outbox_count \
             (non-blank lines, counted streaming over at most --max-stream-read bytes, with \
             the warning inbox_truncated or outbox_truncated past it), message, \
             needs_attention and warnings. \
             Workers belong to no task card: --task-card leaves them out.",
            "health-events appends to RUN_DIR/events.jsonl, in the run's event envelope \
             {id (a UUID v4), run_id (--run-id, else the run directory's name), ts, \
             schema_version 1, kind, actor (the worker), payload {message}}, one line per \
             change: worker_stalled, worker_dead, worker_recovered (from stalled or dead to \
             healthy or stopped). \
             The last health of every worker is kept in RUN_DIR/.flatline/state.json. \
             Lines are appended with O_APPEND and O_NOFOLLOW, one write each, to a regular \
             file with one link; a symlinked events.jsonl is refused. \
             When the log's last byte is not a newline (a writer died mid-line), the write \
             starts with one, so neither the earlier event nor flatline's is lost.",
        ],
    ),
    (
        "LIFECYCLE",
        &[
            "Thresholds: the stale threshold is worker_lifecycle.stale_after_ms, else \
             --stale-after, else 45s. \
             The timeout is worker_lifecycle.timeout_after_ms, else --timeout-after, else twice \
             the stale threshold. \
             --stuck-after caps both; the timeout is then raised to at least the stale \
             threshold. \
             The quiet threshold is worker_lifecycle.quiet_after_ms, else --quiet-after, else \
             half the stale threshold, kept between 1ms and the stale threshold. \
             Per-worker values out of order are clamped with the warning invalid_threshold; \
             command-line values out of order are a usage error.",
            "The progress baseline is last_progress_at, else started_at, else \
             process_started_at, else launch_requested_at, else queued_at. \
             A baseline in the future by no more than --max-clock-skew gives age 0 and the \
             warning clock_skew; one further ahead is not trusted and the state is unknown. \
             Without any baseline the state is unknown with the warning no_progress_baseline.",
            "A running worker whose run time reached --max-runtime is timed_out. A worker \
             is launching while started_at, process_started_at, stream evidence and a \
             verified process are all absent; with --launch-timeout given, a launching worker \
             is judged by it alone: stale once its launch waited past it, else launching. \
             Otherwise a worker whose progress age reached the timeout is timed_out; else one \
             whose age reached the stale threshold is stale. \
             Both need reclaim (reclaim_state reclaim_needed). \
             Else a launching worker is launching; else one \
             whose age reached the quiet threshold is running_quiet; else running_active. \
             child_agent.status completed is returned (resumable), failed is failed, cancelled \
             is cancelled and queued is queued; any other status is unknown with the warning \
             unknown_status. \
             A stored reclaim_state of reclaimed is kept, with the stored state.",
            "next_action is none for a reclaimed worker, finalize for a running worker whose \
             process is gone or reused, reclaim for stale and timed_out, advance for returned, \
             none for failed and cancelled, and await_worker otherwise. \
             A record needs attention (see --check) when it needs reclaim, its state is \
             unknown, its next_action is finalize, or it is running with an invalid or \
             unverifiable process id.",
        ],
    ),
    (
        "PROCESS IDENTITY",
        &[
            "Processes are looked at only for running delegations. \
             A process id must be a JSON integer from 2 to the kernel's pid_max, not flatline \
             itself nor one of its ancestors, and a process rather than a thread; anything else \
             is invalid_process_id and is never signalled. \
             A process is alive when kill(pid, 0) succeeds or fails with EPERM; a zombie has \
             exited.",
            "process_identity says whether the process now holding the pid is the worker. \
             With a process_fingerprint (start_ticks, boot_id, pid_ns, and pidfd_ino where the \
             kernel has pidfs) it is verified when they match, gone after a reboot, \
             unverifiable in another pid namespace, and reused otherwise; a field that cannot \
             be read is skipped, never a mismatch. \
             Without one, the time window decides. Its anchor E is the earliest recorded sign \
             of life (process_started_at, started_at, last_progress_at), kept with its upper \
             bound as worker_lifecycle.identity_anchor_at and identity_upper_bound_at by the \
             first writing run, so a last_progress_at flatline wrote never moves it. The upper \
             bound is where the signs' own precision ends (a whole-second timestamp stands for \
             the whole second; process_started_at may be 1s early), plus --identity-slack \
             (250ms). The lower bound is launch_requested_at (else queued_at) minus the slack, \
             at most --max-spawn-delay (60s) before E, and ignored when later than E (warning \
             launch_after_start). Started within the window: verified. Started more than 2s \
             after it while the worker's stream was last written before that start: reused. \
             Anything else is unverifiable: never signalled, never finalized. \
             Each writing run records CLOCK_REALTIME - CLOCK_BOOTTIME and its own pid \
             namespace in .flatline/state.json; after a clock step larger than the slack, window \
             verdicts are unverifiable (warning clock_step), and from another pid namespace \
             than the recorded one (or than a delegation's worker_lifecycle.pid_ns) a process \
             without a fingerprint is unverifiable, never gone. \
             A delegation, task card or worker spec counts as its owner's only with one link \
             and no write permission for others (root's: not for its group either); otherwise it \
             is foreign for every owner check and never replaced, and one with several links is \
             reported from its fstat and never read. \
             Kernel threads are never workers. \
             Start times come from the real clocks, never from --now.",
        ],
    ),
    (
        "EVENT STREAMS",
        &[
            "A worker's event stream is worker_launch_evidence.raw_events_file, else \
             RUN_DIR/raw-events/DELEGATION_ID.jsonl when the id is a safe file name \
             ([A-Za-z0-9._-], at most 128 characters, not . or ..). \
             Paths named inside documents are untrusted: a relative path is resolved beneath \
             RUN_DIR, an absolute one must lie beneath it (else path_outside_run, unless \
             --allow-outside-paths), no component may be a symlink (openat2 with \
             RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS), and only a regular file owned by the \
                          delegation's owner or by root is opened for reading, after an O_PATH open and \
             fstat: a FIFO, device, socket or directory is an error for that delegation, never \
             a hang. \
             A root-owned file with several hard links is refused too: it may be a link to a \
             secret elsewhere.",
            "A stream is read in one pass with bounded memory; lines longer than 16 MiB are \
             skipped and counted. \
             The shapes of Codex CLI exec --json (codex), legacy Codex and session rollout \
             files (codex-legacy), Claude Code stream-json (claude), Gemini CLI stream-json \
             (gemini), Kimi CLI stream-json (kimi) and generic assistant messages are \
             recognised per line. \
             The digest keeps the format, the last terminal event, the thread id, the final \
             assistant text (180 characters), the last usage object, whether a transport \
             failure was seen (only in non-JSON lines and error messages, never in the agent's \
             own text), a preview of the first non-JSON lines (220 characters) and the bytes \
             read.",
            "Finalizing: the last terminal event decides (success is completed, failure is \
             failed). \
             Without one, a stream of a format that has terminal events (codex, claude, \
             gemini) means the worker died mid-turn: failed, interrupted; other streams are \
             completed when a final text or usage was seen, else failed. \
             Failure reasons, the first that applies: execution_failed (a terminal failure, a \
             recorded non-zero exit_code, or a transport failure), interrupted, \
             invalid_output (bytes but nothing usable), unknown (no stream or an empty one).",
        ],
    ),
    (
        "RECLAIM",
        &[
            "reclaim signals a process only when all of these hold: its delegation is running \
             and needs reclaim; its process id is valid (2 to pid_max, not flatline or an \
             ancestor, a process and not a thread); the process is alive and verified as the \
             worker (by fingerprint or by the time window, with the real clocks); its real uid \
             is the delegation file's owner, or the file is root's, or --allow-foreign-uid is \
             given; and the pidfd opened on it, before any signal, still refers to a process \
             with the verified start time. \
             Signals go through pidfd_send_signal, so a pid recycled between the check and the \
             signal cannot be hit; where pidfds are refused, the start time is checked again \
             right before kill and the record says signal_via kill. \
             flatline never runs a shell or kill(1) and never signals a process group.",
            "Descendants are found in /proc before the first signal: processes whose parent \
             chain leads to the worker, that started no earlier than the worker, that pass the \
             same uid guard and are not flatline or its ancestors; each is opened as a pidfd \
             and checked at that moment. \
             A child that called setsid is still found (its parent link is kept). \
             A process whose parent in the tree exited before the snapshot cannot be found \
             (the children of a worker that had already exited, a daemon started by \
             double-forking): the kernel re-parented it to init or a subreaper, and flatline \
             leaves it alone. \
             --only-process signals the worker alone.",
            "What is recorded: a worker whose processes are confirmed gone (terminated, \
             killed) is marked failed with reclaim_state reclaimed, latest_failure reason \
             timeout, and a reclaim object {signal_via, termination, descendants_signalled, \
             survivors}. \
             A worker that could not be signalled (not_permitted) or survived SIGKILL is not \
             marked: it stays reclaim_needed and the exit status is 1, as for targets skipped \
             because their pid is invalid (skipped_invalid_pid), cannot be verified \
             (skipped_unverifiable) or belongs to another user (skipped_foreign). \
             A target whose process already exited is finalized from its event stream as \
             refresh would (already_exited), as is one whose pid now belongs to another \
             process (skipped_reused, nothing signalled); one without a process id is marked \
             reclaimed with termination no_process. \
             A signal or --deadline during the wait stops before SIGKILL: workers already gone \
             are recorded, the rest stay reclaim_needed (interrupted). \
             A target whose stream or document moved between the plan and the first signal is \
             dropped (progressed); one whose record could not be written (hard-linked, over \
             16 MiB once changed) is never signalled (skipped_unrecordable, exit 3). \
             Signalled targets are noted in .flatline/state.json first; a later run completes \
             the notes of a flatline that died mid-grace and leaves those of one still waiting.",
        ],
    ),
    (
        "FAN-IN",
        &[
            "A task card is ready when it has delegations and none is active (queued, running \
             or a status flatline does not know: the fan_in record then says which), or when \
             it has no delegation and RUN_DIR/task-cards/ID.json holds a \
             worker_result_envelope (else subagent_fan_in) whose status, trimmed and in any \
             case, is completed, passed or success (1 completed), failed or error (1 failed), \
             cancelled or canceled (1 cancelled). \
             When that document has parallel_fanout.required_lane_ids, each required lane's \
             lifecycle.status in parallel_fanout.lanes (an array of lane objects matched by \
             lane_id, or an object keyed by lane id) must be completed, failed, stalled, \
             reclaimed or merged. \
             A card's document is task-cards/ID.json only (another file claiming the id is a \
             duplicate_task_card problem), and a card counts only its owner's delegations \
             and root's; other members are listed in foreign_members, never counted or \
             stamped. \
             A ready card is collapsed once; a fan_in record has kind, run_dir, \
             task_card_id, ready, outcome (collapsed, already_collapsed, dry_run, failed), \
             collapsed_at, completed, failed, cancelled, summary and thread_ids, or, for a \
             card that is not ready, ready false, active (members active on disk after the \
             run's own writes) and the warnings and waiting_lanes that explain it.",
        ],
    ),
    (
        "SWEEP",
        &[
            "sweep is what a systemd timer runs: refresh, reclaim, fan-in and heartbeat \
             transitions in one pass over an in-memory snapshot. \
             It takes each run's lock once, reads each input once (apart from the comparison \
             before a rename), signals every stuck worker of every run together, decides \
             fan-in on the states that result, writes each changed document once with all of \
             its changes, appends the heartbeat events, and finishes within --deadline (5m by \
             default). \
             A sweep with nothing to do writes nothing. \
             contrib/systemd holds flatline-sweep@.service and flatline-sweep@.timer; the \
             instance is the run directory escaped with systemd-escape --path.",
            "With --format prometheus, status and sweep print gauges instead of records: \
             flatline_delegations{run,state}, flatline_delegations_reclaim_needed{run}, \
             flatline_delegations_needing_attention{run}, \
             flatline_oldest_progress_age_seconds{run}, flatline_stalls{run,code}, \
             flatline_workers{run,health}, \
             flatline_file_problems and flatline_last_run_timestamp_seconds, and for sweep \
             flatline_sweep_actions{action} and flatline_sweep_reclaimed_workers. \
             With --output FILE in node_exporter's textfile directory the file is replaced \
             atomically.",
        ],
    ),
    (
        "WRITING FILES",
        &[
            "Writes go through directory descriptors and never through a symlink; a file with \
             several hard links is not replaced. \
             A document is written to a temporary file .NAME.flatline.PID.tmp in the same \
             directory with the original's mode, owner and group, synced, and renamed over the \
             original; the directory is synced once per batch. \
             Just before the rename the original is read again and must be byte for byte what \
             flatline read; otherwise flatline re-reads it, recomputes its change (up to 3 \
             times) and then reports a conflict and leaves the file alone (exit 3). \
             Every field flatline does not own is kept, in order, numbers exactly; timestamps \
             are written as UTC RFC 3339 with milliseconds. \
             A run that changes nothing writes nothing.",
            "Writing commands hold an exclusive flock on RUN_DIR/.flatline/lock for the whole \
             run. \
             The lock works across users: .flatline is created with mode 0750 and the lock \
             and state.json with mode 0640, in the group --lock-group (default: the run \
             directory's group), so a member of that group, such as the orchestrator's user, \
             can hold the lock with flock RUN_DIR/.flatline/lock CMD; nobody else can. \
             An existing .flatline is accepted when flatline's user or the run directory's \
             owner owns it and neither its group nor others may write it; lock and state.json \
             must be regular files with one link and no permission for others. \
             Otherwise, or when this user cannot write .flatline, the run is refused (exit 4) \
             with what was found and how to repair it. \
             When another process holds the lock, flatline exits 75 at once naming its pid \
             and uid, or waits with --wait; a pid found holding it by 3 runs in a row is a \
             lock_held problem, which status --check counts. \
             An orchestrator that needs a guarantee against lost updates holds the same lock \
             while it rewrites a delegation; one that does not can still slip a change in \
             between flatline's check and its rename.",
            "SIGINT, SIGTERM and SIGHUP stop a run between files, never inside a write: what \
             was completed is kept and flatline exits 128+N. \
             A second signal ends it at once, which is safe too: a leftover temporary file is \
             removed by the next writing run.",
        ],
    ),
    (
        "OUTPUT",
        &[
            "ndjson prints one compact JSON object per line; kind is delegation, action or \
             summary. \
             An action record has kind, command, action (progressed, fingerprinted, \
             finalized, ...), outcome (written, dry_run, conflict, failed), run_dir, path, \
             delegation_id and what the action decided. \
             A delegation record has kind, run_dir, path, delegation_id, task_card_id, \
             work_kind, status, state, reclaim_state, process_id, process_alive, \
             process_identity, last_progress_at, progress_baseline, elapsed_since_progress_ms, \
             quiet_after_ms, stale_after_ms, timeout_after_ms, stale_at, timed_out_at, \
             next_action, transition, classification, recovery_action, recovery_reason, \
             summary, needs_attention and warnings. \
             Durations are integer milliseconds; timestamps are UTC RFC 3339 with milliseconds.",
            "Problems go to standard error, one line each: flatline: PATH: what is wrong. \
             Control characters are escaped. \
             When standard error is the journal (JOURNAL_STREAM names it), lines carry the \
             priority prefixes <3>, <4> and <6>. \
             A closed standard output (as with head) ends printing, not the work, and is not an \
             error.",
        ],
    ),
    (
        "DURATIONS",
        &[
            "Every option that takes a DURATION takes a systemd time span, as written in unit \
             files (systemd.time(7), the grammar of systemd's parse_sec): one or more numbers, \
             each with an optional fraction and an optional unit, with or without spaces \
             between them: 1500ms, 45s, 1.5s, 2m, 4min, 1m30s, 1h 30min, 2d, 1w. \
             A number without a unit is seconds. \
             Units: us, usec; ms, msec; s, sec, second, seconds; m, min, minute, minutes; h, \
             hr, hour, hours; d, day, days; w, week, weeks; M, month, months (30.44 days); y, \
             year, years (365.25 days). \
             flatline counts in whole milliseconds: a part of a millisecond rounds up to the \
             next one (1500us is 2ms), so a threshold is never shorter than written. \
             Negative spans, unknown units and infinity are usage errors (exit 2).",
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            "JOURNAL_STREAM: set by systemd; when it names standard error, problem lines carry \
           journald priority prefixes.",
        ],
    ),
];

pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Show every worker of a run as a table:",
        "flatline status --format text /srv/runs/r42",
    ),
    (
        "List the delegations that need reclaim, for a script:",
        "flatline status /srv/runs/r42 | jq -c 'select(.reclaim_state == \"reclaim_needed\")'",
    ),
    (
        "Fail a health check when anything needs attention:",
        "flatline status --check --quiet /srv/runs/*/",
    ),
    (
        "Bring running delegations up to date (progress, finished workers) every minute:",
        "flatline refresh --quiet /srv/runs/r42",
    ),
    (
        "Reclaim stuck workers and their process trees, waiting 5s for them to exit:",
        "flatline reclaim --grace 5s /srv/runs/r42",
    ),
    (
        "Show which processes reclaim would signal:",
        "flatline reclaim --dry-run /srv/runs/r42 | jq -c '{delegation_id, would_signal}'",
    ),
    (
        "See what refresh would finalize, without writing:",
        "flatline refresh --dry-run /srv/runs/r42 | jq -c 'select(.action == \"finalized\")'",
    ),
    (
        "Record heartbeat-worker health changes in the run's event log every minute:",
        "flatline health-events --quiet /srv/runs/r42",
    ),
    (
        "Heartbeat from a bash worker every 10s for as long as the worker's shell lives:",
        "flatline beat \"$RUN/workers/$NAME/heartbeat.json\" --every 10s --while-pid $$ &",
    ),
    (
        "Collapse the fan-in of one task card, failing when it is not ready yet:",
        "flatline fan-in --task-card card-api /srv/runs/r42",
    ),
    (
        "Sweep a run every minute with systemd:",
        "systemctl enable --now \"flatline-sweep@$(systemd-escape --path /srv/runs/r42).timer\"",
    ),
    (
        "Metrics for node_exporter's textfile collector:",
        "flatline status --format prometheus --output /var/lib/node_exporter/textfile_collector/flatline.prom /srv/runs/*/",
    ),
    (
        "Count workers per task card:",
        "flatline status --summary /srv/runs/r42 | jq -c 'select(.kind == \"summary\")'",
    ),
];

/// Escapes text for roff: backslashes, leading dots and quotes, and ASCII hyphens in option
/// names (`\-`), so that mandoc and groff render them as typed.
pub(super) fn roff(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// Roff text: every sentence starts a new line (as roff wants), and lines wrap before 80
/// columns.
pub(super) fn roff_paragraph(text: &str, out: &mut String) {
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
pub(super) const MAN_DATE: &str = "November 22, 2026";

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
    paragraphs(super::DESCRIPTION, &mut out);
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
    for (title, paragraphs) in super::SECTIONS {
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
    for (i, (what, command)) in super::EXAMPLES.iter().enumerate() {
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
pub(super) fn paragraphs(texts: &[&str], out: &mut String) {
    for (i, paragraph) in texts.iter().enumerate() {
        if i > 0 {
            out.push_str(".Pp\n");
        }
        roff_paragraph(paragraph, out);
    }
}
