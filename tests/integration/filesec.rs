//! Named files as their documents' owners could read them (SPEC §1.3, issue 12 class 4),
//! streams that were swapped or deleted (§3.2, class 12), and a view that never lags the
//! stream (§2, issue 13 item 2).
//!
//! The attackers are uid 65534: their documents are chowned to it, and what they do runs
//! under `setpriv --reuid=65534 --regid=65534 --clear-groups`. Everything that can send a
//! signal runs inside `unshare --pid --fork --mount-proc`.

use crate::support::*;
use serde_json::{Value, json};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const AGENT: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn give_to_agent(path: &Path) {
    chown(path, Some(AGENT), Some(AGENT)).unwrap();
}

/// `$1` run, `$2` flatline. pid 1 of the namespace (this script) carries the secret in its
/// environment; flatline reads for the agent's documents with `--allow-outside-paths`.
const READ_AS_OWNER: &str = r##"
run=$1; bin=$2
true & gone=$!; wait "$gone"
for f in "$run"/delegations/*.json; do
  sed -i "s/GONE_PID/$gone/" "$f"
done
"$bin" refresh --format=ndjson --allow-outside-paths --settle 0s "$run"; echo "#refresh exit $?"
"$bin" status --format=ndjson --allow-outside-paths "$run"; echo "#status exit $?"
"##;

#[test]
fn named_files_are_read_only_as_their_documents_owner_could() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    let long_ago = real_now_ms() - 3_600_000;
    let streams = write_agent_delegations(&run, long_ago);
    write_agent_workers(&run);

    let mut command = pid_namespace_bash(READ_AS_OWNER);
    command
        .arg(run.path())
        .arg(bin())
        .env("FLATLINE_TEST_ENV_SECRET", "TOPSECRET-C");
    let out = run_command(&mut command, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        // Exit 3: each refused file is a problem for its document; the run goes on.
        out.stdout.contains("#refresh exit 3") && out.stdout.contains("#status exit 3"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let records: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // Nothing of root's files reaches the output or any document.
    let mut everything = format!("{}\n{}", out.stdout, out.stderr);
    for entry in std::fs::read_dir(run.path().join("delegations")).unwrap() {
        everything.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for secret in ["TOPSECRET-A", "TOPSECRET-B", "TOPSECRET-C", "TOPSECRET-D"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
    // Each refusal is said, naming the file and not_readable_by_owner.
    for (id, stream) in &streams[..3] {
        let line = format!(
            "flatline: {}: event stream {stream}: not_readable_by_owner: the document's owner (uid 65534) could not read it, refused",
            run.delegation_path(&format!("{id}.json")).display()
        );
        assert!(out.stderr.contains(&line), "{line}\n{}", out.stderr);
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert_eq!(doc["child_agent"]["status"], "running", "{id}: {doc}");
    }
    for what in ["heartbeat", "inbox"] {
        let file = if what == "heartbeat" {
            abs_path(&run, "secret-heartbeat.json")
        } else {
            abs_path(&run, "secret-inbox.jsonl")
        };
        let line = format!("{what} {file}: not_readable_by_owner");
        assert!(out.stderr.contains(&line), "{line}\n{}", out.stderr);
    }
    let worker = |id: &str| {
        records
            .iter()
            .find(|r| r["kind"] == "worker" && r["worker_id"] == id)
            .unwrap_or_else(|| panic!("no worker {id}: {}", out.stdout))
            .clone()
    };
    let thief = worker("w-thief");
    assert_eq!(thief["heartbeat_status"], Value::Null, "{thief}");
    assert_eq!(thief["inbox_count"], Value::Null, "{thief}");

    // The controls: what the agent may read still works.
    let control = run.read_json("delegations/d-control.json");
    assert_eq!(
        control["child_agent"]["status"], "failed",
        "finalized: {control}"
    );
    assert!(
        control["worker_result"]["raw_output_preview"]
            .as_str()
            .is_some_and(|p| p.contains("CONTROL-OK")),
        "{control}"
    );
    let own = worker("w-own");
    assert_eq!(own["heartbeat_status"], "alive", "{own}");
    assert_eq!(own["inbox_count"], 2, "{own}");
}

/// `rel` in the run, as an absolute path.
fn abs_path(run: &Run, rel: &str) -> String {
    run.path().join(rel).display().to_string()
}

/// Root's secrets in the run, the agent's own stream, and a delegation of the agent's (an
/// exited worker) naming each of them and /proc/1/environ as its stream.
fn write_agent_delegations(run: &Run, long_ago: i64) -> [(&'static str, String); 4] {
    // Root's secrets inside the run: a 0600 file, and a 0644 file in a 0700 directory.
    let secret = run.write(
        "orchestrator-secret.txt",
        "TOPSECRET-A orchestrator token\n",
    );
    chmod(&secret, 0o600);
    let closed = run.write("private/notes.jsonl", "TOPSECRET-B behind a closed door\n");
    chmod(&closed, 0o644);
    chmod(&run.path().join("private"), 0o700);
    // The agent's own stream: the control that must still work.
    let own = run.write(
        "raw-events/d-control.jsonl",
        "CONTROL-OK the agent's own output\n",
    );
    chmod(&own, 0o600);
    give_to_agent(&own);
    for path in [&secret, &closed, &own] {
        set_mtime_ms(path, long_ago);
    }
    let streams = [
        ("d-secret", "orchestrator-secret.txt".to_string()),
        ("d-closed", "private/notes.jsonl".to_string()),
        ("d-environ", "/proc/1/environ".to_string()),
        ("d-control", "raw-events/d-control.jsonl".to_string()),
    ];
    for (id, stream) in &streams {
        let mut doc = delegation(
            id,
            "running",
            json!({"process_id": "GONE_PID", "last_progress_at": rfc3339(long_ago - 60_000)}),
        );
        doc["worker_launch_evidence"] = json!({"raw_events_file": stream});
        let text = serde_json::to_string_pretty(&doc)
            .unwrap()
            .replace("\"GONE_PID\"", "GONE_PID");
        let path = run.write(&format!("delegations/{id}.json"), format!("{text}\n"));
        give_to_agent(&path);
    }
    streams
}

/// Heartbeat workers of the agent: one names root's heartbeat and inbox, one its own.
fn write_agent_workers(run: &Run) {
    // Heartbeat workers of the agent: one names root's heartbeat and inbox, one its own.
    let beat = |status: &str| {
        format!(
            "{{\"status\":\"{status}\",\"name\":\"w\",\"ts\":\"{}\"}}\n",
            rfc3339(real_now_ms())
        )
    };
    let root_beat = run.write("secret-heartbeat.json", beat("TOPSECRET-D"));
    chmod(&root_beat, 0o600);
    let root_inbox = run.write("secret-inbox.jsonl", "{\"m\":1}\n{\"m\":2}\n{\"m\":3}\n");
    chmod(&root_inbox, 0o600);
    let own_beat = run.write("workers/w-own/heartbeat.json", beat("alive"));
    let own_inbox = run.write("workers/w-own/inbox.jsonl", "{\"m\":1}\n{\"m\":2}\n");
    for path in [&own_beat, &own_inbox] {
        chmod(path, 0o600);
        give_to_agent(path);
    }
    for (name, heartbeat, inbox) in [
        (
            "w-thief",
            abs_path(run, "secret-heartbeat.json"),
            abs_path(run, "secret-inbox.jsonl"),
        ),
        (
            "w-own",
            abs_path(run, "workers/w-own/heartbeat.json"),
            abs_path(run, "workers/w-own/inbox.jsonl"),
        ),
    ] {
        let spec = run.write(
            &format!("workers/{name}/worker-spec.json"),
            serde_json::to_vec(&json!({"name": name, "role": "r", "heartbeat": heartbeat, "inbox": inbox, "outbox": abs_path(run, "workers/none.jsonl")})).unwrap(),
        );
        give_to_agent(&spec);
    }
}

const CODEX_SUCCESS: &str = include_str!("../fixtures/streams/codex-exec-commands.jsonl");
const CODEX_FAILED: &str = include_str!("../fixtures/streams/codex-exec-turn-failed.jsonl");
const CODEX_NO_TERMINAL: &str = include_str!("../fixtures/streams/codex-exec-no-terminal.jsonl");

fn refresh_at(run: &Run, now: &str) -> Outcome {
    flatline([
        std::ffi::OsStr::new("refresh"),
        std::ffi::OsStr::new("--format=ndjson"),
        std::ffi::OsStr::new("--now"),
        std::ffi::OsStr::new(now),
        run.arg(),
    ])
}

#[test]
fn a_stream_renamed_over_another_never_becomes_that_workers_result() {
    if !have("setpriv") || !is_root() {
        eprintln!("SKIPPED: needs root and setpriv");
        return;
    }
    let run = Run::new();
    // raw-events/ is writable by the agents' group, without the sticky bit: any of them can
    // rename one stream over another (doctor flags such a directory; here it is the attack).
    let raw = run.path().join("raw-events");
    std::fs::create_dir(&raw).unwrap();
    chown(&raw, Some(0), Some(AGENT)).unwrap();
    chmod(&raw, 0o775);
    for id in ["good", "bad"] {
        run.delegation(
            id,
            &delegation(id, "running", json!({"last_progress_at": at(-60_000)})),
        );
        let stream = run.write(&format!("raw-events/{id}.jsonl"), CODEX_NO_TERMINAL);
        set_mtime_ms(&stream, NOW_MS - 30_000);
    }
    // The first writing command records each stream's identity with the progress it shows.
    let first = refresh_at(&run, NOW);
    assert_eq!(first.code, 0, "{}", first.stderr);
    for id in ["good", "bad"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert!(
            doc["worker_lifecycle"]["raw_events_inode"]["ino"].is_u64(),
            "{doc}"
        );
    }
    // The workers end: one completes, one fails.
    for (id, text) in [("good", CODEX_SUCCESS), ("bad", CODEX_FAILED)] {
        let stream = run.write(&format!("raw-events/{id}.jsonl"), text);
        set_mtime_ms(&stream, NOW_MS - 10_000);
    }
    // The attack: the failed worker's agent renames the completed worker's stream over its
    // own (the writes above changed contents, not files: the recorded inodes still hold).
    let attack = run_command(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "mv",
                "-f",
            ])
            .arg(raw.join("good.jsonl"))
            .arg(raw.join("bad.jsonl")),
        HANG_GUARD,
    );
    assert_eq!(
        attack.code, 0,
        "the attack itself failed: {}",
        attack.stderr
    );

    let out = refresh_at(&run, &at(10_000));
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: event stream raw-events/bad.jsonl: stream_replaced: ",
            run.delegation_path("bad.json").display()
        )),
        "{}",
        out.stderr
    );
    let bad = run.read_json("delegations/bad.json");
    assert_eq!(bad["child_agent"]["status"], "running", "{bad}");
    assert!(bad.get("worker_result").is_none(), "{bad}");
    assert!(
        !serde_json::to_string(&bad)
            .unwrap()
            .contains("All three tests pass"),
        "the other worker's answer: {bad}"
    );
    // The completed worker's stream is gone from under it: not finalized as "no stream".
    let good = run.read_json("delegations/good.json");
    assert_eq!(good["child_agent"]["status"], "running", "{good}");
    // Both need a person.
    let view = status(&run, &["--check"]);
    assert_eq!(view.code, 1, "{}", view.stderr);
    let warnings = |id: &str| view.by_id(id)["warnings"].clone();
    assert_eq!(warnings("bad"), json!(["stream_replaced"]));
    assert_eq!(warnings("good"), json!(["stream_missing"]));
}

/// `$1` run, `$2` flatline. Two workers with verified fingerprints and a progress record
/// ten minutes old: `writer` appends to its stream every second, `stuck` never writes.
/// `status` (the real clock) and then `flatline reclaim` alone run while they live.
const NO_VERDICT_LAGS: &str = r##"
run=$1; bin=$2
for s in {1..16} {18..64}; do trap "echo \"#init got signal $s\"" $s 2>/dev/null; done
now_ms() { local us=${EPOCHREALTIME/./}; REPLY=$((us / 1000)); }
rfc3339() { printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $(($1 / 1000)) $(($1 % 1000)); }
boot=$(< /proc/sys/kernel/random/boot_id)
ns=$(stat -L -c %i /proc/self/ns/pid)
start_ticks() { local stat; read -r stat < "/proc/$1/stat"; local rest=${stat##*) }; set -- $rest; REPLY=${20}; }
( while :; do echo '{"type":"item.started","item":{"type":"command_execution"}}' >> "$run/raw-events/writer.jsonl"; sleep 1; done ) &
writer=$!
sleep 300 & stuck=$!
now_ms; rfc3339 $((REPLY - 600000)); old=$REPLY
for pair in "writer $writer" "stuck $stuck"; do
  set -- $pair
  start_ticks "$2"
  printf '{"delegation_id":"%s","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s","stale_after_ms":5000,"process_fingerprint":{"start_ticks":%s,"boot_id":"%s","pid_ns":%s}}}\n' \
    "$1" "$2" "$old" "$old" "$REPLY" "$boot" "$ns" > "$run/delegations/$1.json"
done
sleep 2.5
"$bin" status --format=ndjson "$run"; echo "#status exit $?"
"$bin" reclaim --format=ndjson --grace 1s "$run"; echo "#reclaim exit $?"
kill -0 "$writer" 2>/dev/null && echo "#writer alive"
kill -0 "$stuck" 2>/dev/null && echo "#stuck alive"
kill "$writer" 2>/dev/null
echo "#done"
"##;

#[test]
fn a_worker_writing_its_stream_is_active_and_reclaim_alone_spares_it() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    std::fs::create_dir(run.path().join("raw-events")).unwrap();
    let stuck_stream = run.write("raw-events/stuck.jsonl", CODEX_NO_TERMINAL);
    set_mtime_ms(&stuck_stream, real_now_ms() - 600_000);
    let mut command = pid_namespace_bash(NO_VERDICT_LAGS);
    command.arg(run.path()).arg(bin()).env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let notes: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .collect();
    let records: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(
        notes.last(),
        Some(&"done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let view = |id: &str| {
        records
            .iter()
            .find(|r| r["kind"] == "delegation" && r["delegation_id"] == id)
            .unwrap_or_else(|| panic!("no view of {id}: {}", out.stdout))
    };
    // status, on the real clock, already sees what the stream shows.
    let writer = view("writer");
    assert_eq!(writer["process_identity"], "verified", "{writer}");
    assert_eq!(writer["state"], "running_active", "{writer}");
    assert_eq!(writer["progress_baseline"], "stream_mtime", "{writer}");
    assert!(writer["elapsed_since_progress_ms"].as_i64().unwrap() < 5_000);
    assert_eq!(view("stuck")["state"], "timed_out");
    // reclaim alone signals only the stuck worker; the writer lives on.
    let actions: Vec<&Value> = records.iter().filter(|r| r["kind"] == "action").collect();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["delegation_id"], "stuck", "{}", actions[0]);
    assert_eq!(actions[0]["termination"], "terminated", "{}", actions[0]);
    assert!(notes.contains(&"writer alive"), "{notes:?}");
    assert!(!notes.contains(&"stuck alive"), "{notes:?}");
    assert!(
        !notes.iter().any(|n| n.starts_with("init got signal")),
        "{notes:?}"
    );
    assert_eq!(
        run.read_json("delegations/writer.json")["child_agent"]["status"],
        "running"
    );
}

#[test]
fn an_unprivileged_flatline_reads_only_for_its_own_users_documents() {
    if !have("setpriv") || !is_root() {
        eprintln!("SKIPPED: needs root and setpriv");
        return;
    }
    let run = Run::new();
    let stale = at(-600_000);
    for (id, owner) in [("own", 1000), ("other", AGENT)] {
        let doc = run.delegation(
            id,
            &delegation(id, "running", json!({"last_progress_at": stale})),
        );
        chown(&doc, Some(owner), Some(owner)).unwrap();
        // World-readable streams: the other user's is refused all the same.
        let stream = run.write(&format!("raw-events/{id}.jsonl"), CODEX_NO_TERMINAL);
        chmod(&stream, 0o644);
        chown(&stream, Some(owner), Some(owner)).unwrap();
        set_mtime_ms(&stream, NOW_MS - 1_000);
    }
    let out = run_command(
        Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups"])
            .arg(bin())
            .args(["status", "--format=ndjson", "--now", NOW])
            .arg(run.path()),
        HANG_GUARD,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let own = out.by_id("own");
    assert_eq!(own["state"], "running_active", "{own}");
    assert_eq!(own["progress_baseline"], "stream_mtime", "{own}");
    let other = out.by_id("other");
    assert_eq!(other["state"], "timed_out", "{other}");
    assert_eq!(other["progress_baseline"], "last_progress_at", "{other}");
    assert_eq!(
        other["warnings"],
        json!(["not_readable_by_owner"]),
        "{other}"
    );
}

#[test]
fn a_stream_is_recorded_once_even_when_it_shows_nothing_new() {
    use std::os::unix::fs::MetadataExt;
    let run = Run::new();
    run.delegation(
        "quiet",
        &delegation("quiet", "running", json!({"last_progress_at": at(-10_000)})),
    );
    let stream = run.write("raw-events/quiet.jsonl", CODEX_NO_TERMINAL);
    set_mtime_ms(&stream, NOW_MS - 20_000);
    let meta = std::fs::metadata(&stream).unwrap();
    let before = run.read_json("delegations/quiet.json");
    let out = refresh_at(&run, NOW);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    let records = out.records();
    assert_eq!(records.len(), 1, "{}", out.stdout);
    assert_fields(
        &records[0],
        json!({"action": "stream_recorded", "raw_events_inode": {"dev": meta.dev(), "ino": meta.ino()}}),
    );
    let mut expected = before;
    expected["worker_lifecycle"]["raw_events_inode"] =
        json!({"dev": meta.dev(), "ino": meta.ino()});
    assert_eq!(run.read_json("delegations/quiet.json"), expected);
    let again = refresh_at(&run, NOW);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "recorded once"
    );
}
