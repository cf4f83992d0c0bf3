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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
