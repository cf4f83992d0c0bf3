//! stall: what a quiet worker's process tree is waiting on (SPEC §11 "Diagnosis").
//!
//! Pure: the process layer gathers the facts of a tree (`TreeFacts`: states, what fd 0 is,
//! each thread's system call, epoll registrations, TCP connection states) and `diagnose`
//! names the wait. The parsers of the `/proc` texts live here too, so they are tested with
//! fixed input. What could not be read is said in the detail, never guessed: a wait that
//! only unreadable evidence could explain is `unknown`, not `idle`.

use crate::core::time::Millis;

/// What a tree is waiting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallCode {
    StdinPipe,
    PeerClosed,
    Stopped,
    DiskWait,
    NetworkWait,
    Idle,
    /// Nothing read explains the wait, and something that could have was unreadable.
    Unknown,
}

impl StallCode {
    /// Every code, in the order the Prometheus series are printed.
    pub const ALL: [StallCode; 7] = [
        StallCode::StdinPipe,
        StallCode::PeerClosed,
        StallCode::Stopped,
        StallCode::DiskWait,
        StallCode::NetworkWait,
        StallCode::Idle,
        StallCode::Unknown,
    ];

    /// The code named by `as_str`, as stored with the activity sample.
    pub fn parse(text: &str) -> Option<StallCode> {
        StallCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StallCode::StdinPipe => "stdin_pipe",
            StallCode::PeerClosed => "peer_closed",
            StallCode::Stopped => "stopped",
            StallCode::DiskWait => "disk_wait",
            StallCode::NetworkWait => "network_wait",
            StallCode::Idle => "idle",
            StallCode::Unknown => "unknown",
        }
    }
}

/// The diagnosis: `stall: {code, detail, since}` in records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub code: StallCode,
    pub detail: String,
    /// When this code was first seen (kept across samples of the same code).
    pub since: Millis,
}

/// The detail of `stdin_pipe` (SPEC §11), word for word.
pub const STDIN_PIPE_DETAIL: &str =
    "blocked reading stdin, a pipe nobody closes; start it with < /dev/null";

/// Why a piece of evidence could not be read, in words (e.g. "permission denied: needs
/// ptrace-attach rights (Yama ptrace_scope 3 refuses even root)").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// The instruction set a process runs (from its `auxv`): system call
/// numbers mean something only in the table of that architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
    /// A compat (32-bit) or foreign task: its numbers are not in a table we hold.
    Other,
}

/// What a descriptor's link in `/proc/PID/fd` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    Pipe,
    Socket(u64),
    Other,
    /// No such descriptor.
    Closed,
}

/// One line of `/proc/PID/task/TID/syscall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallLine {
    /// On a CPU: in no wait at all.
    Running,
    /// Blocked, but not in a system call (`-1 sp pc`).
    NotInSyscall,
    Call {
        nr: i64,
        arg0: u64,
    },
}

/// A system call, named from a per-architecture table (only the ones a wait needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `read`, `readv`, `pread64`, `preadv`: reading the descriptor in `arg0`.
    Read,
    /// `epoll_wait`, `epoll_pwait(2)`, `poll`, `ppoll`, `select`, `pselect6`, `futex`.
    Wait,
    Other,
    /// The task's architecture has no table here (compat task).
    Unknown,
}

/// Names system call `nr` for a task of architecture `arch`.
pub fn classify(arch: Arch, nr: i64) -> Call {
    match arch {
        // arch/x86/entry/syscalls/syscall_64.tbl
        Arch::X86_64 => match nr {
            0 | 17 | 19 | 295 | 327 => Call::Read, // read pread64 readv preadv preadv2
            7 | 23 | 202 | 232 | 270 | 271 | 281 | 441 | 449 => Call::Wait,
            n if n & 0x4000_0000 != 0 => Call::Unknown, // an x32 task
            _ => Call::Other,
        },
        // include/uapi/asm-generic/unistd.h
        Arch::Aarch64 => match nr {
            63 | 65 | 67 | 69 | 286 => Call::Read, // read readv pread64 preadv preadv2
            22 | 72 | 73 | 98 | 441 | 449 => Call::Wait, // epoll_pwait pselect6 ppoll futex …
            _ => Call::Other,
        },
        Arch::Other => Call::Unknown,
    }
}

/// The state of a TCP socket, from the `st` column of `net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    Established,
    CloseWait,
    Listen,
    Other(u8),
}

impl TcpState {
    fn from_code(code: u8) -> TcpState {
        match code {
            0x01 => TcpState::Established,
            0x08 => TcpState::CloseWait,
            0x0A => TcpState::Listen,
            other => TcpState::Other(other),
        }
    }
}

/// One thread of a process and its system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadFacts {
    pub tid: i32,
    pub syscall: Result<SyscallLine, Unreadable>,
}

/// What the process layer read about one process of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFacts {
    pub pid: i32,
    pub comm: String,
    /// The state letter of `stat` (`R`, `S`, `D`, `T`, `t`, `Z` …).
    pub state: Result<u8, Unreadable>,
    pub arch: Result<Arch, Unreadable>,
    pub stdin: Result<FdKind, Unreadable>,
    /// Read only when fd 0 is a pipe or socket (else empty).
    pub threads: Result<Vec<ThreadFacts>, Unreadable>,
    /// Whether fd 0 is registered in one of the process's epoll sets (`tfd: 0`); read only
    /// when fd 0 is a pipe or socket.
    pub stdin_in_epoll: Result<bool, Unreadable>,
    /// The states of the process's TCP sockets (`net/tcp`, `net/tcp6` of its namespace).
    pub connections: Result<Vec<TcpState>, Unreadable>,
}

/// The facts of a whole tree, read at `at` (the real clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFacts {
    pub at: Millis,
    pub processes: Vec<ProcessFacts>,
}

impl TreeFacts {
    /// The pids in disk sleep (state D) in this sample: `disk_wait` needs them in two.
    pub fn disk_sleepers(&self) -> Vec<i32> {
        self.processes
            .iter()
            .filter(|p| p.state == Ok(b'D'))
            .map(|p| p.pid)
            .collect()
    }
}

/// What an earlier sample of the same tree showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub stall: Stall,
    pub disk_sleepers: Vec<i32>,
}

/// Names what the tree of `facts` is waiting on. `previous` (an earlier sample of the same
/// tree) carries `since` forward and is the first of the two samples `disk_wait` needs.
pub fn diagnose(facts: &TreeFacts, previous: Option<&Previous>) -> Stall {
    let mut unread: Vec<String> = Vec::new();
    let (code, detail) = find(facts, previous, &mut unread);
    let mut detail = detail;
    if !unread.is_empty() {
        detail.push_str("; could not read ");
        detail.push_str(&unread.join("; "));
    }
    let since = match previous {
        Some(previous) if previous.stall.code == code => previous.stall.since.min(facts.at),
        _ => facts.at,
    };
    Stall {
        code,
        detail,
        since,
    }
}

fn find(
    facts: &TreeFacts,
    previous: Option<&Previous>,
    unread: &mut Vec<String>,
) -> (StallCode, String) {
    if facts.processes.is_empty() {
        return (
            StallCode::Unknown,
            "no process of the tree could be read".into(),
        );
    }
    for p in &facts.processes {
        match &p.state {
            Ok(letter @ (b'T' | b't')) => {
                let letter = char::from(*letter);
                return (
                    StallCode::Stopped,
                    format!(
                        "process {} ({}) is stopped (state {letter}); SIGCONT resumes it",
                        p.pid, p.comm
                    ),
                );
            }
            Ok(_) => {}
            Err(why) => unread.push(format!("the state of process {}: {}", p.pid, why.0)),
        }
    }
    for p in &facts.processes {
        if let Some(how) = stdin_wait(p, unread) {
            return (
                StallCode::StdinPipe,
                format!(
                    "{STDIN_PIPE_DETAIL} (process {} ({}): {how})",
                    p.pid, p.comm
                ),
            );
        }
    }
    let mut connections: Vec<TcpState> = Vec::new();
    for p in &facts.processes {
        match &p.connections {
            Ok(states) => {
                connections.extend(states.iter().filter(|s| **s != TcpState::Listen).copied())
            }
            Err(why) => unread.push(format!("the sockets of process {}: {}", p.pid, why.0)),
        }
    }
    if !connections.is_empty() && connections.iter().all(|s| *s == TcpState::CloseWait) {
        return (
            StallCode::PeerClosed,
            format!(
                "waiting on {} TCP connection(s) the peer already closed (CLOSE_WAIT)",
                connections.len()
            ),
        );
    }
    let sleepers = facts.disk_sleepers();
    if let Some(pid) = sleepers
        .iter()
        .find(|pid| previous.is_some_and(|prev| prev.disk_sleepers.contains(pid)))
    {
        return (
            StallCode::DiskWait,
            format!("process {pid} is in uninterruptible disk sleep (state D) in two samples"),
        );
    }
    let established = connections
        .iter()
        .filter(|s| **s == TcpState::Established)
        .count();
    if established > 0 {
        return (
            StallCode::NetworkWait,
            format!("waiting on {established} established TCP connection(s) with no I/O"),
        );
    }
    let mut detail = format!(
        "{} process(es), none stopped, reading stdin or waiting on a connection",
        facts.processes.len()
    );
    if !sleepers.is_empty() {
        detail.push_str(&format!(
            "; in disk sleep (state D) now: {sleepers:?}, a second sample decides disk_wait"
        ));
    }
    if unread.is_empty() {
        (StallCode::Idle, detail)
    } else {
        (StallCode::Unknown, detail)
    }
}

/// How `p` waits on its stdin, when fd 0 is a pipe or socket and its threads show it.
fn stdin_wait(p: &ProcessFacts, unread: &mut Vec<String>) -> Option<String> {
    let kind = match &p.stdin {
        Ok(kind @ (FdKind::Pipe | FdKind::Socket(_))) => *kind,
        Ok(_) => return None,
        Err(why) => {
            unread.push(format!("fd 0 of process {}: {}", p.pid, why.0));
            return None;
        }
    };
    let what = if kind == FdKind::Pipe {
        "a pipe"
    } else {
        "a socket"
    };
    let threads = match &p.threads {
        Ok(threads) => threads,
        Err(why) => {
            unread.push(format!("the threads of process {}: {}", p.pid, why.0));
            return None;
        }
    };
    let arch = match &p.arch {
        Ok(arch) => Some(*arch),
        Err(why) => {
            unread.push(format!("the architecture of process {}: {}", p.pid, why.0));
            None
        }
    };
    let mut all_wait = !threads.is_empty();
    let mut known = arch.is_some();
    let mut compat = false;
    for thread in threads {
        let call = match (&thread.syscall, arch) {
            (Ok(SyscallLine::Call { nr, arg0 }), Some(arch)) => (classify(arch, *nr), *arg0),
            (Ok(_), _) => (Call::Other, u64::MAX),
            (Err(why), _) => {
                unread.push(format!(
                    "the system call of thread {} of process {}: {}",
                    thread.tid, p.pid, why.0
                ));
                known = false;
                all_wait = false;
                continue;
            }
        };
        match call {
            (Call::Read, 0) => {
                return Some(format!("fd 0 is {what}; thread {} is in read", thread.tid));
            }
            (Call::Wait, _) => {}
            (Call::Unknown, _) => compat = true,
            _ => all_wait = false,
        }
    }
    if compat {
        unread.push(format!(
            "the system calls of process {}: a compat task, no system call table for it",
            p.pid
        ));
        known = false;
    }
    if !(all_wait && known) {
        return None;
    }
    match &p.stdin_in_epoll {
        Ok(true) => Some(format!(
            "fd 0 is {what} in an epoll set; every thread is in epoll, poll or futex"
        )),
        Ok(false) => None,
        Err(why) => {
            unread.push(format!("the epoll sets of process {}: {}", p.pid, why.0));
            None
        }
    }
}

/// Parses one line of `/proc/PID/task/TID/syscall`: `running`, `-1 sp pc`, or
/// `NR arg0 … arg5 sp pc` (NR decimal, the rest hex).
pub fn parse_syscall(text: &str) -> Option<SyscallLine> {
    let text = text.trim();
    if text == "running" {
        return Some(SyscallLine::Running);
    }
    let mut fields = text.split_ascii_whitespace();
    let nr: i64 = fields.next()?.parse().ok()?;
    if nr < 0 {
        return Some(SyscallLine::NotInSyscall);
    }
    let arg0 = fields.next()?;
    let arg0 = u64::from_str_radix(arg0.strip_prefix("0x").unwrap_or(arg0), 16).ok()?;
    Some(SyscallLine::Call { nr, arg0 })
}

/// The `tfd:` values of an epoll descriptor's `/proc/PID/fdinfo/FD`: the descriptors that
/// epoll set watches.
pub fn parse_epoll_tfds(text: &str) -> Vec<i64> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("tfd:"))
        .filter_map(|rest| rest.split_ascii_whitespace().next()?.parse().ok())
        .collect()
}

/// What the target of a `/proc/PID/fd/N` link names: `pipe:[…]`, `socket:[INODE]`.
pub fn parse_fd_link(link: &[u8]) -> FdKind {
    if link.starts_with(b"pipe:[") {
        return FdKind::Pipe;
    }
    if let Some(rest) = link.strip_prefix(b"socket:[")
        && let Some(inode) = rest.strip_suffix(b"]")
        && let Some(inode) = std::str::from_utf8(inode).ok().and_then(|s| s.parse().ok())
    {
        return FdKind::Socket(inode);
    }
    FdKind::Other
}

/// Whether an fd link names an epoll instance.
pub fn is_eventpoll(link: &[u8]) -> bool {
    link == b"anon_inode:[eventpoll]"
}

/// The `(inode, state)` pairs of a `net/tcp` or `net/tcp6` table (the header skipped).
pub fn parse_net_tcp(text: &str) -> Vec<(u64, TcpState)> {
    let mut sockets = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_ascii_whitespace().take(10).collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        let (Some(st), Some(inode)) = (fields.get(3), fields.get(9)) else {
            continue;
        };
        let (Ok(st), Ok(inode)) = (u8::from_str_radix(st, 16), inode.parse::<u64>()) else {
            continue;
        };
        if inode != 0 {
            sockets.push((inode, TcpState::from_code(st)));
        }
    }
    sockets
}

impl Arch {
    /// The architecture flatline was built for: the kernel's, for a native task.
    pub fn native() -> Arch {
        if cfg!(target_arch = "x86_64") {
            Arch::X86_64
        } else if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::Other
        }
    }
}

/// The architecture of a task from its `/proc/PID/auxv`: a native 64-bit task's vector is
/// pairs of 8-byte words whose first type is a small number; a compat (32-bit) task's is
/// pairs of 4-byte words, so its first 8 bytes hold a type and an address. Read from
/// procfs, never by opening the task's executable (which could sit on a hanging mount).
pub fn arch_from_auxv(auxv: &[u8], native: Arch) -> Option<Arch> {
    let first: [u8; 8] = auxv.get(..8)?.try_into().ok()?;
    let word = u64::from_ne_bytes(first);
    if word == 0 {
        return None;
    }
    Some(if word < 256 { native } else { Arch::Other })
}

#[cfg(test)]
mod tests;
