//! flatline: a watchdog for the worker processes of AI-agent orchestrators.
//!
//! The crate is a pure core (lifecycle views, event digests, plans) and a thin imperative
//! shell around it; `main.rs` only parses, runs and exits. ARCHITECTURE.md draws the layers.
//!
//! Where things live (arrows point down only: cmd → shell → output → fs/proc → sys; core and
//! model import nothing above them):
//!
//! - `core/`: pure, and a unit test (`core/purity.rs`) keeps it so. `lifecycle/` (the view of
//!   a delegation, SPEC §2), `identity` (the validated `Pid`, `/proc` parsing, the identity
//!   window, SPEC §3.1), `digest/` (event streams, one file per agent shape), `health`
//!   (team heartbeats and their tally, SPEC §5), `plan/` (the decisions of refresh, reclaim and fan-in, and
//!   `recheck`: does a change still apply after a conflict), `text` (previews and escapes,
//!   SPEC §7), `time` (milliseconds, RFC 3339, durations), `activity` (is a quiet worker's
//!   tree busy: the verdict of two samples, SPEC §11), `stall` (what a quiet worker's tree
//!   waits on, SPEC §11), `explain` (the evidence behind a verdict, SPEC §13) and `launch`
//!   (`flatline run`'s documents, exit statuses and launcher guard, SPEC §12).
//! - `model/`: what the files say: the lenient framework, delegations, team documents.
//! - `sys/`: every `unsafe` and libc call, thin wrappers returning `io::Result`: `fd`, `pid`,
//!   `ids` (credentials of the owner's reader thread), `host` (clocks, limits, randomness,
//!   signal dispositions), `gate` (a child held between fork and exec until `run` lets it go).
//! - `fs/`: the file system beneath a run: `read` (descriptors, bounded reads that never follow
//!   a symlink), `meta` (what `fstat` says, whose word a document is, `ReadError`), `range`
//!   (sparse reads), `named` (paths documents name) read as their owner (`named::owner`),
//!   `write` (atomic checked writes) through `write::temp` files, `lock` (the run lock, with
//!   `lock::state_dir`, and `lock::pause`: every lock let go while flatline only waits),
//!   `group` (the lock group).
//! - `proc/`: the system's processes: `host` (flatline's own facts, the process table),
//!   `observe` (is the pid alive, and which process is it), `signal` (signals and waits),
//!   `activity` (a worker tree's CPU and I/O from one scan of `/proc`), `stall` (the `/proc`
//!   facts of a worker's tree for the stall diagnosis).
//! - `output/`: the formats (json, table, prometheus), `Format`, `diag` (problems on stderr),
//!   `records/` (the typed records: actions, details, fan-in, events, findings, problems, the
//!   `--summary` rows and tally), `metrics` (a run's prometheus gauges) and `watch` (what
//!   `status --watch` prints again).
//! - `shell/`: `session` (the one run loop: open, lock, resume, stop), `runs` (the scan:
//!   listing, process facts, stream facts, the walk over `delegations/`), `workers` (the
//!   heartbeat workers of the team layout), `state` (`.flatline/state.json` and its `resume`
//!   and `reported` sections), `commit` (the write-retry loop), `tree_kill` (a worker and its
//!   descendants signalled in one grace), `activity` (the samples of an invocation, kept in
//!   `.flatline/activity.json`, and the second look), `last_run` (each writing command's
//!   configuration, in `state.json`), `launch/` (`flatline run`: files, spawn, watch, relay,
//!   records); and the work of the commands, shared where two need it: `refresh` (one
//!   delegation's plan, its stream, the write), `reclaim/` (the phases, notes and ledger,
//!   records, the dry-run plan), `fan_in/` (cards, members, stamps), `health_events` (a
//!   run's heartbeat transitions), `explain` (one delegation's evidence), `finalize` (the
//!   operator's close) and `doctor` (with `doctor::unit`).
//! - `cmd/`: one module per subcommand, orchestration only, none naming another (a test in
//!   `core/purity.rs`): `status` (with `watch`: `status --watch`), `refresh`, `reclaim`,
//!   `fanin`, `health_events`, `beat`, `explain`, `run/` (launch, and how its worker ends),
//!   `sweep/` (its phases: scan, signal, fan-in, write, transitions; and `every`: `sweep
//!   --every`), and the operator's tools `doctor` (with `core::doctor`, `core::unit`,
//!   `fs::doctor`, `proc::doctor`, `shell::doctor`) and `finalize` (with `core::finalize`),
//!   SPEC §13.
//! - `cli/`: `commands` (the subcommands) and `flags` (the one flag table, in two parts),
//!   `parse`, `help`, `man`, `config`
//!   (the command line resolved against the environment), `complete` (shell completions).
//! - `interrupt` (the signals and the deadline that end a run early) and `exit` (the codes).

// `pub` only what the integration tests, fuzz targets and benches use (`cli`, `core`,
// `exit`, `model`, `display_path`), so that the compiler finds dead code in the rest.
pub mod cli;
mod cmd;
pub mod core;
pub mod exit;
mod fs;
mod interrupt;
pub mod model;
mod output;
mod proc;
mod shell;
mod sys;

pub use fs::display_path;

use cli::{Command, Mode};
use cmd::{beat, doctor, fanin, finalize, reclaim, refresh, status, sweep};
use exit::Exit;
use output::Diagnostics;
use std::ffi::OsString;
use std::io::Write;

/// Parses `args` (without the program name), runs the command and returns the exit status.
pub fn main_with_args<I>(args: I) -> Exit
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    // Signals first: a SIGTERM during start-up must already be a clean stop.
    let stop = match interrupt::Stop::install() {
        Ok(stop) => stop,
        Err(error) => {
            eprintln!("flatline: cannot install signal handlers: {error}");
            return Exit::FileProblem;
        }
    };
    let mut diag = Diagnostics::new(output::stderr_is_journal());
    let low = match cli::parse(args) {
        Ok(low) => low,
        Err(error) => return usage_error(&mut diag, &error.0),
    };
    let command = match low.mode() {
        Mode::Help(None) => return print(&cli::help_text()),
        Mode::Help(Some(command)) => return print(&cli::command_help_text(command)),
        Mode::Version => return print(&cli::version_text()),
        Mode::Man => return print(&cli::man_page()),
        Mode::Schema => return print(&output::schema::schema_text()),
        Mode::Completions(shell) => return print(&cli::completions(shell)),
        Mode::Usage => {
            // Bare `flatline`: a mistake more often than a question; usage on stderr, exit 2.
            let _ = std::io::stderr()
                .lock()
                .write_all(cli::usage_text().as_bytes());
            return Exit::Usage;
        }
        Mode::Run(command) => command,
    };
    let config = match cli::config::resolve(low, command, cli::config::stdout_is_terminal()) {
        Ok(config) => config,
        Err(error) => return usage_error(&mut diag, &error.0),
    };
    let stop = match config.deadline {
        // `sweep --every`: the deadline bounds each pass, not the service (cmd::sweep::every).
        Some(deadline) if config.sweep_every.is_none() => stop.with_deadline(deadline),
        _ => stop,
    };
    let exit = match command {
        Command::Status if config.watch.is_some() => status::watch::run(&config, &mut diag, &stop),
        Command::Status => status::run(&config, &mut diag, &stop),
        Command::Refresh => refresh::run(&config, &mut diag, &stop),
        Command::Reclaim => reclaim::run(&config, &mut diag, &stop),
        Command::HealthEvents => cmd::health_events::run(&config, &mut diag, &stop),
        Command::Beat => beat::run(&config, &mut diag, &stop),
        Command::FanIn => fanin::run(&config, &mut diag, &stop),
        Command::Sweep if config.sweep_every.is_some() => {
            sweep::every::run(&config, &mut diag, &stop)
        }
        Command::Sweep => sweep::run(&config, &mut diag, &stop),
        Command::Explain => cmd::explain::run(&config, &mut diag, &stop),
        Command::Run => cmd::run::run(&config, &mut diag, &stop),
        Command::Doctor => doctor::run(&config, &mut diag, &stop),
        Command::Finalize => finalize::run(&config, &mut diag, &stop),
    };
    say_deadline_passed(&config, &mut diag, exit);
    exit
}

/// A run the deadline ended always says so on stderr (SPEC §4). The scan says how far it
/// got when the deadline stops it there; a deadline noticed elsewhere (waiting for a lock,
/// for workers to exit, between phases) is said here.
fn say_deadline_passed(config: &cli::config::Config, diag: &mut Diagnostics, exit: Exit) {
    if exit != Exit::Deadline
        || diag
            .errors
            .iter()
            .any(|error| error.message.starts_with("deadline "))
    {
        return;
    }
    let deadline = config
        .deadline
        .map(|d| {
            crate::core::time::format_duration(
                crate::core::time::Millis::try_from(d.as_millis()).unwrap_or(0),
            )
        })
        .unwrap_or_default();
    diag.error(
        std::path::Path::new(""),
        &format!("deadline {deadline} passed; the rest waits for the next run"),
        Exit::Deadline,
    );
}

fn usage_error(diag: &mut Diagnostics, message: &str) -> Exit {
    diag.notice_usage(message);
    Exit::Usage
}

fn print(text: &str) -> Exit {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Exit::Ok,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(_) => Exit::FileProblem,
    }
}
