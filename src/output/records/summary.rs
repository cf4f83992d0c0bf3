//! The `--summary` rows of `status` (by run and task card) and the one-line tally under its
//! text table (SPEC §7).

use super::SummaryRecord;
use crate::core::health::WorkerTally;
use crate::core::lifecycle::{Tally, View};
use std::collections::BTreeMap;
use std::path::Path;

/// The `--summary` tallies of one run, by task card (no allocation per delegation: a card's
/// id is copied once, when the card is first seen).
#[derive(Debug, Default)]
pub(crate) struct CardTallies {
    cards: BTreeMap<String, Tally>,
    without_card: Option<Tally>,
}

impl CardTallies {
    pub(crate) fn add(&mut self, view: &View<'_>) {
        let tally = match view.task_card_id {
            None => self.without_card.get_or_insert_with(Tally::default),
            Some(card) => {
                if !self.cards.contains_key(card) {
                    self.cards.insert(card.to_string(), Tally::default());
                }
                match self.cards.get_mut(card) {
                    Some(tally) => tally,
                    None => return,
                }
            }
        };
        tally.add(view);
    }

    /// The rows in print order: delegations without a card first, then by card id.
    pub(crate) fn rows(self) -> impl Iterator<Item = (Option<String>, Tally)> {
        self.without_card
            .map(|tally| (None, tally))
            .into_iter()
            .chain(
                self.cards
                    .into_iter()
                    .map(|(card, tally)| (Some(card), tally)),
            )
    }
}

pub(crate) fn summary_record(run_dir: &Path, card: Option<String>, tally: Tally) -> SummaryRecord {
    SummaryRecord {
        run_dir: run_dir.to_string_lossy().into_owned(),
        task_card_id: card,
        tally,
    }
}

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
