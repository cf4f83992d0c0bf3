//! The documents of a listing that a scan visits, in the order it visits them.

use crate::fs::{Entries, Entry};
use std::ffi::OsStr;

/// The documents a scan visits: one bit per entry of the listing (SPEC §8: memory flat in
/// the number of files), visited in name order from `first`, wrapping around to the start.
#[derive(Debug, Clone)]
pub(super) struct Documents<'l> {
    entries: &'l Entries,
    /// Bit `i % 64` of word `i / 64`: the listing's entry `i` is visited.
    selected: Vec<u64>,
    len: usize,
    /// Where in the listing the visit starts.
    first: usize,
}

impl<'l> Documents<'l> {
    /// The entries of `entries` that `keep` keeps, in name order.
    pub(super) fn select(entries: &'l Entries, keep: impl Fn(&Entry<'_>) -> bool) -> Self {
        let mut selected = vec![0u64; entries.len().div_ceil(64)];
        let mut len = 0;
        for (i, entry) in entries.iter().enumerate() {
            if keep(&entry) {
                selected[i / 64] |= 1 << (i % 64);
                len += 1;
            }
        }
        Documents {
            entries,
            selected,
            len,
            first: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The documents in visiting order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Entry<'l>> + '_ {
        let all = self.entries.len();
        (self.first..all)
            .chain(0..self.first)
            .filter(|&i| self.selected[i / 64] & (1 << (i % 64)) != 0)
            .filter_map(|i| self.entries.get(i))
    }

    /// The documents `size` at a time.
    pub(super) fn chunks(&self, size: usize) -> impl Iterator<Item = Vec<Entry<'l>>> + '_ {
        let mut documents = self.iter();
        std::iter::from_fn(move || {
            let chunk: Vec<Entry<'l>> = documents.by_ref().take(size).collect();
            (!chunk.is_empty()).then_some(chunk)
        })
    }

    /// Starts at the first document whose name is not below `start` (a stopped scan's
    /// resume point, SPEC §4), and wraps around: one slow file cannot starve those after it.
    /// Without a document at or after it, the visit starts from the first one.
    pub(super) fn rotate_to(&mut self, start: Option<&OsStr>) {
        self.first = match start {
            Some(start) => self.entries.partition_point(|entry| entry.name < start),
            None => 0,
        };
    }
}
