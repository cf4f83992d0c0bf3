//! Unit tests of the sweep phases over in-memory inputs: no file, no process, no signal.

use super::changes::Changes;
use super::fan_in::ended_members;
use super::signal::{BATCH_AFTER, Signaller, Signals};
use super::state::Entry;
use super::write::{Landed, Writer, write_all};
use crate::cmd::fanin::FanInStamp;
use crate::cmd::reclaim::{Kill, TargetInfo};
use crate::core::lifecycle::{ChildStatus, State};
use crate::core::plan::reclaim::{Reclaim, Termination};
use crate::exit::Exit;
use crate::shell::commit::Written;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn entry(run: usize, name: &str, card: Option<(&str, usize)>, changes: Changes) -> Entry {
    Entry {
        run,
        name: OsString::from(name),
        path: PathBuf::from(format!("delegations/{name}")),
        owner: 0,
        delegation_id: Some(name.to_string()),
        bytes: b"{}".to_vec(),
        changes,
        kill: None,
        card: card.map(|(card, position)| (card.to_string(), position)),
    }
}

fn reclaim(termination: Termination) -> Reclaim {
    Reclaim {
        state: State::Stale,
        termination,
        process_id: None,
        stale_at: Some(0),
        timed_out_at: None,
        signal_via: None,
        descendants_signalled: Vec::new(),
        survivors: Vec::new(),
    }
}

fn marked(termination: Termination) -> Changes {
    Changes {
        reclaim: Some(reclaim(termination)),
        ..Changes::default()
    }
}

fn stamp() -> Changes {
    Changes {
        stamp: Some(FanInStamp { at: 7 }),
        ..Changes::default()
    }
}

/// A worker found stuck: its kill (never sent by these tests) and what the view said.
fn stuck(name: &str, pid: i32) -> Entry {
    let host = crate::core::identity::test_host();
    let pid = crate::core::identity::validate_found(pid, &host).expect("a valid test pid");
    let mut entry = entry(0, name, None, Changes::default());
    let info = TargetInfo {
        state: State::Stale,
        process_id: Some(pid.get().into()),
        stale_at: Some(0),
        timed_out_at: None,
    };
    entry.kill = Some((Kill::new(pid, 1, 0), info));
    entry
}

// --- the signal phase ---------------------------------------------------------------

/// A signaller that records what it would send: a batch is the list of its ids (one per
/// `term`), and a test says which ids are due.
#[derive(Default)]
struct FakeSignals {
    terms: Vec<Vec<i32>>,
    kills: Vec<Vec<i32>>,
    due: Vec<usize>,
    refuse_term: bool,
}

impl Signaller for FakeSignals {
    type Batch = Vec<usize>;

    fn term(&mut self, kills: &mut [&mut Kill]) -> Result<Vec<usize>, Exit> {
        if self.refuse_term {
            return Err(Exit::Deadline);
        }
        self.terms.push(kills.iter().map(|k| k.pid.get()).collect());
        Ok(vec![self.terms.len() - 1])
    }

    fn due(&self, batch: &Vec<usize>) -> bool {
        batch.iter().all(|id| self.due.contains(id))
    }

    fn kill(&mut self, kills: &mut [&mut Kill], _: Vec<usize>) -> Result<(), Exit> {
        self.kills.push(kills.iter().map(|k| k.pid.get()).collect());
        Ok(())
    }

    fn merge(&self, batches: Vec<Vec<usize>>) -> Option<Vec<usize>> {
        (!batches.is_empty()).then(|| batches.concat())
    }
}

#[test]
fn targets_wait_for_their_batch_only_a_short_while_from_the_first_found() {
    let t0 = Instant::now();
    let mut signals: Signals<Vec<usize>> = Signals::default();
    assert!(!signals.ripe(t0 + BATCH_AFTER * 10), "nothing found yet");
    signals.found(0, t0);
    signals.found(1, t0 + BATCH_AFTER / 2);
    assert!(!signals.ripe(t0 + BATCH_AFTER / 2));
    assert!(
        signals.ripe(t0 + BATCH_AFTER),
        "measured from the first found"
    );
}

#[test]
fn term_goes_out_per_batch_as_found_and_kill_per_batch_once_its_grace_passed() {
    let t0 = Instant::now();
    let mut entries = vec![stuck("a", 101), stuck("b", 102), stuck("c", 103)];
    let mut fake = FakeSignals::default();
    let mut signals: Signals<Vec<usize>> = Signals::default();
    signals.found(0, t0);
    signals.found(1, t0);
    let batch = signals.take_batch(|| false).expect("a batch");
    signals.term(&mut entries, batch, &mut fake);
    assert_eq!(
        fake.terms,
        vec![vec![101, 102]],
        "SIGTERM as found, together"
    );
    signals.found(2, t0 + Duration::from_secs(1));
    let batch = signals.take_batch(|| false).expect("a second batch");
    signals.term(&mut entries, batch, &mut fake);
    assert_eq!(fake.terms, vec![vec![101, 102], vec![103]]);
    // No grace has passed: nothing is killed between files.
    signals.kill_due(&mut entries, &mut fake);
    assert!(fake.kills.is_empty());
    // The first batch's grace passed: it alone gets SIGKILL.
    fake.due = vec![0];
    signals.kill_due(&mut entries, &mut fake);
    assert_eq!(fake.kills, vec![vec![101, 102]]);
    assert!(signals.in_flight());
    // After the scan, the rest are finished together.
    signals.finish_all(&mut entries, &mut fake).unwrap();
    assert_eq!(fake.kills, vec![vec![101, 102], vec![103]]);
    assert!(!signals.in_flight());
    assert!(entries.iter().all(|entry| entry.kill.is_some()));
}

#[test]
fn batches_still_in_flight_after_the_scan_share_one_wait() {
    let t0 = Instant::now();
    let mut entries = vec![stuck("a", 101), stuck("b", 102)];
    let mut fake = FakeSignals::default();
    let mut signals: Signals<Vec<usize>> = Signals::default();
    for index in 0..2 {
        signals.found(index, t0);
        let batch = signals.take_batch(|| false).expect("a batch");
        signals.term(&mut entries, batch, &mut fake);
    }
    signals.finish_all(&mut entries, &mut fake).unwrap();
    assert_eq!(fake.kills, vec![vec![101, 102]], "one wait, in entry order");
    // Nothing left: a second finish does nothing.
    signals.finish_all(&mut entries, &mut fake).unwrap();
    assert_eq!(fake.kills.len(), 1);
}

#[test]
fn a_stopped_run_sends_nothing_and_targets_never_sent_are_dropped() {
    let t0 = Instant::now();
    let mut entries = vec![stuck("a", 101)];
    let mut signals: Signals<Vec<usize>> = Signals::default();
    signals.found(0, t0);
    assert!(signals.take_batch(|| true).is_none(), "stopped: no batch");
    assert!(!signals.ripe(t0 + BATCH_AFTER), "the wait starts again");
    signals.drop_pending(&mut entries);
    assert!(entries[0].kill.is_none(), "never signalled, never recorded");
    assert!(signals.take_batch(|| false).is_none());
}

#[test]
fn a_batch_whose_term_was_stopped_is_neither_in_flight_nor_recorded() {
    let mut entries = vec![stuck("a", 101), stuck("b", 102)];
    let mut fake = FakeSignals {
        refuse_term: true,
        ..FakeSignals::default()
    };
    let mut signals: Signals<Vec<usize>> = Signals::default();
    signals.found(1, Instant::now());
    let batch = signals.take_batch(|| false).expect("a batch");
    signals.term(&mut entries, batch, &mut fake);
    assert!(!signals.in_flight());
    assert!(
        entries[0].kill.is_some(),
        "another batch's target is untouched"
    );
    assert!(entries[1].kill.is_none());
}

// --- the fan-in phase ---------------------------------------------------------------

#[test]
fn a_mark_without_a_process_ends_its_member_only_as_its_cards_one_ending_write() {
    let entries = vec![
        // Card A: the mark is the only ending write (the other member only gets a stamp).
        entry(0, "a1", Some(("A", 0)), marked(Termination::NoProcess)),
        entry(0, "a2", Some(("A", 1)), stamp()),
        // Card B: another member is reclaimed too, so the mark does not count yet.
        entry(0, "b1", Some(("B", 0)), marked(Termination::NoProcess)),
        entry(0, "b2", Some(("B", 1)), marked(Termination::Killed)),
        // Card A of another run: its own count.
        entry(1, "c1", Some(("A", 0)), marked(Termination::NoProcess)),
        // No card: nothing to count.
        entry(0, "d1", None, marked(Termination::NoProcess)),
    ];
    assert_eq!(
        ended_members(&entries),
        vec![
            (0, "A".to_string(), 0, ChildStatus::Failed),
            (1, "A".to_string(), 0, ChildStatus::Failed),
        ]
    );
}

#[test]
fn nothing_planned_ends_no_member() {
    let entries = vec![entry(0, "a", Some(("A", 0)), stamp())];
    assert!(ended_members(&entries).is_empty());
}

// --- the write phase ----------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Answer {
    Done,
    Failed,
    Conflict,
    NothingLeft,
}

/// A writer that records what would be written and answers as told per file.
#[derive(Default)]
struct FakeWriter {
    answers: Vec<(&'static str, Answer)>,
    unlocked_runs: Vec<usize>,
    /// `stopped()` answers `Some` from the n-th call on.
    stop_at: Option<usize>,
    checks: usize,
    writes: Vec<(String, Changes)>,
    reports: Vec<(String, bool, bool)>,
}

impl Writer for FakeWriter {
    fn stopped(&mut self) -> Option<Exit> {
        self.checks += 1;
        self.stop_at
            .is_some_and(|at| self.checks >= at)
            .then_some(Exit::Deadline)
    }

    fn locked(&self, entry: &Entry) -> bool {
        !self.unlocked_runs.contains(&entry.run)
    }

    fn write(&mut self, entry: &Entry, changes: &Changes, _: bool) -> Option<Written<Changes>> {
        let name = entry.name.to_string_lossy().into_owned();
        self.writes.push((name.clone(), changes.clone()));
        let answer = self
            .answers
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Answer::Done, |(_, answer)| *answer);
        let change = changes.clone();
        Some(match answer {
            Answer::Done => Written::Done {
                change,
                dry_run: false,
            },
            Answer::Failed => Written::Failed {
                change,
                error: "disk full".into(),
            },
            Answer::Conflict => Written::Conflict(change),
            Answer::NothingLeft => Written::NothingLeft,
        })
    }

    fn report(&mut self, entry: &Entry, _: &Written<Changes>, stamps_only: bool, left: bool) {
        let name = entry.name.to_string_lossy().into_owned();
        self.reports.push((name, stamps_only, left));
    }
}

impl FakeWriter {
    fn written(&self) -> Vec<&str> {
        self.writes.iter().map(|(name, _)| name.as_str()).collect()
    }
}

fn with_stamp(mut changes: Changes) -> Changes {
    changes.stamp = Some(FanInStamp { at: 7 });
    changes
}

#[test]
fn ending_writes_go_before_stamp_only_writes() {
    let entries = vec![
        entry(0, "stamp-a", Some(("A", 0)), stamp()),
        entry(
            0,
            "end-a",
            Some(("A", 1)),
            with_stamp(marked(Termination::NoProcess)),
        ),
        entry(0, "nothing", Some(("A", 2)), Changes::default()),
        entry(0, "end-b", None, marked(Termination::NoProcess)),
    ];
    let mut writer = FakeWriter::default();
    let mut landed = Landed::default();
    write_all(&entries, &mut None, &mut landed, &mut writer);
    assert_eq!(writer.written(), vec!["end-a", "end-b", "stamp-a"]);
    assert!(landed.failed_cards.is_empty());
    assert!(landed.ended.contains(&(0, "A".to_string(), 1)));
    assert_eq!(
        landed.ended.len(),
        1,
        "a member without a card is no card's"
    );
    assert_eq!(
        writer.reports,
        vec![
            ("end-a".to_string(), false, false),
            ("end-b".to_string(), false, false),
            ("stamp-a".to_string(), true, false),
        ]
    );
}

#[test]
fn a_card_whose_ending_write_failed_gets_no_stamp() {
    let entries = vec![
        entry(0, "stamp-a", Some(("A", 0)), stamp()),
        entry(
            0,
            "end-a",
            Some(("A", 1)),
            with_stamp(marked(Termination::NoProcess)),
        ),
        entry(0, "stamp-b", Some(("B", 0)), stamp()),
    ];
    let mut writer = FakeWriter {
        answers: vec![("end-a", Answer::Failed)],
        ..FakeWriter::default()
    };
    let mut landed = Landed::default();
    write_all(&entries, &mut None, &mut landed, &mut writer);
    assert_eq!(writer.written(), vec!["end-a", "stamp-b"]);
    assert_eq!(landed.failed_cards, vec![(0, "A".to_string())]);
    assert!(landed.ended.is_empty());
}

#[test]
fn an_ending_write_of_a_failed_card_goes_out_without_its_stamp() {
    let entries = vec![
        entry(
            0,
            "end-a1",
            Some(("A", 0)),
            with_stamp(marked(Termination::NoProcess)),
        ),
        entry(
            0,
            "end-a2",
            Some(("A", 1)),
            with_stamp(marked(Termination::NoProcess)),
        ),
    ];
    let mut writer = FakeWriter {
        answers: vec![("end-a1", Answer::Conflict)],
        ..FakeWriter::default()
    };
    let mut landed = Landed::default();
    write_all(&entries, &mut None, &mut landed, &mut writer);
    assert_eq!(writer.written(), vec!["end-a1", "end-a2"]);
    assert!(writer.writes[0].1.stamp.is_some());
    assert!(
        writer.writes[1].1.stamp.is_none(),
        "its card failed: no stamp"
    );
    assert!(
        writer.writes[1].1.reclaim.is_some(),
        "the mark itself still lands"
    );
    assert_eq!(landed.failed_cards, vec![(0, "A".to_string())]);
    assert!(landed.ended.contains(&(0, "A".to_string(), 1)));
}

#[test]
fn a_stamp_another_writer_made_counts_and_a_lost_ending_write_is_said() {
    let entries = vec![
        entry(
            0,
            "end-a",
            Some(("A", 0)),
            with_stamp(marked(Termination::NoProcess)),
        ),
        entry(0, "stamp-b", Some(("B", 0)), stamp()),
    ];
    let mut writer = FakeWriter {
        answers: vec![
            ("end-a", Answer::NothingLeft),
            ("stamp-b", Answer::NothingLeft),
        ],
        ..FakeWriter::default()
    };
    let mut landed = Landed::default();
    write_all(&entries, &mut None, &mut landed, &mut writer);
    assert_eq!(landed.failed_cards, vec![(0, "A".to_string())]);
    assert_eq!(
        writer.reports,
        vec![
            ("end-a".to_string(), false, true),
            ("stamp-b".to_string(), true, false),
        ]
    );
}

#[test]
fn once_interrupted_only_the_records_of_signalled_workers_are_written() {
    let mut signalled = stuck("signalled", 101);
    signalled.card = Some(("A".to_string(), 0));
    signalled.changes = with_stamp(marked(Termination::Killed));
    let entries = vec![
        entry(0, "first", None, marked(Termination::NoProcess)),
        signalled,
        entry(0, "marked", None, marked(Termination::NoProcess)),
        entry(0, "stamp-b", Some(("B", 0)), stamp()),
    ];
    let mut writer = FakeWriter {
        stop_at: Some(2),
        ..FakeWriter::default()
    };
    let mut landed = Landed::default();
    let mut interrupted = None;
    write_all(&entries, &mut interrupted, &mut landed, &mut writer);
    assert_eq!(interrupted, Some(Exit::Deadline));
    assert_eq!(writer.written(), vec!["first", "signalled"]);
    assert!(
        writer.writes[1].1.stamp.is_none(),
        "no stamp once interrupted"
    );
    assert_eq!(
        landed.failed_cards,
        vec![(0, "A".to_string()), (0, "B".to_string())]
    );
}

#[test]
fn a_signalled_worker_whose_record_cannot_land_keeps_its_note() {
    let mut conflict = stuck("conflict", 101);
    conflict.changes = marked(Termination::Killed);
    let mut unlocked = stuck("unlocked", 102);
    unlocked.run = 1;
    unlocked.changes = marked(Termination::Killed);
    let mut landing = stuck("landing", 103);
    landing.changes = marked(Termination::Killed);
    let entries = vec![conflict, unlocked, landing];
    let mut writer = FakeWriter {
        answers: vec![("conflict", Answer::Conflict)],
        unlocked_runs: vec![1],
        ..FakeWriter::default()
    };
    let mut landed = Landed::default();
    write_all(&entries, &mut None, &mut landed, &mut writer);
    assert_eq!(writer.written(), vec!["conflict", "landing"]);
    assert_eq!(
        landed.unlanded,
        vec![(0, "conflict".to_string()), (1, "unlocked".to_string())]
    );
}

// --- the changes composed for one document ------------------------------------------

#[test]
fn changes_say_whether_they_end_the_member_or_only_stamp_it() {
    assert!(Changes::default().is_empty());
    assert!(stamp().stamp_only() && !stamp().ends_member());
    let mark = marked(Termination::NoProcess);
    assert!(mark.ends_member() && !mark.stamp_only());
    let both = with_stamp(marked(Termination::Killed));
    assert!(both.ends_member() && !both.stamp_only());
}

#[test]
fn the_reclaim_names_the_action_and_every_detail_is_kept() {
    use crate::shell::commit::DocChange;
    assert_eq!(stamp().action(), "fan_in_stamped");
    let both = with_stamp(marked(Termination::NoProcess));
    assert_eq!(both.action(), reclaim(Termination::NoProcess).action());
    let fields = |detail: serde_json::Value| match detail {
        serde_json::Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    let detail = fields(serde_json::to_value(both.detail()).unwrap());
    let reclaim_detail = serde_json::to_value(reclaim(Termination::NoProcess).detail()).unwrap();
    let stamp_detail = serde_json::to_value(FanInStamp { at: 7 }.detail()).unwrap();
    for (key, value) in fields(reclaim_detail)
        .into_iter()
        .chain(fields(stamp_detail))
    {
        assert_eq!(detail.get(&key), Some(&value), "{key}");
    }
}

#[test]
fn changes_apply_all_or_nothing() {
    use crate::shell::commit::DocChange;
    let both = with_stamp(marked(Termination::NoProcess));
    let mut doc = serde_json::json!({"delegation_id": "d", "worker_lifecycle": 3});
    let before = doc.clone();
    assert!(
        both.apply(&mut doc, 0).is_err(),
        "worker_lifecycle is not an object"
    );
    assert_eq!(doc, before, "not even the stamp");
    let mut doc = serde_json::json!({"delegation_id": "d"});
    both.apply(&mut doc, 0).unwrap();
    assert!(doc.get("fan_in_collapsed_at").is_some());
    assert_eq!(doc["worker_lifecycle"]["reclaim_state"], "reclaimed");
}

// --- the scan and the fan-in records ------------------------------------------------

fn member(owner: Option<u32>) -> crate::core::plan::fan_in::Member {
    crate::core::plan::fan_in::Member {
        delegation_id: None,
        status: ChildStatus::Running,
        raw_status: "running".into(),
        reclaimed: false,
        collapsed_at: None,
        thread_id: None,
        owner,
    }
}

fn card(owner: u32, foreign: bool, missing: bool) -> crate::cmd::fanin::CardFile {
    crate::cmd::fanin::CardFile {
        doc: crate::core::plan::fan_in::CardDoc {
            owner,
            foreign,
            missing,
            ..Default::default()
        },
        name: OsString::from("card.json"),
        bytes: Vec::new(),
    }
}

#[test]
fn only_a_member_that_surely_counts_keeps_its_card_from_being_ready() {
    use super::scan::surely_counts;
    // Root's members count for every card.
    assert!(surely_counts(&member(Some(0)), None));
    // Another owner's: only for a card document of that owner.
    assert!(surely_counts(
        &member(Some(1000)),
        Some(&card(1000, false, false))
    ));
    assert!(!surely_counts(&member(Some(1000)), None));
    assert!(!surely_counts(
        &member(Some(1000)),
        Some(&card(1001, false, false))
    ));
    assert!(!surely_counts(
        &member(Some(1000)),
        Some(&card(1000, true, false))
    ));
    assert!(!surely_counts(
        &member(Some(1000)),
        Some(&card(1000, false, true))
    ));
    // A foreign document counts for nobody.
    assert!(!surely_counts(
        &member(None),
        Some(&card(1000, false, false))
    ));
}

#[test]
fn a_sweep_prints_collapses_and_new_problems_the_rest_only_with_all() {
    use super::fan_in::fan_in_news;
    use crate::shell::state::reported::Reported;
    let row = |ready: bool, outcome: Option<&'static str>, warnings: &[&str]| {
        let mut record = crate::output::FanInRecord::new(
            std::path::Path::new("run"),
            "c",
            &crate::core::plan::fan_in::FanIn::NotReady {
                active: 1,
                waiting_lanes: Vec::new(),
                warnings: warnings.iter().map(|w| w.to_string()).collect(),
            },
            0,
            "",
        );
        record.ready = ready;
        record.outcome = outcome;
        record
    };
    let collapsed = row(true, Some("collapsed"), &[]);
    let already = row(true, Some("already_collapsed"), &[]);
    let waiting = row(false, None, &[]);
    let warned = row(false, None, &["unknown_status"]);
    let mut reported = Reported::new(None, false);
    assert!(fan_in_news(&mut reported, &collapsed, false));
    assert!(!fan_in_news(&mut reported, &already, false));
    assert!(fan_in_news(&mut reported, &already, true));
    assert!(!fan_in_news(&mut reported, &waiting, false));
    assert!(fan_in_news(&mut reported, &waiting, true));
    assert!(
        fan_in_news(&mut reported, &warned, false),
        "a problem is news"
    );
}
