//! The `--summary` rows of status (SPEC §6): per task card of each run, and the heartbeat
//! workers of each run. They are printed after every record (in json, the document's
//! `summary`), so they wait until the end: as counts, a row made only as it is printed.

use super::*;
use crate::core::lifecycle::View;
use std::collections::BTreeMap;

/// A card's counts in `Tally::fields` order, 4 bytes each: a run of 100,000 delegations on
/// 12,500 cards keeps 12,500 of them until the end, where a `Tally` of 120 bytes each would
/// cost more than the whole listing of names (SPEC §8: ≤ 32 bytes a file).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts([u32; 15]);

impl Counts {
    fn add(&mut self, view: &View<'_>) {
        let mut one = Tally::default();
        one.add(view);
        self.add_tally(&one);
    }

    fn add_tally(&mut self, tally: &Tally) {
        for (count, (_, n)) in self.0.iter_mut().zip(tally.fields()) {
            // A listing holds fewer than 2^32 files (`fs::Entries`): never saturates.
            *count = count.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }

    fn tally(&self) -> Tally {
        let [
            total,
            active,
            queued,
            launching,
            running,
            running_quiet,
            running_busy,
            returned,
            completed,
            failed,
            cancelled,
            stale,
            timed_out,
            reclaim_needed,
            reclaimed,
        ] = self.0.map(u64::from);
        Tally {
            total,
            active,
            queued,
            launching,
            running,
            running_quiet,
            running_busy,
            returned,
            completed,
            failed,
            cancelled,
            stale,
            timed_out,
            reclaim_needed,
            reclaimed,
        }
    }
}

/// The `--summary` tallies of one run, by task card (no allocation per delegation: a card's
/// id is copied once, when the card is first seen). The map holds each card's position in
/// `counts`: its B-tree nodes, about half full, then hold 20 bytes a slot rather than 76.
#[derive(Debug, Default)]
pub(super) struct CardTallies {
    cards: BTreeMap<Box<str>, u32>,
    counts: Vec<Counts>,
    without_card: Option<Counts>,
}

impl CardTallies {
    pub(super) fn add(&mut self, view: &View<'_>) {
        let counts = match view.task_card_id {
            None => self.without_card.get_or_insert_with(Counts::default),
            Some(card) => {
                let at = match self.cards.get(card) {
                    Some(&at) => at,
                    None => {
                        // A card per delegation at most, and a listing holds fewer than
                        // 2^32 of them (`fs::Entries`).
                        let Ok(at) = u32::try_from(self.counts.len()) else {
                            return;
                        };
                        self.cards.insert(card.into(), at);
                        self.counts.push(Counts::default());
                        at
                    }
                };
                match self.counts.get_mut(at as usize) {
                    Some(counts) => counts,
                    None => return,
                }
            }
        };
        counts.add(view);
    }

    /// The rows in print order: delegations without a card first, then by card id.
    fn rows(&self) -> impl Iterator<Item = (Option<&str>, Tally)> {
        self.without_card
            .iter()
            .map(|counts| (None, counts.tally()))
            .chain(self.cards.iter().map(|(card, &at)| {
                let counts = self.counts.get(at as usize).copied().unwrap_or_default();
                (Some(&**card), counts.tally())
            }))
    }
}

/// Every summary row so far, in print order: for each run, its cards, then its workers.
#[derive(Debug, Default)]
pub(super) struct Summaries(Vec<(String, RunRows)>);

#[derive(Debug)]
enum RunRows {
    Cards(CardTallies),
    Workers(WorkerTally),
}

impl Summaries {
    pub(super) fn push_cards(&mut self, run: &Path, cards: CardTallies) {
        self.0.push((run_dir(run), RunRows::Cards(cards)));
    }

    pub(super) fn push_workers(&mut self, run: &Path, workers: WorkerTally) {
        self.0.push((run_dir(run), RunRows::Workers(workers)));
    }

    /// The rows, each made as it is asked for.
    pub(super) fn rows(&self) -> impl Iterator<Item = Row> + '_ {
        self.0
            .iter()
            .flat_map(|(run_dir, rows)| -> Box<dyn Iterator<Item = Row> + '_> {
                match rows {
                    RunRows::Cards(cards) => Box::new(cards.rows().map(|(card, tally)| {
                        Row::Card(SummaryRecord {
                            run_dir: run_dir.clone(),
                            task_card_id: card.map(str::to_string),
                            tally,
                        })
                    })),
                    RunRows::Workers(tally) => {
                        Box::new(std::iter::once(Row::Workers(WorkerSummary {
                            run_dir: run_dir.clone(),
                            tally: tally.clone(),
                        })))
                    }
                }
            })
    }
}

fn run_dir(run: &Path) -> String {
    run.to_string_lossy().into_owned()
}

/// One summary row, as printed.
#[derive(Debug)]
pub(super) enum Row {
    Card(SummaryRecord),
    Workers(WorkerSummary),
}

impl Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Row::Card(record) => record.serialize(serializer),
            Row::Workers(summary) => summary.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_keep_every_field_of_a_tally_in_its_place() {
        let mut tally = Tally::default();
        let fields = tally.fields().len() as u64;
        // Fifteen different counts: a field read back into another's place shows.
        for (i, (name, _)) in tally.clone().fields().iter().enumerate() {
            let n = i as u64 + 1;
            match *name {
                "total" => tally.total = n,
                "active" => tally.active = n,
                "queued" => tally.queued = n,
                "launching" => tally.launching = n,
                "running" => tally.running = n,
                "running_quiet" => tally.running_quiet = n,
                "running_busy" => tally.running_busy = n,
                "returned" => tally.returned = n,
                "completed" => tally.completed = n,
                "failed" => tally.failed = n,
                "cancelled" => tally.cancelled = n,
                "stale" => tally.stale = n,
                "timed_out" => tally.timed_out = n,
                "reclaim_needed" => tally.reclaim_needed = n,
                "reclaimed" => tally.reclaimed = n,
                other => panic!("a Tally field this test does not know: {other}"),
            }
        }
        let mut counts = Counts::default();
        counts.add_tally(&tally);
        counts.add_tally(&tally);
        let twice = counts.tally();
        let expected: Vec<u64> = (1..=fields).map(|n| 2 * n).collect();
        let got: Vec<u64> = twice.fields().iter().map(|(_, n)| *n).collect();
        assert_eq!(got, expected);
    }
}
