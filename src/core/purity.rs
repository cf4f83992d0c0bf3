//! The purity rule, executable: no file under `core/` or `model/` names a module of the
//! layers above them (`sys`, `fs`, `proc`, `shell`, `output`, `cmd`, `cli`) or one of the
//! flat modules that still do I/O. A new file under `core/` or `model/` must be listed in
//! `SOURCES`, which a second test checks against the directories. The same rule, read from
//! the source tree at test time, keeps every other layer's arrows pointing down (`LAYERS`),
//! and no command module names another (`COMMAND_EDGES_KEPT` lists any exception).

/// Every source file under `core/` and `model/`, as compiled into this test.
const SOURCES: &[(&str, &str)] = &[
    ("core/mod.rs", include_str!("mod.rs")),
    ("core/activity.rs", include_str!("activity.rs")),
    ("core/activity/tests.rs", include_str!("activity/tests.rs")),
    ("core/purity.rs", include_str!("purity.rs")),
    ("core/explain.rs", include_str!("explain.rs")),
    ("core/explain/tests.rs", include_str!("explain/tests.rs")),
    ("core/health.rs", include_str!("health.rs")),
    ("core/doctor.rs", include_str!("doctor.rs")),
    ("core/finalize.rs", include_str!("finalize.rs")),
    ("core/doctor/tests.rs", include_str!("doctor/tests.rs")),
    ("core/unit.rs", include_str!("unit.rs")),
    ("core/unit/tests.rs", include_str!("unit/tests.rs")),
    ("core/identity.rs", include_str!("identity.rs")),
    ("core/identity/tests.rs", include_str!("identity/tests.rs")),
    ("core/lifecycle/mod.rs", include_str!("lifecycle/mod.rs")),
    (
        "core/lifecycle/baseline.rs",
        include_str!("lifecycle/baseline.rs"),
    ),
    (
        "core/lifecycle/state.rs",
        include_str!("lifecycle/state.rs"),
    ),
    (
        "core/lifecycle/thresholds.rs",
        include_str!("lifecycle/thresholds.rs"),
    ),
    ("core/lifecycle/view.rs", include_str!("lifecycle/view.rs")),
    (
        "core/lifecycle/tests/mod.rs",
        include_str!("lifecycle/tests/mod.rs"),
    ),
    (
        "core/lifecycle/tests/records.rs",
        include_str!("lifecycle/tests/records.rs"),
    ),
    (
        "core/lifecycle/tests/states.rs",
        include_str!("lifecycle/tests/states.rs"),
    ),
    (
        "core/lifecycle/tests/streams.rs",
        include_str!("lifecycle/tests/streams.rs"),
    ),
    (
        "core/lifecycle/tests/thresholds.rs",
        include_str!("lifecycle/tests/thresholds.rs"),
    ),
    ("core/launch.rs", include_str!("launch.rs")),
    ("core/launch/tests.rs", include_str!("launch/tests.rs")),
    ("core/plan/mod.rs", include_str!("plan/mod.rs")),
    ("core/plan/fan_in.rs", include_str!("plan/fan_in.rs")),
    (
        "core/plan/fan_in/tests.rs",
        include_str!("plan/fan_in/tests.rs"),
    ),
    ("core/plan/recheck.rs", include_str!("plan/recheck.rs")),
    (
        "core/plan/recheck/tests.rs",
        include_str!("plan/recheck/tests.rs"),
    ),
    ("core/plan/reclaim.rs", include_str!("plan/reclaim.rs")),
    (
        "core/plan/reclaim/tests.rs",
        include_str!("plan/reclaim/tests.rs"),
    ),
    ("core/plan/refresh.rs", include_str!("plan/refresh.rs")),
    (
        "core/plan/refresh/tests.rs",
        include_str!("plan/refresh/tests.rs"),
    ),
    ("core/stall.rs", include_str!("stall.rs")),
    ("core/stall/tests.rs", include_str!("stall/tests.rs")),
    ("core/text.rs", include_str!("text.rs")),
    ("core/time.rs", include_str!("time.rs")),
    ("core/digest/mod.rs", include_str!("digest/mod.rs")),
    ("core/digest/claude.rs", include_str!("digest/claude.rs")),
    ("core/digest/codex.rs", include_str!("digest/codex.rs")),
    (
        "core/digest/codex_legacy.rs",
        include_str!("digest/codex_legacy.rs"),
    ),
    ("core/digest/format.rs", include_str!("digest/format.rs")),
    ("core/digest/gemini.rs", include_str!("digest/gemini.rs")),
    ("core/digest/generic.rs", include_str!("digest/generic.rs")),
    ("core/digest/kimi.rs", include_str!("digest/kimi.rs")),
    ("core/digest/line.rs", include_str!("digest/line.rs")),
    ("core/digest/lines.rs", include_str!("digest/lines.rs")),
    ("core/digest/stream.rs", include_str!("digest/stream.rs")),
    (
        "core/digest/tests/mod.rs",
        include_str!("digest/tests/mod.rs"),
    ),
    (
        "core/digest/tests/fields.rs",
        include_str!("digest/tests/fields.rs"),
    ),
    (
        "core/digest/tests/formats.rs",
        include_str!("digest/tests/formats.rs"),
    ),
    (
        "core/digest/tests/reading.rs",
        include_str!("digest/tests/reading.rs"),
    ),
    (
        "core/digest/tests/verdicts.rs",
        include_str!("digest/tests/verdicts.rs"),
    ),
    (
        "core/digest/transport.rs",
        include_str!("digest/transport.rs"),
    ),
    ("core/digest/verdict.rs", include_str!("digest/verdict.rs")),
    ("model/mod.rs", include_str!("../model/mod.rs")),
    (
        "model/delegation.rs",
        include_str!("../model/delegation.rs"),
    ),
    ("model/document.rs", include_str!("../model/document.rs")),
    ("model/lenient.rs", include_str!("../model/lenient.rs")),
    ("model/object.rs", include_str!("../model/object.rs")),
    ("model/team.rs", include_str!("../model/team.rs")),
    ("model/tests.rs", include_str!("../model/tests.rs")),
];

/// The layers above `core/` and `model/`, and the flat modules that read, write, signal or
/// print. Written without the `crate` prefix so that this file passes its own rule.
const FORBIDDEN: &[&str] = &[
    "sys", "fs", "proc", "shell", "output", "cmd", "cli", // the layers above
    "process", "files", "store", "scan", "commit", "team", "status", "refresh", "reclaim", "fanin",
    "sweep", "beat", "stop", "exit", "config", "runstate", "reported", "manual",
];

/// The only crate modules a pure file may name.
const ALLOWED: &[&str] = &["core", "model"];

/// The crate modules a source names: the first name after each `crate` path prefix, or
/// each first name of a braced group after it.
fn crate_modules(source: &str) -> Vec<String> {
    let prefix = concat!("crate", "::");
    let mut names = Vec::new();
    for (at, _) in source.match_indices(prefix) {
        let before = source[..at].chars().next_back();
        // `$crate::` inside a macro is this crate too; `foo_crate::` is not.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &source[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                names.push(leading_name(item.trim()));
            }
        } else {
            names.push(leading_name(rest));
        }
    }
    names.retain(|name| !name.is_empty() && name != "self");
    names
}

fn leading_name(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn core_and_model_name_no_module_above_them() {
    let mut offences = Vec::new();
    for (file, source) in SOURCES {
        for name in crate_modules(source) {
            if FORBIDDEN.contains(&name.as_str()) || !ALLOWED.contains(&name.as_str()) {
                offences.push(format!("{file} names the module `{name}`"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "impure paths:\n{}",
        offences.join("\n")
    );
}

#[test]
fn every_file_under_core_and_model_is_checked() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut dirs = vec![src.join("core"), src.join("model")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(&src).unwrap();
                found.push(relative.to_str().unwrap().to_owned());
            }
        }
    }
    found.sort();
    let mut listed: Vec<String> = SOURCES.iter().map(|(file, _)| (*file).to_owned()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "list every file under core/ and model/ in SOURCES"
    );
}

#[test]
fn the_rule_sees_paths_and_groups() {
    let source = concat!(
        "use crate",
        "::core::text;\n",
        "use crate",
        "::{model::Field, process::Pid};\n",
        "let x = $crate",
        "::model::Field::Absent;\n",
        "let y = crate",
        "::files::read(path);\n",
    );
    assert_eq!(
        crate_modules(source),
        ["core", "model", "process", "model", "files"]
    );
}

/// Each layer beneath the commands and the modules it must not name (the layers above it):
/// arrows point down only (cmd → shell → output → fs/proc → sys). `interrupt` (the signals
/// and the deadline) belongs to the run loop, above output.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "sys",
        &["fs", "proc", "output", "shell", "cmd", "cli", "interrupt"],
    ),
    ("fs", &["output", "shell", "cmd", "cli", "interrupt"]),
    (
        "proc",
        &["fs", "output", "shell", "cmd", "cli", "interrupt"],
    ),
    ("output", &["shell", "cmd", "cli", "interrupt"]),
    ("shell", &["cmd"]),
];

/// Every `.rs` file under `src/DIR`, relative to `src/`, with its text.
fn sources_under(dir: &str) -> Vec<(String, String)> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut dirs = vec![src.join(dir)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path
                    .strip_prefix(&src)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                found.push((relative, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    found
}

#[test]
fn no_layer_names_a_layer_above_it() {
    let mut offences = Vec::new();
    for (layer, above) in LAYERS {
        let files = sources_under(layer);
        assert!(!files.is_empty(), "no source under src/{layer}");
        for (file, source) in files {
            for name in crate_modules(&source) {
                if above.contains(&name.as_str()) {
                    offences.push(format!("{file} names the module `{name}` above it"));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "upward paths:\n{}",
        offences.join("\n")
    );
}

/// Command modules one command may name although it is another: (the file, the command it
/// names, why). Empty: what two commands share lives in `shell/`, `output/` or `core/`, and
/// a command run again and again (`sweep --every`, `status --watch`) is a submodule of it.
const COMMAND_EDGES_KEPT: &[(&str, &str, &str)] = &[];

/// The command modules a file under `cmd/` names, given its path below `cmd/` (`status.rs`,
/// `sweep/mod.rs`, `sweep/tests/scan.rs`): the crate path `cmd::NAME` (or a braced group
/// after `cmd::`), and a `super::` path that climbs up to `cmd/` and names `NAME` there.
fn command_modules(file: &str, source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let prefix = concat!("crate", "::cmd::");
    for (at, _) in source.match_indices(prefix) {
        let before = source[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &source[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').map(|item| leading_name(item.trim())));
        } else {
            names.push(leading_name(rest));
        }
    }
    // The module path of the file below `cmd`: `sweep/mod.rs` is `sweep`, `sweep/every.rs`
    // is `sweep::every`.
    let depth = file
        .trim_end_matches(".rs")
        .trim_end_matches("/mod")
        .split('/')
        .count();
    let hop = "super::";
    for (at, _) in source.match_indices(hop) {
        let before = source[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut rest = &source[at..];
        let mut hops = 0;
        while let Some(next) = rest.strip_prefix(hop) {
            rest = next;
            hops += 1;
        }
        if hops == depth {
            names.push(leading_name(rest));
        }
    }
    names.retain(|name| !name.is_empty() && name != "self");
    names
}

/// The command a file under `cmd/` belongs to: `sweep` for `sweep/scan.rs`.
fn command_of(file: &str) -> &str {
    let first = file.split('/').next().unwrap_or(file);
    first.trim_end_matches(".rs")
}

#[test]
fn no_command_names_another_command() {
    let commands: Vec<String> = sources_under("cmd")
        .iter()
        .map(|(file, _)| command_of(file.trim_start_matches("cmd/")).to_owned())
        .filter(|command| command != "mod")
        .collect();
    let mut offences = Vec::new();
    for (file, source) in sources_under("cmd") {
        let below = file.trim_start_matches("cmd/");
        if below == "mod.rs" {
            continue; // the dispatch table: it names every command
        }
        let own = command_of(below);
        for name in command_modules(below, &source) {
            let kept = COMMAND_EDGES_KEPT
                .iter()
                .any(|(kept_file, command, _)| *kept_file == file && *command == name);
            if name != own && commands.contains(&name) && !kept {
                offences.push(format!("{file} names the command `{name}`"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "a command names another (move what they share down to shell/, output/ or core/):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_command_rule_sees_paths_groups_and_climbs() {
    let source = concat!(
        "use crate",
        "::cmd::reclaim::Kill;\n",
        "use crate",
        "::cmd::{fanin, status::RunMetrics};\n",
        "use super::super::refresh;\n",
        "use super::state::Env;\n",
        "use super::*;\n",
    );
    assert_eq!(
        command_modules("sweep/scan.rs", source),
        ["reclaim", "fanin", "status", "refresh"]
    );
    assert_eq!(
        command_modules("status.rs", source),
        ["reclaim", "fanin", "status", "state"]
    );
    assert_eq!(command_of("sweep/tests/scan.rs"), "sweep");
    assert_eq!(command_of("status.rs"), "status");
}
