//! The evidence `explain` gathers for one delegation (SPEC §11, §13): its stream's stat,
//! the process's uid and, for a live verified worker past quiet, what its tree waits on;
//! `core::explain` assembles it into the record.

use crate::cli::config::Config;
use crate::core::explain::{self, Inputs, Origin, StreamStat, UidFacts};
use crate::core::identity::{self, Observation};
use crate::core::lifecycle::{self, ProcessFacts, State};
use crate::core::stall::{Previous, Stall, diagnose};
use crate::fs::{self, NamedPathPolicy};
use crate::proc::stall::{StallReader, tree_pids};
use crate::shell::runs::{Item, Run};

pub fn explain_one(
    run: &Run,
    item: &Item<'_>,
    config: &Config,
    origin: Origin,
    reader: &mut StallReader,
) -> serde_json::Value {
    let lifecycle_doc = item.doc.worker_lifecycle.value();
    let fingerprint = lifecycle::recorded_fingerprint(lifecycle_doc)
        .ok()
        .flatten();
    let window = match fingerprint {
        Some(_) => None,
        None => identity::window(&item.times.evidence(lifecycle_doc), config.identity),
    };
    let process_uid = match item.facts {
        ProcessFacts::Checked { pid, .. } => crate::proc::real_uid(*pid),
        _ => None,
    };
    let path = item.path.to_string_lossy();
    let run_dir = run.path.to_string_lossy();
    explain::explain(&Inputs {
        run_dir: &run_dir,
        path: &path,
        view: item.view,
        times: item.times,
        lifecycle: lifecycle_doc,
        policy: &config.thresholds,
        origin,
        stream: stream_stat(run, item, config),
        process: item.facts,
        fingerprint,
        window,
        uid: UidFacts {
            file_uid: item.meta.uid,
            foreign: item.meta.foreign_reason(),
            process_uid,
        },
        stall: stall(item, config, reader),
    })
}

/// The stream's stat, as the document's owner (SPEC §1.3), for a running delegation.
fn stream_stat(run: &Run, item: &Item<'_>, config: &Config) -> StreamStat {
    if matches!(item.facts, ProcessFacts::NotChecked) {
        return StreamStat::None;
    }
    let Some(path) = crate::model::stream_path(item.doc) else {
        return StreamStat::None;
    };
    let policy = NamedPathPolicy {
        allow_outside: config.allow_outside_paths,
        owner: fs::guard_owner(&item.meta),
    };
    let shown = path.to_string_lossy().into_owned();
    match fs::stat_named(&run.root, &path, policy) {
        Ok(meta) => StreamStat::Present {
            path: shown,
            mtime: meta.mtime_ms,
            size: meta.size,
            dev: meta.dev,
            ino: meta.ino,
        },
        Err(error) => StreamStat::Refused {
            path: shown,
            why: error.to_string(),
        },
    }
}

/// The stall status gives (taken with the activity sample, SPEC §11); without a usable
/// sample (no stored one, and no second look for this worker) explain diagnoses the tree
/// itself. `--no-activity` reads nothing more: no stall.
fn stall(item: &Item<'_>, config: &Config, reader: &mut StallReader) -> Option<Stall> {
    config.activity?;
    match &item.view.activity {
        Some(activity) if !activity.has_no_sample() => item.view.stall.clone(),
        _ => item.view.stall.clone().or_else(|| stall_of(item, reader)),
    }
}

/// What a live, verified worker's tree waits on, once it is past its quiet threshold. A
/// tree with a process in disk sleep is read again after the activity window, since
/// `disk_wait` needs two samples.
fn stall_of(item: &Item<'_>, reader: &mut StallReader) -> Option<Stall> {
    let ProcessFacts::Checked {
        pid,
        identity: identity::Identity::Verified,
        observation: Observation::Alive { start_ticks, .. },
    } = item.facts
    else {
        return None;
    };
    if matches!(
        item.view.state,
        State::RunningActive | State::Launching | State::Queued
    ) {
        return None;
    }
    let table = crate::proc::process_table();
    let pids = tree_pids(&table, pid.get(), *start_ticks);
    let first = reader.gather(&pids);
    let stall = diagnose(&first, None);
    if first.disk_sleepers().is_empty() {
        return Some(stall);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let previous = Previous {
        disk_sleepers: first.disk_sleepers(),
        stall,
    };
    Some(diagnose(&reader.gather(&pids), Some(&previous)))
}
