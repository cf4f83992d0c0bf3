use super::lines::{LineSink, LineSplitter, READ_CHUNK, find_newline};
use super::stream::{THREAD_ID_MAX, USAGE_MAX_BYTES};
use super::*;
use crate::core::text::{ASSISTANT_PREVIEW_MAX, RAW_PREVIEW_MAX};
use std::io::{self, Read};
use std::path::Path;

fn digest_str(stream: &str) -> Digest {
    digest(stream.as_bytes()).unwrap()
}

fn lines(lines: &[&str]) -> String {
    let mut stream = lines.join("\n");
    stream.push('\n');
    stream
}

fn reason(d: &Digest) -> Option<&'static str> {
    verdict(d).reason
}

/// Checks every stream listed in a directory's EXPECTED.tsv, and that every stream there
/// is listed.
fn check_expected(dir: &Path) {
    let table = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut listed = Vec::new();
    for row in table
        .lines()
        .filter(|row| !row.starts_with('#') && !row.is_empty())
    {
        let columns: Vec<&str> = row.split('\t').collect();
        let [file, format, terminal, status, thread_id, has_text, reason] = columns[..] else {
            panic!("{}: bad row {row:?}", dir.display());
        };
        listed.push(file.to_owned());
        let file_digest = digest(std::fs::File::open(dir.join(file)).unwrap()).unwrap();
        let found_verdict = verdict(&file_digest);
        let found = [
            file_digest.format.map_or("-", Format::as_str),
            match &file_digest.terminal {
                None => "none",
                Some(t) if t.outcome == Outcome::Success => "success",
                Some(_) => "failure",
            },
            found_verdict.status_name(),
            file_digest.thread_id.as_deref().unwrap_or("-"),
            if file_digest.final_text.is_some() {
                "yes"
            } else {
                "no"
            },
            found_verdict.reason.unwrap_or("-"),
        ];
        assert_eq!(
            found,
            [format, terminal, status, thread_id, has_text, reason],
            "{file}: {file_digest:#?}"
        );
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let is_stream = name.ends_with(".jsonl") || name.ends_with(".log");
        assert!(
            !is_stream || listed.contains(&name),
            "{name} not in EXPECTED.tsv"
        );
    }
}

#[test]
fn shared_captures_reach_their_expected_verdicts() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/agent-streams"
    ));
    if !dir.is_dir() {
        eprintln!(
            "note: {} is absent; shared captures not checked",
            dir.display()
        );
        return;
    }
    check_expected(dir);
}

#[test]
fn own_fixture_streams_reach_their_expected_verdicts() {
    check_expected(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/streams"
    )));
}

#[test]
fn turn_failed_after_an_error_line_is_an_execution_failure() {
    let d = digest_str(&lines(&[
        r#"{"type":"thread.started","thread_id":"t-1"}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"error","message":"model overloaded"}"#,
        r#"{"type":"turn.failed","error":{"message":"model overloaded, giving up"}}"#,
    ]));
    let terminal = d.terminal.clone().unwrap();
    assert_eq!(terminal.event, "turn.failed");
    assert_eq!(terminal.outcome, Outcome::Failure);
    assert!(!terminal.interrupted);
    assert_eq!(
        terminal.message.as_deref(),
        Some("model overloaded, giving up")
    );
    assert!(!d.failure_observed);
    assert_eq!(
        verdict(&d),
        Verdict {
            status: Outcome::Failure,
            reason: Some("execution_failed")
        }
    );
}

#[test]
fn reconnecting_errors_then_turn_completed_is_completed() {
    let d = digest_str(&lines(&[
        r#"{"type":"thread.started","thread_id":"t-2"}"#,
        r#"{"type":"error","message":"Reconnecting... 1/5"}"#,
        r#"{"type":"error","message":"Reconnecting... 2/5"}"#,
        r#"{"type":"item.completed","item":{"type":"agent_message","text":"done"}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":2}}"#,
    ]));
    assert!(d.failure_observed);
    assert_eq!(d.format, Some(Format::Codex));
    assert_eq!(d.final_text.as_deref(), Some("done"));
    assert_eq!(
        d.usage,
        Some(serde_json::json!({"input_tokens":1,"output_tokens":2}))
    );
    assert_eq!(verdict(&d).status, Outcome::Success);
    assert_eq!(verdict_with_exit(&d, Some(1)).status, Outcome::Success);
}

#[test]
fn error_lines_set_no_format() {
    let d = digest_str(&lines(&[
        r#"{"type":"error","message":"Reconnecting... 2/5"}"#,
    ]));
    assert_eq!(d.format, None);
    assert!(d.failure_observed);
    assert_eq!(d.json_lines, 1);
    assert_eq!(reason(&d), Some("execution_failed"));
}

#[test]
fn claude_success_with_is_error_is_a_failure() {
    let d = digest_str(&lines(&[
        r#"{"type":"system","subtype":"init","session_id":"s-1"}"#,
        r#"{"type":"assistant","message":{"content":[{"type":"text","text":"partial"}]}}"#,
        r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 500"}"#,
    ]));
    let terminal = d.terminal.clone().unwrap();
    assert_eq!(terminal.outcome, Outcome::Failure);
    assert!(!terminal.interrupted);
    assert_eq!(terminal.message.as_deref(), Some("API Error: 500"));
    // The error text is not the answer.
    assert_eq!(d.final_text.as_deref(), Some("partial"));
    assert_eq!(reason(&d), Some("execution_failed"));
}

#[test]
fn claude_result_without_is_error_counts_as_not_error() {
    let d = digest_str(r#"{"type":"result","subtype":"success","result":"ok"}"#);
    assert_eq!(d.terminal.unwrap().outcome, Outcome::Success);
    assert_eq!(d.final_text.as_deref(), Some("ok"));
}

#[test]
fn claude_last_result_wins() {
    let d = digest_str(&lines(&[
        r#"{"type":"system","subtype":"init","session_id":"s-1"}"#,
        r#"{"type":"assistant","message":{"content":[{"type":"text","text":"one"}]}}"#,
        r#"{"type":"result","subtype":"success","is_error":false,"result":"one"}"#,
        r#"{"type":"assistant","message":{"content":[{"type":"text","text":"two"}]}}"#,
        r#"{"type":"result","subtype":"error_max_turns","is_error":true,"errors":["too many turns"]}"#,
    ]));
    let terminal = d.terminal.clone().unwrap();
    assert_eq!(terminal.outcome, Outcome::Failure);
    assert_eq!(terminal.message.as_deref(), Some("too many turns"));
    assert_eq!(d.final_text.as_deref(), Some("two"));
    assert_eq!(verdict(&d).status, Outcome::Failure);
    assert_eq!(reason(&d), Some("execution_failed"));
}

#[test]
fn claude_interrupt_is_interrupted_and_joins_errors() {
    let d = digest_str(&lines(&[
        r#"{"type":"result","subtype":"error_during_execution","is_error":false,"errors":["Error: one\n  at x","Error: two"]}"#,
    ]));
    let terminal = d.terminal.clone().unwrap();
    assert!(terminal.interrupted);
    assert_eq!(
        terminal.message.as_deref(),
        Some("Error: one at x Error: two")
    );
    assert_eq!(reason(&d), Some("interrupted"));
    // A recorded non-zero exit code outranks the interruption.
    assert_eq!(
        verdict_with_exit(&d, Some(137)).reason,
        Some("execution_failed")
    );
}

#[test]
fn claude_failed_result_text_is_checked_for_transport_failures() {
    let d = digest_str(
        r#"{"type":"result","subtype":"error_during_execution","errors":["Error: getaddrinfo: dns error"]}"#,
    );
    assert!(d.failure_observed);
    assert_eq!(reason(&d), Some("execution_failed"));
}

#[test]
fn transport_words_in_assistant_text_or_tool_output_are_not_failures() {
    let d = digest_str(&lines(&[
        r#"{"type":"thread.started","thread_id":"t-3"}"#,
        r#"{"type":"item.completed","item":{"type":"command_execution","aggregated_output":"fatal: websocket closed"}}"#,
        r#"{"type":"item.completed","item":{"type":"agent_message","text":"I fixed the websocket reconnect; it failed to connect before."}}"#,
        r#"{"type":"turn.completed","usage":{}}"#,
    ]));
    assert!(!d.failure_observed);
    assert_eq!(verdict(&d).status, Outcome::Success);
}

#[test]
fn transport_failure_patterns() {
    assert!(has_transport_failure("Reconnecting... 2/5"));
    assert!(has_transport_failure("error: FAILED TO CONNECT to host"));
    assert!(has_transport_failure("x\nwebsocket closed"));
    assert!(has_transport_failure("git fatal: bad object"));
    assert!(has_transport_failure(
        "stream disconnected before completion"
    ));
    assert!(has_transport_failure("failed to connect"));
    assert!(!has_transport_failure("failed to connected"));
    assert!(!has_transport_failure("mywebsocket"));
    assert!(!has_transport_failure("reconnecting.. 1/5"));
    assert!(!has_transport_failure(""));
    assert!(has_transport_failure("fatal: not a git repository"));
    assert!(has_transport_failure("[fatal: x]"));
    assert!(!has_transport_failure(
        "Error: NON-FATAL: Lock acquisition failed"
    ));
    assert!(!has_transport_failure("nonfatal: x"));
}

#[test]
fn non_json_output_only_is_invalid_output() {
    let d = digest_str("\n  first   line \r\n\nsecond\tline\n{not json\nfourth\nfifth\n");
    assert_eq!(d.raw_preview, "first line second line {not json fourth");
    assert_eq!(d.lines, 5);
    assert_eq!(d.json_lines, 0);
    assert_eq!(d.format, None);
    assert_eq!(
        verdict(&d),
        Verdict {
            status: Outcome::Failure,
            reason: Some("invalid_output")
        }
    );
}

#[test]
fn non_json_transport_failure_is_observed() {
    let d = digest_str("ERROR: error sending request for url\n");
    assert!(d.failure_observed);
    assert_eq!(reason(&d), Some("execution_failed"));
}

#[test]
fn json_values_that_are_not_objects_are_raw_lines() {
    let d = digest_str("[1,2]\n\"text\"\n42\n");
    assert_eq!(d.json_lines, 0);
    assert_eq!(d.raw_preview, "[1,2] \"text\" 42");
}

#[test]
fn empty_stream_is_unknown() {
    let d = digest_str("");
    assert_eq!(d, Digest::default());
    assert_eq!(
        verdict(&d),
        Verdict {
            status: Outcome::Failure,
            reason: Some("unknown")
        }
    );
    let blank = digest_str("\n \r\n\t\n");
    assert_eq!(blank.lines, 0);
    assert_eq!(blank.bytes, 6);
    assert_eq!(reason(&blank), Some("invalid_output"));
}

#[test]
fn over_long_line_is_skipped_and_following_lines_are_read() {
    let long = format!(
        r#"{{"type":"item.completed","item":{{"text":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let d = digest_with_limit(
        lines(&[
            r#"{"type":"thread.started","thread_id":"t-4"}"#,
            &long,
            r#"{"type":"turn.completed"}"#,
        ])
        .as_bytes(),
        100,
    )
    .unwrap();
    assert_eq!(d.skipped_lines, 1);
    assert_eq!(d.lines, 3);
    assert_eq!(d.json_lines, 2);
    assert_eq!(d.thread_id.as_deref(), Some("t-4"));
    assert_eq!(d.terminal.unwrap().event, "turn.completed");
    assert_eq!(d.raw_preview, "");
}

#[test]
fn line_of_exactly_the_limit_is_read() {
    let line = r#"{"type":"turn.completed"}"#;
    let d = digest_with_limit(line.as_bytes(), line.len()).unwrap();
    assert_eq!(d.skipped_lines, 0);
    assert!(d.terminal.is_some());
    let d = digest_with_limit(line.as_bytes(), line.len() - 1).unwrap();
    assert_eq!(d.skipped_lines, 1);
    assert!(d.terminal.is_none());
}

/// A stream of one enormous line, produced on the fly so that the test itself holds
/// none of it.
struct HugeLine {
    left: u64,
}

impl Read for HugeLine {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].fill(b'a');
        self.left -= n as u64;
        if self.left == 0 {
            buf[n - 1] = b'\n';
        }
        Ok(n)
    }
}

/// Counts what the splitter hands over, and watches its line buffer.
#[derive(Default)]
struct Recorder {
    lines: Vec<usize>,
    skipped: usize,
}

impl LineSink for Recorder {
    fn line(&mut self, line: &[u8]) {
        self.lines.push(line.len());
    }

    fn skipped_line(&mut self) {
        self.skipped += 1;
    }
}

#[test]
fn over_long_line_is_never_held() {
    let max_line = 4096;
    let mut splitter = LineSplitter::new(max_line);
    let mut recorder = Recorder::default();
    let mut source = HugeLine { left: 64 << 20 };
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = source.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        // Small pieces make the start of the line wait in the buffer up to the limit.
        for piece in chunk[..n].chunks(1000) {
            splitter.feed(piece, &mut recorder);
            assert!(splitter.pending.capacity() <= 2 * max_line);
        }
    }
    splitter.feed(b"short\n", &mut recorder);
    splitter.finish(&mut recorder);
    assert_eq!(recorder.skipped, 1);
    assert_eq!(recorder.lines, vec![5]);

    let d = digest_with_limit(HugeLine { left: 64 << 20 }, max_line).unwrap();
    assert_eq!((d.bytes, d.lines, d.skipped_lines), (64 << 20, 1, 1));
}

#[test]
fn lines_straddling_reads_are_joined() {
    // A reader that returns one byte at a time puts every line across reads.
    struct ByteAtATime<'a>(&'a [u8]);
    impl Read for ByteAtATime<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }
    let stream = lines(&[
        r#"{"type":"thread.started","thread_id":"t-5"}"#,
        r#"{"type":"turn.completed"}"#,
    ]);
    let d = digest_with_limit(ByteAtATime(stream.as_bytes()), 100).unwrap();
    assert_eq!(d.thread_id.as_deref(), Some("t-5"));
    assert_eq!(d.json_lines, 2);
    let d = digest_with_limit(ByteAtATime(stream.as_bytes()), 30).unwrap();
    assert_eq!((d.skipped_lines, d.json_lines), (1, 1));
}

#[test]
fn previews_cut_at_scalar_values_and_drop_controls() {
    let text = format!("\u{1b}[31m{}", "é🙂".repeat(200));
    let line =
        serde_json::json!({"type":"item.completed","item":{"type":"agent_message","text":text}});
    let d = digest_str(&line.to_string());
    let final_text = d.final_text.unwrap();
    assert_eq!(final_text.chars().count(), ASSISTANT_PREVIEW_MAX);
    assert!(final_text.starts_with("[31mé🙂"));
    assert!(final_text.ends_with("..."));

    let exact = "ü".repeat(ASSISTANT_PREVIEW_MAX);
    let line = serde_json::json!({"role":"assistant","content":exact});
    assert_eq!(digest_str(&line.to_string()).final_text.unwrap(), exact);

    let raw = format!("\u{7}{}\n", "日本".repeat(200));
    let d = digest_str(&raw);
    assert_eq!(d.raw_preview.chars().count(), RAW_PREVIEW_MAX);
    assert!(d.raw_preview.starts_with("日本"));
    assert!(d.raw_preview.ends_with("..."));
    let exact = "ß".repeat(RAW_PREVIEW_MAX);
    assert_eq!(digest_str(&exact).raw_preview, exact);

    let failure = format!("{}\u{0}", "ø".repeat(300));
    let line = serde_json::json!({"type":"turn.failed","error":{"message":failure}});
    let message = digest_str(&line.to_string())
        .terminal
        .unwrap()
        .message
        .unwrap();
    assert_eq!(message.chars().count(), RAW_PREVIEW_MAX);
}

#[test]
fn thread_id_is_cleaned_and_bounded() {
    let id = format!("ab\u{0}c\u{1b}{}", "z".repeat(400));
    let line = serde_json::json!({"type":"thread.started","thread_id":id});
    let thread_id = digest_str(&line.to_string()).thread_id.unwrap();
    assert!(thread_id.starts_with("abcz"));
    assert_eq!(thread_id.chars().count(), THREAD_ID_MAX);
    // The last id wins.
    let d = digest_str(&lines(&[
        r#"{"type":"thread.started","thread_id":"first"}"#,
        r#"{"type":"system","subtype":"init","session_id":"second"}"#,
        r#"{"type":"assistant","session_id":"second"}"#,
    ]));
    assert_eq!(d.thread_id.as_deref(), Some("second"));
}

#[test]
fn mixed_codex_and_claude_keeps_the_first_format() {
    let d = digest_str(&lines(&[
        r#"{"type":"thread.started","thread_id":"t-6"}"#,
        r#"{"type":"system","subtype":"init","session_id":"s-6"}"#,
        r#"{"type":"turn.completed"}"#,
    ]));
    assert_eq!(d.format, Some(Format::Codex));
    assert!(d.mixed_formats);
    let same = digest_str(&lines(&[
        r#"{"type":"thread.started","thread_id":"t-6"}"#,
        r#"{"type":"turn.completed"}"#,
    ]));
    assert!(!same.mixed_formats);
}

#[test]
fn generic_never_counts_as_a_second_format() {
    let d = digest_str(&lines(&[
        r#"{"message":{"role":"assistant","content":"generic first"}}"#,
        r#"{"role":"assistant","content":"kimi"}"#,
        r#"{"usage":{"input_tokens":1}}"#,
    ]));
    assert_eq!(d.format, Some(Format::Kimi));
    assert!(!d.mixed_formats);
    assert_eq!(d.final_text.as_deref(), Some("kimi"));
}

#[test]
fn wrong_typed_fields_are_ignored_not_fatal() {
    let d = digest_str(&lines(&[
        r#"{"type":"thread.started","thread_id":7}"#,
        r#"{"type":"item.completed","item":"x"}"#,
        r#"{"type":"item.completed","item":{"type":["agent_message"],"text":{"a":1}}}"#,
        r#"{"type":"item.completed","item":1.5e300}"#,
        r#"{"type":"item.completed","item":123456789012345678901234567890}"#,
        r#"{"type":"assistant","message":{"content":5}}"#,
        r#"{"type":"assistant","message":{"content":[5,"x",{"type":"text","text":null},{"type":"text","text":"kept"}]}}"#,
        r#"{"type":"result","subtype":7,"is_error":"yes","result":["x"],"errors":{"a":1},"usage":[1]}"#,
        r#"{"role":"assistant","content":{"text":"x"}}"#,
        r#"{"type":9,"usage":1.25,"response":"x","payload":[{}]}"#,
        r#"{"type":"turn.failed","error":12}"#,
    ]));
    assert_eq!(d.json_lines, 11);
    assert_eq!(d.raw_preview, "");
    assert_eq!(d.thread_id, None);
    assert_eq!(d.final_text.as_deref(), Some("kept"));
    assert_eq!(d.usage, None);
    let terminal = d.terminal.unwrap();
    assert_eq!(terminal.event, "turn.failed");
    assert_eq!(terminal.message, None);
}

#[test]
fn duplicate_keys_are_json_but_unread() {
    let d = digest_str(r#"{"type":"turn.completed","type":"turn.failed"}"#);
    assert_eq!((d.json_lines, d.raw_preview.as_str()), (1, ""));
}

#[test]
fn deep_nesting_does_not_crash() {
    let brackets = "[".repeat(100_000);
    let d = digest_str(&lines(&[
        &brackets,
        &format!(r#"{{"type":{brackets}"#),
        &format!(r#"{{"x":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000)),
        r#"{"type":"turn.completed"}"#,
    ]));
    assert_eq!(d.lines, 4);
    assert!(d.json_lines >= 1);
    assert_eq!(d.terminal.unwrap().event, "turn.completed");
    assert!(d.raw_preview.starts_with("[[[["));
}

#[test]
fn last_line_without_newline_and_crlf_are_read() {
    let d = digest_str(
        "{\"type\":\"thread.started\",\"thread_id\":\"t-7\"}\r\n{\"type\":\"turn.completed\"}",
    );
    assert_eq!(d.thread_id.as_deref(), Some("t-7"));
    assert_eq!(d.terminal.unwrap().event, "turn.completed");
    assert_eq!(d.json_lines, 2);
    let raw = digest_str("plain\r\nline\r");
    assert_eq!(raw.raw_preview, "plain line");
}

#[test]
fn invalid_utf8_is_a_raw_line_previewed_lossily() {
    let mut stream = b"{\"type\":\"turn.completed\",\"x\":\"\xff\"}\n".to_vec();
    stream.extend_from_slice(b"bad \xc3\x28 byte\n");
    let d = digest(&stream[..]).unwrap();
    assert_eq!(d.json_lines, 0);
    assert!(d.terminal.is_none());
    assert_eq!(d.lines, 2);
    assert!(d.raw_preview.contains('\u{fffd}'));
    assert!(d.raw_preview.ends_with("bad \u{fffd}( byte"));
}

#[test]
fn gemini_deltas_are_concatenated() {
    let d = digest_str(&lines(&[
        r#"{"type":"init","session_id":"g-1"}"#,
        r#"{"type":"message","role":"assistant","content":"Hel","delta":true}"#,
        r#"{"type":"message","role":"assistant","content":"lo wor","delta":true}"#,
        r#"{"type":"message","role":"assistant","content":"ld","delta":true}"#,
        r#"{"type":"result","status":"success","stats":{"total_tokens":3}}"#,
    ]));
    assert_eq!(d.final_text.as_deref(), Some("Hello world"));
    assert_eq!(d.usage, Some(serde_json::json!({"total_tokens":3})));
    assert_eq!(d.thread_id.as_deref(), Some("g-1"));

    let d = digest_str(&lines(&[
        r#"{"type":"message","role":"assistant","content":"old","delta":true}"#,
        r#"{"type":"tool_use","tool_name":"x"}"#,
        r#"{"type":"message","role":"assistant","content":"new","delta":true}"#,
        r#"{"type":"message","role":"assistant","content":"whole"}"#,
    ]));
    assert_eq!(d.final_text.as_deref(), Some("whole"));
    assert_eq!(reason(&d), Some("interrupted"));
}

#[test]
fn a_stream_digest_takes_holes_and_a_gap() {
    let feed = |pieces: &dyn Fn(&mut StreamDigest)| {
        let mut digest = StreamDigest::new(64);
        pieces(&mut digest);
        digest.finish()
    };
    // A short hole inside a line is its NUL bytes; a long one makes the line too long.
    let d = feed(&|d| {
        d.data(b"ab");
        d.hole(10);
        d.data(b"cd\n{\"type\":\"turn.completed\"}\n");
    });
    assert_eq!((d.lines, d.skipped_lines, d.bytes), (2, 0, 41));
    assert!(d.raw_preview.starts_with("ab"));
    let d = feed(&|d| {
        d.data(b"ab");
        d.hole(1 << 40);
        d.data(b"cd\n{\"type\":\"turn.completed\"}\n");
    });
    assert_eq!((d.lines, d.skipped_lines), (2, 1));
    assert!(d.terminal.is_some());
    // The gap drops the head's unfinished line and the tail's partial first line.
    let d = feed(&|d| {
        d.data(b"{\"type\":\"thread.started\",\"thread_id\":\"t\"}\nhead cut");
        d.gap(1000, false);
        d.data(b"tail cut\n{\"type\":\"turn.completed\"}\n");
    });
    assert_eq!((d.lines, d.raw_preview.as_str()), (2, ""));
    assert_eq!((d.truncated, d.skipped_bytes), (true, 1000));
    assert_eq!(d.thread_id.as_deref(), Some("t"));
    // A tail that starts on a line keeps that line.
    let d = feed(&|d| {
        d.data(b"whole head\n");
        d.gap(5, true);
        d.data(b"whole tail\n");
    });
    assert_eq!(d.raw_preview, "whole head whole tail");
}

#[test]
fn a_bare_message_object_identifies_no_format() {
    // The seeds' orchestrator writes `{"type":"message"}` markers into streams of any
    // agent: they must not make a Claude or Kimi stream "gemini" or mixed.
    let d = digest_str(&lines(&[r#"{"type":"message"}"#]));
    assert_eq!(d.format, None);
    assert!(!d.mixed_formats);
    assert_eq!(d.json_lines, 1);
    let d = digest_str(&lines(&[
        r#"{"type":"message","id":7}"#,
        r#"{"type":"system","subtype":"init","session_id":"s-1"}"#,
        r#"{"type":"message"}"#,
        r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#,
    ]));
    assert_eq!(d.format, Some(Format::Claude));
    assert!(!d.mixed_formats);
    // With a role or content it is Gemini's message.
    let d = digest_str(&lines(&[r#"{"type":"message","role":"user"}"#]));
    assert_eq!(d.format, Some(Format::Gemini));
    let d = digest_str(&lines(&[r#"{"type":"message","content":"hi"}"#]));
    assert_eq!(d.format, Some(Format::Gemini));
}

#[test]
fn gemini_error_result_and_warning() {
    let d = digest_str(&lines(&[
        r#"{"type":"error","severity":"warning","message":"websocket reset"}"#,
        r#"{"type":"result","status":"error","error":{"message":"quota exhausted"}}"#,
    ]));
    assert_eq!(d.format, Some(Format::Gemini));
    assert!(d.failure_observed);
    let terminal = d.terminal.unwrap();
    assert_eq!(terminal.message.as_deref(), Some("quota exhausted"));
    assert_eq!(terminal.outcome, Outcome::Failure);
}

#[test]
fn usage_at_response_and_payload_usage() {
    let d = digest_str(r#"{"response":{"id":"r","usage":{"input_tokens":4}}}"#);
    assert_eq!(d.usage, Some(serde_json::json!({"input_tokens":4})));
    assert_eq!(d.format, Some(Format::Generic));
    assert_eq!(verdict(&d).status, Outcome::Success);
    let d = digest_str(&lines(&[
        r#"{"usage":{"a":1}}"#,
        r#"{"payload":{"usage":{"output_tokens":9,"big":123456789012345678901234567890}}}"#,
    ]));
    assert_eq!(
        d.usage.unwrap().to_string(),
        r#"{"output_tokens":9,"big":123456789012345678901234567890}"#
    );
}

#[test]
fn huge_usage_is_dropped() {
    let fields: Vec<String> = (0..2000).map(|i| format!("\"field_{i}\":{i}")).collect();
    let huge = format!("{{\"usage\":{{{}}}}}", fields.join(","));
    assert!(huge.len() > USAGE_MAX_BYTES);
    let d = digest_str(&huge);
    assert_eq!(d.usage, None);
    assert_eq!(d.json_lines, 1);
    let d = digest_str(&lines(&[r#"{"usage":{"kept":1}}"#, &huge]));
    assert_eq!(d.usage, Some(serde_json::json!({"kept":1})));
}

#[test]
fn codex_legacy_lines() {
    let d = digest_str(&lines(&[
        r#"{"id":"0","msg":{"type":"session_configured","session_id":"l-1"}}"#,
        r#"{"id":"1","msg":{"type":"stream_error","message":"stream disconnected - retrying"}}"#,
        r#"{"id":"1","msg":{"type":"agent_message","message":"partial"}}"#,
        r#"{"id":"1","msg":{"type":"task_complete","last_agent_message":""}}"#,
    ]));
    assert_eq!(d.format, Some(Format::CodexLegacy));
    assert_eq!(d.thread_id.as_deref(), Some("l-1"));
    assert_eq!(d.final_text.as_deref(), Some("partial"));
    assert!(d.failure_observed);
    assert_eq!(d.terminal.unwrap().event, "task_complete");

    let rollout = digest_str(&lines(&[
        r#"{"type":"session_meta","payload":{"id":"r-1","cwd":"/tmp"}}"#,
        r#"{"type":"response_item","payload":{"type":"message","role":"user","content":[]}}"#,
        r#"{"type":"event_msg","payload":{"type":"agent_message","message":"answer"}}"#,
    ]));
    assert_eq!(rollout.format, Some(Format::CodexLegacy));
    assert_eq!(rollout.thread_id.as_deref(), Some("r-1"));
    assert_eq!(verdict(&rollout).status, Outcome::Success);
    assert_eq!(
        verdict_with_exit(&rollout, Some(2)),
        Verdict {
            status: Outcome::Failure,
            reason: Some("execution_failed")
        }
    );
    assert_eq!(
        verdict_with_exit(&rollout, Some(0)).status,
        Outcome::Success
    );
}

#[test]
fn kimi_without_text_is_invalid_output() {
    let d = digest_str(r#"{"role":"tool","content":"x"}"#);
    assert_eq!(d.format, Some(Format::Kimi));
    assert_eq!(reason(&d), Some("invalid_output"));
}

#[test]
fn escaped_strings_are_read() {
    let d = digest_str(
        r#"{"type":"item.completed","item":{"type":"agent\u005fmessage","text":"a\"b\nc"}}"#,
    );
    assert_eq!(d.final_text.as_deref(), Some("a\"b c"));
}

#[test]
fn format_names() {
    let all = [
        Format::Codex,
        Format::CodexLegacy,
        Format::Claude,
        Format::Gemini,
        Format::Kimi,
        Format::Generic,
    ];
    let names: Vec<&str> = all.iter().map(|f| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "codex",
            "codex-legacy",
            "claude",
            "gemini",
            "kimi",
            "generic"
        ]
    );
    let terminal: Vec<bool> = all.iter().map(|f| f.has_terminal_events()).collect();
    assert_eq!(terminal, [true, false, true, true, false, false]);
}

#[test]
fn find_newline_matches_a_plain_scan() {
    let mut haystack = vec![b'x'; 100];
    assert_eq!(find_newline(&haystack), None);
    for index in [0, 7, 8, 9, 63, 64, 99] {
        haystack.fill(b'x');
        haystack[index] = b'\n';
        if index + 5 < haystack.len() {
            haystack[index + 5] = b'\n';
        }
        assert_eq!(find_newline(&haystack), Some(index));
        assert_eq!(find_newline(&haystack[..index]), None);
    }
    // Bytes next to '\n' in value must not confuse the word test.
    let near = [0x0b, 0x09, 0x8a, 0x0a];
    assert_eq!(find_newline(&near), Some(3));
    let near: Vec<u8> = (0u8..=255).filter(|b| *b != b'\n').collect();
    assert_eq!(find_newline(&near), None);
}
