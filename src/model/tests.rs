use super::*;
use std::borrow::Cow;

#[test]
fn reads_the_fields_and_skips_the_rest() {
    let text = br#"{
        "delegation_id": "d1",
        "prompt": {"deep": [1, 2, {"x": "y"}]},
        "child_agent": {"status": "running", "other": 1},
        "worker_lifecycle": {"process_id": 4242, "last_progress_at": "2026-11-22T08:00:00Z",
                             "process_fingerprint": {"start_ticks": 12345, "boot_id": "b", "pid_ns": 4026531836}}
    }"#;
    let doc = parse_delegation(text).unwrap();
    assert_eq!(doc.delegation_id.str(), Some("d1"));
    assert_eq!(
        doc.child_agent.value().unwrap().status.str(),
        Some("running")
    );
    let lifecycle = doc.worker_lifecycle.value().unwrap();
    assert_eq!(lifecycle.process_id, Field::Value(4242));
    assert_eq!(
        lifecycle.last_progress_at.str(),
        Some("2026-11-22T08:00:00Z")
    );
    let fingerprint = lifecycle.process_fingerprint.value().unwrap();
    assert_eq!(fingerprint.start_ticks, Field::Value(12345));
    assert_eq!(fingerprint.pid_ns, Field::Value(4_026_531_836));
    assert!(matches!(doc.delegation_id.value(), Some(Cow::Borrowed(_))));
}

#[test]
fn wrong_types_become_warnings_not_failures() {
    let text = br#"{"delegation_id": 7, "child_agent": "running",
        "worker_lifecycle": {"process_id": "12", "last_progress_at": 7, "stale_after_ms": 1.5,
                             "timeout_after_ms": [1], "quiet_after_ms": {"a": 1}, "started_at": true}}"#;
    let doc = parse_delegation(text).unwrap();
    let mut wrong = Vec::new();
    doc.wrong_types(&mut String::new(), &mut wrong);
    let found: Vec<(String, &str)> = wrong.iter().map(|w| (w.path.clone(), w.found)).collect();
    assert_eq!(
        found,
        [
            ("delegation_id".to_string(), "a number"),
            ("child_agent".to_string(), "a string"),
            ("worker_lifecycle.started_at".to_string(), "a boolean"),
            ("worker_lifecycle.process_id".to_string(), "a string"),
            ("worker_lifecycle.last_progress_at".to_string(), "a number"),
            ("worker_lifecycle.quiet_after_ms".to_string(), "an object"),
            (
                "worker_lifecycle.stale_after_ms".to_string(),
                "a number with a fraction or exponent"
            ),
            ("worker_lifecycle.timeout_after_ms".to_string(), "an array"),
        ]
    );
    assert_eq!(wrong[3].expected, "an integer");
}

#[test]
fn big_and_negative_integers() {
    let doc = parse_delegation(
        br#"{"worker_lifecycle": {"process_id": 4294967297, "exit_code": -1, "stale_after_ms": 123456789012345678901234567890}}"#,
    )
    .unwrap();
    let lifecycle = doc.worker_lifecycle.value().unwrap();
    assert_eq!(lifecycle.process_id, Field::Value(4_294_967_297));
    assert_eq!(lifecycle.exit_code, Field::Value(-1));
    assert_eq!(
        lifecycle.stale_after_ms,
        Field::Value(123_456_789_012_345_678_901_234_567_890)
    );
    let huge = parse_delegation(
        br#"{"worker_lifecycle": {"process_id": 1234567890123456789012345678901234567890123}}"#,
    )
    .unwrap();
    assert_eq!(
        huge.worker_lifecycle.value().unwrap().process_id,
        Field::Wrong("an integer out of range")
    );
}

#[test]
fn a_nested_object_given_as_a_number_is_wrong() {
    let doc =
        parse_delegation(br#"{"worker_lifecycle": 1.5, "child_agent": 99999999999999999999999}"#)
            .unwrap();
    assert_eq!(doc.worker_lifecycle.wrong(), Some("a number"));
    assert_eq!(doc.child_agent.wrong(), Some("a number"));
}

#[test]
fn null_is_absent_not_wrong() {
    let doc = parse_delegation(br#"{"task_card_id": null, "worker_lifecycle": null}"#).unwrap();
    assert_eq!(doc.task_card_id, Field::Null);
    assert_eq!(doc.worker_lifecycle.wrong(), None);
    let mut wrong = Vec::new();
    doc.wrong_types(&mut String::new(), &mut wrong);
    assert!(wrong.is_empty());
}

#[test]
fn escaped_strings_are_owned_and_decoded() {
    let doc = parse_delegation(br#"{"delegation_id": "d\u00e9\n"}"#).unwrap();
    assert_eq!(doc.delegation_id.str(), Some("dé\n"));
}

#[test]
fn a_document_that_is_not_an_object_is_refused() {
    assert_eq!(
        parse_delegation(b"[1,2]").unwrap_err(),
        DocError::NotObject("an array")
    );
    assert_eq!(
        parse_delegation(b"null").unwrap_err(),
        DocError::NotObject("null")
    );
}

#[test]
fn invalid_json_says_where_and_what() {
    // Cut inside the string of line 3.
    let truncated = parse_delegation(b"{\n  \"a\": 1,\n  \"b\": \"}")
        .unwrap_err()
        .to_string();
    assert!(
        truncated.starts_with("invalid JSON at line 3 column"),
        "{truncated}"
    );
    let bom = parse_delegation(b"\xEF\xBB\xBF{}").unwrap_err().to_string();
    assert!(bom.contains("byte order mark"), "{bom}");
    let trailing = parse_delegation(b"{} {}").unwrap_err().to_string();
    assert!(trailing.contains("trailing characters"), "{trailing}");
}

#[test]
fn deep_nesting_is_refused_wherever_it_is() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_delegation(deep.as_bytes()).is_err());
    // Skipped values are walked too: deep nesting there is refused at serde_json's
    // limit, before it could exhaust the stack.
    let deep_inside = format!("{{\"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_delegation(deep_inside.as_bytes()).is_err());
    let deep_field = format!(
        "{{\"child_agent\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse_delegation(deep_field.as_bytes()).is_err());
}

#[test]
fn invalid_utf8_and_control_characters_are_refused() {
    let utf8 = parse_delegation(b"{\"a\": \"\xff\"}")
        .unwrap_err()
        .to_string();
    assert_eq!(utf8, "invalid UTF-8 at byte 7");
    assert!(parse_delegation(b"{\"a\": \"x\0y\"}").is_err());
}

/// The error of a document that must be refused, as text.
fn refused(text: &str) -> String {
    let error = parse_delegation(text.as_bytes())
        .err()
        .unwrap_or_else(|| panic!("accepted: {text}"))
        .to_string();
    let card = check_document(text.as_bytes())
        .err()
        .unwrap_or_else(|| panic!("accepted as a card: {text}"))
        .to_string();
    assert_eq!(error, card, "{text}");
    error
}

fn accepted(text: &str) {
    assert!(parse_delegation(text.as_bytes()).is_ok(), "refused: {text}");
    assert!(
        check_document(text.as_bytes()).is_ok(),
        "refused as a card: {text}"
    );
}

#[test]
fn lone_surrogates_are_refused_wherever_they_are() {
    for text in [
        r#"{"prompt": "\ud800"}"#,
        r#"{"prompt": {"deep": ["x", "a\udc00b"]}}"#,
        r#"{"prompt": "\ud800\u0041"}"#,
        r#"{"\ud800": 1}"#,
        r#"{"delegation_id": "\ud800"}"#,
        r#"{"worker_lifecycle": {"notes": ["\udbff"]}}"#,
        r#"{"worker_lifecycle": {"process_id": ["\ud800"]}}"#,
        r#"{"child_agent": {"status": {"x": "\ud800"}}}"#,
    ] {
        assert!(refused(text).contains("escape"), "{text}");
    }
    accepted(r#"{"prompt": "\ud83d\ude00 \u00e9 \n \/"}"#);
}

#[test]
fn invalid_escapes_are_refused_in_ignored_fields() {
    refused(r#"{"prompt": "\x41"}"#);
    refused(r#"{"prompt": "\u12"}"#);
}

#[test]
fn nesting_is_accepted_exactly_as_far_as_the_write_path_parses() {
    for depth in 120..136 {
        // `depth` levels in all: the document itself and depth - 1 arrays inside.
        let text = format!(
            "{{\"x\": {}{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        );
        let writable = serde_json::from_str::<serde_json::Value>(&text).is_ok();
        assert_eq!(writable, depth <= 127, "depth {depth}");
        assert_eq!(
            parse_delegation(text.as_bytes()).is_ok(),
            writable,
            "depth {depth}"
        );
        assert_eq!(
            check_document(text.as_bytes()).is_ok(),
            writable,
            "depth {depth}"
        );
        let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        assert_eq!(
            parse_delegation(objects.as_bytes()).is_ok(),
            writable,
            "depth {depth}"
        );
        let in_field = format!(
            "{{\"worker_lifecycle\": {{\"process_id\": {}{}}}}}",
            "[".repeat(depth - 2),
            "]".repeat(depth - 2)
        );
        assert_eq!(
            parse_delegation(in_field.as_bytes()).is_ok(),
            writable,
            "depth {depth}"
        );
    }
    let message = refused(&format!(
        "{{\"x\": {}{}}}",
        "[".repeat(127),
        "]".repeat(127)
    ));
    assert!(message.contains("recursion limit"), "{message}");
}

#[test]
fn the_arbitrary_precision_marker_key_is_refused() {
    for text in [
        r#"{"x": {"$serde_json::private::Number": "5"}}"#,
        r#"{"x": {"$serde_json::private::Number": 5}}"#,
        r#"{"x": {"a": 1, "$serde_json::private::Number": "5"}}"#,
        r#"{"x": [{"$serde_json::private::Numbe\u0072": "5"}]}"#,
        r#"{"$serde_json::private::Number": "5"}"#,
        r#"{"a": 1, "$serde_json::private::Number": "5"}"#,
        r#"{"worker_lifecycle": {"process_id": {"$serde_json::private::Number": "4242"}}}"#,
        r#"{"worker_lifecycle": {"$serde_json::private::Number": "4242"}}"#,
        r#"{"worker_lifecycle": {"state": "x", "$serde_json::private::Number": "1"}}"#,
        r#"{"child_agent": {"status": {"$serde_json::private::Number": "1"}}}"#,
    ] {
        assert!(
            refused(text).contains("$serde_json::private::Number"),
            "{text}"
        );
    }
    // Real numbers, which serde_json hands over under that key, are fine anywhere.
    accepted(
        r#"{"x": [1, -2, 2.5, -3e10, 123456789012345678901234567890], "worker_lifecycle": {"process_id": 1e3, "exit_code": -1}, "child_agent": 7}"#,
    );
}

#[test]
fn duplicate_keys_are_refused_at_every_level() {
    for text in [
        r#"{"a": 1, "a": 2}"#,
        r#"{"delegation_id": "a", "delegation_id": "b"}"#,
        r#"{"a": 1, "\u0061": 2}"#,
        r#"{"prompt": {"b": 1, "c": 2, "b": 3}}"#,
        r#"{"prompt": [{}, {"b": 1, "b": 1}]}"#,
        r#"{"worker_lifecycle": {"process_id": 1, "process_id": 2}}"#,
        r#"{"worker_lifecycle": {"notes": 1, "notes": 2}}"#,
        r#"{"child_agent": {"status": "running", "status": "completed"}}"#,
        r#"{"child_agent": {"status": {"x": 1, "x": 1}}}"#,
    ] {
        assert!(refused(text).contains("duplicate key"), "{text}");
    }
    let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
    accepted(&format!("{{\"prompt\": {{{}}}}}", many.join(", ")));
    let mut twice = many.clone();
    twice.push("\"k7\": 0".into());
    let message = refused(&format!("{{\"prompt\": {{{}}}}}", twice.join(", ")));
    assert!(message.contains("duplicate key \"k7\""), "{message}");
    // Around the point where the keys leave the stack.
    for n in 1..40 {
        let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\": {i}")).collect();
        accepted(&format!("{{\"prompt\": {{{}}}}}", keys.join(", ")));
        accepted(&format!("{{{}}}", keys.join(", ")));
        for at in [0, n / 2, n - 1] {
            let mut twice = keys.clone();
            twice.push(format!("\"k{at}\": 0"));
            refused(&format!("{{\"prompt\": {{{}}}}}", twice.join(", ")));
            refused(&format!(
                "{{\"worker_lifecycle\": {{{}}}}}",
                twice.join(", ")
            ));
        }
    }
    // The same key in different objects is not a duplicate.
    accepted(r#"{"a": {"a": 1}, "b": {"a": 2}, "c": [{"a": 1}, {"a": 1}]}"#);
}

#[test]
fn what_is_accepted_renders_back_to_an_equal_document() {
    let text = r#"{"b": {"n": 123456789012345678901234567890, "s": "\ud83d\ude00\n"}, "a": [1.5, [], {}], "worker_lifecycle": {"process_id": 7}}"#;
    accepted(text);
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    let again: serde_json::Value = serde_json::from_slice(&render(&value)).unwrap();
    assert_eq!(value, again);
}

#[test]
fn render_is_pretty_with_a_final_newline() {
    let value: serde_json::Value =
        serde_json::from_str(r#"{"b":1,"a":{"n":123456789012345678901234567890}}"#).unwrap();
    assert_eq!(
        String::from_utf8(render(&value)).unwrap(),
        "{\n  \"b\": 1,\n  \"a\": {\n    \"n\": 123456789012345678901234567890\n  }\n}\n"
    );
}
