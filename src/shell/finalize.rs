//! `finalize`'s work (SPEC §13): the operator's close of one running delegation, checked
//! again under the run lock (not running, already done, a duplicate id), written through
//! `commit` and reported.

use crate::cli::config::Config;
use crate::core::finalize::{self, Decision};
use crate::core::time::Millis;
use crate::exit::Exit;
use crate::fs::MAX_DOCUMENT_BYTES;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, OperatorDetail, Output};
use crate::shell::commit::{self, ApplyError, DocChange, Place, Target};
use crate::shell::runs::{self as scan, Run};
use serde_json::{Value, json};
use std::ffi::OsString;

/// The change: the delegation becomes `status`, for the reason "operator".
#[derive(Debug, Clone)]
pub(crate) struct Close {
    pub(crate) status: &'static str,
    pub(crate) summary: String,
}

impl DocChange for Close {
    fn action(&self) -> &'static str {
        "finalized"
    }

    type Detail = OperatorDetail;

    fn detail(&self) -> OperatorDetail {
        OperatorDetail {
            status: self.status,
            reason: "operator",
            summary: self.summary.clone(),
        }
    }

    fn apply(&self, doc: &mut Value, now: Millis) -> Result<(), ApplyError> {
        let object = commit::object_mut(doc)?;
        // Checked first: on error nothing at all is changed.
        commit::lifecycle_mut(object)?;
        commit::set_status(object, self.status);
        object.insert("updated_at".into(), commit::ts(now));
        object.insert("completed_at".into(), commit::ts(now));
        object.insert("result_summary".into(), json!(self.summary));
        object.insert(
            "latest_failure".into(),
            json!({
                "stage": "operator",
                "reason": "operator",
                "summary": self.summary,
                "recorded_at": commit::ts(now),
            }),
        );
        let lifecycle = commit::lifecycle_mut(object)?;
        lifecycle.insert("state".into(), json!(self.status));
        lifecycle.insert("reclaim_state".into(), json!("not_needed"));
        lifecycle.insert("returned_at".into(), commit::ts(now));
        lifecycle.insert("summary".into(), json!(self.summary));
        Ok(())
    }
}

/// A usage problem: said on stderr; exit 2.
pub(crate) fn usage(diag: &mut Diagnostics, message: &str) -> Exit {
    diag.notice_usage(message);
    Exit::Usage
}

/// Closes delegation `id` of `run` under the run lock, unless it is not running, is already
/// done or has a duplicate; the action record is printed to `output`.
pub(crate) fn close(
    run: &Run,
    id: &str,
    change: Close,
    config: &Config,
    output: &mut Output,
    diag: &mut Diagnostics,
    stop: &Stop,
) -> Exit {
    let Some(_lock) = commit::lock_run(run, config, stop, diag) else {
        return diag.exit;
    };
    let Some(listing) = scan::list_for_writing(run, "delegations", config, diag) else {
        return usage(
            diag,
            &format!("no delegation '{id}' in {}", run.path.display()),
        );
    };
    let name = OsString::from(format!("{id}.json"));
    let path = run.path.join("delegations").join(&name);
    if !listing.entries.iter().any(|entry| entry.name == name) {
        return usage(
            diag,
            &format!("no delegation '{id}' in {}", run.path.display()),
        );
    }
    // Two files with one delegation_id: finalize acts on neither (SPEC §13).
    if let Some(duplicate) = scan::duplicates::find(&listing, &[id.to_string()]).first() {
        duplicate.report(run, diag);
        return Exit::Attention;
    }
    let mut bytes = Vec::new();
    if let Err(error) = listing.dir.read_file(&name, MAX_DOCUMENT_BYTES, &mut bytes) {
        diag.error(&path, &error.to_string(), Exit::FileProblem);
        return Exit::FileProblem;
    }
    match crate::model::parse_delegation(&bytes).map(|doc| finalize::decide(&doc)) {
        Err(error) => {
            diag.error(&path, &error.to_string(), Exit::FileProblem);
            return Exit::FileProblem;
        }
        Ok(Decision::AlreadyDone(status)) => {
            diag.notice(&format!(
                "{}: already {status}; nothing to do",
                path.display()
            ));
            return Exit::Ok;
        }
        Ok(Decision::NotRunning) => {
            return usage(
                diag,
                &format!(
                    "{}: finalize closes running delegations only",
                    path.display()
                ),
            );
        }
        Ok(Decision::Close) => {}
    }
    let target = Target {
        dir: &listing.dir,
        name: &name,
        bytes: &bytes,
    };
    let again = change.clone();
    let written = commit::write_change(target, change, config.now, config.dry_run, |current| {
        let doc = crate::model::parse_delegation(current).map_err(|e| e.to_string())?;
        Ok((finalize::decide(&doc) == Decision::Close).then(|| again.clone()))
    });
    commit::sync(&listing.dir, written.wrote(), diag);
    let delegation_id = Some(id);
    let place = Place {
        command: "finalize",
        run,
        path: &path,
        delegation_id,
    };
    match commit::report(place, &written, output, diag) {
        Ok(()) => Exit::Ok,
        Err(exit) => exit,
    }
}
