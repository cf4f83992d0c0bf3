//! doctor's facts about the host: kernel limits and hardening that decide how well
//! flatline can tell a worker from a stranger (SPEC §13).

use crate::core::doctor::HostFacts;

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The `hidepid=` option of the `/proc` mount flatline sees, unless it hides nothing.
fn hidepid() -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4) != Some(&"/proc") {
            continue;
        }
        let options = fields.iter().skip_while(|f| **f != "-").nth(3)?;
        let value = options
            .split(',')
            .find_map(|o| o.strip_prefix("hidepid="))?;
        return (!matches!(value, "0" | "off")).then(|| value.to_string());
    }
    None
}

/// Reads what `core::doctor::host_findings` checks, but `openat2` and `root`, which
/// the caller fills in from the fs layer.
pub fn host_facts() -> HostFacts {
    HostFacts {
        pid_max: read_number("/proc/sys/kernel/pid_max"),
        ptrace_scope: read_number("/proc/sys/kernel/yama/ptrace_scope")
            .and_then(|n| u32::try_from(n).ok()),
        hidepid: hidepid(),
        pidfd: crate::sys::pid::pidfd_open(std::process::id() as libc::pid_t).is_ok(),
        // Filled in by the caller, which may ask the fs layer.
        openat2: true,
        protected_hardlinks: read_number("/proc/sys/fs/protected_hardlinks")
            .and_then(|n| u32::try_from(n).ok()),
        root: false,
    }
}

/// The real uid of the process a delegation records, read from `/proc/PID/status` (nothing
/// is sent to it). `None` for a pid out of range, a process gone, or one `/proc` hides.
pub fn recorded_process_uid(pid: i128) -> Option<u32> {
    let pid = i32::try_from(pid).ok().filter(|pid| *pid >= 2)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
