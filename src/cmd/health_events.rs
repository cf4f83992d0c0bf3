//! health-events: `flatline health-events` appends an event to `RUN_DIR/events.jsonl` when a
//! heartbeat worker's health changes (SPEC §5). The transitions of one run, its baseline and
//! the append are `shell::health_events` (shared with `sweep`); this file walks the runs.

use crate::cli::config::Config;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, Output};
use crate::shell::health_events::health_events_for_run;
use crate::shell::runs as scan;
use crate::shell::{self, Access};

/// `flatline health-events`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let mut output = Output::for_runs(config, &runs);
    let looped = shell::for_each_run(&runs, Access::Write, config, diag, stop, |session, diag| {
        // A dry run has no lock but may still read a baseline that exists.
        session.with_state_dir(|dir| {
            health_events_for_run(session.run, config, dir, diag, stop, &mut output).map(|_| ())
        })
    });
    if let Err(exit) = looped {
        diag.raise(exit);
    }
    if let Err(error) = output.finish::<serde_json::Value>(&[], &diag.errors.clone(), "") {
        crate::output::stdout_failed(diag, &error);
    }
    diag.exit
}
