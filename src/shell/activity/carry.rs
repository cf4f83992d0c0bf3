//! `status --watch` (SPEC §13): the previous passes' samples, kept in memory, are the stored
//! ones of the next pass (SPEC §11: the stored sample is the comparison point), so a pass
//! after the first compares at once instead of waiting for a second look.

use super::Tracker;
use crate::core::activity::StoredSample;
use crate::core::time::Millis;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// Each run's recent samples of each worker, oldest first, by run path.
pub(super) type Carried = BTreeMap<PathBuf, BTreeMap<String, VecDeque<StoredSample>>>;

impl Tracker {
    /// A tracker whose samples outlive a pass: `status --watch` keeps one across passes.
    pub fn for_watch() -> Tracker {
        Tracker {
            carried: Some(Carried::new()),
            ..Tracker::default()
        }
    }

    /// Starts a pass of a watch: it looks at `/proc` afresh and, like a fresh invocation,
    /// may wait once for a worker it has no usable sample of.
    pub fn new_pass(&mut self) {
        self.table = None;
        self.window_used = false;
    }

    /// At the start of a run's scan: the newest sample of each worker that is at least
    /// `window` old (else its oldest) replaces the one read from `activity.json`.
    pub(super) fn carry_in(&mut self, run_path: &Path, window: Millis, now: Millis) {
        let Some(workers) = self.carried.as_ref().and_then(|c| c.get(run_path)) else {
            return;
        };
        for (name, history) in workers {
            let base = history
                .iter()
                .rev()
                .find(|stored| now.saturating_sub(stored.sample.at_ms) >= window)
                .or(history.front());
            if let Some(base) = base {
                self.run.stored.insert(name.clone(), base.clone());
            }
        }
    }

    /// At the end of a run's scan: keeps the samples this pass took (the first look's and
    /// the latest), and forgets the workers it did not sample.
    pub(super) fn carry_out(&mut self, run_path: &Path, window: Millis) {
        let Some(carried) = self.carried.as_mut() else {
            return;
        };
        let workers = carried.entry(run_path.to_path_buf()).or_default();
        workers.retain(|name, _| self.run.fresh.contains_key(name));
        for (name, fresh) in &self.run.fresh {
            let history = workers.entry(name.clone()).or_default();
            let taken = self.run.first.get(name).into_iter().chain([fresh]);
            for stored in taken {
                if history.back().map(|last| last.sample.at_ms) < Some(stored.sample.at_ms) {
                    history.push_back(stored.clone());
                }
            }
            // Enough to find a sample a window old at the next pass: those within the
            // window of the latest, and one older.
            let latest = fresh.sample.at_ms;
            while history
                .get(1)
                .is_some_and(|next| latest.saturating_sub(next.sample.at_ms) >= window)
            {
                history.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::activity::Sample;

    fn stored_at(at_ms: Millis) -> StoredSample {
        StoredSample {
            fingerprint: "f".into(),
            sample: Sample {
                at_ms,
                ..Sample::default()
            },
        }
    }

    #[test]
    fn a_watch_pass_compares_with_the_previous_pass_sample_a_window_old() {
        let run = Path::new("/r");
        let mut tracker = Tracker::for_watch();
        // The first pass: a first look at 1 000 and a second look at 1 500.
        tracker.run.first.insert("d.json".into(), stored_at(1_000));
        tracker.run.fresh.insert("d.json".into(), stored_at(1_500));
        tracker.run.fresh.insert("e.json".into(), stored_at(1_500));
        tracker.carry_out(run, 500);
        tracker.run = Default::default();
        // The next pass right away: the first look is the one a window old.
        tracker.carry_in(run, 500, 1_600);
        let base = |t: &Tracker, name: &str| t.run.stored.get(name).map(|s| s.sample.at_ms);
        assert_eq!(base(&tracker, "d.json"), Some(1_000));
        // Nothing a window old yet: the oldest (the verdict says it is too recent).
        assert_eq!(base(&tracker, "e.json"), Some(1_500));
        // A pass later, the latest sample is old enough; e.json was not sampled: forgotten.
        tracker.run = Default::default();
        tracker.run.fresh.insert("d.json".into(), stored_at(2_100));
        tracker.carry_out(run, 500);
        tracker.run = Default::default();
        tracker.carry_in(run, 500, 2_700);
        assert_eq!(base(&tracker, "d.json"), Some(2_100));
        assert_eq!(base(&tracker, "e.json"), None);
        // Another run has its own samples; a tracker outside a watch carries nothing.
        tracker.run = Default::default();
        tracker.carry_in(Path::new("/other"), 500, 2_700);
        assert!(tracker.run.stored.is_empty());
        let mut plain = Tracker::default();
        plain.run.fresh.insert("d.json".into(), stored_at(1_500));
        plain.carry_out(run, 500);
        plain.run = Default::default();
        plain.carry_in(run, 500, 9_999);
        assert!(plain.run.stored.is_empty());
    }
}
