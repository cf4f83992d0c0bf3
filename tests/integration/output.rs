//! What reaches an operator's terminal, a pipe or a document: dangerous characters (SPEC §7)
//! never raw, bounded memory for text and tsv, and tables that say what they refer to.

use crate::support::*;
use flatline::core::text::is_dangerous;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// Everything an attacker would like to reach a terminal: a window title (OSC), a bell, a
/// screen clear, a bidi override, a line separator, a C1 CSI, DEL, an Arabic letter mark and
/// a bidi isolate.
const HOSTILE: &str =
    "x\u{1b}]0;pwned\u{7}y\u{1b}[2J\u{202e}gnp.exe\u{2028}z\u{9b}31m\u{7f}\u{61c}\u{2067}end";

/// The dangerous characters in `text`, except the line breaks (and tabs) of the format.
fn raw(text: &str, tabs_allowed: bool) -> Vec<char> {
    text.chars()
        .filter(|&c| c != '\n' && !(tabs_allowed && c == '\t'))
        .filter(|&c| is_dangerous(c))
        .collect()
}

fn set_mtime(path: &Path, ms: i64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    file.set_times(std::fs::FileTimes::new().set_modified(at).set_accessed(at))
        .unwrap();
}

fn exited_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn running(id: &str, lifecycle: Value) -> Value {
    let mut doc = delegation(id, "running", lifecycle);
    doc["worker_launch_evidence"] = json!({"raw_events_file": format!("raw-events/{id}.jsonl")});
    doc
}

/// Every string inside a JSON value.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => {
            for (key, value) in map {
                out.push(key.clone());
                strings(value, out);
            }
        }
        _ => {}
    }
}

/// A run whose agents wrote hostile text everywhere flatline copies or prints from.
fn hostile_run() -> Run {
    let pid = exited_pid();
    let run = Run::new();
    let lifecycle =
        json!({"process_id": pid, "started_at": at(-120_000), "last_progress_at": at(-60_000)});
    run.delegation("done", &running("done", lifecycle.clone()));
    let text = serde_json::to_string(HOSTILE).unwrap();
    let done = [
        format!("{{\"type\":\"thread.started\",\"thread_id\":{text}}}"),
        format!(
            "{{\"type\":\"item.completed\",\"item\":{{\"type\":\"agent_message\",\"text\":{text}}}}}"
        ),
        format!("{{\"type\":\"turn.completed\",\"usage\":{{\"output_tokens\":1,{text}:{text}}}}}"),
    ];
    let stream = run.write("raw-events/done.jsonl", done.join("\n") + "\n");
    set_mtime(&stream, NOW_MS - 10_000);
    run.delegation("failed", &running("failed", lifecycle));
    let failed = [
        HOSTILE.to_string(),
        format!("plain {HOSTILE} line"),
        format!("{{\"type\":\"turn.failed\",\"error\":{{\"message\":{text}}}}}"),
    ];
    let stream = run.write("raw-events/failed.jsonl", failed.join("\n") + "\n");
    set_mtime(&stream, NOW_MS - 10_000);
    let mut evil = running("evil", json!({"last_progress_at": at(-1_000)}));
    evil["delegation_id"] = json!(HOSTILE);
    evil["task_card_id"] = json!(HOSTILE);
    evil["work_kind"] = json!(HOSTILE);
    evil["child_agent"]["status"] = json!(HOSTILE);
    run.delegation("evil", &evil);
    // A file whose name and contents are a problem: its stderr line names it.
    run.write(&format!("delegations/bad{HOSTILE}.json"), "{");
    run
}

#[test]
fn hostile_text_never_reaches_a_terminal_a_pipe_or_a_document_raw() {
    let run = hostile_run();
    let refresh = flatline([
        OsStr::new("refresh"),
        OsStr::new("--format=ndjson"),
        OsStr::new("--now"),
        OsStr::new(NOW),
        run.arg(),
    ]);
    assert_eq!(refresh.code, 3, "{}", refresh.stderr);
    assert_eq!(raw(&refresh.stdout, false), [], "{}", refresh.stdout);
    assert_eq!(raw(&refresh.stderr, false), [], "{}", refresh.stderr);
    assert!(
        refresh.stderr.contains("badx\\x1b]0;pwned\\x07y"),
        "{}",
        refresh.stderr
    );
    let finalized: Vec<Value> = refresh
        .records()
        .into_iter()
        .filter(|r| r["action"] == "finalized")
        .collect();
    assert_eq!(finalized.len(), 2, "{}", refresh.stdout);
    // The digest's text is in the records, stripped, never escaped twice.
    let done = refresh.by_action("done");
    assert_eq!(done["thread_id"], "x]0;pwnedy[2Jgnp.exez31mend");
    let usage = &run.read_json("delegations/done.json")["worker_result"]["total_token_usage"];
    assert_eq!(
        usage["x]0;pwnedy[2Jgnp.exez31mend"], "x]0;pwnedy[2Jgnp.exez31mend",
        "{usage}"
    );
    // What flatline wrote into the documents holds no dangerous character at all.
    for name in ["done", "failed"] {
        let doc = run.read_json(&format!("delegations/{name}.json"));
        let mut written = Vec::new();
        strings(&doc["worker_result"], &mut written);
        strings(&doc["latest_failure"], &mut written);
        strings(&doc["worker_lifecycle"], &mut written);
        assert!(written.iter().any(|s| s.contains("pwned")), "{name}: {doc}");
        for text in written {
            assert_eq!(raw(&text, false), [], "{name}: {text:?}");
        }
    }
    for format in ["text", "tsv", "json", "ndjson"] {
        let out = status(&run, &["--format", format]);
        assert_eq!(out.code, 3, "{format}: {}", out.stderr);
        assert_eq!(
            raw(&out.stdout, format == "tsv"),
            [],
            "{format}: {}",
            out.stdout
        );
        assert_eq!(raw(&out.stderr, false), [], "{format}: {}", out.stderr);
        assert!(out.stdout.contains("pwned"), "{format}: {}", out.stdout);
    }
    // The json formats escape, and the text reads back exactly.
    let ndjson = status(&run, &["--format", "ndjson"]);
    assert!(
        ndjson.stdout.contains(r"x\u001b]0;pwned\u0007y"),
        "{}",
        ndjson.stdout
    );
    assert!(
        ndjson
            .stdout
            .contains(r"\u202egnp.exe\u2028z\u009b31m\u007f\u061c\u2067end")
    );
    let evil = ndjson.by_id(HOSTILE);
    assert_eq!(evil["work_kind"], HOSTILE);
    let json = status(&run, &["--format", "json"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        doc["errors"][0]["path"].as_str().unwrap().contains(HOSTILE),
        "{doc}"
    );
    // Text and tsv: visible escapes.
    let text = status(&run, &["--format", "text"]);
    assert!(
        text.stdout
            .contains(r"x\x1b]0;pwned\x07y\x1b[2J\u202egnp.exe\u2028z\x9b31m\x7f\u061c\u2067end"),
        "{}",
        text.stdout
    );
    let tsv = status(&run, &["--format", "tsv"]);
    assert!(
        tsv.stdout
            .contains(r"x\x1b]0;pwned\x07y\x1b[2J\u202egnp.exe"),
        "{}",
        tsv.stdout
    );
}

/// A delegation reclaimed by an earlier sweep: state stale, reclaim_state reclaimed.
fn reclaimed(id: &str) -> Value {
    delegation(
        id,
        "running",
        json!({"state": "stale", "reclaim_state": "reclaimed", "last_progress_at": at(-600_000),
               "stale_at": at(-500_000)}),
    )
}

#[test]
fn text_tables_say_reclaimed_and_note_warnings_in_words() {
    let run = Run::new();
    run.delegation("gone", &reclaimed("gone"));
    run.delegation(
        "pid1",
        &delegation(
            "pid1",
            "running",
            json!({"process_id": 1, "last_progress_at": at(-1_000)}),
        ),
    );
    run.delegation(
        "skew",
        &delegation("skew", "running", json!({"last_progress_at": at(30_000)})),
    );
    let out = status(&run, &["--format", "text"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let header = lines[0];
    assert!(
        header.starts_with("DELEGATION  TASK_CARD  STATE   "),
        "{}",
        out.stdout
    );
    assert!(header.contains("  PROGRESS_AGE  PID  "), "{}", out.stdout);
    let note_at = header.find("NOTE").unwrap();
    let row = |id: &str| -> &str {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no {id} in {}", out.stdout))
    };
    assert!(row("gone").contains("  reclaimed  "), "{}", out.stdout);
    assert!(!row("gone").contains("stale"), "{}", out.stdout);
    assert_eq!(&row("pid1")[note_at..], "invalid pid 1", "{}", out.stdout);
    assert_eq!(&row("skew")[note_at..], "clock skew", "{}", out.stdout);
    // The records keep the state the worker was reclaimed in.
    let records = status(&run, &[]);
    assert_fields(
        &records.by_id("gone"),
        json!({"state": "stale", "reclaim_state": "reclaimed"}),
    );
}

#[test]
fn heartbeat_headers_match_their_values() {
    let run = Run::bare();
    let worker = run.path().join("workers/w1");
    std::fs::create_dir_all(&worker).unwrap();
    write_json(
        &worker.join("worker-spec.json"),
        &json!({"name": "w1", "role": "builder", "heartbeat": worker.join("heartbeat.json")}),
    );
    write_json(
        &worker.join("heartbeat.json"),
        &json!({"status": "alive", "name": "w1", "ts": at(-90_000)}),
    );
    let out = status(&run, &["--format", "text"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].contains("  HEARTBEAT_AGE  "), "{}", out.stdout);
    assert!(!lines[0].contains(" AGE_MS"), "{}", out.stdout);
    let at = lines[0].find("HEARTBEAT_AGE").unwrap();
    assert!(lines[1][at..].starts_with("1m30s "), "{}", out.stdout);
}

/// The value of one gauge line, by its full name and labels.
fn gauge(text: &str, series: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .to_string()
}

#[test]
fn prometheus_counts_reclaimed_workers_as_reclaimed_under_the_canonical_run() {
    let run = Run::new();
    run.delegation("gone", &reclaimed("gone"));
    // sweep signals only on its own clock: "stuck" is stale by the real one.
    run.delegation(
        "stuck",
        &delegation(
            "stuck",
            "running",
            json!({"last_progress_at": rfc3339(real_now_ms() - 50_000)}),
        ),
    );
    // The run named through a detour: the label is still its canonical path.
    let detour = run.path().join("delegations/..");
    let canonical = std::fs::canonicalize(run.path()).unwrap();
    let label = canonical.to_string_lossy();
    let metrics = |command: &str| {
        flatline([
            OsStr::new(command),
            OsStr::new("--format=prometheus"),
            detour.as_os_str(),
        ])
    };
    let out = metrics("status");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let state = |out: &Outcome, state: &str| {
        gauge(
            &out.stdout,
            &format!("flatline_delegations{{run=\"{label}\",state=\"{state}\"}}"),
        )
    };
    assert_eq!(state(&out, "reclaimed"), "1", "{}", out.stdout);
    assert_eq!(state(&out, "stale"), "1", "{}", out.stdout);
    assert!(!out.stdout.contains("delegations/.."), "{}", out.stdout);
    // The sweep reclaims the stuck worker (no process to signal): the stale gauge clears in
    // the sweep's own metrics and in every status after it.
    let out = metrics("sweep");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(state(&out, "reclaimed"), "2", "{}", out.stdout);
    assert_eq!(state(&out, "stale"), "0", "{}", out.stdout);
    assert_eq!(state(&out, "timed_out"), "0", "{}", out.stdout);
    let out = metrics("status");
    assert_eq!(state(&out, "reclaimed"), "2", "{}", out.stdout);
    assert_eq!(state(&out, "stale"), "0", "{}", out.stdout);
    assert_eq!(
        gauge(
            &out.stdout,
            &format!("flatline_delegations_reclaim_needed{{run=\"{label}\"}}")
        ),
        "0"
    );
}

/// `flatline sweep --format=ndjson [extra] RUN`.
fn sweep(run: &Run, extra: &[&str]) -> Outcome {
    let mut args: Vec<&OsStr> = vec![OsStr::new("sweep"), OsStr::new("--format=ndjson")];
    args.extend(extra.iter().map(OsStr::new));
    args.push(run.arg());
    flatline(args)
}

fn reported_problems(run: &Run) -> Value {
    let path = run.path().join(".flatline/state.json");
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).unwrap()["reported_problems"].clone(),
        Err(_) => Value::Null,
    }
}

/// Every running worker whose recorded progress is not from this very millisecond is stuck.
const STUCK: &str = "--stale-after=1ms";

/// The records of skipped reclaims.
fn skipped(out: &Outcome) -> Vec<Value> {
    out.records()
        .into_iter()
        .filter(|r| r["action"] == "skipped")
        .collect()
}

/// A stuck worker sweep must never signal: its (live, verified) process is root's, its
/// delegation another user's (the confused-deputy guard). A problem that stands until a
/// person acts. `None` when the test cannot take another user's identity.
fn unreclaimable(run: &Run, id: &str, child: &Proc) -> Option<()> {
    if !is_root() {
        return None;
    }
    // Recorded as the child started; stuck by `STUCK`, not by age.
    let now = real_now_ms();
    let started = rfc3339(now);
    let path = run.delegation(
        id,
        &delegation(
            id,
            "running",
            json!({"process_id": child.pid(), "launch_requested_at": rfc3339(now - 1_000),
                   "started_at": started, "process_started_at": started,
                   "last_progress_at": started}),
        ),
    );
    std::os::unix::fs::lchown(&path, Some(65534), Some(65534)).unwrap();
    Some(())
}

#[test]
fn sweep_prints_a_standing_problem_once_and_again_when_it_returns() {
    let run = Run::new();
    let child = Proc::sleep();
    if unreclaimable(&run, "stuck", &child).is_none() {
        return;
    }
    let first = sweep(&run, &[STUCK]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert_eq!(skipped(&first).len(), 1, "{}", first.stdout);
    assert_fields(
        &skipped(&first)[0],
        json!({"kind": "action", "action": "skipped", "delegation_id": "stuck",
               "termination": "skipped_foreign"}),
    );
    assert_eq!(
        reported_problems(&run),
        json!({"delegations/stuck.json": {"action": "skipped", "termination": "skipped_foreign",
               "process_id": child.pid()}})
    );
    // Standing: not printed again, but the exit status still says a person is needed.
    let second = sweep(&run, &[STUCK]);
    assert_eq!(
        (second.code, second.stdout.as_str()),
        (1, ""),
        "{}",
        second.stderr
    );
    // --all prints it.
    let all = sweep(&run, &[STUCK, "--all"]);
    assert_eq!(all.code, 1, "{}", all.stderr);
    assert_eq!(skipped(&all).len(), 1, "{}", all.stdout);
    // Gone (the operator finished it): forgotten, so its return is news again.
    let mut finished = delegation("stuck", "failed", json!({}));
    finished["task_card_id"] = Value::Null;
    run.delegation("stuck", &finished);
    let settled = sweep(&run, &[STUCK]);
    assert_eq!(
        (settled.code, settled.stdout.as_str()),
        (0, ""),
        "{}",
        settled.stderr
    );
    assert_eq!(reported_problems(&run), Value::Null);
    unreclaimable(&run, "stuck", &child);
    let back = sweep(&run, &[STUCK]);
    assert_eq!(back.code, 1, "{}", back.stderr);
    assert_eq!(skipped(&back).len(), 1, "{}", back.stdout);
    // The worker was never signalled.
    assert!(Path::new(&format!("/proc/{}", child.pid())).exists());
}

#[test]
fn a_dry_run_sweep_remembers_nothing() {
    let run = Run::new();
    let child = Proc::sleep();
    if unreclaimable(&run, "stuck", &child).is_none() {
        return;
    }
    for _ in 0..2 {
        let out = sweep(&run, &[STUCK, "--dry-run"]);
        assert_eq!(skipped(&out).len(), 1, "{}", out.stdout);
    }
    assert!(!run.path().join(".flatline").exists());
}

#[test]
fn sweep_prints_a_blocked_card_once_and_a_settled_run_prints_nothing() {
    let run = Run::new();
    let mut odd = delegation("odd", "paused", json!({}));
    odd["task_card_id"] = json!("c-odd");
    run.delegation("odd", &odd);
    let mut waiting = delegation(
        "busy",
        "running",
        json!({"last_progress_at": rfc3339(real_now_ms())}),
    );
    waiting["task_card_id"] = json!("c-busy");
    run.delegation("busy", &waiting);
    let mut done = delegation("done", "completed", json!({}));
    done["task_card_id"] = json!("c-done");
    run.delegation("done", &done);
    let first = sweep(&run, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let cards: Vec<(Value, Value)> = first
        .records()
        .iter()
        .map(|r| (r["task_card_id"].clone(), r["outcome"].clone()))
        .collect();
    // The collapse and the card a status blocks; not the card simply not ready yet.
    assert_eq!(
        cards,
        [
            (json!("c-done"), json!("collapsed")),
            (json!("c-odd"), Value::Null)
        ],
        "{}",
        first.stdout
    );
    let blocked = first.records()[1].clone();
    assert_eq!(blocked["ready"], false);
    assert!(
        blocked["warnings"]
            .as_array()
            .is_some_and(|w| !w.is_empty()),
        "{blocked}"
    );
    // Nothing changed: nothing printed, and state.json not rewritten.
    let state = std::fs::read(run.path().join(".flatline/state.json")).unwrap();
    let second = sweep(&run, &[]);
    assert_eq!(
        (second.code, second.stdout.as_str()),
        (0, ""),
        "{}",
        second.stderr
    );
    assert_eq!(
        std::fs::read(run.path().join(".flatline/state.json")).unwrap(),
        state
    );
    // --all shows every card: blocked, not ready, already collapsed.
    let all = sweep(&run, &["--all"]);
    let outcomes: Vec<(Value, Value)> = all
        .records()
        .iter()
        .map(|r| (r["task_card_id"].clone(), r["ready"].clone()))
        .collect();
    assert_eq!(outcomes.len(), 3, "{}", all.stdout);
    // --all is sweep's alone.
    let status = flatline([OsStr::new("status"), OsStr::new("--all"), run.arg()]);
    assert_eq!(status.code, 2, "{}", status.stderr);
}

/// The peak resident set of one run of the binary, in KiB: measured by a python parent
/// (getrusage of its only child), so the test's other children do not count.
fn peak_rss_kib(args: &[&OsStr]) -> Option<u64> {
    let script = "import resource, subprocess, sys\n\
                  subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let out = run_command(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(bin())
            .args(args),
        HANG_GUARD,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.trim().parse().ok()
}

/// A run of `n` delegations of about 2 KB each.
fn many(n: usize) -> Run {
    let run = Run::new();
    let padding = "p".repeat(1_500);
    for i in 0..n {
        let id = format!("d{i:06}");
        let mut doc = delegation(&id, "running", json!({"last_progress_at": at(-50_000)}));
        doc["notes"] = json!(padding);
        doc["summary"] = json!(format!("delegation number {i}"));
        run.delegation(&id, &doc);
    }
    run
}

/// Text and tsv hold a bounded window of rows, not every record (issue 12 class 11): from
/// 2,000 to 20,000 delegations the peak memory grows by far less than the ~5 KB per record
/// that keeping them cost (90 MB here). No timing involved.
#[test]
fn text_and_tsv_memory_is_flat_in_the_number_of_delegations() {
    if !have("python3") {
        return;
    }
    let small = many(2_000);
    let large = many(20_000);
    for format in ["--format=text", "--format=tsv", "--format=ndjson"] {
        let rss = |run: &Run| {
            peak_rss_kib(&[
                OsStr::new("status"),
                OsStr::new(format),
                OsStr::new("--now"),
                OsStr::new(NOW),
                run.arg(),
            ])
            .unwrap()
        };
        let (small_kib, large_kib) = (rss(&small), rss(&large));
        let growth = large_kib.saturating_sub(small_kib);
        // The file names of the listing (about 100 bytes each) and allocator slack.
        assert!(
            growth < 12 * 1024,
            "{format}: {small_kib} KiB for 2,000 files, {large_kib} KiB for 20,000"
        );
    }
}

#[test]
fn output_dash_is_stdout() {
    let run = Run::new();
    run.delegation(
        "a",
        &delegation("a", "running", json!({"last_progress_at": at(-1_000)})),
    );
    let plain = status(&run, &[]);
    let dash = status(&run, &["--output", "-"]);
    assert_eq!(dash.code, 0, "{}", dash.stderr);
    assert_eq!(dash.stdout, plain.stdout);
    assert!(!Path::new("-").exists());
    assert!(!run.path().join("-").exists());
}
