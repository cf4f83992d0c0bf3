//! The changes sweep makes to one document, composed (refresh, reclaim, fan-in stamp), and
//! their re-check after another writer changed the file.

use crate::core::plan::fan_in::Member;
use crate::core::plan::recheck;
use crate::core::plan::reclaim::{Reclaim, Termination};
use crate::core::plan::refresh::Change;
use crate::output::SweepDetail;
use crate::shell::commit::{ApplyError, DocChange};
use crate::shell::fan_in::FanInStamp;
use crate::shell::reclaim;
use crate::shell::refresh;
use crate::shell::runs as scan;
use serde_json::Value;

/// Every change sweep makes to one document, applied in order: refresh, reclaim, fan-in.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub refresh: Option<Change>,
    pub reclaim: Option<Reclaim>,
    pub stamp: Option<FanInStamp>,
}

impl Changes {
    pub(super) fn is_empty(&self) -> bool {
        self.refresh.is_none() && self.reclaim.is_none() && self.stamp.is_none()
    }

    /// Whether these changes end the worker's delegation (a reclaim, or refresh finalizing
    /// it): what fan-in counted on when it judged the card.
    pub(super) fn ends_member(&self) -> bool {
        self.reclaim.is_some() || matches!(self.refresh, Some(Change::Finalize(_)))
    }

    /// Only a fan-in stamp.
    pub(super) fn stamp_only(&self) -> bool {
        self.refresh.is_none() && self.reclaim.is_none() && self.stamp.is_some()
    }
}

impl DocChange for Changes {
    fn action(&self) -> &'static str {
        match (&self.refresh, &self.reclaim) {
            (_, Some(reclaim)) => reclaim.action(),
            (Some(refresh), None) => refresh.action(),
            (None, None) => "fan_in_stamped",
        }
    }

    type Detail = SweepDetail;

    fn detail(&self) -> SweepDetail {
        SweepDetail::new(
            self.refresh.as_ref().map(DocChange::detail),
            self.reclaim.as_ref().map(DocChange::detail),
            self.stamp.as_ref().map(DocChange::detail),
        )
    }

    fn apply(&self, doc: &mut Value, now: i64) -> Result<(), ApplyError> {
        // All or nothing: work on a copy.
        let mut copy = doc.clone();
        if let Some(refresh) = &self.refresh {
            refresh.apply(&mut copy, now)?;
        }
        if let Some(reclaim) = &self.reclaim {
            reclaim.apply(&mut copy, now)?;
        }
        if let Some(stamp) = &self.stamp {
            stamp.apply(&mut copy, now)?;
        }
        *doc = copy;
        Ok(())
    }
}

/// The bytes of a document after a refresh change, as they would be written.
pub(super) fn in_memory(bytes: &[u8], change: &Change, now: i64) -> Result<Vec<u8>, String> {
    let mut value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("cannot rewrite: {e}"))?;
    change.apply(&mut value, now).map_err(|ApplyError(e)| e)?;
    Ok(crate::model::render(&value))
}

/// After a conflict: refresh is planned again from the new bytes; the reclaim record (the
/// signals were sent) and the stamp still apply while the document still needs them.
pub(super) fn replan(
    ctx: &refresh::Context<'_>,
    bytes: &[u8],
    owner: u32,
    planned: &Changes,
) -> Result<Option<Changes>, String> {
    let reclaim = match &planned.reclaim {
        // Marked without a process: only while the document still needs it and names none.
        Some(change) if change.termination == Termination::NoProcess => {
            reclaim::still_needs_no_process_reclaim(bytes, ctx.config, ctx.host, change)?
        }
        // A worker that was signalled and is gone: true whatever the document says now,
        // merged into a terminal status the orchestrator set meanwhile (Reclaim::apply).
        other => other.clone(),
    };
    let mut changes = Changes {
        refresh: if planned.refresh.is_some() && planned.reclaim.is_none() {
            refresh::replan(ctx, bytes, owner)?
        } else {
            None
        },
        reclaim,
        stamp: None,
    };
    // The stamp was planned on this member being over: ended by these changes, or finished
    // already (not queued or running again meanwhile). Otherwise its card is not ready.
    let (planned_ends, still_ends) = (planned.ends_member(), changes.ends_member());
    let stamp_applies = scan::inspect(bytes, ctx.config, ctx.host, |doc, _, _, _| {
        recheck::sweep_stamp_applies(&Member::of(doc), planned_ends, still_ends)
    })
    .map_err(|error| error.to_string())?;
    changes.stamp = planned.stamp.filter(|_| stamp_applies);
    Ok((!changes.is_empty()).then_some(changes))
}
