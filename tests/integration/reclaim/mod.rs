//! `flatline reclaim` with real child processes spawned by the test. Forbidden pids are only
//! ever fed to flatline inside a fresh pid namespace whose init logs every catchable signal.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod grace;
mod guards;
mod signals;

/// A child of the test whose stdout's first line says it is ready (handlers installed).
struct Worker {
    proc: Proc,
    /// Whatever the child printed on its ready line (pids of its own children).
    line: String,
}

impl Worker {
    fn shell(script: &str) -> Worker {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Worker {
            proc: Proc { child },
            line: line.trim().to_string(),
        }
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn child_pids(&self) -> Vec<u32> {
        self.line
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z' && state != 'X'
        }
        Err(_) => false,
    }
}

fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

/// A stale running delegation for `pid`, identified by its fingerprint.
fn stale_delegation(id: &str, proc: &Proc) -> Value {
    let now = real_now_ms();
    delegation(
        id,
        "running",
        json!({
            "process_id": proc.pid(),
            "started_at": rfc3339(now - 600_000),
            "last_progress_at": rfc3339(now - 300_000),
            "process_fingerprint": {"start_ticks": proc.start_ticks(), "boot_id": boot_id(), "pid_ns": pid_ns()},
        }),
    )
}

fn reclaim(run: &Run, extra: &[&str]) -> Outcome {
    let mut args: Vec<&OsStr> = vec![OsStr::new("reclaim"), OsStr::new("--format=ndjson")];
    args.extend(extra.iter().map(OsStr::new));
    args.push(run.arg());
    flatline(args)
}
