//! `run` in a private pid namespace: hung and busy workers, sweeps beside it, recycled pids,
//! forwarded signals, inherited descriptors.

use super::*;

const HUNG: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id hung --stale-after 1s --grace 500ms -- "$agent" grandchild; echo "#exit $?"
gc=$(sed -n 's/.*"grandchild_pid":\([0-9]*\).*/\1/p' "$run/raw-events/hung.jsonl")
echo "#grandchild=$gc"
alive "$gc" && echo "#grandchild alive"
"$bin" run --run-dir "$run" --id stubborn --stale-after 1s --grace 300ms -- "$agent" ignore-term; echo "#exit $?"
echo "#done"
"##;

#[test]
fn a_hung_worker_is_reclaimed_with_its_grandchild_after_its_stale_threshold() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(HUNG, &run);
    assert_eq!(
        notes.iter().filter(|n| *n == "exit 124").count(),
        2,
        "{notes:?}\n{}",
        out.stderr
    );
    assert!(!noted(&notes, "grandchild alive"), "{notes:?}");
    assert!(
        !notes.iter().any(|n| n.starts_with("init got")),
        "{notes:?}"
    );
    let grandchild: u64 = notes
        .iter()
        .find_map(|n| n.strip_prefix("grandchild="))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{notes:?}"));
    let hung = doc(&run, "hung");
    assert_eq!(hung["child_agent"]["status"], "failed", "{hung}");
    assert_eq!(hung["worker_lifecycle"]["reclaim_state"], "reclaimed");
    assert_eq!(hung["worker_lifecycle"]["state"], "stale");
    assert_eq!(hung["latest_failure"]["reason"], "timeout");
    assert_eq!(hung["reclaim"]["termination"], "terminated", "{hung}");
    assert!(
        hung["reclaim"]["descendants_signalled"]
            .as_array()
            .unwrap()
            .contains(&json!(grandchild)),
        "{hung}"
    );
    assert_eq!(hung["worker_lifecycle"]["exit_signal"], 15);
    let stubborn = doc(&run, "stubborn");
    assert_eq!(stubborn["reclaim"]["termination"], "killed", "{stubborn}");
    assert_eq!(stubborn["worker_lifecycle"]["exit_signal"], 9);
}

/// While `run` lives, a sweep leaves its worker alone (skipped_launcher), even stale; once
/// `run` is killed with SIGKILL, the next sweep reclaims the worker. A second worker that
/// finishes after its `run` was killed is finalized by the sweep from its stream.
const TAKEOVER: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id w --no-watch --stale-after 1s -- "$agent" hang 2>/dev/null &
launcher=$!
wait_running "$run/delegations/w.json" || echo "#never running"
sleep 1.3
"$bin" sweep --format ndjson --grace 500ms "$run"; echo "#exit $?"
kill -0 $launcher 2>/dev/null && echo "#launcher alive"
kill -KILL $launcher; wait $launcher 2>/dev/null
echo "#launcher killed"
"$bin" sweep --format ndjson --grace 500ms "$run"; echo "#exit $?"
"$bin" run --run-dir "$run" --id f --no-watch -- "$agent" slow 3 2>/dev/null &
launcher=$!
wait_running "$run/delegations/f.json" || echo "#never running"
kill -KILL $launcher; wait $launcher 2>/dev/null
sleep 1.5
"$bin" sweep --format ndjson "$run"; echo "#exit $?"
echo "#done"
"##;

#[test]
fn a_sweep_leaves_a_live_runs_worker_to_it_and_takes_over_once_run_is_killed() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(TAKEOVER, &run);
    assert!(
        !notes
            .iter()
            .any(|n| n.starts_with("init got") || n == "never running"),
        "{notes:?}"
    );
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.starts_with("exit"))
            .collect::<Vec<_>>(),
        ["exit 0", "exit 0", "exit 0"],
        "{}",
        out.stderr
    );
    let records: Vec<Value> = out
        .stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let w: Vec<&Value> = records
        .iter()
        .filter(|r| r["delegation_id"] == "w")
        .collect();
    let skipped = w
        .iter()
        .find(|r| r["action"] == "skipped")
        .unwrap_or_else(|| panic!("{w:?}"));
    assert_eq!(skipped["termination"], "skipped_launcher", "{skipped}");
    // Skipped before the launcher was killed, reclaimed after.
    let first_reclaim = w.iter().position(|r| r["action"] == "reclaimed");
    let skip_at = w.iter().position(|r| r["action"] == "skipped");
    assert!(skip_at < first_reclaim, "{w:?}");
    assert!(noted(&notes, "launcher alive"));
    let reclaimed = w
        .iter()
        .find(|r| r["action"] == "reclaimed")
        .unwrap_or_else(|| panic!("{w:?}"));
    assert_eq!(reclaimed["termination"], "terminated", "{reclaimed}");
    let d = doc(&run, "w");
    assert_eq!(d["worker_lifecycle"]["reclaim_state"], "reclaimed", "{d}");
    // The worker finished while nobody watched: the sweep finalized it from its stream.
    let f = doc(&run, "f");
    assert_eq!(f["child_agent"]["status"], "completed", "{f}");
    assert_eq!(
        f["worker_result"]["assistant_message_preview"],
        "Done: all steps."
    );
}

/// A sweep every few milliseconds while `run` records its worker: neither loses a write.
const CONCURRENT: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id c -- "$agent" slow 8 &
r=$!
n=0
while kill -0 $r 2>/dev/null; do "$bin" sweep --format ndjson --wait 10s "$run" > /dev/null || echo "#sweep failed"; n=$((n + 1)); done
wait $r; echo "#exit $?"
echo "#sweeps=$n"
echo "#done"
"##;

#[test]
fn a_concurrent_sweep_never_loses_runs_writes() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(CONCURRENT, &run);
    assert!(noted(&notes, "exit 0"), "{notes:?}\n{}", out.stderr);
    assert!(!noted(&notes, "sweep failed"), "{notes:?}\n{}", out.stderr);
    let sweeps: u32 = notes
        .iter()
        .find_map(|n| n.strip_prefix("sweeps="))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(sweeps >= 3, "{sweeps}");
    let d = doc(&run, "c");
    assert_eq!(d["child_agent"]["status"], "completed", "{d}");
    let lifecycle = &d["worker_lifecycle"];
    for key in [
        "queued_at",
        "started_at",
        "process_started_at",
        "process_id",
    ] {
        assert!(!lifecycle[key].is_null(), "{key}: {d}");
    }
    assert!(
        lifecycle["process_fingerprint"]["start_ticks"].is_u64(),
        "{d}"
    );
    assert_eq!(lifecycle["exit_code"], 0, "{d}");
    assert_eq!(d["worker_result"]["process_exit"]["success"], true, "{d}");
    assert_eq!(d["worker_launch_evidence"]["launch_source"], "flatline run");
}

/// After `run` and its worker are gone, the worker's pid is recycled (ns_last_pid) by a
/// decoy started well within two seconds: by the identity window that is `unverifiable`,
/// by the fingerprint `reused`. reclaim must say `skipped_reused` and leave the decoy alive.
const RECYCLED: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id w --no-watch --stale-after 1s -- "$agent" hang 2>/dev/null &
launcher=$!
wait_running "$run/delegations/w.json" || echo "#never running"
worker=$(sed -n 's/.*"process_id": \([0-9]*\).*/\1/p' "$run/delegations/w.json")
kill -KILL $launcher; wait $launcher 2>/dev/null
# The whole group: a pid that still names a process group (a zombie member included) is
# never handed out again. Waited for without forking: pids must stay predictable.
group_left() { local f s; for f in /proc/[0-9]*/stat; do
  read -r s < "$f" 2>/dev/null || continue; s=${s##*) }; set -- $s
  [ "$3" = "$worker" ] && return 0; done; return 1; }
kill -KILL -- -"$worker"
while [ -e "/proc/$worker" ] || group_left; do sleep 0.01; done
echo $((worker - 1)) > /proc/sys/kernel/ns_last_pid
sleep 300 & decoy=$!
echo "#worker=$worker decoy=$decoy"
sleep 1.1
"$bin" reclaim --format ndjson --settle 0s --grace 500ms "$run"; echo "#exit $?"
alive "$decoy" && echo "#decoy alive"
echo "#done"
"##;

#[test]
fn a_run_worker_is_verified_by_fingerprint_never_by_window() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(RECYCLED, &run);
    let pids = notes.iter().find(|n| n.starts_with("worker=")).unwrap();
    let values: Vec<&str> = pids
        .split_whitespace()
        .map(|w| w.split('=').nth(1).unwrap())
        .collect();
    assert_eq!(
        values[0], values[1],
        "ns_last_pid did not recycle the pid: {pids}"
    );
    assert!(noted(&notes, "decoy alive"), "{notes:?}\n{}", out.stderr);
    let record: Value = out
        .stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|r| r["delegation_id"] == "w")
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(record["termination"], "skipped_reused", "{record}");
    assert_eq!(record["action"], "finalized", "{record}");
}

/// SIGTERM to `run` reaches the worker's whole group, is recorded, and `run` exits as the
/// worker did (128+15); the worker's child in its group ends too.
const FORWARD: &str = r##"
bin=$1; run=$2; agent=$3
"$bin" run --run-dir "$run" --id fw -- "$agent" grandchild 2>/dev/null &
launcher=$!
wait_running "$run/delegations/fw.json" || echo "#never running"
until grep -q grandchild_pid "$run/raw-events/fw.jsonl" 2>/dev/null; do sleep 0.01; done
gc=$(sed -n 's/.*"grandchild_pid":\([0-9]*\).*/\1/p' "$run/raw-events/fw.jsonl")
kill -TERM $launcher
wait $launcher; echo "#exit $?"
sleep 0.2
alive "$gc" && echo "#grandchild alive"
echo "#done"
"##;

#[test]
fn signals_to_run_are_forwarded_to_the_workers_group_and_recorded() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(FORWARD, &run);
    assert!(noted(&notes, "exit 143"), "{notes:?}\n{}", out.stderr);
    assert!(
        !notes
            .iter()
            .any(|n| n == "grandchild alive" || n.starts_with("init got")),
        "{notes:?}"
    );
    let d = doc(&run, "fw");
    let forwarded = d["worker_lifecycle"]["forwarded_signals"]
        .as_array()
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(forwarded.len(), 1, "{d}");
    assert_eq!(forwarded[0]["signal"], "SIGTERM");
    assert_eq!(d["worker_lifecycle"]["exit_signal"], 15, "{d}");
    assert_eq!(d["child_agent"]["status"], "failed", "{d}");
    assert_eq!(d["latest_failure"]["reason"], "interrupted", "{d}");
}

/// The worker gets no descriptor of flatline's own (every one is O_CLOEXEC): no pidfd, no
/// lock, no directory of the run; its stdout and stderr are the stream. (Descriptors that
/// flatline itself inherited without O_CLOEXEC are not flatline's and pass through.)
#[test]
fn the_worker_inherits_no_descriptor_of_flatlines() {
    let run = Run::new();
    let out = launch(&run, &["--id", "fds", "--", "ls", "-l", "/proc/self/fd/"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let listing = String::from_utf8(run.read("raw-events/fds.jsonl")).unwrap();
    let stream = std::fs::canonicalize(run.path().join("raw-events/fds.jsonl")).unwrap();
    let run_dir = std::fs::canonicalize(run.path()).unwrap();
    let mut seen = Vec::new();
    for line in listing.lines().filter(|line| line.contains(" -> ")) {
        let (left, target) = line.split_once(" -> ").unwrap();
        let fd: u32 = left.rsplit(' ').next().unwrap().parse().unwrap();
        seen.push(fd);
        assert!(!target.contains("pidfd"), "{line}");
        if fd == 1 || fd == 2 {
            assert_eq!(Path::new(target), stream, "{line}");
        } else if fd == 0 {
            assert_eq!(target, "/dev/null", "{line}");
        } else {
            assert!(
                !target.starts_with(run_dir.to_str().unwrap()),
                "{line}\n{listing}"
            );
        }
    }
    seen.sort_unstable();
    assert!(seen.starts_with(&[0, 1, 2]), "{listing}");
}

/// Activity in run's own watch (SPEC §11): a worker that burns CPU without printing a line
/// is `running_busy`, not reclaimed at its stale threshold but once `--busy-limit` passed;
/// with `--no-activity` the same worker is reclaimed at its stale threshold.
const BUSY: &str = r##"
bin=$1; run=$2
ms() { echo $(( $(date +%s%N) / 1000000 )); }
burn='while :; do :; done'
t=$(ms)
"$bin" run --run-dir "$run" --id busy --stale-after 1s --activity-window 200ms --busy-limit 3s --grace 300ms -- sh -c "$burn"; echo "#exit $?"
echo "#busy_ms=$(( $(ms) - t ))"
t=$(ms)
"$bin" run --run-dir "$run" --id plain --stale-after 1s --no-activity --grace 300ms -- sh -c "$burn"; echo "#exit $?"
echo "#plain_ms=$(( $(ms) - t ))"
echo "#done"
"##;

fn millis_of(notes: &[String], key: &str) -> u64 {
    notes
        .iter()
        .find_map(|n| n.strip_prefix(key))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{key}: {notes:?}"))
}

#[test]
fn a_busy_worker_outlives_its_stale_threshold_until_the_busy_limit() {
    if !namespace_ok() {
        return;
    }
    let run = Run::new();
    let (out, notes) = in_namespace(BUSY, &run);
    assert_eq!(
        notes.iter().filter(|n| *n == "exit 124").count(),
        2,
        "{notes:?}\n{}",
        out.stderr
    );
    assert!(
        !notes.iter().any(|n| n.starts_with("init got")),
        "{notes:?}"
    );
    // Busy: kept past the 1 s stale threshold, reclaimed only once the 3 s limit passed.
    assert!(millis_of(&notes, "busy_ms=") >= 3_000, "{notes:?}");
    // Without activity: reclaimed at the stale threshold, well before the busy limit.
    assert!(millis_of(&notes, "plain_ms=") < 2_800, "{notes:?}");
    for id in ["busy", "plain"] {
        let doc = doc(&run, id);
        assert_eq!(
            doc["worker_lifecycle"]["reclaim_state"], "reclaimed",
            "{doc}"
        );
        assert_eq!(doc["reclaim"]["termination"], "terminated", "{doc}");
    }
}
