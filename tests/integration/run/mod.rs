//! `flatline run` (SPEC §12, issue 16) with real children: the fake agent of
//! `examples/fake-agent` prints Codex-shaped events, fails, hangs, ignores SIGTERM or forks a
//! grandchild. Everything that may signal runs inside a private pid namespace.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod record;
mod supervise;

fn agent() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fake-agent")
}

/// `flatline run --run-dir RUN ARGS...`.
fn launch(run: &Run, args: &[&str]) -> Outcome {
    let mut all = vec!["run", "--run-dir"];
    all.push(run.path().to_str().unwrap());
    all.extend_from_slice(args);
    flatline(all)
}

fn doc(run: &Run, id: &str) -> Value {
    run.read_json(&format!("delegations/{id}.json"))
}

/// Every catchable signal the namespace's init receives, but SIGCHLD, is logged: nothing of
/// `run`'s may reach it.
const INIT_TRAPS: &str = r##"
for s in {1..16} {18..64}; do trap "echo \"#init got signal $s\"" $s 2>/dev/null; done
wait_running() { local i=0; until grep -q '"status": "running"' "$1" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 1000 ] && return 1; sleep 0.01; done; }
alive() { local s; s=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }
"##;

fn in_namespace(script: &str, run: &Run) -> (Outcome, Vec<String>) {
    let mut command = pid_namespace_bash(&format!("{INIT_TRAPS}\n{script}"));
    command.arg(bin()).arg(run.path()).arg(agent());
    let out = run_command(&mut command, Duration::from_secs(90));
    let notes = out
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(str::to_string)
        .collect::<Vec<String>>();
    // Every script ends by saying so: a script cut short is a failure whatever it noted.
    assert_eq!(
        notes.last().map(String::as_str),
        Some("done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    (out, notes)
}

/// Whether the script noted `note` (a `#note` line of its stdout).
fn noted(notes: &[String], note: &str) -> bool {
    notes.iter().any(|n| n == note)
}

fn namespace_ok() -> bool {
    if !have("unshare") || !is_root() {
        eprintln!("SKIPPED: needs root and unshare");
        return false;
    }
    true
}
