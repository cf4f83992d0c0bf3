use super::json::needs_escape;
use super::table::{TEXT_WINDOW, human_duration};
use super::*;
use std::sync::{Arc, Mutex};

#[test]
fn needs_escape_finds_every_byte_that_json_escapes_wherever_it_is() {
    for byte in 0..=255u8 {
        let expected = byte < 0x20
            || byte == b'"'
            || byte == b'\\'
            || matches!(byte, 0x7f | 0xc2 | 0xd8 | 0xe2);
        for at in 0..19 {
            let mut text = vec![b'a'; 19];
            text[at] = byte;
            assert_eq!(needs_escape(&text), expected, "byte {byte:#x} at {at}");
            // Neighbours that are high bytes must not hide or fake a match.
            let mut high = vec![0xff; 19];
            high[at] = byte;
            assert_eq!(
                needs_escape(&high),
                expected,
                "byte {byte:#x} at {at} in 0xff"
            );
        }
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(serde::Serialize)]
struct Row<'a> {
    kind: &'a str,
    delegation_id: &'a str,
    state: &'a str,
    elapsed_since_progress_ms: Option<i64>,
    warnings: Vec<&'a str>,
}

fn rows() -> Vec<Row<'static>> {
    vec![
        Row {
            kind: "delegation",
            delegation_id: "d1",
            state: "stale",
            elapsed_since_progress_ms: Some(90_000),
            warnings: vec![],
        },
        Row {
            kind: "delegation",
            delegation_id: "d\t2\u{1b}",
            state: "queued",
            elapsed_since_progress_ms: None,
            warnings: vec!["clock_skew", "x"],
        },
    ]
}

fn render(format: Format) -> String {
    let capture = Capture::default();
    let header = Header {
        run_dirs: vec!["run".into()],
        checked_at: 0,
    };
    let mut output = Output::new(format, false, header, Box::new(capture.clone()));
    for row in rows() {
        output.record(&row).unwrap();
    }
    let summary: Vec<Value> = vec![serde_json::json!({"kind": "summary", "total": 2})];
    output.finish(&summary, &[], "2 delegations").unwrap();
    let bytes = capture.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn ndjson_is_one_object_per_line() {
    assert_eq!(
        render(Format::Ndjson),
        "{\"kind\":\"delegation\",\"delegation_id\":\"d1\",\"state\":\"stale\",\"elapsed_since_progress_ms\":90000,\"warnings\":[],\"schema_version\":1}\n\
         {\"kind\":\"delegation\",\"delegation_id\":\"d\\t2\\u001b\",\"state\":\"queued\",\"elapsed_since_progress_ms\":null,\"warnings\":[\"clock_skew\",\"x\"],\"schema_version\":1}\n"
    );
}

#[test]
fn json_is_one_document() {
    let text = render(Format::Json);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["run_dirs"], serde_json::json!(["run"]));
    assert_eq!(doc["checked_at"], "1970-01-01T00:00:00.000Z");
    assert_eq!(doc["records"].as_array().unwrap().len(), 2);
    assert_eq!(doc["summary"][0]["total"], 2);
    assert_eq!(doc["errors"], serde_json::json!([]));
    // Every record and summary row ends with schema_version (SPEC §7).
    for record in doc["records"].as_array().unwrap() {
        let last = record.as_object().unwrap().iter().next_back().unwrap();
        assert_eq!(last, (&"schema_version".to_string(), &serde_json::json!(1)));
    }
    assert_eq!(doc["summary"][0]["schema_version"], 1);
}

#[test]
fn tsv_escapes_and_unions() {
    assert_eq!(
        render(Format::Tsv),
        "kind\tdelegation_id\tstate\telapsed_since_progress_ms\twarnings\n\
         delegation\td1\tstale\t90000\t\n\
         delegation\td\\t2\\x1b\tqueued\t\tclock_skew,x\n"
    );
}

#[test]
fn text_aligns_and_escapes() {
    assert_eq!(
        render(Format::Text),
        "DELEGATION  TASK_CARD  STATE   PROGRESS_AGE  PID  PROCESS  NEXT_ACTION  SUMMARY  NOTE\n\
         d1          -          stale   1m30s         -    -        -            -        -\n\
         d\\t2\\x1b    -          queued  -             -    -        -            -        clock skew, x\n\
         2 delegations\n"
    );
}

const HOSTILE: &str =
    "a\u{1b}]0;pwned\u{7}b\u{1b}[2Jc\u{202e}d\u{2028}e\u{85}f\u{7f}g\u{61c}h\u{2066}i";

fn hostile_rows() -> Vec<Value> {
    vec![
        serde_json::json!({"kind": "delegation", "delegation_id": HOSTILE, "state": "stale",
            "summary": HOSTILE, "warnings": [HOSTILE]}),
        serde_json::json!({"kind": "action", "command": "sweep", "action": HOSTILE,
            "message": HOSTILE}),
        serde_json::json!({"kind": "odd", HOSTILE: HOSTILE}),
    ]
}

fn render_rows(format: Format, rows: &[Value]) -> String {
    let capture = Capture::default();
    let header = Header {
        run_dirs: vec![HOSTILE.into()],
        checked_at: 0,
    };
    let mut output = Output::new(format, false, header, Box::new(capture.clone()));
    for row in rows {
        output.record(row).unwrap();
    }
    let errors = [ErrorEntry {
        path: HOSTILE.into(),
        message: HOSTILE.into(),
    }];
    output.finish::<Value>(&[], &errors, "").unwrap();
    let bytes = capture.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn no_dangerous_character_reaches_any_format_raw() {
    for format in [Format::Ndjson, Format::Json, Format::Tsv, Format::Text] {
        let text = render_rows(format, &hostile_rows());
        let raw: Vec<char> = text
            .chars()
            .filter(|&c| c != '\n' && !(c == '\t' && format == Format::Tsv))
            .filter(|&c| crate::core::text::is_dangerous(c))
            .collect();
        assert!(raw.is_empty(), "{format:?}: {raw:?} in {text:?}");
        assert!(text.contains("pwned"), "{format:?}: {text}");
    }
    let ndjson = render_rows(Format::Ndjson, &hostile_rows());
    assert!(ndjson.contains(r"a\u001b]0;pwned\u0007b"), "{ndjson}");
    assert!(
        ndjson.contains(r"c\u202ed\u2028e\u0085f\u007fg\u061ch\u2066i"),
        "{ndjson}"
    );
    // The escapes are JSON's own: the text reads back exactly.
    for line in ndjson.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        assert!(value.to_string().contains("pwned"));
    }
    let doc: Value = serde_json::from_str(&render_rows(Format::Json, &hostile_rows())).unwrap();
    assert_eq!(doc["run_dirs"][0], HOSTILE);
    assert_eq!(doc["errors"][0]["message"], HOSTILE);
    assert_eq!(doc["records"][0]["summary"], HOSTILE);
    let tsv = render_rows(Format::Tsv, &hostile_rows());
    assert!(
        tsv.contains(r"a\x1b]0;pwned\x07b\x1b[2Jc\u202ed\u2028e\x85f\x7fg\u061ch\u2066i"),
        "{tsv}"
    );
}

#[test]
fn the_hand_written_json_escapes_what_serde_path_escapes() {
    for text in [
        HOSTILE,
        "plain",
        "\u{9f}",
        "\u{200e}x",
        "ok \u{e9}\u{2014}\u{65e5}",
        "\u{2029}",
    ] {
        let mut fast = Vec::new();
        JsonWriter(&mut fast).str(text);
        let mut safe = Vec::new();
        to_writer_safe(&mut safe, text).unwrap();
        assert_eq!(fast, safe, "{text:?}");
        let back: String = serde_json::from_slice(&fast).unwrap();
        assert_eq!(back, text);
    }
    // Text without a dangerous character is written as serde_json writes it.
    let text = "quote\" back\\ tab\t \u{e9}\u{2014}\u{65e5}\u{1f642}";
    assert_eq!(
        to_string_safe(text).unwrap(),
        serde_json::to_string(text).unwrap()
    );
}

#[test]
fn tsv_prints_a_new_header_when_the_fields_change() {
    let rows = [
        serde_json::json!({"kind": "delegation", "a": 1}),
        serde_json::json!({"kind": "delegation", "a": 2}),
        serde_json::json!({"kind": "fan_in", "b": "x"}),
        serde_json::json!({"kind": "delegation", "a": 3}),
    ];
    assert_eq!(
        render_rows(Format::Tsv, &rows),
        "kind\ta\ndelegation\t1\ndelegation\t2\nkind\tb\nfan_in\tx\nkind\ta\ndelegation\t3\n"
    );
}

fn delegation_row(id: &str, reclaim_state: &str) -> Value {
    serde_json::json!({"kind": "delegation", "delegation_id": id, "state": "stale",
        "reclaim_state": reclaim_state, "elapsed_since_progress_ms": 90_000,
        "process_id": 1, "process_identity": "reused",
        "warnings": ["invalid_process_id", "clock_skew", "wrong_type:worker_lifecycle.state"]})
}

#[test]
fn text_says_reclaimed_and_notes_the_warnings_in_words() {
    let text = render_rows(
        Format::Text,
        &[
            delegation_row("d1", "reclaimed"),
            delegation_row("d2", "reclaim_needed"),
        ],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("DELEGATION  TASK_CARD  STATE      PROGRESS_AGE  PID"),
        "{text}"
    );
    assert!(lines[0].ends_with("  NOTE"), "{text}");
    assert!(
        lines[1].starts_with("d1          -          reclaimed  1m30s         1"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("d2          -          stale      1m30s"),
        "{text}"
    );
    assert!(
        lines[1].ends_with(
            "invalid pid 1, clock skew, wrong type at worker_lifecycle.state, pid reused"
        ),
        "{text}"
    );
}

#[test]
fn the_dry_run_table_shows_the_pids_it_would_signal_and_sentences_stay_sentences() {
    let rows = [
        serde_json::json!({"kind": "action", "command": "sweep", "action": "reclaimed",
            "outcome": "dry_run", "delegation_id": "d1", "would_signal": [4242, 4243]}),
        serde_json::json!({"kind": "fan_in", "task_card_id": "c", "ready": false,
            "warnings": ["unknown_status: delegation odd has status 'paused'"]}),
    ];
    let text = render_rows(Format::Text, &rows);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("  WOULD_SIGNAL"), "{text}");
    assert!(lines[1].ends_with("  4242,4243"), "{text}");
    assert!(
        lines[4].ends_with("  unknown_status: delegation odd has status 'paused'"),
        "{text}"
    );
}

#[test]
fn the_fan_in_table_shows_the_waiting_lanes() {
    let rows = [
        serde_json::json!({"kind": "fan_in", "task_card_id": "card-1", "ready": false,
        "active": 0, "waiting_lanes": ["api", "docs"]}),
    ];
    let text = render_rows(Format::Text, &rows);
    assert_eq!(
        text,
        "TASK_CARD  READY  OUTCOME  COMPLETED  FAILED  CANCELLED  ACTIVE  WAITING_LANES  SUMMARY  NOTE\n\
         card-1     false  -        -          -       -          0       api,docs       -        -\n"
    );
}

#[test]
fn text_holds_at_most_a_window_of_rows_then_streams_with_its_widths() {
    let mut tables = TextTables::default();
    let mut printed = String::new();
    for i in 0..TEXT_WINDOW - 1 {
        printed.push_str(&tables.push(text_row(
            delegation_row(&format!("d{i}"), "x").as_object().unwrap(),
        )));
        assert!(tables.held() <= TEXT_WINDOW);
    }
    assert!(printed.is_empty(), "nothing before the window is full");
    printed.push_str(&tables.push(text_row(
        delegation_row("last-of-window", "x").as_object().unwrap(),
    )));
    assert_eq!(tables.held(), 0);
    assert_eq!(printed.lines().count(), TEXT_WINDOW + 1);
    let width = printed.lines().next().unwrap().find("TASK_CARD").unwrap();
    for i in 0..10_000 {
        let id = if i == 5 {
            "a-much-longer-delegation-id-than-any-in-the-window".to_string()
        } else {
            format!("e{i}")
        };
        let line = tables.push(text_row(delegation_row(&id, "x").as_object().unwrap()));
        assert_eq!(tables.held(), 0, "streamed rows are not kept");
        assert_eq!(line.lines().count(), 1);
        if i != 5 {
            assert_eq!(line.find("-  ").unwrap(), width, "{line}");
        } else {
            assert!(
                line.starts_with(&format!("{id}  -")),
                "a wider cell overflows: {line}"
            );
        }
    }
    // A change of kind after the window repeats a header.
    let other = serde_json::json!({"kind": "action", "command": "sweep", "action": "reclaimed"});
    let text = tables.push(text_row(other.as_object().unwrap()));
    assert_eq!(text, "\nCOMMAND  ACTION\nsweep    reclaimed\n");
    assert_eq!(tables.flush(), "");
}

#[test]
fn human_durations() {
    assert_eq!(human_duration(999), "999ms");
    assert_eq!(human_duration(45_000), "45s");
    assert_eq!(human_duration(90_000), "1m30s");
    assert_eq!(human_duration(7_260_000), "2h01m");
}

struct Closed;

impl Write for Closed {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

#[test]
fn a_closed_pipe_is_the_end_of_output_not_an_error() {
    let mut output = Output::new(Format::Ndjson, false, Header::default(), Box::new(Closed));
    for _ in 0..10_000 {
        output.record(&rows()[0]).unwrap();
    }
    output.finish::<Value>(&[], &[], "").unwrap();
}

#[derive(serde::Serialize)]
struct Sample {
    kind: &'static str,
    text: String,
    big: u64,
    none: Option<u32>,
}

#[test]
fn records_written_to_a_writer_read_back_as_the_objects_they_serialize_to() {
    let records = [
        Sample {
            kind: "action",
            text: "tab\t quote\" \u{2028} \u{1f642}".into(),
            big: u64::MAX,
            none: None,
        },
        Sample {
            kind: "fan_in",
            text: String::new(),
            big: 0,
            none: None,
        },
    ];
    let expected: Vec<Map<String, Value>> = records
        .iter()
        .map(|record| match serde_json::to_value(record).unwrap() {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        })
        .collect();
    let buffer = SharedBuffer::default();
    let mut output = Output::ndjson(Box::new(buffer.clone()));
    let mut captured = Output::capture();
    for record in &records {
        output.record(record).unwrap();
        captured.record(record).unwrap();
    }
    output.flush().unwrap();
    // Printed records end with schema_version; captured ones get it when printed again.
    let printed: Vec<Map<String, Value>> = expected
        .iter()
        .cloned()
        .map(|mut map| {
            map.insert("schema_version".into(), 1.into());
            map
        })
        .collect();
    assert_eq!(read_ndjson(&buffer.take()), printed);
    assert_eq!(captured.into_rows(), expected);
}
