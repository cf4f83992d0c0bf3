//! The README's deployment, end to end: the shipped unit's exact `ExecStart=` line run as
//! root every two seconds inside a private pid namespace, beside an orchestrator of an
//! ordinary uid that launches workers and rewrites their delegations under the run lock
//! (tests/deploy/e2e.sh plays it; this file checks what it left behind).

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The orchestrator's uid (and gid): an ordinary user that owns the run directory.
const ORCHESTRATOR: u32 = 4242;

fn notes(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("note: "))
        .map(str::to_owned)
        .collect()
}

fn delegation(run: &Path, id: &str) -> Value {
    let text = std::fs::read_to_string(run.join("delegations").join(format!("{id}.json")))
        .unwrap_or_else(|error| panic!("delegation {id}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("delegation {id}: {error}"))
}

#[test]
fn the_shipped_unit_sweeps_a_live_run_beside_an_orchestrator_of_another_uid() {
    for tool in ["unshare", "setpriv", "jq", "flock"] {
        if !have(tool) || !is_root() {
            eprintln!("SKIPPED: needs root, unshare, setpriv, jq and flock");
            return;
        }
    }
    let scratch = TempDir::new("deploy");
    let run = scratch.join("r42");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = manifest.join("contrib/systemd/flatline-sweep@.service");
    let script = manifest.join("tests/deploy/e2e.sh");
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc", "bash"])
        .arg(&script)
        .arg(bin())
        .arg(&unit)
        .arg(&run)
        .arg(ORCHESTRATOR.to_string())
        .env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(120));
    let notes = notes(&out.stdout);
    let sweep_err = std::fs::read_to_string(scratch.join("r42.sweep.err")).unwrap_or_default();
    let sweep_out = std::fs::read_to_string(scratch.join("r42.sweep.out")).unwrap_or_default();
    let context = format!(
        "notes: {notes:#?}\nstderr: {}\nsweep stderr: {sweep_err}\nsweep stdout: {sweep_out}",
        out.stderr
    );
    assert_eq!(notes.last().map(String::as_str), Some("done"), "{context}");

    // Every run of the unit's command succeeded: no usage error, no problem, and no lock
    // fight lost (the unit's --wait outlasts the orchestrator's short holds).
    let sweeps: Vec<&String> = notes.iter().filter(|n| n.starts_with("sweep ")).collect();
    assert!(sweeps.len() >= 10, "{context}");
    for sweep in &sweeps {
        assert!(sweep.ends_with("exit 0"), "{sweep}\n{context}");
    }
    assert_eq!(sweep_err, "", "{context}");

    // Only the stuck worker was signalled.
    for expected in ["decoy alive", "stuck dead", "progress exited naturally"] {
        assert!(notes.iter().any(|n| n == expected), "{expected}\n{context}");
    }
    let progress = delegation(&run, "progress");
    assert_eq!(progress["child_agent"]["status"], "completed", "{progress}");
    assert!(progress.get("reclaim").is_none(), "{progress}");
    let stuck = delegation(&run, "stuck");
    assert_eq!(
        stuck["worker_lifecycle"]["reclaim_state"], "reclaimed",
        "{stuck}"
    );
    assert_eq!(stuck["child_agent"]["status"], "failed", "{stuck}");
    assert_eq!(stuck["latest_failure"]["reason"], "timeout", "{stuck}");
    for id in ["quick", "reused"] {
        let doc = delegation(&run, id);
        assert_eq!(doc["child_agent"]["status"], "completed", "{id}: {doc}");
        assert!(doc.get("reclaim").is_none(), "{id}: {doc}");
    }

    // The card collapsed once, on every member.
    for id in ["progress", "stuck", "quick", "reused"] {
        let doc = delegation(&run, id);
        assert!(doc["fan_in_collapsed_at"].is_string(), "{id}: {doc}");
    }

    // No orchestrator update was lost: its own count equals what the documents hold.
    for id in ["progress", "stuck", "quick", "reused"] {
        let line = notes
            .iter()
            .find(|n| n.starts_with(&format!("updates {id} ")))
            .unwrap_or_else(|| panic!("no update count for {id}\n{context}"));
        let counts: Vec<&str> = line.split(' ').skip(2).collect();
        assert_eq!(counts.len(), 2, "{line}");
        assert_eq!(
            counts[0], counts[1],
            "lost update on {id}: {line}\n{context}"
        );
        assert_eq!(counts[0], "30", "{line}");
    }
}
