use super::*;
use crate::core::identity::{Host, Observation, validate};
use crate::model::{Field, Int};

#[test]
fn the_descriptor_budget_keeps_a_reserve() {
    assert_eq!(descriptor_budget(1024, 10), 1024 - 10 - DESCRIPTOR_RESERVE);
    assert_eq!(descriptor_budget(64, 10), 0, "never below zero");
    assert_eq!(descriptor_budget(100, 200), 0);
}

#[test]
fn only_esrch_from_pidfd_open_means_gone() {
    assert!(matches!(probe_of_errno(Some(libc::ESRCH)), Probe::Gone));
    assert!(matches!(probe_of_errno(Some(libc::EINVAL)), Probe::Thread));
    assert!(matches!(
        probe_of_errno(Some(libc::ENOSYS)),
        Probe::Unsupported
    ));
    for errno in [libc::EPERM, libc::ENOENT, libc::EMFILE, libc::EACCES] {
        assert!(
            matches!(probe_of_errno(Some(errno)), Probe::Refused),
            "{errno}"
        );
    }
    assert!(matches!(probe_of_errno(None), Probe::Refused));
}

#[test]
fn signalling_reaches_only_the_opened_process() {
    let host = Host::read();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = validate(&Field::Value(Int::from(child.id())), &host)
        .unwrap()
        .unwrap();
    let Observation::Alive { start_ticks, .. } = observe(pid, &host, false) else {
        panic!("child not alive");
    };
    assert_eq!(
        open_target(pid, start_ticks + 1).unwrap_err(),
        OpenError::Changed
    );
    let target = open_target(pid, start_ticks).unwrap();
    assert_eq!(target.signal_via(), "pidfd");
    assert!(!target.has_exited());
    assert_eq!(target.send(Signal::Term), Sent::Delivered);
    let mut exited = [false];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    assert_eq!(
        wait_for_exit(&[&target], &mut exited, deadline, &|| false),
        Waited::AllExited
    );
    assert!(target.has_exited(), "a zombie has exited");
    child.wait().unwrap();
    assert_eq!(target.send(Signal::Kill), Sent::Gone);
    assert_eq!(open_target(pid, start_ticks).unwrap_err(), OpenError::Gone);
}

#[test]
fn observing_real_processes() {
    let host = Host::read();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = validate(&Field::Value(Int::from(child.id())), &host)
        .unwrap()
        .unwrap();
    assert!(matches!(
        observe(pid, &host, false),
        Observation::Alive { uid: None, .. }
    ));
    match observe(pid, &host, true) {
        Observation::Alive { start_ms, uid, .. } => {
            let now = crate::proc::now_ms();
            assert!((now - start_ms).abs() < 5_000, "start {start_ms} now {now}");
            assert_eq!(uid, Some(crate::sys::ids::getuid()));
        }
        other => panic!("expected alive, got {other:?}"),
    }
    child.kill().unwrap();
    // Wait for the exit without reaping (WNOWAIT): the child stays a zombie.
    // Waits on our own child only; WNOWAIT leaves it unreaped.
    crate::sys::pid::wait_exit_no_reap(child.id()).unwrap();
    assert_eq!(observe(pid, &host, false), Observation::Zombie);
    child.wait().unwrap();
    assert_eq!(observe(pid, &host, false), Observation::Exited);
    assert!(host.ancestors.iter().all(|&p| p > 1));
    assert!(host.boot_id.is_some());
}
