//! `reclaim --delegation ID --force` (SPEC §13): an operator's reclaim of one live, verified
//! worker that is making progress; every identity guard still holds.

use crate::support::*;
use std::time::Duration;

/// pid 1 of a private pid namespace: three healthy workers, two with fingerprints and one
/// without any evidence of its start (unverifiable); the operator forces one of each.
const INIT: &str = r##"
run=$1; bin=$2
now() { local us=${EPOCHREALTIME/./}; REPLY=$((us / 1000)); }
stamp() { printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $(($1 / 1000)) $(($1 % 1000)); }
read -r boot < /proc/sys/kernel/random/boot_id
ns=$(stat -Lc %i /proc/self/ns/pid)
verified() { # id pid
  local stat; read -r -a stat < "/proc/$2/stat"
  now; stamp "$REPLY"; local at=$REPLY
  printf '{"delegation_id":"%s","child_agent":{"status":"running"},"executor":{"status":"running"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s","process_fingerprint":{"start_ticks":%s,"boot_id":"%s","pid_ns":%s}}}\n' \
    "$1" "$2" "$at" "$at" "${stat[21]}" "$boot" "$ns" > "$run/delegations/$1.json"
}
sleep 300 & stop=$!
sleep 300 & keep=$!
sleep 300 & unsure=$!
verified stop "$stop"
verified keep "$keep"
printf '{"delegation_id":"unsure","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s}}\n' "$unsure" > "$run/delegations/unsure.json"
"$bin" reclaim --format ndjson --grace 2s --delegation stop --force "$run"; echo "#exit $?"
"$bin" reclaim --format ndjson --grace 2s --delegation unsure --force "$run"; echo "#exit $?"
gone() { [ ! -e "/proc/$1" ] || grep -q ') Z' "/proc/$1/stat"; }
gone "$stop" && echo "#stop gone"
gone "$keep" || echo "#keep alive"
gone "$unsure" || echo "#unsure alive"
"$bin" reclaim --format ndjson "$run"; echo "#exit $?"
"##;

#[test]
fn force_reclaims_exactly_one_verified_worker_and_refuses_an_unverifiable_one() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    let mut command = pid_namespace_bash(INIT);
    command.arg(run.path()).arg(bin()).env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(90));
    let notes: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        notes,
        [
            "#exit 0",
            "#exit 1",
            "#stop gone",
            "#keep alive",
            "#unsure alive",
            "#exit 0"
        ],
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let records: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let acted: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["delegation_id"].as_str().unwrap_or(""),
                r["action"].as_str().unwrap_or(""),
                r["termination"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        acted,
        [
            ("stop", "reclaimed", "terminated"),
            ("unsure", "skipped", "skipped_unverifiable")
        ],
        "{}",
        out.stdout
    );
    let stop = run.read_json("delegations/stop.json");
    assert_eq!(stop["child_agent"]["status"], "cancelled", "{stop}");
    assert_eq!(stop["executor"]["status"], "cancelled", "{stop}");
    assert_eq!(stop["worker_lifecycle"]["state"], "cancelled");
    assert_eq!(stop["worker_lifecycle"]["reclaim_state"], "reclaimed");
    assert_eq!(stop["latest_failure"]["reason"], "operator");
    for id in ["keep", "unsure"] {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert_eq!(doc["child_agent"]["status"], "running", "{doc}");
    }
}

#[test]
fn force_without_delegation_is_a_usage_error_and_acts_on_no_duplicate() {
    let run = Run::new();
    let out = flatline(["reclaim", "--force", run.path().to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("--force needs --delegation"),
        "{}",
        out.stderr
    );
    let out = flatline([
        "status",
        "--force",
        "--delegation",
        "a",
        run.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "{out:?}");
    // Two files with one delegation_id: neither is acted on. The pid is out of range, so
    // nothing could be signalled even if the guard failed.
    let doc = delegation(
        "twin",
        "running",
        serde_json::json!({"process_id": 4_000_000}),
    );
    run.delegation("twin", &doc);
    run.delegation("twin-copy", &doc);
    let before = run.read("delegations/twin.json");
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    // Inside a private pid namespace, as every test that may signal.
    let mut command =
        pid_namespace_bash(r#""$1" reclaim --format ndjson --delegation twin --force "$2""#);
    command.arg(bin()).arg(run.path());
    let out = run_command(&mut command, Duration::from_secs(60));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("duplicate_delegation_id"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
    assert_eq!(run.read("delegations/twin.json"), before);
}
