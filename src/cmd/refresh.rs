//! refresh: brings running delegations up to date from their workers' event streams
//! (SPEC §3.2) — progress for live workers, a final result for finished ones.
//!
//! The decision is pure (`core::plan::refresh`); planning one delegation, its stream and the
//! write of its change are `shell::refresh`. This file walks the runs and commits the plans.

use crate::cli::config::Config;
use crate::exit::Exit;
use crate::output::{Diagnostics, Output};
use crate::shell::commit::{self, Place};
use crate::shell::refresh::{Context, plan, replan};
use crate::shell::runs::{self as scan, LazyHost};
use crate::shell::{self, Access};
use serde_json::Value;

/// `flatline refresh`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &crate::interrupt::Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let mut output = Output::for_runs(config, &runs);
    let host = LazyHost::default();
    let looped = shell::for_each_run(&runs, Access::Write, config, diag, stop, |session, diag| {
        let run = session.run;
        let Some(listing) = scan::list_for_writing(run, "delegations", config, diag) else {
            return Ok(());
        };
        let ctx = Context::new(run, config, &host);
        let mut wrote = false;
        // Where a run cut short stopped: this one starts there (SPEC §4, --deadline).
        let mut resume = session.resume();
        let result = scan::for_each_in_listing_from(
            run,
            &listing,
            config,
            &host,
            diag,
            stop,
            &mut resume,
            &mut |item, diag| {
                let change = match plan(
                    &ctx,
                    item.doc,
                    item.times,
                    item.facts,
                    crate::fs::guard_owner(&item.meta),
                ) {
                    Ok(Some(change)) => change,
                    Ok(None) => return Ok(()),
                    Err(problem) => {
                        diag.error(item.path, &problem.to_string(), Exit::FileProblem);
                        return Ok(());
                    }
                };
                let target = commit::Target {
                    dir: item.dir,
                    name: item.name,
                    bytes: item.bytes,
                };
                let written =
                    commit::write_change(target, change, config.now, config.dry_run, |bytes| {
                        replan(&ctx, bytes, crate::fs::guard_owner(&item.meta))
                    });
                wrote |= written.wrote();
                let place = Place {
                    command: "refresh",
                    run,
                    path: item.path,
                    delegation_id: item.view.delegation_id,
                };
                commit::report(place, &written, &mut output, diag)
            },
        );
        commit::sync(&listing.dir, wrote, diag);
        session.record_resume(&resume, diag);
        if let Some(lock) = session.lock.as_ref().filter(|lock| lock.is_held()) {
            crate::shell::last_run::record(lock.state_dir(), run, config, diag.exit, diag);
        }
        result
    });
    if let Err(exit) = looped {
        diag.raise(exit);
    }
    if let Err(error) = output.finish::<Value>(&[], &diag.errors.clone(), "") {
        crate::output::stdout_failed(diag, &error);
    }
    diag.exit
}
