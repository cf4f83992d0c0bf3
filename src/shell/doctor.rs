//! doctor over one run directory: reads what `core::doctor` judges (directories, the state
//! directory, delegations, worker specs and the paths they name) and collects the findings.
//! Nothing is written, no lock is taken, and named files are resolved, never opened.
//! `unit` checks a systemd unit (`--check-unit`).

use crate::cli::config::Config;
use crate::core::doctor::{self, DelegationFacts, Finding};
use crate::core::lifecycle::{self, ChildStatus, Times};
use crate::fs::doctor::{Accounts, lock_gid, state_dir_facts, walk_dirs};
use crate::fs::{self, Dir, MAX_DOCUMENT_BYTES, NamedPathPolicy, ReadError, RunRoot};
use crate::model::{self, WorkerSpec};
use crate::shell::runs as scan;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

mod unit;

pub use unit::check_unit;

/// Who will run flatline: the unit's `User=` or the caller.
#[derive(Debug, Clone)]
pub struct Expected {
    pub uid: u32,
    pub name: String,
}

/// Every finding of one run directory.
pub fn check_run(
    path: &Path,
    config: &Config,
    accounts: &Accounts,
    expected: &Expected,
) -> Vec<Finding> {
    let shown = path.to_string_lossy().into_owned();
    let dir = match Dir::open(path) {
        Ok(dir) => dir,
        Err(error) => {
            return vec![
                Finding::new(
                    "run_dir",
                    format!("cannot be opened: {}", fs::io_message(&error)),
                    "name an existing run directory",
                )
                .at(shown),
            ];
        }
    };
    if !scan::is_run_directory(&dir) {
        return vec![
            Finding::new(
                "not_a_run_directory",
                scan::NOT_A_RUN_DIRECTORY,
                "name the directory that holds delegations/, workers/ or task-cards/ (not its parent, not delegations/ itself)",
            )
            .at(shown),
        ];
    }
    let run_meta = dir.meta().ok();
    let run_owner = run_meta.map_or(0, |m| m.uid);
    let mut findings = Vec::new();
    let (dirs, cut) = walk_dirs(&dir);
    for (dir_path, facts) in &dirs {
        let others = accounts
            .members(facts.gid)
            .iter()
            .any(|uid| *uid != facts.uid);
        findings.extend(doctor::writable_directory(
            &dir_path.to_string_lossy(),
            *facts,
            others,
        ));
    }
    if cut {
        findings.push(
            Finding::new(
                "walk_cut",
                format!(
                    "more than {} directories: the rest were not checked",
                    fs::doctor::MAX_WALKED_DIRS
                ),
                "check the remaining directories' modes by hand",
            )
            .at(shown.clone()),
        );
    }
    let state_path = format!("{shown}/.flatline");
    findings.extend(doctor::state_dir_findings(
        &state_path,
        &state_dir_facts(&dir),
        (expected.uid, &expected.name),
        run_owner,
    ));
    let root = RunRoot {
        real_path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        dir,
    };
    let mut worker_uids = Vec::new();
    findings.extend(check_delegations(&root, path, config, &mut worker_uids));
    findings.extend(check_workers(&root, path, config));
    let gid = lock_gid(&root.dir).or(run_meta.map(|m| m.gid)).unwrap_or(0);
    findings.extend(doctor::lock_group_findings(
        &format!("{state_path}/lock"),
        gid,
        &accounts.members(gid),
        &worker_uids,
        run_owner,
    ));
    findings
}

fn check_delegations(
    root: &RunRoot,
    path: &Path,
    config: &Config,
    worker_uids: &mut Vec<u32>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let listing = match root.dir.open_child(OsStr::new("delegations")) {
        Ok(Some(dir)) => dir,
        Ok(None) => return findings,
        Err(error) => {
            let shown = path.join("delegations").to_string_lossy().into_owned();
            findings.push(unusable(&shown, &fs::io_message(&error)));
            return findings;
        }
    };
    let entries = listing.entries().unwrap_or_default();
    let own_pid_ns = crate::proc::own_pid_ns();
    let mut buf = Vec::new();
    for entry in entries.iter().filter(|e| scan::is_document_name(e.name)) {
        let file = path.join("delegations").join(entry.name);
        let shown = file.to_string_lossy().into_owned();
        let meta = match listing.read_entry(&entry, MAX_DOCUMENT_BYTES, &mut buf) {
            Ok(meta) => meta,
            Err(error) => {
                findings.push(unusable(&shown, &error.to_string()));
                continue;
            }
        };
        let doc = match model::parse_delegation(&buf) {
            Ok(doc) => doc,
            Err(error) => {
                findings.push(unusable(&shown, &error.to_string()));
                continue;
            }
        };
        let facts = delegation_facts(&doc);
        if meta.uid != 0 {
            worker_uids.push(meta.uid);
        }
        if facts.running
            && let Some(pid) = doc
                .worker_lifecycle
                .value()
                .and_then(|l| l.process_id.value())
            && let Some(uid) = crate::proc::doctor::recorded_process_uid(*pid)
        {
            worker_uids.push(uid);
        }
        findings.extend(doctor::delegation_findings(
            &shown,
            &facts,
            config.now,
            config.thresholds.max_clock_skew,
            own_pid_ns,
        ));
        // Only a running worker's stream must exist: a queued one has none yet.
        let named = doc
            .worker_launch_evidence
            .value()
            .and_then(|e| e.raw_events_file.str())
            .filter(|p| facts.running && !p.is_empty());
        if let Some(named) = named {
            let policy = NamedPathPolicy {
                allow_outside: config.allow_outside_paths,
                owner: fs::guard_owner(&meta),
            };
            findings.extend(resolve(
                root,
                Path::new(named),
                policy,
                &shown,
                "raw_events_file",
            ));
        }
    }
    findings
}

fn delegation_facts(doc: &model::Delegation<'_>) -> DelegationFacts {
    let lifecycle = doc.worker_lifecycle.value();
    let times = Times::of(lifecycle);
    let running =
        lifecycle::child_status(doc) == ChildStatus::Running && !lifecycle::is_reclaimed(doc);
    let fingerprint = lifecycle.and_then(|l| l.process_fingerprint.value());
    let named = [
        ("queued_at", times.queued_at),
        ("launch_requested_at", times.launch_requested_at),
        ("started_at", times.started_at),
        ("process_started_at", times.process_started_at),
        ("process_last_seen_at", times.process_last_seen_at),
        ("last_progress_at", times.last_progress_at),
    ];
    DelegationFacts {
        running,
        has_pid: lifecycle.is_some_and(|l| l.process_id.is_present()),
        has_fingerprint: fingerprint.is_some(),
        has_anchor: times.process_started_at.is_some()
            || times.started_at.is_some()
            || times.last_progress_at.is_some(),
        has_launch: times.launch_requested_at.is_some() || times.queued_at.is_some(),
        timestamps: named
            .into_iter()
            .filter_map(|(name, at)| at.map(|at| (name, at)))
            .collect(),
        pid_ns: fingerprint
            .and_then(|f| f.pid_ns.value().copied())
            .or_else(|| lifecycle.and_then(|l| l.pid_ns.value().copied()))
            .and_then(|ns| u64::try_from(ns).ok()),
    }
}

fn check_workers(root: &RunRoot, path: &Path, config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Ok(Some(workers)) = root.dir.open_child(OsStr::new("workers")) else {
        return findings;
    };
    let mut buf = Vec::new();
    for entry in &workers.entries().unwrap_or_default() {
        if entry.name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(Some(worker_dir)) = workers.open_child(entry.name) else {
            continue;
        };
        let spec_path = path
            .join("workers")
            .join(entry.name)
            .join("worker-spec.json");
        let shown = spec_path.to_string_lossy().into_owned();
        let meta = match worker_dir.read_file(
            OsStr::new("worker-spec.json"),
            MAX_DOCUMENT_BYTES,
            &mut buf,
        ) {
            Ok(meta) => meta,
            Err(error) => {
                findings.push(unusable(&shown, &error.to_string()));
                continue;
            }
        };
        let spec: WorkerSpec<'_> = match model::parse_object(&buf) {
            Ok(spec) => spec,
            Err(error) => {
                findings.push(unusable(&shown, &error.to_string()));
                continue;
            }
        };
        let policy = NamedPathPolicy {
            allow_outside: config.allow_outside_paths,
            owner: fs::guard_owner(&meta),
        };
        let base = PathBuf::from("workers").join(entry.name);
        for (what, field) in [
            ("heartbeat", &spec.heartbeat),
            ("inbox", &spec.inbox),
            ("outbox", &spec.outbox),
        ] {
            let Some(named) = field.str().filter(|p| !p.is_empty()) else {
                continue;
            };
            let in_run = crate::shell::workers::spec_path_in_run(&base, Path::new(named));
            findings.extend(resolve(root, &in_run, policy, &shown, what));
        }
    }
    findings
}

/// Resolves a named path under SPEC §1.3 (`O_PATH`, as the document's owner; never opened
/// for reading) and says why it does not resolve.
fn resolve(
    root: &RunRoot,
    named: &Path,
    policy: NamedPathPolicy,
    document: &str,
    what: &str,
) -> Option<Finding> {
    let problem = match fs::stat_named(root, named, policy) {
        Ok(_) => return None,
        Err(ReadError::NotFound) => "does not exist".to_string(),
        Err(error) => error.to_string(),
    };
    Some(
        Finding::new(
            "named_path",
            format!("{what} {}: {problem}", fs::display_path(named)),
            format!(
                "make {what} name a regular file beneath the run directory, owned by the document's owner, reached without symlinks"
            ),
        )
        .at(document),
    )
}

fn unusable(path: &str, problem: &str) -> Finding {
    Finding::new(
        "unreadable_document",
        problem,
        "repair or remove the file: every run reports it (exit 3) and never acts on it",
    )
    .at(path)
}
