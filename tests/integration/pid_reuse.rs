//! Forced PID reuse (SPEC §3.1 identity, §10 "no PID-reuse check"; issue 8 item 4).
//!
//! Inside a fresh pid namespace (`unshare --pid --fork --mount-proc`) a bash init records a
//! worker with real timestamps, lets it exit, waits beyond the 2 s identity slack, writes
//! `/proc/sys/kernel/ns_last_pid` so that the next process gets the worker's pid, and starts
//! a decoy there. `flatline reclaim` must leave the decoy alone and finalize the delegation as
//! `skipped_reused`. A second round does the same with a `process_fingerprint` stamped by an
//! earlier `flatline refresh` while the worker was alive, and with the recorded timestamps
//! moved onto the decoy so that the time window alone would accept it: the fingerprint must
//! win. A live worker in the same run is terminated, so the machinery is shown to work, not
//! merely to refuse. The init and flatline's parent log every catchable signal they receive
//! (but SIGCHLD, which the kernel sends them as their children exit): nothing may reach them,
//! nor pids 0, 1 and -1, which are recorded too.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

/// `$1` log, `$2` first run, `$3` second run, `$4` flatline. Lines starting with `#` are the
/// script's own; the rest is flatline's ndjson.
const INIT: &str = r##"
log=$1; run1=$2; run2=$3; bin=$4
# Every catchable signal but SIGCHLD (17), which the kernel sends when a child exits.
for s in {1..16} {18..64}; do trap "echo \"init got signal $s\" >> $log" $s 2>/dev/null; done
# The real time as RFC 3339 with milliseconds, without forking (pids must stay predictable).
now() { local us=${EPOCHREALTIME/./}; local ms=$((us / 1000));
        printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000)); }
running() { # file id pid timestamp
  printf '{"delegation_id":"%s","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"launch_requested_at":"%s","started_at":"%s","process_started_at":"%s","last_progress_at":"%s","stale_after_ms":1000}}\n' \
    "$2" "$3" "$4" "$4" "$4" "$4" > "$1"
}
# flatline runs in a subshell: its parent logs every signal too.
flatline() {
  ( for s in {1..16} {18..64}; do trap "echo \"flatline's parent got signal $s\" >> $log" $s 2>/dev/null; done
    "$bin" "$@"; echo "#exit $?" )
}

# ---- Round 1: reuse told by the time window.
now; started=$REPLY
sleep 300 & worker=$!
sleep 300 & alive=$!
running "$run1/delegations/reused.json" reused "$worker" "$started"
running "$run1/delegations/alive.json" alive "$alive" "$started"
for pid in 0 1 -1; do running "$run1/delegations/p${pid/-/neg}.json" "p${pid/-/neg}" "$pid" "$started"; done
kill -KILL "$worker"; wait "$worker" 2>/dev/null
sleep 2.6
echo $((worker - 1)) > /proc/sys/kernel/ns_last_pid
sleep 300 & decoy=$!
echo "#round1 worker=$worker decoy=$decoy"
flatline reclaim --format=ndjson --grace 2s "$run1"
kill -0 "$decoy" 2>/dev/null && echo "#round1 decoy alive"
kill -0 "$alive" 2>/dev/null && echo "#round1 worker still alive"

# ---- Round 2: reuse told by the fingerprint, the window fooled.
now; started=$REPLY
sleep 300 & worker=$!
running "$run2/delegations/fp.json" fp "$worker" "$started"
flatline refresh --format=ndjson "$run2"
kill -KILL "$worker"; wait "$worker" 2>/dev/null
# The fingerprint's start time counts clock ticks (10 ms): a decoy started in the worker's
# own tick would be the same process to it (SECURITY.md, residual risks). A pid cannot come
# round again that fast without ns_last_pid; here the next tick is waited for.
sleep 0.05
echo $((worker - 1)) > /proc/sys/kernel/ns_last_pid
sleep 300 & decoy=$!
# Move every recorded sign of life onto the decoy's start: the window alone would verify it.
now; moved=$REPLY
IFS= read -r -d '' doc < "$run2/delegations/fp.json"
printf '%s' "${doc//"$started"/"$moved"}" > "$run2/delegations/fp.json"
echo "#round2 worker=$worker decoy=$decoy"
sleep 2.2
flatline reclaim --format=ndjson --grace 2s "$run2"
kill -0 "$decoy" 2>/dev/null && echo "#round2 decoy alive"
echo "#done"
"##;

/// The script's `#` lines and flatline's records, in order.
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

fn note_pids(notes: &[String], round: &str) -> (u64, u64) {
    let note = notes
        .iter()
        .find(|n| n.starts_with(round))
        .unwrap_or_else(|| panic!("no {round} line: {notes:?}"));
    let value = |key: &str| -> u64 {
        note.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap()
            .parse()
            .unwrap()
    };
    (value("worker="), value("decoy="))
}

fn record<'a>(records: &'a [Value], command: &str, id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["command"] == command && r["delegation_id"] == id)
        .unwrap_or_else(|| panic!("no {command} record for {id}: {records:?}"))
}

#[test]
fn a_recycled_pid_is_never_signalled_by_window_or_by_fingerprint() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run1 = Run::new();
    let run2 = Run::new();
    // The worker wrote its stream before it died: `reused` needs that fact (SPEC §3.1).
    // Its last line a minute ago: settled, so the finalization needs no wait.
    set_mtime_ms(
        &run1.write("raw-events/reused.jsonl", "{\"type\":\"message\"}\n"),
        real_now_ms() - 60_000,
    );
    let log = run1.path().join("signals.log");
    std::fs::write(&log, "").unwrap();
    let mut command = pid_namespace_bash(INIT);
    command
        .arg(&log)
        .arg(run1.path())
        .arg(run2.path())
        .arg(bin())
        .env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(90));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let t = transcript(&out.stdout);
    assert_eq!(
        t.notes.last().map(String::as_str),
        Some("done"),
        "{}",
        out.stdout
    );

    // Round 1: the pid really was recycled, and the decoy survived.
    let (worker, decoy) = note_pids(&t.notes, "round1");
    assert_eq!(
        worker, decoy,
        "ns_last_pid did not recycle the worker's pid"
    );
    assert!(
        t.notes.iter().any(|n| n == "round1 decoy alive"),
        "the decoy holding the recycled pid was signalled: {:?}",
        t.notes
    );
    let reused = record(&t.records, "reclaim", "reused");
    assert_eq!(reused["action"], "finalized", "{reused}");
    assert_eq!(reused["termination"], "skipped_reused", "{reused}");
    let doc = run1.read_json("delegations/reused.json");
    assert_eq!(doc["child_agent"]["status"], "failed", "{doc}");
    assert_eq!(doc["worker_result"]["status"], "failed", "{doc}");
    assert!(doc.get("reclaim").is_none() || doc["reclaim"]["termination"] != "terminated");
    // The live worker of the same run was verified and terminated: identity works.
    let alive = record(&t.records, "reclaim", "alive");
    assert_eq!(alive["termination"], "terminated", "{alive}");
    assert!(!t.notes.iter().any(|n| n == "round1 worker still alive"));
    for id in ["p0", "p1", "pneg1"] {
        assert_eq!(
            record(&t.records, "reclaim", id)["termination"],
            "skipped_invalid_pid"
        );
    }

    // Round 2: refresh stamped the fingerprint while the worker lived...
    let (worker, decoy) = note_pids(&t.notes, "round2");
    assert_eq!(
        worker, decoy,
        "ns_last_pid did not recycle the worker's pid"
    );
    let stamped = record(&t.records, "refresh", "fp");
    assert_eq!(stamped["action"], "fingerprinted", "{stamped}");
    // ... and that fingerprint, not the window the timestamps now point at, decided.
    let fp = record(&t.records, "reclaim", "fp");
    assert_eq!(fp["action"], "finalized", "{fp}");
    assert_eq!(fp["termination"], "skipped_reused", "{fp}");
    assert!(
        t.notes.iter().any(|n| n == "round2 decoy alive"),
        "the decoy was signalled: {:?}",
        t.notes
    );
    let doc = run2.read_json("delegations/fp.json");
    assert!(doc["worker_lifecycle"]["process_fingerprint"]["start_ticks"].is_u64());
    assert_eq!(doc["child_agent"]["status"], "failed", "{doc}");

    // No forbidden pid received anything: not init, not flatline's parent.
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "",
        "a forbidden pid received a signal"
    );
    // Every flatline run ended as expected: 1 for the skipped invalid pids, else 0.
    let exits: Vec<&String> = t.notes.iter().filter(|n| n.starts_with("exit")).collect();
    assert_eq!(exits, ["exit 1", "exit 0", "exit 0"], "{}", out.stderr);
}

/// The shared shell helpers of the scripts below: `now` (RFC 3339 with milliseconds, without
/// forking) and `running FILE ID PID TIMESTAMP`.
const HELPERS: &str = r##"
now() { local us=${EPOCHREALTIME/./}; local ms=$((us / 1000));
        printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000)); }
running() {
  printf '{"delegation_id":"%s","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"launch_requested_at":"%s","started_at":"%s","process_started_at":"%s","last_progress_at":"%s","stale_after_ms":1000}}\n' \
    "$2" "$3" "$4" "$4" "$4" "$4" > "$1"
}
"##;

/// Issue 12 class 2: a decoy lands on a dead worker's pid 0.3 s after the worker's recorded
/// start, before any fingerprint was stamped. The old ±2 s window took it for the worker;
/// the anchored window (U = the start's millisecond + 250 ms) does not, and it is not
/// certainly another process either (within 2 s of U): `skipped_unverifiable`, nothing
/// signalled.
const DECOY_AT_300_MS: &str = r##"
run=$1; bin=$2
now; started=$REPLY
sleep 300 & worker=$!
running "$run/delegations/w.json" w "$worker" "$started"
kill -KILL "$worker"; wait "$worker" 2>/dev/null
sleep 0.3
echo $((worker - 1)) > /proc/sys/kernel/ns_last_pid
sleep 300 & decoy=$!
echo "#worker=$worker decoy=$decoy"
sleep 1.2
"$bin" reclaim --format=ndjson --grace 1s "$run"; echo "#exit $?"
kill -0 "$decoy" 2>/dev/null && echo "#decoy alive"
echo "#done"
"##;

/// Issue 12 class 2 with an unprivileged attacker: in a namespace whose `pid_max` is lowered
/// (Linux ≥ 6.14 has it per namespace), uid 65534 forks until the pid after its last one is a
/// dead root worker's, and a root process then lands there. It is not signalled.
const CYCLED: &str = r##"
run=$1; bin=$2
if ! echo 2000 > /proc/sys/kernel/pid_max 2>/dev/null; then echo "#no per-namespace pid_max"; fi
# Start the worker above the pids the kernel skips when it wraps (300).
echo 400 > /proc/sys/kernel/ns_last_pid
now; started=$REPLY
sleep 300 & worker=$!
running "$run/delegations/w.json" w "$worker" "$started"
kill -KILL "$worker"; wait "$worker" 2>/dev/null
s=${EPOCHREALTIME/./}
setpriv --reuid=65534 --regid=65534 --clear-groups bash -c '
  target=$1
  while :; do read -r last < /proc/sys/kernel/ns_last_pid; (( last == target - 1 )) && exit 0; ( : ); done
' cycle "$worker"
e=${EPOCHREALTIME/./}
sleep 300 & decoy=$!
echo "#worker=$worker decoy=$decoy cycled_ms=$(( (e - s) / 1000 ))"
sleep 1.2
"$bin" reclaim --format=ndjson --grace 1s "$run"; echo "#exit $?"
kill -0 "$decoy" 2>/dev/null && echo "#decoy alive"
echo "#done"
"##;

fn in_private_namespace(script: &str, run: &Run) -> Transcript {
    let mut command = pid_namespace_bash(&format!("{HELPERS}{script}"));
    command.arg(run.path()).arg(bin()).env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(90));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let t = transcript(&out.stdout);
    assert_eq!(
        t.notes.last().map(String::as_str),
        Some("done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    t
}

fn note_value(notes: &[String], key: &str) -> u64 {
    notes
        .iter()
        .flat_map(|n| n.split_whitespace())
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {notes:?}"))
        .parse()
        .unwrap()
}

#[test]
fn a_decoy_on_the_pid_0_3_s_after_the_recorded_start_is_not_signalled() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    run.write("raw-events/w.jsonl", "{\"type\":\"message\"}\n");
    let t = in_private_namespace(DECOY_AT_300_MS, &run);
    assert_eq!(
        note_value(&t.notes, "worker="),
        note_value(&t.notes, "decoy="),
        "ns_last_pid did not recycle the worker's pid"
    );
    assert!(
        t.notes.iter().any(|n| n == "decoy alive"),
        "the decoy was signalled: {:?}",
        t.records
    );
    let w = record(&t.records, "reclaim", "w");
    assert_eq!(w["termination"], "skipped_unverifiable", "{w}");
    assert!(t.notes.iter().any(|n| n == "exit 1"), "{:?}", t.notes);
    let doc = run.read_json("delegations/w.json");
    assert_eq!(doc["child_agent"]["status"], "running", "{doc}");
}

#[test]
fn an_unprivileged_pid_cycler_cannot_get_a_root_process_signalled() {
    if !have("unshare") || !have("setpriv") || !is_root() {
        eprintln!("SKIPPED: needs root, unshare and setpriv");
        return;
    }
    let run = Run::new();
    run.write("raw-events/w.jsonl", "{\"type\":\"message\"}\n");
    let t = in_private_namespace(CYCLED, &run);
    if t.notes.iter().any(|n| n == "no per-namespace pid_max") {
        eprintln!("NOTE: no per-namespace pid_max (Linux < 6.14): cycled the full range");
    }
    assert_eq!(
        note_value(&t.notes, "worker="),
        note_value(&t.notes, "decoy="),
        "the cycler did not bring the worker's pid round: {:?}",
        t.notes
    );
    assert!(
        t.notes.iter().any(|n| n == "decoy alive"),
        "the decoy was signalled: {:?}",
        t.records
    );
    let w = record(&t.records, "reclaim", "w");
    assert!(
        w["termination"] == "skipped_unverifiable" || w["termination"] == "skipped_reused",
        "{w}"
    );
    assert_ne!(w["termination"], "terminated");
}
