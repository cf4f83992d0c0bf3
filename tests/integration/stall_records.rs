//! The stall diagnosis in status records and Prometheus gauges (SPEC §11 "Diagnosis").
//!
//! Real workers inside a private pid namespace, recorded as running delegations with real
//! timestamps (the identity window verifies them) and a stale threshold of one minute, and
//! judged with `--now` ten minutes after their start: past quiet and stale, within the busy
//! limit. A Python reader blocked on a stdin pipe, a stopped process, a client holding a
//! connection its server closed, and a shell loop burning CPU. Nothing is signalled but by
//! the script, to its own children; status only reads, refresh writes no signal.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

/// `$1` run directory, `$2` flatline. Output lines are tagged: `S` status ndjson, `P`
/// prometheus, `E` explain of busy and py, `N` status --no-activity, `X` explain with it, `A` activity.json after two refreshes, `R` status
/// after them; `#` the script's notes.
const WORKERS: &str = r##"
run=$1; bin=$2
now() { local us=${EPOCHREALTIME/./}; local ms=$((us / 1000));
        printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000)); }
running() { # id pid timestamp
  printf '{"delegation_id":"%s","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"launch_requested_at":"%s","started_at":"%s","process_started_at":"%s","last_progress_at":"%s","stale_after_ms":60000}}\n' \
    "$1" "$2" "$3" "$3" "$3" "$3" > "$run/delegations/$1.json"
}
printf -v later '%(%Y-%m-%dT%H:%M:%S)TZ' $(( ${EPOCHREALTIME%.*} + 600 ))
now; t=$REPLY
sleep 600 | python3 -c 'import sys; sys.stdin.read()' & running py $! "$t"
now; t=$REPLY
sleep 600 & stopped=$!; running stopped $stopped "$t"; kill -STOP $stopped
exec 3< <(python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.close(); time.sleep(600)')
read -r port <&3
now; t=$REPLY
python3 -c 'import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); time.sleep(600)' "$port" & running peer $! "$t"
now; t=$REPLY
bash -c 'while :; do :; done' < /dev/null & busy=$!; running busy $busy "$t"
# Each worker needs a moment to reach its wait: ask until every one shows one (at most 30 s).
for i in $(seq 60); do
  out=$("$bin" status "$run" --now "$later" --format ndjson)
  got=$(grep -c -E '"stall":\{"code":"(stdin_pipe|stopped|peer_closed)"' <<< "$out")
  [ "$got" -ge 3 ] && grep -q '"state":"running_busy"' <<< "$out" && break
  sleep 0.2
done
sed 's/^/S /' <<< "$out"
"$bin" status "$run" --now "$later" --format prometheus | sed 's/^/P /'
"$bin" explain "$run" busy py --now "$later" --format ndjson | sed 's/^/E /'
"$bin" status "$run" --now "$later" --format ndjson --no-activity | sed 's/^/N /'
"$bin" explain "$run" py stopped --now "$later" --format ndjson --no-activity | sed 's/^/X /'
# The first refresh stores samples, the second diagnoses against them and stores that
# (refresh takes no --activity-window: the default 500 ms must pass between the two).
"$bin" refresh "$run" --now "$later" --format ndjson > /dev/null
sleep 0.6
"$bin" refresh "$run" --now "$later" --format ndjson > /dev/null
printf 'A %s\n' "$(tr -d '\n' < "$run/.flatline/activity.json")"
"$bin" status "$run" --now "$later" --format ndjson | sed 's/^/R /'
kill -CONT $stopped
kill $busy
echo "#done"
"##;

fn tagged(stdout: &str, tag: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(tag))
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

fn by_id<'a>(records: &'a [Value], id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["delegation_id"] == id)
        .unwrap_or_else(|| panic!("no record for {id}: {records:#?}"))
}

#[test]
fn status_records_and_gauges_carry_the_stall() {
    if !have("unshare") || !have("python3") || !is_root() {
        eprintln!("SKIPPED: needs root, unshare and python3");
        return;
    }
    let run = Run::new();
    let mut command = pid_namespace_bash(WORKERS);
    command.arg(run.path()).arg(bin()).env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(90));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.ends_with("#done\n"), "{}", out.stdout);

    let status = tagged(&out.stdout, "S ");
    let py = by_id(&status, "py");
    assert_eq!(py["stall"]["code"], "stdin_pipe", "{py:#}");
    assert!(
        py["stall"]["detail"]
            .as_str()
            .unwrap()
            .contains("blocked reading stdin, a pipe nobody closes"),
        "{py:#}"
    );
    assert!(py["stall"]["since"].is_string(), "{py:#}");
    let stopped = by_id(&status, "stopped");
    assert_eq!(stopped["stall"]["code"], "stopped", "{stopped:#}");
    let peer = by_id(&status, "peer");
    assert_eq!(peer["stall"]["code"], "peer_closed", "{peer:#}");
    // A busy worker is not stalled.
    let busy = by_id(&status, "busy");
    assert_eq!(busy["state"], "running_busy", "{busy:#}");
    assert_eq!(busy["stall"], Value::Null, "{busy:#}");

    check_explain(&out);
    check_gauge(&out, &run);
    check_no_activity(&out);
    check_stored_stall(&out);
}

/// explain takes the activity sample as status does: busy there too, the same stall.
fn check_explain(out: &Outcome) {
    let explained = tagged(&out.stdout, "E ");
    let busy_explained = by_id(&explained, "busy");
    assert_eq!(
        busy_explained["state"], "running_busy",
        "{busy_explained:#}"
    );
    assert_eq!(
        busy_explained["activity"]["busy"], true,
        "{busy_explained:#}"
    );
    assert_eq!(busy_explained["stall"], Value::Null, "{busy_explained:#}");
    let py_explained = by_id(&explained, "py");
    assert_eq!(
        py_explained["stall"]["code"], "stdin_pipe",
        "{py_explained:#}"
    );
    assert_eq!(py_explained["activity"]["busy"], false, "{py_explained:#}");
    assert!(
        py_explained["activity"]["cpu_ms"].is_u64(),
        "{py_explained:#}"
    );
}

/// The stall gauge: one delegation per code, every code printed, with HELP and TYPE.
fn check_gauge(out: &Outcome, run: &Run) {
    let prometheus: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("P "))
        .collect();
    let label = run.path().to_string_lossy();
    for (code, count) in [
        ("stdin_pipe", 1),
        ("stopped", 1),
        ("peer_closed", 1),
        ("idle", 0),
        ("disk_wait", 0),
        ("network_wait", 0),
        ("unknown", 0),
    ] {
        let line = format!("flatline_stalls{{run=\"{label}\",code=\"{code}\"}} {count}");
        assert!(
            prometheus.contains(&line.as_str()),
            "{line}\n{prometheus:#?}"
        );
    }
    assert!(prometheus.contains(&"# TYPE flatline_stalls gauge"));
    assert!(
        prometheus
            .iter()
            .any(|l| l.starts_with("# HELP flatline_stalls ")),
        "{prometheus:#?}"
    );
}

/// --no-activity: no sample, no diagnosis.
fn check_no_activity(out: &Outcome) {
    let plain = tagged(&out.stdout, "N ");
    assert_eq!(plain.len(), 4, "{plain:#?}");
    for record in &plain {
        assert_eq!(record["stall"], Value::Null, "{record:#}");
        assert_eq!(record["activity"], Value::Null, "{record:#}");
    }

    let plain = tagged(&out.stdout, "X ");
    assert_eq!(plain.len(), 2, "{plain:#?}");
    for record in &plain {
        assert_eq!(record["stall"], Value::Null, "{record:#}");
        assert_eq!(record["activity"], Value::Null, "{record:#}");
    }
}

/// A writing command keeps the diagnosis with the sample; status carries `since` on.
fn check_stored_stall(out: &Outcome) {
    let stored = tagged(&out.stdout, "A ");
    let stored_py = &stored[0]["samples"]["py.json"]["stall"];
    assert_eq!(stored_py["code"], "stdin_pipe", "{stored:#?}");
    assert!(stored_py["disk_sleepers"].is_array(), "{stored:#?}");
    assert_eq!(
        stored[0]["samples"]["busy.json"].get("stall"),
        None,
        "{stored:#?}"
    );
    let after = tagged(&out.stdout, "R ");
    let py_after = by_id(&after, "py");
    assert_eq!(py_after["stall"]["code"], "stdin_pipe", "{py_after:#}");
    assert_eq!(
        py_after["stall"]["since"], stored_py["since"],
        "{py_after:#}"
    );
}
