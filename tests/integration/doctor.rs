//! `flatline doctor` (SPEC §13): each misconfiguration of a prepared run directory is found
//! with its fix, a good run directory gives no finding, and `--check-unit` runs a unit's
//! ExecStart= through flatline's own parser.

use crate::support::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn doctor(args: &[&str]) -> Outcome {
    let mut all = vec!["doctor", "--format", "ndjson", "--now", NOW];
    all.extend_from_slice(args);
    flatline(all)
}

/// The findings about run directories and units (host findings depend on the machine).
fn findings(out: &Outcome) -> Vec<Value> {
    out.records()
        .into_iter()
        .filter(|r| {
            assert_eq!(r["kind"], "finding", "{r}");
            for field in ["check", "message", "fix"] {
                assert!(r[field].as_str().is_some_and(|s| !s.is_empty()), "{r}");
            }
            !(r["run_dir"].is_null() && r["path"].is_null())
        })
        .collect()
}

fn checks(out: &Outcome) -> Vec<String> {
    let mut checks: Vec<String> = findings(out)
        .iter()
        .map(|r| r["check"].as_str().unwrap_or("").to_string())
        .collect();
    checks.sort();
    checks
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// A run that is set up right: a running worker with every timestamp and an existing
/// stream, a heartbeat worker whose paths exist.
fn good_run() -> (Run, Proc) {
    let run = Run::new();
    let worker = Proc::sleep();
    run.write("raw-events/w1.jsonl", b"{}\n");
    run.delegation(
        "w1",
        &json!({
            "delegation_id": "w1",
            "child_agent": {"status": "running"},
            "worker_launch_evidence": {"raw_events_file": "raw-events/w1.jsonl"},
            "worker_lifecycle": {
                "launch_requested_at": at(-60_000),
                "started_at": at(-59_000),
                "last_progress_at": at(-1_000),
                "process_id": worker.pid(),
            },
        }),
    );
    run.write(
        "workers/alpha/worker-spec.json",
        br#"{"name":"alpha","heartbeat":"heartbeat.json","inbox":"inbox.jsonl","outbox":"outbox.jsonl"}"#,
    );
    run.write("workers/alpha/heartbeat.json", br#"{"status":"alive"}"#);
    run.write("workers/alpha/inbox.jsonl", b"");
    run.write("workers/alpha/outbox.jsonl", b"");
    (run, worker)
}

#[test]
fn a_good_run_directory_gives_no_finding() {
    let (run, _worker) = good_run();
    let out = doctor(&[run.path().to_str().unwrap()]);
    assert_eq!(findings(&out), Vec::<Value>::new(), "{}", out.stderr);
    // Without host findings the exit status is 0; the host's own are checked by unit tests.
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    if out.records().is_empty() {
        assert_eq!(out.code, 0);
    }
    assert_eq!(out.stderr, "");
}

#[test]
fn doctor_finds_each_misconfiguration_of_a_run_directory() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to give files other owners");
        return;
    }
    let (run, _worker) = good_run();
    misconfigure(&run);
    let out = doctor(&[run.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        checks(&out),
        [
            "clock_skew",
            "identity_timestamps",
            "lock_group_member",
            "named_path",
            "named_path",
            "pid_namespace",
            "state_dir_mode",
            "state_dir_owner",
            "state_file",
            "unreadable_document",
            // raw-events/ (0777) and .flatline/ (0770, its group holds root, not its owner).
            "writable_directory",
            "writable_directory",
        ],
        "{}",
        out.stdout
    );
    let all = findings(&out);
    let of = |check: &str| -> Vec<&Value> { all.iter().filter(|r| r["check"] == check).collect() };
    let raw_events = of("writable_directory")
        .into_iter()
        .find(|r| r["path"].as_str().unwrap().ends_with("raw-events"))
        .expect("raw-events/ is found");
    assert!(
        raw_events["fix"].as_str().unwrap().contains("chmod o-w"),
        "{raw_events}"
    );
    assert!(
        of("state_file")[0]["path"]
            .as_str()
            .unwrap()
            .ends_with(".flatline/lock")
    );
    assert!(
        of("lock_group_member")[0]["message"]
            .as_str()
            .unwrap()
            .contains("uid 65534")
    );
    let named: Vec<&str> = of("named_path")
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert!(
        named
            .iter()
            .any(|m| m.contains("missing-heartbeat.json") && m.contains("does not exist")),
        "{named:?}"
    );
    assert!(named.iter().any(|m| m.contains("/etc/passwd")), "{named:?}");
    // doctor writes nothing.
    assert_eq!(
        temp_files(&run.path().join("delegations")),
        Vec::<String>::new()
    );
}

/// One of each misconfiguration doctor finds, in a good run (needs root for the owners).
fn misconfigure(run: &Run) {
    // A directory others can write, without the sticky bit.
    chmod(&run.path().join("raw-events"), 0o777);
    // .flatline/ of a stranger, writable by its group; a lock readable by everyone, in the
    // group of a delegation owner (nobody).
    run.write(".flatline/lock", b"");
    run.write(".flatline/state.json", b"{}");
    chown(&run.path().join(".flatline"), 4242, 0);
    chmod(&run.path().join(".flatline"), 0o770);
    chmod(&run.path().join(".flatline/state.json"), 0o640);
    chown(&run.path().join(".flatline/lock"), 0, 65534);
    chmod(&run.path().join(".flatline/lock"), 0o644);
    // A running worker without the timestamps identity needs, owned by nobody.
    let bare = run.delegation(
        "no-times",
        &delegation("no-times", "running", json!({"process_id": 4_000_000})),
    );
    chown(&bare, 65534, 65534);
    // A progress timestamp an hour ahead, a fingerprint of another pid namespace, and a
    // stream outside the run.
    run.delegation(
        "skewed",
        &json!({
            "delegation_id": "skewed",
            "child_agent": {"status": "running"},
            "worker_launch_evidence": {"raw_events_file": "/etc/passwd"},
            "worker_lifecycle": {
                "started_at": at(-60_000),
                "last_progress_at": at(3_600_000),
                "process_id": 4_000_001,
                "process_fingerprint": {"start_ticks": 1, "boot_id": boot_id(), "pid_ns": 1},
            },
        }),
    );
    run.write("delegations/broken.json", b"{\"delegation_id\": ");
    run.write(
        "workers/beta/worker-spec.json",
        br#"{"name":"beta","heartbeat":"missing-heartbeat.json"}"#,
    );
}

#[test]
fn not_a_run_directory_is_a_finding() {
    let run = Run::bare();
    let out = doctor(&[run.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(checks(&out), ["not_a_run_directory"]);
}

/// The shipped unit, and the unit with one thing broken.
fn shipped_unit() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/systemd/flatline-sweep@.service"
    ))
    .unwrap()
}

fn check_unit(text: &str) -> Outcome {
    let dir = TempDir::new("unit");
    let path = dir.join("flatline-sweep@.service");
    std::fs::write(&path, text).unwrap();
    doctor(&["--check-unit", path.to_str().unwrap()])
}

#[test]
fn the_shipped_unit_passes_check_unit() {
    let out = check_unit(&shipped_unit());
    assert_eq!(findings(&out), Vec::<Value>::new(), "{}", out.stdout);
}

#[test]
fn broken_units_fail_check_unit_with_the_right_finding() {
    let unit = shipped_unit();
    let line = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart=")
        .to_string();
    let cases = [
        (
            line.replace("--deadline 4min", "--deadline 1h 30min"),
            "unit_duration_space",
        ),
        (line.replace("--wait 30s", "--wiat 30s"), "unit_usage_error"),
        (
            line.replace("--wait 30s", "--wait ${WAIT}"),
            "unit_variable",
        ),
        (
            line.replace("sweep", "sweep --now 2026-11-22T08:00:00Z"),
            "unit_usage_error",
        ),
        (
            line.replace("/flatline ", "/flatline-wrapper "),
            "unit_not_flatline",
        ),
    ];
    for (broken, expected) in cases {
        assert_ne!(
            broken, line,
            "{expected}: the shipped unit changed; update this test"
        );
        let out = check_unit(&unit.replace(&line, &broken));
        assert_eq!(out.code, 1, "{broken}: {out:?}");
        let found = checks(&out);
        assert!(
            found.contains(&expected.to_string()),
            "{broken}: {found:?}\n{}",
            out.stdout
        );
        let record = findings(&out)
            .into_iter()
            .find(|r| r["check"] == expected)
            .unwrap();
        assert!(
            record["path"]
                .as_str()
                .unwrap()
                .contains("flatline-sweep@.service:"),
            "{record}"
        );
    }
    // A variable the unit sets is expanded, not reported.
    let defined = unit
        .replace(&line, &line.replace("--wait 30s", "--wait ${WAIT}"))
        .replace("[Service]\n", "[Service]\nEnvironment=WAIT=30s\n");
    assert_eq!(findings(&check_unit(&defined)), Vec::<Value>::new());
}

#[test]
fn doctor_without_run_dir_or_unit_is_a_usage_error() {
    let out = flatline(["doctor"]);
    assert_eq!(out.code, 2, "{out:?}");
}
