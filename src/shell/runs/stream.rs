//! The stream facts: what a stat of a running worker's stream shows, alone or for a batch
//! read ahead.

use super::Run;
use crate::cli::config::Config;
use crate::core::lifecycle::{self, ChildStatus, ProcessFacts, StreamFacts, StreamInode};
use crate::fs::{self, FileMeta, NamedPathPolicy, ReadError, RunRoot};
use crate::model::{self, Delegation};
use std::path::PathBuf;

/// What a stat of a running worker's stream shows (SPEC §2): one `open_named` (`O_PATH`
/// and `fstat`, as the document's owner), never a read. Delegations that are not running
/// (or are reclaimed) are not looked at.
pub fn stream_facts(
    run: &Run,
    doc: &Delegation<'_>,
    owner: u32,
    config: &Config,
    facts: &ProcessFacts,
) -> StreamFacts {
    if matches!(facts, ProcessFacts::NotChecked) {
        return StreamFacts::NotLooked;
    }
    let Some(path) = crate::model::stream_path(doc) else {
        return StreamFacts::NotLooked;
    };
    let policy = NamedPathPolicy {
        allow_outside: config.allow_outside_paths,
        owner,
    };
    facts_of(fs::stat_named(&run.root, &path, policy))
}

/// The stream to stat for a delegation's view, when it has one and is running.
pub(super) fn stream_to_stat(doc: &Delegation<'_>) -> Option<PathBuf> {
    if lifecycle::child_status(doc) != ChildStatus::Running || lifecycle::is_reclaimed(doc) {
        return None;
    }
    crate::model::stream_path(doc)
}

pub(super) fn facts_of(stat: Result<FileMeta, ReadError>) -> StreamFacts {
    match stat {
        Ok(meta) => StreamFacts::Present {
            inode: StreamInode {
                dev: meta.dev,
                ino: meta.ino,
            },
            mtime_ms: meta.mtime_ms,
        },
        Err(ReadError::NotFound) => StreamFacts::Missing,
        Err(error) => StreamFacts::Unusable {
            not_readable_by_owner: matches!(error, ReadError::NotReadableByOwner(_)),
        },
    }
}

/// The stream facts of a batch of documents read ahead, stat'ed together: the streams of
/// documents whose owners flatline does not speak for cost one round trip to the owners'
/// reader thread per batch, not one per document. `None` for a document not looked at here
/// (unparsable, too large to have been read ahead): the caller looks itself.
pub(super) fn stream_facts_ahead(
    root: &RunRoot,
    allow_outside: bool,
    documents: &[Option<(FileMeta, &[u8])>],
) -> Vec<Option<StreamFacts>> {
    let mut wanted = Vec::new();
    let mut plan: Vec<Option<Option<usize>>> = Vec::with_capacity(documents.len());
    for document in documents {
        let Some((meta, bytes)) = document else {
            plan.push(None);
            continue;
        };
        // Most documents are not running: they are parsed once, by the caller, not here too.
        if !may_say_running(bytes) {
            plan.push(None);
            continue;
        }
        let Ok(doc) = model::parse_delegation(bytes) else {
            plan.push(None);
            continue;
        };
        match stream_to_stat(&doc) {
            None => plan.push(Some(None)),
            Some(path) => {
                let policy = NamedPathPolicy {
                    allow_outside,
                    owner: fs::guard_owner(meta),
                };
                plan.push(Some(Some(wanted.len())));
                wanted.push((path, policy));
            }
        }
    }
    let mut stats: Vec<Option<Result<FileMeta, ReadError>>> = fs::stat_named_many(root, &wanted)
        .into_iter()
        .map(Some)
        .collect();
    plan.into_iter()
        .map(|step| match step? {
            None => Some(StreamFacts::NotLooked),
            Some(index) => stats.get_mut(index)?.take().map(facts_of),
        })
        .collect()
}

/// Whether a document may record the status `running`, which is what makes its stream worth
/// a stat: only if the bytes hold `"running"`, as that status is written unless escaped. A
/// filter before the read-ahead's parse: a document it passes over (not running, or its
/// status spelled with escapes) gets its stream facts from the caller, after the caller's
/// own parse, exactly as a document the read-ahead could not parse.
fn may_say_running(bytes: &[u8]) -> bool {
    const RUNNING: &str = "\"running\"";
    match std::str::from_utf8(bytes) {
        Ok(text) => text.contains(RUNNING),
        Err(_) => true,
    }
}
