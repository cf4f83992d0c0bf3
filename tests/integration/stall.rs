//! The stall diagnosis and `flatline explain` (SPEC §11 "Diagnosis", §13; issue 15).
//!
//! Real workers inside a private pid namespace, each recorded as a running delegation with
//! real timestamps (so the identity window verifies it) and judged with `--now` far ahead
//! (so each is past quiet without waiting): a Python and a C reader blocked on a stdin pipe
//! nobody closes, a Node script reading `process.stdin` (where node is installed), a
//! stopped process, and a client holding a connection its server closed (CLOSE_WAIT).
//! `explain` only reads; nothing is signalled but by the script, to its own children.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// `$1` run directory, `$2` flatline. Lines starting with `#` are the script's notes.
const WORKERS: &str = r##"
run=$1; bin=$2
now() { local us=${EPOCHREALTIME/./}; local ms=$((us / 1000));
        printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000)); }
running() { # id pid timestamp [extra lifecycle fields]
  printf '{"delegation_id":"%s","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"launch_requested_at":"%s","started_at":"%s","process_started_at":"%s","last_progress_at":"%s","stale_after_ms":1000%s}}\n' \
    "$1" "$2" "$3" "$3" "$3" "$3" "$4" > "$run/delegations/$1.json"
}
now; t=$REPLY
sleep 600 | python3 -c 'import sys; sys.stdin.read()' & running py $! "$t"
now; t=$REPLY
sleep 600 | head -c1 & running head $! "$t"
ids="py head stopped peer"
if command -v node >/dev/null; then
  now; t=$REPLY
  sleep 600 | node -e 'process.stdin.on("data", () => {})' & running node $! "$t"
  ids="$ids node"
else
  echo "#no node"
fi
now; t=$REPLY
sleep 600 & stopped=$!; running stopped $stopped "$t"; kill -STOP $stopped
# The stopped worker's document belongs to nobody, its process to root: the uid guard.
chown 65534 "$run/delegations/stopped.json"
exec 3< <(python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.close(); time.sleep(600)')
read -r port <&3
now; t=$REPLY
python3 -c 'import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); time.sleep(600)' "$port" & peer=$!
# The peer is recorded with a fingerprint: identity decided by it, not by the window.
read -r -a stat < /proc/$peer/stat
boot=$(cat /proc/sys/kernel/random/boot_id); ns=$(stat -L -c %i /proc/self/ns/pid)
running peer $peer "$t" ",\"process_fingerprint\":{\"start_ticks\":${stat[21]},\"boot_id\":\"$boot\",\"pid_ns\":$ns}"
want=$(( $(wc -w <<< "$ids") ))
# Each worker needs a moment to reach its wait: ask until every one shows one (at most 20 s).
for i in $(seq 200); do
  out=$("$bin" explain "$run" --now 2030-01-01T00:00:00Z --format ndjson $ids)
  got=$(grep -c -E '"code":"(stdin_pipe|stopped|peer_closed)"' <<< "$out")
  [ "$got" -ge "$want" ] && break
  sleep 0.1
done
echo "$out"
"$bin" explain "$run" --now 2030-01-01T00:00:00Z --format text $ids | sed 's/^/#text /'
kill -CONT $stopped
echo "#done"
"##;

struct Transcript {
    notes: Vec<String>,
    records: Vec<Value>,
}

fn transcript(stdout: &str) -> Transcript {
    let mut notes = Vec::new();
    let mut records = Vec::new();
    for line in stdout.lines() {
        match line.strip_prefix('#') {
            Some(note) => notes.push(note.to_string()),
            None => records.push(
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}\n{stdout}")),
            ),
        }
    }
    Transcript { notes, records }
}

fn by_id<'a>(records: &'a [Value], id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["delegation_id"] == id)
        .unwrap_or_else(|| panic!("no explain record for {id}: {records:#?}"))
}

#[track_caller]
fn assert_stall(record: &Value, code: &str, detail: &str) {
    assert_eq!(record["stall"]["code"], code, "{record:#}");
    let text = record["stall"]["detail"].as_str().unwrap();
    assert!(text.contains(detail), "{text}");
}

#[test]
fn live_workers_are_diagnosed_and_explained() {
    if !have("unshare") || !have("python3") || !is_root() {
        eprintln!("SKIPPED: needs root, unshare and python3");
        return;
    }
    let run = Run::new();
    // py's stream: written before the worker started, so the baseline stays recorded.
    let stream = run.write("raw-events/py.jsonl", "{\"type\":\"message\"}\n");
    set_mtime_ms(&stream, real_now_ms() - 60_000);
    let mut command = pid_namespace_bash(WORKERS);
    command.arg(run.path()).arg(bin()).env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(90));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let t = transcript(&out.stdout);
    assert_eq!(
        t.notes.last().map(String::as_str),
        Some("done"),
        "{}",
        out.stderr
    );

    let stdin = "blocked reading stdin, a pipe nobody closes; start it with < /dev/null";
    let py = by_id(&t.records, "py");
    assert_stall(py, "stdin_pipe", stdin);
    assert_stall(py, "stdin_pipe", "is in read");
    assert_stall(by_id(&t.records, "head"), "stdin_pipe", stdin);
    if t.notes.iter().any(|n| n == "no node") {
        eprintln!("SKIPPED: the node reader (node is not installed)");
    } else {
        let node = by_id(&t.records, "node");
        assert_stall(node, "stdin_pipe", stdin);
        assert_stall(node, "stdin_pipe", "in an epoll set");
    }
    let stopped = by_id(&t.records, "stopped");
    assert_stall(stopped, "stopped", "state T");
    assert_stall(by_id(&t.records, "peer"), "peer_closed", "CLOSE_WAIT");

    // Every piece of evidence SPEC §13 names, on a live worker decided by its window.
    assert_evidence(py);
    assert_eq!(py["process"]["identity"], "verified", "{py:#}");
    assert_eq!(py["process"]["decided_by"], "window");
    assert!(py["process"]["window"]["lower"].is_string(), "{py:#}");
    assert!(py["process"]["window"]["upper"].is_string(), "{py:#}");
    assert_eq!(py["baseline"]["field"], "last_progress_at");
    assert_eq!(py["stream"]["path"], "raw-events/py.jsonl");
    assert_eq!(py["stream"]["size"], 19);
    assert!(py["stream"]["inode"]["ino"].as_u64().unwrap() > 0, "{py:#}");
    assert!(py["stream"]["mtime"].is_string(), "{py:#}");
    assert_eq!(py["thresholds"]["stale"]["source"], "document");
    assert_eq!(py["uid_guard"]["passes"], true);
    assert_eq!(py["next"]["sweep"], "reclaim", "{py:#}");
    // The fingerprint decides the peer's identity.
    let peer = by_id(&t.records, "peer");
    assert_eq!(peer["process"]["identity"], "verified", "{peer:#}");
    assert_eq!(peer["process"]["decided_by"], "fingerprint");
    // The uid guard: nobody's document, root's process.
    assert_eq!(stopped["uid_guard"]["passes"], false, "{stopped:#}");
    assert_eq!(stopped["uid_guard"]["document_uid"], 65534);
    assert_eq!(stopped["uid_guard"]["process_uid"], 0);
    assert_eq!(stopped["next"]["sweep"], "skip");
    // And in words.
    let text: Vec<&str> = t
        .notes
        .iter()
        .filter_map(|n| n.strip_prefix("text "))
        .collect();
    let text = text.join("\n");
    assert!(text.contains("stall          stdin_pipe since "), "{text}");
    assert!(text.contains("identity verified by window"), "{text}");
    assert!(text.contains("uid guard      blocks"), "{text}");
}

/// The keys every explain object carries.
#[track_caller]
fn assert_evidence(record: &Value) {
    assert_eq!(record["kind"], "explain");
    assert_eq!(record["schema_version"], 1);
    for key in [
        "run_dir",
        "path",
        "delegation_id",
        "state",
        "verdict",
        "timestamps",
        "baseline",
        "stream",
        "configuration",
        "thresholds",
        "process",
        "uid_guard",
        "activity",
        "stall",
        "next",
        "warnings",
    ] {
        assert!(record.get(key).is_some(), "no {key} in {record:#}");
    }
    for threshold in ["quiet", "stale", "timeout", "max_runtime", "launch_timeout"] {
        assert!(
            record["thresholds"][threshold]["source"].is_string(),
            "{threshold}: {record:#}"
        );
    }
    assert!(record["baseline"]["field"].is_string(), "{record:#}");
    assert!(record["next"]["why"].is_string(), "{record:#}");
}

fn example() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/run"))
}

const EXAMPLE_NOW: &str = "2026-11-22T08:00:00Z";

#[test]
fn explain_on_the_bundled_example_names_every_piece_of_evidence() {
    let out = flatline([
        "explain".as_ref(),
        example().as_os_str(),
        "--now".as_ref(),
        EXAMPLE_NOW.as_ref(),
        "--format".as_ref(),
        "ndjson".as_ref(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = out.records();
    // By default: what `status --check` counts, the stale and the timed-out worker.
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["delegation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["d03-stale", "d04-timed-out"]);
    for record in &records {
        assert_evidence(record);
        assert_eq!(record["needs_attention"], true);
        assert_eq!(record["configuration"]["source"], "default");
        assert_eq!(record["thresholds"]["stale"]["ms"], 45_000);
        assert_eq!(record["thresholds"]["stale"]["source"], "default");
        assert_eq!(record["thresholds"]["timeout"]["note"], "2 × stale");
        assert_eq!(record["baseline"]["field"], "last_progress_at");
        assert_eq!(record["process"]["how"], "no process_id recorded");
        assert_eq!(record["next"]["sweep"], "mark_reclaimed");
        assert_eq!(record["stream"]["error"], "no such file", "{record:#}");
    }
    let stale = &records[0];
    assert_eq!(stale["state"], "stale");
    assert_eq!(stale["baseline"]["age_ms"], 60_000);
    assert_eq!(
        stale["timestamps"]["started_at"],
        "2026-11-22T07:53:25.000Z"
    );
    assert!(
        stale["verdict"]
            .as_str()
            .unwrap()
            .contains("worker progress age 60000 ms reached the stale threshold 45000 ms"),
        "{stale:#}"
    );
    assert_eq!(records[1]["state"], "timed_out");
}

#[test]
fn explain_names_delegations_by_id_or_file_name_and_refuses_unknown_ones() {
    let args = |ids: &[&str], format: &str| {
        let mut args = vec![
            "explain".to_string(),
            example().to_string_lossy().into_owned(),
        ];
        args.extend(ids.iter().map(|s| s.to_string()));
        args.extend([
            "--now".into(),
            EXAMPLE_NOW.into(),
            "--format".into(),
            format.into(),
        ]);
        args
    };
    let out = flatline(args(&["d01-active", "d05-returned.json"], "ndjson"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = out.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["state"], "running_active");
    assert_eq!(records[0]["next"]["sweep"], "wait");
    assert_eq!(records[1]["state"], "returned");
    assert_eq!(records[1]["next"]["sweep"], "none");

    let out = flatline(args(&["d01-active", "no-such-worker"], "ndjson"));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.records().len(), 1);
    assert!(out.stderr.contains("no-such-worker"), "{}", out.stderr);

    let out = flatline(args(&["d02-quiet"], "text"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("d02-quiet ("), "{}", out.stdout);
    for label in [
        "verdict",
        "timestamps",
        "baseline",
        "stream",
        "thresholds",
        "configuration",
        "process",
        "uid guard",
        "activity",
        "stall",
        "next",
    ] {
        assert!(
            out.stdout.contains(&format!("\n  {label} ")),
            "{label}: {}",
            out.stdout
        );
    }
}

#[test]
fn nothing_needs_attention_is_one_line() {
    let run = Run::new();
    run.delegation(
        "done",
        &delegation(
            "done",
            "completed",
            serde_json::json!({"started_at": "2026-11-22T07:00:00Z"}),
        ),
    );
    let out = flatline([
        "explain".as_ref(),
        run.arg(),
        "--now".as_ref(),
        EXAMPLE_NOW.as_ref(),
        "--format".as_ref(),
        "text".as_ref(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "nothing needs attention\n");
}

#[test]
fn explain_says_whose_thresholds_it_judged_with() {
    let run = Run::new();
    let doc = serde_json::json!({
        "delegation_id": "w",
        "child_agent": {"status": "running"},
        "worker_lifecycle": {"last_progress_at": "2026-11-22T07:59:00Z"},
    });
    run.delegation("w", &doc);
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            run.path().to_str().unwrap(),
            "w",
            "--now",
            EXAMPLE_NOW,
        ];
        args.extend_from_slice(extra);
        flatline(args).records().remove(0)
    };
    let record = explain(&[]);
    assert_eq!(record["configuration"]["source"], "default");
    assert_eq!(record["state"], "stale");
    // The last sweep ran with --stale-after 2m: explain judges with it, and says so.
    run.write(
        ".flatline/state.json",
        serde_json::to_vec(&serde_json::json!({"last_run": {"sweep": {
            "command": "sweep", "since": "2026-11-22T07:58:00.000Z", "exit_status": 0,
            "thresholds": {"stale_after_ms": {"ms": 120000, "source": "flag"}},
        }}}))
        .unwrap(),
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |rel: &str, mode: u32| {
        std::fs::set_permissions(run.path().join(rel), std::fs::Permissions::from_mode(mode))
            .unwrap()
    };
    mode(".flatline", 0o750);
    mode(".flatline/state.json", 0o640);
    let record = explain(&[]);
    assert_eq!(
        record["configuration"]["source"], "last_sweep",
        "{record:#}"
    );
    assert!(
        record["configuration"]["described"]
            .as_str()
            .unwrap()
            .contains("2026-11-22T07:58:00.000Z")
    );
    assert_eq!(record["thresholds"]["stale"]["source"], "last_sweep");
    assert_eq!(record["thresholds"]["stale"]["ms"], 120_000);
    assert_eq!(record["state"], "running_quiet");
    // A flag given to explain wins over the recorded sweep.
    let record = explain(&["--stale-after", "30s"]);
    assert_eq!(record["configuration"]["source"], "flag");
    assert_eq!(record["thresholds"]["stale"]["source"], "flag");
    assert_eq!(record["thresholds"]["stale"]["ms"], 30_000);
}

#[test]
fn writing_runs_record_their_configuration_and_explain_uses_the_sweeps() {
    let run = Run::new();
    let lifecycle = serde_json::json!({"started_at": "2026-11-22T07:00:00Z"});
    run.delegation("done", &delegation("done", "completed", lifecycle));
    let sweep = || {
        flatline([
            "sweep".as_ref(),
            "--stale-after".as_ref(),
            "1h".as_ref(),
            run.arg(),
        ])
    };
    let out = sweep();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let state = run.read_json(".flatline/state.json");
    let entry = &state["last_run"]["sweep"];
    assert_eq!(entry["command"], "sweep", "{state:#}");
    assert_eq!(entry["exit_status"], 0);
    assert_eq!(
        entry["thresholds"]["stale_after_ms"],
        serde_json::json!({"ms": 3_600_000, "source": "flag"})
    );
    assert_eq!(entry["thresholds"]["timeout_after_ms"]["source"], "default");
    assert!(entry["since"].is_string(), "{state:#}");
    // The same run again changes nothing: state.json is not rewritten.
    let before = run.read(".flatline/state.json");
    assert_eq!(sweep().code, 0);
    assert_eq!(run.read(".flatline/state.json"), before);
    // A refresh records its own entry and keeps the sweep's.
    let out = flatline(["refresh".as_ref(), run.arg()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let state = run.read_json(".flatline/state.json");
    assert_eq!(state["last_run"]["refresh"]["command"], "refresh");
    assert_eq!(state["last_run"]["sweep"], *entry);
    // explain judges with the sweep's --stale-after 1h: a minute without progress is
    // nothing (with the default 45s it would be stale).
    run.delegation(
        "w",
        &serde_json::json!({
            "delegation_id": "w",
            "child_agent": {"status": "running"},
            "worker_lifecycle": {"last_progress_at": "2026-11-22T07:59:00Z"},
        }),
    );
    let out = flatline([
        "explain".as_ref(),
        run.arg(),
        "w".as_ref(),
        "--now".as_ref(),
        EXAMPLE_NOW.as_ref(),
    ]);
    let record = &out.records()[0];
    assert_eq!(
        record["configuration"]["source"], "last_sweep",
        "{record:#}"
    );
    assert_eq!(record["thresholds"]["stale"]["ms"], 3_600_000);
    assert_eq!(record["state"], "running_active");
}

/// `$1` run directory, `$2` flatline: a root worker reading a stdin pipe, explained by
/// nobody, who may not look at another user's descriptors or system calls.
const UNREADABLE: &str = r##"
run=$1; bin=$2
now() { local us=${EPOCHREALTIME/./}; local ms=$((us / 1000));
        printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000)); }
now; t=$REPLY
sleep 600 | cat & pid=$!
printf '{"delegation_id":"cat","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"launch_requested_at":"%s","started_at":"%s","process_started_at":"%s","last_progress_at":"%s","stale_after_ms":1000}}\n' \
  "$pid" "$t" "$t" "$t" "$t" > "$run/delegations/cat.json"
chmod 755 "$run" "$run/delegations"; chmod 644 "$run/delegations/cat.json"
until [ "$(cut -d' ' -f1 /proc/$pid/syscall)" = 0 ]; do sleep 0.05; done
setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" explain "$run" cat --now 2030-01-01T00:00:00Z --format ndjson
echo "#done"
"##;

#[test]
fn what_cannot_be_read_is_said_never_guessed() {
    if !have("unshare") || !have("setpriv") || !is_root() {
        eprintln!("SKIPPED: needs root, unshare and setpriv");
        return;
    }
    let run = Run::new();
    let mut command = pid_namespace_bash(UNREADABLE);
    command.arg(run.path()).arg(bin()).env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let t = transcript(&out.stdout);
    assert_eq!(
        t.notes.last().map(String::as_str),
        Some("done"),
        "{}",
        out.stderr
    );
    let record = by_id(&t.records, "cat");
    assert_eq!(record["process"]["identity"], "verified", "{record:#}");
    // A root process's fd 0 is nobody's to look at: not stdin_pipe, not idle, but said.
    assert_stall(record, "unknown", "could not read fd 0 of process");
    assert_stall(record, "unknown", "permission denied");
}

#[test]
fn explain_never_prints_dangerous_characters_raw() {
    let run = Run::new();
    let id = "evil\u{1b}]0;title\u{7}\u{202e}\u{85}";
    let doc = serde_json::json!({
        "delegation_id": id,
        "child_agent": {"status": "running"},
        "worker_lifecycle": {"last_progress_at": "2026-11-22T07:00:00Z"},
    });
    run.delegation("evil", &doc);
    for format in ["ndjson", "text"] {
        let out = flatline([
            "explain".as_ref(),
            run.arg(),
            "--now".as_ref(),
            EXAMPLE_NOW.as_ref(),
            "--format".as_ref(),
            format.as_ref(),
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        for raw in ['\u{1b}', '\u{7}', '\u{202e}', '\u{85}'] {
            assert!(!out.stdout.contains(raw), "{format}: {:?}", out.stdout);
        }
        if format == "ndjson" {
            assert!(out.stdout.contains("\\u202e"), "{}", out.stdout);
            assert_eq!(out.records()[0]["delegation_id"], id);
        }
    }
}

#[test]
fn an_unreadable_delegation_is_one_line_and_exit_3() {
    let run = Run::new();
    run.write("delegations/bad.json", "{bad");
    let out = flatline([
        "explain".as_ref(),
        run.arg(),
        "--format".as_ref(),
        "text".as_ref(),
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("bad.json: invalid JSON"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "nothing needs attention\n");
}
