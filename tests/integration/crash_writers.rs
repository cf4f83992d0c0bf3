//! Crash injection for the other writing commands (issue 18): `sweep`, `fan-in` and
//! `health-events` are SIGKILLed at seeded random moments over small run directories
//! (crash.rs does `refresh` and `reclaim`). After every kill: every file flatline may
//! write is its old bytes or a new version (JSON that parses; byte-exact where the command
//! is deterministic under `--now`, else equal to a new version once digits in strings are
//! masked), events.jsonl holds only whole lines, each a prefix of what an uninterrupted run
//! appends, temp files never pile up, and the next run that is not killed removes them.
//!
//! Nothing here records a live process (no pid, or pids of exited children an hour old), so
//! no signal can reach anything.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CODEX_SUCCESS: &str = include_str!("../fixtures/streams/codex-exec-commands.jsonl");
const CODEX_NO_TERMINAL: &str = include_str!("../fixtures/streams/codex-exec-no-terminal.jsonl");

type Files = BTreeMap<String, Vec<u8>>;

fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".flatline.") && name.ends_with(".tmp")
}

/// Every regular file beneath `dir` (relative paths), except temp files and the lock.
fn walk(root: &Path, rel: &str, files: &mut Files, temps: &mut Vec<String>) {
    let dir = root.join(rel);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            walk(root, &path, files, temps);
        } else if is_temp(&name) {
            temps.push(path);
        } else if !(rel == ".flatline" && name.starts_with("lock")) {
            files.insert(path, std::fs::read(entry.path()).unwrap());
        }
    }
}

fn snapshot(run: &Run) -> (Files, Vec<String>) {
    let (mut files, mut temps) = (Files::new(), Vec::new());
    walk(run.path(), "", &mut files, &mut temps);
    (files, temps)
}

/// Puts every file back to its old bytes and removes the ones that were not there (temp
/// files stay: the next run must remove them).
fn restore(run: &Run, old: &Files) {
    let (now, _) = snapshot(run);
    for (name, bytes) in &now {
        match old.get(name) {
            Some(old_bytes) if old_bytes == bytes => {}
            Some(old_bytes) => std::fs::write(run.path().join(name), old_bytes).unwrap(),
            None => std::fs::remove_file(run.path().join(name)).unwrap(),
        }
    }
    for (name, bytes) in old {
        if !now.contains_key(name) {
            std::fs::write(run.path().join(name), bytes).unwrap();
        }
    }
}

/// Runs of digits in strings masked (times, ages, ids), and event ids dropped: what two runs of a
/// command on the real clock agree on.
fn masked(value: &Value) -> Value {
    match value {
        Value::String(text) => {
            let mut out = String::with_capacity(text.len());
            for c in text.chars() {
                if !c.is_ascii_digit() {
                    out.push(c);
                } else if !out.ends_with('#') {
                    out.push('#');
                }
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| key.as_str() != "id")
                .map(|(key, value)| (key.clone(), masked(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

struct Writer {
    verb: &'static str,
    args: Vec<String>,
    /// Every new version byte-exact (a fixed --now, no random ids in documents).
    exact: bool,
}

impl Writer {
    fn command(&self, run: &Run) -> Command {
        let mut cmd = Command::new(bin());
        cmd.arg(self.verb).arg("--format=ndjson").args(&self.args);
        cmd.arg(run.arg());
        cmd
    }

    fn full_run(&self, run: &Run) -> Duration {
        let started = Instant::now();
        let out = run_command(&mut self.command(run), HANG_GUARD);
        let took = started.elapsed();
        assert_no_crash(&out);
        assert_eq!(out.code, 0, "{}: {}", self.verb, out.stderr);
        took
    }

    fn killed_run(&self, run: &Run, delay: Duration) {
        let mut child = self
            .command(run)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
    }
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|&b| b == b'\n').collect()
}

/// Checks one file after a kill; returns whether it holds a new version.
fn check_file(
    name: &str,
    bytes: &[u8],
    old: Option<&Vec<u8>>,
    new: &Files,
    w: &Writer,
    when: &str,
) -> bool {
    if old.map(Vec::as_slice) == Some(bytes) {
        return false;
    }
    let Some(new_bytes) = new.get(name) else {
        panic!("{when}: {name} is new but an uninterrupted run does not write it");
    };
    if name.ends_with(".jsonl") {
        // Appended: whole lines, the old ones first, then a prefix of the new ones. One
        // exception the kernel makes: a write stopped by SIGKILL where it crosses a page
        // boundary of the file is short, so the last line may be cut there (SECURITY.md;
        // the next writer starts on a new line). Every line before it is whole.
        let mut bytes = bytes;
        // An empty file (created, then killed before its first write) holds no line: a prefix.
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            let cut = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let fragment = &bytes[cut..];
            let index = lines(&bytes[..cut]).len();
            let expected = lines(new_bytes).get(index).map_or(0, |line| line.len());
            assert!(
                fragment.starts_with(b"{") && fragment.len() < expected,
                "{when}: {name} ends mid-line with a fragment that is no cut new line: {:?} (expected line {index} of {expected} bytes)",
                String::from_utf8_lossy(fragment)
            );
            bytes = &bytes[..cut];
        }
        let old_lines = old.map(|o| lines(o).len()).unwrap_or(0);
        let (got, want) = (lines(bytes), lines(new_bytes));
        assert!(got.len() <= want.len(), "{when}: {name} has too many lines");
        for (i, (line, expected)) in got.iter().zip(&want).enumerate() {
            let line: Value = serde_json::from_slice(line)
                .unwrap_or_else(|e| panic!("{when}: {name} line {i} does not parse: {e}"));
            let expected: Value = serde_json::from_slice(expected).unwrap();
            if i < old_lines {
                assert_eq!(line, expected, "{when}: {name} lost old line {i}");
            } else {
                assert_eq!(masked(&line), masked(&expected), "{when}: {name} line {i}");
            }
        }
        return got.len() > old_lines;
    }
    if name == ".flatline/state.json" {
        check_state(bytes, old, new_bytes, when);
        return true;
    }
    let doc: Value = serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "{when}: {name} does not parse ({e}): torn write?\n{}",
            String::from_utf8_lossy(bytes)
        )
    });
    if w.exact {
        assert_eq!(
            bytes,
            new_bytes.as_slice(),
            "{when}: {name} is neither old nor new"
        );
    } else {
        let expected: Value = serde_json::from_slice(new_bytes).unwrap();
        assert_eq!(
            masked(&doc),
            masked(&expected),
            "{when}: {name} is neither old nor new"
        );
    }
    true
}

/// state.json is replaced in steps within one run (the clock anchor when the lock is taken,
/// the workers' states later): each section is its old or its new value, the clock's
/// reading aside (it is taken afresh by every run).
fn check_state(bytes: &[u8], old: Option<&Vec<u8>>, new: &[u8], when: &str) {
    let parse = |bytes: &[u8]| -> serde_json::Map<String, Value> {
        let mut doc: Value = serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("{when}: state.json does not parse ({e}): torn write?"));
        if let Some(clock) = doc.get_mut("clock").and_then(Value::as_object_mut) {
            clock.insert("realtime_minus_boottime_ms".into(), json!(0));
        }
        // last_run says since when runs had this configuration: the real clock of the run.
        if let Some(runs) = doc.get_mut("last_run").and_then(Value::as_object_mut) {
            for entry in runs.values_mut().filter_map(Value::as_object_mut) {
                entry.insert("since".into(), json!(0));
            }
        }
        match doc {
            Value::Object(map) => map,
            other => panic!("{when}: state.json is not an object: {other}"),
        }
    };
    let got = parse(bytes);
    let old = old.map(|o| parse(o)).unwrap_or_default();
    let new = parse(new);
    for (key, value) in &got {
        assert!(
            old.get(key) == Some(value) || new.get(key) == Some(value),
            "{when}: state.json {key} is neither old nor new: {value}"
        );
    }
}

/// Kills `w` `kills` times at seeded random moments over a whole run's duration and checks
/// the run directory after each; then an uninterrupted run leaves no temp file.
fn crash_loop(w: &Writer, run: &Run, kills: usize, seed: u64) -> usize {
    let (old, temps) = snapshot(run);
    assert!(temps.is_empty());
    let took = w.full_run(run);
    let (new, _) = snapshot(run);
    assert_ne!(
        new, old,
        "{}: an uninterrupted run writes something",
        w.verb
    );
    let mut span = (took.as_micros() as u64 * 11 / 10).max(2_000);
    let mut rng = XorShift::new(seed);
    let (mut none, mut partial, mut all) = (0, 0, 0);
    let (mut temps_before, mut most_temps) = (0, 0);
    let changed = new.iter().filter(|(n, b)| old.get(*n) != Some(b)).count();
    for i in 0..kills {
        restore(run, &old);
        let delay = Duration::from_micros(rng.below(span));
        w.killed_run(run, delay);
        let when = format!("{} kill {i} after {delay:?} (seed {seed})", w.verb);
        let (now, temps) = snapshot(run);
        for name in old.keys() {
            assert!(now.contains_key(name), "{when}: {name} vanished");
        }
        let fresh = now
            .iter()
            .filter(|(name, bytes)| check_file(name, bytes, old.get(*name), &new, w, &when))
            .count();
        match fresh {
            0 => {
                none += 1;
                span = span * 21 / 20;
            }
            n if n >= changed => {
                all += 1;
                span = (span * 19 / 20).max(2_000);
            }
            _ => partial += 1,
        }
        assert!(
            temps.len() <= temps_before + 1,
            "{when}: temp files piling up: {temps:?}"
        );
        temps_before = temps.len();
        most_temps = most_temps.max(temps.len());
    }
    assert!(
        most_temps <= 4,
        "{}: temp files accumulated: {most_temps}",
        w.verb
    );
    eprintln!(
        "{}: {kills} kills: {none} before any write, {partial} mid-run, {all} after the last write",
        w.verb
    );
    assert!(
        partial + all >= kills / 10,
        "{}: too few kills landed after a write ({partial} + {all} of {kills})",
        w.verb
    );
    restore(run, &old);
    w.full_run(run);
    let (after, temps) = snapshot(run);
    assert_eq!(
        temps,
        Vec::<String>::new(),
        "{}: leftover temp files",
        w.verb
    );
    for (name, bytes) in &after {
        check_file(name, bytes, old.get(name), &new, w, "the final run");
    }
    kills
}

fn member(id: &str, card: &str, status: &str) -> Value {
    let mut doc = delegation(id, status, json!({"last_progress_at": at(-10_000)}));
    doc["task_card_id"] = json!(card);
    doc["worker_result"] = json!({"status": status, "thread_id": format!("t-{id}")});
    doc["zz_orchestrator"] = json!({"kept": [1, {"x": null}]});
    doc
}

#[test]
fn fan_in_killed_at_random_moments_leaves_old_or_new_files() {
    let run = Run::new();
    for card in 0..3 {
        for m in 0..4 {
            let status = if m == 3 { "failed" } else { "completed" };
            let id = format!("c{card}m{m}");
            run.delegation(&id, &member(&id, &format!("card{card}"), status));
        }
    }
    // A card with a member at work is left alone.
    run.delegation("busy0", &member("busy0", "card9", "completed"));
    run.delegation(
        "busy1",
        &delegation("busy1", "running", json!({"last_progress_at": at(-1_000)})),
    );
    let writer = Writer {
        verb: "fan-in",
        args: vec!["--now".into(), NOW.into()],
        exact: true,
    };
    crash_loop(&writer, &run, 260, test_seed(0x5eed_0011));
}

fn team_worker(run: &Run, name: &str, beat_age_ms: i64) {
    let spec = json!({"name": name, "role": "coder", "heartbeat": "heartbeat.json"});
    let path = run.write(
        &format!("workers/{name}/worker-spec.json"),
        spec.to_string(),
    );
    set_mtime_ms(&path, NOW_MS - 600_000);
    let beat = json!({"status": "alive", "name": name, "ts": at(-beat_age_ms)});
    let path = run.write(&format!("workers/{name}/heartbeat.json"), beat.to_string());
    set_mtime_ms(&path, NOW_MS - beat_age_ms);
}

#[test]
fn health_events_killed_at_random_moments_leaves_whole_lines_and_old_or_new_state() {
    let run = Run::new();
    for i in 0..12 {
        let age = match i % 3 {
            0 => 5_000,
            1 => 75_000,
            _ => 900_000,
        };
        team_worker(&run, &format!("w{i:02}"), age);
    }
    run.write(
        "events.jsonl",
        format!(
            "{}\n",
            json!({"id": "00000000-0000-4000-8000-000000000000", "kind": "note", "ts": at(-99_000)})
        ),
    );
    let writer = Writer {
        verb: "health-events",
        args: vec!["--now".into(), NOW.into(), "--run-id".into(), "r1".into()],
        exact: true,
    };
    crash_loop(&writer, &run, 260, test_seed(0x5eed_0012));
}

#[test]
fn sweep_killed_at_random_moments_leaves_old_or_new_files() {
    let run = Run::new();
    let now = real_now_ms();
    for i in 0..16 {
        let id = format!("s{i:02}");
        let stream = format!("raw-events/{id}.jsonl");
        let mut doc = match i % 4 {
            // A terminal stream, no pid: finalized.
            0 => {
                set_mtime_ms(&run.write(&stream, CODEX_SUCCESS), now - 20_000);
                delegation(
                    &id,
                    "running",
                    json!({"last_progress_at": rfc3339(now - 60_000)}),
                )
            }
            // A live stream, no pid: progressed.
            1 => {
                set_mtime_ms(&run.write(&stream, CODEX_NO_TERMINAL), now - 5_000);
                delegation(
                    &id,
                    "running",
                    json!({"last_progress_at": rfc3339(now - 60_000)}),
                )
            }
            // Stale for ten minutes, no process: reclaimed as no_process.
            _ => delegation(
                &id,
                "running",
                json!({"last_progress_at": rfc3339(now - 600_000)}),
            ),
        };
        doc["task_card_id"] = json!(format!("card{}", i % 3));
        doc["worker_launch_evidence"] = json!({"raw_events_file": stream});
        doc["zz_orchestrator"] = json!({"kept": [i, {"x": null}]});
        run.delegation(&id, &doc);
    }
    for i in 0..4 {
        let name = format!("w{i}");
        let spec = json!({"name": name, "role": "coder", "heartbeat": "heartbeat.json"});
        run.write(
            &format!("workers/{name}/worker-spec.json"),
            spec.to_string(),
        );
        let beat = json!({"status": "alive", "name": name, "ts": rfc3339(now - 75_000)});
        run.write(&format!("workers/{name}/heartbeat.json"), beat.to_string());
    }
    let writer = Writer {
        verb: "sweep",
        args: vec!["--grace=300ms".into()],
        exact: false,
    };
    crash_loop(&writer, &run, 300, test_seed(0x5eed_0013));
}

#[test]
fn a_state_temp_file_left_by_a_killed_run_is_removed_by_the_next_writer() {
    for verb in ["health-events", "fan-in", "refresh"] {
        let run = Run::new();
        team_worker(&run, "w1", 5_000);
        let out = flatline([verb, "--now", NOW, run.arg().to_str().unwrap()]);
        assert_eq!(out.code, 0, "{verb}: {}", out.stderr);
        // What a run killed between creating its temp file and renaming it leaves behind.
        let leftover = run
            .path()
            .join(".flatline/.state.json.flatline.4194303.tmp");
        std::fs::write(&leftover, b"{\"schema_ver").unwrap();
        let out = status(&run, &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            leftover.exists(),
            "status writes nothing, so it removes nothing"
        );
        let out = flatline([verb, "--now", NOW, run.arg().to_str().unwrap()]);
        assert_eq!(out.code, 0, "{verb}: {}", out.stderr);
        assert!(!leftover.exists(), "{verb} left the state temp file");
        let (_, temps) = snapshot(&run);
        assert_eq!(temps, Vec::<String>::new(), "{verb}");
    }
}
