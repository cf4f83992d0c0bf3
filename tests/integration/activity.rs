//! Activity evidence (SPEC §11, issue 15): real process trees inside a private pid namespace.
//!
//! Each scenario is a bash init in a fresh pid namespace (`unshare --pid --fork
//! --mount-proc`), so nothing flatline signals can be a process of the machine. The init starts
//! the worker, records it with a `process_fingerprint` it computes from `/proc` (so the
//! recorded timestamps can lie minutes in the past without a time window to satisfy), runs
//! flatline, and reports with `#` lines whether the worker is alive. flatline's ndjson lines
//! are the other lines of the transcript.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

/// Shell functions every scenario uses: `record FILE ID PID AGE_S [EXTRA_JSON]` writes a
/// running delegation whose progress is AGE_S seconds old, fingerprinted from `/proc`.
const PRELUDE: &str = r##"
bin=$1; run=$2
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
record() { # file id pid age_s [extra lifecycle fields]
  local start_ticks boot ns at
  start_ticks=$(sed 's/.*) //' /proc/$3/stat | cut -d' ' -f20)
  boot=$(cat /proc/sys/kernel/random/boot_id)
  ns=$(readlink /proc/self/ns/pid); ns=${ns#pid:[}; ns=${ns%]}
  at=$(iso $(( $(date +%s) - $4 )))
  printf '{"delegation_id":"%s","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s","process_fingerprint":{"start_ticks":%s,"boot_id":"%s","pid_ns":%s}%s}}\n' \
    "$2" "$3" "$at" "$at" "$start_ticks" "$boot" "$ns" "${5:-}" > "$1"
}
alive() { if kill -0 "$1" 2>/dev/null; then echo "#$2 alive"; else echo "#$2 gone"; fi; }
"##;

/// Runs `script` (after the prelude) as init of a private pid namespace with `$1` the binary
/// and `$2` the run directory; gives the `#` notes and flatline's records.
fn transcript(run: &Run, script: &str) -> (Vec<String>, Vec<Value>, String) {
    if !is_root() || !have("unshare") {
        eprintln!("skipped: needs root and unshare");
        return (Vec::new(), Vec::new(), String::new());
    }
    let full = format!("{PRELUDE}\n{script}");
    let mut command = pid_namespace_bash(&full);
    command.arg(bin()).arg(run.path());
    let out = run_command(&mut command, Duration::from_secs(60));
    let mut notes = Vec::new();
    let mut records = Vec::new();
    for line in out.stdout.lines() {
        if let Some(note) = line.strip_prefix('#') {
            notes.push(note.to_string());
        } else if !line.trim().is_empty() {
            records.push(serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")));
        }
    }
    (notes, records, out.stderr.clone())
}

fn skipped(notes: &[String]) -> bool {
    notes.is_empty()
}

/// The records of `id` of `kind`, in order.
fn of<'a>(records: &'a [Value], kind: &str, id: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["kind"] == kind && r["delegation_id"] == id)
        .collect()
}

#[test]
fn a_worker_whose_child_burns_cpu_is_running_busy_and_survives_sweep() {
    let run = Run::new();
    let (notes, records, stderr) = transcript(
        &run,
        r##"
touch "$run/burn"
# The worker: a sleeping child, and a child that burns CPU while the flag file exists.
bash -c 'sleep 300 & (while [ -e "$1" ]; do :; done); wait' _ "$run/burn" & worker=$!
sleep 0.2
record "$run/delegations/busy.json" busy "$worker" 300 ',"stale_after_ms":1000,"timeout_after_ms":2000'
"$bin" sweep --format=ndjson --activity-window 200ms "$run"
alive "$worker" "after-sweep-1"
echo "#doc $(tr -d '\n' < "$run/delegations/busy.json")"
"$bin" status --format=ndjson --activity-window 200ms "$run"
rm "$run/burn"
# Stops burning; the stored sample turns older than the stale threshold (1 s).
sleep 1.2
"$bin" sweep --format=ndjson --activity-window 200ms --grace 1s "$run"
alive "$worker" "after-sweep-2"
"##,
    );
    if skipped(&notes) {
        return;
    }
    let doc: Value = notes
        .iter()
        .find_map(|note| note.strip_prefix("doc "))
        .map(|text| serde_json::from_str(text).unwrap())
        .unwrap_or_default();
    let notes: Vec<&String> = notes.iter().filter(|n| !n.starts_with("doc ")).collect();
    assert_eq!(
        notes,
        ["after-sweep-1 alive", "after-sweep-2 gone"],
        "{records:#?}\n{stderr}"
    );
    // Entering running_busy is the one write activity causes: the state and when.
    let lifecycle = &doc["worker_lifecycle"];
    assert_eq!(lifecycle["state"], "running_busy", "{doc:#}");
    assert!(lifecycle["last_activity_at"].is_string(), "{doc:#}");
    assert_eq!(doc["child_agent"]["status"], "running");
    let status = of(&records, "delegation", "busy");
    assert_eq!(status.len(), 1, "{records:#?}");
    let record = status[0];
    assert_eq!(record["state"], "running_busy", "{record:#}");
    assert_eq!(record["reclaim_state"], "not_needed");
    assert_eq!(record["next_action"], "await_worker");
    assert_eq!(record["recovery_action"], "poll");
    assert_eq!(record["needs_attention"], false);
    assert!(
        record["recovery_reason"]
            .as_str()
            .unwrap()
            .starts_with("no events for 5m"),
        "{record:#}"
    );
    let activity = &record["activity"];
    assert!(activity["cpu_ms_since"].as_u64().unwrap() > 0, "{record:#}");
    assert!(activity["processes"].as_u64().unwrap() >= 3, "{record:#}");
    assert!(activity["top"]["pid"].as_i64().is_some(), "{record:#}");
    assert_eq!(record["stall"], Value::Null);
    // The first sweep marked it busy and reclaimed nothing; the second one reclaimed it.
    let actions = of(&records, "action", "busy");
    assert_eq!(actions[0]["action"], "busy", "{actions:#?}");
    assert!(
        actions.iter().any(|a| a["action"] == "reclaimed"),
        "{actions:#?}"
    );
    assert!(
        !actions
            .iter()
            .take_while(|a| a["action"] != "reclaimed")
            .any(|a| a["action"] == "skipped"),
        "{actions:#?}"
    );
    let stored = run.read_json(".flatline/activity.json");
    assert!(
        stored["samples"]["busy.json"]["processes"]
            .as_u64()
            .is_some(),
        "{stored:#}"
    );
}

#[test]
fn a_busy_worker_past_the_busy_limit_is_reclaimed() {
    let run = Run::new();
    let (notes, records, stderr) = transcript(
        &run,
        r##"
touch "$run/burn"
bash -c 'sleep 300 & (while [ -e "$1" ]; do :; done); wait' _ "$run/burn" & worker=$!
sleep 0.2
record "$run/delegations/limit.json" limit "$worker" 300
"$bin" status --format=ndjson --activity-window 200ms --busy-limit 4m "$run"
"$bin" sweep --format=ndjson --activity-window 200ms --busy-limit 4m --grace 1s "$run"
alive "$worker" "after-sweep"
rm -f "$run/burn"
"##,
    );
    if skipped(&notes) {
        return;
    }
    assert_eq!(notes, ["after-sweep gone"], "{records:#?}\n{stderr}");
    let status = of(&records, "delegation", "limit");
    assert_eq!(status[0]["state"], "timed_out", "{:#}", status[0]);
    assert!(
        of(&records, "action", "limit")
            .iter()
            .any(|a| a["action"] == "reclaimed"),
        "{records:#?}"
    );
}

#[test]
fn a_make_like_tree_of_short_lived_busy_children_is_running_busy() {
    let run = Run::new();
    let (notes, records, stderr) = transcript(
        &run,
        r##"
touch "$run/burn"
# Like make: one short-lived busy child after another; the CPU is spent in children that
# are gone by the time flatline looks, and lands in the parent's cutime.
bash -c 'while [ -e "$1" ]; do sh -c "i=0; while [ \$i -lt 3000 ]; do i=\$((i+1)); done"; done' _ "$run/burn" & worker=$!
sleep 0.2
record "$run/delegations/make.json" make "$worker" 300
"$bin" status --format=ndjson --activity-window 300ms "$run"
"$bin" status --format=ndjson --no-activity "$run"
"$bin" status --format=prometheus --activity-window 300ms "$run" \
  | sed -n 's/^flatline_delegations{.*state="running_busy"} /#gauge running_busy /p'
"$bin" status --format=text --activity-window 300ms "$run" | grep -q 'busy: .* CPU since the last sample' \
  && echo "#text note"
alive "$worker" "after-status"
rm -f "$run/burn"
"##,
    );
    if skipped(&notes) {
        return;
    }
    assert_eq!(
        notes,
        ["gauge running_busy 1", "text note", "after-status alive"],
        "{records:#?}\n{stderr}"
    );
    let status = of(&records, "delegation", "make");
    assert_eq!(status.len(), 2, "{records:#?}");
    assert_eq!(status[0]["state"], "running_busy", "{:#}", status[0]);
    // --no-activity: the timestamp-only verdict, no sample.
    assert_eq!(status[1]["state"], "timed_out", "{:#}", status[1]);
    assert_eq!(status[1]["activity"], Value::Null);
}

#[test]
fn an_idle_worker_is_judged_on_its_timestamps() {
    let run = Run::new();
    let (notes, records, stderr) = transcript(
        &run,
        r##"
sleep 300 & worker=$!
record "$run/delegations/idle.json" idle "$worker" 60
"$bin" status --format=ndjson --activity-window 200ms "$run"
alive "$worker" "after-status"
"##,
    );
    if skipped(&notes) {
        return;
    }
    assert_eq!(notes, ["after-status alive"], "{stderr}");
    let status = of(&records, "delegation", "idle");
    assert_eq!(status[0]["state"], "stale", "{:#}", status[0]);
    let activity = &status[0]["activity"];
    assert_eq!(activity["processes"], 1, "{activity:#}");
    assert_eq!(activity["cpu_ms_since"], 0, "{activity:#}");
    // status writes nothing.
    assert!(!run.path().join(".flatline/activity.json").exists());
}

/// `--no-activity` and the default give the same records where no worker is alive: the
/// existing verdicts are untouched by activity evidence.
#[test]
fn without_live_workers_activity_changes_no_verdict() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/run");
    let with = flatline([
        "status",
        "--format=ndjson",
        "--now",
        NOW,
        example.to_str().unwrap(),
    ]);
    let without = flatline([
        "status",
        "--format=ndjson",
        "--no-activity",
        "--now",
        NOW,
        example.to_str().unwrap(),
    ]);
    assert_eq!(with.code, without.code);
    assert!(!with.records().is_empty());
    assert_eq!(with.records(), without.records());
}

/// Waits (in the scenario) until the sweep in the background holds the run lock, then until
/// the lock is free while that sweep is still running: the second look's wait (SPEC §11:
/// "with the lock released while waiting"). Says `#free-during-wait` or `#held-throughout`.
/// The sweep visits `zz.json` 400 ms after `zy.json` (`FLATLINE_TEST_SLOW_SCAN_MS`, debug
/// builds; the worker's document itself is set aside for the second look, unvisited), so
/// that its hold before the wait is long enough to be seen.
const WAIT_FOR_RELEASE: &str = r##"
until ! flock -n "$run/.flatline/lock" true; do kill -0 $sw 2>/dev/null || break; sleep 0.01; done
free=held-throughout
while kill -0 $sw 2>/dev/null; do
  if flock -n "$run/.flatline/lock" true; then free=free-during-wait; break; fi
  sleep 0.02
done
"##;

#[test]
fn the_run_lock_is_released_while_the_second_look_waits() {
    let run = Run::new();
    let script = format!(
        r##"
sleep 300 & worker=$!
record "$run/delegations/idle.json" idle "$worker" 300 ',"stale_after_ms":1000'
# .flatline/lock exists before the sweep, so that a free lock is never a lock not made yet.
"$bin" fan-in "$run" > /dev/null
for d in zy zz; do echo "{{\"delegation_id\":\"$d\",\"child_agent\":{{\"status\":\"completed\"}}}}" > "$run/delegations/$d.json"; done
FLATLINE_TEST_SLOW_SCAN_MS=400 "$bin" sweep --wait 10s --format=ndjson --activity-window 2s --grace 1s "$run" & sw=$!
{WAIT_FOR_RELEASE}
echo "#$free"
wait $sw; echo "#exit $?"
alive "$worker" "worker"
"##
    );
    let (notes, records, stderr) = transcript(&run, &script);
    if skipped(&notes) {
        return;
    }
    assert_eq!(
        notes,
        ["free-during-wait", "exit 0", "worker gone"],
        "{records:#?}\n{stderr}"
    );
    // Once the lock was taken again the sweep judged the worker and recorded its reclaim.
    let actions = of(&records, "action", "idle");
    assert!(
        actions.iter().any(|a| a["action"] == "reclaimed"),
        "{actions:#?}"
    );
    assert_eq!(
        run.read_json("delegations/idle.json")["child_agent"]["status"],
        "failed"
    );
    assert!(run.path().join(".flatline/activity.json").exists());
}

#[test]
fn a_lock_taken_during_the_wait_and_kept_stops_every_write_of_that_run() {
    let run = Run::new();
    let script = format!(
        r##"
sleep 300 & worker=$!
record "$run/delegations/idle.json" idle "$worker" 300 ',"stale_after_ms":1000'
"$bin" fan-in "$run" > /dev/null
before=$(sha256sum < "$run/delegations/idle.json")
for d in zy zz; do echo "{{\"delegation_id\":\"$d\",\"child_agent\":{{\"status\":\"completed\"}}}}" > "$run/delegations/$d.json"; done
FLATLINE_TEST_SLOW_SCAN_MS=400 "$bin" sweep --wait 10s --format=ndjson --activity-window 1s --deadline 3s "$run" & sw=$!
{WAIT_FOR_RELEASE}
echo "#$free"
# An orchestrator takes the lock while the sweep waits, and keeps it past its deadline.
flock "$run/.flatline/lock" sleep 5 &
wait $sw; echo "#exit $?"
alive "$worker" "worker"
[ "$before" = "$(sha256sum < "$run/delegations/idle.json")" ] && echo "#document unchanged"
"##
    );
    let (notes, records, stderr) = transcript(&run, &script);
    if skipped(&notes) {
        return;
    }
    assert_eq!(
        notes,
        [
            "free-during-wait",
            "exit 3",
            "worker alive",
            "document unchanged"
        ],
        "{records:#?}\n{stderr}"
    );
    assert!(
        stderr.contains("could not take the run's lock again after the activity window"),
        "{stderr}"
    );
    assert!(!run.path().join(".flatline/activity.json").exists());
    assert!(
        records.iter().all(|r| r["action"] != "reclaimed"),
        "{records:#?}"
    );
}
