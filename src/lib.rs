//! flatline: a watchdog for the worker processes of AI-agent orchestrators.
//!
//! The crate is a pure core (lifecycle views, event digests, plans) and a thin imperative
//! shell (scan, proc, fs, output) around it; `main.rs` only parses, runs and exits.
//!
//! Where things live (the house is being moved into layers, issue 14; arrows point down):
//!
//! - `core/`: pure, and a unit test (`core/purity.rs`) keeps it so. `lifecycle` (the view of
//!   a delegation, SPEC §2), `identity` (the validated `Pid`, `/proc` parsing, the identity
//!   window, SPEC §3.1), `digest/` (event streams, one file per agent shape), `health`
//!   (team heartbeats, SPEC §5), `plan/` (the decisions of refresh, reclaim and fan-in),
//!   `text` (previews and escapes, SPEC §7), `time` (milliseconds, RFC 3339, durations).
//! - `model/`: what the files say: the lenient framework, delegations, team documents.
//! - `fs/`: the file system beneath a run: `read` (descriptors, bounded reads that never follow
//!   a symlink, named paths read as their owner), `write` (atomic checked writes, the lock).
//! - `proc/`: the system's processes: `host` (flatline's own facts, the process table),
//!   `observe` (is the pid alive, and which process is it), `signal` (signals and waits).
//! - `output/`: the formats (json, table, prometheus) and `diag` (problems on stderr).
//! - `cmd/`: the subcommands `status`, `refresh`, `reclaim` and `fanin` (each still with its
//!   own run loop, until `shell/` has the shared one).
//! - `shell/`: `commit` (the write-retry loop every writing command uses).
//! - `cli/`: `flags` (the one table of commands and flags), `parse`, `help`, `man`.
//! - Still flat, to move next: `scan`, `resume`, `runstate`, `reported`, the commands
//!   `team` (health-events), `beat` and `sweep`, `config`, `stop`, `exit`.

pub mod beat;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod core;
pub mod exit;
pub mod fs;
pub mod model;
pub mod output;
pub mod proc;
pub mod reported;
pub mod resume;
pub mod runstate;
pub mod scan;
pub mod shell;
pub mod stop;
pub mod sweep;
pub mod team;

use cli::{Command, Mode};
use cmd::{doctor, every, fanin, finalize, reclaim, refresh, status};
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
    let stop = match stop::Stop::install() {
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
    let config = match config::resolve(low, command, config::stdout_is_terminal()) {
        Ok(config) => config,
        Err(error) => return usage_error(&mut diag, &error.0),
    };
    let stop = match config.deadline {
        // `sweep --every`: the deadline bounds each pass, not the service (cmd::every).
        Some(deadline) if config.sweep_every.is_none() => stop.with_deadline(deadline),
        _ => stop,
    };
    let exit = match command {
        Command::Status => status::run(&config, &mut diag, &stop),
        Command::Refresh => refresh::run(&config, &mut diag, &stop),
        Command::Reclaim => reclaim::run(&config, &mut diag, &stop),
        Command::HealthEvents => team::run(&config, &mut diag, &stop),
        Command::Beat => beat::run(&config, &mut diag, &stop),
        Command::FanIn => fanin::run(&config, &mut diag, &stop),
        Command::Sweep if config.sweep_every.is_some() => every::run(&config, &mut diag, &stop),
        Command::Sweep => sweep::run(&config, &mut diag, &stop),
        Command::Doctor => doctor::run(&config, &mut diag, &stop),
        Command::Finalize => finalize::run(&config, &mut diag, &stop),
    };
    say_deadline_passed(&config, &mut diag, exit);
    exit
}

/// A run the deadline ended always says so on stderr (SPEC §4). The scan says how far it
/// got when the deadline stops it there; a deadline noticed elsewhere (waiting for a lock,
/// for workers to exit, between phases) is said here.
fn say_deadline_passed(config: &config::Config, diag: &mut Diagnostics, exit: Exit) {
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
