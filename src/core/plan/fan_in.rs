//! fan_in: the pure decision of a task card's fan-in (SPEC §3.4): from the card's
//! delegations (as members) and its task card document, whether the card is ready, already
//! collapsed, or to be collapsed now and where the stamp goes. `fanin` gathers the members,
//! writes the stamps and prints the records.
//!
//! Ownership (SPEC §3.4, issue 12 classes 6 and 13): a card counts only the members of its
//! owner (root-owned ones count for every card), so whoever can write a delegation or a file
//! in `task-cards/` cannot join another owner's card, lift its lane gate, inject a thread id
//! into its record or get its delegations stamped.

use crate::core::lifecycle::{self, ChildStatus};
use crate::core::time::{self, Millis};
use crate::model::Delegation;
use serde_json::Value;

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
        return decide_by_card(card, waiting_lanes);
    }
    decide_by_members(members, waiting_lanes)
}

/// A card without delegations: its worker_result_envelope status is the one member.
fn decide_by_card(card: Option<&CardDoc>, waiting_lanes: Vec<String>) -> FanIn {
    let Some(card) = card else {
        return FanIn::NotReady {
            active: 0,
            waiting_lanes,
            warnings: vec!["no delegation and no task card document".into()],
        };
    };
    let counts = match envelope_counts(card) {
        Ok(counts) => counts,
        Err(warning) => {
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
    match card.collapsed_at {
        Some(at) => FanIn::Collapsed {
            counts,
            collapsed_at: at,
        },
        None => FanIn::Collapse {
            counts,
            stamp: Stamp::CardDocument,
        },
    }
}

/// The counts a terminal envelope status stands for, or the warning why it does not count.
fn envelope_counts(card: &CardDoc) -> Result<Counts, String> {
    let status = card
        .envelope_status
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase());
    match status.as_deref() {
        Some("completed" | "passed" | "success") => Ok(Counts {
            completed: 1,
            ..Counts::default()
        }),
        Some("failed" | "error") => Ok(Counts {
            failed: 1,
            ..Counts::default()
        }),
        Some("cancelled" | "canceled") => Ok(Counts {
            cancelled: 1,
            ..Counts::default()
        }),
        Some(_) => Err(format!(
            "worker_result_envelope status '{}' is not terminal",
            crate::core::text::escape_control(card.envelope_status.as_deref().unwrap_or(""))
        )),
        None => Err("no delegation and no worker_result_envelope status".to_string()),
    }
}

/// A card with delegations: ready when none is active and no lane waits.
fn decide_by_members(members: &[Member], waiting_lanes: Vec<String>) -> FanIn {
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
    let counts = member_counts(members);
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

/// The terminal members counted by outcome, with the threads of the completed ones.
fn member_counts(members: &[Member]) -> Counts {
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
    counts
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

#[cfg(test)]
mod tests;
