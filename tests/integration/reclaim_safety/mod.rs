//! Reclaim's safety rules with real processes (issues 12 and 13): the tree frozen and
//! snapshot again before SIGKILL, descriptors for large trees, the re-check just before the
//! first signal, never signalling what cannot be recorded, and records that always land.
//! Every process signalled here is a child (or descendant) this test spawned; tests that
//! could reach other pids run inside `unshare --pid --fork --mount-proc`.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod grace_notes;
mod recheck;
mod trees;

/// A shell worker of the test; its first stdout line says it is ready.
struct Shell {
    proc: Proc,
    line: String,
}

impl Shell {
    fn start(script: &str) -> Shell {
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
        Shell {
            proc: Proc { child },
            line: line.trim().to_string(),
        }
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

/// A stale running delegation for `proc`, identified by its fingerprint.
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
