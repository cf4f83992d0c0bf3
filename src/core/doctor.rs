//! doctor: the checks of `flatline doctor` (SPEC §13) as functions of facts the shell read.
//! Each finding names what is wrong and how to fix it.

use crate::core::time::{self, Millis};

/// One thing doctor found, with its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A short code (`pid_max`, `writable_directory`, …).
    pub check: &'static str,
    /// The file or directory it is about, when there is one.
    pub path: Option<String>,
    pub message: String,
    pub fix: String,
}

impl Finding {
    pub fn new(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check,
            path: None,
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
}

/// Below this `pid_max`, an unprivileged fork loop wraps pids in seconds (SPEC §3.1).
pub const MIN_PID_MAX: u64 = 4_194_304;

/// What the host says, read once. `None`: could not be read (said so, never guessed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub pid_max: Option<u64>,
    /// Yama's `ptrace_scope`; `None` when Yama is absent.
    pub ptrace_scope: Option<u32>,
    /// The `hidepid=` option of the `/proc` flatline sees, when it is not 0/off.
    pub hidepid: Option<String>,
    pub pidfd: bool,
    pub openat2: bool,
    pub protected_hardlinks: Option<u32>,
    /// Whether flatline runs with root's effective uid.
    pub root: bool,
}

/// The host-wide checks.
pub fn host_findings(host: &HostFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    match host.pid_max {
        Some(max) if max < MIN_PID_MAX => out.push(Finding::new(
            "pid_max",
            format!(
                "kernel.pid_max is {max}: an unprivileged fork loop cycles ~25,000 pids/s, so a recycled pid can land in a worker's identity window"
            ),
            format!("sysctl -w kernel.pid_max={MIN_PID_MAX} (and set it in /etc/sysctl.d/)"),
        )),
        Some(_) => {}
        None => out.push(Finding::new(
            "pid_max",
            "cannot read /proc/sys/kernel/pid_max",
            "mount /proc where flatline runs",
        )),
    }
    if host.ptrace_scope == Some(3) {
        out.push(Finding::new(
            "ptrace_scope",
            "Yama ptrace_scope is 3: not even root may read a worker's /proc/PID/syscall, so stall diagnoses say 'cannot read'",
            "sysctl -w kernel.yama.ptrace_scope=1 (3 cannot be lowered without a reboot)",
        ));
    }
    if let Some(mode) = &host.hidepid
        && !host.root
    {
        out.push(Finding::new(
            "hidepid",
            format!(
                "/proc is mounted with hidepid={mode}: flatline, not running as root, cannot see other users' workers, which become unverifiable"
            ),
            "run flatline as root (the shipped unit does), or mount /proc without hidepid where it runs",
        ));
    }
    if !host.pidfd {
        out.push(Finding::new(
            "pidfd",
            "pidfd_open is not available (kernel before 5.3, or a seccomp filter): signals go by kill() after re-checking the start time",
            "run on Linux 5.3 or later and allow pidfd_open and pidfd_send_signal in the seccomp filter",
        ));
    }
    if !host.openat2 {
        out.push(Finding::new(
            "openat2",
            "openat2 is not available (kernel before 5.6, or a seccomp filter): named paths are resolved by a slower component walk",
            "run on Linux 5.6 or later and allow openat2 in the seccomp filter",
        ));
    }
    if host.protected_hardlinks == Some(0) {
        out.push(Finding::new(
            "protected_hardlinks",
            "fs.protected_hardlinks is 0: any user can hard-link another's file into a run directory",
            "sysctl -w fs.protected_hardlinks=1 (and set it in /etc/sysctl.d/)",
        ));
    }
    out
}

/// A directory's owner, group and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirFacts {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// A directory without the sticky bit that someone other than its owner can write: another
/// writer could swap one worker's stream for another's. `group_has_others`: the group
/// holds a user other than the owner.
pub fn writable_directory(path: &str, dir: DirFacts, group_has_others: bool) -> Option<Finding> {
    let sticky = dir.mode & 0o1000 != 0;
    let other = dir.mode & 0o002 != 0;
    let group = dir.mode & 0o020 != 0 && group_has_others;
    if sticky || !(other || group) {
        return None;
    }
    let who = if other {
        "every user"
    } else {
        "other members of its group"
    };
    Some(
        Finding::new(
            "writable_directory",
            format!(
                "mode {:04o} lets {who} rename and replace files here (no sticky bit): one worker's stream could be swapped for another's",
                dir.mode & 0o7777
            ),
            format!("chmod {} {path} (or chmod +t {path})", if other { "o-w" } else { "g-w" }),
        )
        .at(path),
    )
}

/// A file of `.flatline/`: `(owner, gid, mode, links)`, or why it is unusable.
pub type StateFile = Result<(u32, u32, u32, u64), String>;

/// What `RUN_DIR/.flatline/` looks like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDirFacts {
    /// `None`: it does not exist yet (the first writing run creates it).
    pub dir: Option<Result<DirFacts, String>>,
    /// `lock` and `state.json`: `(name, owner, gid, mode, links)` or why they are unusable.
    pub files: Vec<(&'static str, StateFile)>,
}

/// `.flatline/` against the user that will run flatline (`expected`, the unit's `User=` or
/// the caller) and the run directory's owner (SPEC §4).
pub fn state_dir_findings(
    path: &str,
    facts: &StateDirFacts,
    expected: (u32, &str),
    run_owner: u32,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let dir = match &facts.dir {
        None => return out,
        Some(Err(problem)) => {
            out.push(
                Finding::new(
                    "state_dir",
                    problem.clone(),
                    format!("remove {path} and let the next sweep create it"),
                )
                .at(path),
            );
            return out;
        }
        Some(Ok(dir)) => *dir,
    };
    let (uid, user) = expected;
    if dir.uid != uid && dir.uid != run_owner {
        out.push(
            Finding::new(
                "state_dir_owner",
                format!(
                    "owned by uid {}, neither {user} (uid {uid}, who runs flatline) nor the run directory's owner (uid {run_owner}): the run is refused (exit 4)",
                    dir.uid
                ),
                format!("chown -R {uid} {path}"),
            )
            .at(path),
        );
    }
    if dir.mode & 0o022 != 0 {
        out.push(
            Finding::new(
                "state_dir_mode",
                format!(
                    "mode {:04o} is writable by group or others: the run is refused (exit 4)",
                    dir.mode & 0o7777
                ),
                format!("chmod 0750 {path}"),
            )
            .at(path),
        );
    }
    for (name, file) in &facts.files {
        let file_path = format!("{path}/{name}");
        match file {
            Err(problem) => out.push(
                Finding::new(
                    "state_file",
                    problem.clone(),
                    format!("remove {file_path} and let the next sweep create it"),
                )
                .at(file_path),
            ),
            Ok((_, _, mode, links)) if mode & 0o007 != 0 || *links != 1 => out.push(
                Finding::new(
                    "state_file",
                    format!(
                        "mode {:04o} with {links} link(s): it must have no permission for others and one link, or the run is refused (exit 4)",
                        mode & 0o7777
                    ),
                    format!("chmod 0640 {file_path} (a hard-linked file: remove it)"),
                )
                .at(file_path),
            ),
            Ok(_) => {}
        }
    }
    out
}

/// Members of the lock group that must not be there: uids of worker processes or owners of
/// non-root delegations other than the orchestrator (the run directory's owner). They could
/// hold the lock forever (SPEC §4).
pub fn lock_group_findings(
    lock_path: &str,
    gid: u32,
    members: &[u32],
    workers: &[u32],
    orchestrator: u32,
) -> Vec<Finding> {
    let mut suspects: Vec<u32> = members
        .iter()
        .copied()
        .filter(|uid| *uid != 0 && *uid != orchestrator && workers.contains(uid))
        .collect();
    suspects.sort_unstable();
    suspects.dedup();
    suspects
        .into_iter()
        .map(|uid| {
            Finding::new(
                "lock_group_member",
                format!(
                    "uid {uid}, a worker's or a delegation owner's, is in the lock group (gid {gid}): it can hold the run lock and stop every sweep"
                ),
                format!(
                    "take uid {uid} out of group {gid}, or give .flatline/ a group of its own (chgrp -R GROUP {})",
                    lock_path.trim_end_matches("/lock")
                ),
            )
            .at(lock_path)
        })
        .collect()
}

/// What doctor looks at in one delegation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelegationFacts {
    pub running: bool,
    pub has_pid: bool,
    pub has_fingerprint: bool,
    /// The earliest sign of life: `process_started_at`, `started_at` or `last_progress_at`.
    pub has_anchor: bool,
    /// `launch_requested_at` or `queued_at`.
    pub has_launch: bool,
    /// Every recorded timestamp, with its field name.
    pub timestamps: Vec<(&'static str, Millis)>,
    /// The `pid_ns` of its fingerprint (or `worker_lifecycle.pid_ns`).
    pub pid_ns: Option<u64>,
}

/// The checks of one delegation: timestamps identity needs, clock skew, pid namespace.
pub fn delegation_findings(
    path: &str,
    doc: &DelegationFacts,
    now: Millis,
    max_skew: Millis,
    own_pid_ns: Option<u64>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if doc.running && doc.has_pid && !doc.has_fingerprint && !(doc.has_anchor && doc.has_launch) {
        let missing = match (doc.has_anchor, doc.has_launch) {
            (false, false) => {
                "a sign of life (process_started_at, started_at or last_progress_at) and a launch time (launch_requested_at or queued_at)"
            }
            (false, true) => "a sign of life (process_started_at, started_at or last_progress_at)",
            _ => "a launch time (launch_requested_at or queued_at)",
        };
        out.push(
            Finding::new(
                "identity_timestamps",
                format!(
                    "a running worker with a process id but no process_fingerprint lacks {missing}: its process can never be verified, so it is never reclaimed"
                ),
                "have the orchestrator record them (or a process_fingerprint; flatline run does both), or close it with flatline finalize",
            )
            .at(path),
        );
    }
    for (field, at) in &doc.timestamps {
        if *at > now.saturating_add(max_skew) {
            out.push(
                Finding::new(
                    "clock_skew",
                    format!(
                        "worker_lifecycle.{field} is {} in the future (more than --max-clock-skew {}): the writer's clock is wrong",
                        time::format_duration(at - now),
                        time::format_duration(max_skew)
                    ),
                    "synchronise the writer's clock (chrony or systemd-timesyncd)",
                )
                .at(path),
            );
        }
    }
    if doc.running
        && let (Some(theirs), Some(ours)) = (doc.pid_ns, own_pid_ns)
        && theirs != ours
    {
        out.push(
            Finding::new(
                "pid_namespace",
                format!(
                    "its pid is numbered in pid namespace {theirs}, flatline runs in {ours}: the worker is unverifiable here and never reclaimed"
                ),
                "run flatline in the workers' pid namespace (hostPID: true or shareProcessNamespace: true in Kubernetes)",
            )
            .at(path),
        );
    }
    out
}

#[cfg(test)]
mod tests;
