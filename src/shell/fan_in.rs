//! fan-in's work (SPEC §3.4), shared by `fan-in` and `sweep`: the cards and members of a
//! run (`read`), the decision of every card committed (`fan_in_run`), the stamps (`record`)
//! and the re-check after a conflict. The decision itself is pure: `core::plan::fan_in`.
//!
//! Ownership (SPEC §3.4, issue 12 classes 6 and 13): a card is `task-cards/<id>.json` only,
//! and counts only the members of its owner (root-owned ones count for every card). Whoever
//! can write a delegation or a file in `task-cards/` cannot join another owner's card, lift
//! its lane gate, inject a thread id into its record or get its delegations stamped.

use crate::cli::config::Config;
use crate::core::plan::fan_in::{CardDoc, FanIn, Member, Stamp, decide_owned};
use crate::core::plan::recheck;
use crate::core::time::Millis;
use crate::exit::Exit;
use crate::fs::{self, FileMeta, MAX_DOCUMENT_BYTES};
use crate::interrupt::Stop;
use crate::model::{self, Delegation};
use crate::output::{Diagnostics, FanInRecord, StampDetail, Ts};
use crate::shell::commit::{self, ApplyError, DocChange, object_mut, ts};
use crate::shell::runs::{self as scan, LazyHost, Run};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

mod read;
mod record;

pub use read::*;
pub use record::*;

/// The uid a document speaks for (SPEC §1.3): its owner's, when the file has one link and is
/// not writable by "other", and, owned by root, not by its group either (a root-owned 0666
/// file renamed into the run is not root's word). `None`: foreign for every owner check.
pub fn owned_document(meta: &FileMeta) -> Option<u32> {
    let writable_by_other = meta.mode & 0o002 != 0;
    let root_and_group_writable = meta.uid == 0 && meta.mode & 0o020 != 0;
    (meta.nlink == 1 && !writable_by_other && !root_and_group_writable).then_some(meta.uid)
}

impl Member {
    /// `Member::of`, for a document whose file has `meta`.
    pub fn of_file(doc: &Delegation<'_>, meta: &FileMeta) -> Member {
        Member {
            owner: owned_document(meta),
            ..Member::of(doc)
        }
    }
}

/// How the stamp of one delegation is committed: written at once (`fan-in`), or added to
/// the document's other changes (`sweep`). Returns false when it failed (reported).
pub type StampDelegation<'a> =
    dyn FnMut(&str, usize, &MemberFile, FanInStamp, &mut Diagnostics) -> bool + 'a;

/// What becomes of each card's `fan_in` record: printed at once (`fan-in`), or kept until
/// the writes are done (`sweep`). An error ends the run's fan-in.
pub type FanInRecords<'a, 'r> =
    dyn FnMut(FanInRecord<'r>, &mut Diagnostics) -> Result<(), Exit> + 'a;

/// Decides and commits the fan-in of every card of a run (those named with `--task-card`,
/// or all). Returns whether a card named with `--task-card` was not ready.
#[allow(clippy::too_many_arguments)]
pub fn fan_in_run<'r>(
    run: &'r Run,
    config: &Config,
    members: &BTreeMap<String, Vec<MemberFile>>,
    card_dir: Option<&fs::Dir>,
    cards: &BTreeMap<String, CardFile>,
    stamp_delegation: &mut StampDelegation<'_>,
    records: &mut FanInRecords<'_, 'r>,
    diag: &mut Diagnostics,
) -> Result<FanInOutcome, Exit> {
    let mut outcome = FanInOutcome::default();
    let ids = card_ids(config, members, cards);
    for id in &ids {
        let files = members.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let list: Vec<Member> = files.iter().map(|f| f.member.clone()).collect();
        let card = cards.get(id);
        let (decision, foreign) = decide_owned(&list, card.map(|c| &c.doc));
        let foreign_members: Vec<String> = foreign
            .iter()
            .map(|&i| {
                let name = files[i].name.to_string_lossy();
                crate::core::text::preview(name.trim_end_matches(".json"), 128)
            })
            .collect();
        let now = config.now;
        let (collapsed_at, result) = match &decision {
            FanIn::NotReady { .. } => {
                if config.task_cards.contains(id) {
                    outcome.named_not_ready = true;
                }
                (now, "not_ready")
            }
            FanIn::Collapsed { collapsed_at, .. } => (*collapsed_at, "already_collapsed"),
            FanIn::Collapse { stamp, .. } => {
                let stamp_change = FanInStamp { at: now };
                let mut ok = true;
                if !config.dry_run {
                    match stamp {
                        Stamp::Delegations(indices) => {
                            for &index in indices {
                                ok &=
                                    stamp_delegation(id, index, &files[index], stamp_change, diag);
                            }
                        }
                        Stamp::CardDocument => {
                            if let (Some(dir), Some(card)) = (card_dir, card) {
                                let (wrote, stamped) = stamp_card(run, dir, card, now, diag);
                                outcome.wrote_cards |= wrote;
                                ok &= stamped;
                            }
                        }
                    }
                }
                let done = if config.dry_run {
                    "dry_run"
                } else if ok {
                    outcome.collapsed += 1;
                    "collapsed"
                } else {
                    "failed"
                };
                (now, done)
            }
        };
        outcome.records += 1;
        let mut record = FanInRecord::new(&run.path, id, &decision, collapsed_at, result);
        record.foreign_members = (!foreign_members.is_empty()).then_some(foreign_members);
        records(record, diag)?;
    }
    Ok(outcome)
}

/// The cards to decide: every card with a member or a document, in order (those named with
/// `--task-card` only, and all of those).
fn card_ids(
    config: &Config,
    members: &BTreeMap<String, Vec<MemberFile>>,
    cards: &BTreeMap<String, CardFile>,
) -> Vec<String> {
    // A card known only from files that name it otherwise, with no member, has nothing to
    // decide: its problem lines say all there is (unless it is named with --task-card).
    let mut ids: Vec<&String> = members
        .keys()
        .chain(
            cards
                .iter()
                .filter(|(_, c)| !c.doc.missing)
                .map(|(id, _)| id),
        )
        .collect();
    ids.sort();
    ids.dedup();
    if !config.task_cards.is_empty() {
        ids.retain(|id| config.task_cards.contains(id));
        for named in &config.task_cards {
            if !ids.contains(&named) {
                ids.push(named);
            }
        }
    }
    ids.into_iter().cloned().collect()
}

/// Stamps a card's own document (`Stamp::CardDocument`): returns whether it wrote, and
/// whether the stamp is there (a failure is reported).
fn stamp_card(
    run: &Run,
    dir: &fs::Dir,
    card: &CardFile,
    now: Millis,
    diag: &mut Diagnostics,
) -> (bool, bool) {
    let stamp_change = FanInStamp { at: now };
    let target = commit::Target {
        dir,
        name: &card.name,
        bytes: &card.bytes,
    };
    let written = commit::write_change(target, stamp_change, now, false, |current| {
        model::check_document(current).map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_slice(current).map_err(|e| e.to_string())?;
        Ok((CardDoc::of(&value).collapsed_at.is_none()).then_some(stamp_change))
    });
    let ok = report_failure(
        &run.path.join("task-cards").join(&card.name),
        &written,
        diag,
    );
    (written.wrote(), ok)
}

/// What a fan-in pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct FanInOutcome {
    pub named_not_ready: bool,
    pub wrote_cards: bool,
    pub records: u64,
    pub collapsed: u64,
}

pub fn report_failure<C>(
    path: &std::path::Path,
    written: &commit::Written<C>,
    diag: &mut Diagnostics,
) -> bool {
    match written {
        commit::Written::Done { .. } | commit::Written::NothingLeft => true,
        commit::Written::Conflict(_) => {
            diag.error(
                path,
                &format!(
                    "changed by another writer {} times while flatline was writing it; left alone",
                    commit::MAX_RECOMPUTE + 1
                ),
                Exit::FileProblem,
            );
            false
        }
        commit::Written::Failed { error, .. } => {
            diag.error(path, error, Exit::FileProblem);
            false
        }
    }
}

/// After a conflict, the stamp still applies while the re-read delegation lacks it.
pub fn still_unstamped(
    bytes: &[u8],
    config: &Config,
    host: &LazyHost,
    stamp: FanInStamp,
) -> Result<Option<FanInStamp>, String> {
    scan::inspect(bytes, config, host, |doc, _, _, _| {
        recheck::stamp_applies(&Member::of(doc)).then_some(stamp)
    })
    .map_err(|error| error.to_string())
}

/// The members of every card, from one scan of `delegations/` (the bytes kept only of those
/// that may need a stamp).
pub(crate) fn gather_members(
    run: &Run,
    listing: &scan::Listing,
    config: &Config,
    host: &LazyHost,
    diag: &mut Diagnostics,
    stop: &Stop,
) -> Result<BTreeMap<String, Vec<MemberFile>>, Exit> {
    let mut members: BTreeMap<String, Vec<MemberFile>> = BTreeMap::new();
    scan::for_each_in_listing(run, listing, config, host, diag, stop, &mut |item, _| {
        let Some(card) = item.doc.task_card_id.str() else {
            return Ok(());
        };
        let member = Member::of_file(item.doc, &item.meta);
        let bytes = member.may_need_stamp().then(|| item.bytes.to_vec());
        members
            .entry(card.to_string())
            .or_default()
            .push(MemberFile {
                member,
                name: item.name.to_os_string(),
                path: item.path.to_path_buf(),
                bytes,
            });
        Ok(())
    })?;
    Ok(members)
}

#[cfg(test)]
mod tests;
