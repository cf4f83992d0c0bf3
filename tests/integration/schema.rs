//! `schema_version` and `flatline --generate schema` (SPEC §7): flatline's own output, over
//! the bundled example run, a team layout and a run of live workers in a private pid
//! namespace, checked against the generated schema with NO additional properties allowed
//! (`strict`). Every record kind and every action value the commands print must fit exactly
//! one subschema, and every subschema must be met by some record: a value printed without a
//! subschema, or a subschema no command prints, fails here.

use crate::strict::{self, strict_schema, violations};
use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The bundled example run, copied so that the real runs may write it.
fn example_run(dir: &TempDir) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/run");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&example)
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(status.success());
    // A state directory another run may have left in the example is not the example.
    let _ = std::fs::remove_dir_all(dir.join("run/.flatline"));
    dir.join("run").to_string_lossy().into_owned()
}

/// Every record of one output: ndjson lines, and a json document's records and summary.
fn parse_records(stdout: &str, all: &mut Vec<Value>) {
    for line in stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value: Value = serde_json::from_str(line).expect("a JSON line");
        match value.get("records") {
            Some(records) => {
                all.extend(records.as_array().expect("records").iter().cloned());
                all.extend(
                    value["summary"]
                        .as_array()
                        .expect("summary")
                        .iter()
                        .cloned(),
                );
            }
            None => all.push(value),
        }
    }
}

/// The records one command prints (exit 0, 1, or 3 where a file is broken on purpose).
fn records_of(args: &[&str], all: &mut Vec<Value>) {
    let out = flatline(args);
    assert!([0, 1, 3].contains(&out.code), "{args:?}: {out:?}");
    parse_records(&out.stdout, all);
}

/// The bundled example: delegations, summaries, fan-in, reclaims without a process, explain
/// objects, doctor findings, and a problem record.
fn example_records(all: &mut Vec<Value>) {
    let dir = TempDir::new("schema");
    let run = example_run(&dir);
    let now = "2026-11-22T08:10:00Z";
    for args in [
        vec!["status", &run, "--summary"],
        vec!["status", &run, "--summary", "--format", "json"],
        vec!["status", &run, "--attention"],
        vec!["refresh", &run, "--dry-run"],
        vec!["reclaim", &run, "--dry-run"],
        vec!["fan-in", &run, "--dry-run"],
        vec!["sweep", &run, "--dry-run", "--all"],
        vec!["explain", &run],
        vec!["doctor", &run],
        vec!["refresh", &run],
        vec!["reclaim", &run],
        vec!["sweep", &run, "--all"],
        vec!["fan-in", &run],
        vec!["status", &run, "--summary"],
    ] {
        let mut args = args;
        // A real reclaim or sweep reads its own clock (the example is long past every
        // threshold either way; it has no process ids); the rest see a fixed --now.
        let real = !args.contains(&"--dry-run") && ["reclaim", "sweep"].contains(&args[0]);
        if !real {
            args.extend(["--now", now]);
        }
        if !args.contains(&"json") {
            args.extend(["--format", "ndjson"]);
        }
        records_of(&args, all);
    }
    std::fs::write(dir.join("run/delegations/broken.json"), "{").expect("write");
    let args = [
        "status",
        &run,
        "--attention",
        "--now",
        now,
        "--format",
        "ndjson",
    ];
    records_of(&args, all);
}

/// A team layout: worker records, their summary, and the three health events.
fn team_records(all: &mut Vec<Value>) {
    let run = Run::new();
    let spec = json!({"name": "w1", "role": "dev", "heartbeat": "heartbeat.json",
        "inbox": "inbox.jsonl", "outbox": "outbox.jsonl"});
    run.write("workers/w1/worker-spec.json", spec.to_string());
    run.write("workers/w1/inbox.jsonl", "{}\n{}\n");
    run.write("workers/w1/outbox.jsonl", "{}\n");
    let beat = |age: i64| json!({"status": "alive", "name": "w1", "ts": at(-age)}).to_string();
    run.write("workers/w1/heartbeat.json", beat(90_000));
    // A spec whose name is not its directory's: spec_name.
    let spec = json!({"name": "other", "heartbeat": "heartbeat.json"});
    run.write("workers/w2/worker-spec.json", spec.to_string());
    run.write("workers/w2/heartbeat.json", beat(600_000));
    let dir = run.path().to_str().unwrap();
    let common = ["--now", NOW, "--format", "ndjson"];
    records_of(&[&["status", dir, "--summary"][..], &common].concat(), all);
    records_of(&[&["health-events", dir][..], &common].concat(), all);
    run.write("workers/w1/heartbeat.json", beat(1_000));
    records_of(&[&["sweep", dir, "--dry-run"][..], &common].concat(), all);
    records_of(&[&["health-events", dir][..], &common].concat(), all);
}

/// Live workers in a private pid namespace, for what only processes give: a fingerprint
/// stamped, busy and no longer busy, a real reclaim, a finalization, a skip, progress and a
/// stream first seen, dry runs of each, and an operator's finalize.
const LIVE: &str = r##"
bin=$1; run=$2
now=$(date +%s)
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
ticks() { sed 's/.*) //' /proc/$1/stat | cut -d' ' -f20; }
print() { # id pid age_s lifecycle-extra
  printf '{"delegation_id":"%s","task_card_id":"card-%s","child_agent":{"status":"running"},"worker_launch_evidence":{"raw_events_file":"raw-events/%s.jsonl"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s"%s}}\n' \
    "$1" "$1" "$1" "$2" "$(iso $(( now - 600 )))" "$(iso $(( now - $3 )))" "${4:-}" > "$run/delegations/$1.json"
}
fingerprinted() { # id pid age_s [extra]
  local boot ns
  boot=$(cat /proc/sys/kernel/random/boot_id)
  ns=$(readlink /proc/self/ns/pid); ns=${ns#pid:[}; ns=${ns%]}
  print "$1" "$2" "$3" ",\"process_fingerprint\":{\"start_ticks\":$(ticks $2),\"boot_id\":\"$boot\",\"pid_ns\":$ns}${4:-}"
}
touch "$run/burn"
sleep 300 & fp=$!
sleep 300 & calm=$!
bash -c 'while [ -e "$1" ]; do :; done' _ "$run/burn" & busy=$!
sleep 300 & stuck=$!
true & gone=$!; wait $gone
sleep 0.2
# fp: verified by its start time (the window), fresh: its fingerprint is stamped.
start=$(awk -v t="$(ticks $fp)" -v hz="$(getconf CLK_TCK)" -v now="$(date +%s.%N)" \
  '{ printf "%d", now - ($1 - t / hz) }' /proc/uptime)
printf '{"delegation_id":"fp","task_card_id":"card-fp","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"process_started_at":"%s","last_progress_at":"%s"}}\n' \
  "$fp" "$(iso $start)" "$(iso $now)" > "$run/delegations/fp.json"
fingerprinted calm "$calm" 0 ',"state":"running_busy"'
fingerprinted busy "$busy" 300 ',"stale_after_ms":20000,"timeout_after_ms":600000'
fingerprinted stuck "$stuck" 300 ',"stale_after_ms":20000,"timeout_after_ms":600000'
print gone "$gone" 120
cp "$3" "$run/raw-events/gone.jsonl"; touch -d "@$(( now - 60 ))" "$run/raw-events/gone.jsonl"
print invalid 0 300
print prog null 10
echo '{"type":"thread.started","thread_id":"t-1"}' > "$run/raw-events/prog.jsonl"
print seen null 10
echo '{"type":"thread.started","thread_id":"t-2"}' > "$run/raw-events/seen.jsonl"
touch -d "@$(( now - 60 ))" "$run/raw-events/seen.jsonl"
print held null 10
"$bin" reclaim --dry-run --format ndjson --activity-window 300ms "$run"
"$bin" sweep --dry-run --all --format ndjson --activity-window 300ms "$run"
"$bin" sweep --all --format ndjson --activity-window 300ms --grace 1s "$run"
"$bin" status --summary --format ndjson --activity-window 300ms "$run"
"$bin" finalize "$run" --delegation held --as cancelled --format ndjson
rm "$run/burn"
echo "#done"
"##;

fn live_records(all: &mut Vec<Value>) -> bool {
    if !is_root() || !have("unshare") {
        eprintln!("skipped: needs root and unshare");
        return false;
    }
    let run = Run::new();
    run.write("raw-events/.keep", "");
    let stream = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/streams/codex-exec-commands.jsonl");
    let mut command = pid_namespace_bash(LIVE);
    command.arg(bin()).arg(run.path()).arg(stream);
    let out = run_command(&mut command, Duration::from_secs(60));
    assert!(out.stdout.contains("#done"), "{out:?}");
    parse_records(&out.stdout, all);
    true
}

#[test]
fn every_record_kind_and_action_value_fits_exactly_one_subschema_and_each_is_printed() {
    let mut records = Vec::new();
    example_records(&mut records);
    team_records(&mut records);
    if !live_records(&mut records) {
        return;
    }
    let mut met = BTreeSet::new();
    for record in &records {
        assert_eq!(record["schema_version"], 1, "{record}");
        met.insert(strict::check(record));
    }
    let published: BTreeSet<String> = strict_schema()["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .map(|kind| kind["title"].as_str().expect("a title").to_owned())
        .collect();
    let unmet: Vec<&String> = published.difference(&met).collect();
    assert!(
        unmet.is_empty(),
        "subschemas no scenario printed: {unmet:?}"
    );
}

#[test]
fn the_validator_bites() {
    let schema = strict_schema();
    let good = json!({"kind": "problem", "run_dir": "r", "path": "p",
        "message": "m", "schema_version": 1});
    assert_eq!(violations(&good, schema), Vec::<String>::new());
    let mut extra = good.clone();
    extra["bogus"] = Value::from(1);
    assert!(!violations(&extra, schema).is_empty());
    let mut retyped = good.clone();
    retyped["path"] = Value::from(1);
    assert!(!violations(&retyped, schema).is_empty());
    let mut missing = good;
    missing.as_object_mut().unwrap().remove("message");
    assert!(!violations(&missing, schema).is_empty());
    // An action value or a kind the table does not know fits no subschema.
    let action = json!({"kind": "action", "command": "refresh", "action": "fingerprinted",
        "outcome": "written", "run_dir": "r", "path": "p", "delegation_id": "d",
        "fingerprint_stamped": true, "schema_version": 1});
    assert_eq!(violations(&action, schema), Vec::<String>::new());
    let mut unknown = action.clone();
    unknown["action"] = json!("teleported");
    assert!(!violations(&unknown, schema).is_empty());
    let mut kind = action;
    kind["kind"] = json!("rumour");
    assert!(!violations(&kind, schema).is_empty());
}
