//! Gemini, Kimi and legacy Codex lines, usage, escapes, stream holes, format names.

use super::*;

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
