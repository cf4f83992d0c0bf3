//! activity: the pure verdict on whether a quiet worker's process tree is busy (SPEC §11).
//!
//! A sample is what `/proc` said of a worker's tree at one instant of the real clock: the
//! CPU it used (its own and its reaped children's), the bytes it moved, how many processes
//! it had and when the newest started. Two samples of the same process tell whether it
//! worked in between; `adjust` lets that defer a stale or timed-out verdict, for at most
//! `--busy-limit`. Parsing of `stat` and `io` lives here too, so it is tested without
//! processes.

use crate::core::lifecycle::{NextAction, ReclaimState, Recovery, State, Thresholds, Times, View};
use crate::core::time::Millis;

/// `--busy-cpu` default: 5 % of one CPU over the interval, in hundredths of a percent.
pub const DEFAULT_BUSY_CPU_BP: u32 = 500;
/// `--busy-io` default: 256 KiB read or written.
pub const DEFAULT_BUSY_IO: u64 = 256 << 10;
/// `--busy-limit` default: busy defers a verdict for at most an hour without an event.
pub const DEFAULT_BUSY_LIMIT_MS: Millis = 60 * 60_000;
/// `--activity-window` default: the second sample of a worker without a usable one.
pub const DEFAULT_WINDOW_MS: Millis = 500;
/// At most this many processes of a tree are kept with a sample (for the top consumer).
pub const MAX_KEPT_PROCESSES: usize = 256;

/// What counts as busy, and for how long it may defer a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// CPU over the interval, in hundredths of a percent of one CPU.
    pub busy_cpu_bp: u32,
    /// Bytes read plus written over the interval.
    pub busy_io: u64,
    /// Busy defers a verdict while the progress age is below this.
    pub busy_limit: Millis,
    /// The least interval between two samples that are compared.
    pub window: Millis,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            busy_cpu_bp: DEFAULT_BUSY_CPU_BP,
            busy_io: DEFAULT_BUSY_IO,
            busy_limit: DEFAULT_BUSY_LIMIT_MS,
            window: DEFAULT_WINDOW_MS,
        }
    }
}

/// One process of a tree, as sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSample {
    pub pid: i32,
    pub start_ticks: u64,
    /// `utime + stime + cutime + cstime`, in ms.
    pub cpu_ms: u64,
    pub comm: String,
}

/// The totals of a worker's tree at one instant of the real clock (never `--now`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sample {
    pub at_ms: Millis,
    pub cpu_ms: u64,
    /// `rchar + wchar` of the tree; `None` when some process's `io` could not be read.
    pub io_bytes: Option<u64>,
    pub processes: u64,
    /// The start (clock ticks after boot) of the newest process of the tree.
    pub newest_start: u64,
    /// The processes, for the top consumer (at most `MAX_KEPT_PROCESSES`).
    pub procs: Vec<ProcessSample>,
}

/// A sample as kept in `.flatline/activity.json`, with the fingerprint of its worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSample {
    pub fingerprint: String,
    pub sample: Sample,
}

/// Why there is no usable sample to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSample {
    /// None stored: the first look at this worker.
    First,
    /// Stored for another process (another fingerprint).
    Foreign,
    /// Older than the stale threshold.
    Stale,
    /// A total is lower than stored: part of the tree left it.
    Decreased,
    /// Taken less than the activity window ago.
    TooRecent,
}

/// The verdict of two samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Busy,
    NotBusy,
    NoSample(NoSample),
}

/// The process that used the most CPU since the stored sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    pub pid: i32,
    pub comm: String,
    pub cpu_ms_since: u64,
}

/// What a record says of a worker's activity (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub verdict: Verdict,
    pub cpu_ms: u64,
    pub io_bytes: Option<u64>,
    pub processes: u64,
    pub cpu_ms_since: Option<u64>,
    pub io_bytes_since: Option<u64>,
    /// When the stored sample compared with was taken (real clock).
    pub since: Option<Millis>,
    pub top: Option<Top>,
    /// A process of the tree started after the stored sample.
    pub new_process: bool,
    /// When the current sample was taken (real clock).
    pub at_ms: Millis,
    /// What made the tree busy, the first of CPU, I/O and a new process.
    pub busy_by: Option<BusyBy>,
}

/// What made a tree busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyBy {
    Cpu,
    Io,
    NewProcess,
}

impl Activity {
    pub fn is_busy(&self) -> bool {
        self.verdict == Verdict::Busy
    }

    /// No usable sample to compare with (the second look may give one).
    pub fn has_no_sample(&self) -> bool {
        matches!(self.verdict, Verdict::NoSample(_))
    }
}

/// The key of a worker's process in the store: a fingerprint that names one process of one
/// boot in one pid namespace.
pub fn fingerprint_key(pid: i32, start_ticks: u64, boot_id: &str, pid_ns: u64) -> String {
    format!("{boot_id}/{pid_ns}/{pid}/{start_ticks}")
}

/// Compares the `current` sample of a worker's tree with the `stored` one (SPEC §11).
/// `now` is the real clock, like the samples' instants.
pub fn verdict(
    stored: Option<&StoredSample>,
    current: &Sample,
    fingerprint: &str,
    policy: &Policy,
    stale_after: Millis,
    now: Millis,
) -> Activity {
    let mut activity = Activity {
        verdict: Verdict::NoSample(NoSample::First),
        cpu_ms: current.cpu_ms,
        io_bytes: current.io_bytes,
        processes: current.processes,
        cpu_ms_since: None,
        io_bytes_since: None,
        since: None,
        top: None,
        new_process: false,
        at_ms: current.at_ms,
        busy_by: None,
    };
    let Some(stored) = stored else {
        return activity;
    };
    let before = &stored.sample;
    let unusable = if stored.fingerprint != fingerprint {
        Some(NoSample::Foreign)
    } else if now.saturating_sub(before.at_ms) > stale_after {
        Some(NoSample::Stale)
    } else if current.cpu_ms < before.cpu_ms
        || matches!((current.io_bytes, before.io_bytes), (Some(now_io), Some(then)) if now_io < then)
    {
        Some(NoSample::Decreased)
    } else if current.at_ms.saturating_sub(before.at_ms) < policy.window.max(1) {
        Some(NoSample::TooRecent)
    } else {
        None
    };
    if let Some(why) = unusable {
        activity.verdict = Verdict::NoSample(why);
        return activity;
    }
    let interval = u128::try_from(current.at_ms - before.at_ms).unwrap_or(0);
    let cpu_since = current.cpu_ms - before.cpu_ms;
    let io_since = match (current.io_bytes, before.io_bytes) {
        (Some(now_io), Some(then)) => Some(now_io - then),
        _ => None,
    };
    let new_process = current.newest_start > before.newest_start;
    let cpu_busy = u128::from(cpu_since) * 10_000 >= u128::from(policy.busy_cpu_bp) * interval;
    let io_busy = io_since.is_some_and(|bytes| bytes >= policy.busy_io);
    activity.busy_by = if cpu_busy {
        Some(BusyBy::Cpu)
    } else if io_busy {
        Some(BusyBy::Io)
    } else if new_process {
        Some(BusyBy::NewProcess)
    } else {
        None
    };
    activity.verdict = if activity.busy_by.is_some() {
        Verdict::Busy
    } else {
        Verdict::NotBusy
    };
    activity.cpu_ms_since = Some(cpu_since);
    activity.io_bytes_since = io_since;
    activity.since = Some(before.at_ms);
    activity.top = top_consumer(before, current);
    activity.new_process = new_process;
    activity
}

/// The process of `current` that used the most CPU since `before`: a process also in
/// `before` (same pid and start) counts its difference, a newer one all of its CPU.
fn top_consumer(before: &Sample, current: &Sample) -> Option<Top> {
    current
        .procs
        .iter()
        .map(|process| {
            let earlier = before
                .procs
                .iter()
                .find(|p| p.pid == process.pid && p.start_ticks == process.start_ticks)
                .map_or(0, |p| p.cpu_ms);
            (process, process.cpu_ms.saturating_sub(earlier))
        })
        .max_by(|(a, used_a), (b, used_b)| used_a.cmp(used_b).then(b.pid.cmp(&a.pid)))
        .map(|(process, used)| Top {
            pid: process.pid,
            comm: process.comm.clone(),
            cpu_ms_since: used,
        })
}

/// Whether a worker judged stale or timed out on its progress may be deferred by activity:
/// the verdict that a busy tree would turn into `running_busy` (SPEC §2 rule 3). The run
/// time limit and the launch timeout are never deferred, nor anything past `--busy-limit`
/// (capped by `--stuck-after`).
pub fn deferrable(
    view: &View<'_>,
    times: &Times,
    now: Millis,
    thresholds: &Thresholds,
    policy: &Policy,
) -> bool {
    if !matches!(view.state, State::Stale | State::TimedOut)
        || view.reclaim_state != ReclaimState::ReclaimNeeded
    {
        return false;
    }
    if let (Some(limit), Some(started)) = (thresholds.max_runtime, times.started_at)
        && now.saturating_sub(started) >= limit
    {
        return false;
    }
    let limit = thresholds
        .stuck
        .map_or(policy.busy_limit, |stuck| stuck.min(policy.busy_limit));
    view.elapsed_since_progress_ms
        .is_some_and(|age| age < limit)
}

/// Whether a long-lived watch (`flatline run`) holds a reclaim for its next look: the
/// verdict is deferrable by activity but the tree has no usable sample yet (too recent, or
/// a total went down). Each such case ends within `--activity-window`, so the hold is short.
pub fn awaits_sample(
    activity: Option<&Activity>,
    view: &View<'_>,
    times: &Times,
    now: Millis,
    thresholds: &Thresholds,
    policy: Option<&Policy>,
) -> bool {
    let (Some(activity), Some(policy)) = (activity, policy) else {
        return false;
    };
    activity.has_no_sample() && deferrable(view, times, now, thresholds, policy)
}

/// Turns a stale or timed-out view whose tree is busy into `running_busy` (SPEC §11): no
/// reclaim, next action `await_worker`, recovery `poll`. The caller checked `deferrable`.
pub fn defer(view: &mut View<'_>, times: &Times, activity: &Activity) {
    if !activity.is_busy() {
        return;
    }
    let age = view.elapsed_since_progress_ms.unwrap_or(0);
    view.state = State::RunningBusy;
    view.reclaim_state = ReclaimState::NotNeeded;
    view.stale_at = times.stale_at;
    view.timed_out_at = times.timed_out_at;
    if view.next_action == NextAction::Reclaim {
        view.next_action = NextAction::AwaitWorker;
    }
    view.transition = "running";
    view.recovery_action = Recovery::Poll;
    view.recovery_reason = busy_reason(age, activity);
    view.summary =
        "running, busy: no events past the stale threshold, but its processes are working";
}

/// "no events for 6m12s, but its processes used 48.1 s of CPU in the last 1m".
pub fn busy_reason(age: Millis, activity: &Activity) -> String {
    let interval = activity
        .since
        .map_or(0, |since| activity.at_ms.saturating_sub(since));
    let interval = format_duration(interval);
    let age = format_duration(age);
    match activity.busy_by {
        Some(BusyBy::Io) => format!(
            "no events for {age}, but its processes read or wrote {} KiB in the last {interval}",
            activity.io_bytes_since.unwrap_or(0) / 1024
        ),
        Some(BusyBy::NewProcess) => {
            format!("no events for {age}, but its tree started a process in the last {interval}")
        }
        Some(BusyBy::Cpu) | None => {
            let cpu = activity.cpu_ms_since.unwrap_or(0);
            format!(
                "no events for {age}, but its processes used {}.{} s of CPU in the last {interval}",
                cpu / 1000,
                cpu % 1000 / 100
            )
        }
    }
}

/// A duration for people, to the second: `6m12s`, `1h2m`, `45s`, `800ms`.
pub fn format_duration(ms: Millis) -> String {
    if ms < 1000 {
        return format!("{}ms", ms.max(0));
    }
    let seconds = ms / 1000;
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value != 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    text
}

/// The CPU fields of a `/proc/PID/stat` line: `(comm, utime + stime + cutime + cstime)` in
/// clock ticks. The name is between the first `(` and the LAST `)` (it may hold either).
pub fn parse_stat_cpu(text: &[u8]) -> Option<(String, u64)> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let comm = String::from_utf8_lossy(text.get(open + 1..close)?).into_owned();
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    // After ")" come field 3 (state), …, 14 utime, 15 stime, 16 cutime, 17 cstime.
    let mut ticks: u64 = 0;
    let fields: Vec<&str> = rest.split_ascii_whitespace().skip(11).take(4).collect();
    if fields.len() < 4 {
        return None;
    }
    for field in fields {
        // cutime and cstime are signed in the kernel's format; never negative in practice.
        let value: i64 = field.parse().ok()?;
        ticks = ticks.saturating_add(u64::try_from(value.max(0)).unwrap_or(0));
    }
    Some((comm, ticks))
}

/// `rchar + wchar` of a `/proc/PID/io` file.
pub fn parse_io(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let mut rchar = None;
    let mut wchar = None;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("rchar:") {
            rchar = value.trim().parse::<u64>().ok();
        } else if let Some(value) = line.strip_prefix("wchar:") {
            wchar = value.trim().parse::<u64>().ok();
        }
    }
    Some(rchar?.saturating_add(wchar?))
}

/// Clock ticks to milliseconds.
pub fn ticks_to_ms(ticks: u64, ticks_per_second: i64) -> u64 {
    let per_second = u128::try_from(ticks_per_second.max(1)).unwrap_or(100);
    u64::try_from(u128::from(ticks) * 1000 / per_second).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
