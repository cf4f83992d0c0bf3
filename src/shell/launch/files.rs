//! The files of a launch: the run directory and its `delegations/` and `raw-events/`, the
//! worker's stream and stderr file (beneath the run, never through a symlink, never a
//! FIFO), and the queued delegation placed without replacing anything (SPEC §12).

use super::LaunchError;
use crate::fs::{self, Dir, FileMeta};
use crate::shell::runs::Run;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Directories `run` creates (the umask applies).
const DIR_MODE: u32 = 0o755;
/// The delegation and a new stream: the run directory's group may read them.
pub const FILE_MODE: u32 = 0o640;
const NEW_STREAM_FLAGS: libc::c_int = libc::O_RDWR
    | libc::O_APPEND
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOFOLLOW
    | libc::O_NOCTTY
    | libc::O_CLOEXEC;
/// An existing file named on purpose: never through a symlink, and a FIFO must not block
/// the open (it is refused by the fstat that follows).
const EXISTING_FLAGS: libc::c_int = libc::O_RDWR
    | libc::O_APPEND
    | libc::O_NOFOLLOW
    | libc::O_NONBLOCK
    | libc::O_NOCTTY
    | libc::O_CLOEXEC;

/// The run directory, opened, with `delegations/` and `raw-events/` made when absent.
#[derive(Debug)]
pub struct Prepared {
    pub run: Run,
    pub delegations: Dir,
    pub raw_events: Dir,
    /// The run directory's group: the delegation's and a new stream's.
    pub gid: u32,
}

impl Prepared {
    pub fn prepare(path: &Path) -> Result<Prepared, LaunchError> {
        let failed = |message: String| LaunchError::failed(path, message);
        let dir = Dir::open(path).map_err(|error| match error.raw_os_error() {
            Some(libc::ENOENT) => LaunchError::usage(path, "no such run directory".into()),
            Some(libc::ENOTDIR) => LaunchError::usage(path, "not a directory".into()),
            _ => failed(fs::io_message(&error)),
        })?;
        let gid = dir.meta().map_err(|e| failed(fs::io_message(&e)))?.gid;
        let sub = |name: &str| {
            fs::ensure_dir(&dir, OsStr::new(name), DIR_MODE).map_err(|error| {
                let message = match error.raw_os_error() {
                    Some(libc::ELOOP) => "is a symlink, refused".to_string(),
                    Some(libc::ENOTDIR) => "not a directory".to_string(),
                    _ => fs::io_message(&error),
                };
                LaunchError::failed(&path.join(name), message)
            })
        };
        let delegations = sub("delegations")?;
        let raw_events = sub("raw-events")?;
        let real_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(Prepared {
            run: Run {
                path: path.to_path_buf(),
                root: fs::RunRoot { dir, real_path },
            },
            delegations,
            raw_events,
            gid,
        })
    }
}

/// The worker's stream, open for appending (its stdout) and for reading (the digest).
#[derive(Debug)]
pub struct StreamFile {
    pub file: File,
    pub meta: FileMeta,
    /// The path beneath the run directory, as the delegation records it.
    pub rel: PathBuf,
    /// `raw-events/<id>.jsonl`, created by this `run` (not a `--stream` named on purpose).
    created: Option<OsString>,
}

impl Prepared {
    /// The stream: `raw-events/<id>.jsonl`, which must be new, or `--stream`, which may
    /// exist when it is a regular file with one link of this user.
    pub fn open_stream(&self, id: &str, given: Option<&Path>) -> Result<StreamFile, LaunchError> {
        let (rel, file, meta, created) = match given {
            Some(path) => {
                let rel = self.beneath(path)?;
                let (file, meta) = self.open_beneath(&rel, true)?;
                (rel, file, meta, None)
            }
            None => {
                let name = OsString::from(format!("{id}.jsonl"));
                let rel = Path::new("raw-events").join(&name);
                let (file, meta) =
                    open_in(&self.raw_events, &name, &self.run.path.join(&rel), false)?;
                (rel, file, meta, Some(name))
            }
        };
        if fs::effective_uid() == meta.uid {
            let _ = std::os::unix::fs::fchown(&file, None, Some(self.gid));
        }
        Ok(StreamFile {
            file,
            meta,
            rel,
            created,
        })
    }

    /// A `run` that stops before its queued record is placed takes back the stream it
    /// created, so that the same `--id` can be run again (an existing stream is a usage
    /// error). Only the empty file it made goes; a `--stream` named on purpose stays.
    pub fn discard_stream(&self, stream: &StreamFile) {
        if let Some(name) = &stream.created {
            let _ = fs::remove_created(&self.raw_events, name, &stream.meta);
        }
    }

    /// `--stderr FILE`: created or appended to, under the same rules.
    pub fn open_stderr(&self, given: &Path) -> Result<File, LaunchError> {
        let rel = self.beneath(given)?;
        self.open_beneath(&rel, true).map(|(file, _)| file)
    }

    /// `path` as a relative path beneath the run directory: an absolute one must lie beneath
    /// it; `..` is refused.
    fn beneath(&self, path: &Path) -> Result<PathBuf, LaunchError> {
        let outside = || {
            LaunchError::usage(
                path,
                "must lie beneath the run directory (--run-dir)".into(),
            )
        };
        let rel = if path.is_absolute() {
            path.strip_prefix(&self.run.root.real_path)
                .or_else(|_| path.strip_prefix(&self.run.path))
                .map_err(|_| outside())?
                .to_path_buf()
        } else {
            path.to_path_buf()
        };
        let mut clean = PathBuf::new();
        for component in rel.components() {
            match component {
                Component::Normal(name) => clean.push(name),
                Component::CurDir => {}
                _ => return Err(outside()),
            }
        }
        if clean.as_os_str().is_empty() {
            return Err(outside());
        }
        Ok(clean)
    }

    /// Opens `rel` beneath the run, walking its directories without following a symlink.
    fn open_beneath(&self, rel: &Path, existing_ok: bool) -> Result<(File, FileMeta), LaunchError> {
        let shown = self.run.path.join(rel);
        let names: Vec<&OsStr> = rel.iter().collect();
        let Some((last, parents)) = names.split_last() else {
            return Err(LaunchError::usage(&shown, "not a file name".into()));
        };
        let mut held: Option<Dir> = None;
        for name in parents {
            let current = held.as_ref().unwrap_or(&self.run.root.dir);
            let next = current.open_child(name).map_err(|error| {
                let message = match error.raw_os_error() {
                    Some(libc::ELOOP) => {
                        format!("{} is a symlink, refused", name.to_string_lossy())
                    }
                    _ => fs::io_message(&error),
                };
                LaunchError::usage(&shown, message)
            })?;
            held = Some(next.ok_or_else(|| {
                LaunchError::usage(&shown, "its directory does not exist".into())
            })?);
        }
        let dir = held.as_ref().unwrap_or(&self.run.root.dir);
        open_in(dir, last, &shown, existing_ok)
    }
}

/// Creates `name` in `dir` (`O_EXCL`); an existing one is refused unless `existing_ok`,
/// and then it must be a regular file with one link owned by this user.
fn open_in(
    dir: &Dir,
    name: &OsStr,
    shown: &Path,
    existing_ok: bool,
) -> Result<(File, FileMeta), LaunchError> {
    let cname = CString::new(name.as_bytes())
        .map_err(|_| LaunchError::usage(shown, "the name contains a NUL byte".into()))?;
    let fd = match fs::openat(dir.fd(), &cname, NEW_STREAM_FLAGS, FILE_MODE) {
        Ok(fd) => fd,
        Err(error) if error.raw_os_error() == Some(libc::EEXIST) && existing_ok => {
            fs::openat(dir.fd(), &cname, EXISTING_FLAGS, 0).map_err(|e| open_error(shown, &e))?
        }
        Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {
            return Err(LaunchError::usage(
                shown,
                "already exists (name it with --stream to append to it)".into(),
            ));
        }
        Err(error) => return Err(open_error(shown, &error)),
    };
    let file = File::from(fd);
    let meta = fs::fstat(std::os::fd::AsFd::as_fd(&file))
        .map_err(|error| LaunchError::failed(shown, fs::io_message(&error)))?;
    if !meta.is_regular() {
        return Err(LaunchError::usage(
            shown,
            format!("is {}, not a regular file, refused", meta.kind()),
        ));
    }
    if meta.nlink != 1 {
        return Err(LaunchError::usage(
            shown,
            format!("has {} hard links, refused", meta.nlink),
        ));
    }
    if meta.uid != fs::effective_uid() {
        return Err(LaunchError::usage(
            shown,
            format!(
                "belongs to uid {}, not to flatline run's user, refused",
                meta.uid
            ),
        ));
    }
    Ok((file, meta))
}

fn open_error(shown: &Path, error: &io::Error) -> LaunchError {
    match error.raw_os_error() {
        Some(libc::ELOOP) => LaunchError::usage(shown, "is a symlink, refused".into()),
        Some(libc::ENXIO) | Some(libc::EISDIR) => {
            LaunchError::usage(shown, "is not a regular file, refused".into())
        }
        _ => LaunchError::failed(shown, fs::io_message(error)),
    }
}

impl Prepared {
    /// Whether `delegations/<name>` is taken (by anything at all).
    pub fn delegation_exists(&self, name: &OsStr) -> bool {
        fs::lstatat(self.delegations.fd(), name).is_ok()
    }

    /// fsync of `delegations/`: makes the queued and the running record's renames durable
    /// at once. A failure is said on stderr; the worker keeps running.
    pub fn sync_delegations(&self) -> Result<(), LaunchError> {
        fs::sync_dir(&self.delegations).map_err(|error| {
            LaunchError::failed(&self.run.path.join("delegations"), error.to_string())
        })
    }

    /// Places the queued delegation with `renameat2(RENAME_NOREPLACE)`, under the run lock
    /// the caller holds (`_held`).
    pub fn place_queued(
        &self,
        name: &OsStr,
        bytes: &[u8],
        _held: &fs::RunLock,
    ) -> Result<(), LaunchError> {
        let path = self.delegations.join(name);
        // The document's data is fsynced before its rename: a power loss never leaves a
        // zero-length document under the new name. The rename is made durable with the
        // running record's, by one directory fsync (`sync_delegations`): until then the
        // worker has not run (SPEC §12; BENCHMARKS.md, `flatline run`).
        match fs::create_new(&self.delegations, name, bytes, FILE_MODE, Some(self.gid)) {
            Ok(()) => Ok(()),
            Err(fs::StoreError::Io(error)) if error.kind() == io::ErrorKind::AlreadyExists => Err(
                LaunchError::usage(&path, "a delegation with this id already exists".into()),
            ),
            Err(error) => Err(LaunchError::failed(&path, error.to_string())),
        }
    }
}
