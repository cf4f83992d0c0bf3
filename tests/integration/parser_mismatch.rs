//! Read/write parser mismatch (issue 12 class 7, SPEC §1.3 last bullet).
//!
//! A delegation naming a stuck worker carries, in a field flatline does not read, something
//! the write path (`serde_json::Value`) would refuse or change: a lone surrogate escape,
//! nesting of 128 levels, an object keyed `$serde_json::private::Number`, a duplicate key.
//! Such a document is a problem for its file (exit 3) and is never acted on: `sweep` and
//! `reclaim` send no signal and write nothing. Inside a private pid namespace a bash init
//! starts one worker per case plus a control worker with a clean document (which is
//! reclaimed, so the machinery is shown to work), runs flatline, and reports which workers
//! are still alive and which documents are unchanged.

use crate::support::*;

/// A deep value: `levels` nested arrays.
fn nested(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// The cases: file stem and the raw JSON of an ignored `worker_request` field.
fn cases() -> Vec<(&'static str, String)> {
    vec![
        ("surrogate", r#"{"prompt": "fix \ud800 this"}"#.to_string()),
        ("trailing-surrogate", r#"{"notes": ["\udc00"]}"#.to_string()),
        // The document, worker_request and 126 arrays: 128 levels.
        ("deep", format!("{{\"notes\": {}}}", nested(126))),
        (
            "number-key",
            r#"{"budget": {"$serde_json::private::Number": "12"}}"#.to_string(),
        ),
        (
            "duplicate-key",
            r#"{"prompt": "one", "prompt": "two"}"#.to_string(),
        ),
    ]
}

/// A stale delegation for the worker `@PID@`, with `request` as its `worker_request`; the
/// fingerprint's placeholders are filled in by the init, inside the namespace.
fn document(id: &str, request: &str) -> String {
    let now = real_now_ms();
    format!(
        r#"{{
  "delegation_id": "{id}",
  "task_card_id": "card-1",
  "worker_request": {request},
  "child_agent": {{"status": "running"}},
  "executor": {{"status": "running"}},
  "worker_lifecycle": {{
    "process_id": @PID@,
    "started_at": "{started}",
    "last_progress_at": "{progress}",
    "process_fingerprint": {{"start_ticks": @TICKS@, "boot_id": "@BOOT@", "pid_ns": @NS@}}
  }}
}}
"#,
        started = rfc3339(now - 600_000),
        progress = rfc3339(now - 300_000),
    )
}

/// `$1` run directory, `$2` flatline, `$3` the command (`sweep` or `reclaim`), then the
/// delegation stems. Lines starting with `#` are the script's own.
const INIT: &str = r##"
run=$1; bin=$2; command=$3; shift 3
read -r boot < /proc/sys/kernel/random/boot_id
ns=$(readlink /proc/self/ns/pid); ns=${ns#pid:[}; ns=${ns%]}
declare -A workers
for stem in "$@"; do
  sleep 300 & pid=$!
  workers[$stem]=$pid
  read -r stat < /proc/$pid/stat
  rest=${stat##*) }; set -- $rest; ticks=${20}
  file="$run/delegations/$stem.json"
  IFS= read -r -d '' doc < "$file"
  doc=${doc//@PID@/$pid}; doc=${doc//@TICKS@/$ticks}; doc=${doc//@BOOT@/$boot}; doc=${doc//@NS@/$ns}
  printf '%s' "$doc" > "$file"
  cp "$file" "$run/$stem.orig"
done
"$bin" "$command" --format=ndjson --grace 2s "$run" 2> "$run/stderr"
echo "#exit $?"
for stem in "${!workers[@]}"; do
  pid=${workers[$stem]}
  state=gone
  if read -r stat < /proc/$pid/stat 2>/dev/null; then rest=${stat##*) }; state=${rest%% *}; fi
  [ "$state" = S ] && echo "#alive $stem"
  cmp -s "$run/delegations/$stem.json" "$run/$stem.orig" && echo "#unchanged $stem"
done
exit 0
"##;

fn play(command: &str) {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return;
    }
    let run = Run::new();
    let mut stems: Vec<String> = Vec::new();
    for (stem, request) in cases() {
        std::fs::write(
            run.delegation_path(&format!("{stem}.json")),
            document(stem, &request),
        )
        .unwrap();
        stems.push(stem.to_string());
    }
    std::fs::write(
        run.delegation_path("control.json"),
        document("control", r#"{"prompt": "fine \ud83d\ude00"}"#),
    )
    .unwrap();
    stems.push("control".to_string());
    let mut init = pid_namespace_bash(INIT);
    init.arg(run.path()).arg(bin()).arg(command).args(&stems);
    let out = run_command(&mut init, HANG_GUARD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let notes: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with('#')).collect();
    let stderr = std::fs::read_to_string(run.path().join("stderr")).unwrap();
    assert!(
        notes.contains(&"#exit 3"),
        "a document that cannot be rewritten is a file problem: {notes:?} {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for (stem, _) in cases() {
        assert!(
            notes.contains(&format!("#alive {stem}").as_str()),
            "{command} signalled the worker of {stem}: {notes:?} {stderr}"
        );
        assert!(
            notes.contains(&format!("#unchanged {stem}").as_str()),
            "{command} wrote {stem}.json: {notes:?}"
        );
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("delegations/{stem}.json: ")))
            .unwrap_or_else(|| panic!("no stderr line names {stem}.json: {stderr}"));
        let reason = match stem {
            "deep" => "recursion limit",
            "number-key" => "$serde_json::private::Number",
            "duplicate-key" => "duplicate key \"prompt\"",
            _ => "escape",
        };
        assert!(line.contains(reason), "{line}");
    }
    // The control worker shows that the run did reclaim what it should.
    assert!(
        !notes.contains(&"#alive control"),
        "the control worker was not reclaimed: {notes:?} {stderr}"
    );
    assert!(!notes.contains(&"#unchanged control"), "{notes:?}");
    let records: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for record in &records {
        let id = record["delegation_id"].as_str().unwrap_or("");
        assert!(
            id.is_empty() || id == "control",
            "a record about a refused document: {record}"
        );
    }
}

#[test]
fn sweep_never_acts_on_a_document_it_could_not_write_back() {
    play("sweep");
}

#[test]
fn reclaim_never_acts_on_a_document_it_could_not_write_back() {
    play("reclaim");
}

#[test]
fn status_and_fan_in_report_such_a_document_as_a_problem() {
    let run = Run::new();
    for (stem, request) in cases() {
        let text = document(stem, &request)
            .replace("@PID@", "4242")
            .replace("@TICKS@", "1")
            .replace("@BOOT@", "b")
            .replace("@NS@", "1");
        std::fs::write(run.delegation_path(&format!("{stem}.json")), text).unwrap();
    }
    let out = status(&run, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.records().len(), 0, "{}", out.stdout);
    for (stem, _) in cases() {
        assert!(
            out.stderr.contains(&format!("delegations/{stem}.json: ")),
            "{}",
            out.stderr
        );
    }
    // A task card document with a duplicate key is a problem too, and never stamped.
    let card = run.write(
        "task-cards/c2.json",
        "{\"task_card_id\": \"c2\", \"worker_result_envelope\": {\"status\": \"passed\"}, \"worker_result_envelope\": {\"status\": \"running\"}}\n",
    );
    let before = std::fs::read(&card).unwrap();
    let fan_in = flatline([
        std::ffi::OsStr::new("fan-in"),
        std::ffi::OsStr::new("--format=ndjson"),
        std::ffi::OsStr::new("--now"),
        std::ffi::OsStr::new(NOW),
        run.arg(),
    ]);
    assert_eq!(fan_in.code, 3, "{}", fan_in.stderr);
    assert!(
        fan_in
            .stderr
            .contains("task-cards/c2.json: invalid JSON at line 1"),
        "{}",
        fan_in.stderr
    );
    assert!(fan_in.stderr.contains("duplicate key"), "{}", fan_in.stderr);
    assert_eq!(std::fs::read(&card).unwrap(), before);
    assert!(
        !fan_in.stdout.contains("\"c2\""),
        "a refused card is not decided on: {}",
        fan_in.stdout
    );
}
