//! Processes that are not the worker's to signal: kernel threads, root's processes named
//! by documents an agent placed, a worker in a nested pid namespace.

use super::*;

// ---------------------------------------------------------------------------------------
// Kernel threads.

#[test]
fn kernel_threads_are_never_planned_for_a_signal() {
    let is_kthreadd = std::fs::read_to_string("/proc/2/comm")
        .map(|c| c.trim() == "kthreadd")
        .unwrap_or(false);
    if !is_kthreadd {
        eprintln!("SKIPPED: pid 2 is not kthreadd here");
        return;
    }
    // A root-owned delegation naming kthreadd, with a window wide enough for it (launch
    // requested in 1970, started ten minutes ago): only the kernel-thread rule stands between
    // this plan and every kernel thread of the machine.
    let ten_minutes_ago = rfc3339(real_now_ms() - 600_000);
    let run = Run::new();
    run.delegation(
        "k",
        &delegation(
            "k",
            "running",
            json!({"process_id": 2, "launch_requested_at": "1970-01-01T00:00:00Z",
                   "started_at": ten_minutes_ago, "last_progress_at": ten_minutes_ago}),
        ),
    );
    let mut cmd = Command::new(bin());
    cmd.args(["reclaim", "--dry-run", "--format=ndjson"])
        .arg(run.arg());
    let out = run_command(&mut cmd, GUARD);
    assert_no_crash(&out);
    let record = out.by_action("k");
    assert_eq!(
        record["would_signal"],
        json!([]),
        "kernel threads planned for SIGTERM/SIGKILL: {record}"
    );
    assert_fields(
        &record,
        json!({"action": "skipped", "termination": "skipped_invalid_pid",
               "reason": "process_id is a kernel thread"}),
    );
}
/// Issue 12 class 1 (SPEC §1.3, §3.1): an agent (uid 65534) that can write `delegations/`
/// places there a root-owned 0666 file and a hard link of a root-owned file, each naming a
/// root process that looks stuck. Neither is root's word: the 0666 one is foreign for the uid
/// guard (`skipped_foreign`) and never replaced, the linked one is reported from its fstat and
/// never read. Both root processes are alive afterwards; a genuine root delegation in the same
/// run is reclaimed, so the machinery is shown to work, not merely to refuse. Signals only
/// inside a private pid namespace.
const FOREIGN_DOCS: &str = r##"
run=$1; bin=$2; scratch=$3
now() { local us=${EPOCHREALTIME/./}; local ms=$((us / 1000));
        printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000)); }
doc() { # id pid timestamp
  printf '{"delegation_id":"%s","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"launch_requested_at":"%s","started_at":"%s","process_started_at":"%s","last_progress_at":"%s","stale_after_ms":1000}}\n' \
    "$1" "$2" "$3" "$3" "$3" "$3"; }
as_agent() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
now; t=$REPLY
sleep 300 & renamed=$!
sleep 300 & linked=$!
sleep 300 & genuine=$!
# Root's files that the agent may write (an orchestrator's sloppy 0666 scratch files).
install -m 0666 /dev/null "$scratch/open.json"
install -m 0666 /dev/null "$scratch/shared.json"
doc genuine "$genuine" "$t" > "$run/delegations/genuine.json"
as_agent bash -c "$(declare -f doc); doc renamed $renamed $t > $scratch/open.json && mv $scratch/open.json $run/delegations/renamed.json" || echo "#agent rename failed"
as_agent bash -c "$(declare -f doc); doc linked $linked $t > $scratch/shared.json && ln $scratch/shared.json $run/delegations/linked.json" || echo "#agent link failed"
# The linked file no longer writable by anyone but root: only its second link is left.
chmod 0644 "$scratch/shared.json"
cp "$run/delegations/renamed.json" "$scratch/renamed.before"
sleep 1.5
"$bin" reclaim --format=ndjson --grace 1s "$run"; echo "#exit $?"
kill -0 "$renamed" 2>/dev/null && echo "#renamed alive"
kill -0 "$linked" 2>/dev/null && echo "#linked alive"
kill -0 "$genuine" 2>/dev/null && echo "#genuine alive"
cmp -s "$scratch/renamed.before" "$run/delegations/renamed.json" && echo "#renamed unchanged"
echo "#done"
"##;

#[test]
fn renamed_and_hard_linked_root_documents_are_not_roots_word() {
    if !have("unshare") || !have("setpriv") || !is_root() {
        eprintln!("SKIPPED: needs root, unshare and setpriv");
        return;
    }
    let run = Run::new();
    let scratch = TempDir::new("scratch");
    for dir in [run.path().join("delegations"), scratch.path().to_path_buf()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mut command = pid_namespace_bash(FOREIGN_DOCS);
    command
        .arg(run.path())
        .arg(bin())
        .arg(scratch.path())
        .env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let notes: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .collect();
    assert_eq!(notes.last(), Some(&"done"), "{}", out.stdout);
    assert!(
        notes.contains(&"renamed alive"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        notes.contains(&"linked alive"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        !notes.contains(&"genuine alive"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(notes.contains(&"renamed unchanged"), "{}", out.stdout);
    assert!(notes.contains(&"exit 3"), "{}\n{}", out.stdout, out.stderr);
    let records: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |id: &str| {
        records
            .iter()
            .find(|r| r["delegation_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no record for {id}: {}", out.stdout))
    };
    assert_eq!(by("renamed")["termination"], "skipped_foreign");
    assert_eq!(by("genuine")["termination"], "terminated");
    assert!(
        !records.iter().any(|r| r["delegation_id"] == "linked"),
        "a document with two links was read: {}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("delegations/linked.json: hard_linked: has 2 hard links"),
        "{}",
        out.stderr
    );
}

/// Issue 12 class 14 (SPEC §3.1): a sandboxed process of the agent's own uid, in a nested
/// pid namespace, named by the agent's delegation, is not signalled (`skipped_nested`) unless
/// `--allow-nested-pidns` is given. Inside a private pid namespace.
const NESTED_WORKER: &str = r##"
run=$1; bin=$2
now() { local us=${EPOCHREALTIME/./}; local ms=$((us / 1000));
        printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000)); }
now; t=$REPLY
unshare --pid --fork setpriv --reuid=65534 --regid=65534 --clear-groups sleep 300 &
outer=$!
# The sandboxed sleep is unshare's child.
for _ in $(seq 100); do sandboxed=$(cat /proc/$outer/task/$outer/children 2>/dev/null); [ -n "$sandboxed" ] && break; sleep 0.02; done
sandboxed=${sandboxed% }
grep NSpid /proc/$sandboxed/status | sed 's/^/#/'
printf '{"delegation_id":"n","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"launch_requested_at":"%s","started_at":"%s","process_started_at":"%s","last_progress_at":"%s","stale_after_ms":1000}}\n' \
  "$sandboxed" "$t" "$t" "$t" "$t" > "$run/delegations/n.json"
chown 65534:65534 "$run/delegations/n.json"
sleep 1.2
"$bin" reclaim --format=ndjson --grace 1s "$run"; echo "#exit $?"
kill -0 "$sandboxed" 2>/dev/null && echo "#sandboxed alive after the first run"
"$bin" reclaim --format=ndjson --grace 1s --allow-nested-pidns "$run"; echo "#exit $?"
kill -0 "$sandboxed" 2>/dev/null && echo "#sandboxed alive after the second run"
echo "#done"
"##;

#[test]
fn a_nested_namespace_worker_of_an_agents_delegation_is_skipped() {
    if !have("unshare") || !have("setpriv") || !is_root() {
        eprintln!("SKIPPED: needs root, unshare and setpriv");
        return;
    }
    let run = Run::new();
    let mut command = pid_namespace_bash(NESTED_WORKER);
    command.arg(run.path()).arg(bin()).env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let notes: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .collect();
    assert_eq!(
        notes.last(),
        Some(&"done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let nspid = notes
        .iter()
        .find(|n| n.starts_with("NSpid:"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(nspid.split_whitespace().count(), 3, "not nested: {nspid}");
    let records: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records[0]["termination"], "skipped_nested",
        "{}",
        out.stdout
    );
    assert!(
        notes.contains(&"sandboxed alive after the first run"),
        "{}",
        out.stdout
    );
    assert_eq!(notes[1], "exit 1", "{}", out.stdout);
    // The flag lifts the guard: the same worker is then reclaimed (the machinery works).
    let second = &records[1];
    assert!(
        second["termination"] == "terminated" || second["termination"] == "killed",
        "{}",
        out.stdout
    );
    assert!(!notes.contains(&"sandboxed alive after the second run"));
}
