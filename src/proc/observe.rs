//! Observing a pid: `kill(pid, 0)`, `/proc` and a pidfd probe say whether a process holds
//! it, which one, and whether it has exited.

use super::host::read_proc;
use super::signal::pidfds_refused_for_tests;
use crate::core::identity::{Host, Observation, Pid, parse_stat, parse_status};
use crate::sys;
use crate::sys::pid::pidfd_open;
use std::os::fd::{AsFd, OwnedFd};

/// `fstatfs(pidfd).f_type` of a pidfd on pidfs (Linux ≥ 6.9), whose inodes are unique per
/// process for the boot.
pub const PIDFS_MAGIC: i64 = 0x5049_4446;

/// `kill(pid, 0)`: true when a process or thread holds the pid (EPERM counts: it exists).
pub(super) fn exists(pid: Pid) -> bool {
    // Signal 0 performs only the existence and permission checks; `pid` is a validated
    // positive pid, never 0 or -1, so no process group is addressed.
    match sys::pid::kill(pid.get(), 0) {
        Ok(()) => true,
        Err(error) => error.raw_os_error() == Some(libc::EPERM),
    }
}

/// Looks at the process holding `pid` now.
pub fn observe(pid: Pid, host: &Host, want_uid: bool) -> Observation {
    // One pidfd_open tells whether a process holds the pid and whether it is a thread-group
    // leader (EINVAL for a thread), for a fifth of what kill(pid, 0) plus a read of
    // /proc/PID/status costs. Where pidfds are refused, fall back to that.
    let mut pidfd_ino = None;
    let leader_checked = match probe_pidfd(pid) {
        Probe::Gone => return Observation::Exited,
        Probe::Thread => return Observation::NotThreadGroupLeader,
        Probe::Exists(ino) => {
            pidfd_ino = ino;
            true
        }
        // No pidfds on this kernel: kill(pid, 0) tells whether the pid is held.
        Probe::Unsupported => {
            if !exists(pid) {
                return Observation::Exited;
            }
            false
        }
        // A refusal other than ESRCH (EPERM from seccomp, ENOENT for a thread id on new
        // kernels) says nothing about the process: never `gone` on its word (SPEC §3.1).
        Probe::Refused => {
            if !exists(pid) {
                return Observation::Hidden;
            }
            false
        }
    };
    let mut buf = Vec::with_capacity(1024);
    let stat = match read_proc(pid.get(), "stat", &mut buf) {
        Ok(()) => parse_stat(&buf),
        Err(_) => None,
    };
    let Some(stat) = stat else {
        return hidden_or_exited(pid);
    };
    if stat.exited() {
        return Observation::Zombie;
    }
    if stat.kernel_thread() {
        return Observation::KernelThread;
    }
    let mut uid = None;
    if !leader_checked || want_uid {
        let status = match read_proc(pid.get(), "status", &mut buf) {
            Ok(()) => parse_status(&buf),
            Err(_) => None,
        };
        let Some(status) = status else {
            return hidden_or_exited(pid);
        };
        if status.tgid != pid.get() {
            return Observation::NotThreadGroupLeader;
        }
        uid = Some(status.uid);
    }
    Observation::Alive {
        start_ticks: stat.start_ticks,
        start_ms: host.start_ms(stat.start_ticks),
        uid,
        pidfd_ino,
    }
}

/// A pid whose `/proc` entry could not be read: gone since it was seen, or hidden from us.
pub(super) fn hidden_or_exited(pid: Pid) -> Observation {
    if exists(pid) {
        Observation::Hidden
    } else {
        Observation::Exited
    }
}

/// What `pidfd_open` says about a pid.
pub(super) enum Probe {
    Gone,
    Thread,
    /// A process holds the pid; its pidfs inode where the kernel has one.
    Exists(Option<u64>),
    /// The kernel has no `pidfd_open` (ENOSYS).
    Unsupported,
    /// Any other failure: it says nothing about whether the process exists.
    Refused,
}

pub(super) fn probe_pidfd(pid: Pid) -> Probe {
    if pidfds_refused_for_tests() {
        return Probe::Unsupported;
    }
    // The descriptor is closed at once: it is only a question.
    match pidfd_open(pid.get()) {
        Ok(fd) => Probe::Exists(pidfd_ino(&fd)),
        Err(error) => probe_of_errno(error.raw_os_error()),
    }
}

/// What a `pidfd_open` failure means (SPEC §3.1): only ESRCH says the process is gone.
pub(super) fn probe_of_errno(errno: Option<i32>) -> Probe {
    match errno {
        Some(libc::ESRCH) => Probe::Gone,
        Some(libc::EINVAL) => Probe::Thread,
        Some(libc::ENOSYS) => Probe::Unsupported,
        _ => Probe::Refused,
    }
}

/// `fstat(pidfd).st_ino`, only when the pidfd lives on pidfs (`fstatfs` says PIDFS_MAGIC)
/// and inodes are 64 bits: before Linux 6.9 every pidfd shares one anonymous inode, which
/// would tell nothing. `None`: the field cannot be read and is skipped, never a mismatch.
pub fn pidfd_ino(fd: &OwnedFd) -> Option<u64> {
    let fs = sys::fd::fstatfs(fd.as_fd()).ok()?;
    #[allow(clippy::unnecessary_cast)]
    if fs.f_type as i64 != PIDFS_MAGIC {
        return None;
    }
    let st = sys::fd::fstat(fd.as_fd()).ok()?;
    if std::mem::size_of_val(&st.st_ino) < 8 {
        return None;
    }
    #[allow(clippy::useless_conversion)]
    Some(u64::from(st.st_ino))
}
