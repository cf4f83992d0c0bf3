//! fanin: collapsing a task card's fan-in once all of its workers are done (SPEC §3.4).
//!
//! `decide` is pure: from the card's delegations (as members) and its task card document it
//! says whether the card is ready, already collapsed, or to be collapsed now and where the
//! stamp goes. The shell (`run`) gathers members in one scan, writes the stamps through the
//! store, and prints one `fan_in` record per card.
//!
//! Ownership (SPEC §3.4, issue 12 classes 6 and 13): a card is `task-cards/<id>.json` only,
//! and counts only the members of its owner (root-owned ones count for every card). Whoever
//! can write a delegation or a file in `task-cards/` cannot join another owner's card, lift
//! its lane gate, inject a thread id into its record or get its delegations stamped.

use crate::commit::{self, ApplyError, DocChange, object_mut, ts};
use crate::config::Config;
use crate::core::lifecycle::{self, ChildStatus};
use crate::core::time::{self, Millis};
use crate::exit::Exit;
use crate::files::{self, FileMeta, MAX_DOCUMENT_BYTES};
use crate::model::{self, Delegation};
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
    /// The uid its document speaks for (`owned_document`); `None`: foreign, never counted.
    /// `Member::of` cannot know it: whoever reads the file sets it from its metadata.
    pub owner: Option<u32>,
}

/// The uid a document speaks for (SPEC §1.3): its owner's, when the file has one link and is
/// not writable by "other", and, owned by root, not by its group either (a root-owned 0666
/// file renamed into the run is not root's word). `None`: foreign for every owner check.
pub fn owned_document(meta: &FileMeta) -> Option<u32> {
    let writable_by_other = meta.mode & 0o002 != 0;
    let root_and_group_writable = meta.uid == 0 && meta.mode & 0o020 != 0;
    (meta.nlink == 1 && !writable_by_other && !root_and_group_writable).then_some(meta.uid)
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
            collapsed_at: doc.fan_in_collapsed_at.str().and_then(time::parse_rfc3339),
            thread_id: doc
                .worker_result
                .value()
                .and_then(|r| r.thread_id.str())
                .map(|t| crate::core::text::preview(t, 256)),
            owner: None,
        }
    }

    /// `Member::of`, for a document whose file has `meta`.
    pub fn of_file(doc: &Delegation<'_>, meta: &FileMeta) -> Member {
        Member {
            owner: owned_document(meta),
            ..Member::of(doc)
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
    /// The uid the document speaks for (`owned_document`) — root for a card built in memory
    /// — or, when `foreign`, nobody's.
    pub owner: u32,
    pub foreign: bool,
    /// Files of other names that claim this card's id (`duplicate_task_card`).
    pub claimed_by: Vec<String>,
    /// No `task-cards/<id>.json`: only such claims exist. The card may have lost its
    /// document to a rename, so it is not decided at all.
    pub missing: bool,
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
            .and_then(time::parse_rfc3339);
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
                    .and_then(|lanes| find_lane(lanes, &id))
                    .and_then(|lane| lane.get("lifecycle"))
                    .and_then(|lifecycle| lifecycle.get("status"))
                    .and_then(Value::as_str);
                if !status.is_some_and(|s| LANE_DONE.contains(&s)) {
                    waiting_lanes.push(crate::core::text::preview(id.trim(), 128));
                }
            }
        }
        CardDoc {
            envelope_status,
            collapsed_at,
            waiting_lanes,
            ..CardDoc::default()
        }
    }
}

/// The lane `id` of `parallel_fanout.lanes`: the orchestrator writes an array of lane
/// objects `{lane_id, required, scope, lifecycle, fan_in}` (matched by `lane_id`, trimmed);
/// an object keyed by lane id is accepted too.
fn find_lane<'v>(lanes: &'v Value, id: &str) -> Option<&'v Value> {
    let id = id.trim();
    match lanes {
        Value::Array(lanes) => lanes.iter().find(|lane| {
            lane.get("lane_id")
                .and_then(Value::as_str)
                .is_some_and(|lane_id| lane_id.trim() == id)
        }),
        Value::Object(lanes) => lanes.get(id).or_else(|| {
            lanes
                .iter()
                .find(|(key, _)| key.trim() == id)
                .map(|(_, lane)| lane)
        }),
        _ => None,
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
                        crate::core::text::escape_control(
                            card.envelope_status.as_deref().unwrap_or("")
                        )
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
                crate::core::text::escape_control(&m.raw_status)
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

/// Which members of a card count, by index (SPEC §3.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    pub counted: Vec<usize>,
    pub foreign: Vec<usize>,
}

/// The card's owner: its document's (none when that document is foreign), or, without a
/// document, root when any member is root-owned, else the one owner its other members share.
pub fn card_owner(members: &[Member], card: Option<&CardDoc>) -> Option<u32> {
    if let Some(card) = card.filter(|card| !card.missing) {
        return (!card.foreign).then_some(card.owner);
    }
    let mut owners = members.iter().filter_map(|m| m.owner);
    if members.iter().any(|m| m.owner == Some(0)) {
        return Some(0);
    }
    let first = owners.next()?;
    owners.all(|owner| owner == first).then_some(first)
}

/// The owner of a card document that is not root's although root-owned delegations name
/// the card. Such a document cannot speak for a root card: any writer of `task-cards/` could
/// create it for a card that has none, or replace root's (lifting its lane gate), and make
/// its own delegations members. The card is then not decided, never decided by that
/// document.
pub fn usurped(members: &[Member], card: Option<&CardDoc>) -> Option<u32> {
    let card = card.filter(|card| !card.missing && !card.foreign)?;
    (card.owner != 0 && members.iter().any(|m| m.owner == Some(0))).then_some(card.owner)
}

/// Root-owned members count for every card; the others only for a card of their owner.
pub fn membership(members: &[Member], card: Option<&CardDoc>) -> Membership {
    let owner = card_owner(members, card);
    let mut split = Membership::default();
    for (index, member) in members.iter().enumerate() {
        let counts = member.owner == Some(0) || (member.owner.is_some() && member.owner == owner);
        if counts {
            split.counted.push(index);
        } else {
            split.foreign.push(index);
        }
    }
    split
}

/// The indices of the members that count for `card`, as `decide_owned` splits them (a card
/// with claims only and no document of its own is judged as a card without a document).
pub fn counted_members(members: &[Member], card: Option<&CardDoc>) -> Vec<usize> {
    membership(members, card.filter(|card| !card.missing)).counted
}

/// SPEC §3.4 with ownership. Pure. The decision over the members that count (stamp indices
/// are into `members`), and the indices of the foreign ones, which are reported and never
/// counted or stamped.
pub fn decide_owned(members: &[Member], card: Option<&CardDoc>) -> (FanIn, Vec<usize>) {
    let not_ready = |warning: String| FanIn::NotReady {
        active: counted_members(members, card)
            .iter()
            .filter(|&&i| members[i].is_active())
            .count() as u64,
        waiting_lanes: Vec::new(),
        warnings: vec![warning],
    };
    if let Some(card) = card.filter(|card| card.missing) {
        let split = membership(members, None);
        let warning = format!(
            "duplicate_task_card: no document of its own, while {} claim{} it; not decided",
            card.claimed_by.join(", "),
            if card.claimed_by.len() == 1 { "s" } else { "" }
        );
        return (not_ready(warning), split.foreign);
    }
    if card.is_some_and(|card| card.foreign) {
        let split = membership(members, card);
        return (
            not_ready(
                "the task card document is foreign (more than one link, or writable by others): not decided"
                    .into(),
            ),
            split.foreign,
        );
    }
    if let Some(owner) = usurped(members, card) {
        let split = membership(members, None);
        let warning = format!(
            "the task card document belongs to uid {owner}, but root-owned delegations name \
             the card: not decided (a root card's document must be root's; remove or chown it)"
        );
        return (not_ready(warning), split.foreign);
    }
    if members.is_empty() {
        return (decide(members, card), Vec::new());
    }
    let split = membership(members, card);
    if split.counted.is_empty() {
        let warning = "every member is foreign to the card's owner: never ready".to_string();
        return (not_ready(warning), split.foreign);
    }
    let counted: Vec<Member> = split.counted.iter().map(|&i| members[i].clone()).collect();
    let mut decision = decide(&counted, card);
    if let FanIn::Collapse {
        stamp: Stamp::Delegations(indices),
        ..
    } = &mut decision
    {
        for index in indices.iter_mut() {
            *index = split.counted[*index];
        }
    }
    (decision, split.foreign)
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
    /// Delegations (file names without `.json`) that name the card but are not its owner's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_members: Option<&'a [String]>,
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
            foreign_members: None,
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

/// Reads `RUN_DIR/task-cards/*.json`. A card's document is `<id>.json` and nothing else: a
/// file whose `task_card_id` names another card is a problem (`duplicate_task_card`), never
/// a second card, and is remembered in that card's `claimed_by`; a card with such claims and
/// no document of its own is `missing` (not decided).
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
        let meta = match listing.dir.read_entry(entry, MAX_DOCUMENT_BYTES, &mut buf) {
            Ok(meta) => meta,
            Err(error) => {
                diag.error(&path, &error.to_string(), Exit::FileProblem);
                continue;
            }
        };
        // What a card's rewrite could not keep is a problem before anything is decided on it.
        if let Err(error) = model::check_document(&buf) {
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
                    &model::syntax_error(&buf, &error).to_string(),
                    Exit::FileProblem,
                );
                continue;
            }
        };
        let file_name = entry.name.to_string_lossy();
        let stem = file_name.trim_end_matches(".json").to_string();
        let id = value
            .get("task_card_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| stem.clone());
        if id != stem {
            diag.error(
                &path,
                &format!(
                    "duplicate_task_card: claims task card {:?}, whose document can only be task-cards/{}.json; not a card",
                    crate::core::text::preview(&id, 128),
                    crate::core::text::preview(&id, 128),
                ),
                Exit::FileProblem,
            );
            // Neither the card it claims nor the card its name says may be decided without a
            // document of its own: either may have lost it to a rename.
            for card in [id, stem] {
                let claimed = cards.entry(card).or_insert_with(|| CardFile {
                    doc: CardDoc {
                        missing: true,
                        ..CardDoc::default()
                    },
                    name: OsString::new(),
                    bytes: Vec::new(),
                });
                claimed
                    .doc
                    .claimed_by
                    .push(crate::core::text::preview(&file_name, 128));
            }
            continue;
        }
        let claimed_by = cards
            .remove(&id)
            .map(|placeholder| placeholder.doc.claimed_by)
            .unwrap_or_default();
        let owner = owned_document(&meta);
        cards.insert(
            id,
            CardFile {
                doc: CardDoc {
                    owner: owner.unwrap_or(meta.uid),
                    foreign: owner.is_none(),
                    claimed_by,
                    ..CardDoc::of(&value)
                },
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
    let ids: Vec<String> = ids.into_iter().cloned().collect();
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
                                        model::check_document(current)
                                            .map_err(|e| e.to_string())?;
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
        let mut record = FanInRecord::new(run, id, &decision, collapsed_at, result);
        record.foreign_members = (!foreign_members.is_empty()).then_some(&foreign_members);
        output
            .record(&record)
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
            owner: Some(0),
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

    fn meta(uid: u32, mode: u32, nlink: u64) -> FileMeta {
        FileMeta {
            dev: 1,
            ino: 2,
            mode: libc::S_IFREG | mode,
            uid,
            gid: uid,
            nlink,
            size: 0,
            mtime_ms: 0,
        }
    }

    #[test]
    fn a_document_speaks_for_its_owner_only_with_one_link_and_safe_modes() {
        assert_eq!(owned_document(&meta(0, 0o644, 1)), Some(0));
        assert_eq!(owned_document(&meta(0, 0o640, 1)), Some(0));
        assert_eq!(owned_document(&meta(0, 0o664, 1)), None);
        assert_eq!(owned_document(&meta(0, 0o666, 1)), None);
        assert_eq!(owned_document(&meta(0, 0o644, 2)), None);
        assert_eq!(owned_document(&meta(1000, 0o664, 1)), Some(1000));
        assert_eq!(owned_document(&meta(1000, 0o646, 1)), None);
        assert_eq!(owned_document(&meta(1000, 0o644, 3)), None);
    }

    fn owned(owner: Option<u32>, status: ChildStatus, thread: Option<&str>) -> Member {
        Member {
            owner,
            ..member(status, None, thread)
        }
    }

    fn card_of(owner: u32) -> CardDoc {
        CardDoc {
            owner,
            ..CardDoc::default()
        }
    }

    #[test]
    fn a_root_card_counts_root_members_only() {
        let members = [
            owned(Some(0), ChildStatus::Completed, Some("root-thread")),
            owned(Some(65534), ChildStatus::Completed, Some("injected")),
            owned(None, ChildStatus::Completed, Some("renamed")),
        ];
        let (decision, foreign) = decide_owned(&members, Some(&card_of(0)));
        assert_eq!(foreign, [1, 2]);
        let FanIn::Collapse { counts, stamp } = decision else {
            panic!("expected a collapse: {decision:?}");
        };
        assert_eq!(counts.thread_ids, ["root-thread"]);
        assert_eq!(counts.completed, 1);
        assert_eq!(stamp, Stamp::Delegations(vec![0]));
        // An active foreign member neither holds the card nor counts in `active`.
        let members = [
            owned(Some(65534), ChildStatus::Running, None),
            owned(Some(0), ChildStatus::Completed, None),
        ];
        let (decision, foreign) = decide_owned(&members, Some(&card_of(0)));
        assert_eq!(foreign, [0]);
        assert_eq!(decision_stamp(&decision), Some(vec![1]));
    }

    fn decision_stamp(decision: &FanIn) -> Option<Vec<usize>> {
        match decision {
            FanIn::Collapse {
                stamp: Stamp::Delegations(indices),
                ..
            } => Some(indices.clone()),
            _ => None,
        }
    }

    #[test]
    fn an_agent_card_counts_its_own_and_never_decides_for_root_members() {
        let members = [
            owned(Some(1000), ChildStatus::Completed, Some("mine")),
            owned(Some(2000), ChildStatus::Completed, Some("theirs")),
        ];
        let (decision, foreign) = decide_owned(&members, Some(&card_of(1000)));
        assert_eq!(foreign, [1]);
        assert_eq!(decision_stamp(&decision), Some(vec![0]));
        // Root-owned members count for every card, but a document that is not root's cannot
        // decide a card they name: it may be an agent's, made to join root's card.
        let members = [
            owned(Some(1000), ChildStatus::Completed, Some("mine")),
            owned(Some(0), ChildStatus::Failed, None),
        ];
        assert_eq!(usurped(&members, Some(&card_of(1000))), Some(1000));
        assert_eq!(usurped(&members, Some(&card_of(0))), None);
        let (decision, foreign) = decide_owned(&members, Some(&card_of(1000)));
        assert_eq!(foreign, [0]);
        assert!(
            matches!(&decision, FanIn::NotReady { warnings, .. } if warnings[0].contains("uid 1000")),
            "{decision:?}"
        );
    }

    #[test]
    fn without_a_document_the_owner_is_root_or_the_common_one() {
        let root = [
            owned(Some(0), ChildStatus::Completed, None),
            owned(Some(65534), ChildStatus::Completed, Some("injected")),
        ];
        assert_eq!(card_owner(&root, None), Some(0));
        let (decision, foreign) = decide_owned(&root, None);
        assert_eq!(foreign, [1]);
        let FanIn::Collapse { counts, .. } = decision else {
            panic!("expected a collapse");
        };
        assert!(counts.thread_ids.is_empty());
        let common = [
            owned(Some(7), ChildStatus::Completed, None),
            owned(None, ChildStatus::Running, None),
            owned(Some(7), ChildStatus::Completed, None),
        ];
        assert_eq!(card_owner(&common, None), Some(7));
        let (decision, foreign) = decide_owned(&common, None);
        assert_eq!(foreign, [1]);
        assert_eq!(decision_stamp(&decision), Some(vec![0, 2]));
        let mixed = [
            owned(Some(7), ChildStatus::Completed, None),
            owned(Some(8), ChildStatus::Completed, None),
        ];
        assert_eq!(card_owner(&mixed, None), None);
        let (decision, foreign) = decide_owned(&mixed, None);
        assert_eq!(foreign, [0, 1]);
        assert!(matches!(decision, FanIn::NotReady { active: 0, .. }));
    }

    #[test]
    fn a_card_whose_members_are_all_foreign_is_never_ready() {
        let members = [owned(Some(65534), ChildStatus::Completed, None)];
        let (decision, foreign) = decide_owned(&members, Some(&card_of(0)));
        assert_eq!(foreign, [0]);
        let FanIn::NotReady { warnings, .. } = decision else {
            panic!("expected not ready");
        };
        assert_eq!(
            warnings,
            ["every member is foreign to the card's owner: never ready"]
        );
        // Foreign members are delegations naming the card: the envelope path is closed too.
        let passed = CardDoc {
            envelope_status: Some("passed".into()),
            ..card_of(0)
        };
        let (decision, _) = decide_owned(&members, Some(&passed));
        assert!(matches!(decision, FanIn::NotReady { .. }));
        let (decision, _) = decide_owned(&[], Some(&passed));
        assert!(matches!(
            decision,
            FanIn::Collapse {
                stamp: Stamp::CardDocument,
                ..
            }
        ));
    }

    #[test]
    fn a_foreign_or_missing_card_document_is_not_decided() {
        let members = [owned(Some(0), ChildStatus::Completed, None)];
        let foreign = CardDoc {
            foreign: true,
            ..card_of(0)
        };
        assert!(matches!(
            decide_owned(&members, Some(&foreign)).0,
            FanIn::NotReady { .. }
        ));
        let missing = CardDoc {
            missing: true,
            claimed_by: vec!["renamed.json".into()],
            ..CardDoc::default()
        };
        let (decision, _) = decide_owned(&members, Some(&missing));
        let FanIn::NotReady { warnings, .. } = decision else {
            panic!("expected not ready");
        };
        assert_eq!(
            warnings,
            [
                "duplicate_task_card: no document of its own, while renamed.json claims it; not decided"
            ]
        );
    }

    #[test]
    fn a_not_ready_card_counts_only_its_active_counted_members() {
        let members = [
            owned(Some(0), ChildStatus::Running, None),
            owned(Some(65534), ChildStatus::Running, None),
            owned(Some(0), ChildStatus::Completed, None),
        ];
        assert_eq!(counted_members(&members, Some(&card_of(0))), [0, 2]);
        assert!(matches!(
            decide_owned(&members, Some(&card_of(0))).0,
            FanIn::NotReady { active: 1, .. }
        ));
        let missing = CardDoc {
            missing: true,
            claimed_by: vec!["x.json".into()],
            ..CardDoc::default()
        };
        assert_eq!(counted_members(&members, Some(&missing)), [0, 2]);
        assert!(matches!(
            decide_owned(&members, Some(&missing)).0,
            FanIn::NotReady { active: 1, .. }
        ));
    }

    #[test]
    fn lanes_as_the_orchestrator_writes_them_an_array_matched_by_trimmed_lane_id() {
        let value = json!({
            "parallel_fanout": {
                "required_lane_ids": ["api", " docs ", "ui", "gone"],
                "lanes": [
                    {"lane_id": "api", "required": true, "scope": "src/api",
                     "lifecycle": {"status": "merged", "updated_at": "x"}, "fan_in": {}},
                    {"lane_id": "docs ", "required": true, "lifecycle": {"status": "completed"}},
                    {"lane_id": "ui", "required": true, "lifecycle": {"status": "running"}},
                    {"required": true, "lifecycle": {"status": "completed"}},
                    "not a lane"
                ]
            }
        });
        assert_eq!(CardDoc::of(&value).waiting_lanes, ["ui", "gone"]);
        let done = json!({
            "parallel_fanout": {
                "required_lane_ids": ["api"],
                "lanes": [{"lane_id": " api", "lifecycle": {"status": "stalled"}}]
            }
        });
        assert!(CardDoc::of(&done).waiting_lanes.is_empty());
        // The object form keyed by lane id still works.
        let keyed = json!({
            "parallel_fanout": {
                "required_lane_ids": ["api", "ui"],
                "lanes": {"api": {"lifecycle": {"status": "reclaimed"}}, "ui": {"lifecycle": {"status": "queued"}}}
            }
        });
        assert_eq!(CardDoc::of(&keyed).waiting_lanes, ["ui"]);
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
