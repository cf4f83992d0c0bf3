//! One sweep does everything, a second nothing; dry runs; each input read once; a failing
//! stdout.

use super::*;

#[test]
fn one_sweep_does_everything_and_a_second_changes_no_byte() {
    let scene = scene();
    let run = &scene.run;
    let out = sweep(run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = out.records();
    let kinds: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let what = r["action"]
                .as_str()
                .or(r["outcome"].as_str())
                .unwrap_or("")
                .to_string();
            let who = r
                .get("delegation_id")
                .or(r.get("task_card_id"))
                .or(r.get("worker_id"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (what, who)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("finalized".to_string(), "d-done".to_string()),
            ("reclaimed".to_string(), "d-stuck".to_string()),
            ("collapsed".to_string(), "c1".to_string()),
            ("collapsed".to_string(), "c2".to_string()),
            ("event_appended".to_string(), "w1".to_string()),
        ],
        "{}",
        out.stdout
    );
    // SPEC §7: sweep prints an appended event as event_appended, the event's kind beside.
    assert_fields(
        &records[4],
        json!({"kind": "action", "command": "sweep", "event": "worker_stalled"}),
    );
    assert_fields(
        &records[1],
        json!({"termination": "killed", "outcome": "written"}),
    );
    assert_fields(
        &records[2],
        json!({"ready": true, "completed": 1, "failed": 1, "thread_ids": ["5e1f0a7c-0001-4c3b-9a10-codexexec001"]}),
    );
    let done = run.read_json("delegations/d-done.json");
    assert_eq!(done["child_agent"]["status"], "completed");
    assert!(
        done["fan_in_collapsed_at"].is_string(),
        "stamped in the same write"
    );
    let stuck = run.read_json("delegations/d-stuck.json");
    assert_eq!(stuck["worker_lifecycle"]["reclaim_state"], "reclaimed");
    assert!(stuck["fan_in_collapsed_at"].is_string());
    assert!(
        !std::path::Path::new(&format!("/proc/{}/cmdline", scene.stuck.pid())).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", scene.stuck.pid()))
                .unwrap()
                .contains(") Z")
    );
    let events: Vec<Value> = std::fs::read_to_string(run.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "worker_stalled");

    let before = snapshot(run.path());
    let again = sweep(run, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    for record in again.records() {
        assert_eq!(
            record["kind"], "fan_in",
            "only the collapsed cards are reported: {record}"
        );
        assert_eq!(record["outcome"], "already_collapsed");
    }
    assert_eq!(
        snapshot(run.path()),
        before,
        "a sweep with nothing to do changes no byte"
    );
}

#[test]
fn dry_run_signals_and_writes_nothing() {
    let scene = scene();
    let run = &scene.run;
    let before = snapshot(run.path());
    let out = sweep(run, &["--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let actions: Vec<String> = out
        .records()
        .iter()
        .filter_map(|r| r["outcome"].as_str().map(str::to_string))
        .collect();
    assert!(actions.iter().all(|a| a == "dry_run"), "{}", out.stdout);
    assert_fields(
        &out.by_action("d-stuck"),
        json!({"action": "reclaimed", "outcome": "dry_run", "would_signal": [scene.stuck.pid()]}),
    );
    assert_eq!(snapshot(run.path()), before);
    assert!(
        std::fs::read_to_string(format!("/proc/{}/stat", scene.stuck.pid()))
            .unwrap()
            .contains(") S")
    );
}

#[test]
fn now_is_refused_without_dry_run_and_task_cards_not_ready_are_not_an_error() {
    let run = Run::new();
    let out = sweep(&run, &["--now", NOW]);
    assert_eq!(out.code, 2);
    let mut busy = delegation(
        "a",
        "running",
        json!({"last_progress_at": rfc3339(real_now_ms())}),
    );
    busy["task_card_id"] = json!("c1");
    run.delegation("a", &busy);
    let out = sweep(&run, &["--task-card", "c1"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    // A card simply not ready yet is printed only with --all (SPEC §7).
    let out = sweep(&run, &["--task-card", "c1", "--all"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &out.records()[0],
        json!({"kind": "fan_in", "ready": false, "active": 1}),
    );
}

#[test]
fn every_input_is_opened_for_reading_once() {
    if !have("strace") {
        return;
    }
    let scene = scene();
    let run = &scene.run;
    // Enough finished delegations (no card, nothing to do) that the listing is read ahead by
    // the second thread: that one reads each of them once too.
    let fillers: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
    for id in &fillers {
        let mut doc = delegation(id, "completed", json!({}));
        doc.as_object_mut().unwrap().remove("task_card_id");
        run.delegation(id, &doc);
    }
    let trace = run
        .path()
        .join("..")
        .join(format!("trace-{}", std::process::id()));
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-e", "trace=openat,openat2,open", "-o"])
        .arg(&trace)
        .arg(bin())
        .args(["sweep", "--format=ndjson", "--grace=300ms"])
        .arg(run.arg());
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    let opens = |name: &str| {
        text.lines()
            .filter(|line| line.contains(&format!("\"{name}\"")) && !line.contains("O_CREAT"))
            .count()
    };
    // Not written: read once. Written: read once, then the store's checks before the rename.
    assert_eq!(
        opens("d-complete.json"),
        2,
        "d-complete.json is stamped: one read, one comparison before the rename\n{text}"
    );
    assert_eq!(
        opens("raw-events/d-done.jsonl"),
        2,
        "the stream is stat'ed for the view (SPEC §2), then resolved once more and read \
         through its descriptor\n{text}"
    );
    assert_eq!(opens("workers/w1/heartbeat.json"), 1, "{text}");
    assert_eq!(opens("worker-spec.json"), 1, "{text}");
    for id in &fillers {
        assert_eq!(opens(&format!("{id}.json")), 1, "{id}.json\n{text}");
    }
    assert_eq!(
        opens("d-done.json"),
        2,
        "d-done.json: one read, one comparison before the rename\n{text}"
    );
    // A worker about to be signalled is read once more just before the signal (SPEC §3.3:
    // progress since the plan drops it).
    assert_eq!(
        opens("d-stuck.json"),
        3,
        "d-stuck.json: one read, one last look before the signal, one comparison before the \
         rename\n{text}"
    );
    // The second, idle sweep reads each delegation exactly once.
    let trace2 = run
        .path()
        .join("..")
        .join(format!("trace2-{}", std::process::id()));
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-e", "trace=openat,openat2,open", "-o"])
        .arg(&trace2)
        .arg(bin())
        .args(["sweep", "--format=ndjson"])
        .arg(run.arg());
    assert_eq!(run_command(&mut command, HANG_GUARD).code, 0);
    let text = std::fs::read_to_string(&trace2).unwrap();
    let _ = std::fs::remove_file(&trace2);
    let names = [
        "d-done.json",
        "d-stuck.json",
        "d-complete.json",
        "worker-spec.json",
        "heartbeat.json",
    ]
    .map(String::from)
    .into_iter()
    .chain(fillers.iter().map(|id| format!("{id}.json")));
    for name in names {
        let count = text
            .lines()
            .filter(|line| line.contains(&format!("{name}\"")))
            .count();
        assert_eq!(count, 1, "{name} opened {count} times\n{text}");
    }
}

/// stdout failing (a full disk) stops the printing, never the work: every change is
/// written, one stderr line says what happened, exit 3.
#[test]
fn a_failing_stdout_does_not_stop_the_writes() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("SKIPPED: no /dev/full");
        return;
    }
    let run = Run::new();
    let now = real_now_ms();
    for i in 0..300 {
        let id = format!("s{i:03}");
        run.delegation(&id, &stale_member(&id, "card-1", now));
    }
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            "exec \"$0\" sweep --format=ndjson \"$1\" > /dev/full",
            bin(),
        ])
        .arg(run.arg());
    let out = run_command(&mut command, HANG_GUARD);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        out.stderr, "flatline: stdout: no space left on device\n",
        "one line"
    );
    for i in 0..300 {
        let doc = run.read_json(&format!("delegations/s{i:03}.json"));
        assert_eq!(doc["reclaim"]["termination"], "no_process", "s{i:03}");
    }
}
