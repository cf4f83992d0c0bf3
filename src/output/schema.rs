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

/// One record kind: `kind`, and the field and value that tell its variants apart (`scope`
/// of a summary, `action` of an action record), if any.
pub struct Kind {
    pub kind: &'static str,
    pub variant: Option<(&'static str, &'static str)>,
    pub fields: &'static [Field],
}

const fn f(name: &'static str, types: &'static [&'static str]) -> Field {
    Field(name, types, true)
}

/// Present only on some records of the kind.
const fn opt(name: &'static str, types: &'static [&'static str]) -> Field {
    Field(name, types, false)
}

const ACTION: [Field; 7] = [
    f("command", S),
    f("action", S),
    f("outcome", S),
    f("run_dir", S),
    f("path", S),
    f("delegation_id", SN),
    opt("state", S),
];

/// A reclaim target's detail (reclaim and sweep, real or dry run).
const RECLAIM_DETAIL: [Field; 12] = [
    opt("process_id", IN),
    opt("process_identity", SN),
    opt("last_progress_at", SN),
    opt("elapsed_since_progress_ms", IN),
    opt("summary", S),
    opt("termination", S),
    opt("reason", SN),
    opt("would_signal", A),
    opt("skipped_descendants", A),
    opt("signal_via", SN),
    opt("descendants_signalled", A),
    opt("survivors", A),
];

const fn action(value: &'static str, fields: &'static [Field]) -> Kind {
    Kind {
        kind: "action",
        variant: Some(("action", value)),
        fields,
    }
}

const RECLAIMED: [Field; 19] = concat_fields(&ACTION, &RECLAIM_DETAIL);

const fn concat_fields<const N: usize>(a: &[Field], b: &[Field]) -> [Field; N] {
    let mut out = [const { Field("", S, false) }; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = Field(a[i].0, a[i].1, a[i].2);
        i += 1;
    }
    while i < N {
        let j = i - a.len();
        out[i] = Field(b[j].0, b[j].1, b[j].2);
        i += 1;
    }
    out
}

/// Every record kind flatline prints, with its fields in print order.
pub const KINDS: &[Kind] = &[
    Kind {
        kind: "delegation",
        variant: None,
        fields: &[
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
        ],
    },
    Kind {
        kind: "summary",
        variant: Some(("scope", "delegations")),
        fields: &[
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
        ],
    },
    Kind {
        kind: "summary",
        variant: Some(("scope", "workers")),
        fields: &[
            f("run_dir", S),
            f("total", I),
            f("healthy", I),
            f("stalled", I),
            f("dead", I),
            f("stopped", I),
            f("starting", I),
            f("unknown", I),
        ],
    },
    Kind {
        kind: "worker",
        variant: None,
        fields: &[
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
        ],
    },
    Kind {
        kind: "fan_in",
        variant: None,
        fields: &[
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
        ],
    },
    Kind {
        kind: "problem",
        variant: None,
        fields: &[f("run_dir", S), f("path", S), f("message", S)],
    },
    Kind {
        kind: "finding",
        variant: None,
        fields: &[
            f("run_dir", SN),
            f("check", S),
            f("path", SN),
            f("message", S),
            f("fix", S),
        ],
    },
    Kind {
        kind: "explain",
        variant: None,
        fields: &[
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
            f("stream", O),
            f("configuration", O),
            f("thresholds", O),
            f("process", O),
            f("uid_guard", O),
            f("activity", ON),
            f("stall", ON),
            f("next", O),
            f("warnings", A),
        ],
    },
    action("reclaimed", &RECLAIMED),
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
    for Field(name, types, always) in kind.fields {
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
