//! With `--attention`, `status` prints the problems of each run as records too (SPEC §13).

use crate::output::{Diagnostics, ErrorEntry, Output, PathText, stdout_failed};
use serde::Serialize;
use std::path::Path;

/// With `--attention`, a file that could not be read or used is a record too (SPEC §13):
/// `kind: "problem"`, so that a pipe sees everything that needs a person.
#[derive(Debug, Serialize)]
pub struct ProblemRecord<'a> {
    pub kind: &'static str,
    pub run_dir: PathText<'a>,
    pub path: &'a str,
    pub message: &'a str,
}

impl<'a> ProblemRecord<'a> {
    pub fn new(run_dir: &'a Path, path: &'a str, message: &'a str) -> ProblemRecord<'a> {
        ProblemRecord {
            kind: "problem",
            run_dir: PathText(run_dir),
            path,
            message,
        }
    }
}

/// With `--attention`, a run lock held across runs as a problem record.
pub(crate) fn print_lock_held(
    run_dir: &Path,
    message: &str,
    output: &mut Output,
    diag: &mut Diagnostics,
) {
    let lock = run_dir
        .join(".flatline/lock")
        .to_string_lossy()
        .into_owned();
    if let Err(error) = output.record(&ProblemRecord::new(run_dir, &lock, message)) {
        stdout_failed(diag, &error);
    }
}

/// The problems one run reported on stderr, printed as records.
pub(crate) fn print_problems(
    run_dir: &Path,
    problems: &[ErrorEntry],
    output: &mut Output,
    diag: &mut Diagnostics,
) {
    for problem in problems {
        let record = ProblemRecord::new(run_dir, &problem.path, &problem.message);
        if let Err(error) = output.record(&record) {
            stdout_failed(diag, &error);
            return;
        }
    }
}
