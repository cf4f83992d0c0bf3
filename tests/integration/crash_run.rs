//! Crash injection for `flatline run` (issue 18): `run` is SIGKILLed at seeded random
//! moments of its launch and watch, over workers that finish at once (`ok`) and workers that
//! hang. After every kill its delegation is JSON equal to one of the versions `run` writes
//! (queued, running, finished: with digits masked, one shape per step); the next sweep
//! leaves no temp file and reclaims or finalizes the worker. Everything runs inside a private
//! pid namespace: the workers are the namespace's own processes.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const KILLS: usize = 120;

/// One kill per argument `MODE:DELAY`: `run` of a worker in MODE, SIGKILLed after DELAY
/// seconds, its delegation copied as the kill left it. Then, once the hung workers are
/// past their 1 s stale threshold, the next sweep (sweep takes no `--now`), and every
/// delegation copied again.
const SCRIPT: &str = r##"
bin=$1; run=$2; agent=$3; out=$4; shift 4
i=0
for step in "$@"; do
  mode=${step%%:*}; delay=${step#*:}
  "$bin" run --run-dir "$run" --id "w$i" --stale-after 1s --no-activity -- "$agent" "$mode" >/dev/null 2>&1 &
  launcher=$!
  sleep "$delay"
  kill -KILL $launcher 2>/dev/null; wait $launcher 2>/dev/null
  doc="$run/delegations/w$i.json"
  [ -e "$doc" ] && cp "$doc" "$out/killed-$i.json"
  i=$((i + 1))
done
sleep 1.2
"$bin" sweep --no-activity --grace 200ms --settle 200ms "$run" >/dev/null 2>"$out/sweep.err"; echo "#sweep $?"
for doc in "$run"/delegations/*.json; do cp "$doc" "$out/swept-$(basename "$doc")"; done
for t in "$run"/delegations/.*.tmp "$run"/.flatline/.*.tmp; do
  [ -e "$t" ] && echo "#temp $t"
done
echo "#done"
"##;

/// Strings with runs of digits masked, numbers zeroed: what two launches agree on.
fn shape(value: &Value) -> Value {
    match value {
        Value::String(text) => {
            let mut out = String::new();
            for c in text.chars() {
                if !c.is_ascii_digit() {
                    out.push(c);
                } else if !out.ends_with('#') {
                    out.push('#');
                }
            }
            Value::String(out)
        }
        Value::Number(_) => Value::from(0),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn status(doc: &Value) -> &str {
    doc["child_agent"]["status"].as_str().unwrap_or("?")
}

#[test]
fn run_killed_at_random_moments_leaves_a_whole_delegation_the_next_sweep_ends() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    let out = TempDir::new("crash-run");
    let seed = 0x5eed_0018_u64;
    let mut rng = XorShift::new(seed);
    let steps: Vec<String> = (0..KILLS)
        .map(|i| {
            let mode = if i % 2 == 0 { "ok" } else { "hang" };
            format!("{mode}:{:.4}", rng.below(40_000) as f64 / 1e6)
        })
        .collect();
    let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fake-agent");
    let mut command = pid_namespace_bash(SCRIPT);
    command
        .arg(bin())
        .arg(run.path())
        .arg(agent)
        .arg(out.path())
        .args(&steps);
    let result = run_command(&mut command, Duration::from_secs(240));
    assert!(
        result.stdout.lines().last() == Some("#done"),
        "{}\n{}",
        result.stdout,
        result.stderr
    );
    let sweep_err = std::fs::read_to_string(out.path().join("sweep.err")).unwrap_or_default();
    assert!(
        result.stdout.contains("#sweep 0") || result.stdout.contains("#sweep 1"),
        "{}\n{sweep_err}",
        result.stdout
    );
    assert!(!result.stdout.contains("#temp"), "{}", result.stdout);
    // One shape per (worker mode, status) across every kill: the versions run writes.
    let mut shapes: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        let mode = step.split(':').next().unwrap_or("");
        let when = format!("kill {i} ({step}, seed {seed:#x})");
        let Ok(bytes) = std::fs::read(out.path().join(format!("killed-{i}.json"))) else {
            *seen.entry("absent".into()).or_default() += 1;
            continue;
        };
        let killed: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{when}: not JSON ({e}): torn write?"));
        let state = status(&killed).to_string();
        *seen.entry(state.clone()).or_default() += 1;
        let expected = shapes
            .entry((mode.to_string(), state.clone()))
            .or_insert_with(|| shape(&killed));
        assert_eq!(
            &shape(&killed),
            expected,
            "{when}: not a version run writes"
        );
        check_swept(&run, &out, i, &when, &state, mode, &mut seen);
    }
    eprintln!("run: {KILLS} kills, delegation as left: {seen:?}");
    assert!(
        seen.get("running").copied().unwrap_or(0) >= KILLS / 10,
        "too few kills landed while the worker was recorded running: {seen:?}"
    );
}

/// What the sweep after kill `i` made of the delegation `run` left in `state`: never left
/// running, never queued once it had started, failed, reclaimed or completed as its worker ran.
fn check_swept(
    run: &Run,
    out: &TempDir,
    i: usize,
    when: &str,
    state: &str,
    mode: &str,
    seen: &mut BTreeMap<String, usize>,
) {
    let swept: Value = serde_json::from_slice(
        &std::fs::read(out.path().join(format!("swept-w{i}.json"))).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{when}: swept not JSON ({e})"));
    assert_ne!(
        status(&swept),
        "running",
        "{when}: the sweep left it running: {swept}"
    );
    // The worker is held before exec until it is recorded running (SPEC §12): killed
    // while queued, its command never ran (its stream is empty) and there is nothing
    // to judge; the delegation stays queued until its launch timeout.
    let ran = std::fs::metadata(run.path().join(format!("raw-events/w{i}.jsonl")))
        .is_ok_and(|meta| meta.len() > 0);
    assert!(
        state != "queued" || !ran,
        "{when}: killed while queued, yet its worker ran: {swept}"
    );
    if state != "queued" {
        assert_ne!(
            status(&swept),
            "queued",
            "{when}: the sweep left it queued: {swept}"
        );
    }
    if state == "running" && !ran {
        assert_eq!(status(&swept), "failed", "{when}: {swept}");
        *seen.entry("running, never ran".into()).or_default() += 1;
    }
    if state == "running" && mode == "hang" && ran {
        assert_eq!(
            swept["worker_lifecycle"]["reclaim_state"], "reclaimed",
            "{when}: {swept}"
        );
    }
    // Killed between the running record and the go: recorded, never run (an empty
    // stream, finalized failed once settled, above); else it ran to its end.
    if state == "running" && mode == "ok" && ran {
        assert_eq!(status(&swept), "completed", "{when}: {swept}");
    }
}
