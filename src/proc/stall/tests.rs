use super::*;
use crate::core::stall::{StallCode, diagnose};
use std::process::{Command, Stdio};

/// Gathers the facts of `pid` until `done` holds (the child needs a moment to reach its
/// wait), at most 5 s.
fn settled(pid: i32, done: impl Fn(&TreeFacts) -> bool) -> TreeFacts {
    let mut reader = StallReader::default();
    for _ in 0..500 {
        let facts = reader.gather(&[pid]);
        if done(&facts) {
            return facts;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    reader.gather(&[pid])
}

#[test]
fn a_child_reading_a_pipe_on_stdin_is_seen_in_read() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let facts = settled(pid, |f| diagnose(f, None).code == StallCode::StdinPipe);
    let stall = diagnose(&facts, None);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(stall.code, StallCode::StdinPipe, "{facts:?}");
    let process = &facts.processes[0];
    assert_eq!(process.comm, "cat");
    assert_eq!(process.stdin, Ok(FdKind::Pipe));
}

#[test]
fn a_sleeper_on_dev_null_is_idle_and_a_gone_pid_is_left_out() {
    let mut child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let facts = settled(pid, |f| {
        f.processes.first().is_some_and(|p| p.state == Ok(b'S'))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(diagnose(&facts, None).code, StallCode::Idle, "{facts:?}");
    assert!(gather(&[pid]).processes.is_empty());
}

#[test]
fn tree_pids_start_with_the_worker() {
    let table = [
        ProcEntry {
            pid: 10,
            ppid: 1,
            start_ticks: 5,
            exited: false,
            kernel_thread: false,
        },
        ProcEntry {
            pid: 11,
            ppid: 10,
            start_ticks: 6,
            exited: false,
            kernel_thread: false,
        },
        ProcEntry {
            pid: 12,
            ppid: 10,
            start_ticks: 7,
            exited: true,
            kernel_thread: false,
        },
    ];
    assert_eq!(tree_pids(&table, 10, 5), vec![10, 11]);
}
