//! What is kept from the lines: previews, thread ids, the first format, wrong types.

use super::*;

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
