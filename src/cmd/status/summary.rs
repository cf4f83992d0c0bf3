//! The `--summary` rows of status (SPEC §6): per task card of each run.

use super::*;

/// The `--summary` tallies of one run, by task card (no allocation per delegation: a card's
/// id is copied once, when the card is first seen).
#[derive(Debug, Default)]
pub(super) struct CardTallies {
    cards: BTreeMap<String, Tally>,
    without_card: Option<Tally>,
}

impl CardTallies {
    pub(super) fn add(&mut self, view: &View<'_>) {
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
    pub(super) fn rows(self) -> impl Iterator<Item = (Option<String>, Tally)> {
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

pub(super) fn summary_record(run_dir: &Path, card: Option<String>, tally: Tally) -> SummaryRecord {
    SummaryRecord {
        run_dir: run_dir.to_string_lossy().into_owned(),
        task_card_id: card,
        tally,
    }
}
