//! The facts a view is computed from: the process facts, the recorded times, the identity
//! anchor and fingerprint, the stream's inode, and the progress baseline (SPEC §2, §3.1).

use super::*;

/// What the shell learned about the worker's process, for a running delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessFacts {
    /// Not looked at: the delegation is not running (or is reclaimed).
    NotChecked,
    /// No `process_id` recorded.
    NoPid,
    Invalid(InvalidPid),
    Checked {
        pid: Pid,
        observation: Observation,
        identity: Identity,
    },
}

impl ProcessFacts {
    pub fn identity(&self) -> Option<Identity> {
        match self {
            ProcessFacts::Checked { identity, .. } => Some(*identity),
            _ => None,
        }
    }

    /// Whether the worker's own process is alive: `None` when not checked.
    pub fn alive(&self) -> Option<bool> {
        self.identity().and_then(Identity::worker_alive)
    }
}

/// The timestamps of `worker_lifecycle`, parsed once. Invalid ones are `None` and listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Times {
    pub queued_at: Option<Millis>,
    pub launch_requested_at: Option<Millis>,
    pub started_at: Option<Millis>,
    pub process_started_at: Option<Millis>,
    pub process_last_seen_at: Option<Millis>,
    pub last_progress_at: Option<Millis>,
    pub returned_at: Option<Millis>,
    pub stale_at: Option<Millis>,
    pub timed_out_at: Option<Millis>,
    /// Paths of timestamps that are present but not RFC 3339.
    pub invalid: Vec<&'static str>,
}

impl Times {
    pub fn of(lifecycle: Option<&Lifecycle<'_>>) -> Times {
        let mut times = Times::default();
        let Some(lifecycle) = lifecycle else {
            return times;
        };
        let mut read = |field: &Field<Text<'_>>, path: &'static str| -> Option<Millis> {
            let text = field.str()?;
            let parsed = time::parse_rfc3339(text);
            if parsed.is_none() {
                times.invalid.push(path);
            }
            parsed
        };
        let queued_at = read(&lifecycle.queued_at, "worker_lifecycle.queued_at");
        let launch_requested_at = read(
            &lifecycle.launch_requested_at,
            "worker_lifecycle.launch_requested_at",
        );
        let started_at = read(&lifecycle.started_at, "worker_lifecycle.started_at");
        let process_started_at = read(
            &lifecycle.process_started_at,
            "worker_lifecycle.process_started_at",
        );
        let process_last_seen_at = read(
            &lifecycle.process_last_seen_at,
            "worker_lifecycle.process_last_seen_at",
        );
        let last_progress_at = read(
            &lifecycle.last_progress_at,
            "worker_lifecycle.last_progress_at",
        );
        let returned_at = read(&lifecycle.returned_at, "worker_lifecycle.returned_at");
        let stale_at = read(&lifecycle.stale_at, "worker_lifecycle.stale_at");
        let timed_out_at = read(&lifecycle.timed_out_at, "worker_lifecycle.timed_out_at");
        Times {
            queued_at,
            launch_requested_at,
            started_at,
            process_started_at,
            process_last_seen_at,
            last_progress_at,
            returned_at,
            stale_at,
            timed_out_at,
            invalid: times.invalid,
        }
    }

    /// The progress baseline and the field it came from (SPEC §2).
    pub fn baseline(&self) -> Option<(Millis, &'static str)> {
        [
            (self.last_progress_at, "last_progress_at"),
            (self.started_at, "started_at"),
            (self.process_started_at, "process_started_at"),
            (self.launch_requested_at, "launch_requested_at"),
            (self.queued_at, "queued_at"),
        ]
        .into_iter()
        .find_map(|(at, name)| at.map(|at| (at, name)))
    }

    /// The bounds on when the worker's process can have started (SPEC §3.1): the anchor E
    /// and upper bound U kept in `identity_anchor_at` / `identity_upper_bound_at` when both
    /// are there, else computed from the recorded signs of life; and the launch. The stream,
    /// clock and namespace parts are the shell's to fill in.
    pub fn evidence(&self, lifecycle: Option<&Lifecycle<'_>>) -> Evidence {
        let (anchor, upper) = match identity_anchor(lifecycle, self) {
            Some((anchor, upper)) => (Some(anchor), Some(upper)),
            None => (None, None),
        };
        Evidence {
            anchor,
            upper,
            launch: self.launch_requested_at.or(self.queued_at),
            ..Evidence::default()
        }
    }
}

/// How long an RFC 3339 text stands for: a whole second without a fraction, 100 ms with one
/// digit, 10 ms with two, and 1 ms (flatline's resolution) with three or more.
pub fn precision_ms(text: &str) -> Millis {
    let digits = text
        .as_bytes()
        .get(19..)
        .filter(|rest| rest.first() == Some(&b'.'))
        .map_or(0, |rest| {
            rest[1..].iter().take_while(|b| b.is_ascii_digit()).count()
        });
    match digits {
        0 => 1_000,
        1 => 100,
        2 => 10,
        _ => 1,
    }
}

/// The identity window's anchor E and upper bound U (before the slack), SPEC §3.1. Kept ones
/// (`identity_anchor_at` and `identity_upper_bound_at`, written by the first writing run)
/// win: a `last_progress_at` flatline wrote later never moves them. Else E is the earliest
/// recorded sign of life and U the tightest end of the signs' precision intervals (each
/// sign's own interval; `process_started_at` may be 1 s early).
pub fn identity_anchor(
    lifecycle: Option<&Lifecycle<'_>>,
    times: &Times,
) -> Option<(Millis, Millis)> {
    let lifecycle = lifecycle?;
    let kept = |field: &Field<Text<'_>>| field.str().and_then(time::parse_rfc3339);
    if let (Some(anchor), Some(upper)) = (
        kept(&lifecycle.identity_anchor_at),
        kept(&lifecycle.identity_upper_bound_at),
    ) && anchor <= upper
    {
        return Some((anchor, upper));
    }
    // Invalid timestamps are absent in `times`; their texts are not looked at.
    anchor_of_texts(
        times
            .process_started_at
            .and(lifecycle.process_started_at.str()),
        times.started_at.and(lifecycle.started_at.str()),
        times.last_progress_at.and(lifecycle.last_progress_at.str()),
    )
}

/// E and U (before the slack) from the texts of the signs of life; invalid ones are skipped.
pub fn anchor_of_texts(
    process_started_at: Option<&str>,
    started_at: Option<&str>,
    last_progress_at: Option<&str>,
) -> Option<(Millis, Millis)> {
    let signs = [
        (process_started_at, identity::PROCESS_STARTED_EARLY_MS),
        (started_at, 0),
        (last_progress_at, 0),
    ];
    let mut anchor: Option<Millis> = None;
    let mut upper: Option<Millis> = None;
    for (text, early) in signs {
        let Some(text) = text else {
            continue;
        };
        let Some(at) = time::parse_rfc3339(text) else {
            continue;
        };
        let end = at.saturating_add(precision_ms(text)).saturating_add(early);
        anchor = Some(anchor.map_or(at, |a| a.min(at)));
        upper = Some(upper.map_or(end, |u| u.min(end)));
    }
    Some((anchor?, upper?))
}

/// A `process_fingerprint` that is recorded but incomplete or of the wrong type: it is
/// ignored, with the warning `invalid_fingerprint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnusableFingerprint;

/// The recorded fingerprint when it is complete and well-typed.
pub fn recorded_fingerprint(
    lifecycle: Option<&Lifecycle<'_>>,
) -> Result<Option<Fingerprint>, UnusableFingerprint> {
    let Some(field) = lifecycle.map(|l| &l.process_fingerprint) else {
        return Ok(None);
    };
    let record = match field {
        Field::Absent | Field::Null => return Ok(None),
        Field::Wrong(_) => return Err(UnusableFingerprint),
        Field::Value(record) => record,
    };
    let start_ticks = record
        .start_ticks
        .value()
        .and_then(|v| u64::try_from(*v).ok())
        .ok_or(UnusableFingerprint)?;
    let boot_id = record
        .boot_id
        .str()
        .filter(|s| !s.is_empty())
        .ok_or(UnusableFingerprint)?;
    let pid_ns = record
        .pid_ns
        .value()
        .and_then(|v| u64::try_from(*v).ok())
        .ok_or(UnusableFingerprint)?;
    // Optional: where the kernel had no pidfs inode none was recorded.
    let pidfd_ino = match &record.pidfd_ino {
        Field::Absent | Field::Null => None,
        Field::Value(value) => Some(u64::try_from(*value).map_err(|_| UnusableFingerprint)?),
        Field::Wrong(_) => return Err(UnusableFingerprint),
    };
    Ok(Some(Fingerprint {
        start_ticks,
        boot_id: boot_id.to_string(),
        pid_ns,
        pidfd_ino,
    }))
}

/// The identity of a stream file: what `worker_lifecycle.raw_events_inode` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInode {
    pub dev: u64,
    pub ino: u64,
}

/// The stream inode recorded in the document, when complete and well-typed.
pub fn recorded_stream_inode(lifecycle: Option<&Lifecycle<'_>>) -> Option<StreamInode> {
    let record = lifecycle?.raw_events_inode.value()?;
    Some(StreamInode {
        dev: record.dev.value().and_then(|v| u64::try_from(*v).ok())?,
        ino: record.ino.value().and_then(|v| u64::try_from(*v).ok())?,
    })
}

/// What the shell saw of a running worker's event stream: a stat as the document's owner,
/// never a read (SPEC §2, §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFacts {
    /// Not looked at (not running, no stream path, or a caller that does not look).
    #[default]
    NotLooked,
    /// No file at the stream's path.
    Missing,
    Present {
        inode: StreamInode,
        mtime_ms: Millis,
    },
    /// There, but refused (`open_named`'s rules): no evidence. `not_readable_by_owner`
    /// says whether the owner could not read it.
    Unusable { not_readable_by_owner: bool },
}

/// The stream against the inode recorded on first sight (SPEC §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCheck {
    /// Nothing recorded yet, or nothing seen now: no verdict.
    Unchecked,
    /// The recorded file.
    Same,
    /// Another file: never evidence, never a result.
    Replaced(StreamInode),
    /// Recorded once, gone now.
    Missing,
}

pub fn stream_check(recorded: Option<StreamInode>, facts: &StreamFacts) -> StreamCheck {
    match (recorded, facts) {
        (Some(recorded), StreamFacts::Present { inode, .. }) if *inode == recorded => {
            StreamCheck::Same
        }
        (Some(_), StreamFacts::Present { inode, .. }) => StreamCheck::Replaced(*inode),
        (Some(_), StreamFacts::Missing) => StreamCheck::Missing,
        _ => StreamCheck::Unchecked,
    }
}

/// The progress baseline (SPEC §2): the recorded one, moved to the stream's mtime when the
/// stream was modified after it. An mtime ahead of `now` within the allowed skew counts as
/// now; further ahead it is no evidence (`Err(())`: warn `clock_skew`, the recorded
/// baseline stands). A replaced stream is never evidence.
pub fn progress_baseline(
    times: &Times,
    stream: &StreamFacts,
    check: StreamCheck,
    now: Millis,
    max_clock_skew: Millis,
) -> (Option<(Millis, &'static str)>, Result<(), ()>) {
    let recorded = times.baseline();
    let mtime = match (stream, check) {
        (_, StreamCheck::Replaced(_)) => return (recorded, Ok(())),
        (StreamFacts::Present { mtime_ms, .. }, _) => *mtime_ms,
        _ => return (recorded, Ok(())),
    };
    if mtime > now.saturating_add(max_clock_skew) {
        return (recorded, Err(()));
    }
    let mtime = mtime.min(now);
    match recorded {
        Some((at, _)) if at >= mtime => (recorded, Ok(())),
        _ => (Some((mtime, "stream_mtime")), Ok(())),
    }
}
