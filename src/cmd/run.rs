//! run: launches one worker under watch (SPEC §12) — records it queued, spawns it, records
//! its identity taken at birth, watches it as sweep would, and finalizes it from its real
//! wait status. The exit status is timeout(1)'s. The work is in `shell::launch`; the
//! documents are built by `core::launch`.

use crate::config::Config;
use crate::core::launch::{self, Ended, Queued};
use crate::exit::Exit;
use crate::output::Diagnostics;
use crate::scan::LazyHost;
use crate::shell::launch::{
    LaunchChange, LaunchError, LockPolicy, Prepared, Stdio, StreamFile, Watch, Watched,
};
use crate::stop::Stop;
use std::ffi::{OsStr, OsString};

/// `flatline run`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    match launch_and_watch(config, diag, stop) {
        Ok(status) => Exit::Launch(status),
        Err(error) => {
            diag.error(&error.path, &error.message, Exit::FileProblem);
            if error.usage {
                Exit::Usage
            } else {
                Exit::Launch(launch::RUN_FAILED)
            }
        }
    }
}

fn launch_and_watch(
    config: &Config,
    diag: &mut Diagnostics,
    stop: &Stop,
) -> Result<u8, LaunchError> {
    let prepared = Prepared::prepare(&config.run_dirs[0])?;
    let lock = LockPolicy {
        group: config.lock_group,
        wait: config.wait,
    };
    let now = crate::proc::now_ms();
    let id = match &config.run.id {
        Some(id) => id.clone(),
        None => launch::new_id(now, &crate::proc::random_bytes()),
    };
    let name = OsString::from(format!("{id}.json"));
    if prepared.delegation_exists(&name) {
        return Err(LaunchError::usage(
            &prepared.delegations.join(&name),
            "a delegation with this id already exists".into(),
        ));
    }
    // --stderr first: a refused one must not leave a new stream behind.
    let stderr = match &config.run.stderr {
        Some(path) => Some(prepared.open_stderr(path)?),
        None => None,
    };
    let stream = prepared.open_stream(&id, config.run.stream.as_deref())?;
    let host = LazyHost::default();
    let launcher = crate::shell::launch::launcher_fingerprint(host.get());
    let command: Vec<String> = config
        .run
        .command
        .iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let rel = stream.rel.to_string_lossy().into_owned();
    let queued = launch::queued_document(&Queued {
        id: &id,
        task_card: config.task_cards.first().map(String::as_str),
        command: &command,
        raw_events_file: &rel,
        raw_events_inode: crate::core::lifecycle::StreamInode {
            dev: stream.meta.dev,
            ino: stream.meta.ino,
        },
        launcher_pid: i64::from(std::process::id()),
        launcher_fingerprint: launcher.as_ref(),
        quiet_after_ms: config.thresholds.quiet,
        stale_after_ms: config.thresholds.stale,
        timeout_after_ms: config.thresholds.timeout,
        now,
    });
    prepared.place_queued(&name, &crate::model::render(&queued), &lock)?;
    diag.notice(&format!("delegation {id}"));
    let env = environment(&prepared, &id, &stream);
    let stdio = Stdio {
        stdin_inherit: config.run.stdin_inherit,
        stream: stream
            .file
            .try_clone()
            .map_err(|e| LaunchError::failed(&prepared.run.path, e.to_string()))?,
        stderr,
        tee: config.run.tee,
    };
    let started_at = crate::proc::now_ms();
    let mut spawned =
        match crate::shell::launch::spawn(&config.run.command, stdio, &env, host.get()) {
            Ok(spawned) => spawned,
            Err(error) => {
                return not_started(
                    &prepared,
                    &name,
                    &lock,
                    &config.run.command[0],
                    &error,
                    diag,
                );
            }
        };
    let recorded = spawned
        .started(host.get(), started_at)
        .ok_or_else(|| {
            LaunchError::failed(
                &prepared.run.path,
                "the worker's fingerprint cannot be read".into(),
            )
        })
        .and_then(|started| {
            crate::shell::launch::record(
                &prepared,
                &name,
                LaunchChange::Running(started),
                &lock,
                crate::proc::now_ms(),
            )
        });
    if let Err(error) = recorded {
        // A worker that cannot be recorded must not run unwatched (SPEC §12).
        spawned.kill_and_reap();
        return Err(error);
    }
    let watch = Watch {
        prepared: &prepared,
        name: &name,
        config,
        lock: &lock,
        host: &host,
        stop,
    };
    match crate::shell::launch::watch(&watch, &mut spawned, diag)? {
        Watched::Reclaimed => Ok(launch::RECLAIMED),
        Watched::Exited(ended) => {
            crate::shell::launch::finish(&watch, &mut spawned, &stream, ended)?;
            Ok(ended.status())
        }
    }
}

/// The child's additions to the environment (SPEC §12).
fn environment(
    prepared: &Prepared,
    id: &str,
    stream: &StreamFile,
) -> Vec<(&'static str, OsString)> {
    let root = &prepared.run.root.real_path;
    vec![
        ("FLATLINE_RUN_DIR", root.clone().into_os_string()),
        ("FLATLINE_DELEGATION_ID", OsString::from(id)),
        ("FLATLINE_STREAM", root.join(&stream.rel).into_os_string()),
    ]
}

/// COMMAND could not be executed: the queued delegation is finalized as failed with the
/// status timeout(1) gives (127 not found, 126 cannot execute).
fn not_started(
    prepared: &Prepared,
    name: &OsStr,
    lock: &LockPolicy,
    program: &OsStr,
    error: &std::io::Error,
    diag: &mut Diagnostics,
) -> Result<u8, LaunchError> {
    let status = launch::spawn_failure_status(error.raw_os_error());
    diag.error(
        std::path::Path::new(program),
        &format!("cannot execute: {}", crate::fs::io_message(error)),
        Exit::FileProblem,
    );
    let ended = Ended::Exited(i32::from(status));
    let finalization = crate::core::plan::refresh::Finalization {
        verdict: crate::core::digest::verdict_with_exit(&Default::default(), ended.exit_code()),
        completed_at: crate::proc::now_ms(),
        digest: None,
        exit_code: ended.exit_code(),
    };
    let change = LaunchChange::Finished {
        finalize: crate::core::plan::refresh::Change::Finalize(Box::new(finalization)),
        ended,
    };
    crate::shell::launch::record(prepared, name, change, lock, crate::proc::now_ms())?;
    Ok(status)
}
