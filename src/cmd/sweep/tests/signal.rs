//! The signal phase: batches, one grace, stops.

use super::*;

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
