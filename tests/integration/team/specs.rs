//! Worker specs: the directory is the worker; paths resolve from it.

use super::*;

#[test]
fn a_worker_is_its_directory_whatever_its_spec_says() {
    let run = Run::bare();
    worker(&run, "builder", Some(&beat_at(-5_000)), 600_000);
    // Another directory's spec claims to be the builder, and is stalled.
    worker(&run, "evil", Some(&beat_at(-75_000)), 600_000);
    let mut spec = run.read_json("workers/evil/worker-spec.json");
    spec["name"] = json!("builder");
    run.write("workers/evil/worker-spec.json", spec.to_string());
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = |id: &str| worker_record(&out, id);
    assert_fields(
        &record("builder"),
        json!({"health": "healthy", "warnings": []}),
    );
    assert!(record("builder").get("spec_name").is_none());
    assert_fields(
        &record("evil"),
        json!({"health": "stalled", "spec_name": "builder", "warnings": ["spec_name_mismatch"]}),
    );
    // health-events speaks of the directory, never of the worker the spec names.
    let first = health_events(&run, NOW, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let log = events(&run);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_fields(&log[0], json!({"kind": "worker_stalled", "actor": "evil"}));
    assert_eq!(
        run.read_json(".flatline/state.json")["workers"],
        json!({"builder": "healthy", "evil": "stalled"})
    );
}

#[test]
fn spec_paths_resolve_from_the_worker_directory_and_missing_ones_warn() {
    let run = Run::bare();
    let spec = json!({"name": "w", "heartbeat": "state/hb.json", "inbox": "in.jsonl",
                      "outbox": "../../queues/out.jsonl"});
    let spec_path = run.write("workers/w/worker-spec.json", spec.to_string());
    set_mtime(&spec_path, NOW_MS - 600_000);
    run.write("workers/w/state/hb.json", beat_at(-5_000));
    run.write("queues/out.jsonl", "{\"a\":1}\n{\"a\":2}\n");
    // What the old rule read (paths from the run directory) is not read any more.
    run.write("state/hb.json", beat_at(-500_000));
    run.write("in.jsonl", "{\"decoy\":1}\n");
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &worker_record(&out, "w"),
        json!({"health": "healthy", "heartbeat_age_ms": 5000, "inbox_count": null,
               "outbox_count": 2, "warnings": ["inbox_missing"]}),
    );
    // A named heartbeat that does not exist is no silent "dead": it says so.
    let spec = json!({"name": "v", "heartbeat": "hb.json"});
    let v_spec = run.write("workers/v/worker-spec.json", spec.to_string());
    set_mtime(&v_spec, NOW_MS - 600_000);
    let out = status(&run, &[]);
    assert_fields(
        &worker_record(&out, "v"),
        json!({"health": "dead", "inbox_count": 0, "warnings": ["heartbeat_missing"]}),
    );
    // The writing commands tell it on stderr once, when it first appears.
    let notice = |spec: &Path, what: &str, path: &str| {
        format!(
            "flatline: {}: {what} {path} does not exist ({what}_missing)",
            spec.display()
        )
    };
    let first = health_events(&run, NOW, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.stderr_lines(),
        [
            notice(&v_spec, "heartbeat", "workers/v/hb.json"),
            notice(&spec_path, "inbox", "workers/w/in.jsonl"),
        ]
    );
    assert_eq!(
        run.read_json(".flatline/state.json")["missing_paths"],
        json!({"v": ["heartbeat"], "w": ["inbox"]})
    );
    let again = health_events(&run, NOW, &[]);
    assert_eq!((again.code, again.stderr.as_str()), (0, ""));
    // Once it exists the warning goes, and the state forgets it.
    run.write("workers/w/in.jsonl", "{\"m\":1}\n");
    std::fs::remove_dir_all(run.path().join("workers/v")).unwrap();
    let fixed = health_events(&run, NOW, &[]);
    assert_eq!((fixed.code, fixed.stderr.as_str()), (0, ""));
    assert!(
        run.read_json(".flatline/state.json")
            .get("missing_paths")
            .is_none()
    );
    assert_fields(
        &worker_record(&status(&run, &[]), "w"),
        json!({"inbox_count": 1, "warnings": []}),
    );
}
