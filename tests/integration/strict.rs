//! flatline's own output held to its published schema (SPEC §7) with NO additional
//! properties: the schema comes from `flatline --generate schema` (the one table in
//! src/output/schema.rs), so a field added, renamed or retyped without that table, or an
//! action value or record kind without a subschema, fails. Every record a test reads through
//! `Outcome::records` is checked here.

use crate::support::flatline;
use serde_json::Value;
use std::sync::OnceLock;

/// The generated schema, with additional properties forbidden everywhere (generated once).
pub fn strict_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
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
    })
}

/// Panics unless `record` fits exactly one subschema of the strict schema; gives its title.
pub fn check(record: &Value) -> String {
    let schema = strict_schema();
    let wrong = violations(record, schema);
    assert!(
        wrong.is_empty(),
        "a record that does not fit the schema: {record}\n{wrong:#?}"
    );
    title_of(record).unwrap_or_default()
}

/// The title of the one subschema `record` fits, if exactly one.
pub fn title_of(record: &Value) -> Option<String> {
    let kinds = strict_schema()["oneOf"].as_array()?;
    let mut fits = kinds.iter().filter(|k| violations(record, k).is_empty());
    match (fits.next(), fits.next()) {
        (Some(kind), None) => kind["title"].as_str().map(str::to_owned),
        _ => None,
    }
}

/// Why `value` does not fit `schema`, for exactly the subset `--generate schema` uses:
/// type, const, properties, required, additionalProperties, oneOf.
pub fn violations(value: &Value, schema: &Value) -> Vec<String> {
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
        // Any size: a process id past u64 is printed exactly (arbitrary_precision).
        "integer" => value
            .as_number()
            .is_some_and(|n| !n.to_string().contains(['.', 'e', 'E'])),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => false,
    }
}
