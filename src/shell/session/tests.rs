//! The run loop over scratch run directories (no stop fires: `Stop::never`).

use super::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Scratch run directories under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(runs: &[&str]) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "flatline-session-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        for run in runs {
            std::fs::create_dir_all(path.join(run).join("delegations")).unwrap();
        }
        Scratch(path)
    }

    fn run(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(args: &[&str], runs: &[PathBuf]) -> Config {
    let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    all.extend(runs.iter().map(|run| run.as_os_str().to_os_string()));
    let low = crate::cli::parse(all).unwrap();
    let command = low.command.unwrap();
    crate::cli::config::resolve(low, command, false).unwrap()
}

fn names(visited: &[PathBuf]) -> Vec<String> {
    visited
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_dry_run_visits_every_run_in_order_without_a_lock_and_creates_nothing() {
    let scratch = Scratch::new(&["a", "b"]);
    let paths = vec![scratch.run("a"), scratch.run("b")];
    let config = config(&["refresh", "--dry-run"], &paths);
    let mut diag = Diagnostics::new(false);
    let runs = scan::open_runs(&config.run_dirs, &mut diag);
    let mut visited = Vec::new();
    let result = for_each_run(
        &runs,
        Access::Write,
        &config,
        &mut diag,
        &Stop::never(),
        |session, _| {
            assert!(session.lock.is_none());
            assert!(session.resume().start.is_none());
            session.with_state_dir(|dir| assert!(dir.is_none(), "no .flatline/ yet"));
            visited.push(session.run.path.clone());
            Ok(())
        },
    );
    assert_eq!(result, Ok(()));
    assert_eq!(names(&visited), vec!["a", "b"]);
    assert!(!Path::new(&scratch.run("a").join(".flatline")).exists());
    assert_eq!(diag.exit, Exit::Ok);
}

#[test]
fn a_writing_run_holds_the_lock_and_its_state_dir_while_it_is_visited() {
    let scratch = Scratch::new(&["a"]);
    let paths = vec![scratch.run("a")];
    let config = config(&["refresh"], &paths);
    let mut diag = Diagnostics::new(false);
    let runs = scan::open_runs(&config.run_dirs, &mut diag);
    let mut visits = 0;
    let result = for_each_run(
        &runs,
        Access::Write,
        &config,
        &mut diag,
        &Stop::never(),
        |session, _| {
            visits += 1;
            assert!(session.lock.is_some());
            session.with_state_dir(|dir| assert!(dir.is_some()));
            Ok(())
        },
    );
    assert_eq!(result, Ok(()));
    assert_eq!(visits, 1);
    assert!(scratch.run("a").join(".flatline/lock").is_file());
}

#[test]
fn a_reading_command_takes_no_lock_and_the_first_error_ends_the_loop() {
    let scratch = Scratch::new(&["a", "b"]);
    let paths = vec![scratch.run("a"), scratch.run("b")];
    let config = config(&["status"], &paths);
    let mut diag = Diagnostics::new(false);
    let runs = scan::open_runs(&config.run_dirs, &mut diag);
    let mut visited = Vec::new();
    let result = for_each_run(
        &runs,
        Access::Read,
        &config,
        &mut diag,
        &Stop::never(),
        |session, _| {
            assert!(session.lock.is_none());
            visited.push(session.run.path.clone());
            Err(Exit::Deadline)
        },
    );
    assert_eq!(result, Err(Exit::Deadline));
    assert_eq!(
        names(&visited),
        vec!["a"],
        "the loop ends at the first stop"
    );
    assert!(!scratch.run("a").join(".flatline").exists());
}

/// Work with something to do before each lock.
struct Counting<'a> {
    before: &'a std::cell::Cell<usize>,
    runs: &'a std::cell::Cell<usize>,
}

impl<'r> Visit<'r> for Counting<'_> {
    fn before_lock(&mut self) {
        assert_eq!(
            self.before.get(),
            self.runs.get(),
            "before each run's lock, once"
        );
        self.before.set(self.before.get() + 1);
    }

    fn run(&mut self, _: Session<'r>, _: &mut Diagnostics) -> Result<(), Exit> {
        self.runs.set(self.runs.get() + 1);
        Ok(())
    }
}

#[test]
fn work_is_called_before_each_lock() {
    let scratch = Scratch::new(&["a", "b"]);
    let paths = vec![scratch.run("a"), scratch.run("b")];
    let config = config(&["sweep", "--dry-run"], &paths);
    let mut diag = Diagnostics::new(false);
    let runs = scan::open_runs(&config.run_dirs, &mut diag);
    let (before, visited) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let work = Counting {
        before: &before,
        runs: &visited,
    };
    let result = visit_runs(
        &runs,
        Access::Write,
        &config,
        &mut diag,
        &Stop::never(),
        work,
    );
    assert_eq!(result, Ok(()));
    assert_eq!((before.get(), visited.get()), (2, 2));
}
