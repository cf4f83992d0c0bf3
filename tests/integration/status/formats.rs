//! Output formats, pipes, usage errors, --help and --version, the README exit table.

use super::*;

#[test]
fn json_is_one_document_and_tsv_has_a_header() {
    let run = Run::new();
    run.delegation("a", &running("a", json!({"last_progress_at": at(-1_000)})));
    run.write("delegations/bad.json", "{");
    let out = status(&run, &["--format", "json"]);
    assert_eq!(out.code, 3);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["run_dirs"], json!([run.path().to_string_lossy()]));
    assert_eq!(doc["checked_at"], "2026-11-22T08:00:00.000Z");
    assert_eq!(doc["records"].as_array().unwrap().len(), 1);
    assert_eq!(doc["summary"][0]["total"], 1);
    assert_eq!(
        doc["errors"][0]["message"],
        "invalid JSON at line 1 column 1 (EOF while parsing an object)"
    );
    let tsv = status(&run, &["--format", "tsv"]);
    let lines: Vec<&str> = tsv.stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("kind\trun_dir\tpath\tdelegation_id\t"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("delegation\t"));
    assert_eq!(lines[0].split('\t').count(), lines[1].split('\t').count());
}

#[test]
fn text_is_a_table_with_a_tally_and_escaped_controls() {
    let run = Run::new();
    run.delegation(
        "a",
        &running("a\u{1b}[2J", json!({"last_progress_at": at(-90_000)})),
    );
    let out = status(&run, &["--format", "text"]);
    assert_eq!(
        out.stdout,
        "DELEGATION  TASK_CARD  STATE      PROGRESS_AGE  PID  PROCESS  NEXT_ACTION  SUMMARY                                               NOTE\n\
         a\\x1b[2J    card-1     timed_out  1m30s         -    -        reclaim      timed out: past the timeout threshold; needs reclaim  -\n\
         1 delegation: 1 timed_out, 1 reclaim_needed\n"
    );
}

#[test]
fn jq_selects_from_the_ndjson_stream() {
    if !have("jq") {
        return;
    }
    let run = Run::new();
    run.delegation("a", &running("a", json!({"last_progress_at": at(-1_000)})));
    run.delegation("b", &running("b", json!({"last_progress_at": at(-50_000)})));
    let script = format!(
        "{} status --format ndjson --now {NOW} '{}' | jq -c 'select(.state==\"stale\") | .delegation_id'",
        bin(),
        run.path().display()
    );
    let out = run_command(
        std::process::Command::new("sh").arg("-c").arg(script),
        HANG_GUARD,
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "\"b\"\n", "")
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let run = Run::new();
    for i in 0..3000 {
        let id = format!("d{i:05}");
        run.delegation(&id, &running(&id, json!({"last_progress_at": at(-1_000)})));
    }
    let script = format!(
        "{} status --format ndjson --now {NOW} '{}' | head -1; exit ${{PIPESTATUS[0]}}",
        bin(),
        run.path().display()
    );
    let out = run_command(
        std::process::Command::new("bash").arg("-c").arg(script),
        HANG_GUARD,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(out.stdout.contains("\"delegation_id\":\"d00000\""));
}

#[test]
fn usage_errors_exit_two() {
    let commands = flatline::cli::COMMANDS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ");
    for (args, message) in [
        (
            vec!["status"],
            "flatline: status needs at least one RUN_DIR",
        ),
        (
            vec!["status", "--stale-after", "45x", "r"],
            "flatline: --stale-after: invalid duration '45x': unknown unit 'x' (a systemd time span, e.g. 45s, 4min, 1m30s, 1h 30min, 1500ms)",
        ),
        (
            vec!["bogus"],
            &*format!("flatline: unknown command 'bogus' (commands: {commands})"),
        ),
        (
            vec!["status", "--format", "xml", "r"],
            "flatline: --format: unknown format 'xml' (use text, ndjson, json, tsv or prometheus)",
        ),
    ] {
        let out = flatline(&args);
        assert_eq!(out.code, 2, "{args:?}");
        assert_eq!(
            out.stderr_lines(),
            [message, "flatline: see 'flatline --help'"],
            "{args:?}"
        );
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn help_and_version() {
    let help = flatline(["--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout
            .contains("Usage: flatline COMMAND [OPTIONS] RUN_DIR...")
    );
    assert!(help.stdout.contains("--stale-after DURATION"));
    let command = flatline(["status", "--help"]);
    assert!(command.stdout.starts_with("flatline status - "));
    let version = flatline(["-V"]);
    assert!(
        version
            .stdout
            .starts_with(&format!("flatline {}", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn the_readme_exit_table_matches_the_code() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut rows = Vec::new();
    for (code, meaning) in flatline::exit::TABLE {
        rows.push(format!("| {code} | {meaning} |"));
    }
    let table = rows.join("\n");
    assert!(
        readme.contains(&table),
        "README.md must contain the exit status table:\n{table}"
    );
}
