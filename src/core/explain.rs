//! explain: the verdict on one delegation and every piece of evidence behind it (SPEC §13).
//!
//! Pure assembly: `shell/explain` reads the document, the stream's stat, the process and its
//! tree; this module says where each threshold came from, how the identity was decided,
//! what the uid guard makes of the process and what `sweep` would do next, as one JSON
//! object (`kind: "explain"`), and renders that object in words for a terminal.

use crate::core::identity::{Fingerprint, Identity, Observation, Window};
use crate::core::lifecycle::{
    DEFAULT_STALE_MS, NextAction, ProcessFacts, State, Thresholds, Times, View,
};
use crate::core::stall::Stall;
use crate::core::text::escape_control;
use crate::core::time::{Millis, format_duration, format_rfc3339};
use crate::model::Lifecycle;
use serde_json::{Map, Value, json};

/// Where the command-line thresholds of this run came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Flags given to `explain` itself.
    Flags,
    /// None given: the configuration the last sweep recorded (at that instant).
    LastSweep(Millis),
    /// None given and no sweep recorded one.
    Defaults,
}

impl Origin {
    fn source(self) -> &'static str {
        match self {
            Origin::Flags => "flag",
            Origin::LastSweep(_) => "last_sweep",
            Origin::Defaults => "default",
        }
    }

    fn describe(self) -> String {
        match self {
            Origin::Flags => "the flags given to explain".into(),
            Origin::LastSweep(at) => {
                format!(
                    "the last sweep's configuration (sweeps have run with it since {})",
                    format_rfc3339(at)
                )
            }
            Origin::Defaults => "defaults (no flags given, no sweep recorded)".into(),
        }
    }
}

/// What a stat of the worker's stream showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStat {
    /// No stream path (not running, or no id to build one from).
    None,
    Present {
        path: String,
        mtime: Millis,
        size: u64,
        dev: u64,
        ino: u64,
    },
    Refused {
        path: String,
        why: String,
    },
}

/// The uid guard's inputs (SPEC §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidFacts {
    pub file_uid: u32,
    /// Why the document is not its owner's word (hard links, writable by others), if so.
    pub foreign: Option<String>,
    pub process_uid: Option<u32>,
}

/// Everything gathered about one delegation.
pub struct Inputs<'a> {
    pub run_dir: &'a str,
    pub path: &'a str,
    pub view: &'a View<'a>,
    pub times: &'a Times,
    pub lifecycle: Option<&'a Lifecycle<'a>>,
    pub policy: &'a Thresholds,
    pub origin: Origin,
    pub stream: StreamStat,
    pub process: &'a ProcessFacts,
    pub fingerprint: Option<Fingerprint>,
    pub window: Option<Window>,
    pub uid: UidFacts,
    pub stall: Option<Stall>,
}

fn ts(ms: Option<Millis>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(format_rfc3339(ms)))
}

/// The explain object of one delegation.
pub fn explain(input: &Inputs<'_>) -> Value {
    let view = input.view;
    let (next, why) = next_step(input);
    json!({
        "kind": "explain",
        "schema_version": 1,
        "run_dir": input.run_dir,
        "path": input.path,
        "delegation_id": view.delegation_id,
        "status": view.status,
        "state": view.state.as_str(),
        "reclaim_state": view.reclaim_state.as_str(),
        "needs_attention": view.needs_attention(),
        "verdict": verdict(view),
        "timestamps": timestamps(input.times),
        "baseline": {
            "field": view.progress_baseline,
            "at": ts(view.last_progress_at),
            "age_ms": view.elapsed_since_progress_ms,
        },
        "stream": stream(&input.stream),
        "configuration": {"source": input.origin.source(), "described": input.origin.describe()},
        "thresholds": thresholds(input),
        "process": process(input),
        "uid_guard": uid_guard(input),
        "activity": view.activity.as_ref().map_or(Value::Null, activity),
        "stall": input.stall.as_ref().map_or(Value::Null, |s| json!({
            "code": s.code.as_str(), "detail": s.detail, "since": format_rfc3339(s.since),
        })),
        "next": {"action": view.next_action.as_str(), "sweep": next, "why": why},
        "warnings": view.warnings.iter().map(|w| w.code()).collect::<Vec<_>>(),
    })
}

/// The activity sample of the worker's tree, as status takes it (SPEC §11).
fn activity(a: &crate::core::activity::Activity) -> Value {
    json!({
        "busy": a.is_busy(),
        "cpu_ms": a.cpu_ms,
        "io_bytes": a.io_bytes,
        "processes": a.processes,
        "cpu_ms_since": a.cpu_ms_since,
        "io_bytes_since": a.io_bytes_since,
        "since": ts(a.since),
        "top": a.top.as_ref().map(|t| json!({
            "pid": t.pid, "comm": t.comm, "cpu_ms_since": t.cpu_ms_since,
        })),
    })
}

fn verdict(view: &View<'_>) -> String {
    if view.recovery_reason.is_empty() {
        view.summary.to_string()
    } else {
        format!("{}: {}", view.summary, view.recovery_reason)
    }
}

fn timestamps(times: &Times) -> Value {
    let mut map = Map::new();
    for (name, at) in [
        ("queued_at", times.queued_at),
        ("launch_requested_at", times.launch_requested_at),
        ("started_at", times.started_at),
        ("process_started_at", times.process_started_at),
        ("process_last_seen_at", times.process_last_seen_at),
        ("last_progress_at", times.last_progress_at),
        ("returned_at", times.returned_at),
        ("stale_at", times.stale_at),
        ("timed_out_at", times.timed_out_at),
    ] {
        if at.is_some() {
            map.insert(name.into(), ts(at));
        }
    }
    Value::Object(map)
}

fn stream(stat: &StreamStat) -> Value {
    match stat {
        StreamStat::None => Value::Null,
        StreamStat::Present {
            path,
            mtime,
            size,
            dev,
            ino,
        } => json!({
            "path": path, "mtime": format_rfc3339(*mtime), "size": size,
            "inode": {"dev": dev, "ino": ino}, "error": null,
        }),
        StreamStat::Refused { path, why } => json!({
            "path": path, "mtime": null, "size": null, "inode": null, "error": why,
        }),
    }
}

/// Each threshold in force and where it came from: the document, a flag (or the last
/// sweep's flag), or the default.
fn thresholds(input: &Inputs<'_>) -> Value {
    let effective = input.view.thresholds;
    let policy = input.policy;
    let l = input.lifecycle;
    let flag = input.origin.source();
    // (source, note): the source is one of document, flag, last_sweep, default, none.
    let pick = |document: &str, given: bool, default: &str| -> (String, String) {
        if !document.is_empty() {
            ("document".into(), format!("worker_lifecycle.{document}"))
        } else if given {
            (flag.into(), String::new())
        } else {
            ("default".into(), default.into())
        }
    };
    let own = |name: &'static str, field: Option<&crate::model::Field<crate::model::Int>>| {
        if field
            .and_then(|f| f.value())
            .is_some_and(|value| *value > 0)
        {
            name
        } else {
            ""
        }
    };
    let entry = |ms: Option<Millis>, (source, note): (String, String), capped: bool| {
        let note = match (capped, note.is_empty()) {
            (true, true) => "capped by --stuck-after".to_string(),
            (true, false) => format!("{note}, capped by --stuck-after"),
            (false, _) => note,
        };
        json!({"ms": ms, "source": source, "note": note})
    };
    let capped = |value: Millis| policy.stuck == Some(value);
    let optional = |ms: Option<Millis>| {
        let source = if ms.is_some() { flag } else { "none" };
        json!({"ms": ms, "source": source, "note": ""})
    };
    let stale_default = format_duration(DEFAULT_STALE_MS);
    json!({
        "quiet": entry(Some(effective.quiet), pick(
            own("quiet_after_ms", l.map(|l| &l.quiet_after_ms)), policy.quiet.is_some(), "stale / 2"),
            false),
        "stale": entry(Some(effective.stale), pick(
            own("stale_after_ms", l.map(|l| &l.stale_after_ms)), policy.stale.is_some(), &stale_default),
            capped(effective.stale)),
        "timeout": entry(Some(effective.timeout), pick(
            own("timeout_after_ms", l.map(|l| &l.timeout_after_ms)), policy.timeout.is_some(), "2 × stale"),
            capped(effective.timeout)),
        "max_runtime": optional(policy.max_runtime),
        "launch_timeout": optional(policy.launch_timeout),
    })
}

fn process(input: &Inputs<'_>) -> Value {
    let (pid, identity, start) = match input.process {
        ProcessFacts::NotChecked => {
            return json!({"pid": input.view.process_id, "checked": false,
                "how": "not looked at: the delegation is not running or is reclaimed"});
        }
        ProcessFacts::NoPid => {
            return json!({"pid": null, "checked": false, "how": "no process_id recorded"});
        }
        ProcessFacts::Invalid(invalid) => {
            return json!({"pid": input.view.process_id, "checked": false,
                "how": format!("invalid process id: {invalid:?}")});
        }
        ProcessFacts::Checked {
            pid,
            identity,
            observation,
        } => (pid.get(), *identity, *observation),
    };
    let started = match start {
        Observation::Alive { start_ms, .. } => Some(start_ms),
        _ => None,
    };
    let (decided_by, how) = match (&input.fingerprint, input.window) {
        (Some(fp), _) => (
            "fingerprint",
            format!(
                "the recorded fingerprint (start ticks {}, boot id {}, pid namespace {}) against the process now holding pid {pid}",
                fp.start_ticks, fp.boot_id, fp.pid_ns
            ),
        ),
        (None, Some(w)) => (
            "window",
            format!(
                "its start time against the window [{}, {}] from the recorded timestamps",
                format_rfc3339(w.lower),
                format_rfc3339(w.upper)
            ),
        ),
        (None, None) => ("window", "no timestamp to build a window from".into()),
    };
    json!({
        "pid": pid,
        "checked": true,
        "observed": observation_name(start),
        "started_at": ts(started),
        "alive": input.view.process_alive,
        "identity": identity.as_str(),
        "decided_by": decided_by,
        "window": input.window.map(|w| json!({"lower": format_rfc3339(w.lower), "upper": format_rfc3339(w.upper)})),
        "how": how,
    })
}

fn observation_name(observation: Observation) -> &'static str {
    match observation {
        Observation::Exited => "exited",
        Observation::Zombie => "zombie",
        Observation::NotThreadGroupLeader => "not a thread-group leader",
        Observation::KernelThread => "kernel thread",
        Observation::Hidden => "hidden",
        Observation::Alive { .. } => "alive",
    }
}

/// Whether the confused-deputy guard would let `sweep` signal this process.
fn guard(uid: &UidFacts) -> (bool, String) {
    if let Some(why) = &uid.foreign {
        return (
            false,
            format!("the document {why}: it is nobody's word, no process is signalled for it"),
        );
    }
    if uid.file_uid == 0 {
        return (true, "the document is root's: any process passes".into());
    }
    match uid.process_uid {
        Some(p) if p == uid.file_uid => (
            true,
            format!("the process's real uid {p} owns the document"),
        ),
        Some(p) => (
            false,
            format!(
                "the process's real uid {p} is not the document's owner {} (skipped_foreign without --allow-foreign-uid)",
                uid.file_uid
            ),
        ),
        None => (
            false,
            "the process's real uid could not be read: only a root-owned document passes".into(),
        ),
    }
}

fn uid_guard(input: &Inputs<'_>) -> Value {
    let (passes, why) = guard(&input.uid);
    json!({
        "document_uid": input.uid.file_uid,
        "process_uid": input.uid.process_uid,
        "passes": passes,
        "why": why,
    })
}

/// What `sweep` would do with this delegation next, and why.
fn next_step(input: &Inputs<'_>) -> (&'static str, String) {
    let view = input.view;
    match view.next_action {
        NextAction::Reclaim => match input.process {
            ProcessFacts::NoPid => (
                "mark_reclaimed",
                format!("{}; there is no process to signal (no_process)", view.recovery_reason),
            ),
            ProcessFacts::Checked {
                identity: Identity::Verified,
                pid,
                ..
            } => match guard(&input.uid) {
                (true, _) => (
                    "reclaim",
                    format!(
                        "{}; SIGTERM to pid {} and its descendants, SIGKILL after the grace",
                        view.recovery_reason,
                        pid.get()
                    ),
                ),
                (false, why) => ("skip", format!("skipped_foreign: {why}")),
            },
            ProcessFacts::Checked { identity, .. } => match identity {
                Identity::Gone | Identity::Reused => (
                    "finalize",
                    format!("the process is {}: the stream decides", identity.as_str()),
                ),
                _ => (
                    "skip",
                    "skipped_unverifiable: the process cannot be told to be the worker".into(),
                ),
            },
            _ => (
                "skip",
                "skipped_invalid_pid: the recorded process id is not valid".into(),
            ),
        },
        NextAction::Finalize => (
            "finalize",
            "the worker's process is gone or its pid reused: the stream is read once and the delegation completed or failed".into(),
        ),
        NextAction::Advance => ("none", "returned: fan-in counts it as done".into()),
        NextAction::None => ("none", format!("{}: nothing left to do", view.state.as_str())),
        NextAction::AwaitWorker => {
            let why = match view.state {
                State::Unknown => "the state is unknown: a person has to look".to_string(),
                _ if view.recovery_reason.is_empty() => view.summary.to_string(),
                _ => view.recovery_reason.clone(),
            };
            ("wait", why)
        }
    }
}

fn duration(ms: &Value) -> String {
    ms.as_i64().map_or_else(|| "-".into(), format_duration)
}

/// A value of the explain object as text; strings from documents escaped.
fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => escape_control(s).into_owned(),
        other => escape_control(&other.to_string()).into_owned(),
    }
}

/// The explain object in words, for a terminal. Text from documents is escaped.
pub fn to_text(record: &Value) -> String {
    let mut out = format!(
        "{} ({}): {}, {}\n",
        s(&record["delegation_id"]),
        s(&record["path"]),
        s(&record["state"]),
        s(&record["reclaim_state"])
    );
    for (label, text) in recorded_lines(record)
        .into_iter()
        .chain(process_lines(record))
    {
        out.push_str(&format!("  {label:<15}{text}\n"));
    }
    out
}

/// What the document and the stream say, and the thresholds.
fn recorded_lines(record: &Value) -> Vec<(&'static str, String)> {
    let times = record["timestamps"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {}", s(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let b = &record["baseline"];
    let st = &record["stream"];
    let stream = match st {
        Value::Null => "none".into(),
        _ if !st["error"].is_null() => format!("{}: {}", s(&st["path"]), s(&st["error"])),
        _ => format!(
            "{}: mtime {}, size {} bytes, inode {}:{}",
            s(&st["path"]),
            s(&st["mtime"]),
            s(&st["size"]),
            s(&st["inode"]["dev"]),
            s(&st["inode"]["ino"])
        ),
    };
    let t = &record["thresholds"];
    let thresholds = ["quiet", "stale", "timeout", "max_runtime", "launch_timeout"]
        .iter()
        .map(|k| {
            let e = &t[k];
            match (&e["ms"], e["note"].as_str().unwrap_or("")) {
                (Value::Null, _) => format!("{k} none"),
                (ms, "") => format!("{k} {} ({})", duration(ms), s(&e["source"])),
                (ms, note) => format!("{k} {} ({}: {})", duration(ms), s(&e["source"]), note),
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        ("verdict", s(&record["verdict"])),
        (
            "timestamps",
            if times.is_empty() {
                "none".into()
            } else {
                times
            },
        ),
        (
            "baseline",
            format!(
                "{} = {} (age {} ms)",
                s(&b["field"]),
                s(&b["at"]),
                s(&b["age_ms"])
            ),
        ),
        ("stream", stream),
        ("thresholds", thresholds),
        ("configuration", s(&record["configuration"]["described"])),
    ]
}

/// What the process is, may be signalled, is doing, and what sweep would do.
fn process_lines(record: &Value) -> Vec<(&'static str, String)> {
    let p = &record["process"];
    let process = match p["checked"].as_bool() {
        Some(true) => format!(
            "pid {} {}, started {}, identity {} by {}: {}",
            s(&p["pid"]),
            s(&p["observed"]),
            s(&p["started_at"]),
            s(&p["identity"]),
            s(&p["decided_by"]),
            s(&p["how"])
        ),
        _ => format!("pid {}: {}", s(&p["pid"]), s(&p["how"])),
    };
    let g = &record["uid_guard"];
    let verdict = if g["passes"] == Value::Bool(true) {
        "passes"
    } else {
        "blocks"
    };
    let stall = &record["stall"];
    let stall = match stall {
        Value::Null => "none (not a live, verified, quiet worker)".into(),
        _ => format!(
            "{} since {}: {}",
            s(&stall["code"]),
            s(&stall["since"]),
            s(&stall["detail"])
        ),
    };
    vec![
        ("process", process),
        ("uid guard", format!("{verdict}: {}", s(&g["why"]))),
        ("activity", activity_text(&record["activity"])),
        ("stall", stall),
        (
            "next",
            format!(
                "sweep would {}: {}",
                s(&record["next"]["sweep"]),
                s(&record["next"]["why"])
            ),
        ),
    ]
}

/// The activity line of the text form.
fn activity_text(a: &Value) -> String {
    if a.is_null() {
        return "not sampled (no live, verified process, or --no-activity)".into();
    }
    let mut text = format!("{} process(es), {} ms CPU", a["processes"], a["cpu_ms"]);
    match (&a["since"], &a["cpu_ms_since"]) {
        (Value::String(since), Value::Number(cpu)) => {
            text.push_str(&format!("; {cpu} ms CPU since the sample of {since}"));
        }
        _ => text.push_str("; no usable earlier sample"),
    }
    if let Some(top) = a["top"].as_object() {
        text.push_str(&format!(", top {} {}", s(&top["comm"]), s(&top["pid"])));
    }
    text.push_str(if a["busy"] == Value::Bool(true) {
        ": busy"
    } else {
        ": not busy"
    });
    text
}

#[cfg(test)]
mod tests;
