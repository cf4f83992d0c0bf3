//! `duplicate_delegation_id` (SPEC §13): `--delegation ID` names the file `ID.json`; when
//! another document of `delegations/` claims the same `delegation_id`, the two are one
//! problem, and no command acts on either. The one check every command that takes
//! `--delegation` uses (status, refresh, reclaim and its `--force`, sweep, finalize).

use super::{Listing, Run, is_document_name};
use crate::exit::Exit;
use crate::fs::MAX_DOCUMENT_BYTES;
use crate::output::Diagnostics;
use std::ffi::OsString;

/// A file named with `--delegation` and another document claiming its `delegation_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// `ID.json`.
    pub selected: OsString,
    /// The first other document, in file-name order, that claims the id.
    pub other: OsString,
    /// The `delegation_id` both claim.
    pub id: String,
}

/// The selected files of `ids` (`ID.json`, when listed) that another document of the listing
/// claims: by the selected file's own `delegation_id`, or by `ID` when it has none. Each
/// document is read once more, only when `ids` is not empty.
pub fn find(listing: &Listing, ids: &[String]) -> Vec<Duplicate> {
    let mut bytes = Vec::new();
    let mut wanted: Vec<(OsString, String)> = Vec::new();
    for id in ids {
        let selected = OsString::from(format!("{id}.json"));
        let Some(entry) = listing.entries.find(&selected) else {
            continue;
        };
        let own = match listing
            .dir
            .read_entry(&entry, MAX_DOCUMENT_BYTES, &mut bytes)
        {
            Ok(_) => delegation_id(&bytes),
            Err(_) => None,
        };
        let claimed = own.unwrap_or_else(|| id.clone());
        if !wanted.iter().any(|(name, _)| *name == selected) {
            wanted.push((selected, claimed));
        }
    }
    let mut found: Vec<Duplicate> = Vec::new();
    if wanted.is_empty() {
        return found;
    }
    for entry in listing.entries.iter() {
        if !is_document_name(entry.name) {
            continue;
        }
        if listing
            .dir
            .read_entry(&entry, MAX_DOCUMENT_BYTES, &mut bytes)
            .is_err()
        {
            continue;
        }
        let Some(claims) = delegation_id(&bytes) else {
            continue;
        };
        for (selected, id) in &wanted {
            let known = found.iter().any(|d| d.selected == *selected);
            if *selected != entry.name && *id == claims && !known {
                found.push(Duplicate {
                    selected: selected.clone(),
                    other: entry.name.to_os_string(),
                    id: id.clone(),
                });
            }
        }
    }
    found
}

fn delegation_id(bytes: &[u8]) -> Option<String> {
    crate::model::parse_delegation(bytes)
        .ok()
        .and_then(|doc| doc.delegation_id.str().map(str::to_owned))
}

impl Duplicate {
    /// The problem on stderr (and, with `--attention`, as a problem record): both files and
    /// the fix. Exit 1: it needs a person.
    pub fn report(&self, run: &Run, diag: &mut Diagnostics) {
        let dir = run.path.join("delegations");
        let message = format!(
            "duplicate_delegation_id: {} claims the delegation_id {:?} too; flatline acts on \
             neither file until one is removed or its delegation_id corrected",
            dir.join(&self.other).display(),
            self.id,
        );
        diag.error(&dir.join(&self.selected), &message, Exit::Attention);
    }
}

/// Whether `name` is the selected file of one of `duplicates`.
pub fn is_duplicated(duplicates: &[Duplicate], name: &std::ffi::OsStr) -> bool {
    duplicates.iter().any(|d| d.selected == name)
}
