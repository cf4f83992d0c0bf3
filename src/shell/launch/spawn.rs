//! Starting the worker (SPEC §12): `std::process::Command` with the stream as stdout (or
//! `--tee`'s pipe), stdin `/dev/null` unless inherited, its own process group, flatline's
//! variables in its environment; then, before it can be reaped, its pidfd and fingerprint.

use super::Relay;
use crate::core::identity::{Fingerprint, Host, Pid};
use crate::core::launch::Started;
use crate::core::time::Millis;
use crate::proc::OwnChild;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Where the worker's standard descriptors go.
#[derive(Debug)]
pub struct Stdio {
    pub stdin_inherit: bool,
    /// The stream (stdout without `--tee`, and stderr without `--stderr`).
    pub stream: File,
    /// `--stderr FILE`.
    pub stderr: Option<File>,
    /// `--tee`: stdout is a pipe that `Relay` copies to the stream and to run's stdout.
    pub tee: bool,
}

/// A spawned worker, not yet reaped.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    pub own: OwnChild,
    pub relay: Option<Relay>,
    /// It leads its own process group (signals are forwarded to the group).
    pub own_group: bool,
}

/// Spawns `command`. Every descriptor flatline holds is `O_CLOEXEC`; only the three given
/// here reach the worker. `Err` carries exec's errno (ENOENT: not found).
pub fn spawn(
    command: &[OsString],
    stdio: Stdio,
    env: &[(&str, OsString)],
    host: &Host,
) -> io::Result<Spawned> {
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    };
    // With stdin inherited from a terminal the worker stays in the foreground group, where
    // the terminal's signals reach it (and run does not forward SIGINT a second time).
    let own_group = !(stdio.stdin_inherit && std::io::IsTerminal::is_terminal(&std::io::stdin()));
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.stdin(if stdio.stdin_inherit {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    });
    let stderr = match stdio.stderr {
        Some(file) => file,
        None => stdio.stream.try_clone()?,
    };
    cmd.stderr(stderr);
    let relay_to = if stdio.tee {
        cmd.stdout(std::process::Stdio::piped());
        Some(stdio.stream)
    } else {
        cmd.stdout(stdio.stream);
        None
    };
    if own_group {
        cmd.process_group(0);
    }
    let mut child = cmd.spawn()?;
    let relay = match (relay_to, child.stdout.take()) {
        (Some(stream), Some(pipe)) => Some(Relay::start(pipe, stream)),
        _ => None,
    };
    // The pid of a child nobody has waited for cannot be recycled: the identity taken now
    // is the worker's (SPEC §12, never by window).
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(|pid| crate::core::identity::validate_found(pid, host).ok());
    let Some(pid) = pid else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other("the child's pid cannot be used"));
    };
    Ok(Spawned {
        child,
        own: OwnChild::open(pid),
        relay,
        own_group,
    })
}

impl Spawned {
    pub fn pid(&self) -> Pid {
        self.own.pid()
    }

    /// The worker's identity for the `running` record; `None` when `/proc` or the host
    /// cannot give a complete fingerprint (then it cannot be recorded: exit 125).
    pub fn started(&self, host: &Host, started_at: Millis) -> Option<Started> {
        let start_ticks = self.own.start_ticks()?;
        Some(Started {
            pid: self.pid().get(),
            started_at,
            process_started_at: host.start_ms(start_ticks),
            fingerprint: Fingerprint {
                start_ticks,
                boot_id: host.boot_id.clone()?,
                pid_ns: host.pid_ns?,
                pidfd_ino: self.own.pidfd_ino(),
            },
        })
    }

    /// Kills the worker's group (the worker alone when it has none) and reaps it: for a
    /// worker that cannot be recorded.
    pub fn kill_and_reap(&mut self) {
        self.own.send(libc::SIGKILL, self.own_group);
        let _ = self.child.wait();
        if let Some(relay) = self.relay.take() {
            relay.finish(std::time::Duration::from_millis(200));
        }
    }
}

/// `flatline run`'s own fingerprint, for the `launcher` record.
pub fn launcher_fingerprint(host: &Host) -> Option<Fingerprint> {
    let (start_ticks, pidfd_ino) = crate::proc::own_identity_parts();
    Some(Fingerprint {
        start_ticks: start_ticks?,
        boot_id: host.boot_id.clone()?,
        pid_ns: host.pid_ns?,
        pidfd_ino,
    })
}

/// The child's additions to the environment (SPEC §12): absolute paths, so that a worker
/// that changes its directory still finds them.
pub fn environment(
    prepared: &super::Prepared,
    id: &str,
    stream: &super::StreamFile,
) -> Vec<(&'static str, OsString)> {
    let root = &prepared.run.root.real_path;
    vec![
        ("FLATLINE_RUN_DIR", root.clone().into_os_string()),
        ("FLATLINE_DELEGATION_ID", OsString::from(id)),
        ("FLATLINE_STREAM", root.join(&stream.rel).into_os_string()),
    ]
}
