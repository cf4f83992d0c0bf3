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

fn entry(pid: i32, ppid: i32, start_ticks: u64, exited: bool) -> identity::ProcEntry {
    identity::ProcEntry {
        pid,
        ppid,
        start_ticks,
        exited,
        kernel_thread: false,
    }
}

#[test]
fn the_descendant_filter_leaves_out_zombies_but_walks_through_them() {
    let table = [
        entry(100, 1, 50, false),
        entry(101, 100, 60, false),
        entry(102, 100, 61, true),
        entry(103, 102, 62, false),
        entry(104, 1, 70, false),
    ];
    let live: Vec<i32> = live_descendants(&table, 100, 50).map(|e| e.pid).collect();
    assert_eq!(live, vec![101, 103]);
}

#[test]
fn flatline_and_its_ancestors_are_never_a_descendant_to_signal() {
    let host = identity::test_host();
    for pid in [0, 1, host.self_pid, 999, 500] {
        assert_eq!(
            judge(pid, 0, true, &host),
            Descendant::Forbidden,
            "pid {pid}"
        );
    }
}
