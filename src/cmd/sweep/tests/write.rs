//! The write phase: ending writes first, stamps after, records that must land.

use super::*;

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
