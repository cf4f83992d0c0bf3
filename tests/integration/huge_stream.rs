//! Issue 12 class 5: a sparse or huge event stream must not starve the run. Reading is
//! bounded by `--max-stream-read` (head and tail) and holes are skipped, so an 8 TB sparse
//! stream costs what 32 MiB costs, and a sweep still reclaims the stuck worker next to it.

use crate::support::*;
use serde_json::{Value, json};
use std::io::{Seek, SeekFrom, Write};

const TB8: u64 = 8 << 40;
const READ: u64 = 32 << 20;

/// An 8 TB sparse stream: a Codex thread start at its beginning, a terminal event (and the
/// final message) at its very end, nothing but a hole between.
fn sparse_stream(run: &Run, rel: &str) -> u64 {
    let path = run.write(
        rel,
        b"{\"type\":\"thread.started\",\"thread_id\":\"t-sparse\"}\n",
    );
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let end = b"\n{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"Done at the end.\"}}\n{\"type\":\"turn.completed\",\"usage\":{\"output_tokens\":7}}\n";
    file.seek(SeekFrom::Start(TB8 - end.len() as u64)).unwrap();
    file.write_all(end).unwrap();
    drop(file);
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(size, TB8);
    size
}

fn assert_finalized_from_head_and_tail(record: &Value, size: u64) {
    assert_fields(
        record,
        json!({"action": "finalized", "status": "completed", "thread_id": "t-sparse",
               "terminal_event": "turn.completed", "raw_events_bytes": READ,
               "raw_output_truncated": true, "raw_output_skipped_bytes": size - READ}),
    );
}

#[test]
fn an_8_tb_sparse_stream_finalizes_from_its_head_and_tail() {
    let run = Run::new();
    let size = sparse_stream(&run, "raw-events/huge.jsonl");
    // Three delegations name the same stream: it is digested once, and each finalizes.
    for id in ["huge", "huge-2", "huge-3"] {
        run.delegation(
            id,
            &delegation(id, "running", json!({"last_progress_at": at(-600_000)})),
        );
        let mut doc = run.read_json(&format!("delegations/{id}.json"));
        doc["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/huge.jsonl"});
        write_json(&run.delegation_path(&format!("{id}.json")), &doc);
    }
    let out = flatline([
        "refresh".as_ref(),
        "--now".as_ref(),
        NOW.as_ref(),
        "--format=ndjson".as_ref(),
        run.arg(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for id in ["huge", "huge-2", "huge-3"] {
        assert_finalized_from_head_and_tail(&out.by_action(id), size);
        let result = &run.read_json(&format!("delegations/{id}.json"))["worker_result"];
        assert_fields(
            result,
            json!({"status": "completed", "assistant_message_preview": "Done at the end.",
                   "total_token_usage": {"output_tokens": 7}, "raw_output_bytes": size,
                   "raw_output_truncated": true, "raw_output_skipped_bytes": size - READ}),
        );
    }
    // A smaller bound reads less: the head is always 1M, the tail the rest.
    let run = Run::new();
    let size = sparse_stream(&run, "raw-events/small.jsonl");
    run.delegation(
        "small",
        &delegation(
            "small",
            "running",
            json!({"last_progress_at": at(-600_000)}),
        ),
    );
    let out = flatline([
        "refresh".as_ref(),
        "--now".as_ref(),
        NOW.as_ref(),
        "--format=ndjson".as_ref(),
        "--max-stream-read=4M".as_ref(),
        run.arg(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.by_action("small"),
        json!({"status": "completed", "thread_id": "t-sparse", "raw_events_bytes": 4 << 20,
               "raw_output_skipped_bytes": size - (4 << 20)}),
    );
}

/// The init of a private pid namespace: starts a stuck worker and a worker that exits, writes
/// their delegations (the exited one names the 8 TB stream), runs one sweep, and reports
/// whether the stuck worker was ended.
const SWEEP_INIT: &str = r#"
run=$1; bin=$2; started=$3; stale=$4
sleep 300 & stuck=$!
true & gone=$!; wait $gone
stat=$(cat /proc/$stuck/stat); rest=${stat##*) }; set -- $rest; ticks=${20}
boot=$(cat /proc/sys/kernel/random/boot_id); ns=$(stat -L -c %i /proc/self/ns/pid)
printf '{"delegation_id":"a-huge","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s"}}\n' \
  "$gone" "$started" "$stale" > "$run/delegations/a-huge.json"
printf '{"delegation_id":"b-stuck","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"started_at":"%s","last_progress_at":"%s","process_fingerprint":{"start_ticks":%s,"boot_id":"%s","pid_ns":%s}}}\n' \
  "$stuck" "$started" "$stale" "$ticks" "$boot" "$ns" > "$run/delegations/b-stuck.json"
"$bin" sweep --format=ndjson --grace 1s "$run"; echo "exit $?"
state=$(cut -d' ' -f3 /proc/$stuck/stat 2>/dev/null)
echo "stuck ${state:-gone}"
"#;

#[test]
fn a_sweep_with_an_8_tb_stream_still_reclaims_the_stuck_worker() {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    let size = sparse_stream(&run, "raw-events/a-huge.jsonl");
    let now = real_now_ms();
    let mut command = pid_namespace_bash(SWEEP_INIT);
    command
        .arg(run.path())
        .arg(bin())
        .arg(rfc3339(now - 600_000))
        .arg(rfc3339(now - 300_000));
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    // Ended: a zombie, or already reaped by the namespace's init.
    let stuck = lines.pop();
    assert!(
        matches!(stuck, Some("stuck Z" | "stuck gone")),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        lines.pop(),
        Some("exit 0"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let records: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let action = |id: &str| {
        records
            .iter()
            .find(|r| r["kind"] == "action" && r["delegation_id"] == id)
            .unwrap_or_else(|| panic!("no action for {id} in {}", out.stdout))
            .clone()
    };
    assert_finalized_from_head_and_tail(&action("a-huge"), size);
    assert_fields(
        &action("b-stuck"),
        json!({"action": "reclaimed", "termination": "terminated"}),
    );
    let stuck = run.read_json("delegations/b-stuck.json");
    assert_eq!(stuck["worker_lifecycle"]["reclaim_state"], "reclaimed");
}
