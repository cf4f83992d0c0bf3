//! fanin: collapsing a task card's fan-in once all of its workers are done (SPEC §3.4).
//!
//! `decide` is pure: from the card's delegations (as members) and its task card document it
//! says whether the card is ready, already collapsed, or to be collapsed now and where the
//! stamp goes. The shell (`run`) gathers members in one scan, writes the stamps through the
//! store, and prints one `fan_in` record per card.

use crate::clock::{self, Millis};
use crate::commit::{self, ApplyError, DocChange, object_mut, ts};
use crate::config::Config;
use crate::doc::{self, Delegation};
use crate::exit::Exit;
use crate::files::{self, MAX_DOCUMENT_BYTES};
use crate::lifecycle::{self, ChildStatus};
use crate::output::{Diagnostics, Output, PathText, Ts};
use crate::scan::{self, LazyHost, Run};
use crate::stop::Stop;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// Lane statuses that let a parallel fan-out through its gate.
const LANE_DONE: &[&str] = &["completed", "failed", "stalled", "reclaimed", "merged"];

/// One delegation of a card, as fan-in sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub delegation_id: Option<String>,
    pub status: ChildStatus,
    /// The status as recorded, for the warning on an unknown one.
    pub raw_status: String,
    pub reclaimed: bool,
    pub collapsed_at: Option<Millis>,
    pub thread_id: Option<String>,
}

impl Member {
    pub fn of(doc: &Delegation<'_>) -> Member {
        Member {
            delegation_id: doc.delegation_id.str().map(str::to_string),
            status: lifecycle::child_status(doc),
            raw_status: lifecycle::recorded_status(doc)
                .unwrap_or("queued")
                .to_string(),
            reclaimed: lifecycle::is_reclaimed(doc),
            collapsed_at: doc.fan_in_collapsed_at.str().and_then(clock::parse_rfc3339),
            thread_id: doc
                .worker_result
                .value()
                .and_then(|r| r.thread_id.str())
                .map(|t| crate::text::preview(t, 256)),
        }
    }

    /// Still working: queued, running, or a status flatline does not know (SPEC §3.4).
    pub fn is_active(&self) -> bool {
        !self.reclaimed && !self.status.is_terminal()
    }

    /// A finished delegation that has no stamp yet: it may be stamped by this run.
    pub fn may_need_stamp(&self) -> bool {
        !self.is_active() && self.collapsed_at.is_none()
    }
}

/// What fan-in reads of a task card document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardDoc {
    /// `worker_result_envelope.status`, else `subagent_fan_in.status`.
    pub envelope_status: Option<String>,
    pub collapsed_at: Option<Millis>,
    /// Required lanes whose lifecycle status is not done yet.
    pub waiting_lanes: Vec<String>,
}

impl CardDoc {
    pub fn of(value: &Value) -> CardDoc {
        let envelope_status = ["worker_result_envelope", "subagent_fan_in"]
            .iter()
            .find_map(|key| value.get(key))
            .and_then(|envelope| envelope.get("status"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let collapsed_at = value
            .get("fan_in_collapsed_at")
            .and_then(Value::as_str)
            .and_then(clock::parse_rfc3339);
        let fanout = value.get("parallel_fanout");
        let mut waiting_lanes = Vec::new();
        if let Some(required) = fanout
            .and_then(|f| f.get("required_lane_ids"))
            .and_then(Value::as_array)
        {
            for lane in required {
                let id = match lane {
                    Value::String(id) => id.clone(),
                    other => other.to_string(),
                };
                let status = fanout
                    .and_then(|f| f.get("lanes"))
                    .and_then(|lanes| lanes.get(&id))
                    .and_then(|lane| lane.get("lifecycle"))
                    .and_then(|lifecycle| lifecycle.get("status"))
                    .and_then(Value::as_str);
                if !status.is_some_and(|s| LANE_DONE.contains(&s)) {
                    waiting_lanes.push(crate::text::preview(&id, 128));
                }
            }
        }
        CardDoc {
            envelope_status,
            collapsed_at,
            waiting_lanes,
        }
    }
}

/// Where the collapse stamp goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// On these members (by index): those that lack it.
    Delegations(Vec<usize>),
    /// On the task card document: the card has no delegation.
    CardDocument,
}

/// The terminal counts of a card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub thread_ids: Vec<String>,
}

impl Counts {
    pub fn summary(&self) -> String {
        if self.failed == 0 && self.cancelled == 0 {
            format!(
                "Collapsed fan-in after {} completed worker result(s).",
                self.completed
            )
        } else {
            format!(
                "Collapsed fan-in after terminal worker results ({} completed, {} failed, {} cancelled).",
                self.completed, self.failed, self.cancelled
            )
        }
    }
}

/// The fan-in decision for one card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanIn {
    NotReady {
        active: u64,
        waiting_lanes: Vec<String>,
        warnings: Vec<String>,
    },
    /// Ready and not yet collapsed: stamp now.
    Collapse { counts: Counts, stamp: Stamp },
    /// Collapsed by an earlier run: report its time, write nothing.
    Collapsed {
        counts: Counts,
        collapsed_at: Millis,
    },
}

/// SPEC §3.4. Pure.
pub fn decide(members: &[Member], card: Option<&CardDoc>) -> FanIn {
    let waiting_lanes = card.map(|c| c.waiting_lanes.clone()).unwrap_or_default();
    if members.is_empty() {
        let Some(card) = card else {
            return FanIn::NotReady {
                active: 0,
                waiting_lanes,
                warnings: vec!["no delegation and no task card document".into()],
            };
        };
        let status = card
            .envelope_status
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase());
        let counts = match status.as_deref() {
            Some("completed" | "passed" | "success") => Counts {
                completed: 1,
                ..Counts::default()
            },
            Some("failed" | "error") => Counts {
                failed: 1,
                ..Counts::default()
            },
            Some("cancelled" | "canceled") => Counts {
                cancelled: 1,
                ..Counts::default()
            },
            other => {
                let warning = match other {
                    Some(_) => format!(
                        "worker_result_envelope status '{}' is not terminal",
                        crate::text::escape_control(card.envelope_status.as_deref().unwrap_or(""))
                    ),
                    None => "no delegation and no worker_result_envelope status".to_string(),
                };
                return FanIn::NotReady {
                    active: 0,
                    waiting_lanes,
                    warnings: vec![warning],
                };
            }
        };
        if !waiting_lanes.is_empty() {
            return FanIn::NotReady {
                active: 0,
                waiting_lanes,
                warnings: Vec::new(),
            };
        }
        return match card.collapsed_at {
            Some(at) => FanIn::Collapsed {
                counts,
                collapsed_at: at,
            },
            None => FanIn::Collapse {
                counts,
                stamp: Stamp::CardDocument,
            },
        };
    }
    let active = members.iter().filter(|m| m.is_active()).count() as u64;
    let warnings: Vec<String> = members
        .iter()
        .filter(|m| m.status == ChildStatus::Other && !m.reclaimed)
        .map(|m| {
            format!(
                "unknown_status: delegation {} has status '{}' and counts as active",
                m.delegation_id.as_deref().unwrap_or("?"),
                crate::text::escape_control(&m.raw_status)
            )
        })
        .collect();
    if active > 0 || !waiting_lanes.is_empty() {
        return FanIn::NotReady {
            active,
            waiting_lanes,
            warnings,
        };
    }
    let mut counts = Counts::default();
    for member in members {
        match member.status {
            ChildStatus::Completed => {
                counts.completed += 1;
                if let Some(thread) = &member.thread_id {
                    counts.thread_ids.push(thread.clone());
                }
            }
            ChildStatus::Cancelled => counts.cancelled += 1,
            // Failed, and anything a reclaim ended.
            _ => counts.failed += 1,
        }
    }
    let lacking: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.collapsed_at.is_none())
        .map(|(i, _)| i)
        .collect();
    if lacking.is_empty() {
        let collapsed_at = members
            .iter()
            .filter_map(|m| m.collapsed_at)
            .min()
            .unwrap_or(0);
        return FanIn::Collapsed {
            counts,
            collapsed_at,
        };
    }
    FanIn::Collapse {
        counts,
        stamp: Stamp::Delegations(lacking),
    }
}

/// The collapse stamp on one document: `fan_in_collapsed_at` and `updated_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanInStamp {
    pub at: Millis,
}

impl DocChange for FanInStamp {
    fn action(&self) -> &'static str {
        "fan_in_stamped"
    }

    fn detail(&self) -> Map<String, Value> {
        let mut detail = Map::new();
        detail.insert("fan_in_collapsed_at".into(), json!(Ts(Some(self.at))));
        detail
    }

    fn apply(&self, doc: &mut Value, _now: Millis) -> Result<(), ApplyError> {
        let object = object_mut(doc)?;
        object.insert("fan_in_collapsed_at".into(), ts(self.at));
        object.insert("updated_at".into(), ts(self.at));
        Ok(())
    }
}

/// A `fan_in` record (SPEC §3.4, §7).
#[derive(Debug, Serialize)]
pub struct FanInRecord<'a> {
    pub kind: &'static str,
    pub run_dir: PathText<'a>,
    pub task_card_id: &'a str,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collapsed_at: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_lanes: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<&'a [String]>,
}

impl<'a> FanInRecord<'a> {
    /// The record of a decision; `outcome` says what this run did for a ready card
    /// (`collapsed`, `already_collapsed`, `dry_run`, `failed`).
    pub fn new(
        run: &'a Run,
        card: &'a str,
        decision: &'a FanIn,
        collapsed_at: Millis,
        outcome: &'static str,
    ) -> FanInRecord<'a> {
        let empty = FanInRecord {
            kind: "fan_in",
            run_dir: PathText(&run.path),
            task_card_id: card,
            ready: true,
            outcome: None,
            collapsed_at: None,
            completed: None,
            failed: None,
            cancelled: None,
            summary: None,
            thread_ids: None,
            active: None,
            waiting_lanes: None,
            warnings: None,
        };
        match decision {
            FanIn::NotReady {
                active,
                waiting_lanes,
                warnings,
            } => FanInRecord {
                ready: false,
                active: Some(*active),
                waiting_lanes: (!waiting_lanes.is_empty()).then_some(waiting_lanes.as_slice()),
                warnings: (!warnings.is_empty()).then_some(warnings.as_slice()),
                ..empty
            },
            FanIn::Collapse { counts, .. } | FanIn::Collapsed { counts, .. } => FanInRecord {
                outcome: Some(outcome),
                collapsed_at: Some(Ts(Some(collapsed_at))),
                completed: Some(counts.completed),
                failed: Some(counts.failed),
                cancelled: Some(counts.cancelled),
                summary: Some(counts.summary()),
                thread_ids: Some(&counts.thread_ids),
                ..empty
            },
        }
    }
}

/// A delegation of a card, with what a stamp would need to be written.
#[derive(Debug)]
pub struct MemberFile {
    pub member: Member,
    pub name: OsString,
    pub path: PathBuf,
    /// The bytes as read, kept only while a stamp may be needed.
    pub bytes: Option<Vec<u8>>,
}

/// A task card document, read.
#[derive(Debug)]
pub struct CardFile {
    pub doc: CardDoc,
    pub name: OsString,
    pub bytes: Vec<u8>,
}

/// Reads `RUN_DIR/task-cards/*.json`: the card id is the document's `task_card_id`, else
/// the file name without `.json`.
pub fn read_cards(
    run: &Run,
    config: &Config,
    diag: &mut Diagnostics,
) -> (Option<scan::Listing>, BTreeMap<String, CardFile>) {
    let mut cards = BTreeMap::new();
    let Some(listing) = scan::list_for_writing(run, "task-cards", config, diag) else {
        return (None, cards);
    };
    let mut buf = Vec::new();
    for entry in &listing.entries {
        if !scan::is_document_name(&entry.name) {
            continue;
        }
        let path = scan::entry_path(run, "task-cards", &entry.name);
        if let Err(error) = listing.dir.read_entry(entry, MAX_DOCUMENT_BYTES, &mut buf) {
            diag.error(&path, &error.to_string(), Exit::FileProblem);
            continue;
        }
        // What a card's rewrite could not keep is a problem before anything is decided on it.
        if let Err(error) = doc::check_document(&buf) {
            diag.error(&path, &error.to_string(), Exit::FileProblem);
            continue;
        }
        let value: Value = match serde_json::from_slice(&buf) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => {
                diag.error(&path, "not a JSON object", Exit::FileProblem);
                continue;
            }
            Err(error) => {
                diag.error(
                    &path,
                    &doc::syntax_error(&buf, &error).to_string(),
                    Exit::FileProblem,
                );
                continue;
            }
        };
        let id = value
            .get("task_card_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                let name = entry.name.to_string_lossy();
                name.trim_end_matches(".json").to_string()
            });
        cards.insert(
            id,
            CardFile {
                doc: CardDoc::of(&value),
                name: entry.name.clone(),
                bytes: std::mem::take(&mut buf),
            },
        );
    }
    (Some(listing), cards)
}

/// How the stamp of one delegation is committed: written at once (`fan-in`), or added to
/// the document's other changes (`sweep`). Returns false when it failed (reported).
pub type StampDelegation<'a> =
    dyn FnMut(&str, usize, &MemberFile, FanInStamp, &mut Diagnostics) -> bool + 'a;

/// Decides and commits the fan-in of every card of a run (those named with `--task-card`,
/// or all). Returns whether a card named with `--task-card` was not ready.
#[allow(clippy::too_many_arguments)]
pub fn fan_in_run(
    run: &Run,
    config: &Config,
    members: &BTreeMap<String, Vec<MemberFile>>,
    card_dir: Option<&files::Dir>,
    cards: &BTreeMap<String, CardFile>,
    stamp_delegation: &mut StampDelegation<'_>,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> Result<FanInOutcome, Exit> {
    let mut outcome = FanInOutcome::default();
    let mut ids: Vec<&String> = members.keys().chain(cards.keys()).collect();
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
    let ids: Vec<String> = ids.into_iter().cloned().collect();
    for id in &ids {
        let files = members.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let list: Vec<Member> = files.iter().map(|f| f.member.clone()).collect();
        let card = cards.get(id);
        let decision = decide(&list, card.map(|c| &c.doc));
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
                                let target = commit::Target {
                                    dir,
                                    name: &card.name,
                                    bytes: &card.bytes,
                                };
                                let written = commit::write_change(
                                    target,
                                    stamp_change,
                                    now,
                                    false,
                                    |current| {
                                        doc::check_document(current).map_err(|e| e.to_string())?;
                                        let value: Value = serde_json::from_slice(current)
                                            .map_err(|e| e.to_string())?;
                                        Ok((CardDoc::of(&value).collapsed_at.is_none())
                                            .then_some(stamp_change))
                                    },
                                );
                                outcome.wrote_cards |= written.wrote();
                                ok &= report_failure(
                                    &run.path.join("task-cards").join(&card.name),
                                    &written,
                                    diag,
                                );
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
        output
            .record(&FanInRecord::new(run, id, &decision, collapsed_at, result))
            .map_err(|error| crate::status::stdout_failed(diag, &error))?;
    }
    Ok(outcome)
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
        Member::of(doc).may_need_stamp().then_some(stamp)
    })
    .map_err(|error| error.to_string())
}

/// `flatline fan-in`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let mut output = Output::for_runs(config, &runs);
    let host = LazyHost::default();
    let mut named_not_ready = false;
    for run in &runs {
        if let Some(exit) = stop.check() {
            diag.raise(exit);
            break;
        }
        let Some(_lock) = commit::lock_run(run, config, stop, diag) else {
            continue;
        };
        let listing = scan::list_for_writing(run, "delegations", config, diag);
        let mut members: BTreeMap<String, Vec<MemberFile>> = BTreeMap::new();
        if let Some(listing) = &listing {
            let result = scan::for_each_in_listing(
                run,
                listing,
                config,
                &host,
                diag,
                stop,
                &mut |item, _| {
                    let Some(card) = item.doc.task_card_id.str() else {
                        return Ok(());
                    };
                    let member = Member::of(item.doc);
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
                },
            );
            if let Err(exit) = result {
                diag.raise(exit);
                break;
            }
        }
        let (card_listing, cards) = read_cards(run, config, diag);
        let mut wrote_delegations = false;
        let delegation_dir = listing.as_ref().map(|l| &l.dir);
        let mut stamp =
            |_: &str, _: usize, file: &MemberFile, change: FanInStamp, diag: &mut Diagnostics| {
                let (Some(dir), Some(bytes)) = (delegation_dir, &file.bytes) else {
                    return true;
                };
                let target = commit::Target {
                    dir,
                    name: &file.name,
                    bytes,
                };
                let written = commit::write_change(target, change, config.now, false, |current| {
                    still_unstamped(current, config, &host, change)
                });
                wrote_delegations |= written.wrote();
                report_failure(&file.path, &written, diag)
            };
        let done = fan_in_run(
            run,
            config,
            &members,
            card_listing.as_ref().map(|l| &l.dir),
            &cards,
            &mut stamp,
            &mut output,
            diag,
        );
        match done {
            Ok(outcome) => {
                named_not_ready |= outcome.named_not_ready;
                if let Some(listing) = &listing {
                    commit::sync(&listing.dir, wrote_delegations, diag);
                }
                if let Some(card_listing) = &card_listing {
                    commit::sync(&card_listing.dir, outcome.wrote_cards, diag);
                }
            }
            Err(exit) => {
                diag.raise(exit);
                break;
            }
        }
    }
    if let Err(error) = output.finish::<Value>(&[], &diag.errors.clone(), "") {
        crate::status::stdout_failed(diag, &error);
    }
    if named_not_ready {
        diag.raise(Exit::Attention);
    }
    diag.exit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(status: ChildStatus, collapsed: Option<Millis>, thread: Option<&str>) -> Member {
        Member {
            delegation_id: Some("d".into()),
            status,
            raw_status: "x".into(),
            reclaimed: false,
            collapsed_at: collapsed,
            thread_id: thread.map(str::to_string),
        }
    }

    #[test]
    fn all_terminal_collapses_once() {
        let members = [
            member(ChildStatus::Completed, None, Some("t1")),
            member(ChildStatus::Completed, Some(5), Some("t2")),
        ];
        let FanIn::Collapse { counts, stamp } = decide(&members, None) else {
            panic!("expected a collapse");
        };
        assert_eq!(stamp, Stamp::Delegations(vec![0]));
        assert_eq!(counts.thread_ids, ["t1", "t2"]);
        assert_eq!(
            counts.summary(),
            "Collapsed fan-in after 2 completed worker result(s)."
        );
        let stamped = [
            member(ChildStatus::Completed, Some(9), None),
            member(ChildStatus::Failed, Some(7), None),
        ];
        let FanIn::Collapsed {
            counts,
            collapsed_at,
        } = decide(&stamped, None)
        else {
            panic!("expected collapsed");
        };
        assert_eq!(collapsed_at, 7);
        assert_eq!(
            counts.summary(),
            "Collapsed fan-in after terminal worker results (1 completed, 1 failed, 0 cancelled)."
        );
    }

    #[test]
    fn an_active_or_unknown_member_blocks_and_says_why() {
        let members = [
            member(ChildStatus::Completed, None, None),
            Member {
                raw_status: "paused".into(),
                ..member(ChildStatus::Other, None, None)
            },
        ];
        assert_eq!(
            decide(&members, None),
            FanIn::NotReady {
                active: 1,
                waiting_lanes: vec![],
                warnings: vec![
                    "unknown_status: delegation d has status 'paused' and counts as active".into()
                ]
            }
        );
        let reclaimed = Member {
            reclaimed: true,
            ..member(ChildStatus::Running, None, None)
        };
        assert!(matches!(decide(&[reclaimed], None), FanIn::Collapse { .. }));
    }

    #[test]
    fn envelope_statuses() {
        let card = |status: &str| CardDoc {
            envelope_status: Some(status.into()),
            ..CardDoc::default()
        };
        let counts = |status: &str| match decide(&[], Some(&card(status))) {
            FanIn::Collapse { counts, stamp } => {
                assert_eq!(stamp, Stamp::CardDocument);
                Some((counts.completed, counts.failed, counts.cancelled))
            }
            _ => None,
        };
        assert_eq!(counts("passed"), Some((1, 0, 0)));
        assert_eq!(counts(" Completed "), Some((1, 0, 0)));
        assert_eq!(counts("success"), Some((1, 0, 0)));
        assert_eq!(counts("error"), Some((0, 1, 0)));
        assert_eq!(counts("canceled"), Some((0, 0, 1)));
        assert_eq!(counts("cancelled"), Some((0, 0, 1)));
        assert_eq!(counts("in_progress"), None);
        let done = CardDoc {
            collapsed_at: Some(3),
            ..card("passed")
        };
        assert!(matches!(
            decide(&[], Some(&done)),
            FanIn::Collapsed {
                collapsed_at: 3,
                ..
            }
        ));
    }

    #[test]
    fn required_lanes_gate_the_card() {
        let value = json!({
            "parallel_fanout": {
                "required_lane_ids": ["a", "b"],
                "lanes": {"a": {"lifecycle": {"status": "merged"}}, "b": {"lifecycle": {"status": "running"}}}
            }
        });
        let card = CardDoc::of(&value);
        assert_eq!(card.waiting_lanes, ["b"]);
        let members = [member(ChildStatus::Completed, None, None)];
        assert!(matches!(
            decide(&members, Some(&card)),
            FanIn::NotReady { active: 0, .. }
        ));
        let value = json!({
            "parallel_fanout": {
                "required_lane_ids": ["a"],
                "lanes": {"a": {"lifecycle": {"status": "completed"}}}
            }
        });
        assert!(matches!(
            decide(&members, Some(&CardDoc::of(&value))),
            FanIn::Collapse { .. }
        ));
    }

    #[test]
    fn the_stamp_sets_two_fields() {
        let mut doc = json!({"a": 1});
        FanInStamp { at: 0 }.apply(&mut doc, 5).unwrap();
        assert_eq!(
            doc,
            json!({"a": 1, "fan_in_collapsed_at": "1970-01-01T00:00:00.000Z", "updated_at": "1970-01-01T00:00:00.000Z"})
        );
    }
}
