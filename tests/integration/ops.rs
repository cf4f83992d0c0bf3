//! What operators run around flatline: Prometheus metrics, the journal, systemd units.

use crate::support::*;
use serde_json::json;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

#[test]
fn prometheus_metrics_pass_promtool_and_are_written_atomically() {
    let run = Run::new();
    run.delegation(
        "a",
        &delegation("a", "running", json!({"last_progress_at": at(-50_000)})),
    );
    run.delegation(
        "b",
        &delegation("b", "running", json!({"last_progress_at": at(-5_000)})),
    );
    run.delegation("c", &delegation("c", "completed", json!({})));
    let dir = TempDir::new("textfile");
    let file = dir.join("flatline.prom");
    let out = flatline([
        OsStr::new("status"),
        OsStr::new("--format=prometheus"),
        OsStr::new("--now"),
        OsStr::new(NOW),
        OsStr::new("--output"),
        file.as_os_str(),
        run.arg(),
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let run_label = run.path().to_string_lossy();
    for line in [
        "# TYPE flatline_delegations gauge".to_string(),
        format!("flatline_delegations{{run=\"{run_label}\",state=\"stale\"}} 1"),
        format!("flatline_delegations{{run=\"{run_label}\",state=\"running_active\"}} 1"),
        format!("flatline_delegations{{run=\"{run_label}\",state=\"returned\"}} 1"),
        format!("flatline_delegations_reclaim_needed{{run=\"{run_label}\"}} 1"),
        format!("flatline_oldest_progress_age_seconds{{run=\"{run_label}\"}} 50"),
        "flatline_file_problems 0".to_string(),
        "flatline_last_run_timestamp_seconds 1795334400".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("flatline.prom")]);
    if !have("promtool") {
        return;
    }
    promtool_passes_the_file(&file);
    promtool_passes_sweeps_metrics(&run);
    // Only status and sweep speak prometheus.
    let refused = flatline([
        OsStr::new("refresh"),
        OsStr::new("--format=prometheus"),
        run.arg(),
    ]);
    assert_eq!(refused.code, 2);
}

/// promtool finds no problem in the metrics file status wrote.
fn promtool_passes_the_file(file: &std::path::Path) {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(file).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = check.wait().unwrap();
    let mut problems = String::new();
    use std::io::Read;
    check
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut problems)
        .unwrap();
    check
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut problems)
        .unwrap();
    assert!(
        status.success() && problems.is_empty(),
        "promtool: {problems}"
    );
}

/// sweep's metrics too (a dry run: nothing is signalled or written).
fn promtool_passes_sweeps_metrics(run: &Run) {
    let sweep = flatline([
        OsStr::new("sweep"),
        OsStr::new("--dry-run"),
        OsStr::new("--format=prometheus"),
        run.arg(),
    ]);
    assert_eq!(sweep.code, 0, "{}", sweep.stderr);
    assert!(
        sweep
            .stdout
            .contains("# TYPE flatline_sweep_reclaimed_workers gauge")
    );
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(sweep.stdout.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "{output:?}"
    );
}

/// Runs `status` on a run with one bad file, stderr to a file, with `JOURNAL_STREAM` set
/// to `journal` ("dev:ino"); returns what stderr got.
fn stderr_with_journal(journal: impl Fn(&std::fs::Metadata) -> String) -> String {
    let run = Run::new();
    run.write("delegations/bad.json", "{");
    let dir = TempDir::new("journal");
    let err_path = dir.join("stderr");
    let err = std::fs::File::create(&err_path).unwrap();
    let meta = std::fs::metadata(&err_path).unwrap();
    let status = Command::new(bin())
        .args(["status", "--format=ndjson"])
        .arg(run.arg())
        .env("JOURNAL_STREAM", journal(&meta))
        .stdout(Stdio::null())
        .stderr(err)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    std::fs::read_to_string(&err_path).unwrap()
}

#[test]
fn journald_priority_prefixes_only_when_stderr_is_the_journal() {
    let on = stderr_with_journal(|meta| format!("{}:{}", meta.dev(), meta.ino()));
    assert!(on.starts_with("<3>flatline: "), "{on:?}");
    assert_eq!(on.lines().count(), 1);
    let other = stderr_with_journal(|meta| format!("{}:{}", meta.dev(), meta.ino() + 1));
    assert!(other.starts_with("flatline: "), "{other:?}");
    let garbage = stderr_with_journal(|_| "not-a-stream".to_string());
    assert!(garbage.starts_with("flatline: "), "{garbage:?}");
}

#[test]
fn the_systemd_units_verify() {
    if !have("systemd-analyze") {
        return;
    }
    let dir = TempDir::new("units");
    let run_dir = TempDir::new("unit-run");
    let escaped = run_dir
        .path()
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('-', "\\x2d")
        .replace('/', "-");
    let root = env!("CARGO_MANIFEST_DIR");
    let service =
        std::fs::read_to_string(format!("{root}/contrib/systemd/flatline-sweep@.service"))
            .unwrap()
            .replace("/usr/local/bin/flatline", bin());
    let timer =
        std::fs::read_to_string(format!("{root}/contrib/systemd/flatline-sweep@.timer")).unwrap();
    let service_path = dir.join(format!("flatline-sweep@{escaped}.service"));
    let timer_path = dir.join(format!("flatline-sweep@{escaped}.timer"));
    std::fs::write(&service_path, service).unwrap();
    std::fs::write(&timer_path, timer).unwrap();
    let out = run_command(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&service_path)
            .arg(&timer_path),
        HANG_GUARD,
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "",
        "systemd-analyze verify: {}",
        out.stderr
    );
}

/// Checks an `strace -f -e trace=openat,fsync,renameat,close` transcript: every rename of a
/// temp file over a name comes after an fsync of the temp file and is followed by an fsync
/// of the directory (SPEC §4, §10 "no directory fsync after rename"). Returns how many
/// renames it saw.
fn assert_durable_renames(trace: &str) -> usize {
    use std::collections::HashMap;
    // fd → (path opened, is a directory, fsynced since opened)
    let mut fds: HashMap<String, (String, bool, bool)> = HashMap::new();
    let mut pending_dirs: Vec<String> = Vec::new();
    let mut renames = 0;
    for line in trace.lines() {
        let call = line
            .split_once(' ')
            .map_or(line, |(_, rest)| rest.trim_start());
        let result = call.rsplit_once(" = ").map(|(_, r)| r.trim());
        if let Some(args) = call.strip_prefix("openat(") {
            let path = args.split('"').nth(1).unwrap_or("").to_string();
            if let Some(fd) = result.filter(|r| !r.starts_with('-')) {
                fds.insert(fd.to_string(), (path, args.contains("O_DIRECTORY"), false));
            }
        } else if let Some(args) = call.strip_prefix("fsync(") {
            let fd = args.split(')').next().unwrap_or("").to_string();
            if let Some(entry) = fds.get_mut(&fd) {
                entry.2 = true;
            }
            pending_dirs.retain(|dir| dir != &fd);
        } else if let Some(args) = call.strip_prefix("close(") {
            let fd = args.split(')').next().unwrap_or("");
            assert!(
                !pending_dirs.iter().any(|dir| dir == fd),
                "directory fd {fd} closed without an fsync after a rename:\n{trace}"
            );
            fds.remove(fd);
        } else if let Some(args) = call
            .strip_prefix("renameat(")
            .or_else(|| call.strip_prefix("renameat2("))
        {
            let temp = args.split('"').nth(1).unwrap_or("");
            let dir = args.split(',').next().unwrap_or("").to_string();
            let synced = fds
                .values()
                .any(|(path, is_dir, synced)| !is_dir && path.ends_with(temp) && *synced);
            assert!(synced, "{temp} renamed before it was fsynced:\n{trace}");
            assert!(
                fds.get(&dir).is_some_and(|entry| entry.1),
                "rename relative to fd {dir}, not an open directory:\n{trace}"
            );
            if !pending_dirs.contains(&dir) {
                pending_dirs.push(dir);
            }
            renames += 1;
        }
    }
    assert!(
        pending_dirs.is_empty(),
        "no fsync of directory fd(s) {pending_dirs:?} after their renames:\n{trace}"
    );
    renames
}

fn traced(args: &[&OsStr], trace: &std::path::Path) -> Outcome {
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-e", "trace=openat,fsync,renameat,close", "-o"])
        .arg(trace)
        .arg(bin())
        .args(args);
    run_command(&mut command, HANG_GUARD)
}

/// Every atomic write — a delegation rewritten by refresh, the heartbeat state of
/// health-events, a heartbeat written by beat, metrics written with --output — is temp file,
/// fsync, rename, fsync of the directory.
#[test]
fn every_atomic_write_fsyncs_the_file_and_then_its_directory() {
    if !have("strace") {
        eprintln!("SKIPPED: needs strace");
        return;
    }
    // The checker itself: a durable write passes, the seed's defects do not.
    let good = "1 openat(AT_FDCWD, \"/r\", O_RDONLY|O_DIRECTORY) = 3\n\
                1 openat(3, \".x.tmp\", O_WRONLY|O_CREAT) = 4\n1 fsync(4) = 0\n\
                1 renameat(3, \".x.tmp\", 3, \"x\") = 0\n1 close(4) = 0\n1 fsync(3) = 0\n1 close(3) = 0\n";
    assert_eq!(assert_durable_renames(good), 1);
    let no_dir_sync = good.replace("1 fsync(3) = 0\n", "");
    assert!(std::panic::catch_unwind(|| assert_durable_renames(&no_dir_sync)).is_err());
    let no_file_sync = good.replace("1 fsync(4) = 0\n", "");
    assert!(std::panic::catch_unwind(|| assert_durable_renames(&no_file_sync)).is_err());
    let run = Run::new();
    for id in ["a", "b"] {
        run.delegation(
            id,
            &delegation(id, "running", json!({"last_progress_at": at(-60_000)})),
        );
        run.write(
            &format!("raw-events/{id}.jsonl"),
            "{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n",
        );
        set_mtime_ms(
            &run.path().join(format!("raw-events/{id}.jsonl")),
            NOW_MS - 1_000,
        );
    }
    run.write(
        "workers/w1/worker-spec.json",
        json!({"name": "w1", "heartbeat": "heartbeat.json"}).to_string(),
    );
    let heartbeat = run.path().join("workers/w1/heartbeat.json");
    let trace = run.path().join("../trace-durable");
    let metrics = run.path().join("../durable.prom");
    let cases: Vec<(&str, Vec<&OsStr>, usize)> = vec![
        (
            "refresh",
            vec![
                OsStr::new("refresh"),
                OsStr::new("--now"),
                OsStr::new(NOW),
                run.arg(),
            ],
            // Two delegations, state.json's first clock and pid namespace (SPEC §3.1), and
            // the run's configuration in state.json's last_run (SPEC §13).
            4,
        ),
        (
            "health-events",
            vec![
                OsStr::new("health-events"),
                OsStr::new("--now"),
                OsStr::new(NOW),
                run.arg(),
            ],
            1,
        ),
        ("beat", vec![OsStr::new("beat"), heartbeat.as_os_str()], 1),
        (
            "status --output",
            vec![
                OsStr::new("status"),
                OsStr::new("--format=prometheus"),
                OsStr::new("--now"),
                OsStr::new(NOW),
                OsStr::new("--output"),
                metrics.as_os_str(),
                run.arg(),
            ],
            1,
        ),
    ];
    for (name, args, renames) in cases {
        let out = traced(&args, &trace);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let text = std::fs::read_to_string(&trace).unwrap();
        assert_eq!(assert_durable_renames(&text), renames, "{name}:\n{text}");
    }
    let _ = std::fs::remove_file(&trace);
    let _ = std::fs::remove_file(&metrics);
}

/// flatline run's queued (renameat2), running and final records are durable writes too; the
/// directory fsync of the first two comes once, after the worker is let go (once per
/// directory per batch). Traced per thread (-ff), so that the worker's fork does not
/// interleave the lines; run's main thread writes every record.
#[test]
fn run_records_are_durable_and_the_directory_is_fsynced_once_the_worker_is_let_go() {
    if !have("strace") {
        eprintln!("SKIPPED: needs strace");
        return;
    }
    let run = Run::new();
    let prefix = run.path().join("../trace-run");
    let mut command = Command::new("strace");
    command
        .args([
            "-ff",
            "-qq",
            "-e",
            "trace=openat,fsync,renameat,renameat2,close",
            "-o",
        ])
        .arg(&prefix)
        .arg(bin())
        .args(["run", "--run-dir"])
        .arg(run.path())
        .args(["--id", "traced", "--", "true"]);
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 0, "run: {}", out.stderr);
    let parent = prefix.parent().unwrap();
    let mut writer = None;
    for entry in std::fs::read_dir(parent).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("trace-run.") {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains("renameat2(") {
                writer = Some(text);
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    // One file per thread has no pid column; the checker expects one.
    let text: String = writer
        .expect("no thread of run placed the queued record")
        .lines()
        .map(|line| format!("1 {line}\n"))
        .collect();
    assert_eq!(assert_durable_renames(&text), 3, "run:\n{text}");
    // The directory is fsynced between the running record and the final one (when the
    // worker is let go), not only by the final record's own fsync.
    let lines: Vec<&str> = text.lines().collect();
    let renames: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(" renameat"))
        .collect();
    let dir = lines[renames[1]].split(['(', ',']).nth(1).unwrap_or("");
    let synced = lines[renames[1]..renames[2]]
        .iter()
        .any(|line| line.starts_with(&format!("1 fsync({dir})")));
    assert!(
        synced,
        "no fsync of fd {dir} before the final record:\n{text}"
    );
}

/// The unwinder is linked in, not loaded: `libgcc_s.so` is not among the libraries the
/// dynamic binary needs (its loading was 0.12 ms of every start; src/sys/mod.rs).
#[test]
fn the_binary_needs_no_libgcc_s_at_start() {
    let out = Command::new("readelf")
        .args(["-d", env!("CARGO_BIN_EXE_flatline")])
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success());
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        needed.iter().any(|l| l.contains("libc.so")),
        "a dynamic binary needs libc: {needed:?}"
    );
    assert!(
        !needed.iter().any(|l| l.contains("libgcc_s")),
        "libgcc_s is loaded at start again: {needed:?}"
    );
}
