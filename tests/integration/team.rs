//! Heartbeat workers (team layout): health in `status`, `health-events`, and `beat`.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

fn set_mtime(path: &Path, ms: i64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    file.set_times(std::fs::FileTimes::new().set_modified(at).set_accessed(at))
        .unwrap();
}

/// A worker directory with a spec (mtime `spec_age` before NOW), an empty inbox and outbox
/// and, when given, a heartbeat document. The spec names them relative to the worker's
/// directory (SPEC §5); it names the heartbeat only when there is one.
fn worker(run: &Run, name: &str, heartbeat: Option<&str>, spec_age_ms: i64) {
    let mut spec = json!({"name": name, "role": "coder",
                          "inbox": "inbox.jsonl", "outbox": "./outbox.jsonl"});
    if heartbeat.is_some() {
        spec["heartbeat"] = json!("heartbeat.json");
    }
    run.write(&format!("workers/{name}/inbox.jsonl"), "");
    run.write(&format!("workers/{name}/outbox.jsonl"), "");
    let path = run.write(
        &format!("workers/{name}/worker-spec.json"),
        serde_json::to_vec(&spec).unwrap(),
    );
    set_mtime(&path, NOW_MS - spec_age_ms);
    if let Some(heartbeat) = heartbeat {
        let path = run.write(&format!("workers/{name}/heartbeat.json"), heartbeat);
        set_mtime(&path, NOW_MS - 1_000);
    }
}

fn beat_at(offset_ms: i64) -> String {
    json!({"status": "alive", "name": "w", "ts": at(offset_ms)}).to_string()
}

fn worker_record(out: &Outcome, id: &str) -> Value {
    out.records()
        .into_iter()
        .find(|r| r["kind"] == "worker" && r["worker_id"] == id)
        .unwrap_or_else(|| panic!("no worker {id} in {}", out.stdout))
}

#[test]
fn health_of_every_kind_of_worker() {
    let run = Run::bare();
    worker(&run, "a-fresh", Some(&beat_at(-5_000)), 600_000);
    worker(&run, "b-stalled", Some(&beat_at(-75_000)), 600_000);
    worker(&run, "c-dead", Some(&beat_at(-200_000)), 600_000);
    worker(
        &run,
        "d-stopped",
        Some(&json!({"status": "stopped", "ts": at(-3_600_000)}).to_string()),
        600_000,
    );
    worker(&run, "e-starting", None, 10_000);
    worker(&run, "f-never", None, 600_000);
    worker(
        &run,
        "g-torn",
        Some("{\"status\":\"alive\",\"ts\":\"2026-11"),
        600_000,
    );
    worker(&run, "h-no-ts", Some("{\"status\":\"alive\"}"), 600_000);
    worker(&run, "i-skew", Some(&beat_at(30_000)), 600_000);
    worker(&run, "j-far", Some(&beat_at(86_400_000)), 600_000);
    let out = status(&run, &["--check"]);
    assert_eq!(
        out.code, 1,
        "stalled and dead workers need attention: {}",
        out.stderr
    );
    assert_eq!(out.stderr, "");
    let run_dir = run.path().to_string_lossy().into_owned();
    assert_eq!(
        worker_record(&out, "b-stalled"),
        json!({
            "kind": "worker", "run_dir": run_dir,
            "path": format!("{run_dir}/workers/b-stalled/worker-spec.json"),
            "worker_id": "b-stalled", "role": "coder", "health": "stalled", "heartbeat_status": "alive",
            "last_heartbeat": at(-75_000), "heartbeat_age_ms": 75000, "inbox_count": 0, "outbox_count": 0,
            "message": "Stale heartbeat for 75s (threshold: 60s)", "needs_attention": true, "warnings": []
        })
    );
    let expect = |id: &str, fields: Value| assert_fields(&worker_record(&out, id), fields);
    expect(
        "a-fresh",
        json!({"health": "healthy", "heartbeat_age_ms": 5000, "needs_attention": false}),
    );
    expect(
        "c-dead",
        json!({"health": "dead", "message": "No heartbeat for 200s (threshold: 180s)"}),
    );
    expect(
        "d-stopped",
        json!({"health": "stopped", "needs_attention": false}),
    );
    expect(
        "e-starting",
        json!({"health": "starting", "heartbeat_status": null, "needs_attention": false}),
    );
    expect("f-never", json!({"health": "dead", "last_heartbeat": null}));
    expect(
        "g-torn",
        json!({"health": "healthy", "last_heartbeat": at(-1_000), "warnings": ["heartbeat_unparsable"]}),
    );
    expect(
        "h-no-ts",
        json!({"health": "healthy", "warnings": ["heartbeat_unparsable"]}),
    );
    expect(
        "i-skew",
        json!({"health": "healthy", "heartbeat_age_ms": 0, "warnings": ["clock_skew"]}),
    );
    expect(
        "j-far",
        json!({"health": "unknown", "warnings": ["clock_skew"], "needs_attention": true}),
    );
    // Only stalled/dead/unknown count for --check.
    let calm = Run::bare();
    worker(&calm, "ok", Some(&beat_at(-1_000)), 600_000);
    worker(
        &calm,
        "stopped",
        Some(&json!({"status": "stopped", "ts": at(-3_600_000)}).to_string()),
        600_000,
    );
    worker(&calm, "starting", None, 1_000);
    assert_eq!(status(&calm, &["--check"]).code, 0);
}

#[test]
fn summary_filters_and_thresholds() {
    let run = Run::new();
    run.delegation("d", &delegation("d", "queued", json!({})));
    worker(&run, "a", Some(&beat_at(-5_000)), 600_000);
    worker(&run, "b", Some(&beat_at(-75_000)), 600_000);
    let out = status(&run, &["--summary", "--state", "stalled,queued"]);
    let kinds: Vec<(Value, Value)> = out
        .records()
        .iter()
        .map(|r| {
            (
                r["kind"].clone(),
                r.get("worker_id")
                    .or(r.get("delegation_id"))
                    .cloned()
                    .unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("delegation"), json!("d")),
            (json!("worker"), json!("b")),
            (json!("summary"), Value::Null),
            (json!("summary"), Value::Null)
        ]
    );
    let summaries: Vec<Value> = out
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "summary")
        .collect();
    assert_eq!(
        summaries[1],
        json!({"kind": "summary", "scope": "workers", "run_dir": run.path().to_string_lossy(),
               "total": 2, "healthy": 1, "stalled": 1, "dead": 0, "stopped": 0, "starting": 0, "unknown": 0})
    );
    // Thresholds move the verdicts; out of order is a usage error.
    let loose = status(&run, &["--heartbeat-stale", "2m", "--heartbeat-dead", "5m"]);
    assert_fields(&worker_record(&loose, "b"), json!({"health": "healthy"}));
    let wrong = status(&run, &["--heartbeat-stale", "3m", "--heartbeat-dead", "2m"]);
    assert_eq!(wrong.code, 2);
    assert!(
        wrong
            .stderr
            .contains("--heartbeat-stale 3m must be below --heartbeat-dead 2m"),
        "{}",
        wrong.stderr
    );
    // --task-card limits to delegations of that card: workers have none.
    let card = status(&run, &["--task-card", "card-1"]);
    assert!(card.records().iter().all(|r| r["kind"] != "worker"));
}

#[test]
fn inbox_and_outbox_are_counted_streaming() {
    let run = Run::bare();
    worker(&run, "w", Some(&beat_at(-1_000)), 600_000);
    run.write(
        "workers/w/inbox.jsonl",
        "{\"m\":1}\n\n   \n{\"m\":2}\n{\"m\":3}",
    );
    let outbox = run.path().join("workers/w/outbox.jsonl");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&outbox).unwrap());
        let line = format!("{{\"result\":\"{}\"}}\n\n", "x".repeat(1000));
        for _ in 0..100_000 {
            file.write_all(line.as_bytes()).unwrap();
        }
    }
    assert!(std::fs::metadata(&outbox).unwrap().len() > 100_000_000);
    let out = status(&run, &["--max-stream-read", "200M"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &worker_record(&out, "w"),
        json!({"inbox_count": 3, "outbox_count": 100000, "warnings": []}),
    );
    // The default bound (32M) counts the lines of the first 32M only, and says so.
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let per_line = 1015u64;
    let bound = 32u64 << 20;
    let counted = bound / per_line + u64::from(!bound.is_multiple_of(per_line));
    assert_fields(
        &worker_record(&out, "w"),
        json!({"inbox_count": 3, "outbox_count": counted, "warnings": ["outbox_truncated"]}),
    );
}

#[test]
fn unsafe_heartbeat_and_inbox_paths_are_per_worker_errors() {
    let outside = TempDir::new("outside-hb");
    std::fs::write(
        outside.join("heartbeat.json"),
        json!({"status": "alive", "ts": at(0), "name": "SECRETNAME"}).to_string(),
    )
    .unwrap();
    let run = Run::bare();
    let fifo = run.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo on a fresh path in our temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    run.write("real-heartbeat.json", beat_at(-1_000));
    std::os::unix::fs::symlink(
        run.path().join("real-heartbeat.json"),
        run.path().join("link.json"),
    )
    .unwrap();
    let cases = [
        ("a-fifo", "heartbeat", "../../fifo".to_string()),
        ("b-zero", "heartbeat", "/dev/zero".to_string()),
        ("c-link", "heartbeat", "../../link.json".to_string()),
        (
            "d-outside",
            "heartbeat",
            outside
                .join("heartbeat.json")
                .to_string_lossy()
                .into_owned(),
        ),
        ("e-inbox-fifo", "inbox", "../../fifo".to_string()),
    ];
    for (name, field, path) in &cases {
        let mut spec = json!({"name": name});
        spec[*field] = json!(path);
        run.write(
            &format!("workers/{name}/worker-spec.json"),
            spec.to_string(),
        );
    }
    std::fs::create_dir_all(run.path().join("workers/f-empty")).unwrap();
    let out = status(&run, &[]);
    assert_eq!(out.code, 3);
    let spec = |name: &str| {
        run.path()
            .join(format!("workers/{name}/worker-spec.json"))
            .display()
            .to_string()
    };
    assert_eq!(
        out.stderr_lines(),
        [
            format!(
                "flatline: {}: heartbeat fifo: is a FIFO, not a regular file, refused",
                spec("a-fifo")
            ),
            format!(
                "flatline: {}: heartbeat /dev/zero: path_outside_run: lies outside the run directory (see --allow-outside-paths)",
                spec("b-zero")
            ),
            format!(
                "flatline: {}: heartbeat link.json: is a symlink (or passes through one), refused",
                spec("c-link")
            ),
            format!(
                "flatline: {}: heartbeat {}: path_outside_run: lies outside the run directory (see --allow-outside-paths)",
                spec("d-outside"),
                outside.join("heartbeat.json").display()
            ),
            format!(
                "flatline: {}: inbox fifo: is a FIFO, not a regular file, refused",
                spec("e-inbox-fifo")
            ),
            format!(
                "flatline: {}: a worker directory without worker-spec.json",
                run.path().join("workers/f-empty").display()
            ),
        ]
    );
    for name in ["a-fifo", "b-zero", "c-link", "d-outside"] {
        assert_fields(
            &worker_record(&out, name),
            json!({"health": "unknown", "warnings": ["heartbeat_unreadable"]}),
        );
    }
    assert_fields(
        &worker_record(&out, "e-inbox-fifo"),
        json!({"inbox_count": null}),
    );
    assert!(!out.stdout.contains("SECRETNAME"));
}

fn health_events(run: &Run, now: &str, extra: &[&str]) -> Outcome {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("health-events"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--now"),
        OsStr::new(now),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.push(run.arg());
    flatline(args)
}

fn events(run: &Run) -> Vec<Value> {
    std::fs::read_to_string(run.path().join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn transitions_append_exactly_the_expected_events() {
    let run = Run::bare();
    worker(&run, "w1", Some(&beat_at(-5_000)), 600_000);
    worker(&run, "w2", Some(&beat_at(-75_000)), 600_000);
    // First run: a baseline; only the worker already stalled emits.
    let first = health_events(&run, NOW, &["--run-id", "r42"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let log = events(&run);
    assert_eq!(log.len(), 1);
    assert_fields(
        &log[0],
        json!({"run_id": "r42", "ts": at(0), "schema_version": 1, "kind": "worker_stalled", "actor": "w2",
               "payload": {"message": "Worker is stalled: Stale heartbeat for 75s (threshold: 60s)"}}),
    );
    assert_fields(
        &first.records()[0],
        json!({"action": "worker_stalled", "outcome": "appended", "worker_id": "w2", "event_id": log[0]["id"]}),
    );
    // Unchanged: nothing appended, state.json byte-identical.
    let state = run.read(".flatline/state.json");
    let same = health_events(&run, NOW, &["--run-id", "r42"]);
    assert_eq!((same.code, same.stdout.as_str()), (0, ""));
    assert_eq!(events(&run).len(), 1);
    assert_eq!(run.read(".flatline/state.json"), state);
    // w2 recovers, w1 goes silent long enough to be dead.
    run.write("workers/w2/heartbeat.json", beat_at(299_000));
    let later = at(300_000);
    let second = health_events(&run, &later, &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let log = events(&run);
    assert_eq!(log.len(), 3);
    assert_fields(
        &log[1],
        json!({"kind": "worker_dead", "actor": "w1", "run_id": run.path().file_name().unwrap().to_string_lossy()}),
    );
    assert_fields(
        &log[2],
        json!({"kind": "worker_recovered", "actor": "w2",
               "payload": {"message": "Worker health changed from stalled to healthy: Heartbeat fresh (1s ago)"}}),
    );
    let ids: std::collections::HashSet<&str> =
        log.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "distinct ids");
    for id in ids {
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "uuid version 4: {id}");
    }
    assert_eq!(
        run.read_json(".flatline/state.json"),
        json!({"schema_version": 1, "workers": {"w1": "dead", "w2": "healthy"}})
    );
}

#[test]
fn a_symlinked_event_log_is_refused() {
    let run = Run::bare();
    worker(&run, "w", Some(&beat_at(-75_000)), 600_000);
    let outside = TempDir::new("outside-events");
    let target = outside.join("events.jsonl");
    std::fs::write(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, run.path().join("events.jsonl")).unwrap();
    let out = health_events(&run, NOW, &[]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr,
        format!(
            "flatline: {}: is a symlink, refused\n",
            run.path().join("events.jsonl").display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "",
        "nothing written through the link"
    );
    assert!(
        !run.path().join(".flatline/state.json").exists(),
        "no baseline without its events"
    );
}

#[test]
fn a_second_writer_exits_75() {
    if !have("flock") {
        return;
    }
    let run = Run::bare();
    worker(&run, "w", Some(&beat_at(-75_000)), 600_000);
    assert_eq!(health_events(&run, NOW, &[]).code, 0);
    let mut holder = Command::new("flock")
        .arg(run.path().join(".flatline/lock"))
        .args(["sh", "-c", "echo locked; exec cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let out = health_events(&run, &at(1_000_000), &[]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert_eq!(events(&run).len(), 1);
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

#[test]
fn beat_writes_atomically_and_a_reader_never_sees_a_torn_heartbeat() {
    let dir = TempDir::new("beat");
    let file = dir.join("heartbeat.json");
    let mut life = Proc::sleep();
    let mut beater = Command::new(bin())
        .args(["beat"])
        .arg(&file)
        .args(["--name", "w7", "--every", "1ms", "--while-pid"])
        .arg(life.pid().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut reads = 0u64;
    while seen.len() < 1_000 {
        assert!(
            started.elapsed() < HANG_GUARD,
            "only {} beats seen",
            seen.len()
        );
        let Ok(bytes) = std::fs::read(&file) else {
            continue; // not created yet
        };
        reads += 1;
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "a torn heartbeat after {reads} reads: {e}: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(doc["status"], "alive");
        assert_eq!(doc["name"], "w7");
        seen.insert(doc["ts"].as_str().unwrap().to_string());
    }
    // The worker ends: beat writes a final "stopped" and exits 0.
    life.child.kill().unwrap();
    life.child.wait().unwrap();
    let status = beater.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let last: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(last["status"], "stopped");
    assert_eq!(last["name"], "w7");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("heartbeat.json")]);
}

#[test]
fn beat_once_and_on_a_signal() {
    let dir = TempDir::new("beat-once");
    let file = dir.join("w9").join("heartbeat.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let out = flatline([
        OsStr::new("beat"),
        file.as_os_str(),
        OsStr::new("--status"),
        OsStr::new("ready"),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        (doc["status"].as_str(), doc["name"].as_str()),
        (Some("ready"), Some("w9"))
    );
    // A looping beat ends on SIGTERM with a final "stopped".
    let mut beater = Command::new(bin())
        .arg("beat")
        .arg(&file)
        .args(["--every", "50ms"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        if doc["status"] == "alive" {
            break;
        }
        assert!(started.elapsed() < HANG_GUARD);
        std::thread::yield_now();
    }
    // SAFETY: signals the beat this test started.
    assert_eq!(unsafe { libc::kill(beater.id() as i32, libc::SIGTERM) }, 0);
    let status = beater.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(doc["status"], "stopped");
    // A symlinked heartbeat file is refused.
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let out = flatline([OsStr::new("beat"), link.as_os_str()]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr,
        format!("flatline: {}: is a symlink, refused\n", link.display())
    );
}

#[test]
fn a_worker_is_its_directory_whatever_its_spec_says() {
    let run = Run::bare();
    worker(&run, "builder", Some(&beat_at(-5_000)), 600_000);
    // Another directory's spec claims to be the builder, and is stalled.
    worker(&run, "evil", Some(&beat_at(-75_000)), 600_000);
    let mut spec = run.read_json("workers/evil/worker-spec.json");
    spec["name"] = json!("builder");
    run.write("workers/evil/worker-spec.json", spec.to_string());
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = |id: &str| worker_record(&out, id);
    assert_fields(
        &record("builder"),
        json!({"health": "healthy", "warnings": []}),
    );
    assert!(record("builder").get("spec_name").is_none());
    assert_fields(
        &record("evil"),
        json!({"health": "stalled", "spec_name": "builder", "warnings": ["spec_name_mismatch"]}),
    );
    // health-events speaks of the directory, never of the worker the spec names.
    let first = health_events(&run, NOW, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let log = events(&run);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_fields(&log[0], json!({"kind": "worker_stalled", "actor": "evil"}));
    assert_eq!(
        run.read_json(".flatline/state.json")["workers"],
        json!({"builder": "healthy", "evil": "stalled"})
    );
}

#[test]
fn spec_paths_resolve_from_the_worker_directory_and_missing_ones_warn() {
    let run = Run::bare();
    let spec = json!({"name": "w", "heartbeat": "state/hb.json", "inbox": "in.jsonl",
                      "outbox": "../../queues/out.jsonl"});
    let spec_path = run.write("workers/w/worker-spec.json", spec.to_string());
    set_mtime(&spec_path, NOW_MS - 600_000);
    run.write("workers/w/state/hb.json", beat_at(-5_000));
    run.write("queues/out.jsonl", "{\"a\":1}\n{\"a\":2}\n");
    // What the old rule read (paths from the run directory) is not read any more.
    run.write("state/hb.json", beat_at(-500_000));
    run.write("in.jsonl", "{\"decoy\":1}\n");
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &worker_record(&out, "w"),
        json!({"health": "healthy", "heartbeat_age_ms": 5000, "inbox_count": null,
               "outbox_count": 2, "warnings": ["inbox_missing"]}),
    );
    // A named heartbeat that does not exist is no silent "dead": it says so.
    let spec = json!({"name": "v", "heartbeat": "hb.json"});
    let v_spec = run.write("workers/v/worker-spec.json", spec.to_string());
    set_mtime(&v_spec, NOW_MS - 600_000);
    let out = status(&run, &[]);
    assert_fields(
        &worker_record(&out, "v"),
        json!({"health": "dead", "inbox_count": 0, "warnings": ["heartbeat_missing"]}),
    );
    // The writing commands tell it on stderr once, when it first appears.
    let notice = |spec: &Path, what: &str, path: &str| {
        format!(
            "flatline: {}: {what} {path} does not exist ({what}_missing)",
            spec.display()
        )
    };
    let first = health_events(&run, NOW, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.stderr_lines(),
        [
            notice(&v_spec, "heartbeat", "workers/v/hb.json"),
            notice(&spec_path, "inbox", "workers/w/in.jsonl"),
        ]
    );
    assert_eq!(
        run.read_json(".flatline/state.json")["missing_paths"],
        json!({"v": ["heartbeat"], "w": ["inbox"]})
    );
    let again = health_events(&run, NOW, &[]);
    assert_eq!((again.code, again.stderr.as_str()), (0, ""));
    // Once it exists the warning goes, and the state forgets it.
    run.write("workers/w/in.jsonl", "{\"m\":1}\n");
    std::fs::remove_dir_all(run.path().join("workers/v")).unwrap();
    let fixed = health_events(&run, NOW, &[]);
    assert_eq!((fixed.code, fixed.stderr.as_str()), (0, ""));
    assert!(
        run.read_json(".flatline/state.json")
            .get("missing_paths")
            .is_none()
    );
    assert_fields(
        &worker_record(&status(&run, &[]), "w"),
        json!({"inbox_count": 1, "warnings": []}),
    );
}

#[test]
fn an_event_log_without_a_final_newline_loses_no_event() {
    let run = Run::bare();
    worker(&run, "w", Some(&beat_at(-75_000)), 600_000);
    // An orchestrator wrote its last event without a newline (or died mid-line).
    run.write("events.jsonl", "{\"kind\":\"orchestrator_event\"}");
    let out = health_events(&run, NOW, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let log = events(&run);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0], json!({"kind": "orchestrator_event"}));
    assert_fields(&log[1], json!({"kind": "worker_stalled", "actor": "w"}));
    assert!(run.read("events.jsonl").ends_with(b"}\n"));
}
