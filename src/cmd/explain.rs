//! explain: why each delegation is in its state, with the evidence (SPEC §11, §13).
//!
//! Reads like `status` (no lock, no write), then for each chosen delegation stats its
//! stream, reads the process's uid and, for a live verified worker past quiet, what its
//! tree waits on; `core::explain` assembles the evidence. The operands are RUN_DIR and then
//! delegation ids (or file names); without ids, the delegations that need attention.

use crate::cli::config::Config;
use crate::core::explain::{self, Inputs, Origin, StreamStat, UidFacts};
use crate::core::identity::{self, Observation};
use crate::core::lifecycle::{self, ProcessFacts, State};
use crate::core::stall::{Previous, Stall, diagnose};
use crate::exit::Exit;
use crate::fs::{self, NamedPathPolicy};
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use crate::proc::stall::{StallReader, tree_pids};
use crate::shell::runs::{self as scan, Item, LazyHost, Run};

/// `flatline explain RUN_DIR [ID...]`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let Some((dir, ids)) = config.run_dirs.split_first() else {
        return Exit::Usage;
    };
    let ids: Vec<String> = ids
        .iter()
        .map(|id| id.to_string_lossy().into_owned())
        .collect();
    let runs = scan::open_runs(std::slice::from_ref(dir), diag);
    let Some(run) = runs.first() else {
        return Exit::RunUnusable;
    };
    let (config, origin) = crate::shell::last_run::explain_config(config, run);
    let host = LazyHost::default();
    let mut reader = StallReader::default();
    let mut found = vec![false; ids.len()];
    let mut text = String::new();
    let result = scan::for_each_delegation(run, &config, &host, diag, stop, |item, _| {
        let file = item.name.to_string_lossy();
        let stem = file.strip_suffix(".json").unwrap_or(&file);
        let wanted = if ids.is_empty() {
            // --delegation has chosen the file already (the walk reads no other).
            !config.delegations.is_empty() || item.view.needs_attention()
        } else {
            let mut any = false;
            for (id, hit) in ids.iter().zip(found.iter_mut()) {
                if item.view.delegation_id == Some(id.as_str()) || stem == id || file == *id {
                    *hit = true;
                    any = true;
                }
            }
            any
        };
        if wanted {
            let record = explain_one(run, &item, &config, origin, &mut reader);
            if config.format == crate::cli::Format::Text {
                text.push_str(&explain::to_text(&record));
            } else {
                // Dangerous characters as \uXXXX escapes, as in every JSON flatline prints.
                if let Ok(line) = crate::output::to_string_safe(&record) {
                    text.push_str(&line);
                }
                text.push('\n');
            }
        }
        Ok(())
    });
    let mut exit = result.err().unwrap_or(Exit::Ok);
    for (id, _) in ids.iter().zip(&found).filter(|(_, hit)| !**hit) {
        diag.error(
            &run.path.join("delegations").join(id),
            "no delegation read with this id or file name",
            Exit::Usage,
        );
        exit = Exit::Usage;
    }
    if ids.is_empty() && text.is_empty() && config.format == crate::cli::Format::Text {
        text.push_str("nothing needs attention\n");
    }
    if let Err(error) = crate::output::write_stdout(text.as_bytes()) {
        return crate::output::stdout_failed(diag, &error);
    }
    diag.raise(exit);
    diag.exit
}

fn explain_one(
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
        now: config.now,
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
