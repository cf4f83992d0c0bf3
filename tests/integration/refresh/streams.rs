//! Bad stream paths and huge streams.

use super::*;

#[test]
fn bad_stream_paths_are_per_delegation_errors() {
    let outside = TempDir::new("outside");
    let secret = outside.join("secret.jsonl");
    std::fs::write(
        &secret,
        "{\"type\":\"turn.completed\",\"usage\":{\"secret\":\"TOPSECRET\"}}\n",
    )
    .unwrap();
    let run = Run::new();
    let fifo = run.path().join("fifo.jsonl");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo on a fresh path in our temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    std::fs::create_dir(run.path().join("adir")).unwrap();
    let foreign = run.write("foreign.jsonl", CLAUDE_SUCCESS);
    if is_root() {
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    }
    let cases: Vec<(&str, String)> = vec![
        ("a-fifo", "fifo.jsonl".into()),
        ("b-zero", "/dev/zero".into()),
        ("c-dir", "adir".into()),
        ("d-missing", "missing.jsonl".into()),
        ("e-outside", secret.to_string_lossy().into_owned()),
        (
            "f-escape",
            format!(
                "../{}/secret.jsonl",
                outside.path().file_name().unwrap().to_string_lossy()
            ),
        ),
        ("g-foreign", "foreign.jsonl".into()),
    ];
    for (id, path) in &cases {
        let mut doc = running(id, json!({"last_progress_at": at(-60_000)}));
        doc["worker_launch_evidence"]["raw_events_file"] = json!(path);
        run.delegation(id, &doc);
    }
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 3);
    let d = |id: &str| {
        run.delegation_path(&format!("{id}.json"))
            .display()
            .to_string()
    };
    let mut expected = vec![
        format!(
            "flatline: {}: event stream fifo.jsonl: is a FIFO, not a regular file, refused",
            d("a-fifo")
        ),
        format!(
            "flatline: {}: event stream /dev/zero: path_outside_run: lies outside the run directory (see --allow-outside-paths)",
            d("b-zero")
        ),
        format!(
            "flatline: {}: event stream adir: is a directory, not a regular file, refused",
            d("c-dir")
        ),
        format!(
            "flatline: {}: event stream {}: path_outside_run: lies outside the run directory (see --allow-outside-paths)",
            d("e-outside"),
            secret.display()
        ),
        format!(
            "flatline: {}: event stream {}: path_outside_run: escapes the run directory",
            d("f-escape"),
            cases[5].1
        ),
    ];
    if is_root() {
        expected.push(format!(
            "flatline: {}: event stream foreign.jsonl: owned by uid 65534, not by the delegation's owner (uid 0) or root, refused",
            d("g-foreign")
        ));
    }
    assert_eq!(out.stderr_lines(), expected);
    assert!(!out.stdout.contains("TOPSECRET") && !out.stderr.contains("TOPSECRET"));
    for (id, _) in &cases {
        let doc = run.read_json(&format!("delegations/{id}.json"));
        assert_eq!(doc["child_agent"]["status"], "running", "{id} untouched");
        assert!(!serde_json::to_string(&doc).unwrap().contains("TOPSECRET"));
    }
    // With --allow-outside-paths the outside file is read, but /dev/zero is still refused.
    let out = refresh(&run, &["--now", NOW, "--allow-outside-paths"]);
    assert!(
        out.stderr
            .contains("event stream /dev/zero: is a character device, not a regular file, refused"),
        "{}",
        out.stderr
    );
    assert_fields(
        &out.by_action("e-outside"),
        json!({"action": "finalized", "status": "completed"}),
    );
}

#[test]
fn a_huge_stream_with_an_over_long_line_is_digested_in_bounded_memory() {
    let pid = exited_pid();
    let run = Run::new();
    run.delegation(
        "big",
        &running(
            "big",
            json!({"process_id": pid, "last_progress_at": at(-60_000)}),
        ),
    );
    let path = run.path().join("raw-events/big.jsonl");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(
            file,
            "{{\"type\":\"thread.started\",\"thread_id\":\"t-big\"}}"
        )
        .unwrap();
        let filler = format!(
            "{{\"type\":\"item.completed\",\"item\":{{\"type\":\"command_execution\",\"aggregated_output\":\"{}\"}}}}\n",
            "x".repeat(1000)
        );
        for _ in 0..30_000 {
            file.write_all(filler.as_bytes()).unwrap();
        }
        file.write_all(
            b"{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"",
        )
        .unwrap();
        file.write_all(&vec![b'y'; 20 * 1024 * 1024]).unwrap();
        file.write_all(b"\"}}\n").unwrap();
        writeln!(
            file,
            "{{\"type\":\"turn.completed\",\"usage\":{{\"output_tokens\":1}}}}"
        )
        .unwrap();
    }
    set_mtime(&path, NOW_MS - 10_000);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 50 * 1024 * 1024);
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Longer than --max-stream-read (32M): its head and tail are read, not the middle.
    let read = 32 * 1024 * 1024;
    assert_fields(
        &out.records()[0],
        json!({"action": "finalized", "status": "completed", "thread_id": "t-big",
               "raw_events_bytes": read, "raw_output_truncated": true,
               "raw_output_skipped_bytes": size - read}),
    );
    let doc = run.read_json("delegations/big.json");
    assert_eq!(doc["worker_result"]["raw_output_bytes"], json!(size));
    assert_eq!(doc["worker_result"]["raw_output_truncated"], json!(true));
    assert_eq!(
        doc["worker_result"]["raw_output_skipped_bytes"],
        json!(size - read)
    );
}
