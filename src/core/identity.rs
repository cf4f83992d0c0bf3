//! identity: which process a recorded pid means (SPEC §3.1), decided without a syscall.
//!
//! The first line of defence is `Pid`: a process id that has passed validation (2 ≤ pid ≤
//! pid_max, not flatline nor one of its ancestors). Nothing else can be turned into a pid
//! for a syscall. The second is `identify`: a pure decision, from what `/proc` says now and
//! what the delegation recorded, whether the process holding the pid is the worker
//! (`verified`), another one (`reused`), nothing (`gone`) or cannot be told (`unverifiable`).
//! `process` makes the observations; this module only decides.

use crate::core::time::Millis;
use crate::model::{Field, Int};

/// `--identity-slack` by default: how much a recorded instant and the kernel's start time
/// may disagree beyond the timestamps' own precision (clock ticks, an orchestrator stamping
/// just before the fork). Never grows with time: a patient attacker must not win later what
/// it cannot win now (SPEC §3.1).
pub const DEFAULT_IDENTITY_SLACK_MS: Millis = 250;
/// `--max-spawn-delay` by default: the lower bound of the window is never further than this
/// before its anchor, whatever launch time a delegation claims (a `launch_requested_at` in
/// 1970 must not open the window to every older process).
pub const DEFAULT_MAX_SPAWN_DELAY_MS: Millis = 60_000;
/// A process that started this long after the window's upper bound, while the worker's
/// stream was last written before it started, is certainly another process.
pub const REUSE_MARGIN_MS: Millis = 2_000;
/// `process_started_at` may be this much early: tools derive it from `btime`, whole seconds.
pub const PROCESS_STARTED_EARLY_MS: Millis = 1_000;

/// The two bounds of the identity window that the command line sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPolicy {
    pub slack: Millis,
    pub max_spawn_delay: Millis,
}

impl Default for WindowPolicy {
    fn default() -> Self {
        WindowPolicy {
            slack: DEFAULT_IDENTITY_SLACK_MS,
            max_spawn_delay: DEFAULT_MAX_SPAWN_DELAY_MS,
        }
    }
}

/// Facts about the machine and about flatline itself, read once per run.
#[derive(Debug, Clone)]
pub struct Host {
    pub self_pid: i32,
    /// flatline's parent, grandparent, … up to (excluding) pid 1.
    pub ancestors: Vec<i32>,
    pub pid_max: i64,
    pub boot_id: Option<String>,
    /// Inode of flatline's pid namespace (`/proc/self/ns/pid`).
    pub pid_ns: Option<u64>,
    pub ticks_per_second: i64,
    /// `CLOCK_REALTIME − CLOCK_BOOTTIME`: the wall-clock instant of boot, in milliseconds.
    pub boot_epoch_ms: Millis,
}

impl Host {
    /// The wall-clock start of a process from its start time in clock ticks since boot.
    pub fn start_ms(&self, start_ticks: u64) -> Millis {
        let ticks = i128::from(start_ticks);
        let ms = ticks * 1000 / i128::from(self.ticks_per_second);
        self.boot_epoch_ms
            .saturating_add(Millis::try_from(ms).unwrap_or(Millis::MAX))
    }
}

/// A process id that may be given to a syscall: 2 ≤ pid ≤ pid_max, not flatline, not one of
/// flatline's ancestors. The field is private: `validate` is the only way to make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(i32);

impl Pid {
    pub fn get(self) -> i32 {
        self.0
    }
}

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a recorded process id is `invalid_process_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidPid {
    NotAnInteger(&'static str),
    OutOfRange(Int),
    Flatline,
    Ancestor,
    /// A thread id: it answers `kill(pid, 0)` but is not a process.
    NotThreadGroupLeader,
    KernelThread,
}

impl std::fmt::Display for InvalidPid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvalidPid::NotAnInteger(found) => write!(f, "process_id is {found}, not an integer"),
            InvalidPid::OutOfRange(value) => {
                write!(f, "process_id {value} is outside 2..=pid_max")
            }
            InvalidPid::Flatline => f.write_str("process_id is flatline's own pid"),
            InvalidPid::Ancestor => f.write_str("process_id is an ancestor of flatline"),
            InvalidPid::NotThreadGroupLeader => {
                f.write_str("process_id is a thread, not a process (Tgid differs)")
            }
            InvalidPid::KernelThread => f.write_str("process_id is a kernel thread"),
        }
    }
}

/// Validates a recorded `process_id`. `None` when there is none (absent or null).
pub fn validate(raw: &Field<Int>, host: &Host) -> Option<Result<Pid, InvalidPid>> {
    let value = match raw {
        Field::Absent | Field::Null => return None,
        Field::Wrong(found) => return Some(Err(InvalidPid::NotAnInteger(found))),
        Field::Value(value) => *value,
    };
    Some(validate_value(value, host))
}

fn validate_value(value: Int, host: &Host) -> Result<Pid, InvalidPid> {
    if value < 2 || value > Int::from(host.pid_max) {
        return Err(InvalidPid::OutOfRange(value));
    }
    let pid = i32::try_from(value).map_err(|_| InvalidPid::OutOfRange(value))?;
    if pid == host.self_pid {
        return Err(InvalidPid::Flatline);
    }
    if host.ancestors.contains(&pid) {
        return Err(InvalidPid::Ancestor);
    }
    Ok(Pid(pid))
}

/// What the kernel says about a pid now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// No process holds the pid.
    Exited,
    /// The process has exited and awaits its parent (state Z or X).
    Zombie,
    /// The pid is a thread of another process.
    NotThreadGroupLeader,
    /// The pid is a kernel thread.
    KernelThread,
    /// A process holds the pid but `/proc` will not show it (hidepid, another namespace).
    Hidden,
    /// A live process holds the pid. Its real uid is read only when asked for (the
    /// commands that signal need it for the uid guard).
    Alive {
        start_ticks: u64,
        start_ms: Millis,
        uid: Option<u32>,
        /// The pidfs inode of the process (`pidfd_ino`), where the kernel has one.
        pidfd_ino: Option<u64>,
    },
}

/// The verdict on whether the process holding the pid is the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    Verified,
    Reused,
    Unverifiable,
    Gone,
}

impl Identity {
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::Verified => "verified",
            Identity::Reused => "reused",
            Identity::Unverifiable => "unverifiable",
            Identity::Gone => "gone",
        }
    }

    /// `process_alive` (SPEC §3.1): true only for the verified worker, false when it is gone
    /// or its pid is reused, and unknown (`None`) when it cannot be told.
    pub fn worker_alive(self) -> Option<bool> {
        match self {
            Identity::Verified => Some(true),
            Identity::Gone | Identity::Reused => Some(false),
            Identity::Unverifiable => None,
        }
    }
}

/// A complete `process_fingerprint` as stamped by flatline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub start_ticks: u64,
    pub boot_id: String,
    pub pid_ns: u64,
    /// The pidfs inode, where the kernel had one when the fingerprint was taken.
    pub pidfd_ino: Option<u64>,
}

/// The recorded signs of a worker's life that bound when its process can have started
/// (SPEC §3.1), and what else the window decision needs. Built by `lifecycle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evidence {
    /// E: the earliest recorded sign of life (`process_started_at`, `started_at`,
    /// `last_progress_at`), or the `identity_anchor_at` kept from the first writing run.
    pub anchor: Option<Millis>,
    /// U before the slack: the tightest end of the signs' precision intervals (a whole-second
    /// timestamp stands for the whole second; `process_started_at` may be 1 s early).
    pub upper: Option<Millis>,
    /// The launch: `launch_requested_at`, else `queued_at`.
    pub launch: Option<Millis>,
    /// The last modification of the worker's stream, when it exists.
    pub stream_mtime: Option<Millis>,
    /// `CLOCK_REALTIME − CLOCK_BOOTTIME` moved by more than the slack since E.
    pub clock_stepped: bool,
    /// flatline runs in another pid namespace than the worker's (or cannot tell).
    pub foreign_pid_ns: bool,
}

/// The identity window `[L, U]` (SPEC §3.1), slack included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub lower: Millis,
    pub upper: Millis,
    /// The launch was later than the anchor and was ignored (`launch_after_start`).
    pub launch_after_start: bool,
}

/// The window from the evidence; `None` without an anchor.
pub fn window(evidence: &Evidence, policy: WindowPolicy) -> Option<Window> {
    let anchor = evidence.anchor?;
    let upper = evidence
        .upper
        .unwrap_or(anchor)
        .saturating_add(policy.slack);
    let floor = anchor.saturating_sub(policy.max_spawn_delay);
    let mut launch_after_start = false;
    let lower = match evidence.launch.map(|at| at.saturating_sub(policy.slack)) {
        Some(lower) if lower > anchor => {
            launch_after_start = true;
            floor
        }
        Some(lower) => lower.max(floor),
        None => floor,
    };
    Some(Window {
        lower,
        upper,
        launch_after_start,
    })
}

/// Decides the identity (SPEC §3.1). Pure: the observation was made by the caller.
pub fn identify(
    observation: Observation,
    evidence: Evidence,
    fingerprint: Option<&Fingerprint>,
    host: &Host,
    policy: WindowPolicy,
) -> Identity {
    if let Some(fingerprint) = fingerprint {
        if host.boot_id.as_deref() != Some(fingerprint.boot_id.as_str()) {
            return Identity::Gone;
        }
        return match observation {
            Observation::Exited | Observation::Zombie => Identity::Gone,
            _ if host.pid_ns != Some(fingerprint.pid_ns) => Identity::Unverifiable,
            Observation::Hidden | Observation::NotThreadGroupLeader | Observation::KernelThread => {
                Identity::Unverifiable
            }
            Observation::Alive {
                start_ticks,
                pidfd_ino,
                ..
            } => {
                // A field that cannot be read on either side is skipped, never a mismatch.
                let same_ino = match (fingerprint.pidfd_ino, pidfd_ino) {
                    (Some(recorded), Some(now)) => recorded == now,
                    _ => true,
                };
                if start_ticks == fingerprint.start_ticks && same_ino {
                    Identity::Verified
                } else {
                    Identity::Reused
                }
            }
        };
    }
    // Without a fingerprint the pid means something only in the worker's own namespace.
    if evidence.foreign_pid_ns {
        return Identity::Unverifiable;
    }
    match observation {
        Observation::Exited | Observation::Zombie => Identity::Gone,
        Observation::Hidden | Observation::NotThreadGroupLeader | Observation::KernelThread => {
            Identity::Unverifiable
        }
        Observation::Alive { start_ms, .. } => window_verdict(start_ms, &evidence, policy),
    }
}

/// The time-window verdict on a live process that started at `start_ms` (SPEC §3.1).
pub fn window_verdict(start_ms: Millis, evidence: &Evidence, policy: WindowPolicy) -> Identity {
    let Some(window) = window(evidence, policy) else {
        return Identity::Unverifiable;
    };
    if evidence.clock_stepped {
        return Identity::Unverifiable;
    }
    if (window.lower..=window.upper).contains(&start_ms) {
        return Identity::Verified;
    }
    // `reused` finalizes a delegation, so it must be a fact: the worker was alive at E and
    // wrote its stream before this process existed.
    let certainly_later = start_ms > window.upper.saturating_add(REUSE_MARGIN_MS);
    if certainly_later && evidence.stream_mtime.is_some_and(|mtime| mtime < start_ms) {
        return Identity::Reused;
    }
    Identity::Unverifiable
}

/// The fingerprint of a live process, as a writing command stamps it.
pub fn fingerprint_of(observation: Observation, host: &Host) -> Option<Fingerprint> {
    match observation {
        Observation::Alive {
            start_ticks,
            pidfd_ino,
            ..
        } => Some(Fingerprint {
            start_ticks,
            boot_id: host.boot_id.clone()?,
            pid_ns: host.pid_ns?,
            pidfd_ino,
        }),
        _ => None,
    }
}

/// The clock section of `state.json` after this run, and when a step was last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockNote {
    pub section: serde_json::Value,
    pub stepped_at: Option<Millis>,
}

/// Compares `CLOCK_REALTIME − CLOCK_BOOTTIME` now with the one recorded in `state.json`
/// (section `clock`). Slewing moves both clocks together; only a step moves the difference.
/// A move of more than `slack` is a step, seen at `real_now`: window verdicts of anchors
/// before it are `unverifiable` (SPEC §3.1). Pure.
pub fn note_clock(
    stored: Option<&serde_json::Value>,
    offset_now: Millis,
    real_now: Millis,
    slack: Millis,
) -> ClockNote {
    let recorded = stored
        .and_then(|s| s.get("realtime_minus_boottime_ms"))
        .and_then(serde_json::Value::as_i64);
    let mut stepped_at = stored
        .and_then(|s| s.get("stepped_at"))
        .and_then(serde_json::Value::as_str)
        .and_then(crate::core::time::parse_rfc3339);
    let offset = match recorded {
        Some(recorded) if (offset_now - recorded).abs() <= slack => recorded,
        Some(_) => {
            stepped_at = Some(real_now);
            offset_now
        }
        None => offset_now,
    };
    ClockNote {
        section: serde_json::json!({
            "realtime_minus_boottime_ms": offset,
            "stepped_at": stepped_at.map(crate::core::time::format_rfc3339),
        }),
        stepped_at,
    }
}

/// Compares flatline's own pid namespace with the one recorded in `state.json` (section
/// `pid_ns`): the section to record when none is (the first one stays), and whether flatline
/// now runs in another namespace (or cannot tell its own). Pure.
pub fn note_pid_ns(
    stored: Option<&serde_json::Value>,
    own: Option<u64>,
) -> (Option<serde_json::Value>, bool) {
    let recorded = stored
        .and_then(|s| s.get("inode"))
        .and_then(serde_json::Value::as_u64);
    match (recorded, own) {
        (None, Some(own)) => (Some(serde_json::json!({ "inode": own })), false),
        (None, None) => (None, false),
        (Some(recorded), own) => (None, own != Some(recorded)),
    }
}

/// Validates a pid found in `/proc` (a descendant of a worker) under the same rules.
pub fn validate_found(pid: i32, host: &Host) -> Result<Pid, InvalidPid> {
    validate_value(Int::from(pid), host)
}

/// A fingerprint as delegations record it (SPEC §3.1); `pidfd_ino` only where the kernel has a
/// pidfs inode: a missing field is skipped, never a mismatch.
pub fn fingerprint_json(fingerprint: &Fingerprint) -> serde_json::Value {
    let mut value = serde_json::json!({
        "start_ticks": fingerprint.start_ticks,
        "boot_id": fingerprint.boot_id,
        "pid_ns": fingerprint.pid_ns,
    });
    if let (Some(ino), Some(object)) = (fingerprint.pidfd_ino, value.as_object_mut()) {
        object.insert("pidfd_ino".into(), serde_json::json!(ino));
    }
    value
}

#[cfg(test)]
pub(crate) fn test_host() -> Host {
    Host {
        self_pid: 1000,
        ancestors: vec![999, 500],
        pid_max: 32768,
        boot_id: Some("boot-a".into()),
        pid_ns: Some(4_026_531_836),
        ticks_per_second: 100,
        boot_epoch_ms: 1_700_000_000_000,
    }
}

/// What `/proc/<pid>/stat` says, parsed after the LAST `)` (a command name may hold `)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: u8,
    pub ppid: i32,
    /// The kernel's per-process flags (field 9).
    pub flags: u64,
    /// Threads of the thread group still counted (field 20).
    pub threads: u64,
    pub start_ticks: u64,
}

/// `PF_KTHREAD`: the process is a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

impl Stat {
    /// Dead (X), or a zombie (Z) alone in its thread group: the process has exited, only its
    /// entry remains. A thread-group leader that called `pthread_exit` is a zombie while its
    /// other threads still run: that process is alive (it can be signalled, and its pidfd
    /// becomes readable only when the last thread exits).
    pub fn exited(&self) -> bool {
        match self.state {
            b'X' | b'x' => true,
            b'Z' => self.threads <= 1,
            _ => false,
        }
    }

    /// A kernel thread: never a worker, never signalled.
    pub fn kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

pub fn parse_stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    // After ")" come field 3 (state), 4 (ppid), …, 9 (flags), …, 22 (starttime).
    let mut fields = [""; 20];
    let mut count = 0;
    for (slot, field) in fields.iter_mut().zip(rest.split_ascii_whitespace()) {
        *slot = field;
        count += 1;
    }
    if count < fields.len() {
        return None;
    }
    Some(Stat {
        state: fields[0].bytes().next()?,
        ppid: fields[1].parse().ok()?,
        flags: fields[6].parse().ok()?,
        threads: fields[17].parse().ok()?,
        start_ticks: fields[19].parse().ok()?,
    })
}

/// `Tgid` and the real uid from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub tgid: i32,
    pub uid: u32,
}

pub fn parse_status(text: &[u8]) -> Option<Status> {
    let text = std::str::from_utf8(text).ok()?;
    let mut tgid = None;
    let mut uid = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Tgid:") {
            tgid = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("Uid:") {
            uid = rest.split_ascii_whitespace().next()?.parse().ok();
        }
        if tgid.is_some() && uid.is_some() {
            break;
        }
    }
    Some(Status {
        tgid: tgid?,
        uid: uid?,
    })
}

/// The number of entries of the `NSpid:` line of a `status` file.
pub fn nspid_depth(status: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(status).ok()?;
    let line = text.lines().find_map(|line| line.strip_prefix("NSpid:"))?;
    Some(line.split_whitespace().count())
}

/// One line of the process table: who is whose child, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: i32,
    pub ppid: i32,
    pub start_ticks: u64,
    pub exited: bool,
    pub kernel_thread: bool,
}

/// The descendants of `root` in `table`, breadth first, that started no earlier than the
/// root (an older process cannot be its child: the ppid link was inherited by re-parenting).
/// Pure, so the tree walk is tested without processes.
pub fn descendants(table: &[ProcEntry], root: i32, root_start_ticks: u64) -> Vec<ProcEntry> {
    let mut found: Vec<ProcEntry> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for entry in table.iter().filter(|e| e.ppid == parent && e.pid != root) {
            if entry.start_ticks < root_start_ticks
                || entry.kernel_thread
                || found.iter().any(|f| f.pid == entry.pid)
            {
                continue;
            }
            found.push(*entry);
            frontier.push(entry.pid);
        }
    }
    found.sort_by_key(|e| e.pid);
    found
}

#[cfg(test)]
mod tests;
