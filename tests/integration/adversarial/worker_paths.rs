//! Heartbeat, inbox and outbox paths named by a worker spec (SPEC §1.3, §5).

use super::*;

/// Every hostile target for each path a worker spec names: one stderr line naming the spec
/// and the path, the worker still reported (health unknown or a count of null), the good
/// worker unaffected, nothing outside the run read, in `status` and in `health-events`
/// (whose state file and event log must not carry an outside byte either).
#[test]
fn hostile_heartbeat_inbox_and_outbox_paths() {
    let outside = Outside::new();
    let run = Run::bare();
    let targets = hostile_targets(&run, &outside);
    let expected = write_worker_specs(&run, &targets);

    let status = capped_at_now("status", &run);
    assert_no_crash(&status);
    assert_eq!(status.code, 3, "{}", status.stderr);
    let lines = status.stderr_lines();
    assert_eq!(lines.len(), expected.len(), "{}", status.stderr);
    for (line, (name, field, spec_path, path, fragment)) in lines.iter().zip(&expected) {
        let head = format!("flatline: {}: {field} {path}: ", spec_path.display());
        assert!(
            line.starts_with(&head) && line.contains(fragment),
            "{name}: {line:?} should start {head:?} and say {fragment:?}"
        );
    }
    let workers: Vec<Value> = status
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "worker")
        .collect();
    assert_eq!(workers.len(), expected.len() + 3);
    for worker in &workers {
        let name = worker["worker_id"].as_str().unwrap();
        match name.split('-').next().unwrap() {
            "heartbeat" => assert_eq!(worker["health"], "unknown", "{worker}"),
            "inbox" if name == "inbox-sparse" => assert_eq!(worker["inbox_count"], 1),
            "outbox" if name == "outbox-sparse" => assert_eq!(worker["outbox_count"], 1),
            "inbox" => assert_eq!(worker["inbox_count"], Value::Null, "{worker}"),
            "outbox" => assert_eq!(worker["outbox_count"], Value::Null, "{worker}"),
            _ => assert_fields(worker, json!({"health": "healthy", "inbox_count": 2})),
        }
    }
    assert!(!status.stdout.contains(MARKER) && !status.stderr.contains(MARKER));

    let events = capped_at_now("health-events", &run);
    assert_no_crash(&events);
    assert_eq!(events.code, 3, "{}", events.stderr);
    assert_eq!(
        events.stderr_lines().len(),
        expected.len(),
        "{}",
        events.stderr
    );
    assert!(!events.stdout.contains(MARKER) && !events.stderr.contains(MARKER));
    let state = std::fs::read_to_string(run.path().join(".flatline/state.json")).unwrap();
    assert!(
        state.contains("zz-good") && !state.contains(MARKER),
        "{state}"
    );
    if let Ok(log) = std::fs::read_to_string(run.path().join("events.jsonl")) {
        assert!(!log.contains(MARKER));
    }
    // (The 2 GB sparse file is not one to read back whole.)
    std::fs::remove_file(run.path().join("sparse")).unwrap();
    assert_no_leak("worker paths", run.path(), &outside.secret);
}

/// The hostile files in the run, and for each target a case name, the path a worker spec
/// names, and a fragment of the message it must cause (the same for the three fields).
fn hostile_targets(run: &Run, outside: &Outside) -> Vec<(&'static str, String, &'static str)> {
    let fifo = run.path().join("fifo");
    mkfifo(&fifo);
    std::fs::create_dir(run.path().join("a-dir")).unwrap();
    let sparse = std::fs::File::create(run.path().join("sparse")).unwrap();
    sparse.set_len(2 * 1024 * 1024 * 1024).unwrap();
    drop(sparse);
    let foreign = run.write("foreign.jsonl", "{\"m\":1}\n");
    let root = is_root();
    if root {
        chown(&foreign, 65534);
    }
    let secret = outside.secret.to_string_lossy().into_owned();
    let escape = format!("../{}/secret.jsonl", outside.name());
    // (case, path, fragment of the message): the same for the three fields.
    let mut targets: Vec<(&str, String, &str)> = vec![
        (
            "dev-zero",
            "/dev/zero".into(),
            "lies outside the run directory",
        ),
        (
            "proc-mem",
            "/proc/self/mem".into(),
            "lies outside the run directory",
        ),
        ("secret", secret.clone(), "lies outside the run directory"),
        (
            "escape",
            escape,
            "path_outside_run: escapes the run directory",
        ),
        (
            "fifo",
            "fifo".into(),
            "is a FIFO, not a regular file, refused",
        ),
        (
            "dir",
            "a-dir".into(),
            "is a directory, not a regular file, refused",
        ),
    ];
    if root {
        targets.push(("foreign", "foreign.jsonl".into(), "owned by uid 65534"));
    }
    targets
}

/// A worker spec per field and target (and a sparse file for each field), plus a good worker;
/// returns, in name order, each bad worker with the spec, path and fragment of its line.
fn write_worker_specs(
    run: &Run,
    targets: &[(&'static str, String, &'static str)],
) -> Vec<(String, &'static str, PathBuf, String, &'static str)> {
    let mut expected = Vec::new();
    for field in ["heartbeat", "inbox", "outbox"] {
        for (case, path, fragment) in targets {
            let name = format!("{field}-{case}");
            // Relative paths resolve from the worker's directory (SPEC §5): these name the
            // same files, beneath the run, as `path` does from the run directory.
            let mut spec = json!({"name": name, "role": "coder"});
            spec[field] = if path.starts_with('/') {
                json!(path)
            } else {
                json!(format!("../../{path}"))
            };
            let spec_path = run.write(
                &format!("workers/{name}/worker-spec.json"),
                spec.to_string(),
            );
            set_mtime_ms(&spec_path, NOW_MS - 600_000);
            expected.push((name, field, spec_path, path.clone(), *fragment));
        }
    }
    // A 2 GB sparse heartbeat is over the document limit; 2 GB sparse queues are counted
    // streaming (one line of NUL bytes), in bounded memory.
    for field in ["heartbeat", "inbox", "outbox"] {
        let name = format!("{field}-sparse");
        let spec_path = run.write(
            &format!("workers/{name}/worker-spec.json"),
            json!({"name": name, field: "../../sparse"}).to_string(),
        );
        set_mtime_ms(&spec_path, NOW_MS - 600_000);
        if field == "heartbeat" {
            expected.push((
                name,
                field,
                spec_path,
                "sparse".into(),
                "larger than 16 MiB, not read",
            ));
        }
    }
    // Workers are read in name order.
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let good = run.write(
        "workers/zz-good/worker-spec.json",
        json!({"name": "zz-good", "heartbeat": "heartbeat.json",
               "inbox": "./inbox.jsonl"})
        .to_string(),
    );
    set_mtime_ms(&good, NOW_MS - 600_000);
    run.write(
        "workers/zz-good/heartbeat.json",
        json!({"status": "alive", "name": "zz-good", "ts": at(-1_000)}).to_string(),
    );
    run.write("workers/zz-good/inbox.jsonl", "{\"m\":1}\n{\"m\":2}\n");
    expected
}
