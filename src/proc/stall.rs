//! stall: reading what a worker's process tree is waiting on (SPEC §11 "Diagnosis").
//!
//! Only reads `/proc`; the parsing and the decision are `core::stall`. Per process: `stat`
//! (state), the `fd/0` link, and when fd 0 is a pipe or socket, `auxv` (the architecture),
//! each thread's `syscall` and the `fdinfo` of its epoll descriptors; its socket inodes are
//! matched in the `net/tcp` and `net/tcp6` tables of its network namespace, each read once
//! per namespace for as long as one `StallReader` lives (each read walks the whole table).

use crate::core::identity::{ProcEntry, descendants};
use crate::core::stall::{
    Arch, FdKind, ProcessFacts, TcpState, ThreadFacts, TreeFacts, Unreadable, arch_from_auxv,
    is_eventpoll, parse_epoll_tfds, parse_fd_link, parse_net_tcp, parse_syscall,
};
use std::collections::HashMap;
use std::io::{self, Read};

/// Reads the facts of trees; keeps the TCP tables of each network namespace it has read.
#[derive(Debug, Default)]
pub struct StallReader {
    tables: HashMap<u64, Result<HashMap<u64, TcpState>, Unreadable>>,
    yama: Option<Option<u8>>,
}

/// The facts of the tree of `pids` (the worker and its descendants), with a fresh reader.
#[cfg(test)]
pub fn gather(pids: &[i32]) -> TreeFacts {
    StallReader::default().gather(pids)
}

/// The worker `root` (started at `root_start_ticks`) and its descendants in `table`.
pub fn tree_pids(table: &[ProcEntry], root: i32, root_start_ticks: u64) -> Vec<i32> {
    let mut pids = vec![root];
    pids.extend(
        descendants(table, root, root_start_ticks)
            .iter()
            .filter(|entry| !entry.exited)
            .map(|entry| entry.pid),
    );
    pids
}

impl StallReader {
    /// The facts of the tree of `pids`, read now (the real clock). A process that exited
    /// meanwhile is left out.
    pub fn gather(&mut self, pids: &[i32]) -> TreeFacts {
        let at = super::now_ms();
        let processes = pids.iter().filter_map(|&pid| self.process(pid)).collect();
        TreeFacts { at, processes }
    }

    fn process(&mut self, pid: i32) -> Option<ProcessFacts> {
        let mut buf = Vec::with_capacity(512);
        let (state, comm) = match super::host::read_proc(pid, "stat", &mut buf) {
            Ok(()) => stat_state(&buf)?,
            Err(error) if gone(&error) => return None,
            Err(error) => (Err(self.why(&error, false)), String::new()),
        };
        let stdin = match std::fs::read_link(format!("/proc/{pid}/fd/0")) {
            Ok(link) => Ok(parse_fd_link(link.as_os_str().as_encoded_bytes())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(FdKind::Closed),
            Err(error) => Err(self.why(&error, false)),
        };
        let fds = self.descriptors(pid);
        let connections = match &fds {
            Ok(fds) if fds.sockets.is_empty() => Ok(Vec::new()),
            Ok(fds) => self.connections(pid, &fds.sockets),
            Err(why) => Err(why.clone()),
        };
        let waits_on_stdin = matches!(stdin, Ok(FdKind::Pipe | FdKind::Socket(_)));
        let (arch, threads, stdin_in_epoll) = if waits_on_stdin {
            let epoll = match &fds {
                Ok(fds) => self.stdin_in_epoll(pid, &fds.epolls),
                Err(why) => Err(why.clone()),
            };
            (self.arch(pid), self.threads(pid), epoll)
        } else {
            (Ok(Arch::native()), Ok(Vec::new()), Ok(false))
        };
        Some(ProcessFacts {
            pid,
            comm,
            state,
            arch,
            stdin,
            threads,
            stdin_in_epoll,
            connections,
        })
    }

    /// Why a read failed, in words; `ptrace` marks reads that need ptrace-attach rights.
    fn why(&mut self, error: &io::Error, ptrace: bool) -> Unreadable {
        if !matches!(error.raw_os_error(), Some(libc::EACCES | libc::EPERM)) {
            return Unreadable(error.to_string());
        }
        if !ptrace {
            return Unreadable("permission denied".into());
        }
        let yama = *self.yama.get_or_insert_with(|| {
            std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
                .ok()
                .and_then(|text| text.trim().parse().ok())
        });
        Unreadable(match yama {
            Some(3) => {
                "permission denied: Yama ptrace_scope is 3, which refuses it even to root".into()
            }
            Some(scope) => format!(
                "permission denied: needs ptrace-attach rights over the process (CAP_SYS_PTRACE; Yama ptrace_scope {scope})"
            ),
            None => {
                "permission denied: needs ptrace-attach rights over the process (CAP_SYS_PTRACE)"
                    .into()
            }
        })
    }

    fn arch(&mut self, pid: i32) -> Result<Arch, Unreadable> {
        let mut buf = Vec::with_capacity(512);
        match super::host::read_proc(pid, "auxv", &mut buf) {
            Ok(()) => arch_from_auxv(&buf, Arch::native())
                .ok_or_else(|| Unreadable("an empty auxiliary vector".into())),
            Err(error) => Err(self.why(&error, false)),
        }
    }

    fn threads(&mut self, pid: i32) -> Result<Vec<ThreadFacts>, Unreadable> {
        let entries = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map_err(|error| self.why(&error, false))?;
        let mut threads = Vec::new();
        for entry in entries.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let syscall = match read_small(&format!("/proc/{pid}/task/{tid}/syscall")) {
                Ok(text) => parse_syscall(&text)
                    .ok_or_else(|| Unreadable(format!("an unexpected line {text:?}"))),
                Err(error) if gone(&error) => continue,
                Err(error) => Err(self.why(&error, true)),
            };
            threads.push(ThreadFacts { tid, syscall });
        }
        threads.sort_by_key(|thread| thread.tid);
        Ok(threads)
    }

    /// Walks `/proc/PID/fd` once: socket inodes and epoll descriptors.
    fn descriptors(&mut self, pid: i32) -> Result<Descriptors, Unreadable> {
        let entries = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|error| self.why(&error, false))?;
        let mut fds = Descriptors::default();
        for entry in entries.flatten() {
            let Ok(link) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let link = link.as_os_str().as_encoded_bytes();
            if let FdKind::Socket(inode) = parse_fd_link(link) {
                fds.sockets.push(inode);
            } else if is_eventpoll(link) {
                fds.epolls
                    .push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(fds)
    }

    fn stdin_in_epoll(&mut self, pid: i32, epolls: &[String]) -> Result<bool, Unreadable> {
        for fd in epolls {
            match read_small(&format!("/proc/{pid}/fdinfo/{fd}")) {
                Ok(text) if parse_epoll_tfds(&text).contains(&0) => return Ok(true),
                Ok(_) => {}
                Err(error) if gone(&error) => {}
                Err(error) => return Err(self.why(&error, false)),
            }
        }
        Ok(false)
    }

    /// The TCP states of `sockets` (inodes), from the tables of `pid`'s network namespace.
    fn connections(&mut self, pid: i32, sockets: &[u64]) -> Result<Vec<TcpState>, Unreadable> {
        let netns = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .map(|meta| std::os::unix::fs::MetadataExt::ino(&meta))
            .map_err(|error| self.why(&error, false))?;
        match self
            .tables
            .entry(netns)
            .or_insert_with(|| read_tcp_tables(pid))
        {
            Ok(table) => Ok(sockets
                .iter()
                .filter_map(|inode| table.get(inode).copied())
                .collect()),
            Err(why) => Err(why.clone()),
        }
    }
}

#[derive(Debug, Default)]
struct Descriptors {
    sockets: Vec<u64>,
    epolls: Vec<String>,
}

fn read_tcp_tables(pid: i32) -> Result<HashMap<u64, TcpState>, Unreadable> {
    let mut table = HashMap::new();
    for name in ["tcp", "tcp6"] {
        let mut text = String::new();
        match std::fs::File::open(format!("/proc/{pid}/net/{name}"))
            .and_then(|mut file| file.read_to_string(&mut text))
        {
            Ok(_) => table.extend(parse_net_tcp(&text)),
            // A kernel without IPv6 has no tcp6 table.
            Err(error) if name == "tcp6" && error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(Unreadable(format!("net/{name}: {error}"))),
        }
    }
    Ok(table)
}

fn read_small(path: &str) -> io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(64 * 1024)
        .read_to_string(&mut text)?;
    Ok(text)
}

fn gone(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH)
}

/// The state letter and the command name of a `stat` line; `None` when it does not parse.
fn stat_state(stat: &[u8]) -> Option<(Result<u8, Unreadable>, String)> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let comm = String::from_utf8_lossy(stat.get(open + 1..close)?);
    let comm = crate::core::text::preview(&comm, 32);
    let state = crate::core::identity::parse_stat(stat)?.state;
    Some((Ok(state), comm))
}

#[cfg(test)]
mod tests;
