//! The command line's conventions and the end of a run: the deadline says so, records where
//! it stopped for the next run, and never replaces a complete `--output` file.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// `n` running delegations `d0000`… with a fresh progress and a live-looking lifecycle.
fn many(run: &Run, n: usize) {
    for i in 0..n {
        let id = format!("d{i:04}");
        run.delegation(
            &id,
            &delegation(&id, "running", json!({"last_progress_at": at(-1_000)})),
        );
    }
}

/// The `after K of N delegations` of a deadline message, if stderr has one.
fn stopped_after(stderr: &str, total: usize) -> Option<usize> {
    let tail = format!(" of {total} delegations; the rest waits for the next run");
    stderr.lines().find_map(|line| {
        let head = line.strip_suffix(&tail)?;
        let (_, count) = head.rsplit_once("passed after ")?;
        count.parse().ok()
    })
}

#[test]
fn a_deadline_always_says_how_far_the_run_got() {
    let run = Run::new();
    many(&run, 2_000);
    let out = status(&run, &["--deadline", "1ms"]);
    assert_eq!(out.code, 124, "{}", out.stderr);
    let done = stopped_after(&out.stderr, 2_000)
        .unwrap_or_else(|| panic!("no deadline message: {}", out.stderr));
    assert!(
        out.stderr.contains(&format!(
            "flatline: {}: deadline 1ms passed after {done} of 2000 delegations; the rest waits for the next run",
            run.path().display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.records().len(),
        done,
        "every delegation read was printed"
    );
}

/// Holds `RUN/.flatline/lock` (created by a first writing run) until dropped.
fn hold_lock(run: &Run) -> Proc {
    let lock = run.path().join(".flatline/lock");
    let mut child = Command::new("flock")
        .arg(&lock)
        .args(["-c", "echo locked; exec sleep 300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    Proc { child }
}

#[test]
fn a_deadline_noticed_outside_the_scan_says_so_too() {
    if !have("flock") {
        eprintln!("SKIPPED: needs flock(1)");
        return;
    }
    let run = Run::new();
    many(&run, 1);
    let first = flatline([OsStr::new("refresh"), run.arg()]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let _holder = hold_lock(&run);
    let out = flatline([
        OsStr::new("refresh"),
        OsStr::new("--wait=1min"),
        OsStr::new("--deadline=200ms"),
        run.arg(),
    ]);
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert!(
        out.stderr
            .lines()
            .any(|l| l == "flatline: deadline 200ms passed; the rest waits for the next run"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_incomplete_run_never_replaces_a_complete_output_file() {
    let run = Run::new();
    many(&run, 2_000);
    let scratch = TempDir::new("output");
    let file = scratch.join("flatline.prom");
    std::fs::write(&file, "# the last complete output\n").unwrap();
    let with = |extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("--format=prometheus"),
            OsStr::new("--output"),
            file.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        status(
            &run,
            &args.iter().map(|a| a.to_str().unwrap()).collect::<Vec<_>>(),
        )
    };
    let cut = with(&["--deadline", "1ms"]);
    assert_eq!(cut.code, 124, "{}", cut.stderr);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# the last complete output\n"
    );
    assert!(
        cut.stderr.contains(&format!(
            "flatline: {}: not replaced: the run stopped before it finished",
            file.display()
        )),
        "{}",
        cut.stderr
    );
    assert_eq!(cut.stdout, "");
    let complete = with(&[]);
    assert_eq!(complete.code, 0, "{}", complete.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("flatline_delegations"), "{text}");
}

#[test]
fn output_dash_is_stdout() {
    let run = Run::new();
    many(&run, 2);
    let out = status(&run, &["--output", "-"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.records().len(), 2);
    assert!(!std::path::Path::new("-").exists());
    let out = status(&run, &["--output=-"]);
    assert_eq!(out.records().len(), 2);
}

/// A stale running delegation without a process: sweep marks it reclaimed (no_process).
fn stale_without_process(run: &Run, id: &str) {
    run.delegation(
        id,
        &json!({
            "delegation_id": id,
            "child_agent": {"status": "running"},
            "worker_lifecycle": {"last_progress_at": rfc3339(real_now_ms() - 3_600_000)},
        }),
    );
}

fn write_state(run: &Run, state: &Value) {
    let path = run.path().join(".flatline/state.json");
    write_json(&path, state);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
}

fn sweep_ids(out: &Outcome) -> Vec<String> {
    out.records()
        .iter()
        .filter(|r| r["kind"] == "action")
        .map(|r| r["delegation_id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn the_next_sweep_starts_where_the_last_one_stopped_and_wraps_around() {
    let run = Run::new();
    // A first sweep creates .flatline/ and records nothing: it was complete.
    let first = flatline([OsStr::new("sweep"), run.arg()]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    for i in 0..5 {
        stale_without_process(&run, &format!("d{i}"));
    }
    write_state(
        &run,
        &json!({"schema_version": 1, "another_concern": {"kept": [1, 2.50]}, "resume": {"delegations": "d3.json"}}),
    );
    let out = flatline([
        OsStr::new("sweep"),
        OsStr::new("--format=ndjson"),
        run.arg(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        sweep_ids(&out),
        ["d3", "d4", "d0", "d1", "d2"],
        "{}",
        out.stdout
    );
    // Complete: the section goes, every other key stays as it was.
    let state = run.read_json(".flatline/state.json");
    assert!(state.get("resume").is_none(), "{state}");
    assert_eq!(
        state["another_concern"],
        json!({"kept": [1, 2.50]}),
        "{state}"
    );

    // Without a stored start, file-name order.
    for i in 0..3 {
        stale_without_process(&run, &format!("e{i}"));
    }
    let out = flatline([
        OsStr::new("sweep"),
        OsStr::new("--format=ndjson"),
        run.arg(),
    ]);
    assert_eq!(sweep_ids(&out), ["e0", "e1", "e2"], "{}", out.stdout);
}

#[test]
fn a_sweep_the_deadline_stops_records_where_for_the_next() {
    let run = Run::new();
    let first = flatline([OsStr::new("sweep"), run.arg()]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    many(&run, 2_000);
    // The deadline may pass before the scan begins on a loaded machine (then there is
    // nothing to record), or after it ends on a fast one; a few deadlines find a run that
    // stopped inside it.
    for deadline in [
        "20ms", "40ms", "10ms", "80ms", "5ms", "160ms", "2ms", "320ms",
    ] {
        let out = flatline([
            OsStr::new("sweep"),
            OsStr::new(&format!("--deadline={deadline}")),
            run.arg(),
        ]);
        if out.code == 0 {
            continue;
        }
        assert_eq!(out.code, 124, "{}", out.stderr);
        let Some(done) = stopped_after(&out.stderr, 2_000) else {
            assert!(
                out.stderr.contains(&format!("deadline {deadline} passed")),
                "{}",
                out.stderr
            );
            continue;
        };
        let state = run.read_json(".flatline/state.json");
        // No run before stopped inside the scan, so this one started at d0000: it stopped
        // before the file after the last it read.
        assert_eq!(
            state["resume"],
            json!({"delegations": format!("d{done:04}.json")}),
            "{state}"
        );
        // The next complete run starts there and, complete, forgets it.
        let out = flatline([OsStr::new("sweep"), run.arg()]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let state = run.read_json(".flatline/state.json");
        assert!(state.get("resume").is_none(), "{state}");
        return;
    }
    panic!("the deadline never stopped a sweep inside its scan");
}

#[test]
fn a_directory_that_is_not_a_run_is_exit_4_for_every_command_and_the_others_still_run() {
    let parent = TempDir::new("runs");
    let run_path = parent.join("r42");
    std::fs::create_dir_all(run_path.join("delegations")).unwrap();
    write_json(
        &run_path.join("delegations/d1.json"),
        &delegation("d1", "queued", json!({})),
    );
    let delegations = run_path.join("delegations");
    for def in flatline::cli::COMMANDS {
        if def.operands != "RUN_DIR..." {
            continue;
        }
        for wrong in [parent.path(), delegations.as_path()] {
            let mut args: Vec<&OsStr> = vec![
                OsStr::new(def.name),
                OsStr::new("--format=ndjson"),
                wrong.as_os_str(),
                run_path.as_os_str(),
            ];
            if def.name == "status" {
                args.insert(1, OsStr::new("--check"));
            }
            let out = flatline(&args);
            assert_eq!(
                out.code,
                4,
                "{} {}: {}",
                def.name,
                wrong.display(),
                out.stderr
            );
            assert!(
                out.stderr.contains(&format!(
                    "flatline: {}: not a run directory (no delegations/, workers/ or task-cards/)\n",
                    wrong.display()
                )),
                "{}: {}",
                def.name,
                out.stderr
            );
            if def.name == "status" {
                assert_eq!(out.records().len(), 1, "the run after it is still read");
            }
            assert!(
                !wrong.join(".flatline").exists(),
                "{} wrote into a directory that is not a run",
                def.name
            );
        }
    }
}

#[test]
fn any_one_of_the_three_subdirectories_makes_a_run_directory() {
    for subdir in ["delegations", "workers", "task-cards"] {
        let run = Run::bare();
        std::fs::create_dir(run.path().join(subdir)).unwrap();
        let out = status(&run, &["--check"]);
        assert_eq!(out.code, 0, "{subdir}: {}", out.stderr);
        assert_eq!(out.stderr, "");
    }
    let empty = Run::bare();
    assert_eq!(status(&empty, &["--check"]).code, 4);
}

#[test]
fn beat_while_a_pid_that_names_no_process_is_a_usage_error() {
    let dir = TempDir::new("beat-gone");
    let file = dir.join("heartbeat.json");
    // A pid the test owned and reaped: no process has it now.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let out = flatline([
        OsStr::new("beat"),
        file.as_os_str(),
        OsStr::new("--every=1s"),
        OsStr::new("--while-pid"),
        OsStr::new(&pid.to_string()),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr_lines(),
        [
            &*format!("flatline: --while-pid {pid}: no such process; nothing written"),
            "flatline: see 'flatline --help'"
        ]
    );
    assert!(!file.exists(), "a heartbeat was written");
}

#[test]
fn unknown_names_get_a_did_you_mean() {
    let out = flatline(["status", "--fromat", "json", "r"]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr_lines(),
        [
            "flatline: unknown option '--fromat' (did you mean --format?)",
            "flatline: see 'flatline --help'"
        ]
    );
    let out = flatline(["sweeep", "r"]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr_lines()[0],
        "flatline: unknown command 'sweeep' (did you mean sweep?)"
    );
}

#[test]
fn help_command_is_the_help_flag() {
    assert_eq!(flatline(["help"]).stdout, flatline(["--help"]).stdout);
    for def in flatline::cli::COMMANDS {
        let by_command = flatline(["help", def.name]);
        assert_eq!(by_command.code, 0);
        assert_eq!(by_command.stdout, flatline([def.name, "--help"]).stdout);
        assert!(
            by_command
                .stdout
                .starts_with(&format!("flatline {} - ", def.name))
        );
    }
}

#[test]
fn bare_flatline_is_the_usage_on_stderr_and_exit_2() {
    let out = flatline(Vec::<&str>::new());
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .starts_with("Usage: flatline COMMAND [OPTIONS] RUN_DIR...\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("  sweep "));
}

#[test]
fn the_version_names_the_commit_when_the_build_knew_it() {
    let out = flatline(["--version"]);
    assert_eq!(out.code, 0);
    let version = env!("CARGO_PKG_VERSION");
    match (
        option_env!("FLATLINE_COMMIT"),
        option_env!("FLATLINE_COMMIT_DATE"),
    ) {
        (Some(commit), Some(date)) => {
            assert_eq!(
                out.stdout,
                format!("flatline {version} ({commit} {date})\n")
            );
            // The commit is this checkout's (build.rs reran when HEAD moved).
            let head = Command::new("git")
                .args(["rev-parse", "--short", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), commit);
        }
        _ => assert_eq!(out.stdout, format!("flatline {version}\n")),
    }
}

#[test]
fn refresh_also_starts_where_a_run_cut_short_stopped() {
    let run = Run::new();
    let first = flatline([OsStr::new("refresh"), run.arg()]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let stream = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/streams/claude-basic.jsonl"
    ))
    .unwrap();
    // Running, no process id, a stream that ended: refresh finalizes each one.
    for id in ["a0", "a1", "a2"] {
        run.delegation(
            id,
            &delegation(id, "running", json!({"started_at": at(-60_000)})),
        );
        run.write(&format!("raw-events/{id}.jsonl"), &stream);
    }
    write_state(
        &run,
        &json!({"schema_version": 1, "resume": {"delegations": "a1.json"}}),
    );
    let out = flatline([
        OsStr::new("refresh"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--now"),
        OsStr::new(NOW),
        run.arg(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sweep_ids(&out), ["a1", "a2", "a0"], "{}", out.stdout);
    let state = run.read_json(".flatline/state.json");
    assert!(state.get("resume").is_none(), "{state}");
}

/// Whether `pid` has a handler for `signal` installed (`SigCgt` in /proc/PID/status).
fn catches(pid: u32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

#[test]
fn a_run_a_signal_stops_keeps_the_old_output_file_too() {
    if !have("flock") {
        eprintln!("SKIPPED: needs flock(1)");
        return;
    }
    let run = Run::new();
    many(&run, 1);
    let first = flatline([OsStr::new("refresh"), run.arg()]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let scratch = TempDir::new("output-signal");
    let file = scratch.join("out.ndjson");
    std::fs::write(&file, "old\n").unwrap();
    let _holder = hold_lock(&run);
    let child = start(
        Command::new(bin())
            .args(["refresh", "--wait=1min", "--output"])
            .arg(&file)
            .arg(run.path()),
    );
    let pid = child.id();
    let started = std::time::Instant::now();
    while !catches(pid, libc::SIGTERM) {
        assert!(
            started.elapsed() < HANG_GUARD,
            "flatline never installed its handlers"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: `pid` is this test's own child, not yet waited for.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    let out = finish(child, HANG_GUARD);
    assert_eq!(out.code, 128 + libc::SIGTERM, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "old\n");
    assert!(out.stderr.contains("not replaced"), "{}", out.stderr);
}
