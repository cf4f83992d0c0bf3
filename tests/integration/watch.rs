//! `status --watch DURATION` (SPEC §13) in its ndjson change mode: every record once, then
//! only the records that changed, and exit 0 on SIGTERM.

use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn next_record(lines: &mpsc::Receiver<String>) -> Value {
    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a record from the next iteration");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn watch_prints_what_changed_and_stops_with_zero_on_sigterm() {
    let run = Run::new();
    run.delegation(
        "a",
        &delegation("a", "queued", json!({"queued_at": at(-1_000)})),
    );
    run.delegation(
        "b",
        &delegation(
            "b",
            "running",
            json!({"started_at": at(-5_000), "last_progress_at": at(-1_000)}),
        ),
    );
    let mut child = Command::new(bin())
        .args([
            "status", "--watch", "1s", "--format", "ndjson", "--now", NOW,
        ])
        .arg(run.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    // The first iteration: every record.
    let first: Vec<(String, String)> = (0..2)
        .map(|_| next_record(&lines))
        .map(|r| {
            (
                r["delegation_id"].as_str().unwrap().into(),
                r["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        first,
        [
            ("a".to_string(), "queued".to_string()),
            ("b".to_string(), "running_active".to_string())
        ]
    );
    // One delegation changes: only its record comes again.
    run.delegation(
        "a",
        &delegation("a", "completed", json!({"queued_at": at(-1_000)})),
    );
    let changed = next_record(&lines);
    assert_eq!(changed["delegation_id"], "a", "{changed}");
    assert_eq!(changed["state"], "returned", "{changed}");
    // Nothing else changed: b is not printed again.
    assert!(lines.recv_timeout(Duration::from_millis(2_500)).is_err());
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG_GUARD {
            let _ = child.kill();
            panic!("status --watch did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn color_paints_states_in_text_tables_only_when_asked() {
    let run = Run::new();
    run.delegation(
        "stuck",
        &delegation(
            "stuck",
            "running",
            json!({"started_at": at(-3_600_000), "last_progress_at": at(-3_600_000)}),
        ),
    );
    let dir = run.path().to_str().unwrap();
    let text = |extra: &[&str]| {
        let mut args = vec!["status", "--format", "text", "--now", NOW];
        args.extend_from_slice(extra);
        args.push(dir);
        flatline(args)
    };
    let out = text(&["--color", "always"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("\x1b[31mtimed_out\x1b[0m"),
        "{:?}",
        out.stdout
    );
    // The header is not coloured and the columns stay aligned to the visible text.
    let plain = text(&["--color", "never"]);
    assert!(!plain.stdout.contains('\x1b'), "{:?}", plain.stdout);
    assert_eq!(
        out.stdout.replace("\x1b[31m", "").replace("\x1b[0m", ""),
        plain.stdout
    );
    // auto, off a terminal: plain; ndjson is never coloured.
    assert!(!text(&[]).stdout.contains('\x1b'));
    let ndjson = status(&run, &["--color", "always"]);
    assert!(!ndjson.stdout.contains("\\u001b") && !ndjson.stdout.contains('\x1b'));
}

/// SPEC §11/§13: in a watch the previous iteration's sample is the stored one, so a worker
/// that turns stale between iterations is judged busy at once, without the second look's
/// wait of `--activity-window` (4 s here: without the carried sample the busy record would
/// come a whole window after the second iteration began).
#[test]
fn a_watch_iteration_judges_activity_against_the_previous_one_without_waiting() {
    if !is_root() || !have("unshare") {
        eprintln!("skipped: needs root and unshare");
        return;
    }
    let run = Run::new();
    let script = r##"
bin=$1; run=$2
ms() { echo $(( $(date +%s%N) / 1000000 )); }
record() { # age_s extra
  local ticks boot ns at
  ticks=$(sed 's/.*) //' /proc/$worker/stat | cut -d' ' -f20)
  boot=$(cat /proc/sys/kernel/random/boot_id)
  ns=$(readlink /proc/self/ns/pid); ns=${ns#pid:[}; ns=${ns%]}
  at=$(date -u -d "@$(( $(date +%s) - $1 ))" +%Y-%m-%dT%H:%M:%SZ)
  printf '{"delegation_id":"w","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s","process_fingerprint":{"start_ticks":%s,"boot_id":"%s","pid_ns":%s}%s}}\n' \
    "$worker" "$at" "$at" "$ticks" "$boot" "$ns" "$2" > "$run/delegations/.w.tmp"
  mv "$run/delegations/.w.tmp" "$run/delegations/w.json"
}
touch "$run/burn"
bash -c 'while [ -e "$1" ]; do :; done' _ "$run/burn" & worker=$!
sleep 0.2
# Active at first: sampled, not judged stale, nothing to wait for.
record 0 ',"stale_after_ms":600000'
"$bin" status --watch 4s --activity-window 4s --format ndjson "$run" > "$run/out" 2> "$run/err" &
watch=$!
start=$(ms)
until [ -s "$run/out" ]; do sleep 0.02; [ $(( $(ms) - start )) -gt 20000 ] && break; done
first=$(ms)
# Stale from now on: the second iteration needs an activity verdict.
record 300 ',"stale_after_ms":10000,"timeout_after_ms":600000'
until grep -q running_busy "$run/out"; do sleep 0.02; [ $(( $(ms) - first )) -gt 20000 ] && break; done
busy=$(ms)
kill -TERM $watch; wait $watch; echo "#exit $?"
rm "$run/burn"
echo "#ms $(( busy - first ))"
cat "$run/out"
cat "$run/err" >&2
"##;
    let mut command = pid_namespace_bash(script);
    command.arg(bin()).arg(run.path());
    let out = run_command(&mut command, Duration::from_secs(60));
    let note = |name: &str| -> i64 {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("#{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no #{name}: {out:?}"))
    };
    assert_eq!(note("exit"), 0, "{out:?}");
    let records: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<&str> = records.iter().filter_map(|r| r["state"].as_str()).collect();
    assert_eq!(states, ["running_active", "running_busy"], "{out:?}");
    assert!(
        records[1]["activity"]["cpu_ms_since"].as_u64().unwrap() > 0,
        "{out:?}"
    );
    // The second iteration starts 4 s after the first; its verdict needs no 4 s wait.
    let waited = note("ms");
    assert!(waited < 6_500, "the busy verdict took {waited} ms: {out:?}");
}
