//! The host and its process table, read from `/proc` and the real clocks: flatline's own
//! facts, parent links, start times, descriptor limits, real uids and random bytes.

use crate::core::identity::{Host, Pid, ProcEntry, Stat, nspid_depth, parse_stat, parse_status};
use crate::core::time::Millis;
use crate::sys;
use std::io;

impl Host {
    /// Reads the host facts from `/proc` and the real clocks (never `--now`).
    pub fn read() -> Host {
        let self_pid = sys::pid::getpid();
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
            ticks_per_second: match sys::host::sysconf(libc::_SC_CLK_TCK) {
                ticks if ticks > 0 => ticks,
                _ => 100,
            },
            boot_epoch_ms: boot_epoch_ms(),
        }
    }
}

pub(super) fn clock_ms(clock: libc::clockid_t) -> Millis {
    // The clock ids are constants the kernel knows; a failure would read as zero.
    let ts = sys::host::clock_gettime(clock).unwrap_or(libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    });
    ts.tv_sec.saturating_mul(1000) + ts.tv_nsec / 1_000_000
}

/// `CLOCK_REALTIME − CLOCK_BOOTTIME`, read back to back.
pub fn boot_epoch_ms() -> Millis {
    let realtime = clock_ms(libc::CLOCK_REALTIME);
    let boottime = clock_ms(libc::CLOCK_BOOTTIME);
    realtime - boottime
}

pub(super) fn ancestors_of(pid: i32) -> Vec<i32> {
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

pub(super) fn read_proc(pid: i32, file: &str, buf: &mut Vec<u8>) -> io::Result<()> {
    use std::io::Read;
    buf.clear();
    let mut handle = std::fs::File::open(format!("/proc/{pid}/{file}"))?;
    handle.by_ref().take(64 * 1024).read_to_end(buf)?;
    Ok(())
}

pub(super) fn read_stat(pid: i32) -> io::Result<Option<Stat>> {
    let mut buf = Vec::with_capacity(512);
    read_proc(pid, "stat", &mut buf)?;
    Ok(parse_stat(&buf))
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
pub(super) const DESCRIPTOR_RESERVE: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (SPEC §3.3: a large tree needs a pidfd
/// per process; systemd's default soft limit is 1024). Returns how many more descriptors
/// flatline may open for pidfds now, keeping a reserve for everything else.
pub fn raise_descriptor_limit() -> u64 {
    let Ok(mut limit) = sys::host::getrlimit(libc::RLIMIT_NOFILE) else {
        return 0;
    };
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // Raising the soft limit up to the hard limit needs no privilege.
        if sys::host::setrlimit(libc::RLIMIT_NOFILE, &raised).is_ok() {
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

/// The real wall clock, in milliseconds. Only the shell calls this, once per run.
pub fn now_ms() -> Millis {
    let now = std::time::SystemTime::now();
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => Millis::try_from(since.as_millis()).unwrap_or(Millis::MAX),
        Err(before) => -Millis::try_from(before.duration().as_millis()).unwrap_or(Millis::MAX),
    }
}

/// 16 random bytes from the kernel, for event ids.
pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        let n = sys::host::getrandom(&mut bytes[filled..]).unwrap_or(0);
        if n == 0 {
            // getrandom cannot fail on a supported kernel; without it ids stay unique enough
            // from the clock and the pid for one run.
            let fallback = now_ms() as u128 ^ (u128::from(std::process::id()) << 64);
            return fallback.to_le_bytes();
        }
        filled += n;
    }
    bytes
}
