use super::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A shell with two sleeping children, killed (by pid) when dropped.
struct Tree(std::process::Child);

impl Drop for Tree {
    fn drop(&mut self) {
        let pid = self.0.id();
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            // The shell's own children, by pid: nothing else is signalled.
            let pids: Vec<&str> = children.split_whitespace().collect();
            if !pids.is_empty() {
                let _ = Command::new("kill").arg("-KILL").args(&pids).status();
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_live_tree_is_sampled_from_one_table() {
    let tree = Tree(
        Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = i32::try_from(tree.0.id()).unwrap();
    let began = Instant::now();
    let start = loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if children.split_whitespace().count() == 2 {
            break crate::proc::start_ticks_of(pid).unwrap();
        }
        assert!(began.elapsed() < Duration::from_secs(10), "no children");
        std::thread::sleep(Duration::from_millis(10));
    };
    let table = Table::read();
    assert!(!table.is_empty());
    let sample = table.sample(pid, start, 100).expect("the tree");
    assert_eq!(sample.processes, 3);
    assert_eq!(sample.procs.len(), 3);
    assert_eq!(sample.procs[0].pid, pid);
    assert_eq!(sample.at_ms, table.at_ms);
    assert!(sample.newest_start >= start);
    // flatline's tests run as root or as the processes' own user: io is readable.
    assert!(sample.io_bytes.is_some());
    // Another start time: another process, no sample.
    assert_eq!(table.sample(pid, start + 1, 100), None);
    assert_eq!(table.sample(i32::MAX, 0, 100), None);
}
