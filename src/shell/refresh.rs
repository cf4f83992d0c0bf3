//! refresh's work on one delegation (SPEC §3.2), shared by `refresh`, `reclaim`, `sweep` and
//! `run`: `Context` (its inputs), `plan` (stat or read the stream, ask
//! `core::plan::refresh`), `replan` (the same over bytes re-read after a conflict), the
//! bounded stream reads (`stream`) and `apply`, which writes a `Change` into the document's
//! JSON (`write`). `cmd::refresh` only walks the runs and commits these plans.

use crate::cli::config::Config;
use crate::core::digest::{self as events, Digest, Outcome};
use crate::core::lifecycle::{self, ProcessFacts, StreamInode, Times};
use crate::core::plan::refresh::{
    Case, Change, Finalization, Stream, case_of, decide, failure_summary, fingerprint_to_stamp,
    result_summary, stream_is_newer,
};
use crate::core::time::{self, Millis};
use crate::fs::{self, NamedPathPolicy, ReadError, RunRoot};
use crate::model::Delegation;
use crate::output::{FinalizeDetail, InodeRecord, RefreshDetail, Ts};
use crate::shell::commit::{ApplyError, DocChange, lifecycle_mut, object_mut, set_status, ts};
use crate::shell::runs::{self as scan, LazyHost, Run};
use serde_json::{Map, Value, json};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod stream;
mod write;

pub use stream::*;
pub use write::*;

/// The inputs refresh needs beyond the item: computed afresh after a conflict.
pub struct Context<'a> {
    pub run: &'a Run,
    pub config: &'a Config,
    pub host: &'a LazyHost,
    pub settle_ms: Millis,
    pub allow_outside: bool,
    pub reading: StreamReading,
    pub max_clock_skew: Millis,
}

impl<'a> Context<'a> {
    pub fn new(run: &'a Run, config: &'a Config, host: &'a LazyHost) -> Context<'a> {
        Context {
            run,
            config,
            host,
            settle_ms: config.settle,
            allow_outside: config.allow_outside_paths,
            reading: StreamReading::new(config.max_stream_read),
            max_clock_skew: config.thresholds.max_clock_skew,
        }
    }
}

/// The change for one delegation, or `None`. Stream problems are returned for reporting.
pub fn plan(
    ctx: &Context<'_>,
    doc: &Delegation<'_>,
    times: &Times,
    facts: &ProcessFacts,
    owner: u32,
) -> Result<Option<Change>, StreamError> {
    let Some(case) = case_of(facts) else {
        return Ok(None);
    };
    let stamp = match case {
        Case::Live => fingerprint_to_stamp(doc, facts, ctx.host.get()),
        _ => None,
    };
    let exit_code = doc
        .worker_lifecycle
        .value()
        .and_then(|l| l.exit_code.value().copied())
        .and_then(|code| i64::try_from(code).ok());
    let policy = NamedPathPolicy {
        allow_outside: ctx.allow_outside,
        owner,
    };
    let recorded = lifecycle::recorded_stream_inode(doc.worker_lifecycle.value());
    let now = ctx.config.now;
    // An mtime further ahead than the allowed skew is no progress (SPEC §2).
    let too_far_ahead = |stream: &Stream| stream.mtime_ms > now.saturating_add(ctx.max_clock_skew);
    let path = stream_path(doc);
    let stream = match &path {
        None => None,
        Some(path) => look_at_stream_with(&ctx.run.root, path, policy, &ctx.reading, |stream| {
            if recorded.is_some_and(|inode| inode != stream.inode) {
                return false;
            }
            match case {
                Case::Live => false,
                Case::Gone => true,
                Case::Unsure => stream_is_newer(times, stream),
            }
        })?,
    };
    match (recorded, &stream, &path) {
        (Some(recorded), Some(stream), Some(path)) if stream.inode != recorded => {
            return Err(StreamError {
                path: path.clone(),
                error: stream_replaced(recorded, stream.inode),
            });
        }
        // stream_missing: the view says so; nothing is decided without the stream.
        (Some(_), None, _) => return Ok(None),
        _ => {}
    }
    // Recorded while the worker may still write: a gone worker's stream is its result,
    // finalized now or once settled, and the record would only be noise in between.
    let first_sight = match (recorded, case) {
        (None, Case::Live | Case::Unsure) => stream.as_ref().map(|stream| stream.inode),
        _ => None,
    };
    let change = decide(
        case,
        times,
        stream.as_ref(),
        stamp,
        exit_code,
        now,
        ctx.settle_ms,
    );
    // An mtime from too far ahead is no progress (its events may still end the worker).
    let change = match change {
        Some(Change::Progress { fingerprint, .. })
            if stream.as_ref().is_some_and(too_far_ahead) =>
        {
            fingerprint.map(Change::Fingerprint)
        }
        change => change,
    };
    let recorded_state = doc.worker_lifecycle.value().and_then(|l| l.state.str());
    let change = crate::shell::activity::with_busy_mark(change, ctx.host, recorded_state, now);
    Ok(match (first_sight, change) {
        (_, Some(Change::Finalize(finalization))) => Some(Change::Finalize(finalization)),
        (Some(inode), then) => Some(Change::StreamSeen {
            inode,
            then: then.map(Box::new),
        }),
        (None, change) => change,
    })
}

/// Why a stream that is another file than the one first seen is refused.
fn stream_replaced(recorded: StreamInode, found: StreamInode) -> String {
    format!(
        "stream_replaced: it is inode {}:{} now, not {}:{} as first seen; another file is \
         never this worker's progress or result",
        found.dev, found.ino, recorded.dev, recorded.ino
    )
}

/// The plan for bytes re-read after a conflict: inspected afresh, as on the first read.
pub fn replan(ctx: &Context<'_>, bytes: &[u8], owner: u32) -> Result<Option<Change>, String> {
    scan::inspect(bytes, ctx.config, ctx.host, |doc, times, facts, _| {
        if !ctx.config.card_selected(doc.task_card_id.str()) {
            return Ok(None);
        }
        plan(ctx, doc, times, facts, owner).map_err(|problem| problem.to_string())
    })
    .map_err(|error| error.to_string())?
}

#[cfg(test)]
mod tests;
