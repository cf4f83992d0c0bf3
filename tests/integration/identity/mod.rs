//! Liveness and identity of worker processes in `status` (SPEC §3.1), with real children.
//! Identity uses the real clocks, so these delegations carry real timestamps; `status`
//! never signals, so forbidden pids are safe to feed it.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;

mod clocks_and_namespaces;
mod evidence;

fn running_pid(id: &str, pid: Value, lifecycle: Value) -> Value {
    let mut lifecycle = lifecycle;
    lifecycle["process_id"] = pid;
    delegation(id, "running", lifecycle)
}

/// `status` without `--now`: process identity is about the real present.
fn live_status(run: &Run) -> Outcome {
    flatline([
        std::ffi::OsStr::new("status"),
        std::ffi::OsStr::new("--format"),
        std::ffi::OsStr::new("ndjson"),
        run.arg(),
    ])
}
