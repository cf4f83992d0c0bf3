use super::*;
use crate::core::identity::{self, InvalidPid, test_host};
use crate::model::Field;

fn checked(identity: Identity, uid: u32) -> ProcessFacts {
    let pid = identity::validate(&Field::Value(4242), &test_host())
        .unwrap()
        .unwrap();
    ProcessFacts::Checked {
        pid,
        observation: Observation::Alive {
            start_ticks: 99,
            start_ms: 0,
            uid: Some(uid),
            pidfd_ino: None,
        },
        identity,
    }
}

#[test]
fn triage_signals_only_verified_processes_of_the_right_user() {
    let pid = identity::validate(&Field::Value(4242), &test_host())
        .unwrap()
        .unwrap();
    assert_eq!(
        triage(&checked(Identity::Verified, 1000), 1000, false),
        Triage::Signal {
            pid,
            start_ticks: 99,
        }
    );
    assert_eq!(
        triage(&checked(Identity::Verified, 1000), 0, false),
        Triage::Signal {
            pid,
            start_ticks: 99,
        },
        "a root-owned delegation may name any user's worker"
    );
    assert_eq!(
        triage(&checked(Identity::Verified, 0), 65534, false),
        Triage::Skip(Termination::SkippedForeign)
    );
    assert!(matches!(
        triage(&checked(Identity::Verified, 0), 65534, true),
        Triage::Signal { .. }
    ));
    assert_eq!(
        triage(&checked(Identity::Reused, 0), 0, false),
        Triage::Finalize(Termination::SkippedReused)
    );
    assert_eq!(
        triage(&checked(Identity::Gone, 0), 0, false),
        Triage::Finalize(Termination::AlreadyExited)
    );
    assert_eq!(
        triage(&checked(Identity::Unverifiable, 0), 0, false),
        Triage::Skip(Termination::SkippedUnverifiable)
    );
    assert_eq!(
        triage(&ProcessFacts::Invalid(InvalidPid::OutOfRange(1)), 0, false),
        Triage::Skip(Termination::SkippedInvalidPid)
    );
    assert_eq!(triage(&ProcessFacts::NoPid, 0, false), Triage::NoProcess);
}
