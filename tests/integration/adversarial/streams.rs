//! A 2 GB sparse stream: a live worker's stream is only stat'ed; a finished worker's stream
//! is read once, in bounded memory (the address space is capped at 1 GiB). And a root-owned
//! secret hard-linked into the run.

use super::*;

fn sparse_stream(run: &Run, id: &str) -> PathBuf {
    let path = run.path().join(format!("raw-events/{id}.jsonl"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(2 * 1024 * 1024 * 1024).unwrap();
    path
}

/// Copies the run into a tmpfs mounted `strictatime` in a private mount namespace (every
/// read of a file updates its access time there, whatever the host's mount options), then
/// runs `refresh` on the copy with its address space capped at 1 GiB. Prints flatline's
/// stdout, then `ATIME <stream before> <stream after> <twin before> <twin after>`.
const STRICTATIME_REFRESH: &str = r#"set -e
src=$1 m=$2 bin=$3 mtime=$4
mount -t tmpfs -o strictatime,mode=0755 flatline-atime "$m"
cp -a --sparse=always "$src/delegations" "$src/raw-events" "$m/"
printf '{}\n' > "$m/twin.jsonl"
touch -d "@$mtime" "$m/raw-events/live.jsonl" "$m/twin.jsonl"
a0=$(stat -c %x "$m/raw-events/live.jsonl"); t0=$(stat -c %x "$m/twin.jsonl")
(ulimit -v 1048576; exec "$bin" refresh --format=ndjson "$m")
cat "$m/twin.jsonl" >/dev/null
a1=$(stat -c %x "$m/raw-events/live.jsonl"); t1=$(stat -c %x "$m/twin.jsonl")
echo "ATIME $a0|$a1|$t0|$t1"
"#;

#[test]
fn a_2_gb_sparse_stream_of_a_live_worker_is_only_stated() {
    if !is_root() || !have("unshare") {
        eprintln!("SKIPPED: needs root and unshare to mount a strictatime tmpfs");
        return;
    }
    let worker = Proc::sleep();
    let now = real_now_ms();
    let run = Run::new();
    let mut doc = delegation(
        "live",
        "running",
        json!({"process_id": worker.pid(), "launch_requested_at": rfc3339(now - 1_000),
               "started_at": rfc3339(now), "last_progress_at": rfc3339(now)}),
    );
    doc["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/live.jsonl"});
    run.delegation("live", &doc);
    sparse_stream(&run, "live");
    // The stream is newer than the recorded progress (whole seconds: `touch -d @S`), and in
    // the past when flatline runs (it is stamped after the worker started).
    let mtime_s = now / 1000 + 1;
    while real_now_ms() <= mtime_s * 1000 {
        std::thread::yield_now();
    }
    let mount = TempDir::new("strictatime");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "bash", "-c"])
        .arg(STRICTATIME_REFRESH)
        .arg("bash")
        .arg(run.path())
        .arg(mount.path())
        .arg(bin())
        .arg(mtime_s.to_string());
    let out = run_command(&mut cmd, HANG_GUARD);
    assert_no_crash(&out);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (records, atimes) = out
        .stdout
        .split_once("ATIME ")
        .expect("the script ran to its end");
    let record: Value = serde_json::from_str(records.trim()).unwrap();
    assert_fields(
        &record,
        json!({"action": "progressed", "last_progress_at": rfc3339(mtime_s * 1000)}),
    );
    let atimes: Vec<&str> = atimes.trim().split('|').collect();
    // strictatime: the twin, read once by cat, shows that every read moves the access time.
    assert_ne!(
        atimes[2], atimes[3],
        "the tmpfs keeps no access times: {atimes:?}"
    );
    assert_eq!(atimes[0], atimes[1], "a live worker's stream was read");
}

#[test]
fn a_2_gb_sparse_stream_of_a_finished_worker_is_read_in_bounded_memory() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let run = Run::new();
    let mut doc = delegation(
        "gone",
        "running",
        json!({"process_id": pid, "last_progress_at": at(-60_000)}),
    );
    doc["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/gone.jsonl"});
    run.delegation("gone", &doc);
    let stream = sparse_stream(&run, "gone");
    set_mtime_ms(&stream, NOW_MS - 30_000);
    let out = capped_at_now("refresh", &run);
    assert_no_crash(&out);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // One 2 GB line of NUL bytes: skipped, nothing usable; only its head and tail (32M in
    // all, --max-stream-read) are looked at.
    let read = 32u64 << 20;
    assert_fields(
        &out.by_action("gone"),
        json!({"action": "finalized", "status": "failed", "raw_events_bytes": read,
               "raw_output_truncated": true,
               "raw_output_skipped_bytes": 2u64 * 1024 * 1024 * 1024 - read}),
    );
}

// ---------------------------------------------------------------------------------------
// A root-owned secret hard-linked into the run.

#[test]
fn a_root_owned_secret_hard_linked_into_the_run_is_not_read() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    // Root's secret (mode 0600), outside the run; an agent (uid 65534) hard-links it in (with
    // fs.protected_hardlinks=0 it can) and names it as its exited worker's stream.
    let outside = TempDir::new("root-secret");
    let secret = outside.join("shadow");
    std::fs::write(&secret, format!("{MARKER} root:$6$hash\nsecond line\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    set_mtime_ms(&secret, NOW_MS - 60_000);
    let run = Run::new();
    std::fs::create_dir(run.path().join("raw-events")).unwrap();
    let link = run.path().join("raw-events/w.jsonl");
    std::fs::hard_link(&secret, &link).unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let mut doc = delegation(
        "w",
        "running",
        json!({"process_id": pid, "last_progress_at": at(-120_000)}),
    );
    doc["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/w.jsonl"});
    let path = run.delegation("w", &doc);
    chown(&path, 65534);
    let mut cmd = Command::new(bin());
    cmd.args(["refresh", "--format=ndjson", "--now", NOW])
        .arg(run.arg());
    let out = run_command(&mut cmd, GUARD);
    assert_no_crash(&out);
    let written = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
    assert!(
        !written.contains(MARKER) && !out.stdout.contains(MARKER),
        "root's secret was copied into a document its agent can read:\n{written}"
    );
}
