//! Concurrency across users (issue 18): an orchestrator of ANOTHER uid, a member of the run's
//! group only (`setpriv --reuid=1234 --regid=4321 --clear-groups`), rewrites delegations by
//! temp file + rename while root's `flatline sweep` runs again and again, each sweep writing
//! progress into the same files. Taking the run lock (`flock` on `.flatline/lock`, as the
//! README tells orchestrators) around each read-modify-write loses nothing over 10,000
//! writes; without it, the updates flatline overwrites are measured at three rates and
//! printed (the figures in SECURITY.md come from this test).
//!
//! The writer is /usr/bin/python3 (a path another user can run). Nothing here signals.

use crate::support::*;
use serde_json::{Value, json};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CODEX_NO_TERMINAL: &str = include_str!("../fixtures/streams/codex-exec-no-terminal.jsonl");
const ORCHESTRATOR: u32 = 1234;
const RUN_GROUP: u32 = 4321;
const PYTHON: &str = "/usr/bin/python3";
const COUNTER: &str = "orchestrator_counter";
const DOCS: usize = 6;

/// The orchestrator: read, check its own last counter is still there (else a lost update),
/// add one, write a temp file, rename it over; under the lock when given one. Prints a
/// JSON report.
const WRITER: &str = r#"
import fcntl, json, os, sys, time
lock, d, names, pause, limit, seconds = sys.argv[1], sys.argv[2], sys.argv[3].split(","), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
fd = os.open(lock, os.O_RDONLY) if lock != "-" else None
last = {n: 0 for n in names}
lost = writes = 0
error = None
deadline = time.monotonic() + seconds
i = 0
try:
    while writes < limit and time.monotonic() < deadline:
        n = names[i % len(names)]
        i += 1
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            path = os.path.join(d, n)
            with open(path, "rb") as f:
                doc = json.loads(f.read())
            if doc.get("orchestrator_counter", 0) != last[n]:
                lost += 1
            last[n] += 1
            doc["orchestrator_counter"] = last[n]
            temp = os.path.join(d, "." + n + ".orchestrator.tmp")
            with open(temp, "w") as f:
                f.write(json.dumps(doc, indent=2) + "\n")
            os.rename(temp, path)
            writes += 1
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        if pause > 0:
            time.sleep(pause)
except Exception as e:
    error = repr(e)
print(json.dumps({"writes": writes, "lost": lost, "last": last, "error": error}))
"#;

fn ready() -> bool {
    if !is_root() || !Path::new(PYTHON).exists() || !have("setpriv") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs root, setpriv and {PYTHON}"
        );
        eprintln!("SKIPPED: needs root, setpriv and {PYTHON}");
        return false;
    }
    true
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// The orchestrator's run: its user, the run's group; root's first sweep makes `.flatline/`
/// in that group. Every delegation has a stream flatline reads progress from.
fn orchestrated_run() -> (Run, Vec<String>) {
    let run = Run::new();
    let now = real_now_ms();
    let mut names = Vec::new();
    for i in 0..DOCS {
        let id = format!("o{i}");
        let mut doc = delegation(
            &id,
            "running",
            json!({"last_progress_at": rfc3339(now - 60_000), "stale_after_ms": 3_600_000}),
        );
        doc["worker_launch_evidence"] =
            json!({"raw_events_file": format!("raw-events/{id}.jsonl")});
        run.delegation(&id, &doc);
        run.write(&format!("raw-events/{id}.jsonl"), CODEX_NO_TERMINAL);
        names.push(format!("{id}.json"));
    }
    chown_tree(run.path(), ORCHESTRATOR, RUN_GROUP);
    std::fs::set_permissions(
        run.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    let out = sweep(&run);
    assert_eq!(out.code, 0, "{}", out.stderr);
    (run, names)
}

fn sweep(run: &Run) -> Outcome {
    flatline([
        "sweep",
        "--format=ndjson",
        "--wait",
        "30s",
        run.arg().to_str().unwrap(),
    ])
}

#[derive(Debug)]
struct Report {
    writes: u64,
    lost: u64,
    sweeps: u64,
    progressed: u64,
    last: Value,
}

/// Runs the orchestrator (`lock` or not, `pause` seconds between writes) while sweeps run
/// one after another, each after moving every stream's mtime forward.
fn contend(
    run: &Run,
    names: &[String],
    locked: bool,
    pause: f64,
    limit: u64,
    seconds: f64,
) -> Report {
    let lock = run.path().join(".flatline/lock");
    let mut writer = Command::new("setpriv")
        .arg(format!("--reuid={ORCHESTRATOR}"))
        .arg(format!("--regid={RUN_GROUP}"))
        .arg("--clear-groups")
        .args([PYTHON, "-c", WRITER])
        .arg(if locked { lock.to_str().unwrap() } else { "-" })
        .arg(run.path().join("delegations"))
        .arg(names.join(","))
        .arg(pause.to_string())
        .arg(limit.to_string())
        .arg(seconds.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut sweeps, mut progressed) = (0, 0);
    let mut tick = real_now_ms();
    let started = Instant::now();
    while writer.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the writer hangs"
        );
        tick = tick.max(real_now_ms()) + 1;
        for i in 0..DOCS {
            set_mtime_ms(&run.path().join(format!("raw-events/o{i}.jsonl")), tick);
        }
        let out = sweep(run);
        assert_no_crash(&out);
        assert!(
            matches!(out.code, 0 | 3),
            "sweep exited {}: {}",
            out.code,
            out.stderr
        );
        sweeps += 1;
        // Paced, so that the writer gets most of the lock's time.
        std::thread::sleep(Duration::from_millis(40));
        progressed += out
            .records()
            .iter()
            .filter(|r| r["action"] == "progressed" && r["outcome"] == "written")
            .count() as u64;
    }
    let mut text = String::new();
    writer
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(writer.wait().unwrap().success());
    let report: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(report["error"], Value::Null, "the writer failed: {report}");
    let mut lost = report["lost"].as_u64().unwrap();
    // The writer's last update of each file may be overwritten after it stopped looking.
    for name in names {
        let doc = run.read_json(&format!("delegations/{name}"));
        if doc[COUNTER] != report["last"][name] {
            lost += 1;
        }
    }
    Report {
        writes: report["writes"].as_u64().unwrap(),
        lost,
        sweeps,
        progressed,
        last: report["last"].clone(),
    }
}

#[test]
fn an_orchestrator_of_another_uid_holding_the_lock_loses_nothing_in_10000_writes() {
    if !ready() {
        return;
    }
    let (run, names) = orchestrated_run();
    // A breath between writes: flock is not fair, and a writer that takes it back at once
    // would keep every sweep waiting.
    let report = contend(&run, &names, true, 0.0002, 10_000, 60.0);
    eprintln!("locked, another uid: {report:?}");
    assert_eq!(
        report.writes, 10_000,
        "the writer got its writes in: {report:?}"
    );
    assert!(
        report.sweeps >= 10 && report.progressed >= 10,
        "flatline wrote too: {report:?}"
    );
    assert_eq!(
        report.lost, 0,
        "an update of the orchestrator was lost: {report:?}"
    );
    for name in &names {
        let doc = run.read_json(&format!("delegations/{name}"));
        assert_eq!(doc[COUNTER], report.last[name], "{name}");
    }
}

#[test]
fn an_orchestrator_ignoring_the_lock_loses_updates_at_every_rate_measured() {
    if !ready() {
        return;
    }
    for (label, pause) in [
        ("every 10 ms", 0.010),
        ("every 1 ms", 0.001),
        ("as fast as it can", 0.0),
    ] {
        let (run, names) = orchestrated_run();
        let report = contend(&run, &names, false, pause, u64::MAX, 4.0);
        eprintln!(
            "UNLOCKED {label}: {} orchestrator writes, {} lost ({:.2}%); {} sweeps wrote progress {} times",
            report.writes,
            report.lost,
            report.lost as f64 * 100.0 / report.writes.max(1) as f64,
            report.sweeps,
            report.progressed
        );
        assert!(
            report.writes > 0 && report.sweeps > 0,
            "{label}: {report:?}"
        );
        // Whatever was lost, every document is whole and in place.
        for name in &names {
            let doc = run.read_json(&format!("delegations/{name}"));
            assert!(doc[COUNTER].as_u64().is_some(), "{label}: {name}: {doc}");
        }
    }
}
