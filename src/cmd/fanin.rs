//! fan-in: collapsing a task card's fan-in once all of its workers are done (SPEC §3.4).
//!
//! The decision is pure (`core::plan::fan_in`); reading the cards and members, committing
//! the stamps and building the records are `shell::fan_in`, shared with `sweep`. This file
//! walks the runs, writes each stamp at once and prints one `fan_in` record per card.

use crate::cli::config::Config;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, Output};
use crate::shell::commit;
use crate::shell::fan_in::{
    FanInStamp, MemberFile, fan_in_run, gather_members, read_cards, report_failure, still_unstamped,
};
use crate::shell::runs::{self as scan, LazyHost};
use crate::shell::{self, Access};
use serde_json::Value;
use std::collections::BTreeMap;

/// `flatline fan-in`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let runs = scan::open_runs(&config.run_dirs, diag);
    let mut output = Output::for_runs(config, &runs);
    let host = LazyHost::default();
    let mut named_not_ready = false;
    let looped = shell::for_each_run(&runs, Access::Write, config, diag, stop, |session, diag| {
        let run = session.run;
        let listing = scan::list_for_writing(run, "delegations", config, diag);
        let members = match &listing {
            Some(listing) => gather_members(run, listing, config, &host, diag, stop)?,
            None => BTreeMap::new(),
        };
        let (card_listing, cards) = read_cards(run, config, diag);
        let mut wrote_delegations = false;
        let delegation_dir = listing.as_ref().map(|l| &l.dir);
        let mut stamp =
            |_: &str, _: usize, file: &MemberFile, change: FanInStamp, diag: &mut Diagnostics| {
                let (Some(dir), Some(bytes)) = (delegation_dir, &file.bytes) else {
                    return true;
                };
                let target = commit::Target {
                    dir,
                    name: &file.name,
                    bytes,
                };
                let written = commit::write_change(target, change, config.now, false, |current| {
                    still_unstamped(current, config, &host, change)
                });
                wrote_delegations |= written.wrote();
                report_failure(&file.path, &written, diag)
            };
        let done = fan_in_run(
            run,
            config,
            &members,
            card_listing.as_ref().map(|l| &l.dir),
            &cards,
            &mut stamp,
            &mut |record, diag| {
                output
                    .record(&record)
                    .map_err(|error| crate::output::stdout_failed(diag, &error))
            },
            diag,
        );
        match done {
            Ok(outcome) => {
                named_not_ready |= outcome.named_not_ready;
                if let Some(listing) = &listing {
                    commit::sync(&listing.dir, wrote_delegations, diag);
                }
                if let Some(card_listing) = &card_listing {
                    commit::sync(&card_listing.dir, outcome.wrote_cards, diag);
                }
                Ok(())
            }
            Err(exit) => Err(exit),
        }
    });
    if let Err(exit) = looped {
        diag.raise(exit);
    }
    if let Err(error) = output.finish::<Value>(&[], &diag.errors.clone(), "") {
        crate::output::stdout_failed(diag, &error);
    }
    if named_not_ready {
        diag.raise(Exit::Attention);
    }
    diag.exit
}
