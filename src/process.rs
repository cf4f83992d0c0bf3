//! process: liveness of worker processes, read from `/proc` and `kill(pid, 0)`; pidfds,
//! signals and waits.
//!
//! flatline never signals a process that is not the worker. The validated `Pid` and the
//! pure identity decision live in `core::identity`; this module makes the observations the
//! decision is made on, and sends signals only to a `Pid`.

use crate::core::identity::{
    Host, Observation, Pid, ProcEntry, Stat, nspid_depth, parse_stat, parse_status,
};
use crate::core::time::Millis;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `fstatfs(pidfd).f_type` of a pidfd on pidfs (Linux ≥ 6.9), whose inodes are unique per
/// process for the boot.
pub const PIDFS_MAGIC: i64 = 0x5049_4446;
impl Host {
    /// Reads the host facts from `/proc` and the real clocks (never `--now`).
    pub fn read() -> Host {
        // SAFETY: getpid cannot fail.
        let self_pid = unsafe { libc::getpid() };
        Host {
            self_pid,
            ancestors: ancestors_of(self_pid),
            pid_max: std::fs::read_to_string("/proc/sys/kernel/pid_max")
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(4_194_304),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|text| text.trim().to_string())
                .filter(|text| !text.is_empty()),
            pid_ns: std::fs::metadata("/proc/self/ns/pid")
                .ok()
                .map(|meta| std::os::unix::fs::MetadataExt::ino(&meta)),
            // SAFETY: sysconf with a valid name has no preconditions.
            ticks_per_second: match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
                ticks if ticks > 0 => ticks,
                _ => 100,
            },
            boot_epoch_ms: boot_epoch_ms(),
        }
    }
}

fn clock_ms(clock: libc::clockid_t) -> Millis {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer and the clock ids are constants the kernel knows.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec.saturating_mul(1000) + ts.tv_nsec / 1_000_000
}

/// `CLOCK_REALTIME − CLOCK_BOOTTIME`, read back to back.
pub fn boot_epoch_ms() -> Millis {
    let realtime = clock_ms(libc::CLOCK_REALTIME);
    let boottime = clock_ms(libc::CLOCK_BOOTTIME);
    realtime - boottime
}

fn ancestors_of(pid: i32) -> Vec<i32> {
    let mut chain = Vec::new();
    let mut current = pid;
    // A ppid chain ends at 0 (the kernel); the bound guards against a loop on a strange /proc.
    for _ in 0..4096 {
        let Some(stat) = read_stat(current).ok().flatten() else {
            break;
        };
        if stat.ppid <= 1 {
            break;
        }
        chain.push(stat.ppid);
        current = stat.ppid;
    }
    chain
}

fn read_proc(pid: i32, file: &str, buf: &mut Vec<u8>) -> io::Result<()> {
    use std::io::Read;
    buf.clear();
    let mut handle = std::fs::File::open(format!("/proc/{pid}/{file}"))?;
    handle.by_ref().take(64 * 1024).read_to_end(buf)?;
    Ok(())
}

fn read_stat(pid: i32) -> io::Result<Option<Stat>> {
    let mut buf = Vec::with_capacity(512);
    read_proc(pid, "stat", &mut buf)?;
    Ok(parse_stat(&buf))
}

/// `kill(pid, 0)`: true when a process or thread holds the pid (EPERM counts: it exists).
fn exists(pid: Pid) -> bool {
    // SAFETY: signal 0 performs only the existence and permission checks; `pid` is a
    // validated positive pid, never 0 or -1, so no process group is addressed.
    let rc = unsafe { libc::kill(pid.get(), 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
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
fn hidden_or_exited(pid: Pid) -> Observation {
    if exists(pid) {
        Observation::Hidden
    } else {
        Observation::Exited
    }
}

/// What `pidfd_open` says about a pid.
enum Probe {
    Gone,
    Thread,
    /// A process holds the pid; its pidfs inode where the kernel has one.
    Exists(Option<u64>),
    /// The kernel has no `pidfd_open` (ENOSYS).
    Unsupported,
    /// Any other failure: it says nothing about whether the process exists.
    Refused,
}

fn probe_pidfd(pid: Pid) -> Probe {
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
fn probe_of_errno(errno: Option<i32>) -> Probe {
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
    // SAFETY: an all-zero statfs is a valid out-buffer for fstatfs.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open descriptor we own and `fs` a valid out-pointer.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut fs) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)]
    if fs.f_type as i64 != PIDFS_MAGIC {
        return None;
    }
    // SAFETY: an all-zero stat is a valid out-buffer for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open descriptor we own and `st` a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return None;
    }
    if std::mem::size_of_val(&st.st_ino) < 8 {
        return None;
    }
    #[allow(clippy::useless_conversion)]
    Some(u64::from(st.st_ino))
}

/// `pidfd_open(pid, 0)`: a descriptor for the process holding `pid` now.
fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; opening a
    // pidfd sends nothing to the process.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// The inode of flatline's own pid namespace (`/proc/self/ns/pid`).
pub fn own_pid_ns() -> Option<u64> {
    std::fs::metadata("/proc/self/ns/pid")
        .ok()
        .map(|meta| std::os::unix::fs::MetadataExt::ino(&meta))
}

/// Whether the process holding `pid` lives in a nested pid namespace: its `NSpid:` line in
/// `/proc/PID/status` has more than one entry. `None` when that cannot be read.
pub fn in_nested_pid_ns(pid: Pid) -> Option<bool> {
    let mut buf = Vec::with_capacity(1024);
    read_proc(pid.get(), "status", &mut buf).ok()?;
    nspid_depth(&buf).map(|depth| depth > 1)
}

/// Reads `/proc/*/stat` once: the parent links of every process (threads are not listed).
pub fn process_table() -> Vec<ProcEntry> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut table = Vec::new();
    let mut buf = Vec::with_capacity(512);
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if read_proc(pid, "stat", &mut buf).is_err() {
            continue;
        }
        if let Some(stat) = parse_stat(&buf) {
            table.push(ProcEntry {
                pid,
                ppid: stat.ppid,
                start_ticks: stat.start_ticks,
                exited: stat.exited(),
                kernel_thread: stat.kernel_thread(),
            });
        }
    }
    table
}

/// The start time (clock ticks after boot) of the process holding `pid` now, when it is
/// alive (not gone, not a zombie). Used to tell whether a process noted earlier, by pid and
/// start time, is still the one running.
pub fn start_ticks_of(pid: i32) -> Option<u64> {
    if pid < 1 {
        return None;
    }
    match read_stat(pid) {
        Ok(Some(stat)) if !stat.exited() => Some(stat.start_ticks),
        _ => None,
    }
}

/// Descriptors kept free for reading `/proc`, documents and output while pidfds are held.
const DESCRIPTOR_RESERVE: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (SPEC §3.3: a large tree needs a pidfd
/// per process; systemd's default soft limit is 1024). Returns how many more descriptors
/// flatline may open for pidfds now, keeping a reserve for everything else.
pub fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit we own; raising the soft limit up to the hard
        // limit needs no privilege and changes nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|entries| entries.count() as u64)
        .unwrap_or(DESCRIPTOR_RESERVE);
    descriptor_budget(limit.rlim_cur, open)
}

/// How many pidfds may be opened with `limit` descriptors of which `open` are in use. Pure.
pub fn descriptor_budget(limit: u64, open: u64) -> u64 {
    limit
        .saturating_sub(open)
        .saturating_sub(DESCRIPTOR_RESERVE)
}

/// The real uid of a live process (`None` when it is gone or hidden).
pub fn real_uid(pid: Pid) -> Option<u32> {
    let mut buf = Vec::with_capacity(1024);
    read_proc(pid.get(), "status", &mut buf).ok()?;
    parse_status(&buf).map(|status| status.uid)
}

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
enum Handle {
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

fn stat_of(pid: Pid) -> Option<Stat> {
    read_stat(pid.get()).ok().flatten()
}

/// Opens `pid` for signalling and checks that the process behind the handle is the one
/// that started at `start_ticks` (SPEC §3.1: pidfd_open, then verify, then signal).
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
fn pidfds_refused_for_tests() -> bool {
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
        let rc = match &self.handle {
            Handle::PidFd(fd) => {
                // SAFETY: pidfd_send_signal on a pidfd we own, with no siginfo and no flags;
                // a pidfd addresses exactly one process, never a group.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        signal.number(),
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                }
            }
            Handle::Kill => {
                match stat_of(self.pid) {
                    None => return Sent::Gone,
                    Some(stat) if stat.exited() => return Sent::Gone,
                    Some(stat) if stat.start_ticks != self.start_ticks => return Sent::Changed,
                    Some(_) => {}
                }
                // SAFETY: `self.pid` is a validated pid ≥ 2 (never 0 or -1, so never a
                // process group), and its start time was checked just above.
                i64::from(unsafe { libc::kill(self.pid.get(), signal.number()) })
            }
        };
        if rc == 0 {
            return Sent::Delivered;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::ESRCH) => Sent::Gone,
            _ => Sent::NotPermitted,
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
fn poll_exited(fds: &[libc::c_int], timeout_ms: libc::c_int) -> Vec<bool> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `polls` is a valid array of pollfd of the given length for the whole call.
    let rc = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, timeout_ms) };
    if rc <= 0 {
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

/// 16 random bytes from the kernel, for event ids.
pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: getrandom writes at most the given length into the buffer's tail.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n <= 0 {
            // getrandom cannot fail on a supported kernel; without it ids stay unique enough
            // from the clock and the pid for one run.
            let fallback =
                crate::core::time::now_ms() as u128 ^ (u128::from(std::process::id()) << 64);
            return fallback.to_le_bytes();
        }
        filled += n as usize;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::validate;
    use crate::model::{Field, Int};

    #[test]
    fn the_descriptor_budget_keeps_a_reserve() {
        assert_eq!(descriptor_budget(1024, 10), 1024 - 10 - DESCRIPTOR_RESERVE);
        assert_eq!(descriptor_budget(64, 10), 0, "never below zero");
        assert_eq!(descriptor_budget(100, 200), 0);
    }

    #[test]
    fn only_esrch_from_pidfd_open_means_gone() {
        assert!(matches!(probe_of_errno(Some(libc::ESRCH)), Probe::Gone));
        assert!(matches!(probe_of_errno(Some(libc::EINVAL)), Probe::Thread));
        assert!(matches!(
            probe_of_errno(Some(libc::ENOSYS)),
            Probe::Unsupported
        ));
        for errno in [libc::EPERM, libc::ENOENT, libc::EMFILE, libc::EACCES] {
            assert!(
                matches!(probe_of_errno(Some(errno)), Probe::Refused),
                "{errno}"
            );
        }
        assert!(matches!(probe_of_errno(None), Probe::Refused));
    }

    #[test]
    fn signalling_reaches_only_the_opened_process() {
        let host = Host::read();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = validate(&Field::Value(Int::from(child.id())), &host)
            .unwrap()
            .unwrap();
        let Observation::Alive { start_ticks, .. } = observe(pid, &host, false) else {
            panic!("child not alive");
        };
        assert_eq!(
            open_target(pid, start_ticks + 1).unwrap_err(),
            OpenError::Changed
        );
        let target = open_target(pid, start_ticks).unwrap();
        assert_eq!(target.signal_via(), "pidfd");
        assert!(!target.has_exited());
        assert_eq!(target.send(Signal::Term), Sent::Delivered);
        let mut exited = [false];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        assert_eq!(
            wait_for_exit(&[&target], &mut exited, deadline, &|| false),
            Waited::AllExited
        );
        assert!(target.has_exited(), "a zombie has exited");
        child.wait().unwrap();
        assert_eq!(target.send(Signal::Kill), Sent::Gone);
        assert_eq!(open_target(pid, start_ticks).unwrap_err(), OpenError::Gone);
    }

    #[test]
    fn observing_real_processes() {
        let host = Host::read();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = validate(&Field::Value(Int::from(child.id())), &host)
            .unwrap()
            .unwrap();
        assert!(matches!(
            observe(pid, &host, false),
            Observation::Alive { uid: None, .. }
        ));
        match observe(pid, &host, true) {
            Observation::Alive { start_ms, uid, .. } => {
                let now = crate::core::time::now_ms();
                assert!((now - start_ms).abs() < 5_000, "start {start_ms} now {now}");
                // SAFETY: getuid cannot fail.
                assert_eq!(uid, Some(unsafe { libc::getuid() }));
            }
            other => panic!("expected alive, got {other:?}"),
        }
        child.kill().unwrap();
        // Wait for the exit without reaping (WNOWAIT): the child stays a zombie.
        // SAFETY: a zeroed siginfo_t is a valid out-buffer for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits on our own child only; WNOWAIT leaves it unreaped.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id(),
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(rc, 0);
        assert_eq!(observe(pid, &host, false), Observation::Zombie);
        child.wait().unwrap();
        assert_eq!(observe(pid, &host, false), Observation::Exited);
        assert!(host.ancestors.iter().all(|&p| p > 1));
        assert!(host.boot_id.is_some());
    }
}
