//! Every field flatline reads, with every wrong type: one file each, all in one run.

use super::*;

/// Sets a dotted path in `doc` to the placeholder string `@@VALUE@@`.
fn set_placeholder(doc: &mut Value, path: &str) {
    let mut current = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        current = current
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert_with(|| json!({}));
    }
    current[parts[parts.len() - 1]] = json!("@@VALUE@@");
}

#[test]
fn every_field_flatline_reads_with_every_wrong_type() {
    let run = Run::new();
    add_good(&run, "a-good");
    let expected = write_wrong_typed_documents(&run);
    eprintln!("{} wrong-typed documents", expected.len());
    assert!(expected.len() > 250);

    for command in ["status", "refresh", "reclaim"] {
        let mut cmd = Command::new(bin());
        cmd.args([command, "--format=ndjson", "--now", NOW]);
        if command == "reclaim" {
            cmd.arg("--dry-run");
        }
        let out = run_command(cmd.arg(run.arg()), GUARD);
        assert_no_crash(&out);
        assert_eq!(out.code, 3, "{command}: {}", out.stderr);
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), expected.len(), "{command}: one line per file");
        for (path, what, field) in &expected {
            let line = format!("flatline: {}: {what}", path.display());
            assert!(
                lines.contains(&line.as_str()),
                "{command}: missing {line:?}; lines for the file: {:?}",
                lines
                    .iter()
                    .filter(|l| l.contains(&*path.to_string_lossy()))
                    .collect::<Vec<_>>()
            );
            let _ = field;
        }
        if command == "status" {
            // Every document still has its record; wrong types count as absent.
            let records = out.records();
            assert_eq!(records.len(), expected.len() + 2, "{}", out.stdout);
            for record in &records {
                let path = record["path"].as_str().unwrap();
                let warnings = record["warnings"].as_array().unwrap();
                if path.ends_with("/a-good.json") || path.ends_with("/u-all-null.json") {
                    assert!(
                        !warnings
                            .iter()
                            .any(|w| w.as_str().unwrap().starts_with("wrong_type")),
                        "{record}"
                    );
                    continue;
                }
                assert!(
                    warnings
                        .iter()
                        .any(|w| w.as_str().unwrap().starts_with("wrong_type:")),
                    "{record}"
                );
            }
        }
        if command == "refresh" {
            assert!(finalized(&out, "a-good"), "{}", out.stdout);
        }
    }
}

/// One document per field flatline reads and per wrong type of it (plus one with every
/// string and integer field null, which is absent, not wrong): returns each wrong document's
/// path, the message expected about it, and the field.
fn write_wrong_typed_documents(run: &Run) -> Vec<(PathBuf, String, String)> {
    let base = json!({
        "delegation_id": "x", "child_agent": {"status": "queued"}, "executor": {"status": "queued"},
        "worker_request": {}, "worker_launch_evidence": {}, "worker_lifecycle": {"process_fingerprint": {}},
        "worker_result": {}
    });
    // (JSON text, what flatline says it found)
    let not_strings: &[(&str, &str)] = &[
        ("7", "a number"),
        ("-7", "a number"),
        ("1.5", "a number with a fraction or exponent"),
        ("1e3", "a number with a fraction or exponent"),
        ("true", "a boolean"),
        ("[\"x\"]", "an array"),
        ("{\"status\": \"x\"}", "an object"),
        (
            "123456789012345678901234567890123456789012345",
            "an integer out of range",
        ),
    ];
    let not_integers: &[(&str, &str)] = &[
        ("\"12\"", "a string"),
        ("12.0", "a number with a fraction or exponent"),
        ("1.2e1", "a number with a fraction or exponent"),
        ("-0.5", "a number with a fraction or exponent"),
        ("false", "a boolean"),
        ("[12]", "an array"),
        ("{\"pid\": 12}", "an object"),
        (
            "100000000000000000000000000000000000000000",
            "an integer out of range",
        ),
    ];
    let not_objects: &[(&str, &str)] = &[
        ("\"running\"", "a string"),
        ("7", "a number"),
        ("1.5", "a number"),
        ("true", "a boolean"),
        ("[{\"status\": \"running\"}]", "an array"),
    ];
    let mut expected = Vec::new();
    let groups = [
        (STRING_FIELDS, not_strings, "a string"),
        (INTEGER_FIELDS, not_integers, "an integer"),
        (OBJECT_FIELDS, not_objects, "an object"),
    ];
    let mut n = 0;
    for (fields, values, wanted) in groups {
        for field in fields.iter() {
            for (text, found) in values.iter() {
                n += 1;
                let mut doc = base.clone();
                set_placeholder(&mut doc, field);
                let body = serde_json::to_string_pretty(&doc)
                    .unwrap()
                    .replace("\"@@VALUE@@\"", text);
                let name = format!("t{n:04}.json");
                let path = run.write(&format!("delegations/{name}"), body);
                expected.push((
                    path,
                    format!("{field} is {found}, expected {wanted}"),
                    field.to_string(),
                ));
            }
        }
    }
    // null is absent, not wrong: no line.
    let mut nulls = base.clone();
    for field in STRING_FIELDS.iter().chain(INTEGER_FIELDS) {
        set_placeholder(&mut nulls, field);
        let text = serde_json::to_string(&nulls)
            .unwrap()
            .replace("\"@@VALUE@@\"", "null");
        nulls = serde_json::from_str(&text).unwrap();
    }
    run.delegation("u-all-null", &nulls);
    expected
}
