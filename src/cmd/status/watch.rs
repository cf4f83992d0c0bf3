//! `status --watch DURATION` (SPEC §13): the status again every DURATION. On a terminal in
//! text the table is redrawn; in ndjson a record is printed only when something other than
//! its ages (in numbers or in words), `checked_at` and activity counters changed since the
//! previous iteration (the first iteration prints every record). A signal between iterations
//! ends it with exit 0.
//! What changed is `output::watch`. One activity tracker lives across the iterations: each compares its samples with the
//! previous iteration's, so only the first may wait for a second look (SPEC §11).

use crate::cli::config::Config;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::watch::{Sink, changed_lines};
use crate::output::{Diagnostics, Format};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

/// `flatline status --watch DURATION`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let Some(interval) = config.watch else {
        return super::run(config, diag, stop);
    };
    let mut previous: HashMap<String, Value> = HashMap::new();
    // The previous pass's activity samples are the next pass's stored ones (SPEC §13).
    let mut tracker = crate::shell::activity::Tracker::for_watch();
    loop {
        tracker.new_pass();
        let started = Instant::now();
        let mut pass = config.clone();
        if !pass.now_given {
            pass.now = crate::proc::now_ms();
        }
        let sink = Sink::default();
        let mut pass_diag = Diagnostics::new(crate::output::stderr_is_journal());
        let into = Some(Box::new(sink.clone()) as Box<dyn Write>);
        let exit = super::run_to(&pass, &mut pass_diag, stop, into, &mut tracker);
        if let Exit::Signal(_) = exit {
            return Exit::Ok;
        }
        let printed = sink.take();
        let shown = match config.format {
            Format::Ndjson => changed_lines(&printed, &mut previous),
            // A redraw: home, clear, the whole table.
            Format::Text => [b"\x1b[H\x1b[2J".as_slice(), &printed].concat(),
            _ => printed,
        };
        if crate::output::write_stdout(&shown).is_err() {
            return Exit::Ok;
        }
        if crate::interrupt::sleep_until(started + interval, stop) {
            return Exit::Ok;
        }
    }
}
