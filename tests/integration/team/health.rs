//! Health, summaries, filters, thresholds and queue counts in status; unsafe paths.

use super::*;

#[test]
fn health_of_every_kind_of_worker() {
    let run = Run::bare();
    worker(&run, "a-fresh", Some(&beat_at(-5_000)), 600_000);
    worker(&run, "b-stalled", Some(&beat_at(-75_000)), 600_000);
    worker(&run, "c-dead", Some(&beat_at(-200_000)), 600_000);
    worker(
        &run,
        "d-stopped",
        Some(&json!({"status": "stopped", "ts": at(-3_600_000)}).to_string()),
        600_000,
    );
    worker(&run, "e-starting", None, 10_000);
    worker(&run, "f-never", None, 600_000);
    worker(
        &run,
        "g-torn",
        Some("{\"status\":\"alive\",\"ts\":\"2026-11"),
        600_000,
    );
    worker(&run, "h-no-ts", Some("{\"status\":\"alive\"}"), 600_000);
    worker(&run, "i-skew", Some(&beat_at(30_000)), 600_000);
    worker(&run, "j-far", Some(&beat_at(86_400_000)), 600_000);
    let out = status(&run, &["--check"]);
    assert_eq!(
        out.code, 1,
        "stalled and dead workers need attention: {}",
        out.stderr
    );
    assert_eq!(out.stderr, "");
    let run_dir = run.path().to_string_lossy().into_owned();
    assert_eq!(
        worker_record(&out, "b-stalled"),
        json!({
            "kind": "worker", "run_dir": run_dir,
            "path": format!("{run_dir}/workers/b-stalled/worker-spec.json"),
            "worker_id": "b-stalled", "role": "coder", "health": "stalled", "heartbeat_status": "alive",
            "last_heartbeat": at(-75_000), "heartbeat_age_ms": 75000, "inbox_count": 0, "outbox_count": 0,
            "message": "Stale heartbeat for 75s (threshold: 60s)", "needs_attention": true, "warnings": []
        })
    );
    let expect = |id: &str, fields: Value| assert_fields(&worker_record(&out, id), fields);
    expect(
        "a-fresh",
        json!({"health": "healthy", "heartbeat_age_ms": 5000, "needs_attention": false}),
    );
    expect(
        "c-dead",
        json!({"health": "dead", "message": "No heartbeat for 200s (threshold: 180s)"}),
    );
    expect(
        "d-stopped",
        json!({"health": "stopped", "needs_attention": false}),
    );
    expect(
        "e-starting",
        json!({"health": "starting", "heartbeat_status": null, "needs_attention": false}),
    );
    expect("f-never", json!({"health": "dead", "last_heartbeat": null}));
    expect(
        "g-torn",
        json!({"health": "healthy", "last_heartbeat": at(-1_000), "warnings": ["heartbeat_unparsable"]}),
    );
    expect(
        "h-no-ts",
        json!({"health": "healthy", "warnings": ["heartbeat_unparsable"]}),
    );
    expect(
        "i-skew",
        json!({"health": "healthy", "heartbeat_age_ms": 0, "warnings": ["clock_skew"]}),
    );
    expect(
        "j-far",
        json!({"health": "unknown", "warnings": ["clock_skew"], "needs_attention": true}),
    );
    // Only stalled/dead/unknown count for --check.
    let calm = Run::bare();
    worker(&calm, "ok", Some(&beat_at(-1_000)), 600_000);
    worker(
        &calm,
        "stopped",
        Some(&json!({"status": "stopped", "ts": at(-3_600_000)}).to_string()),
        600_000,
    );
    worker(&calm, "starting", None, 1_000);
    assert_eq!(status(&calm, &["--check"]).code, 0);
}

#[test]
fn summary_filters_and_thresholds() {
    let run = Run::new();
    run.delegation("d", &delegation("d", "queued", json!({})));
    worker(&run, "a", Some(&beat_at(-5_000)), 600_000);
    worker(&run, "b", Some(&beat_at(-75_000)), 600_000);
    let out = status(&run, &["--summary", "--state", "stalled,queued"]);
    let kinds: Vec<(Value, Value)> = out
        .records()
        .iter()
        .map(|r| {
            (
                r["kind"].clone(),
                r.get("worker_id")
                    .or(r.get("delegation_id"))
                    .cloned()
                    .unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("delegation"), json!("d")),
            (json!("worker"), json!("b")),
            (json!("summary"), Value::Null),
            (json!("summary"), Value::Null)
        ]
    );
    let summaries: Vec<Value> = out
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "summary")
        .collect();
    assert_eq!(
        summaries[1],
        json!({"kind": "summary", "scope": "workers", "run_dir": run.path().to_string_lossy(),
               "total": 2, "healthy": 1, "stalled": 1, "dead": 0, "stopped": 0, "starting": 0, "unknown": 0})
    );
    // Thresholds move the verdicts; out of order is a usage error.
    let loose = status(&run, &["--heartbeat-stale", "2m", "--heartbeat-dead", "5m"]);
    assert_fields(&worker_record(&loose, "b"), json!({"health": "healthy"}));
    let wrong = status(&run, &["--heartbeat-stale", "3m", "--heartbeat-dead", "2m"]);
    assert_eq!(wrong.code, 2);
    assert!(
        wrong
            .stderr
            .contains("--heartbeat-stale 3m must be below --heartbeat-dead 2m"),
        "{}",
        wrong.stderr
    );
    // --task-card limits to delegations of that card: workers have none.
    let card = status(&run, &["--task-card", "card-1"]);
    assert!(card.records().iter().all(|r| r["kind"] != "worker"));
}

#[test]
fn inbox_and_outbox_are_counted_streaming() {
    let run = Run::bare();
    worker(&run, "w", Some(&beat_at(-1_000)), 600_000);
    run.write(
        "workers/w/inbox.jsonl",
        "{\"m\":1}\n\n   \n{\"m\":2}\n{\"m\":3}",
    );
    let outbox = run.path().join("workers/w/outbox.jsonl");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&outbox).unwrap());
        let line = format!("{{\"result\":\"{}\"}}\n\n", "x".repeat(1000));
        for _ in 0..100_000 {
            file.write_all(line.as_bytes()).unwrap();
        }
    }
    assert!(std::fs::metadata(&outbox).unwrap().len() > 100_000_000);
    let out = status(&run, &["--max-stream-read", "200M"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_fields(
        &worker_record(&out, "w"),
        json!({"inbox_count": 3, "outbox_count": 100000, "warnings": []}),
    );
    // The default bound (32M) counts the lines of the first 32M only, and says so.
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let per_line = 1015u64;
    let bound = 32u64 << 20;
    let counted = bound / per_line + u64::from(!bound.is_multiple_of(per_line));
    assert_fields(
        &worker_record(&out, "w"),
        json!({"inbox_count": 3, "outbox_count": counted, "warnings": ["outbox_truncated"]}),
    );
}

#[test]
fn unsafe_heartbeat_and_inbox_paths_are_per_worker_errors() {
    let outside = TempDir::new("outside-hb");
    std::fs::write(
        outside.join("heartbeat.json"),
        json!({"status": "alive", "ts": at(0), "name": "SECRETNAME"}).to_string(),
    )
    .unwrap();
    let run = Run::bare();
    let fifo = run.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo on a fresh path in our temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    run.write("real-heartbeat.json", beat_at(-1_000));
    std::os::unix::fs::symlink(
        run.path().join("real-heartbeat.json"),
        run.path().join("link.json"),
    )
    .unwrap();
    let cases = [
        ("a-fifo", "heartbeat", "../../fifo".to_string()),
        ("b-zero", "heartbeat", "/dev/zero".to_string()),
        ("c-link", "heartbeat", "../../link.json".to_string()),
        (
            "d-outside",
            "heartbeat",
            outside
                .join("heartbeat.json")
                .to_string_lossy()
                .into_owned(),
        ),
        ("e-inbox-fifo", "inbox", "../../fifo".to_string()),
    ];
    for (name, field, path) in &cases {
        let mut spec = json!({"name": name});
        spec[*field] = json!(path);
        run.write(
            &format!("workers/{name}/worker-spec.json"),
            spec.to_string(),
        );
    }
    std::fs::create_dir_all(run.path().join("workers/f-empty")).unwrap();
    let out = status(&run, &[]);
    assert_eq!(out.code, 3);
    let spec = |name: &str| {
        run.path()
            .join(format!("workers/{name}/worker-spec.json"))
            .display()
            .to_string()
    };
    assert_eq!(
        out.stderr_lines(),
        [
            format!(
                "flatline: {}: heartbeat fifo: is a FIFO, not a regular file, refused",
                spec("a-fifo")
            ),
            format!(
                "flatline: {}: heartbeat /dev/zero: path_outside_run: lies outside the run directory (see --allow-outside-paths)",
                spec("b-zero")
            ),
            format!(
                "flatline: {}: heartbeat link.json: is a symlink (or passes through one), refused",
                spec("c-link")
            ),
            format!(
                "flatline: {}: heartbeat {}: path_outside_run: lies outside the run directory (see --allow-outside-paths)",
                spec("d-outside"),
                outside.join("heartbeat.json").display()
            ),
            format!(
                "flatline: {}: inbox fifo: is a FIFO, not a regular file, refused",
                spec("e-inbox-fifo")
            ),
            format!(
                "flatline: {}: a worker directory without worker-spec.json",
                run.path().join("workers/f-empty").display()
            ),
        ]
    );
    for name in ["a-fifo", "b-zero", "c-link", "d-outside"] {
        assert_fields(
            &worker_record(&out, name),
            json!({"health": "unknown", "warnings": ["heartbeat_unreadable"]}),
        );
    }
    assert_fields(
        &worker_record(&out, "e-inbox-fifo"),
        json!({"inbox_count": null}),
    );
    assert!(!out.stdout.contains("SECRETNAME"));
}
