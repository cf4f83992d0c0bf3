//! The one-line tally under `status`'s text table (SPEC §7).

use crate::core::health::WorkerTally;
use crate::core::lifecycle::Tally;

/// The text tally: delegations, heartbeat workers, or both.
pub(crate) fn tally_text(overall: &Tally, workers_overall: &WorkerTally) -> String {
    match (overall.total, workers_overall.total) {
        (_, 0) => text_tally(overall),
        (0, _) => worker_tally(workers_overall),
        _ => format!("{}; {}", text_tally(overall), worker_tally(workers_overall)),
    }
}

/// The one-line tally under the text table.
fn text_tally(tally: &Tally) -> String {
    let mut parts: Vec<String> = tally
        .fields()
        .iter()
        .skip(2)
        .filter(|(name, count)| {
            *count > 0 && !matches!(*name, "completed" | "failed" | "cancelled")
        })
        .map(|(name, count)| format!("{count} {name}"))
        .collect();
    if tally.failed > 0 {
        parts.push(format!("{} failed", tally.failed));
    }
    if tally.cancelled > 0 {
        parts.push(format!("{} cancelled", tally.cancelled));
    }
    let noun = if tally.total == 1 {
        "delegation"
    } else {
        "delegations"
    };
    if parts.is_empty() {
        format!("{} {noun}", tally.total)
    } else {
        format!("{} {noun}: {}", tally.total, parts.join(", "))
    }
}

fn worker_tally(tally: &WorkerTally) -> String {
    let parts: Vec<String> = tally
        .fields()
        .iter()
        .skip(1)
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| format!("{count} {name}"))
        .collect();
    let noun = if tally.total == 1 {
        "worker"
    } else {
        "workers"
    };
    format!("{} {noun}: {}", tally.total, parts.join(", "))
}
