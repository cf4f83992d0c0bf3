//! `schema_version` and `flatline --generate schema` (SPEC §7): flatline's own output, over
//! the bundled example run and its real writes, validated against the generated schema with
//! NO additional properties allowed, so that a field added, renamed or retyped without the
//! table in src/output/schema.rs fails here.

use crate::support::{TempDir, flatline};
use serde_json::Value;
use std::path::Path;

/// The generated schema, with additional properties forbidden everywhere.
fn strict_schema() -> Value {
    let out = flatline(["--generate", "schema"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut schema: Value = serde_json::from_str(&out.stdout).expect("the schema is JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    for kind in schema["oneOf"].as_array_mut().expect("oneOf") {
        assert_eq!(
            kind["additionalProperties"], true,
            "published schema allows more"
        );
        kind["additionalProperties"] = Value::Bool(false);
    }
    schema
}

/// Why `value` does not fit `schema`, for exactly the subset `--generate schema` uses:
/// type, const, properties, required, additionalProperties, oneOf.
fn violations(value: &Value, schema: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    if let Some(expected) = schema.get("const")
        && value != expected
    {
        wrong.push(format!("{value} is not {expected}"));
    }
    if let Some(types) = schema.get("type").and_then(Value::as_array)
        && !types
            .iter()
            .any(|t| type_fits(value, t.as_str().unwrap_or("")))
    {
        wrong.push(format!("{value} is not of type {types:?}"));
    }
    if let Some(kinds) = schema.get("oneOf").and_then(Value::as_array) {
        let fits = kinds
            .iter()
            .filter(|kind| violations(value, kind).is_empty())
            .count();
        if fits != 1 {
            let why: Vec<String> = kinds
                .iter()
                .filter(|kind| violations(&value["kind"], &kind["properties"]["kind"]).is_empty())
                .map(|kind| format!("{}: {:?}", kind["title"], violations(value, kind)))
                .collect();
            wrong.push(format!("fits {fits} of oneOf, not 1: {why:?}"));
        }
    }
    let Some(object) = value.as_object() else {
        return wrong;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    for name in schema["required"].as_array().into_iter().flatten() {
        if !object.contains_key(name.as_str().unwrap_or("")) {
            wrong.push(format!("no {name}"));
        }
    }
    for (name, field) in object {
        match properties.and_then(|p| p.get(name)) {
            Some(property) => wrong.extend(violations(field, property)),
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                wrong.push(format!("{name} is not in the schema"));
            }
            None => {}
        }
    }
    wrong
}

fn type_fits(value: &Value, name: &str) -> bool {
    match name {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => false,
    }
}

/// The bundled example run, copied so that the real runs may write it.
fn example_run(dir: &TempDir) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/run");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&example)
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(status.success());
    // A state directory another run may have left in the example is not the example.
    let _ = std::fs::remove_dir_all(dir.join("run/.flatline"));
    dir.join("run").to_string_lossy().into_owned()
}

/// Every record the commands print: ndjson lines, and a json document's records and summary.
fn records_of(args: &[&str], all: &mut Vec<Value>) {
    let out = flatline(args);
    // 1: attention; 3: a file could not be read (only the broken run has one).
    let allowed: &[i32] = if args.contains(&"--attention") {
        &[0, 1, 3]
    } else {
        &[0, 1]
    };
    assert!(
        allowed.contains(&out.code),
        "{args:?}: {} {}",
        out.code,
        out.stderr
    );
    for line in out.stdout.lines() {
        let value: Value = serde_json::from_str(line).expect("a JSON line");
        match value.get("records") {
            Some(records) => {
                all.extend(records.as_array().expect("records").iter().cloned());
                all.extend(
                    value["summary"]
                        .as_array()
                        .expect("summary")
                        .iter()
                        .cloned(),
                );
            }
            None => all.push(value),
        }
    }
}

#[test]
fn every_record_flatline_prints_fits_the_generated_schema_exactly() {
    let schema = strict_schema();
    let dir = TempDir::new("schema");
    let run = example_run(&dir);
    let now = "2026-11-22T08:10:00Z";
    let mut records = Vec::new();
    for args in [
        vec!["status", &run, "--summary"],
        vec!["status", &run, "--summary", "--format", "json"],
        vec!["status", &run, "--attention"],
        vec!["refresh", &run, "--dry-run"],
        vec!["reclaim", &run, "--dry-run"],
        vec!["fan-in", &run, "--dry-run"],
        vec!["sweep", &run, "--dry-run", "--all"],
        vec!["health-events", &run, "--dry-run"],
        vec!["explain", &run],
        vec!["doctor", &run],
        vec!["refresh", &run],
        vec!["reclaim", &run],
        vec!["sweep", &run, "--all"],
        vec!["fan-in", &run],
        vec!["status", &run, "--summary"],
    ] {
        let mut args = args;
        // A real reclaim or sweep reads its own clock (the example is long past every
        // threshold either way); the rest see a fixed --now.
        let real = !args.contains(&"--dry-run") && ["reclaim", "sweep"].contains(&args[0]);
        if !real {
            args.extend(["--now", now]);
        }
        if !args.contains(&"json") {
            args.extend(["--format", "ndjson"]);
        }
        records_of(&args, &mut records);
    }
    // An unreadable document: a problem record with --attention.
    let broken = TempDir::new("schema-broken");
    let broken_run = example_run(&broken);
    std::fs::write(broken.join("run/delegations/broken.json"), "{").expect("write");
    records_of(
        &[
            "status",
            &broken_run,
            "--attention",
            "--now",
            now,
            "--format",
            "ndjson",
        ],
        &mut records,
    );
    let kinds: std::collections::BTreeSet<&str> =
        records.iter().filter_map(|r| r["kind"].as_str()).collect();
    for kind in [
        "delegation",
        "summary",
        "action",
        "fan_in",
        "explain",
        "finding",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} record was checked: {kinds:?}"
        );
    }
    let mut failures = Vec::new();
    for record in &records {
        assert_eq!(record["schema_version"], 1, "{record}");
        let wrong = violations(record, &schema);
        if !wrong.is_empty() {
            failures.push(format!("{record}\n{wrong:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_validator_bites() {
    let schema = strict_schema();
    let good = serde_json::json!({"kind": "problem", "run_dir": "r", "path": "p",
        "message": "m", "schema_version": 1});
    assert_eq!(violations(&good, &schema), Vec::<String>::new());
    let mut extra = good.clone();
    extra["bogus"] = Value::from(1);
    assert!(!violations(&extra, &schema).is_empty());
    let mut retyped = good.clone();
    retyped["path"] = Value::from(1);
    assert!(!violations(&retyped, &schema).is_empty());
    let mut missing = good;
    missing.as_object_mut().unwrap().remove("message");
    assert!(!violations(&missing, &schema).is_empty());
}
