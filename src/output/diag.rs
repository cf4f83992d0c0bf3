//! Diagnostics: problems on stderr, one line each, kept for the json document and folded
//! into the exit status.

use super::ErrorEntry;
use crate::core::text::escape_control;
use crate::exit::Exit;
use std::io::{self, Write};
use std::path::Path;

/// How a problem line is classed for the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

/// Problems found during a run: printed to stderr at once, kept for the json document,
/// and folded into the exit status.
#[derive(Debug)]
pub struct Diagnostics {
    pub exit: Exit,
    pub errors: Vec<ErrorEntry>,
    journal: bool,
    quiet_warnings: bool,
}

impl Diagnostics {
    pub fn new(journal: bool) -> Diagnostics {
        Diagnostics {
            exit: Exit::Ok,
            errors: Vec::new(),
            journal,
            quiet_warnings: false,
        }
    }

    fn emit(&mut self, level: Level, path: &str, message: &str) {
        let prefix = match (self.journal, level) {
            (false, _) => "",
            (true, Level::Error) => "<3>",
            (true, Level::Warning) => "<4>",
            (true, Level::Notice) => "<6>",
        };
        let line = if path.is_empty() {
            format!("{prefix}flatline: {}\n", escape_control(message))
        } else {
            format!(
                "{prefix}flatline: {}: {}\n",
                escape_control(path),
                escape_control(message)
            )
        };
        // A closed stderr must not stop the work either.
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }

    /// A problem with one file or directory: one line, and the exit status it implies.
    pub fn error(&mut self, path: &Path, message: &str, exit: Exit) {
        let path = path.to_string_lossy();
        self.emit(Level::Error, &path, message);
        self.errors.push(ErrorEntry {
            path: path.into_owned(),
            message: message.to_string(),
        });
        self.exit.raise(exit);
    }

    /// Something worth knowing that changes no exit status.
    pub fn warning(&mut self, path: &Path, message: &str) {
        if !self.quiet_warnings {
            self.emit(Level::Warning, &path.to_string_lossy(), message);
        }
    }

    pub fn notice(&mut self, message: &str) {
        if !self.quiet_warnings {
            self.emit(Level::Notice, "", message);
        }
    }

    /// A usage error: what is wrong and where to look.
    pub fn notice_usage(&mut self, message: &str) {
        self.emit(Level::Error, "", message);
        self.emit(Level::Error, "", "see 'flatline --help'");
    }

    pub fn raise(&mut self, exit: Exit) {
        self.exit.raise(exit);
    }
}

/// True when stderr is the journal: `JOURNAL_STREAM` names stderr's device and inode.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    use std::os::fd::AsFd;
    match crate::fs::fstat(io::stderr().as_fd()) {
        Ok(meta) => meta.dev == dev && meta.ino == ino,
        Err(_) => false,
    }
}

/// A write to stdout failed for another reason than a closed pipe: say so, stop.
pub fn stdout_failed(diag: &mut Diagnostics, error: &std::io::Error) -> Exit {
    diag.error(
        Path::new("stdout"),
        &crate::fs::io_message(error),
        Exit::FileProblem,
    );
    Exit::FileProblem
}
