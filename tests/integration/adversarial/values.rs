//! Process ids, timestamps, and huge and negative numbers in thresholds and fingerprints.

use super::*;

// ---------------------------------------------------------------------------------------
// Process ids: every invalid shape, never looked up, never planned for a signal.

#[test]
fn invalid_process_ids_are_never_planned_for_a_signal() {
    let pid_max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A thread of this test: kill(tid, 0) answers, but it is not a process.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid cannot fail.
        tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = done_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let test_pid = std::process::id();
    let cases: Vec<(&str, String, bool)> = vec![
        // (id, JSON text of process_id, wrong type?)
        ("p-zero", "0".into(), false),
        ("p-one", "1".into(), false),
        ("p-minus-one", "-1".into(), false),
        ("p-i32-min", "-2147483648".into(), false),
        ("p-i32-max-plus-1", "2147483648".into(), false),
        ("p-u32-max", "4294967295".into(), false),
        ("p-u32-max-plus-1", "4294967296".into(), false),
        ("p-u32-max-plus-2", "4294967297".into(), false),
        ("p-u64-max-plus-2", "18446744073709551617".into(), false),
        ("p-pid-max-plus-1", (pid_max + 1).to_string(), false),
        ("p-test-process", test_pid.to_string(), false),
        ("p-thread", tid.to_string(), false),
        ("p-huge", "1".to_string() + &"0".repeat(45), true),
        ("p-float", "12.0".into(), true),
        ("p-exponent", "1e2".into(), true),
        ("p-string", "\"42\"".into(), true),
        ("p-bool", "true".into(), true),
        ("p-array", "[42]".into(), true),
        ("p-object", "{\"pid\": 42}".into(), true),
    ];
    let run = Run::new();
    for (id, text, _) in &cases {
        let doc = delegation(
            id,
            "running",
            json!({"process_id": "@@PID@@", "last_progress_at": at(-600_000)}),
        );
        let body = serde_json::to_string_pretty(&doc)
            .unwrap()
            .replace("\"@@PID@@\"", text);
        run.write(&format!("delegations/{id}.json"), body);
    }
    let status = status(&run, &[]);
    assert_no_crash(&status);
    assert_eq!(
        status.code, 3,
        "the wrongly typed ids make their files malformed"
    );
    for (id, _, wrong_type) in &cases {
        let record = status.by_id(id);
        assert_fields(
            &record,
            json!({"process_alive": null, "process_identity": null}),
        );
        let warnings = record["warnings"].as_array().unwrap();
        assert!(warnings.contains(&json!("invalid_process_id")), "{record}");
        if *wrong_type {
            assert!(
                warnings
                    .iter()
                    .any(|w| w == "wrong_type:worker_lifecycle.process_id"),
                "{record}"
            );
        }
    }
    let mut cmd = Command::new(bin());
    cmd.args(["reclaim", "--dry-run", "--format=ndjson", "--now", NOW])
        .arg(run.arg());
    let plan = run_command(&mut cmd, GUARD);
    assert_no_crash(&plan);
    done_tx.send(()).unwrap();
    thread.join().unwrap();
    assert_eq!(plan.code, 3, "{}", plan.stderr);
    let records = plan.records();
    assert_eq!(records.len(), cases.len());
    for record in &records {
        assert_fields(
            record,
            json!({"action": "skipped", "termination": "skipped_invalid_pid"}),
        );
        // Every dry-run target lists the pids it would signal: none here.
        assert_eq!(record["would_signal"], json!([]), "{record}");
    }
}

// ---------------------------------------------------------------------------------------
// Timestamps.

#[test]
fn timestamps_invalid_out_of_range_with_offsets_and_leap_seconds() {
    // (text, Some(what flatline reads it as) or None when it is not RFC 3339)
    let cases: &[(&str, Option<&str>)] = &[
        ("not a time", None),
        ("", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-02-30T00:00:00Z", None),
        ("2026-11-22T24:00:00Z", None),
        ("2026-11-22T07:59:60Z", None),
        ("2026-11-22T07:59:00", None),
        ("2026-11-22", None),
        ("07:59:00Z", None),
        (" 2026-11-22T07:59:00Z", None),
        ("2026-11-22T07:59:00Z ", None),
        ("+2026-11-22T07:59:00Z", None),
        ("-0001-01-01T00:00:00Z", None),
        ("10000-01-01T00:00:00Z", None),
        ("2026-11-22T07:59:00+24:00", None),
        (
            "2026-11-22T07:59:00.000000000000000000000000000000000000000000000000000Z",
            None,
        ),
        (
            "2026-11-22T07:59:00+01:00",
            Some("2026-11-22T06:59:00.000Z"),
        ),
        (
            "2026-11-22T08:59:00+01:00",
            Some("2026-11-22T07:59:00.000Z"),
        ),
        (
            "2026-11-22T02:29:00-05:30",
            Some("2026-11-22T07:59:00.000Z"),
        ),
        (
            "2026-11-22T07:59:00.123456789Z",
            Some("2026-11-22T07:59:00.123Z"),
        ),
        ("2026-11-22t07:59:00z", Some("2026-11-22T07:59:00.000Z")),
        ("2016-12-31T23:59:60Z", Some("2016-12-31T23:59:59.999Z")),
        ("9999-12-31T23:59:59Z", Some("9999-12-31T23:59:59.000Z")),
        ("0000-01-01T00:00:00Z", Some("0000-01-01T00:00:00.000Z")),
        ("1970-01-01T00:00:00Z", Some("1970-01-01T00:00:00.000Z")),
        ("1969-12-31T23:59:59.999Z", Some("1969-12-31T23:59:59.999Z")),
    ];
    let run = Run::new();
    for (i, (text, _)) in cases.iter().enumerate() {
        let id = format!("ts{i:02}");
        run.delegation(
            &id,
            &delegation(&id, "running", json!({"last_progress_at": text})),
        );
    }
    let out = status(&run, &[]);
    assert_no_crash(&out);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let mut invalid = 0;
    for (i, (text, read_as)) in cases.iter().enumerate() {
        let id = format!("ts{i:02}");
        let record = out.by_id(&id);
        let path = run.delegation_path(&format!("{id}.json"));
        let line = format!(
            "flatline: {}: worker_lifecycle.last_progress_at is not an RFC 3339 timestamp",
            path.display()
        );
        match read_as {
            None => {
                invalid += 1;
                assert_fields(
                    &record,
                    json!({"last_progress_at": null, "state": "unknown",
                           "warnings": ["invalid_timestamp:worker_lifecycle.last_progress_at", "no_progress_baseline"]}),
                );
                assert!(
                    out.stderr_lines().contains(&line.as_str()),
                    "{text:?}: {}",
                    out.stderr
                );
            }
            Some(expected) => {
                assert_eq!(record["last_progress_at"], *expected, "{text:?}: {record}");
                assert!(!out.stderr.contains(&*path.to_string_lossy()), "{text:?}");
            }
        }
    }
    assert_eq!(out.stderr_lines().len(), invalid);
    // The far-future one is not trusted; the ancient ones timed out.
    assert_fields(
        &out.by_id("ts22"),
        json!({"state": "unknown", "warnings": ["clock_skew"]}),
    );
    assert_fields(&out.by_id("ts23"), json!({"state": "timed_out"}));
}

#[test]
fn timestamps_pushed_out_of_range_by_an_offset_are_invalid() {
    let run = Run::new();
    // Both are RFC 3339 texts, but in UTC they fall in year -1 and year 10000.
    run.delegation(
        "before-year-0",
        &delegation(
            "before-year-0",
            "running",
            json!({"last_progress_at": "0000-01-01T00:00:00+00:01"}),
        ),
    );
    run.delegation(
        "after-year-9999",
        &delegation(
            "after-year-9999",
            "running",
            json!({"last_progress_at": "9999-12-31T23:59:59-23:59"}),
        ),
    );
    let out = status(&run, &[]);
    assert_no_crash(&out);
    assert_eq!(out.code, 3, "{}", out.stderr);
    for id in ["before-year-0", "after-year-9999"] {
        assert_fields(
            &out.by_id(id),
            json!({"last_progress_at": null, "state": "unknown",
                   "warnings": ["invalid_timestamp:worker_lifecycle.last_progress_at", "no_progress_baseline"]}),
        );
    }
    for record in out.records() {
        if let Some(text) = record["last_progress_at"].as_str() {
            assert!(
                flatline::core::time::parse_rfc3339(text).is_some(),
                "status printed a timestamp it cannot read back: {text}"
            );
        }
    }
    // Nothing to reclaim (no baseline): nothing is written, and every timestamp in the files
    // is still the orchestrator's own.
    let before = (
        run.read("delegations/before-year-0.json"),
        run.read("delegations/after-year-9999.json"),
    );
    let mut cmd = Command::new(bin());
    cmd.args(["reclaim", "--format=ndjson"]).arg(run.arg());
    let reclaim = run_command(&mut cmd, GUARD);
    assert_no_crash(&reclaim);
    assert_eq!(reclaim.stdout, "", "{}", reclaim.stderr);
    assert_eq!(
        before,
        (
            run.read("delegations/before-year-0.json"),
            run.read("delegations/after-year-9999.json"),
        )
    );
}

// ---------------------------------------------------------------------------------------
// Huge and negative numbers in thresholds and fingerprints.

#[test]
fn huge_and_negative_thresholds_and_fingerprints() {
    let run = Run::new();
    let cases = [
        (
            "huge",
            "\"stale_after_ms\": 123456789012345678901234567890, \"quiet_after_ms\": 170141183460469231731687303715884105727, \"timeout_after_ms\": 9223372036854775808",
        ),
        (
            "negative",
            "\"stale_after_ms\": -1, \"quiet_after_ms\": -170141183460469231731687303715884105728, \"timeout_after_ms\": -9223372036854775809",
        ),
        (
            "zero",
            "\"stale_after_ms\": 0, \"quiet_after_ms\": 0, \"timeout_after_ms\": 0",
        ),
        (
            "fingerprint",
            "\"process_id\": 999999999, \"exit_code\": -9223372036854775809, \"process_fingerprint\": {\"start_ticks\": -1, \"boot_id\": \"\", \"pid_ns\": 340282366920938463463374607431768211455}",
        ),
    ];
    for (id, fields) in cases {
        run.write(
            &format!("delegations/{id}.json"),
            format!(
                "{{\"delegation_id\": \"{id}\", \"child_agent\": {{\"status\": \"running\"}}, \
                 \"worker_lifecycle\": {{\"last_progress_at\": \"{}\", {fields}}}}}",
                at(-60_000)
            ),
        );
    }
    for extra in [
        &[][..],
        &["--stuck-after", "1ms"],
        &["--max-runtime", "1ms"],
    ] {
        let out = status(&run, extra);
        assert_no_crash(&out);
        for (id, _) in cases {
            let record = out.by_id(id);
            for field in ["quiet_after_ms", "stale_after_ms", "timeout_after_ms"] {
                let value = record[field].as_i64().unwrap_or_else(|| panic!("{record}"));
                assert!(value >= 1, "{field} must be a positive integer: {record}");
            }
            let (q, s, t) = (
                record["quiet_after_ms"].as_i64().unwrap(),
                record["stale_after_ms"].as_i64().unwrap(),
                record["timeout_after_ms"].as_i64().unwrap(),
            );
            assert!(q <= s && s <= t, "thresholds in order: {record}");
        }
        // Values below 1 are clamped with a warning (values past i64 saturate silently).
        for id in ["negative", "zero"] {
            assert!(
                out.by_id(id)["warnings"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("invalid_threshold")),
                "{}",
                out.by_id(id)
            );
        }
    }
}
