//! reclaim: terminates stuck workers and their process trees, all in one grace period, and
//! records the outcome (SPEC §3.3).
//!
//! The decisions are pure (`core::plan::reclaim`); the scan, the last look, the notes, the
//! signals and the records are `shell::reclaim`, shared with `sweep`. This file runs those
//! phases in order and prints.

use crate::cli::config::Config;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, Output};
use crate::shell::commit;
use crate::shell::reclaim::{
    Reclaiming, note_targets, own_identity, print_plan_document, record_all,
};
use crate::shell::runs::{self as scan, LazyHost};
use serde_json::Value;

/// `flatline reclaim`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let plan_document = config.dry_run && config.format == crate::cli::Format::Json;
    // The json plan is one document printed at the end: the targets are kept, not printed.
    let output = if plan_document {
        Output::ndjson(Box::new(std::io::sink()))
    } else {
        Output::for_runs(config, &runs)
    };
    let mut work = Reclaiming {
        config,
        host: LazyHost::default(),
        states: Vec::new(),
        pending: Vec::new(),
        output,
        plan: plan_document.then(Vec::new),
    };
    let mut interrupted = work.scan(&runs, diag, stop).err();
    let signalling = !config.dry_run && interrupted.is_none();
    if signalling {
        work.gate(diag);
    }
    let me = own_identity();
    let mut unlanded: Vec<(usize, String)> = Vec::new();
    if signalling && !work.pending.is_empty() {
        note_targets(
            &mut work.pending,
            &mut work.states,
            config,
            me,
            &work.host,
            &mut work.output,
            diag,
        );
    }
    if signalling && !work.pending.is_empty() {
        interrupted = work.signal(diag, stop).err();
        unlanded = record_all(
            &mut work.pending,
            &mut work.states,
            config,
            &work.host,
            stop,
            &mut work.output,
            diag,
        );
    }
    work.forget_done_notes(me, &unlanded, diag);
    for state in &work.states {
        commit::sync(&state.listing.dir, state.wrote, diag);
    }
    if let Some(plan) = &work.plan {
        print_plan_document(plan, diag);
    } else if let Err(error) = work.output.finish::<Value>(&[], &diag.errors.clone(), "") {
        crate::output::stdout_failed(diag, &error);
    }
    if let Some(exit) = interrupted {
        diag.raise(exit);
    }
    diag.exit
}
