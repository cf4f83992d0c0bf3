//! health-events: transitions, the event log, a second writer.

use super::*;

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
        json!({"command": "health-events", "action": "worker_stalled", "event": "worker_stalled", "outcome": "appended", "worker_id": "w2", "event_id": log[0]["id"]}),
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
