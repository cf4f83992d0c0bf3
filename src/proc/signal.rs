//! Signals and waits: the one signal-sending path (pidfd, or `kill()` re-checked against the
//! start time), and waiting on many processes against one deadline.

use super::host::read_stat;
use crate::core::identity::{Pid, Stat};
use crate::sys;
use crate::sys::pid::pidfd_open;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// The signals flatline sends, and no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Cont,
    /// Freezes a tree before SIGKILL, so that it cannot fork while being snapshot again.
    Stop,
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Cont => libc::SIGCONT,
            Signal::Stop => libc::SIGSTOP,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

#[derive(Debug)]
pub(super) enum Handle {
    /// A pidfd: it keeps referring to the same process even if the pid is reused.
    PidFd(OwnedFd),
    /// pidfds are refused here (ENOSYS, or EPERM from a seccomp filter): the start time is
    /// checked again right before every `kill()`.
    Kill,
}

/// A process that may be signalled: a validated pid whose start time was checked through
/// the handle that will carry the signal. Only `open_target` makes one.
#[derive(Debug)]
pub struct Target {
    pid: Pid,
    start_ticks: u64,
    handle: Handle,
}

/// Why a process could not be opened as a target.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// It exited (or is a zombie).
    Gone,
    /// Another process holds the pid now.
    Changed,
}

pub(super) fn stat_of(pid: Pid) -> Option<Stat> {
    read_stat(pid.get()).ok().flatten()
}

/// Opens `pid` for signalling and checks that the process behind the handle is the one
/// that started at `start_ticks` (SPEC §3.1: pidfd_open, then verify, then signal).
#[cfg(test)]
pub fn open_target(pid: Pid, start_ticks: u64) -> Result<Target, OpenError> {
    open_target_with(pid, start_ticks, true)
}

/// `open_target`, or with `pidfd` false a handle that signals with `kill()` after checking
/// the start time again right before each signal: for descendants beyond the descriptors
/// flatline may hold (SPEC §3.3), so a tree of thousands cannot exhaust them.
pub fn open_target_with(pid: Pid, start_ticks: u64, pidfd: bool) -> Result<Target, OpenError> {
    let opened = if !pidfd || pidfds_refused_for_tests() {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    } else {
        pidfd_open(pid.get())
    };
    let handle = match opened {
        Ok(fd) => Handle::PidFd(fd),
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => return Err(OpenError::Gone),
        Err(_) => Handle::Kill,
    };
    // The handle refers to whatever held the pid when it was opened; reading the start time
    // now, after the open, tells whether that is still the expected process.
    match stat_of(pid) {
        None => Err(OpenError::Gone),
        Some(stat) if stat.exited() => Err(OpenError::Gone),
        Some(stat) if stat.start_ticks != start_ticks => Err(OpenError::Changed),
        Some(_) => Ok(Target {
            pid,
            start_ticks,
            handle,
        }),
    }
}

/// Debug builds only: `FLATLINE_TEST_NO_PIDFD=1` makes flatline behave as on a kernel that
/// refuses pidfds, so that tests exercise the `kill()` path. Release builds have no such
/// switch.
pub(super) fn pidfds_refused_for_tests() -> bool {
    #[cfg(debug_assertions)]
    {
        std::env::var_os("FLATLINE_TEST_NO_PIDFD").is_some_and(|v| v == "1")
    }
    #[cfg(not(debug_assertions))]
    {
        false
    }
}

/// What happened to a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// The process had already exited.
    Gone,
    /// EPERM: flatline may not signal it.
    NotPermitted,
    /// `kill()` path only: another process holds the pid now; nothing was sent.
    Changed,
}

impl Target {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The start time (clock ticks after boot) verified when the handle was opened.
    pub fn start_ticks(&self) -> u64 {
        self.start_ticks
    }

    /// Whether signals go through a pidfd (which holds a descriptor).
    pub fn holds_descriptor(&self) -> bool {
        matches!(self.handle, Handle::PidFd(_))
    }

    /// `pidfd` or `kill`: how signals reach this process.
    pub fn signal_via(&self) -> &'static str {
        match self.handle {
            Handle::PidFd(_) => "pidfd",
            Handle::Kill => "kill",
        }
    }

    /// Sends `signal` to this process, and to no other. The one place flatline signals.
    pub fn send(&self, signal: Signal) -> Sent {
        let sent = match &self.handle {
            // A pidfd addresses exactly one process, never a group.
            Handle::PidFd(fd) => sys::pid::pidfd_send_signal(fd.as_fd(), signal.number()),
            Handle::Kill => {
                match stat_of(self.pid) {
                    None => return Sent::Gone,
                    Some(stat) if stat.exited() => return Sent::Gone,
                    Some(stat) if stat.start_ticks != self.start_ticks => return Sent::Changed,
                    Some(_) => {}
                }
                // `self.pid` is a validated pid ≥ 2 (never 0 or -1, so never a process
                // group), and its start time was checked just above.
                sys::pid::kill(self.pid.get(), signal.number())
            }
        };
        match sent {
            Ok(()) => Sent::Delivered,
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => Sent::Gone,
            Err(_) => Sent::NotPermitted,
        }
    }

    /// Whether the process has exited (a zombie has).
    pub fn has_exited(&self) -> bool {
        match &self.handle {
            Handle::PidFd(fd) => poll_exited(&[fd.as_raw_fd()], 0)
                .first()
                .copied()
                .unwrap_or(false),
            Handle::Kill => match stat_of(self.pid) {
                None => true,
                Some(stat) => stat.exited() || stat.start_ticks != self.start_ticks,
            },
        }
    }
}

/// poll(2) on pidfds: which are readable (their process exited) within `timeout_ms`.
pub(super) fn poll_exited(fds: &[libc::c_int], timeout_ms: libc::c_int) -> Vec<bool> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ready = sys::pid::poll(&mut polls, timeout_ms).unwrap_or(0);
    if ready == 0 {
        // Timeout, or EINTR from a signal: nothing more is known.
        return vec![false; fds.len()];
    }
    polls.iter().map(|p| p.revents != 0).collect()
}

/// A process watched for its exit only, never signalled: `beat --while-pid`, where the
/// watched process is typically flatline's own parent (so it is not a `Pid`).
#[derive(Debug)]
pub struct Watch {
    pid: i64,
    fd: Option<OwnedFd>,
}

impl Watch {
    /// Starts watching `pid`; `None` when no such process exists.
    pub fn new(pid: i64) -> Option<Watch> {
        let raw = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)?;
        // A handle for polling: nothing here ever sends a signal through it.
        match pidfd_open(raw) {
            Ok(fd) => Some(Watch { pid, fd: Some(fd) }),
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => None,
            Err(_) => std::path::Path::new(&format!("/proc/{pid}"))
                .exists()
                .then_some(Watch { pid, fd: None }),
        }
    }

    /// Waits up to `timeout` (less if a signal arrives); true once the process has exited.
    pub fn wait_exit(&self, timeout: std::time::Duration) -> bool {
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        match &self.fd {
            Some(fd) => poll_exited(&[fd.as_raw_fd()], ms)[0] || self.exited_now(),
            None => {
                // No pidfd: look at /proc every 100 ms at most.
                std::thread::sleep(std::time::Duration::from_millis(ms.clamp(1, 100) as u64));
                self.exited_now()
            }
        }
    }

    fn exited_now(&self) -> bool {
        match &self.fd {
            Some(fd) => poll_exited(&[fd.as_raw_fd()], 0)[0],
            None => match read_stat(self.pid as i32) {
                Ok(Some(stat)) => stat.exited(),
                _ => true,
            },
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    AllExited,
    TimedOut,
    Interrupted,
}

/// Waits for every target together until all have exited, `deadline` passes, or `stop`
/// says to stop. The time left is recomputed from the fixed deadline on every wake-up.
/// `exited[i]` is updated for `targets[i]`.
pub fn wait_for_exit(
    targets: &[&Target],
    exited: &mut [bool],
    deadline: std::time::Instant,
    stop: &dyn Fn() -> bool,
) -> Waited {
    loop {
        for (i, target) in targets.iter().enumerate() {
            if !exited[i] && target.has_exited() {
                exited[i] = true;
            }
        }
        if exited.iter().all(|&e| e) {
            return Waited::AllExited;
        }
        if stop() {
            return Waited::Interrupted;
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Waited::TimedOut;
        }
        let left = deadline - now;
        let fds: Vec<libc::c_int> = targets
            .iter()
            .zip(exited.iter())
            .filter(|(_, done)| !**done)
            .filter_map(|(target, _)| match &target.handle {
                Handle::PidFd(fd) => Some(fd.as_raw_fd()),
                Handle::Kill => None,
            })
            .collect();
        let any_kill_path = targets
            .iter()
            .zip(exited.iter())
            .any(|(t, done)| !*done && matches!(t.handle, Handle::Kill));
        // Without a pidfd there is nothing to poll on: look again every 10 ms.
        let mut timeout = left.as_millis().min(i32::MAX as u128) as libc::c_int;
        if any_kill_path {
            timeout = timeout.min(10);
        }
        if fds.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(timeout.max(1) as u64));
        } else {
            poll_exited(&fds, timeout.max(1));
        }
    }
}

/// A child of flatline's own that it has not reaped yet (`flatline run`'s worker): while
/// nobody has waited for it, its pid cannot be recycled, and so neither can the process
/// group it leads. Holds a pidfd for polling and for the fingerprint. The caller reaps it
/// (`std::process::Child::wait`) only once `exited` says so, and sends nothing after that.
#[derive(Debug)]
pub struct OwnChild {
    pid: Pid,
    pidfd: Option<OwnedFd>,
    start_ticks: Option<u64>,
}

/// The signals `flatline run` forwards to its worker's process group (SPEC §12).
pub const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

impl OwnChild {
    /// Opens the child `pid`: a pidfd, then its start time (a zombie has both).
    pub fn open(pid: Pid) -> OwnChild {
        let pidfd = if pidfds_refused_for_tests() {
            None
        } else {
            pidfd_open(pid.get()).ok()
        };
        let start_ticks = stat_of(pid).map(|stat| stat.start_ticks);
        OwnChild {
            pid,
            pidfd,
            start_ticks,
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Its start time in clock ticks after boot (`None`: `/proc` did not show it).
    pub fn start_ticks(&self) -> Option<u64> {
        self.start_ticks
    }

    /// The pidfs inode of its pidfd, where the kernel has one.
    pub fn pidfd_ino(&self) -> Option<u64> {
        self.pidfd.as_ref().and_then(super::observe::pidfd_ino)
    }

    /// Waits up to `timeout_ms` (less when a signal interrupts the poll); true once it has
    /// exited (it is a zombie, waiting to be reaped).
    pub fn exited(&self, timeout_ms: i32) -> bool {
        match &self.pidfd {
            Some(fd) => poll_exited(&[fd.as_raw_fd()], timeout_ms.max(0))[0],
            None => {
                std::thread::sleep(std::time::Duration::from_millis(
                    timeout_ms.clamp(0, 100) as u64
                ));
                stat_of(self.pid).is_none_or(|stat| stat.exited())
            }
        }
    }

    /// Forwards `signal` (SIGINT, SIGTERM, SIGHUP or SIGKILL; any other is not sent) to
    /// the process group it leads when `group`, else to it alone. The child is unreaped, so
    /// neither its pid nor its group id can have been recycled.
    pub fn send(&self, signal: libc::c_int, group: bool) -> Sent {
        if !FORWARDED.contains(&signal) && signal != libc::SIGKILL {
            return Sent::NotPermitted;
        }
        let sent = match (&self.pidfd, group) {
            (_, true) => sys::pid::kill_group(self.pid.get(), signal),
            (Some(fd), false) => sys::pid::pidfd_send_signal(fd.as_fd(), signal),
            (None, false) => sys::pid::kill(self.pid.get(), signal),
        };
        match sent {
            Ok(()) => Sent::Delivered,
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => Sent::Gone,
            Err(_) => Sent::NotPermitted,
        }
    }
}

/// flatline's own identity for a `launcher` record: its start time and its pidfs inode.
pub fn own_identity_parts() -> (Option<u64>, Option<u64>) {
    let pid = sys::pid::getpid();
    let start_ticks = super::host::read_stat(pid)
        .ok()
        .flatten()
        .map(|stat| stat.start_ticks);
    let ino = pidfd_open(pid)
        .ok()
        .and_then(|fd| super::observe::pidfd_ino(&fd));
    (start_ticks, ino)
}
