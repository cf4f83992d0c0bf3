//! sweep: the one-shot job for a timer — refresh, reclaim, fan-in and heartbeat
//! transitions in one pass, each input read once, each changed document written once.
//!
//! Every run's lock is taken once and held to the end. The phases, in order:
//! - `scan`: the delegations are scanned once; refresh's change is applied in memory and the
//!   document looked at again (in memory) for reclaim;
//! - `signal`: stuck workers get SIGTERM as the scan finds them (in batches, each noted in
//!   state.json first) and SIGKILL once their batch's grace has passed, checked between
//!   files, the last batches waited for together after the scan (one grace period);
//! - `fan_in`: fan-in decides on the resulting states;
//! - `write`: each document is written once with all its changes composed — first those
//!   whose changes end their worker, then those that only get a fan-in stamp, skipped for a
//!   card whose ending write did not land;
//! - `transitions`: the heartbeat transitions are appended.
//!
//! `every` is `sweep --every DURATION`: this sweep run again and again (SPEC §9).

mod changes;
pub mod every;
mod fan_in;
mod scan;
mod signal;
mod state;
mod transitions;
mod write;

#[cfg(test)]
mod tests;

use crate::cli::config::Config;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::{Diagnostics, Output};
use crate::shell::runs::LazyHost;
use state::{Env, Sweep};

/// `flatline sweep`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let runs = crate::shell::runs::open_runs(&config.run_dirs, diag);
    let host = LazyHost::default();
    let plan_table = crate::shell::reclaim::PlanTable::default();
    let env = Env {
        config,
        host: &host,
        stop,
        plan_table: &plan_table,
        me: crate::shell::reclaim::own_identity(),
    };
    let mut sweep = Sweep::new(Output::for_runs(config, &runs));

    // 1. One scan: refresh in memory, then reclaim triage on the refreshed view; stuck
    // workers signalled as they are found.
    scan::all(&mut sweep, &env, &runs, diag);
    // 2. The batches still in flight, waited for together; every target's outcome noted.
    signal::wait(&mut sweep, &env, diag);
    signal::record(&mut sweep, diag);
    // 3. Fan-in on the resulting states; its records are printed once the stamps are written.
    fan_in::mark_ended(&mut sweep);
    let (fan_rows, failed_cards) = fan_in::collapse(&mut sweep, &env, diag);
    // 4. Each changed document written once.
    let landed = write::run(&mut sweep, &env, failed_cards, diag);
    fan_in::print(
        &mut sweep,
        &env,
        fan_rows,
        &landed.failed_cards,
        &landed.ended,
    );
    // 5. Heartbeat transitions.
    let metrics = transitions::run(&mut sweep, &env, diag);
    transitions::finish(sweep, &env, metrics, diag)
}
