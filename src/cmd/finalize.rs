//! finalize: an operator closes a running delegation by hand, without signalling anything,
//! under the run lock (SPEC §13). The close itself (checked, written, reported) is
//! `shell::finalize`; the decision is `core::finalize`.

use crate::cli::config::Config;
use crate::core::finalize;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, Output};
use crate::shell::finalize::{Close, close, usage};
use crate::shell::runs as scan;
use serde_json::Value;

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
