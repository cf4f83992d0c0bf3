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
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_after_the_last_parenthesis() {
        let line = b"4242 (evil) S 1 2 3) R 77 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.state, b'R');
        assert_eq!(stat.ppid, 77);
        assert_eq!(stat.start_ticks, 987_654);
        let zombie = b"5 (z) Z 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0";
        assert!(parse_stat(zombie).unwrap().exited());
        // A leader that called pthread_exit while 2 other threads run: alive.
        let leader = b"5 (z) Z 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 3 0 42 0 0";
        assert_eq!(parse_stat(leader).unwrap().threads, 3);
        assert!(!parse_stat(leader).unwrap().exited());
        assert!(
            parse_stat(b"5 (z) X 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 3 0 42 0 0")
                .unwrap()
                .exited()
        );
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x) S 1"), None);
    }

    #[test]
    fn status_gives_tgid_and_real_uid() {
        let text = b"Name:\tsleep\nTgid:\t4242\nPid:\t4243\nUid:\t1000\t0\t0\t0\n";
        assert_eq!(
            parse_status(text),
            Some(Status {
                tgid: 4242,
                uid: 1000
            })
        );
        assert_eq!(parse_status(b"Name:\tx\n"), None);
    }

    #[test]
    fn nspid_lines_tell_nested_namespaces() {
        assert_eq!(nspid_depth(b"Name:\tx\nNSpid:\t42\n"), Some(1));
        assert_eq!(nspid_depth(b"Name:\tx\nNSpid:\t4242\t7\t1\n"), Some(3));
        assert_eq!(nspid_depth(b"Name:\tx\n"), None);
    }

    #[test]
    fn the_tree_walk_finds_descendants_started_after_the_root() {
        let entry = |pid, ppid, start_ticks| ProcEntry {
            pid,
            ppid,
            start_ticks,
            exited: false,
            kernel_thread: false,
        };
        let table = [
            entry(1, 0, 0),
            entry(100, 1, 50),
            entry(101, 100, 60),
            entry(102, 101, 70),
            entry(103, 100, 40), // older than the root: a stale ppid link, not a child
            entry(104, 103, 80),
            entry(200, 1, 55),
            entry(201, 200, 65),
        ];
        let found: Vec<i32> = descendants(&table, 100, 50).iter().map(|e| e.pid).collect();
        assert_eq!(found, [101, 102]);
        assert!(descendants(&table, 102, 70).is_empty());
    }
    #[test]
    fn forbidden_pids_never_validate() {
        let host = test_host();
        for value in [0, 1, -1, -2, 32769, 4_294_967_295, 4_294_967_297, i128::MAX] {
            assert_eq!(
                validate(&Field::Value(value), &host),
                Some(Err(InvalidPid::OutOfRange(value))),
                "{value}"
            );
        }
        assert_eq!(
            validate(&Field::Value(1000), &host),
            Some(Err(InvalidPid::Flatline))
        );
        assert_eq!(
            validate(&Field::Value(999), &host),
            Some(Err(InvalidPid::Ancestor))
        );
        assert_eq!(
            validate(&Field::Value(500), &host),
            Some(Err(InvalidPid::Ancestor))
        );
        assert_eq!(
            validate(&Field::Wrong("a string"), &host),
            Some(Err(InvalidPid::NotAnInteger("a string")))
        );
        assert_eq!(validate(&Field::Absent, &host), None);
        assert_eq!(validate(&Field::Null, &host), None);
        assert_eq!(validate(&Field::Value(2), &host), Some(Ok(Pid(2))));
        assert_eq!(validate(&Field::Value(32768), &host), Some(Ok(Pid(32768))));
    }

    #[test]
    fn start_time_from_ticks() {
        let host = test_host();
        assert_eq!(host.start_ms(0), 1_700_000_000_000);
        assert_eq!(host.start_ms(12_345), 1_700_000_123_450);
    }

    fn alive(start_ms: Millis, start_ticks: u64) -> Observation {
        Observation::Alive {
            start_ticks,
            start_ms,
            uid: Some(0),
            pidfd_ino: None,
        }
    }

    const T: Millis = 1_800_000_000_000;

    /// A worker whose earliest sign of life is T with a precision of 1 ms (U = T + 1 ms),
    /// launched a second before.
    fn evidence() -> Evidence {
        Evidence {
            anchor: Some(T),
            upper: Some(T + 1),
            launch: Some(T - 1_000),
            ..Evidence::default()
        }
    }

    fn verdict(start_ms: Millis, evidence: Evidence) -> Identity {
        identify(
            alive(start_ms, 1),
            evidence,
            None,
            &test_host(),
            WindowPolicy::default(),
        )
    }

    #[test]
    fn the_window_verifies_only_between_its_bounds() {
        // [L, U] = [T − 1 s − 250 ms, T + 1 ms + 250 ms], both ends included.
        assert_eq!(verdict(T, evidence()), Identity::Verified);
        assert_eq!(verdict(T - 1_250, evidence()), Identity::Verified);
        assert_eq!(verdict(T - 1_251, evidence()), Identity::Unverifiable);
        assert_eq!(verdict(T + 251, evidence()), Identity::Verified);
        assert_eq!(verdict(T + 252, evidence()), Identity::Unverifiable);
        // Within 2 s after U: never a fact, whatever the stream says.
        let streamed = Evidence {
            stream_mtime: Some(T + 100),
            ..evidence()
        };
        assert_eq!(verdict(T + 2_251, streamed), Identity::Unverifiable);
        // Past U + 2 s with the stream written before that start: reused.
        assert_eq!(verdict(T + 2_252, streamed), Identity::Reused);
        assert_eq!(verdict(T + 3_600_000, streamed), Identity::Reused);
        // No stream, or a stream written since: not certain, so unverifiable.
        assert_eq!(verdict(T + 3_600_000, evidence()), Identity::Unverifiable);
        let written_since = Evidence {
            stream_mtime: Some(T + 3_600_000),
            ..evidence()
        };
        assert_eq!(
            verdict(T + 3_600_000, written_since),
            Identity::Unverifiable
        );
        // Started before L: unverifiable, never reused (an older process is not proof).
        assert_eq!(verdict(T - 86_400_000, streamed), Identity::Unverifiable);
        // No anchor at all: unverifiable.
        assert_eq!(verdict(T, Evidence::default()), Identity::Unverifiable);
    }

    #[test]
    fn a_whole_second_process_started_at_gives_a_1_25_s_window_above() {
        // process_started_at "…:00Z" (whole second, may be 1 s early): U = T + 2 s.
        let whole = Evidence {
            anchor: Some(T),
            upper: Some(T + 2_000),
            launch: Some(T),
            ..Evidence::default()
        };
        assert_eq!(verdict(T + 2_250, whole), Identity::Verified);
        assert_eq!(verdict(T + 2_251, whole), Identity::Unverifiable);
        assert_eq!(verdict(T - 250, whole), Identity::Verified);
        assert_eq!(verdict(T - 251, whole), Identity::Unverifiable);
    }

    #[test]
    fn the_launch_bound_is_clamped_and_a_late_launch_ignored() {
        // A launch in 1970 opens nothing: L is at most 60 s before E.
        let ancient = Evidence {
            launch: Some(0),
            ..evidence()
        };
        let w = window(&ancient, WindowPolicy::default()).unwrap();
        assert_eq!(w.lower, T - 60_000);
        assert!(!w.launch_after_start);
        assert_eq!(verdict(T - 60_000, ancient), Identity::Verified);
        assert_eq!(verdict(T - 60_001, ancient), Identity::Unverifiable);
        // A launch after E (minus the slack) is ignored, with a warning; the clamp stands.
        let late = Evidence {
            launch: Some(T + 251),
            ..evidence()
        };
        let w = window(&late, WindowPolicy::default()).unwrap();
        assert!(w.launch_after_start);
        assert_eq!(w.lower, T - 60_000);
        let just = Evidence {
            launch: Some(T + 250),
            ..evidence()
        };
        let w = window(&just, WindowPolicy::default()).unwrap();
        assert!(!w.launch_after_start);
        assert_eq!(w.lower, T);
        // No launch recorded: the clamp alone.
        let none = Evidence {
            launch: None,
            ..evidence()
        };
        assert_eq!(
            window(&none, WindowPolicy::default()).unwrap().lower,
            T - 60_000
        );
        // The flags move both bounds.
        let policy = WindowPolicy {
            slack: 0,
            max_spawn_delay: 500,
        };
        let w = window(&ancient, policy).unwrap();
        assert_eq!((w.lower, w.upper), (T - 500, T + 1));
    }

    #[test]
    fn a_clock_step_or_a_foreign_namespace_makes_the_window_unverifiable() {
        let stepped = Evidence {
            clock_stepped: true,
            stream_mtime: Some(T),
            ..evidence()
        };
        assert_eq!(verdict(T, stepped), Identity::Unverifiable);
        assert_eq!(verdict(T + 3_600_000, stepped), Identity::Unverifiable);
        let foreign = Evidence {
            foreign_pid_ns: true,
            ..evidence()
        };
        assert_eq!(verdict(T, foreign), Identity::Unverifiable);
        let host = test_host();
        let policy = WindowPolicy::default();
        // Another namespace: never gone or reused either.
        assert_eq!(
            identify(Observation::Exited, foreign, None, &host, policy),
            Identity::Unverifiable
        );
        assert_eq!(
            identify(Observation::Exited, evidence(), None, &host, policy),
            Identity::Gone
        );
        assert_eq!(
            identify(Observation::Zombie, evidence(), None, &host, policy),
            Identity::Gone
        );
        assert_eq!(
            identify(Observation::Hidden, evidence(), None, &host, policy),
            Identity::Unverifiable
        );
    }

    #[test]
    fn the_clock_is_noted_and_a_step_is_seen() {
        let first = note_clock(None, 1_000_000, T, 250);
        assert_eq!(first.stepped_at, None);
        assert_eq!(first.section["realtime_minus_boottime_ms"], 1_000_000);
        // Within the slack: no step, the recorded offset stays (no rewrite for jitter).
        let same = note_clock(Some(&first.section), 1_000_250, T + 10, 250);
        assert_eq!(same, first);
        let stepped = note_clock(Some(&first.section), 1_000_251, T + 20, 250);
        assert_eq!(stepped.stepped_at, Some(T + 20));
        assert_eq!(stepped.section["realtime_minus_boottime_ms"], 1_000_251);
        // The step is remembered by later runs.
        let later = note_clock(Some(&stepped.section), 1_000_251, T + 30, 250);
        assert_eq!(later.stepped_at, Some(T + 20));
    }

    #[test]
    fn the_pid_namespace_is_noted_once() {
        let (section, foreign) = note_pid_ns(None, Some(7));
        assert_eq!(section, Some(serde_json::json!({"inode": 7})));
        assert!(!foreign);
        let stored = serde_json::json!({"inode": 7});
        assert_eq!(note_pid_ns(Some(&stored), Some(7)), (None, false));
        assert_eq!(note_pid_ns(Some(&stored), Some(8)), (None, true));
        assert_eq!(note_pid_ns(Some(&stored), None), (None, true));
    }

    #[test]
    fn a_fingerprint_decides_when_present() {
        let host = test_host();
        let policy = WindowPolicy::default();
        let fingerprint = Fingerprint {
            start_ticks: 777,
            boot_id: "boot-a".into(),
            pid_ns: 4_026_531_836,
            pidfd_ino: None,
        };
        let evidence = Evidence::default();
        let check = |observation, fingerprint: &Fingerprint| {
            identify(observation, evidence, Some(fingerprint), &host, policy)
        };
        assert_eq!(check(alive(0, 777), &fingerprint), Identity::Verified);
        assert_eq!(check(alive(0, 778), &fingerprint), Identity::Reused);
        assert_eq!(check(Observation::Exited, &fingerprint), Identity::Gone);
        let other_boot = Fingerprint {
            boot_id: "boot-b".into(),
            ..fingerprint.clone()
        };
        assert_eq!(check(alive(0, 777), &other_boot), Identity::Gone);
        let other_ns = Fingerprint {
            pid_ns: 1,
            ..fingerprint.clone()
        };
        assert_eq!(check(alive(0, 777), &other_ns), Identity::Unverifiable);
        // The pidfs inode tells apart two processes of one clock tick; a side that has none
        // skips the field, never a mismatch.
        let with_ino = Fingerprint {
            pidfd_ino: Some(900),
            ..fingerprint
        };
        let alive_ino = |ino| Observation::Alive {
            start_ticks: 777,
            start_ms: 0,
            uid: Some(0),
            pidfd_ino: ino,
        };
        assert_eq!(check(alive_ino(Some(900)), &with_ino), Identity::Verified);
        assert_eq!(check(alive_ino(Some(901)), &with_ino), Identity::Reused);
        assert_eq!(check(alive_ino(None), &with_ino), Identity::Verified);
    }
}
