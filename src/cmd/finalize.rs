//! finalize: an operator closes a running delegation by hand, without signalling anything,
//! under the run lock (SPEC §13).

use crate::cli::config::Config;
use crate::core::finalize::{self, Decision};
use crate::core::time::Millis;
use crate::exit::Exit;
use crate::fs::MAX_DOCUMENT_BYTES;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, Output};
use crate::shell::commit::{self, ApplyError, DocChange, Place, Target};
use crate::shell::runs::{self as scan, Run};
use serde_json::{Map, Value, json};
use std::ffi::OsString;

/// The change: the delegation becomes `status`, for the reason "operator".
#[derive(Debug, Clone)]
struct Close {
    status: &'static str,
    summary: String,
}

impl DocChange for Close {
    fn action(&self) -> &'static str {
        "finalized"
    }

    fn detail(&self) -> Map<String, Value> {
        let mut detail = Map::new();
        detail.insert("status".into(), json!(self.status));
        detail.insert("reason".into(), json!("operator"));
        detail.insert("summary".into(), json!(self.summary));
        detail
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

fn usage(diag: &mut Diagnostics, message: &str) -> Exit {
    diag.notice_usage(message);
    Exit::Usage
}

/// `flatline finalize RUN_DIR --delegation ID --as failed|cancelled [--note TEXT]`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let status = match config.finalize_as.as_deref() {
        Some("failed") => "failed",
        Some("cancelled") => "cancelled",
        _ => return usage(diag, "finalize needs --as failed or --as cancelled"),
    };
    let [id] = config.delegations.as_slice() else {
        return usage(diag, "finalize needs exactly one --delegation ID");
    };
    if config.run_dirs.len() != 1 {
        return usage(diag, "finalize takes exactly one RUN_DIR");
    }
    let runs = scan::open_runs(&config.run_dirs, diag);
    let Some(run) = runs.first() else {
        return diag.exit;
    };
    let mut output = Output::for_runs(config, &runs);
    let change = Close {
        status,
        summary: finalize::summary(status, config.note.as_deref()),
    };
    let exit = close(run, id, change, config, &mut output, diag, stop);
    if let Err(error) = output.finish::<Value>(&[], &diag.errors.clone(), "") {
        diag.error(
            std::path::Path::new("stdout"),
            &crate::fs::io_message(&error),
            Exit::FileProblem,
        );
    }
    diag.raise(exit);
    diag.exit
}

fn close(
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
    if let Some(other) = duplicate_of(&listing, id, &name) {
        let message = format!(
            "duplicate_delegation_id: {} claims the delegation_id '{id}' too; nothing is written",
            other.to_string_lossy()
        );
        diag.error(&path, &message, Exit::Attention);
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

/// For each named delegation file (`ID.json`) that another document of the listing claims by
/// its `delegation_id`, that other file: the operator's tools act on neither (SPEC §13).
pub fn duplicated(
    listing: &scan::Listing,
    ids: &[String],
) -> std::collections::HashMap<OsString, OsString> {
    ids.iter()
        .filter_map(|id| {
            let own = OsString::from(format!("{id}.json"));
            duplicate_of(listing, id, &own).map(|other| (own, other))
        })
        .collect()
}

/// Another document of the listing whose `delegation_id` is `id` (SPEC §13: two files with
/// one delegation_id are a problem, and the operator's tools act on neither).
fn duplicate_of(listing: &scan::Listing, id: &str, own: &OsString) -> Option<OsString> {
    let mut bytes = Vec::new();
    for entry in &listing.entries {
        if entry.name == own || !scan::is_document_name(entry.name) {
            continue;
        }
        if listing
            .dir
            .read_entry(&entry, MAX_DOCUMENT_BYTES, &mut bytes)
            .is_err()
        {
            continue;
        }
        let claims = crate::model::parse_delegation(&bytes)
            .ok()
            .is_some_and(|doc| doc.delegation_id.str() == Some(id));
        if claims {
            return Some(entry.name.to_os_string());
        }
    }
    None
}
