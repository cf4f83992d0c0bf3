//! The stall diagnosis of a quiet worker, taken with its activity sample (SPEC §11
//! "Diagnosis"), and the `Previous` kept with the sample in `.flatline/activity.json` so that
//! `since` and `disk_wait` carry across runs.

use super::{RunSamples, Tracker};
use crate::core::activity::{Activity, StoredSample};
use crate::core::lifecycle::View;
use crate::core::stall::{self, Previous, Stall, StallCode};
use crate::core::time;
use serde_json::{Value, json};
use std::collections::BTreeMap;

impl Tracker {
    /// Diagnoses what the tree of a live, verified worker waits on when its sample says it
    /// is not busy and it is past its quiet threshold; otherwise it has no stall. The previous diagnosis is this
    /// run's first look (the second look of SPEC §11), else the stored one of the same
    /// process (`fingerprint`).
    pub(super) fn diagnose_stall(
        &mut self,
        name: &str,
        view: &mut View<'_>,
        judged: &Activity,
        (pid, start_ticks): (i32, u64),
        fingerprint: &str,
    ) {
        let quiet = view
            .elapsed_since_progress_ms
            .is_some_and(|age| age >= view.thresholds.quiet);
        // Without a usable sample nothing says the tree is not busy: only the first look of
        // a worker left for the second one is diagnosed then (its diagnosis is the second
        // look's previous one).
        let unknown = judged.has_no_sample() && !self.defer_current;
        if judged.is_busy() || !quiet || unknown {
            self.run.fresh_stalls.remove(name);
            view.stall = None;
            return;
        }
        let Some(table) = self.table.as_ref() else {
            return;
        };
        let pids = crate::proc::stall::tree_pids(table.entries(), pid, start_ticks);
        let facts = self.reader.gather(&pids);
        let previous = match self.run.fresh_stalls.get(name) {
            Some(first) if self.run.second_look => Some(first),
            _ => self
                .run
                .stored_stalls
                .get(name)
                .filter(|_| self.run.stored_fingerprint(name) == Some(fingerprint)),
        };
        let found = stall::diagnose(&facts, previous);
        self.run.fresh_stalls.insert(
            name.to_owned(),
            Previous {
                stall: found.clone(),
                disk_sleepers: facts.disk_sleepers(),
            },
        );
        view.stall = Some(found);
    }
}

impl RunSamples {
    fn stored_fingerprint(&self, name: &str) -> Option<&str> {
        self.stored.get(name).map(|s| s.fingerprint.as_str())
    }

    /// The diagnoses to store with the samples: this run's for the workers it sampled
    /// (`fresh`), the stored one for those it `kept` as they were.
    pub(super) fn stalls_to_store(
        &self,
        kept: &BTreeMap<String, StoredSample>,
        fresh: &BTreeMap<String, StoredSample>,
    ) -> Stalls {
        let stored = kept
            .keys()
            .filter(|name| !fresh.contains_key(*name))
            .filter_map(|name| Some((name.clone(), self.stored_stalls.get(name)?.clone())));
        let taken = fresh
            .keys()
            .filter_map(|name| Some((name.clone(), self.fresh_stalls.get(name)?.clone())));
        stored.chain(taken).collect()
    }
}

/// Diagnoses by delegation file name.
pub(super) type Stalls = BTreeMap<String, Previous>;

/// The `stall` member of a stored sample; `None` when absent or malformed.
pub(super) fn parse(entry: &Value) -> Option<Previous> {
    let stall = entry.get("stall")?;
    let disk_sleepers = stall
        .get("disk_sleepers")?
        .as_array()?
        .iter()
        .map(|pid| pid.as_i64().and_then(|pid| i32::try_from(pid).ok()))
        .collect::<Option<Vec<i32>>>()?;
    Some(Previous {
        stall: Stall {
            code: StallCode::parse(stall.get("code")?.as_str()?)?,
            detail: stall.get("detail")?.as_str()?.to_owned(),
            since: time::parse_rfc3339(stall.get("since")?.as_str()?)?,
        },
        disk_sleepers,
    })
}

/// The `stall` member of a stored sample.
pub(super) fn render(previous: &Previous) -> Value {
    json!({
        "code": previous.stall.code.as_str(),
        "detail": previous.stall.detail,
        "since": time::format_rfc3339(previous.stall.since),
        "disk_sleepers": previous.disk_sleepers,
    })
}
