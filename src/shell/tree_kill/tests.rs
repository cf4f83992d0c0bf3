use super::*;

#[test]
fn terminations_never_claim_a_death_that_was_not_seen() {
    assert_eq!(
        termination(Sent::Delivered, true, true, false),
        Termination::Terminated
    );
    assert_eq!(
        termination(Sent::Delivered, false, true, true),
        Termination::Killed
    );
    assert_eq!(
        termination(Sent::Delivered, false, false, true),
        Termination::Survived
    );
    assert_eq!(
        termination(Sent::Delivered, false, false, false),
        Termination::Interrupted,
        "alive, and no SIGKILL was sent: the run was stopped first"
    );
    assert_eq!(
        termination(Sent::NotPermitted, false, false, false),
        Termination::NotPermitted
    );
    assert_eq!(
        termination(Sent::Gone, false, false, false),
        Termination::AlreadyExited
    );
    for t in [
        Termination::NotPermitted,
        Termination::Survived,
        Termination::Interrupted,
        Termination::SkippedForeign,
        Termination::SkippedInvalidPid,
        Termination::SkippedUnverifiable,
    ] {
        assert!(t.needs_attention());
    }
    assert!(!Termination::Killed.needs_attention());
}
