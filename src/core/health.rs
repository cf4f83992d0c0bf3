//! health: the pure health view of team-layout workers and their transitions (SPEC §5).
//!
//! A worker rewrites its `heartbeat.json` every few seconds; its health is the age of the
//! last heartbeat against two thresholds. Nothing here reads a file or a clock: the shell
//! hands in what it read (the heartbeat's bytes and mtime, the spec's mtime) and `now`.

use crate::core::time::{self, Millis};
use crate::model::{self, HeartbeatDoc};
use serde_json::{Value, json};
use std::borrow::Cow;

pub const DEFAULT_HEARTBEAT_STALE_MS: Millis = 60_000;
pub const DEFAULT_HEARTBEAT_DEAD_MS: Millis = 180_000;

/// Every health a worker can have, as printed and as `--state` takes them.
pub const HEALTHS: &[&str] = &[
    "healthy", "stalled", "dead", "stopped", "starting", "unknown",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Healthy,
    Stalled,
    Dead,
    /// The worker said it stopped: not an issue.
    Stopped,
    /// No heartbeat yet, and the spec is younger than the dead threshold.
    Starting,
    /// The heartbeat cannot be read or its time is too far in the future.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Stalled => "stalled",
            Health::Dead => "dead",
            Health::Stopped => "stopped",
            Health::Starting => "starting",
            Health::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Health> {
        Some(match text {
            "healthy" => Health::Healthy,
            "stalled" => Health::Stalled,
            "dead" => Health::Dead,
            "stopped" => Health::Stopped,
            "starting" => Health::Starting,
            "unknown" => Health::Unknown,
            _ => return None,
        })
    }

    /// What `--check` counts: stalled, dead, and a health that cannot be determined.
    pub fn needs_attention(self) -> bool {
        matches!(self, Health::Stalled | Health::Dead | Health::Unknown)
    }
}

/// Counts of one workers summary row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerTally {
    pub total: u64,
    pub by_health: [u64; 6],
}

impl WorkerTally {
    pub fn add(&mut self, health: Health) {
        self.total += 1;
        self.by_health[health as usize] += 1;
    }

    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        let mut fields = vec![("total", self.total)];
        for (name, count) in HEALTHS.iter().zip(self.by_health) {
            fields.push((name, count));
        }
        fields
    }
}

/// The heartbeat thresholds (`--heartbeat-stale`, `--heartbeat-dead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatThresholds {
    pub stale: Millis,
    pub dead: Millis,
    pub max_clock_skew: Millis,
}

impl Default for HeartbeatThresholds {
    fn default() -> Self {
        HeartbeatThresholds {
            stale: DEFAULT_HEARTBEAT_STALE_MS,
            dead: DEFAULT_HEARTBEAT_DEAD_MS,
            max_clock_skew: crate::core::lifecycle::DEFAULT_MAX_CLOCK_SKEW_MS,
        }
    }
}

/// What the shell found of a worker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat<'a> {
    /// No heartbeat file yet; the spec file's mtime.
    Missing { spec_mtime_ms: Millis },
    /// The heartbeat file's bytes and mtime.
    Read { bytes: &'a [u8], mtime_ms: Millis },
    /// It exists but could not be read (reported by the shell).
    Unreadable,
}

/// The health view of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerView {
    pub health: Health,
    pub heartbeat_status: Option<String>,
    pub last_heartbeat: Option<Millis>,
    pub heartbeat_age_ms: Option<Millis>,
    pub message: String,
    pub warnings: Vec<Cow<'static, str>>,
}

fn seconds(ms: Millis) -> Millis {
    ms / 1000
}

/// The health of a worker (SPEC §5). Pure.
pub fn health(beat: &Beat<'_>, now: Millis, thresholds: &HeartbeatThresholds) -> WorkerView {
    match beat {
        Beat::Unreadable => WorkerView {
            health: Health::Unknown,
            heartbeat_status: None,
            last_heartbeat: None,
            heartbeat_age_ms: None,
            message: "The heartbeat file cannot be read".into(),
            warnings: vec!["heartbeat_unreadable".into()],
        },
        Beat::Missing { spec_mtime_ms } => missing(*spec_mtime_ms, now, thresholds),
        Beat::Read { bytes, mtime_ms } => read(bytes, *mtime_ms, now, thresholds),
    }
}

/// No heartbeat file yet: starting until the dead threshold after the spec was written.
fn missing(spec_mtime_ms: Millis, now: Millis, thresholds: &HeartbeatThresholds) -> WorkerView {
    let age = (now - spec_mtime_ms).max(0);
    let (health, message) = if age < thresholds.dead {
        (Health::Starting, "Starting: no heartbeat yet".to_string())
    } else {
        (
            Health::Dead,
            format!(
                "No heartbeat since the worker spec was written {}s ago (threshold: {}s)",
                seconds(age),
                seconds(thresholds.dead)
            ),
        )
    };
    WorkerView {
        health,
        heartbeat_status: None,
        last_heartbeat: None,
        heartbeat_age_ms: None,
        message,
        warnings: Vec::new(),
    }
}

/// A heartbeat file was read: its status and stamp (or mtime), judged by age.
fn read(bytes: &[u8], mtime: Millis, now: Millis, thresholds: &HeartbeatThresholds) -> WorkerView {
    let mut warnings: Vec<Cow<'static, str>> = Vec::new();
    let parsed: Option<HeartbeatDoc<'_>> = model::parse_object(bytes).ok();
    let status = parsed
        .as_ref()
        .and_then(|doc| doc.status.str())
        .map(crate::core::text::escape_control)
        .map(|text| crate::core::text::preview(&text, 64));
    let stamped = parsed
        .as_ref()
        .and_then(|doc| doc.ts.str())
        .and_then(time::parse_rfc3339);
    // A writer caught mid-write must not flap a worker to stalled: fall back to the mtime.
    let last = stamped.unwrap_or_else(|| {
        warnings.push("heartbeat_unparsable".into());
        mtime
    });
    if status.as_deref() == Some("stopped") {
        return WorkerView {
            health: Health::Stopped,
            heartbeat_status: status,
            last_heartbeat: Some(last),
            heartbeat_age_ms: Some((now - last).max(0)),
            message: "Stopped".into(),
            warnings,
        };
    }
    if last > now.saturating_add(thresholds.max_clock_skew) {
        warnings.push("clock_skew".into());
        return WorkerView {
            health: Health::Unknown,
            heartbeat_status: status,
            last_heartbeat: Some(last),
            heartbeat_age_ms: None,
            message: "The heartbeat is stamped too far in the future to be trusted".into(),
            warnings,
        };
    }
    if last > now {
        warnings.push("clock_skew".into());
    }
    let age = (now - last).max(0);
    let (health, message) = by_age(age, thresholds);
    WorkerView {
        health,
        heartbeat_status: status,
        last_heartbeat: Some(last),
        heartbeat_age_ms: Some(age),
        message,
        warnings,
    }
}

/// Dead, stalled or healthy by the heartbeat's age, with the message that says why.
fn by_age(age: Millis, thresholds: &HeartbeatThresholds) -> (Health, String) {
    if age >= thresholds.dead {
        (
            Health::Dead,
            format!(
                "No heartbeat for {}s (threshold: {}s)",
                seconds(age),
                seconds(thresholds.dead)
            ),
        )
    } else if age >= thresholds.stale {
        (
            Health::Stalled,
            format!(
                "Stale heartbeat for {}s (threshold: {}s)",
                seconds(age),
                seconds(thresholds.stale)
            ),
        )
    } else {
        (
            Health::Healthy,
            format!("Heartbeat fresh ({}s ago)", seconds(age)),
        )
    }
}

/// A health change worth an event (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Stalled,
    Dead,
    Recovered,
}

impl Transition {
    pub fn kind(self) -> &'static str {
        match self {
            Transition::Stalled => "worker_stalled",
            Transition::Dead => "worker_dead",
            Transition::Recovered => "worker_recovered",
        }
    }
}

/// The event for a change from `previous` (`None`: no baseline yet) to `current`. Exactly
/// the transitions SPEC §5 lists: → stalled, → dead, stalled|dead → healthy|stopped. On the
/// first run only workers already stalled or dead emit.
pub fn transition(previous: Option<Health>, current: Health) -> Option<Transition> {
    match (previous, current) {
        (Some(Health::Stalled), Health::Stalled) | (Some(Health::Dead), Health::Dead) => None,
        (_, Health::Stalled) => Some(Transition::Stalled),
        (_, Health::Dead) => Some(Transition::Dead),
        (Some(Health::Stalled | Health::Dead), Health::Healthy | Health::Stopped) => {
            Some(Transition::Recovered)
        }
        _ => None,
    }
}

/// The health to remember for the next run: an unknown health does not erase what was
/// known (an unreadable heartbeat must not later look like a recovery).
pub fn remembered(previous: Option<Health>, current: Health) -> Option<Health> {
    match current {
        Health::Unknown => previous,
        other => Some(other),
    }
}

/// One line of `events.jsonl` in the run's envelope.
pub fn event_line(
    id: &str,
    run_id: &str,
    now: Millis,
    transition: Transition,
    worker: &str,
    message: &str,
) -> Vec<u8> {
    let event = json!({
        "id": id,
        "run_id": run_id,
        "ts": time::format_rfc3339(now),
        "schema_version": 1,
        "kind": transition.kind(),
        "actor": worker,
        "payload": {"message": message},
    });
    let mut line = serde_json::to_vec(&event).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The message of an event: what changed and why.
pub fn event_message(previous: Option<Health>, view: &WorkerView) -> String {
    match previous {
        Some(previous) => format!(
            "Worker health changed from {} to {}: {}",
            previous.as_str(),
            view.health.as_str(),
            view.message
        ),
        None => format!("Worker is {}: {}", view.health.as_str(), view.message),
    }
}

/// A UUID version 4 from 16 random bytes.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The `workers` section of `.flatline/state.json`: the last health of every worker.
pub const STATE_SECTION: &str = "workers";

/// The workers' last health from the state's `workers` section.
pub fn parse_state(section: &Value) -> Option<Vec<(String, Health)>> {
    let workers = section.as_object()?;
    Some(
        workers
            .iter()
            .filter_map(|(name, health)| Some((name.clone(), Health::parse(health.as_str()?)?)))
            .collect(),
    )
}

/// The state's `workers` section for the given healths.
pub fn render_state(workers: &[(String, Health)]) -> Value {
    let map: serde_json::Map<String, Value> = workers
        .iter()
        .map(|(name, health)| (name.clone(), json!(health.as_str())))
        .collect();
    Value::Object(map)
}

/// The section of `.flatline/state.json` that remembers the paths worker specs name and
/// that do not exist: `{worker_id: ["heartbeat", "inbox", …]}`.
pub const MISSING_PATHS_SECTION: &str = "missing_paths";

/// The (worker, kind) pairs of a stored `missing_paths` section; anything else is nothing.
pub fn parse_missing_paths(section: Option<&Value>) -> Vec<(String, String)> {
    let Some(workers) = section.and_then(Value::as_object) else {
        return Vec::new();
    };
    workers
        .iter()
        .flat_map(|(worker, kinds)| {
            kinds
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|kind| Some((worker.clone(), kind.as_str()?.to_string())))
        })
        .collect()
}

/// The state's `missing_paths` section for the given (worker, kind) pairs.
pub fn render_missing_paths(missing: &[(String, &'static str)]) -> Value {
    let mut workers = serde_json::Map::new();
    for (worker, kind) in missing {
        if let Value::Array(kinds) = workers
            .entry(worker.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            kinds.push(Value::from(*kind));
        }
    }
    Value::Object(workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_334_400_000;

    fn beat(json: &str) -> WorkerView {
        health(
            &Beat::Read {
                bytes: json.as_bytes(),
                mtime_ms: NOW - 1_000,
            },
            NOW,
            &HeartbeatThresholds::default(),
        )
    }

    fn ts(offset: Millis) -> String {
        time::format_rfc3339(NOW + offset)
    }

    #[test]
    fn health_by_age() {
        let fresh = beat(&format!(
            r#"{{"status":"alive","name":"w","ts":"{}"}}"#,
            ts(-5_000)
        ));
        assert_eq!(fresh.health, Health::Healthy);
        assert_eq!(fresh.message, "Heartbeat fresh (5s ago)");
        assert_eq!(fresh.heartbeat_status.as_deref(), Some("alive"));
        let stale = beat(&format!(r#"{{"status":"alive","ts":"{}"}}"#, ts(-75_000)));
        assert_eq!(stale.health, Health::Stalled);
        assert_eq!(stale.message, "Stale heartbeat for 75s (threshold: 60s)");
        let dead = beat(&format!(r#"{{"status":"alive","ts":"{}"}}"#, ts(-200_000)));
        assert_eq!(dead.health, Health::Dead);
        assert_eq!(dead.message, "No heartbeat for 200s (threshold: 180s)");
        assert_eq!(
            beat(&format!(r#"{{"ts":"{}"}}"#, ts(-60_000))).health,
            Health::Stalled
        );
        assert_eq!(
            beat(&format!(r#"{{"ts":"{}"}}"#, ts(-59_999))).health,
            Health::Healthy
        );
    }

    #[test]
    fn stopped_is_not_dead() {
        let stopped = beat(&format!(
            r#"{{"status":"stopped","ts":"{}"}}"#,
            ts(-3_600_000)
        ));
        assert_eq!(stopped.health, Health::Stopped);
        assert!(!stopped.health.needs_attention());
    }

    #[test]
    fn a_half_written_heartbeat_falls_back_to_the_mtime() {
        let torn = beat(r#"{"status":"alive","ts":"2026-11-2"#);
        assert_eq!(torn.health, Health::Healthy);
        assert_eq!(torn.warnings, ["heartbeat_unparsable"]);
        assert_eq!(torn.last_heartbeat, Some(NOW - 1_000));
        let no_ts = beat(r#"{"status":"alive"}"#);
        assert_eq!(no_ts.health, Health::Healthy);
        assert_eq!(no_ts.warnings, ["heartbeat_unparsable"]);
    }

    #[test]
    fn future_heartbeats_follow_the_clock_skew_rule() {
        let near = beat(&format!(r#"{{"ts":"{}"}}"#, ts(30_000)));
        assert_eq!(near.health, Health::Healthy);
        assert_eq!(near.heartbeat_age_ms, Some(0));
        assert_eq!(near.warnings, ["clock_skew"]);
        let far = beat(&format!(r#"{{"ts":"{}"}}"#, ts(86_400_000)));
        assert_eq!(far.health, Health::Unknown);
        assert_eq!(far.warnings, ["clock_skew"]);
        assert!(far.health.needs_attention());
    }

    #[test]
    fn no_heartbeat_is_starting_then_dead() {
        let thresholds = HeartbeatThresholds::default();
        let young = health(
            &Beat::Missing {
                spec_mtime_ms: NOW - 10_000,
            },
            NOW,
            &thresholds,
        );
        assert_eq!(young.health, Health::Starting);
        assert!(!young.health.needs_attention());
        let old = health(
            &Beat::Missing {
                spec_mtime_ms: NOW - 600_000,
            },
            NOW,
            &thresholds,
        );
        assert_eq!(old.health, Health::Dead);
        assert_eq!(
            old.message,
            "No heartbeat since the worker spec was written 600s ago (threshold: 180s)"
        );
    }

    #[test]
    fn exactly_the_listed_transitions_emit() {
        use Health::*;
        let all = [Healthy, Stalled, Dead, Stopped, Starting, Unknown];
        for previous in all.iter().map(|h| Some(*h)).chain([None]) {
            for current in all {
                let expected = match (previous, current) {
                    (Some(Stalled), Stalled) | (Some(Dead), Dead) => None,
                    (_, Stalled) => Some(Transition::Stalled),
                    (_, Dead) => Some(Transition::Dead),
                    (Some(Stalled | Dead), Healthy | Stopped) => Some(Transition::Recovered),
                    _ => None,
                };
                assert_eq!(
                    transition(previous, current),
                    expected,
                    "{previous:?} -> {current:?}"
                );
            }
        }
        // First run: a baseline, events only for workers already stalled or dead.
        assert_eq!(transition(None, Healthy), None);
        assert_eq!(transition(None, Stalled), Some(Transition::Stalled));
        assert_eq!(transition(Some(Healthy), Starting), None);
        assert_eq!(transition(Some(Dead), Stalled), Some(Transition::Stalled));
    }

    #[test]
    fn unknown_does_not_erase_the_baseline() {
        assert_eq!(
            remembered(Some(Health::Stalled), Health::Unknown),
            Some(Health::Stalled)
        );
        assert_eq!(remembered(None, Health::Unknown), None);
        assert_eq!(
            remembered(Some(Health::Stalled), Health::Healthy),
            Some(Health::Healthy)
        );
    }

    #[test]
    fn envelope_and_uuid() {
        let id = uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let line = event_line(&id, "run-1", NOW, Transition::Stalled, "w1", "m");
        assert_eq!(
            String::from_utf8(line).unwrap(),
            format!(
                "{{\"id\":\"{id}\",\"run_id\":\"run-1\",\"ts\":\"2026-11-22T08:00:00.000Z\",\"schema_version\":1,\"kind\":\"worker_stalled\",\"actor\":\"w1\",\"payload\":{{\"message\":\"m\"}}}}\n"
            )
        );
    }

    #[test]
    fn state_round_trips() {
        let state = vec![
            ("a".to_string(), Health::Stalled),
            ("b".to_string(), Health::Healthy),
        ];
        assert_eq!(parse_state(&render_state(&state)), Some(state));
        assert_eq!(parse_state(&json!("garbage")), None);
    }
}
