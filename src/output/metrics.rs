//! The prometheus metrics of a run (SPEC §6): its delegations by state, stall and health,
//! and the facts of flatline's own run; counted by `status` and `sweep`.

use super::Metrics;
use crate::core::health::WorkerTally;
use crate::core::lifecycle::View;
use std::collections::BTreeMap;
use std::path::Path;

/// What a run's delegations look like, for the prometheus gauges.
#[derive(Debug, Default, Clone)]
pub struct RunMetrics {
    pub states: BTreeMap<&'static str, u64>,
    pub reclaim_needed: u64,
    pub attention: u64,
    /// The largest progress age of a running, unreclaimed delegation.
    pub oldest_progress_ms: Option<i64>,
    /// Delegations by the stall their quiet worker's tree was diagnosed with (SPEC §11).
    pub stalls: BTreeMap<&'static str, u64>,
}

impl RunMetrics {
    pub fn add(&mut self, view: &View<'_>) {
        *self.states.entry(metric_state(view)).or_default() += 1;
        if view.reclaim_state == crate::core::lifecycle::ReclaimState::ReclaimNeeded {
            self.reclaim_needed += 1;
        }
        if view.needs_attention() {
            self.attention += 1;
        }
        if let Some(stall) = &view.stall {
            *self.stalls.entry(stall.code.as_str()).or_default() += 1;
        }
        let running = view.child_status == crate::core::lifecycle::ChildStatus::Running
            && view.reclaim_state != crate::core::lifecycle::ReclaimState::Reclaimed;
        if running && let Some(age) = view.elapsed_since_progress_ms {
            let oldest = self.oldest_progress_ms.get_or_insert(age);
            *oldest = (*oldest).max(age);
        }
    }

    /// A delegation counted in `state` was reclaimed by this run: it counts as reclaimed now.
    pub fn reclaimed_now(&mut self, state: &'static str) {
        if let Some(count) = self.states.get_mut(state)
            && *count > 0
        {
            *count -= 1;
            *self.states.entry("reclaimed").or_default() += 1;
        }
    }

    /// The gauges of one run: delegations by state, those that need reclaim or attention,
    /// the oldest progress age, and (when read) the workers by health. `run` is the run
    /// directory's canonical path (SPEC §7), so one run is one series however it was named.
    pub fn add_to(&self, metrics: &mut Metrics, run: &Path, workers: Option<&WorkerTally>) {
        let run = run.to_string_lossy().into_owned();
        for state in crate::core::lifecycle::STATES.iter().chain(&["reclaimed"]) {
            metrics.gauge(
                "flatline_delegations",
                "Delegations by lifecycle state.",
                vec![("run", run.clone()), ("state", state.to_string())],
                self.states.get(state).copied().unwrap_or(0) as f64,
            );
        }
        metrics.gauge(
            "flatline_delegations_reclaim_needed",
            "Delegations whose worker is stale or timed out and not yet reclaimed.",
            vec![("run", run.clone())],
            self.reclaim_needed as f64,
        );
        metrics.gauge(
            "flatline_delegations_needing_attention",
            "Delegations that need attention (what --check counts).",
            vec![("run", run.clone())],
            self.attention as f64,
        );
        metrics.gauge(
            "flatline_oldest_progress_age_seconds",
            "Progress age of the running delegation that progressed least recently (0 without one).",
            vec![("run", run.clone())],
            self.oldest_progress_ms.unwrap_or(0) as f64 / 1000.0,
        );
        for code in crate::core::stall::StallCode::ALL {
            let code = code.as_str();
            metrics.gauge(
                "flatline_stalls",
                "Delegations whose quiet worker's tree waits, by what it waits on.",
                vec![("run", run.clone()), ("code", code.to_string())],
                self.stalls.get(code).copied().unwrap_or(0) as f64,
            );
        }
        if let Some(workers) = workers {
            for (health, count) in workers.fields().into_iter().skip(1) {
                metrics.gauge(
                    "flatline_workers",
                    "Heartbeat workers by health.",
                    vec![("run", run.clone()), ("health", health.to_string())],
                    count as f64,
                );
            }
        }
    }
}

/// The state a delegation is counted under in `flatline_delegations`: a reclaimed one under
/// `reclaimed`, never under the `stale` or `timed_out` it was reclaimed in, so an alert on
/// stale gauges clears once the worker is reclaimed (SPEC §7).
fn metric_state(view: &View<'_>) -> &'static str {
    if view.reclaim_state == crate::core::lifecycle::ReclaimState::Reclaimed {
        "reclaimed"
    } else {
        view.state.as_str()
    }
}

/// The gauges about the run of flatline itself.
pub fn add_run_facts(metrics: &mut Metrics, now: crate::core::time::Millis, problems: usize) {
    metrics.gauge(
        "flatline_file_problems",
        "Files that could not be read, parsed or written in the last run.",
        vec![],
        problems as f64,
    );
    metrics.gauge(
        "flatline_last_run_timestamp_seconds",
        "When the last run looked, in seconds since the epoch.",
        vec![],
        now as f64 / 1000.0,
    );
}
