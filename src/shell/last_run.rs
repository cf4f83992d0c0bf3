//! last_run: the effective configuration of each writing command's last run, kept in
//! `.flatline/state.json` under `last_run` (SPEC §13): the command, its thresholds with
//! their sources, the exit status, and since when runs have had exactly these. `explain`
//! judges with the last sweep's thresholds unless it was given flags of its own, and says
//! which. A run like the one before changes nothing: `since` keeps the first one's time, so a
//! settled timer never rewrites `state.json` (SPEC §4, a run that changes nothing writes
//! nothing).

use crate::cli::config::Config;
use crate::core::explain::Origin;
use crate::core::lifecycle::Thresholds;
use crate::core::time::{Millis, format_rfc3339, parse_rfc3339};
use crate::exit::Exit;
use crate::fs::Dir;
use crate::output::Diagnostics;
use crate::shell::runs::Run;
use crate::shell::state::{self as runstate, RunState};
use serde_json::{Map, Value, json};
use std::ffi::OsStr;

/// The section of `state.json` this module owns: `{COMMAND: {…}}`, one entry per command.
pub const SECTION: &str = "last_run";

/// The thresholds a command line can set, by their record names.
fn fields(t: &Thresholds) -> [(&'static str, Option<Millis>); 6] {
    [
        ("quiet_after_ms", t.quiet),
        ("stale_after_ms", t.stale),
        ("timeout_after_ms", t.timeout),
        ("stuck_after_ms", t.stuck),
        ("max_runtime_ms", t.max_runtime),
        ("launch_timeout_ms", t.launch_timeout),
    ]
}

/// One command's entry: what it ran with, and since when (`since`).
pub fn render(config: &Config, exit: Exit, since: Millis) -> Value {
    let mut thresholds = Map::new();
    for (name, value) in fields(&config.thresholds) {
        let source = if value.is_some() { "flag" } else { "default" };
        thresholds.insert(name.into(), json!({"ms": value, "source": source}));
    }
    thresholds.insert(
        "max_clock_skew_ms".into(),
        json!({"ms": config.thresholds.max_clock_skew, "source": "resolved"}),
    );
    json!({
        "command": config.command.name(),
        "exit_status": exit.code(),
        "thresholds": thresholds,
        "since": format_rfc3339(since),
    })
}

/// Records this run's configuration for its command. Reads the state afresh, so the other
/// sections stay as they are; writes only on a change. A dry run records nothing.
pub fn record(state_dir: &Dir, run: &Run, config: &Config, exit: Exit, diag: &mut Diagnostics) {
    if config.dry_run {
        return;
    }
    let path = runstate::path_of(&run.path);
    let Ok(mut state) = RunState::read(state_dir) else {
        // Never replace a state document flatline cannot read; its owners report it.
        return;
    };
    let mut section = match state.section(SECTION) {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let name = config.command.name();
    let mut entry = render(config, exit, config.now);
    if let Some(stored) = section.get(name)
        && same_but_since(stored, &entry)
    {
        entry = stored.clone();
    }
    section.insert(name.into(), entry);
    state.set_section(SECTION, Value::Object(section));
    if let Err(error) = state.write_if_changed(state_dir) {
        diag.error(&path, &error.to_string(), Exit::FileProblem);
    }
}

/// Whether two entries differ at most in `since`.
fn same_but_since(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("since");
        }
        v
    };
    strip(a) == strip(b)
}

/// The thresholds of the last sweep's entry, and since when sweeps ran with them; `None`
/// without one.
pub fn last_sweep(section: Option<&Value>) -> Option<(Thresholds, Millis)> {
    let entry = section?.get("sweep")?;
    let at = parse_rfc3339(entry.get("since")?.as_str()?)?;
    let stored = entry.get("thresholds")?;
    let ms = |name: &str| {
        stored
            .get(name)
            .and_then(|t| t.get("ms"))
            .and_then(Value::as_i64)
            .filter(|ms| *ms > 0)
    };
    let thresholds = Thresholds {
        quiet: ms("quiet_after_ms"),
        stale: ms("stale_after_ms"),
        timeout: ms("timeout_after_ms"),
        stuck: ms("stuck_after_ms"),
        max_runtime: ms("max_runtime_ms"),
        launch_timeout: ms("launch_timeout_ms"),
        max_clock_skew: ms("max_clock_skew_ms").unwrap_or_default(),
    };
    Some((thresholds, at))
}

/// The configuration `explain` judges with: its own when any threshold flag was given, else
/// the last sweep's recorded one, else the defaults; and which it was.
pub fn explain_config(config: &Config, run: &Run) -> (Config, Origin) {
    if fields(&config.thresholds).iter().any(|(_, v)| v.is_some()) {
        return (config.clone(), Origin::Flags);
    }
    let state = run
        .dir()
        .open_child(OsStr::new(".flatline"))
        .ok()
        .flatten()
        .and_then(|dir| RunState::read(&dir).ok());
    match state.as_ref().and_then(|s| last_sweep(s.section(SECTION))) {
        Some((mut thresholds, at)) => {
            if thresholds.max_clock_skew == 0 {
                thresholds.max_clock_skew = config.thresholds.max_clock_skew;
            }
            let mut config = config.clone();
            config.thresholds = thresholds;
            (config, Origin::LastSweep(at))
        }
        None => (config.clone(), Origin::Defaults),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_entry_gives_its_flags_back() {
        let section = json!({"sweep": {
            "command": "sweep",
            "since": "2026-11-22T08:00:00.000Z",
            "exit_status": 0,
            "thresholds": {
                "stale_after_ms": {"ms": 30000, "source": "flag"},
                "timeout_after_ms": {"ms": null, "source": "default"},
                "max_clock_skew_ms": {"ms": 60000, "source": "resolved"},
            },
        }});
        let (thresholds, at) = last_sweep(Some(&section)).unwrap();
        assert_eq!(thresholds.stale, Some(30_000));
        assert_eq!(thresholds.timeout, None);
        assert_eq!(thresholds.max_clock_skew, 60_000);
        assert_eq!(at, parse_rfc3339("2026-11-22T08:00:00Z").unwrap());
        // Only a sweep's entry counts.
        let refresh = json!({"refresh": section["sweep"].clone()});
        assert!(last_sweep(Some(&refresh)).is_none());
        assert!(last_sweep(None).is_none());
    }
}
