//! The scan and the fan-in records.

use super::*;

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

fn card(owner: u32, foreign: bool, missing: bool) -> crate::shell::fan_in::CardFile {
    crate::shell::fan_in::CardFile {
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
    use crate::cmd::sweep::scan::surely_counts;
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
    use crate::cmd::sweep::fan_in::fan_in_news;
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
