//! `status --watch DURATION` (SPEC §13) in its ndjson change mode: every record once, then
//! only the records that changed, and exit 0 on SIGTERM.

use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn next_record(lines: &mpsc::Receiver<String>) -> Value {
    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a record from the next iteration");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn watch_prints_what_changed_and_stops_with_zero_on_sigterm() {
    let run = Run::new();
    run.delegation(
        "a",
        &delegation("a", "queued", json!({"queued_at": at(-1_000)})),
    );
    run.delegation(
        "b",
        &delegation(
            "b",
            "running",
            json!({"started_at": at(-5_000), "last_progress_at": at(-1_000)}),
        ),
    );
    let mut child = Command::new(bin())
        .args([
            "status", "--watch", "1s", "--format", "ndjson", "--now", NOW,
        ])
        .arg(run.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    // The first iteration: every record.
    let first: Vec<(String, String)> = (0..2)
        .map(|_| next_record(&lines))
        .map(|r| {
            (
                r["delegation_id"].as_str().unwrap().into(),
                r["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        first,
        [
            ("a".to_string(), "queued".to_string()),
            ("b".to_string(), "running_active".to_string())
        ]
    );
    // One delegation changes: only its record comes again.
    run.delegation(
        "a",
        &delegation("a", "completed", json!({"queued_at": at(-1_000)})),
    );
    let changed = next_record(&lines);
    assert_eq!(changed["delegation_id"], "a", "{changed}");
    assert_eq!(changed["state"], "returned", "{changed}");
    // Nothing else changed: b is not printed again.
    assert!(lines.recv_timeout(Duration::from_millis(2_500)).is_err());
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG_GUARD {
            let _ = child.kill();
            panic!("status --watch did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn color_paints_states_in_text_tables_only_when_asked() {
    let run = Run::new();
    run.delegation(
        "stuck",
        &delegation(
            "stuck",
            "running",
            json!({"started_at": at(-3_600_000), "last_progress_at": at(-3_600_000)}),
        ),
    );
    let dir = run.path().to_str().unwrap();
    let text = |extra: &[&str]| {
        let mut args = vec!["status", "--format", "text", "--now", NOW];
        args.extend_from_slice(extra);
        args.push(dir);
        flatline(args)
    };
    let out = text(&["--color", "always"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("\x1b[31mtimed_out\x1b[0m"),
        "{:?}",
        out.stdout
    );
    // The header is not coloured and the columns stay aligned to the visible text.
    let plain = text(&["--color", "never"]);
    assert!(!plain.stdout.contains('\x1b'), "{:?}", plain.stdout);
    assert_eq!(
        out.stdout.replace("\x1b[31m", "").replace("\x1b[0m", ""),
        plain.stdout
    );
    // auto, off a terminal: plain; ndjson is never coloured.
    assert!(!text(&[]).stdout.contains('\x1b'));
    let ndjson = status(&run, &["--color", "always"]);
    assert!(!ndjson.stdout.contains("\\u001b") && !ndjson.stdout.contains('\x1b'));
}
