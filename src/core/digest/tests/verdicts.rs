//! Verdicts: the fixture streams, error and result lines, transport failures.

use super::*;

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
