//! `sweep --every DURATION`: the container's timer (SPEC §9). Each pass is exactly a fresh
//! one-shot sweep: the clock read again, every run's lock taken and released, every file read
//! again, its own deadline (at most the interval) and its own diagnostics. Between passes
//! flatline only sleeps, holding nothing; a signal there ends it with exit 0.

use crate::cli::config::Config;
use crate::exit::Exit;
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use std::time::Instant;

/// `flatline sweep --every DURATION`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let Some(interval) = config.sweep_every else {
        return super::run(config, diag, stop);
    };
    loop {
        let started = Instant::now();
        let exit = pass(config, stop);
        // A signal within a pass stopped it before its next side effect: 128+N as any run.
        if let Exit::Signal(_) = exit {
            return exit;
        }
        if crate::interrupt::sleep_until(started + interval, stop) {
            // Stopped between passes: the service ended normally.
            return Exit::Ok;
        }
    }
}

/// One sweep as a fresh invocation would run it.
fn pass(config: &Config, stop: &Stop) -> Exit {
    let mut pass = config.clone();
    if !pass.now_given {
        pass.now = crate::proc::now_ms();
    }
    let mut diag = Diagnostics::new(crate::output::stderr_is_journal());
    let (stop, _guard) = match pass.deadline {
        Some(deadline) => {
            let (stop, guard) = stop.for_pass(deadline);
            (stop, Some(guard))
        }
        None => (stop.clone(), None),
    };
    super::run(&pass, &mut diag, &stop)
}
