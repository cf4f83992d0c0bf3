//! The documents of a listing that a scan visits, in the order it visits them.

use super::walk::resume_point;
use crate::fs::{Entries, Entry};
use std::ffi::OsStr;

/// The documents a scan visits, in the order it visits them: their positions in the listing,
/// 4 bytes a file (SPEC §8: memory flat in the number of files).
#[derive(Debug, Clone)]
pub(super) struct Documents<'l> {
    entries: &'l Entries,
    at: Vec<u32>,
}

impl<'l> Documents<'l> {
    /// The entries of `entries` that `keep` keeps, in name order.
    pub(super) fn select(entries: &'l Entries, keep: impl Fn(&Entry<'_>) -> bool) -> Self {
        let mut at = Vec::with_capacity(entries.len());
        // A listing has fewer than 2^32 entries: its names fit in 4 GiB (`Entries`).
        at.extend(
            (0u32..)
                .zip(entries.iter())
                .filter(|(_, entry)| keep(entry))
                .map(|(at, _)| at),
        );
        Documents { entries, at }
    }

    pub(super) fn len(&self) -> usize {
        self.at.len()
    }

    fn entry(&self, at: u32) -> Entry<'l> {
        // Positions come from the listing itself.
        self.entries
            .get(at as usize)
            .expect("a document's position is in its listing")
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = Entry<'l>> + '_ {
        self.at.iter().map(|&at| self.entry(at))
    }

    /// The documents `size` at a time.
    pub(super) fn chunks(&self, size: usize) -> impl Iterator<Item = Vec<Entry<'l>>> + '_ {
        self.at
            .chunks(size)
            .map(|chunk| chunk.iter().map(|&at| self.entry(at)).collect())
    }

    /// Starts at the first name not below `start`, wrapping around (`resume_point`).
    pub(super) fn rotate_to(&mut self, start: Option<&OsStr>) {
        let entries = self.entries;
        let name = |&at: &u32| entries.get(at as usize).map_or(OsStr::new(""), |e| e.name);
        let first = resume_point(&self.at, name, start);
        self.at.rotate_left(first);
    }
}
