//! run: launches one worker under watch (SPEC §12) — records it queued, spawns it, records
//! its identity taken at birth, watches it as sweep would, and finalizes it from its real
//! wait status. The exit status is timeout(1)'s. The work is in `shell::launch`; the
//! documents are built by `core::launch`.

mod birth;
mod end;

use crate::cli::config::Config;
use crate::core::launch;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use crate::shell::launch::{LaunchError, LockPolicy, Prepared, Watch, Watched};
use crate::shell::runs::LazyHost;
use std::ffi::OsString;

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
    let id = match &config.run.id {
        Some(id) => id.clone(),
        None => launch::new_id(crate::proc::now_ms(), &crate::proc::random_bytes()),
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
    let watch = Watch {
        prepared: &prepared,
        name: &name,
        config,
        lock: &lock,
        host: &host,
        stop,
    };
    let held = match birth::born(&watch, &id, &stream, stderr, diag)? {
        birth::Birth::Held(held) => held,
        birth::Birth::CannotFork(error) => {
            return cannot_execute(config, &prepared, &name, &lock, &error, diag);
        }
    };
    let mut spawned = match held.go() {
        Ok(spawned) => spawned,
        Err(error) => return cannot_execute(config, &prepared, &name, &lock, &error, diag),
    };
    // The queued and the running record's renames, made durable once the worker is let go.
    if let Err(error) = prepared.sync_delegations() {
        diag.warning(&error.path, &error.message);
    }
    match crate::shell::launch::watch(&watch, &mut spawned, diag)? {
        Watched::Stuck(stuck) => {
            end::reclaim_tree(&watch, &mut spawned, &stuck, diag)?;
            Ok(launch::RECLAIMED)
        }
        Watched::Exited(ended) => {
            end::finish(&watch, &mut spawned, &stream, ended)?;
            Ok(ended.status())
        }
    }
}

/// The command could not be executed (not found, not executable): said on stderr, and the
/// delegation finalized with exit 127 or 126 (timeout(1)'s statuses).
fn cannot_execute(
    config: &Config,
    prepared: &Prepared,
    name: &std::ffi::OsStr,
    lock: &LockPolicy,
    error: &std::io::Error,
    diag: &mut Diagnostics,
) -> Result<u8, LaunchError> {
    let program = std::path::Path::new(&config.run.command[0]);
    diag.error(
        program,
        &format!("cannot execute: {}", crate::fs::io_message(error)),
        Exit::FileProblem,
    );
    end::not_started(prepared, name, lock, error)
}
