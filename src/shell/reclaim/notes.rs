//! The notes of signalled targets in `.flatline/state.json` (SPEC §3.3): written before the
//! first signal, so a run stopped before it recorded them is completed by the next one.

use super::*;

/// The `.flatline/state.json` section where signalled targets are noted before the first
/// signal (SPEC §3.3), so that a run stopped before it could record them is completed by
/// the next one, and a run that takes the lock meanwhile leaves them to their flatline.
pub const SIGNALLED: &str = "signalled";

/// One signalled target, as noted in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    /// The delegation's file name in `delegations/`.
    pub delegation: String,
    pub pid: i32,
    pub start_ticks: u64,
    pub boot_id: Option<String>,
    /// `stale` or `timed_out`: what its record will say.
    pub state: &'static str,
    pub signal: &'static str,
    pub time: i64,
    /// The signalling flatline: pid and start time.
    pub flatline_pid: i32,
    pub flatline_start_ticks: u64,
}

impl Noted {
    pub fn to_value(&self) -> Value {
        json!({
            "delegation": self.delegation,
            "pid": self.pid,
            "fingerprint": {"start_ticks": self.start_ticks, "boot_id": self.boot_id},
            "state": self.state,
            "signal": self.signal,
            "time": ts(self.time),
            "flatline": {"pid": self.flatline_pid, "start_ticks": self.flatline_start_ticks},
        })
    }

    /// An entry as stored; `None` for anything flatline did not write.
    pub fn from_value(value: &Value) -> Option<Noted> {
        let int = |v: Option<&Value>| v.and_then(Value::as_i64);
        let fingerprint = value.get("fingerprint")?;
        let flatline = value.get("flatline")?;
        Some(Noted {
            delegation: value.get("delegation")?.as_str()?.to_string(),
            pid: i32::try_from(int(value.get("pid"))?).ok()?,
            start_ticks: fingerprint.get("start_ticks")?.as_u64()?,
            boot_id: fingerprint
                .get("boot_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            state: match value.get("state").and_then(Value::as_str) {
                Some("timed_out") => "timed_out",
                _ => "stale",
            },
            signal: "SIGTERM",
            time: value
                .get("time")
                .and_then(Value::as_str)
                .and_then(crate::core::time::parse_rfc3339)?,
            flatline_pid: i32::try_from(int(flatline.get("pid"))?).ok()?,
            flatline_start_ticks: flatline.get("start_ticks")?.as_u64()?,
        })
    }
}

/// The note of one target about to be signalled by this flatline (`me`).
pub fn note_of(
    name: &std::ffi::OsStr,
    kill: &Kill,
    state: State,
    boot_id: Option<String>,
    now: i64,
    me: (i32, u64),
) -> Noted {
    Noted {
        delegation: name.to_string_lossy().into_owned(),
        pid: kill.pid.get(),
        start_ticks: kill.start_ticks,
        boot_id,
        state: state.as_str(),
        signal: "SIGTERM",
        time: now,
        flatline_pid: me.0,
        flatline_start_ticks: me.1,
    }
}

/// This flatline, as its notes name it: pid and start time.
pub fn own_identity() -> (i32, u64) {
    let pid = i32::try_from(std::process::id()).unwrap_or(0);
    (pid, proc::start_ticks_of(pid).unwrap_or(0))
}

/// What the notes of earlier or concurrent runs mean for this one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// Delegations another flatline, still running, signalled and is waiting on: left to it.
    pub theirs: HashSet<String>,
    /// Targets of a flatline that is gone: this run completes their records.
    pub orphans: BTreeMap<String, Noted>,
}

/// Sorts noted targets by whether their flatline still runs. Pure: `alive(pid)` is the start
/// time of the process holding that pid now.
pub fn classify(
    notes: Vec<Noted>,
    me: (i32, u64),
    boot_id: Option<&str>,
    alive: &dyn Fn(i32) -> Option<u64>,
) -> Ledger {
    let mut ledger = Ledger::default();
    for note in notes {
        let same_boot = note.boot_id.as_deref() == boot_id;
        let running = same_boot
            && (note.flatline_pid, note.flatline_start_ticks) != me
            && alive(note.flatline_pid) == Some(note.flatline_start_ticks);
        if running {
            ledger.theirs.insert(note.delegation);
        } else {
            ledger.orphans.insert(note.delegation.clone(), note);
        }
    }
    ledger
}

/// Whether the process a note names has exited (or the machine was rebooted since). Pure.
pub fn noted_process_gone(
    note: &Noted,
    boot_id: Option<&str>,
    alive: &dyn Fn(i32) -> Option<u64>,
) -> bool {
    note.boot_id.as_deref() != boot_id || alive(note.pid) != Some(note.start_ticks)
}

/// Whether a note still speaks for the document: it names the process the note's signal
/// went to (an orchestrator may have launched another worker in it since).
pub fn note_matches(note: &Noted, view: &crate::core::lifecycle::View<'_>) -> bool {
    view.process_id == Some(Int::from(note.pid))
}

/// The notes in `state.json`, and the state document they came from.
pub(super) fn read_notes(state_dir: &crate::fs::Dir) -> Result<(StateDoc, Vec<Noted>), String> {
    let state = StateDoc::read(state_dir).map_err(|error| error.to_string())?;
    let notes = state
        .section(SIGNALLED)
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(Noted::from_value).collect())
        .unwrap_or_default();
    Ok((state, notes))
}

/// Reads the ledger of a run whose lock is held.
pub fn load_ledger(lock: &RunLock, host: &identity::Host) -> Result<Ledger, String> {
    let (_, notes) = read_notes(lock.state_dir())?;
    Ok(classify(
        notes,
        own_identity(),
        host.boot_id.as_deref(),
        &proc::start_ticks_of,
    ))
}

/// Rewrites the section under the lock: the notes `keep` accepts, then `add`. Only this
/// section changes; the file is written only when it did.
pub(super) fn rewrite_notes(
    lock: &RunLock,
    keep: &dyn Fn(&Noted) -> bool,
    add: &[Noted],
) -> Result<(), String> {
    if !lock.is_held() {
        return Err("the run's lock was lost while flatline waited without it".into());
    }
    let (mut state, notes) = read_notes(lock.state_dir())?;
    let entries: Vec<Value> = notes
        .iter()
        .filter(|note| keep(note))
        .chain(add.iter())
        .map(Noted::to_value)
        .collect();
    if entries.is_empty() {
        state.remove_section(SIGNALLED);
    } else {
        state.set_section(SIGNALLED, Value::Array(entries));
    }
    state
        .write_if_changed(lock.state_dir())
        .map_err(|error| error.to_string())
}

/// Notes every target about to be signalled in its run's `state.json` (SPEC §3.3), before
/// the first signal. A run whose notes cannot be written gets no signal: its targets are
/// skipped as unrecordable.
pub(crate) fn note_targets(
    pending: &mut Vec<Pending>,
    states: &mut [RunState<'_>],
    config: &Config,
    me: (i32, u64),
    host: &LazyHost,
    output: &mut Output,
    diag: &mut Diagnostics,
) {
    let boot_id = host.get().boot_id.clone();
    let mut refused = Vec::new();
    for (index, state) in states.iter().enumerate() {
        let notes: Vec<Noted> = pending
            .iter()
            .filter(|target| target.run == index)
            .map(|target| {
                note_of(
                    &target.name,
                    &target.kill,
                    target.info.state,
                    boot_id.clone(),
                    config.now,
                    me,
                )
            })
            .collect();
        let Some(lock) = &state.lock else {
            continue;
        };
        if notes.is_empty() {
            continue;
        }
        if let Err(error) = note_before_signal(lock, &notes, &state.seen_orphans) {
            diag.error(
                &crate::shell::state::path_of(&state.run.path),
                &format!("cannot note the targets before signalling them: {error}"),
                Exit::FileProblem,
            );
            refused.push(index);
        }
    }
    pending.retain(|target| {
        if !refused.contains(&target.run) {
            return true;
        }
        let detail = unrecordable_detail(&target.info);
        let _ = target
            .place(states)
            .record("skipped", "not_written", detail, output, diag);
        false
    });
}

/// Notes this run's targets before the first signal: the notes of the same delegations and
/// the orphans this run completed or took over are replaced.
pub fn note_before_signal(
    lock: &RunLock,
    notes: &[Noted],
    seen_orphans: &[String],
) -> Result<(), String> {
    let keep = |note: &Noted| {
        !seen_orphans.contains(&note.delegation)
            && !notes.iter().any(|n| n.delegation == note.delegation)
    };
    rewrite_notes(lock, &keep, notes)
}

/// Once the records are written: this run's notes are dropped but those whose record did
/// not land (`unlanded`), and so are the orphans it completed or took over.
pub fn forget_notes(
    lock: &RunLock,
    me: (i32, u64),
    unlanded: &[String],
    seen_orphans: &[String],
) -> Result<(), String> {
    let keep = |note: &Noted| {
        let mine = (note.flatline_pid, note.flatline_start_ticks) == me;
        !seen_orphans.contains(&note.delegation) && (!mine || unlanded.contains(&note.delegation))
    };
    rewrite_notes(lock, &keep, &[])
}

/// The record of a target a flatline that is gone signalled (its note is in `state.json`)
/// and whose process has exited since: `reclaimed`, termination `terminated`, never
/// finalized as a natural death.
pub fn orphan_record(note: &Noted, view: &crate::core::lifecycle::View<'_>) -> Reclaim {
    Reclaim {
        state: if note.state == "timed_out" {
            State::TimedOut
        } else {
            State::Stale
        },
        termination: Termination::Terminated,
        process_id: view.process_id,
        stale_at: view.stale_at,
        timed_out_at: view.timed_out_at,
        signal_via: None,
        descendants_signalled: Vec::new(),
        survivors: Vec::new(),
    }
}

/// Writes `orphan_record`, merged and retried like every record of a signal.
pub(super) fn complete_orphan(
    target: commit::Target<'_>,
    note: &Noted,
    view: &crate::core::lifecycle::View<'_>,
    config: &Config,
    stop: &Stop,
) -> commit::Written<Reclaim> {
    let change = orphan_record(note, view);
    let again = change.clone();
    commit::write_change_landing(target, change, config.now, stop, |_| {
        Ok(Some(again.clone()))
    })
}

/// The detail of a target whose signal could not be noted in `state.json` first (reclaim
/// and sweep): left alone.
pub fn unrecordable_detail(info: &TargetInfo) -> SkippedDetail<'static> {
    SkippedDetail {
        state: info.state.as_str(),
        process_id: info.process_id,
        termination: Termination::SkippedUnrecordable.as_str(),
        reason: Some("its signal could not be noted in .flatline/state.json first"),
    }
}
