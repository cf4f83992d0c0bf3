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
use std::io::{self, Read, Write};
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

/// A worker forked but held before exec (SPEC §12: recorded before it runs): `go` lets
/// it run, `abort` makes it exit without running anything. A `run` killed meanwhile
/// leaves no worker behind: the child sees the end of file and exits.
#[derive(Debug)]
pub struct Held {
    pub own: OwnChild,
    go: File,
    spawner: std::thread::JoinHandle<io::Result<Child>>,
    relay_to: Option<File>,
    own_group: bool,
}

/// A worker being forked on the spawner thread: `held` waits until the child is held
/// before exec and says its pid, `abort` stops it before it runs anything.
#[derive(Debug)]
pub struct Forking {
    pid: File,
    go: File,
    spawner: std::thread::JoinHandle<io::Result<Child>>,
    relay_to: Option<File>,
    own_group: bool,
}

/// Starts forking `command`, to be held before exec; returns at once, so that the fork
/// overlaps the queued record's write (the command itself runs only once `Held::go` lets
/// it, after the running record). Every descriptor flatline holds is `O_CLOEXEC`; only the
/// three given here reach the worker. The fork and exec happen on a short-lived thread
/// (`std::process::Command::spawn` returns only once the child has executed), which ends
/// with `go` or `abort`.
pub fn spawn(command: &[OsString], stdio: Stdio, env: &[(&str, OsString)]) -> io::Result<Forking> {
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
    let gate = crate::sys::gate::install(&mut cmd)?;
    let child_ends = gate.child_ends;
    let spawner = std::thread::Builder::new()
        .name("flatline-spawn".into())
        .spawn(move || {
            let spawned = cmd.spawn();
            // The child's ends are closed once it has executed (or failed): a child that
            // died before saying its pid is an end of file for the reader.
            drop(child_ends);
            spawned
        })?;
    Ok(Forking {
        pid: File::from(gate.pid),
        go: File::from(gate.go),
        spawner,
        relay_to,
        own_group,
    })
}

impl Forking {
    /// Waits for the child to be held before exec and takes its pidfd. `Err` when it could
    /// not be forked (the spawn's error) or its pid cannot be used; it never runs then.
    pub fn held(self, host: &Host) -> io::Result<Held> {
        let Forking {
            mut pid,
            go,
            spawner,
            relay_to,
            own_group,
        } = self;
        let mut pid_bytes = [0u8; 4];
        if pid.read_exact(&mut pid_bytes).is_err() {
            drop(go);
            return Err(join(spawner).err().unwrap_or_else(|| {
                io::Error::other("the child exited before it could be recorded")
            }));
        }
        // The pid of a child nobody has waited for cannot be recycled: the identity taken
        // now is the worker's (SPEC §12, never by window).
        let pid = crate::core::identity::validate_found(i32::from_ne_bytes(pid_bytes), host).ok();
        let Some(pid) = pid else {
            // Never let go: the child exits before exec.
            drop(go);
            reap(join(spawner));
            return Err(io::Error::other("the child's pid cannot be used"));
        };
        Ok(Held {
            own: OwnChild::open(pid),
            go,
            spawner,
            relay_to,
            own_group,
        })
    }

    /// The queued record could not be placed: the child exits before exec (125) without
    /// running anything, and is reaped.
    pub fn abort(self) {
        drop(self.go);
        reap(join(self.spawner));
    }
}

/// Reaps a child that was never let go: it `_exit`ed before exec, which `spawn` cannot tell
/// from an exec (both close its error pipe), so it comes back as a `Child` to wait for.
fn reap(spawned: io::Result<Child>) {
    if let Ok(mut child) = spawned {
        let _ = child.wait();
    }
}

/// The spawner thread's answer (a panic in it is an error, not a panic here).
fn join(spawner: std::thread::JoinHandle<io::Result<Child>>) -> io::Result<Child> {
    spawner
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the spawning thread panicked")))
}

impl Held {
    pub fn pid(&self) -> Pid {
        self.own.pid()
    }

    /// The worker's identity for the `running` record; `None` when `/proc` or the host
    /// cannot give a complete fingerprint (then it cannot be recorded: exit 125). Taken
    /// before exec, it is the worker's: exec keeps the pid and the start time.
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

    /// Lets the recorded worker run. `Err` carries exec's errno (ENOENT: not found); the
    /// child has exited and been reaped then.
    pub fn go(mut self) -> io::Result<Spawned> {
        let let_go = self.go.write_all(&[1]);
        drop(self.go);
        let mut child = join(self.spawner)?;
        if let Err(error) = let_go {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
        let relay = match (self.relay_to.take(), child.stdout.take()) {
            (Some(stream), Some(pipe)) => Some(Relay::start(pipe, stream)),
            _ => None,
        };
        Ok(Spawned {
            child,
            own: self.own,
            relay,
            own_group: self.own_group,
        })
    }

    /// A worker that cannot be recorded never runs: the child exits before exec (125), and
    /// is reaped.
    pub fn abort(self) {
        drop(self.go);
        reap(join(self.spawner));
    }
}

impl Spawned {
    pub fn pid(&self) -> Pid {
        self.own.pid()
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
