//! The fan-in phase: which members this sweep's changes end.

use super::*;

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
