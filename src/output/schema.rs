//! The records' schema (SPEC §7): ONE table of record kinds and their fields with JSON
//! types, kept next to the records, from which `flatline --generate schema` prints a JSON
//! Schema (draft 2020-12). A field is required when every record of its kind has it (null
//! allowed where the type says so). The published schema allows additional properties; the
//! integration tests hold flatline's own output to it with none allowed.

use serde_json::{Map, Value, json};

/// JSON types of a field: `S` string, `I` integer, `B` boolean, `A` array, `O` object, and
/// the same with `N` for "or null".
const S: &[&str] = &["string"];
const SN: &[&str] = &["string", "null"];
const I: &[&str] = &["integer"];
const IN: &[&str] = &["integer", "null"];
const B: &[&str] = &["boolean"];
const BN: &[&str] = &["boolean", "null"];
const A: &[&str] = &["array"];
const O: &[&str] = &["object"];
const ON: &[&str] = &["object", "null"];

/// One field: its name, its JSON types, and whether every record of the kind has it.
pub struct Field(pub &'static str, pub &'static [&'static str], pub bool);

/// One record kind: `kind`, the field and value that tell its variants apart (`scope` of a
/// summary, `action` of an action record), if any, and its fields: groups, in print order (a
/// name in two groups keeps its first place and type).
pub struct Kind {
    pub kind: &'static str,
    pub variant: Option<(&'static str, &'static str)>,
    pub fields: &'static [&'static [Field]],
}

const fn f(name: &'static str, types: &'static [&'static str]) -> Field {
    Field(name, types, true)
}

/// Present only on some records of the kind.
const fn opt(name: &'static str, types: &'static [&'static str]) -> Field {
    Field(name, types, false)
}

/// What every action record about a delegation starts with.
const ACTION: &[Field] = &[
    f("command", S),
    f("action", S),
    f("outcome", S),
    f("run_dir", S),
    f("path", S),
    f("delegation_id", SN),
];

/// A reclaim target (reclaim and sweep): the plan of a dry run, what the signals did, or
/// why it was left alone.
const TARGET: &[Field] = &[
    opt("state", S),
    opt("process_id", IN),
    opt("process_identity", SN),
    opt("last_progress_at", SN),
    opt("elapsed_since_progress_ms", IN),
    opt("summary", S),
    opt("termination", SN),
    opt("reason", SN),
    opt("would_signal", A),
    opt("skipped_descendants", A),
    opt("signal_via", SN),
    opt("descendants_signalled", A),
    opt("survivors", A),
];

/// A finalization (refresh's, a reclaim target's whose process is gone, an operator's).
const FINALIZATION: &[Field] = &[
    opt("status", S),
    opt("completed_at", S),
    opt("format", SN),
    opt("thread_id", SN),
    opt("terminal_event", SN),
    opt("raw_events_bytes", I),
    opt("raw_output_truncated", B),
    opt("raw_output_skipped_bytes", I),
];

/// What a sweep's refresh writes with a reclaim record in the same document.
const REFRESH_MARKS: &[Field] = &[
    opt("fingerprint_stamped", B),
    opt("raw_events_inode", O),
    opt("last_activity_at", S),
];

/// A worker entering or leaving `running_busy` (SPEC §11): the state recorded, and when.
const ACTIVITY_MARK: &[Field] = &[f("state", S), f("last_activity_at", S)];

/// A sweep's fan-in stamp on a member it also finalized or reclaimed.
const STAMP: &[Field] = &[opt("fan_in_collapsed_at", S)];

/// An event appended to `events.jsonl` (health-events and sweep, SPEC §5).
const EVENT: &[Field] = &[
    f("command", S),
    f("action", S),
    f("event", S),
    f("outcome", S),
    f("run_dir", S),
    f("path", S),
    f("worker_id", S),
    f("event_id", S),
    f("previous_health", SN),
    f("health", S),
    f("message", S),
];

const fn action(value: &'static str, fields: &'static [&'static [Field]]) -> Kind {
    Kind {
        kind: "action",
        variant: Some(("action", value)),
        fields,
    }
}

/// Every record kind flatline prints, with its fields in print order.
pub const KINDS: &[Kind] = &[
    Kind {
        kind: "delegation",
        variant: None,
        fields: &[&[
            f("run_dir", S),
            f("path", S),
            f("delegation_id", SN),
            f("task_card_id", SN),
            f("work_kind", S),
            f("status", S),
            f("state", S),
            f("reclaim_state", S),
            f("process_id", IN),
            f("process_alive", BN),
            f("process_identity", SN),
            f("last_progress_at", SN),
            f("progress_baseline", SN),
            f("elapsed_since_progress_ms", IN),
            f("quiet_after_ms", I),
            f("stale_after_ms", I),
            f("timeout_after_ms", I),
            f("stale_at", SN),
            f("timed_out_at", SN),
            f("next_action", S),
            f("transition", S),
            f("classification", S),
            f("recovery_action", S),
            f("recovery_reason", S),
            f("summary", S),
            f("needs_attention", B),
            f("warnings", A),
            f("activity", ON),
            f("stall", ON),
        ]],
    },
    Kind {
        kind: "summary",
        variant: Some(("scope", "delegations")),
        fields: &[&[
            f("run_dir", S),
            f("task_card_id", SN),
            f("total", I),
            f("active", I),
            f("queued", I),
            f("launching", I),
            f("running", I),
            f("running_quiet", I),
            f("running_busy", I),
            f("returned", I),
            f("completed", I),
            f("failed", I),
            f("cancelled", I),
            f("stale", I),
            f("timed_out", I),
            f("reclaim_needed", I),
            f("reclaimed", I),
        ]],
    },
    Kind {
        kind: "summary",
        variant: Some(("scope", "workers")),
        fields: &[&[
            f("run_dir", S),
            f("total", I),
            f("healthy", I),
            f("stalled", I),
            f("dead", I),
            f("stopped", I),
            f("starting", I),
            f("unknown", I),
        ]],
    },
    Kind {
        kind: "worker",
        variant: None,
        fields: &[&[
            f("run_dir", S),
            f("path", S),
            f("worker_id", S),
            opt("spec_name", S),
            f("role", SN),
            f("health", S),
            f("heartbeat_status", SN),
            f("last_heartbeat", SN),
            f("heartbeat_age_ms", IN),
            f("inbox_count", IN),
            f("outbox_count", IN),
            f("message", S),
            f("needs_attention", B),
            f("warnings", A),
        ]],
    },
    Kind {
        kind: "fan_in",
        variant: None,
        fields: &[&[
            f("run_dir", S),
            f("task_card_id", S),
            f("ready", B),
            opt("outcome", S),
            opt("collapsed_at", SN),
            opt("completed", I),
            opt("failed", I),
            opt("cancelled", I),
            opt("summary", S),
            opt("thread_ids", A),
            opt("active", I),
            opt("waiting_lanes", A),
            opt("warnings", A),
            opt("foreign_members", A),
        ]],
    },
    Kind {
        kind: "problem",
        variant: None,
        fields: &[&[f("run_dir", S), f("path", S), f("message", S)]],
    },
    Kind {
        kind: "finding",
        variant: None,
        fields: &[&[
            f("run_dir", SN),
            f("check", S),
            f("path", SN),
            f("message", S),
            f("fix", S),
        ]],
    },
    Kind {
        kind: "explain",
        variant: None,
        fields: &[&[
            f("run_dir", S),
            f("path", S),
            f("delegation_id", SN),
            f("status", S),
            f("state", S),
            f("reclaim_state", S),
            f("needs_attention", B),
            f("verdict", S),
            f("timestamps", O),
            f("baseline", O),
            f("stream", ON),
            f("configuration", O),
            f("thresholds", O),
            f("process", O),
            f("uid_guard", O),
            f("activity", ON),
            f("stall", ON),
            f("next", O),
            f("warnings", A),
        ]],
    },
    action(
        "progressed",
        &[
            ACTION,
            &[f("last_progress_at", S), f("fingerprint_stamped", B)],
        ],
    ),
    action("fingerprinted", &[ACTION, &[f("fingerprint_stamped", B)]]),
    action("stream_recorded", &[ACTION, &[f("raw_events_inode", O)]]),
    action("busy", &[ACTION, ACTIVITY_MARK]),
    action("busy_ended", &[ACTION, ACTIVITY_MARK]),
    action("finalized", &[ACTION, TARGET, FINALIZATION, STAMP]),
    action("reclaimed", &[ACTION, TARGET, REFRESH_MARKS, STAMP]),
    action("skipped", &[ACTION, TARGET]),
    action("worker_stalled", &[EVENT]),
    action("worker_dead", &[EVENT]),
    action("worker_recovered", &[EVENT]),
    action("event_appended", &[EVENT]),
];

/// The JSON Schema of one kind (`additional`: whether other properties are allowed).
pub fn kind_schema(kind: &Kind, additional: bool) -> Value {
    let mut properties = Map::new();
    let mut required = vec![json!("kind"), json!("schema_version")];
    properties.insert("kind".into(), json!({"const": kind.kind}));
    if let Some((name, value)) = kind.variant {
        properties.insert(name.into(), json!({"const": value}));
        required.push(json!(name));
    }
    for Field(name, types, always) in kind.fields.iter().copied().flatten() {
        if !properties.contains_key(*name) {
            properties.insert((*name).into(), json!({"type": types}));
        }
        if *always && !required.contains(&json!(name)) {
            required.push(json!(name));
        }
    }
    properties.insert("schema_version".into(), json!({"const": 1}));
    let title = match kind.variant {
        Some((_, value)) => format!("{} {value}", kind.kind),
        None => kind.kind.to_string(),
    };
    json!({
        "title": title,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": additional,
    })
}

/// The whole document: one subschema per kind (and per variant), chosen by `oneOf`.
pub fn schema(additional: bool) -> Value {
    let kinds: Vec<Value> = KINDS.iter().map(|k| kind_schema(k, additional)).collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://flatline.invalid/schema/records/1",
        "title": "flatline records, schema_version 1",
        "oneOf": kinds,
    })
}

/// `flatline --generate schema`: the published schema, pretty-printed.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&schema(true)).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_and_variant_has_one_subschema_and_each_field_one_type() {
        let mut titles = std::collections::HashSet::new();
        for kind in KINDS {
            let title = kind_schema(kind, false)["title"].to_string();
            assert!(titles.insert(title.clone()), "{title} twice");
            // A name in two groups keeps its first type: the groups must agree on it.
            let mut seen: Map<String, Value> = Map::new();
            for Field(name, types, _) in kind.fields.iter().copied().flatten() {
                let first = seen.entry(*name).or_insert_with(|| json!(types));
                assert_eq!(*first, json!(types), "{title}: {name}");
            }
        }
        let schema = schema(true);
        assert_eq!(schema["oneOf"].as_array().map(Vec::len), Some(KINDS.len()));
    }
}
