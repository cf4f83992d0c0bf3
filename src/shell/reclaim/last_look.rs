//! The last look at a target just before the first signal (SPEC §3.3): re-read, re-checked,
//! its record checked writable; progress since the plan drops it.

use super::*;

/// What the last look before the first signal decided for one target (SPEC §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Still stuck, and its record can be written: it may be signalled.
    Go,
    /// Its stream or document shows progress since the plan, or it no longer needs the
    /// reclaim that was planned: dropped (`progressed`), nothing signalled.
    Progressed(String),
    /// Its record could not be written: never signalled (`skipped_unrecordable`, exit 3).
    Unrecordable(String),
}

/// What the plan knew of a signal target, for the last look at it.
pub struct Planned<'a> {
    pub run: &'a Run,
    pub dir: &'a crate::fs::Dir,
    pub name: &'a std::ffi::OsStr,
    pub owner: u32,
    pub process_id: Option<Int>,
}

/// Room kept under the 16 MiB bound for what is known only once the signals are sent (the
/// descendants signalled, the survivors), so a record that fits now still fits then.
pub(super) const RECORD_MARGIN: usize = 64 * 1024;

/// The last look at a target just before the first signal: its document is re-read and its
/// stream stat'ed (progress since the plan drops it), and the change it will get is applied
/// and serialized in memory, the file checked replaceable (one link, a regular file in a
/// directory flatline may write). `apply` is that change.
pub fn last_look(
    planned: &Planned<'_>,
    config: &Config,
    host: &LazyHost,
    apply: &dyn Fn(&mut Value) -> Result<(), ApplyError>,
) -> Gate {
    match crate::fs::lstatat(planned.dir.fd(), planned.name) {
        Err(error) => return Gate::Unrecordable(crate::fs::io_message(&error)),
        Ok(meta) if !meta.is_regular() => {
            return Gate::Unrecordable(format!("is {}, not a regular file", meta.kind()));
        }
        // No link at all: another writer is renaming a new file over it right now; the
        // re-read below and the checked replace see the new one.
        Ok(meta) if meta.nlink > 1 => {
            return Gate::Unrecordable(format!(
                "has {} hard links, so it is never replaced",
                meta.nlink
            ));
        }
        Ok(_) => {}
    }
    if !planned.dir.writable() {
        return Gate::Unrecordable("its directory is not writable by flatline".into());
    }
    let mut bytes = Vec::new();
    if let Err(error) =
        planned
            .dir
            .read_file(planned.name, crate::fs::MAX_DOCUMENT_BYTES, &mut bytes)
    {
        return Gate::Unrecordable(error.to_string());
    }
    let stream_mtime = stream_mtime(&bytes, planned, config, host);
    // The clock as it is now, for the clock-skew cut: a stream written since the run read
    // its clock is progress, one dated further ahead is not evidence.
    let now = config.now.max(crate::proc::now_ms());
    match recheck(&bytes, stream_mtime, planned.process_id, now, config, host) {
        Err(error) => return Gate::Unrecordable(error),
        Ok(Some(why)) => return Gate::Progressed(why),
        Ok(None) => {}
    }
    match recorded_size(&bytes, apply) {
        Err(error) => Gate::Unrecordable(error),
        Ok(size) if size.saturating_add(RECORD_MARGIN) > crate::fs::MAX_DOCUMENT_BYTES => {
            Gate::Unrecordable(format!(
                "its record would make it {size} bytes or more, over the 16 MiB bound"
            ))
        }
        Ok(_) => Gate::Go,
    }
}

/// The modification time of the stream a document names (stat only, under SPEC §1.3 as
/// the document's owner); `None` when there is none or it cannot be used.
pub(super) fn stream_mtime(
    bytes: &[u8],
    planned: &Planned<'_>,
    config: &Config,
    host: &LazyHost,
) -> Option<i64> {
    let path = scan::inspect(bytes, config, host, |doc, _, _, _| {
        refresh::stream_path(doc)
    })
    .ok()
    .flatten()?;
    let policy = crate::fs::NamedPathPolicy {
        allow_outside: config.allow_outside_paths,
        owner: planned.owner,
    };
    refresh::look_at_stream(&planned.run.root, &path, policy, |_| false)
        .ok()
        .flatten()
        .map(|stream| stream.mtime_ms)
}

/// The re-check of SPEC §3.3, pure but for the process facts of the re-read document:
/// `Some(why)` when the document as it is now, with a stream modified after its progress
/// baseline counting as progress at that time, no longer needs the reclaim planned for
/// `process_id`. A stream dated more than `--max-clock-skew` past `now` is not evidence
/// (an agent cannot make itself unreclaimable with `touch -d 2099`).
pub fn recheck(
    bytes: &[u8],
    stream_mtime: Option<i64>,
    process_id: Option<Int>,
    now: i64,
    config: &Config,
    host: &LazyHost,
) -> Result<Option<String>, String> {
    let baseline = scan::inspect(bytes, config, host, |_, _, _, view| view.last_progress_at)
        .map_err(|error| error.to_string())?;
    let trusted =
        stream_mtime.filter(|&mtime| mtime <= now.saturating_add(config.thresholds.max_clock_skew));
    let moved = match (trusted, baseline) {
        (Some(mtime), Some(base)) if mtime > base => Some(mtime),
        (Some(mtime), None) => Some(mtime),
        _ => None,
    };
    let patched;
    let bytes = match moved {
        Some(mtime) => {
            let mut value: Value = serde_json::from_slice(bytes)
                .map_err(|error| format!("cannot rewrite: {error}"))?;
            let object = object_mut(&mut value).map_err(|ApplyError(e)| e)?;
            // Written since the run read its clock: progress now, for this run's view.
            lifecycle_mut(object)
                .map_err(|ApplyError(e)| e)?
                .insert("last_progress_at".into(), ts(mtime.min(config.now)));
            patched = crate::model::render(&value);
            &patched[..]
        }
        None => bytes,
    };
    scan::inspect(bytes, config, host, |_, _, _, view| {
        if config.force {
            // An operator's reclaim: progress since the plan does not drop it.
            recheck::forced_reclaim_dropped(view, process_id)
        } else {
            recheck::reclaim_dropped(view, moved, process_id)
        }
    })
    .map_err(|error| error.to_string())
}

/// The size of a document once `apply` changed it, as it would be written.
pub(super) fn recorded_size(
    bytes: &[u8],
    apply: &dyn Fn(&mut Value) -> Result<(), ApplyError>,
) -> Result<usize, String> {
    let mut value: Value =
        serde_json::from_slice(bytes).map_err(|error| format!("cannot rewrite: {error}"))?;
    apply(&mut value).map_err(|ApplyError(error)| error)?;
    Ok(crate::model::render(&value).len())
}

/// `last_look`, reported: a dropped target gets its `skipped` action record (and, when its
/// record could not be written, an error line and exit 3). True when it may be signalled.
#[allow(clippy::too_many_arguments)]
pub fn gate(
    planned: &Planned<'_>,
    info: &TargetInfo,
    config: &Config,
    host: &LazyHost,
    apply: &dyn Fn(&mut Value) -> Result<(), ApplyError>,
    place: Place<'_>,
    output: &mut Output,
    diag: &mut Diagnostics,
) -> bool {
    let (termination, why) = match last_look(planned, config, host, apply) {
        Gate::Go => return true,
        Gate::Progressed(why) => (Termination::Progressed, why),
        Gate::Unrecordable(why) => {
            diag.error(
                place.path,
                &format!("not reclaimed (skipped_unrecordable): {why}"),
                Exit::FileProblem,
            );
            (Termination::SkippedUnrecordable, why)
        }
    };
    let detail = SkippedDetail {
        state: info.state.as_str(),
        process_id: info.process_id,
        termination: termination.as_str(),
        reason: Some(&why),
    };
    // A failing stdout stops the printing, never the work.
    let _ = place.record("skipped", "not_written", detail, output, diag);
    false
}
