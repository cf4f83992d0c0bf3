//! explain: why each delegation is in its state, with the evidence (SPEC §11, §13).
//!
//! Reads like `status` (no lock, no write), then for each chosen delegation stats its
//! stream, reads the process's uid and, for a live verified worker past quiet, what its
//! tree waits on (`shell::explain`); `core::explain` assembles the evidence. The operands are RUN_DIR and then
//! delegation ids (or file names); without ids, the delegations that need attention.

use crate::cli::config::Config;
use crate::core::explain;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use crate::proc::stall::StallReader;
use crate::shell::explain::explain_one;
use crate::shell::runs::{self as scan, LazyHost};

/// `flatline explain RUN_DIR [ID...]`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let Some((dir, ids)) = config.run_dirs.split_first() else {
        return Exit::Usage;
    };
    let ids: Vec<String> = ids
        .iter()
        .map(|id| id.to_string_lossy().into_owned())
        .collect();
    let runs = scan::open_runs(std::slice::from_ref(dir), diag);
    let Some(run) = runs.first() else {
        return Exit::RunUnusable;
    };
    let (config, origin) = crate::shell::last_run::explain_config(config, run);
    let host = LazyHost::default();
    let mut reader = StallReader::default();
    let mut found = vec![false; ids.len()];
    let mut text = String::new();
    let result = scan::for_each_delegation(run, &config, &host, diag, stop, |item, _| {
        let file = item.name.to_string_lossy();
        let stem = file.strip_suffix(".json").unwrap_or(&file);
        let wanted = if ids.is_empty() {
            // --delegation has chosen the file already (the walk reads no other).
            !config.delegations.is_empty() || item.view.needs_attention()
        } else {
            let mut any = false;
            for (id, hit) in ids.iter().zip(found.iter_mut()) {
                if item.view.delegation_id == Some(id.as_str()) || stem == id || file == *id {
                    *hit = true;
                    any = true;
                }
            }
            any
        };
        if wanted {
            let record = explain_one(run, &item, &config, origin, &mut reader);
            if config.format == crate::cli::Format::Text {
                text.push_str(&explain::to_text(&record));
            } else {
                // Dangerous characters as \uXXXX escapes, as in every JSON flatline prints.
                if let Ok(line) = crate::output::to_string_safe(&record) {
                    text.push_str(&line);
                }
                text.push('\n');
            }
        }
        Ok(())
    });
    let mut exit = result.err().unwrap_or(Exit::Ok);
    for (id, _) in ids.iter().zip(&found).filter(|(_, hit)| !**hit) {
        diag.error(
            &run.path.join("delegations").join(id),
            "no delegation read with this id or file name",
            Exit::Usage,
        );
        exit = Exit::Usage;
    }
    if ids.is_empty() && text.is_empty() && config.format == crate::cli::Format::Text {
        text.push_str("nothing needs attention\n");
    }
    if let Err(error) = crate::output::write_stdout(text.as_bytes()) {
        return crate::output::stdout_failed(diag, &error);
    }
    diag.raise(exit);
    diag.exit
}
