//! The run lock, --wait, signals while waiting, and the deadline.

use super::*;

#[test]
fn the_lock_is_exclusive_and_wait_waits_for_it() {
    if !have("flock") {
        return;
    }
    let run = Run::new();
    run.delegation("d", &running("d", json!({"last_progress_at": at(-60_000)})));
    set_mtime(
        &run.write("raw-events/d.jsonl", CODEX_NO_TERMINAL),
        NOW_MS - 5_000,
    );
    // A first run creates .flatline/ and its lock with the right owner and modes.
    assert_eq!(refresh(&run, &["--now", NOW, "--dry-run"]).code, 0);
    assert_eq!(refresh(&run, &["--now", &at(-30_000)]).code, 0);
    let lock = run.path().join(".flatline/lock");
    assert_eq!(
        std::fs::metadata(run.path().join(".flatline"))
            .unwrap()
            .mode()
            & 0o777,
        0o750
    );
    assert_eq!(std::fs::metadata(&lock).unwrap().mode() & 0o777, 0o640);
    // flock(1) holds the lock until its stdin closes.
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", "echo locked; exec cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(holder.stdout.as_mut().unwrap());
        reader.read_line(&mut line).unwrap();
    }
    assert_eq!(line, "locked\n");
    let started = std::time::Instant::now();
    let busy = refresh(&run, &["--now", NOW]);
    assert_eq!(busy.code, 75, "{}", busy.stderr);
    assert!(started.elapsed() < Duration::from_secs(5));
    let my_uid = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        busy.stderr,
        format!(
            "flatline: {}: held by pid {} (uid {my_uid}); flatline waited 0 ms (use --wait \
             DURATION to wait for it)\n",
            lock.display(),
            holder.id()
        )
    );
    // With --wait, refresh waits; closing flock's stdin releases the lock.
    let waiter = start(
        std::process::Command::new(bin())
            .args(["refresh", "--format=ndjson", "--now", NOW, "--wait", "30s"])
            .arg(run.arg()),
    );
    // Release only once the waiting flatline has the lock file open.
    wait_until_open(waiter.id(), &std::fs::canonicalize(&lock).unwrap());
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let out = finish(waiter, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.records()[0],
        json!({"action": "progressed", "last_progress_at": at(-5_000)}),
    );
}

/// Holds `RUN/.flatline/lock` with flock(1) until the returned child's stdin is closed.
fn hold_lock(run: &Run) -> std::process::Child {
    // A dry run creates nothing; a real one on an empty run creates .flatline/ and its lock.
    assert_eq!(refresh(run, &["--now", NOW]).code, 0);
    let lock = run.path().join(".flatline/lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", "echo locked; exec cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    holder
}

#[test]
fn a_signal_while_waiting_stops_the_run_with_128_plus_n_and_writes_nothing() {
    if !have("flock") {
        return;
    }
    let run = Run::new();
    let mut holder = hold_lock(&run);
    run.delegation("d", &running("d", json!({"last_progress_at": at(-60_000)})));
    set_mtime(
        &run.write("raw-events/d.jsonl", CODEX_NO_TERMINAL),
        NOW_MS - 5_000,
    );
    let before = run.read("delegations/d.json");
    let waiter = start(
        std::process::Command::new(bin())
            .args(["refresh", "--format=ndjson", "--now", NOW, "--wait", "60s"])
            .arg(run.arg()),
    );
    let lock = std::fs::canonicalize(run.path().join(".flatline/lock")).unwrap();
    wait_until_open(waiter.id(), &lock);
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(waiter.id() as i32, libc::SIGTERM) }, 0);
    let out = finish(waiter, HANG_GUARD);
    assert_eq!(out.code, 128 + libc::SIGTERM, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(run.read("delegations/d.json"), before);
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

#[test]
fn the_deadline_ends_a_run_with_124() {
    if !have("flock") {
        return;
    }
    let run = Run::new();
    let mut holder = hold_lock(&run);
    run.delegation("d", &running("d", json!({"last_progress_at": at(-60_000)})));
    let before = run.read("delegations/d.json");
    let out = refresh(
        &run,
        &["--now", NOW, "--wait", "60s", "--deadline", "300ms"],
    );
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert_eq!(run.read("delegations/d.json"), before);
    drop(holder.stdin.take());
    holder.wait().unwrap();
}
