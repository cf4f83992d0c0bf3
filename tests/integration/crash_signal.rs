//! Crash injection with live workers (issue 18): `reclaim` and `sweep` SIGKILLed at seeded
//! random moments while they signal workers (the test's own children, inside a private pid
//! namespace: nothing else can be signalled). After each kill the next run, not killed,
//! must leave no worker signalled without its record: every worker that is dead has its
//! delegation recorded `reclaimed`, and no `.flatline/state.json` note is left.

use crate::support::*;
use serde_json::Value;
use std::path::Path;

/// The init of the namespace: per iteration a fresh run with three stale workers (one
/// ignores SIGTERM), flatline started and SIGKILLed after a random delay, then the next
/// run to the end; prints `AFTER_KILL k w dead|alive recorded|unrecorded` (right after the
/// kill) and `FINAL k w dead|alive` (after the next run).
const SCRIPT: &str = r#"set -u
bin=$1 base=$2 iters=$3 RANDOM=$4 verb=$5 span_ms=$6
boot=$(cat /proc/sys/kernel/random/boot_id)
ns=$(stat -L -c %i /proc/self/ns/pid)
old_start=$(date -u -d '-10 min' +%Y-%m-%dT%H:%M:%S.000Z)
old_progress=$(date -u -d '-5 min' +%Y-%m-%dT%H:%M:%S.000Z)
state() { if kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status"; then echo alive; else echo dead; fi; }
for k in $(seq 1 "$iters"); do
  run=$base/run$k
  mkdir -p "$run/delegations"
  pids=()
  for w in 0 1 2; do
    if [ "$w" = 0 ]; then (trap '' TERM; exec sleep 600) & else sleep 600 & fi
    pid=$!
    pids+=("$pid")
    ticks=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $20}')
    printf '{"delegation_id":"w%s","task_card_id":"c","child_agent":{"status":"running"},"executor":{"status":"running"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s","process_fingerprint":{"start_ticks":%s,"boot_id":"%s","pid_ns":%s}}}\n' \
      "$w" "$pid" "$old_start" "$old_progress" "$ticks" "$boot" "$ns" > "$run/delegations/w$w.json"
  done
  "$bin" "$verb" --format=ndjson --grace=300ms --activity-window=50ms "$run" >/dev/null 2>&1 &
  fl=$!
  delay=$(( (RANDOM * 32768 + RANDOM) % (span_ms * 1000) ))
  sleep "$(printf '%d.%06d' $((delay / 1000000)) $((delay % 1000000)))"
  kill -9 "$fl" 2>/dev/null
  wait "$fl" 2>/dev/null
  for w in 0 1 2; do
    rec=unrecorded; grep -q '"reclaimed"' "$run/delegations/w$w.json" && rec=recorded
    echo "AFTER_KILL $k $w $(state "${pids[$w]}") $rec"
  done
  "$bin" "$verb" --format=ndjson --grace=300ms --activity-window=50ms "$run" > "$run/next.out" 2> "$run/next.err"
  echo "NEXT_EXIT $k $?"
  for w in 0 1 2; do
    echo "FINAL $k $w $(state "${pids[$w]}")"
    kill -9 "${pids[$w]}" 2>/dev/null
    wait "${pids[$w]}" 2>/dev/null
  done
done
echo DONE
"#;

fn crash_with_workers(verb: &str, iterations: usize, span_ms: u64, seed: u64) {
    if !is_root() || !have("unshare") {
        eprintln!("SKIPPED: needs root and unshare for a private pid namespace");
        return;
    }
    let base = TempDir::new("crash-signal");
    let out = run_command(
        pid_namespace_bash(SCRIPT)
            .arg(bin())
            .arg(base.path())
            .arg(iterations.to_string())
            .arg((seed % 32768).to_string())
            .arg(verb)
            .arg(span_ms.to_string()),
        std::time::Duration::from_secs(600),
    );
    assert!(
        out.stdout.ends_with("DONE\n"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let mut signalled_then_killed = 0;
    for line in out.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["AFTER_KILL", _, _, "dead", "unrecorded"] => signalled_then_killed += 1,
            ["NEXT_EXIT", k, code] => {
                assert!(
                    matches!(*code, "0" | "3"),
                    "{verb} run {k}: the next run exited {code}: {}",
                    std::fs::read_to_string(base.path().join(format!("run{k}/next.err")))
                        .unwrap_or_default()
                );
            }
            ["FINAL", k, w, state] => {
                let doc = read_doc(base.path(), k, w);
                let when = format!("{verb} iteration {k} (seed {seed}), worker {w}");
                // The next run reclaims every stale worker: each is dead and recorded.
                assert_eq!(*state, "dead", "{when}: still alive after the next run");
                assert_eq!(
                    doc["worker_lifecycle"]["reclaim_state"], "reclaimed",
                    "{when}: signalled without its record: {doc}"
                );
                let notes = base.path().join(format!("run{k}/.flatline/state.json"));
                let state: Value = serde_json::from_slice(&std::fs::read(notes).unwrap()).unwrap();
                assert!(
                    state.get("signalled").is_none(),
                    "{when}: a note is left: {state}"
                );
            }
            _ => {}
        }
    }
    eprintln!(
        "{verb}: {iterations} kills with live workers; {signalled_then_killed} workers died by a killed run before their record and were recorded by the next"
    );
    assert!(
        signalled_then_killed > 0,
        "no kill landed between a signal and its record: the test tested nothing"
    );
}

fn read_doc(base: &Path, k: &str, w: &str) -> Value {
    let path = base.join(format!("run{k}/delegations/w{w}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn reclaim_killed_while_it_signals_leaves_every_signal_recorded_by_the_next_run() {
    crash_with_workers("reclaim", 40, 500, test_seed(0x5eed_0021));
}

#[test]
fn sweep_killed_while_it_signals_leaves_every_signal_recorded_by_the_next_run() {
    crash_with_workers("sweep", 40, 500, test_seed(0x5eed_0022));
}
