//! store: atomic, checked, durable writes beneath a run directory, and the run lock.
//!
//! Every write goes through a directory descriptor and a single file name, never a path
//! string, and never through a symlink (SPEC §4). A replaced file gets a temp file
//! `.<name>.flatline.<pid>.tmp` in the same directory carrying the original's owner, group
//! and mode; it is fsynced, the original is read again and compared with what the caller
//! read, and only then renamed over it. A failed call never leaves its temp file behind.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::fs::{File, Permissions, TryLockError};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::files::{self, Dir, FileMeta};

/// What went wrong with a write; `Display` gives the "what is wrong" part of
/// `flatline: PATH: what is wrong` (no path inside).
#[derive(Debug)]
pub enum StoreError {
    Symlink,
    NotRegular(&'static str),
    MultipleLinks(u64),
    KeepOwnership(io::Error),
    Io(io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Symlink => f.write_str("is a symlink, refused"),
            StoreError::NotRegular(kind) => write!(f, "is {kind}, not a regular file, refused"),
            StoreError::MultipleLinks(n) => write!(f, "has {n} hard links, not replaced"),
            StoreError::KeepOwnership(error) => write!(
                f,
                "cannot keep its owner, group and mode ({}), not replaced",
                files::io_message(error)
            ),
            StoreError::Io(error) => f.write_str(&files::io_message(error)),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<io::Error> for StoreError {
    fn from(error: io::Error) -> Self {
        StoreError::Io(error)
    }
}

/// Outcome of a checked replace.
#[derive(Debug, PartialEq, Eq)]
pub enum Replaced {
    Written,
    /// The file no longer holds the bytes the caller read: nothing was written. Carries the
    /// current bytes so the caller can recompute (the caller retries up to 3 times, then
    /// reports a conflict).
    Changed(Vec<u8>),
}

/// How an existing file is opened for reading: never through a symlink, never blocking on a
/// FIFO, never acquiring a controlling terminal.
const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
const TEMP_FLAGS: libc::c_int =
    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
const TEMP_MODE: u32 = 0o600;
/// O_NONBLOCK and O_NOCTTY on top of the documented flags: a FIFO planted under the name
/// must be refused (ENXIO without a reader, fstat with one), never waited on.
const APPEND_FLAGS: libc::c_int = libc::O_WRONLY
    | libc::O_APPEND
    | libc::O_CREAT
    | libc::O_NOFOLLOW
    | libc::O_NONBLOCK
    | libc::O_NOCTTY
    | libc::O_CLOEXEC;
const APPEND_MODE: u32 = 0o644;
const PERMISSION_BITS: u32 = 0o7777;

/// Replaces the existing regular file `name` of `dir` with `new`, only if it still holds
/// exactly `expected`. Does not fsync the directory: callers call `sync_dir` once per batch.
pub fn replace_checked(
    dir: &Dir,
    name: &OsStr,
    expected: &[u8],
    new: &[u8],
) -> Result<Replaced, StoreError> {
    #[cfg(debug_assertions)]
    {
        let mut interfere = || {
            if let Some(interference) = test_hook::from_env() {
                interference.apply(dir, name);
            }
        };
        replace_checked_with(dir, name, expected, new, &mut interfere)
    }
    #[cfg(not(debug_assertions))]
    {
        replace_checked_with(dir, name, expected, new, &mut || {})
    }
}

/// `replace_checked` with a hook that runs after the temp file is durable and just before the
/// original is read again, where another writer's change must be detected.
pub(crate) fn replace_checked_with(
    dir: &Dir,
    name: &OsStr,
    expected: &[u8],
    new: &[u8],
    before_compare: &mut dyn FnMut(),
) -> Result<Replaced, StoreError> {
    let cname = entry_name(name)?;
    // The owner, group and mode to keep, from lstat: the original is opened only once, for
    // the comparison below.
    let meta = lstat_settled(dir, name)?;
    check_replaceable(&meta)?;
    let temp = TempFile::create(dir, name)?;
    temp.keep_ownership(&meta)?;
    temp.fill(new)?;

    before_compare();

    // A file that vanished is Io(NotFound); one that became a symlink or gained a link is
    // refused as at the start. Either way the temp file goes with `temp`.
    let (current, now) = open_existing(dir, name, &cname)?;
    let mut bytes = Vec::with_capacity(expected.len().saturating_add(1));
    File::from(current)
        .take(files::MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    let too_long = bytes.len() > files::MAX_DOCUMENT_BYTES;
    if too_long || now.dev != meta.dev || now.ino != meta.ino || bytes != expected {
        return Ok(Replaced::Changed(bytes));
    }
    temp.rename_over(&cname)?;
    Ok(Replaced::Written)
}

/// Atomically writes a file flatline owns (state.json, the --output file, a heartbeat file):
/// temp + fsync + rename + directory fsync. An existing target must be a regular file with
/// one link, and its mode, owner and group are kept; a new one gets `mode_if_new`.
pub fn write_atomic(
    dir: &Dir,
    name: &OsStr,
    content: &[u8],
    mode_if_new: u32,
) -> Result<(), StoreError> {
    let cname = entry_name(name)?;
    // lstat is enough here: nothing is read from the target, and rename replaces the entry
    // whatever it has become, never following it.
    let existing = match files::lstatat(dir.fd(), name) {
        Ok(meta) => {
            check_replaceable(&meta)?;
            Some(meta)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(StoreError::Io(error)),
    };
    let temp = TempFile::create(dir, name)?;
    match &existing {
        Some(meta) => temp.keep_ownership(meta)?,
        None => temp
            .file
            .set_permissions(Permissions::from_mode(mode_if_new & PERMISSION_BITS))?,
    }
    temp.fill(content)?;
    temp.rename_over(&cname)?;
    sync_dir(dir)
}

/// Appends complete lines (each must end in '\n') to `name` of `dir` (the run's
/// events.jsonl): one `write(2)` per line on a regular file with one link, then one fsync.
/// Nothing is opened or created when `lines` is empty.
pub fn append_lines(dir: &Dir, name: &OsStr, lines: &[Vec<u8>]) -> Result<(), StoreError> {
    if lines.is_empty() {
        return Ok(());
    }
    if lines.iter().any(|line| line.last() != Some(&b'\n')) {
        return Err(StoreError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a line to append does not end in a newline",
        )));
    }
    let cname = entry_name(name)?;
    // Refuse a non-regular entry before the open: opening a device for writing can have side
    // effects of its own.
    let created = match files::lstatat(dir.fd(), name) {
        Ok(meta) => {
            check_replaceable(&meta)?;
            false
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => true,
        Err(error) => return Err(StoreError::Io(error)),
    };
    let fd = files::openat(dir.fd(), &cname, APPEND_FLAGS, APPEND_MODE).map_err(open_error)?;
    check_replaceable(&files::fstat(fd.as_fd())?)?;
    let mut file = File::from(fd);
    for line in lines {
        let written = loop {
            match file.write(line) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if written != line.len() {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write ({written} of {} bytes)", line.len()),
            )));
        }
    }
    file.sync_all()?;
    if created {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsync of a directory descriptor, which makes the renames and creations in it durable.
pub fn sync_dir(dir: &Dir) -> Result<(), StoreError> {
    // SAFETY: `dir.fd()` is a live descriptor borrowed for the duration of the call.
    let rc = unsafe { libc::fsync(dir.fd().as_raw_fd()) };
    if rc != 0 {
        return Err(StoreError::Io(io::Error::last_os_error()));
    }
    Ok(())
}

/// Removes flatline's own leftover temp files (`.<name>.flatline.<pid>.tmp`) among
/// `entries` of `dir`. Only called while the run lock is held, when no other flatline can be
/// writing there. Anything that is not a regular file is left alone; nothing is followed.
pub fn remove_stale_temps(dir: &Dir, entries: &[files::Entry]) -> Result<usize, StoreError> {
    let mut removed = 0;
    for entry in entries {
        if !is_temp_name(&entry.name) {
            continue;
        }
        match files::lstatat(dir.fd(), &entry.name) {
            Ok(meta) if meta.is_regular() => {}
            Ok(_) => continue,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(StoreError::Io(error)),
        }
        let cname = entry_name(&entry.name)?;
        match unlinkat(dir.fd(), &cname) {
            Ok(()) => removed += 1,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(StoreError::Io(error)),
        }
    }
    Ok(removed)
}

/// The name of the temp file for `name`: `.<name>.flatline.<pid>.tmp`.
pub fn temp_name(name: &OsStr) -> OsString {
    let mut temp = Vec::with_capacity(name.len() + 32);
    temp.push(b'.');
    temp.extend_from_slice(name.as_bytes());
    temp.extend_from_slice(format!(".flatline.{}.tmp", std::process::id()).as_bytes());
    OsString::from_vec(temp)
}

/// Whether `name` has the shape of `temp_name` for some file name and some pid.
pub fn is_temp_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    let Some(inner) = bytes
        .strip_prefix(b".")
        .and_then(|rest| rest.strip_suffix(b".tmp"))
    else {
        return false;
    };
    const MARK: &[u8] = b".flatline.";
    let Some(at) = inner.windows(MARK.len()).rposition(|window| window == MARK) else {
        return false;
    };
    let pid = &inner[at + MARK.len()..];
    at > 0 && !pid.is_empty() && pid.iter().all(u8::is_ascii_digit)
}

/// Why the run lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock (exit 75).
    Busy,
    /// `.flatline` or its `lock` exists with another owner, another mode, as a symlink, with
    /// several links, or is not a directory/regular file: the run is refused (exit 4).
    Unusable(String),
    /// `stop()` returned true while waiting (a signal or the deadline arrived).
    Stopped,
    Io(io::Error),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Busy => f.write_str("another flatline holds .flatline/lock"),
            LockError::Unusable(what) => f.write_str(what),
            LockError::Stopped => f.write_str("stopped while waiting for .flatline/lock"),
            LockError::Io(error) => f.write_str(&files::io_message(error)),
        }
    }
}

impl std::error::Error for LockError {}

impl From<io::Error> for LockError {
    fn from(error: io::Error) -> Self {
        LockError::Io(error)
    }
}

/// Holds `RUN_DIR/.flatline/lock` (exclusive flock) until dropped.
#[derive(Debug)]
pub struct RunLock {
    state_dir: Dir,
    /// Closing the descriptor (on drop) releases the flock.
    _lock: File,
}

impl RunLock {
    /// The `.flatline` directory (for state.json), opened without following symlinks.
    pub fn state_dir(&self) -> &Dir {
        &self.state_dir
    }

    /// Lets go of the flock while flatline only waits (a grace, a kill wait; SPEC §4). The
    /// descriptors stay open, so `reacquire` takes the same lock file again.
    pub fn release(&mut self) -> io::Result<()> {
        self._lock.unlock()
    }

    /// Takes the flock again after `release`, polling as `lock_run` does until `wait` has
    /// passed (`Busy`) or `stop()` says to stop (`Stopped`).
    pub fn reacquire(
        &mut self,
        wait: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), LockError> {
        let deadline = Instant::now() + wait.unwrap_or(Duration::ZERO);
        let mut pause = LOCK_POLL_FIRST;
        loop {
            match self._lock.try_lock() {
                Ok(()) => return Ok(()),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(error)) if error.kind() == io::ErrorKind::Interrupted => {
                    continue;
                }
                Err(TryLockError::Error(error)) => return Err(LockError::Io(error)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LockError::Busy);
            }
            if stop() {
                return Err(LockError::Stopped);
            }
            std::thread::sleep(pause.min(left));
            pause = (pause + LOCK_POLL_STEP).min(LOCK_POLL_MAX);
        }
    }
}

const STATE_DIR: &str = ".flatline";
const LOCK_FILE: &str = "lock";
const STATE_DIR_MODE: u32 = 0o700;
const LOCK_MODE: u32 = 0o600;
const LOCK_POLL_FIRST: Duration = Duration::from_millis(20);
const LOCK_POLL_STEP: Duration = Duration::from_millis(10);
const LOCK_POLL_MAX: Duration = Duration::from_millis(50);

/// Creates `RUN_DIR/.flatline/` (0700) and its `lock` (0600) owned by the effective user
/// when missing, refuses them when they exist otherwise, then takes an exclusive flock.
/// Without `wait` a held lock is `Busy` at once; with `wait` it polls every 20–50 ms until
/// the wait has passed (`Busy`) or `stop()` says to stop (`Stopped`). Never blocks forever.
pub fn lock_run(
    run: &Dir,
    wait: Option<Duration>,
    stop: &dyn Fn() -> bool,
) -> Result<RunLock, LockError> {
    let euid = files::effective_uid();
    let state_dir = open_state_dir(run, euid)?;
    let lock = open_lock_file(&state_dir, euid)?;
    let deadline = wait.map(|wait| Instant::now() + wait);
    let mut pause = LOCK_POLL_FIRST;
    loop {
        match lock.try_lock() {
            Ok(()) => {
                return Ok(RunLock {
                    state_dir,
                    _lock: lock,
                });
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(error)) if error.kind() == io::ErrorKind::Interrupted => {
                continue;
            }
            Err(TryLockError::Error(error)) => return Err(LockError::Io(error)),
        }
        let Some(deadline) = deadline else {
            return Err(LockError::Busy);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LockError::Busy);
        }
        if stop() {
            return Err(LockError::Stopped);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause + LOCK_POLL_STEP).min(LOCK_POLL_MAX);
    }
}

fn open_state_dir(run: &Dir, euid: u32) -> Result<Dir, LockError> {
    let cname = entry_name(OsStr::new(STATE_DIR))?;
    let created = match mkdirat(run.fd(), &cname, STATE_DIR_MODE) {
        Ok(()) => true,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => false,
        Err(error) => return Err(LockError::Io(error)),
    };
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = match files::openat(run.fd(), &cname, flags, 0) {
        Ok(fd) => fd,
        Err(error) if matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            return Err(match files::lstatat(run.fd(), OsStr::new(STATE_DIR)) {
                Ok(meta) => unusable_kind(STATE_DIR, &meta, "a directory"),
                Err(_) => LockError::Io(error),
            });
        }
        Err(error) => return Err(LockError::Io(error)),
    };
    if created {
        // The umask may have taken bits from mkdir's mode; set it exactly.
        File::from(fd.try_clone()?).set_permissions(Permissions::from_mode(STATE_DIR_MODE))?;
    }
    let meta = files::fstat(fd.as_fd())?;
    if !meta.is_dir() {
        return Err(unusable_kind(STATE_DIR, &meta, "a directory"));
    }
    check_owner_and_mode(STATE_DIR, &meta, euid, STATE_DIR_MODE)?;
    Ok(Dir::from_fd(fd, run.join(OsStr::new(STATE_DIR))))
}

fn open_lock_file(state_dir: &Dir, euid: u32) -> Result<File, LockError> {
    const WHAT: &str = ".flatline/lock";
    let cname = entry_name(OsStr::new(LOCK_FILE))?;
    let created = files::openat(
        state_dir.fd(),
        &cname,
        READ_FLAGS | libc::O_CREAT | libc::O_EXCL,
        LOCK_MODE,
    );
    let (fd, created) = match created {
        Ok(fd) => (fd, true),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            // Refuse what is not a regular file before opening it at all.
            let meta = files::lstatat(state_dir.fd(), OsStr::new(LOCK_FILE))?;
            if !meta.is_regular() {
                return Err(unusable_kind(WHAT, &meta, "a regular file"));
            }
            match files::openat(state_dir.fd(), &cname, READ_FLAGS, 0) {
                Ok(fd) => (fd, false),
                Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(LockError::Unusable(format!("{WHAT} is a symlink, refused")));
                }
                Err(error) => return Err(LockError::Io(error)),
            }
        }
        Err(error) => return Err(LockError::Io(error)),
    };
    let file = File::from(fd);
    if created {
        file.set_permissions(Permissions::from_mode(LOCK_MODE))?;
    }
    let meta = files::fstat(file.as_fd())?;
    if !meta.is_regular() {
        return Err(unusable_kind(WHAT, &meta, "a regular file"));
    }
    if meta.nlink != 1 {
        return Err(LockError::Unusable(format!(
            "{WHAT} has {} hard links, refused",
            meta.nlink
        )));
    }
    check_owner_and_mode(WHAT, &meta, euid, LOCK_MODE)?;
    Ok(file)
}

fn unusable_kind(what: &str, meta: &FileMeta, wanted: &str) -> LockError {
    if meta.mode & libc::S_IFMT == libc::S_IFLNK {
        LockError::Unusable(format!("{what} is a symlink, refused"))
    } else {
        LockError::Unusable(format!("{what} is {}, not {wanted}, refused", meta.kind()))
    }
}

fn check_owner_and_mode(
    what: &str,
    meta: &FileMeta,
    euid: u32,
    mode: u32,
) -> Result<(), LockError> {
    if meta.uid != euid {
        return Err(LockError::Unusable(format!(
            "{what} is owned by uid {}, not by uid {euid}",
            meta.uid
        )));
    }
    let actual = meta.mode & PERMISSION_BITS;
    if actual != mode {
        return Err(LockError::Unusable(format!(
            "{what} has mode {actual:04o}, not {mode:04o}"
        )));
    }
    Ok(())
}

/// A temp file beside its target, unlinked on drop unless it was renamed over the target.
struct TempFile<'a> {
    dir: &'a Dir,
    name: CString,
    file: File,
    renamed: bool,
}

impl<'a> TempFile<'a> {
    /// Creates `.<name>.flatline.<pid>.tmp` with O_EXCL. A file already there can only be a
    /// leftover of a crashed flatline whose pid was recycled: it is removed once.
    fn create(dir: &'a Dir, name: &OsStr) -> Result<TempFile<'a>, StoreError> {
        let temp = entry_name(&temp_name(name))?;
        let fd = match files::openat(dir.fd(), &temp, TEMP_FLAGS, TEMP_MODE) {
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                unlinkat(dir.fd(), &temp)?;
                files::openat(dir.fd(), &temp, TEMP_FLAGS, TEMP_MODE)?
            }
            other => other?,
        };
        Ok(TempFile {
            dir,
            name: temp,
            file: File::from(fd),
            renamed: false,
        })
    }

    /// Gives the temp file the original's owner, group and mode, and checks they stuck.
    fn keep_ownership(&self, original: &FileMeta) -> Result<(), StoreError> {
        let mode = original.mode & PERMISSION_BITS;
        let temp = files::fstat(self.file.as_fd()).map_err(StoreError::KeepOwnership)?;
        if temp.uid != original.uid || temp.gid != original.gid {
            std::os::unix::fs::fchown(&self.file, Some(original.uid), Some(original.gid))
                .map_err(StoreError::KeepOwnership)?;
        }
        // After the chown, which clears set-id bits.
        self.file
            .set_permissions(Permissions::from_mode(mode))
            .map_err(StoreError::KeepOwnership)?;
        // A non-root fchmod may drop the set-gid bit silently: verify.
        let now = files::fstat(self.file.as_fd()).map_err(StoreError::KeepOwnership)?;
        if now.uid != original.uid || now.gid != original.gid || now.mode & PERMISSION_BITS != mode
        {
            return Err(StoreError::KeepOwnership(io::Error::other(format!(
                "got uid {} gid {} mode {:04o}",
                now.uid,
                now.gid,
                now.mode & PERMISSION_BITS
            ))));
        }
        Ok(())
    }

    fn fill(&self, content: &[u8]) -> Result<(), StoreError> {
        (&self.file).write_all(content)?;
        self.file.sync_all()?;
        Ok(())
    }

    fn rename_over(mut self, target: &CStr) -> Result<(), StoreError> {
        renameat(self.dir.fd(), &self.name, target)?;
        self.renamed = true;
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.renamed {
            // Best effort: the error that brought us here is the one worth reporting.
            let _ = unlinkat(self.dir.fd(), &self.name);
        }
    }
}

/// Opens the existing regular file `name` for reading and checks it may be replaced.
/// lstat of an entry that another writer may be renaming over right now: a stat that lands
/// on the old inode as it loses its name reports no link at all; look again (a few times).
fn lstat_settled(dir: &Dir, name: &OsStr) -> Result<FileMeta, StoreError> {
    let mut attempts = 0;
    loop {
        let meta = files::lstatat(dir.fd(), name).map_err(|error| match error.raw_os_error() {
            Some(libc::ENOENT) => StoreError::Io(error),
            _ => open_error(error),
        })?;
        if meta.nlink == 0 && attempts < 8 {
            attempts += 1;
            std::thread::yield_now();
            continue;
        }
        return Ok(meta);
    }
}

fn open_existing(dir: &Dir, name: &OsStr, cname: &CStr) -> Result<(OwnedFd, FileMeta), StoreError> {
    let mut attempts = 0;
    loop {
        // Refuse devices before opening them: an open alone can have side effects.
        check_replaceable(&lstat_settled(dir, name)?)?;
        let fd = files::openat(dir.fd(), cname, READ_FLAGS, 0).map_err(open_error)?;
        let meta = files::fstat(fd.as_fd())?;
        // No link left: another writer renamed a new file over this one between the open
        // and the fstat. That is a change like any other: look at the new file.
        if meta.nlink == 0 && attempts < 3 {
            attempts += 1;
            continue;
        }
        if meta.nlink == 0 {
            return Ok((fd, meta));
        }
        check_replaceable(&meta)?;
        return Ok((fd, meta));
    }
}

fn check_replaceable(meta: &FileMeta) -> Result<(), StoreError> {
    if meta.mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(StoreError::Symlink);
    }
    if !meta.is_regular() {
        return Err(StoreError::NotRegular(meta.kind()));
    }
    if meta.nlink != 1 {
        return Err(StoreError::MultipleLinks(meta.nlink));
    }
    Ok(())
}

fn open_error(error: io::Error) -> StoreError {
    match error.raw_os_error() {
        Some(libc::ELOOP) => StoreError::Symlink,
        _ => StoreError::Io(error),
    }
}

/// A single directory entry name as a C string: no NUL, no '/', not empty, not `.` or `..`,
/// so that every `*at` call stays inside the directory it is given.
fn entry_name(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single file name",
        ));
    }
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is a live descriptor and `name` is NUL-terminated; flags 0 removes a
    // non-directory entry without following it.
    let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is a live descriptor and both names are NUL-terminated single entries of
    // it; rename never follows a symlink at either name.
    let rc =
        unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `dir` is a live descriptor and `name` is NUL-terminated.
    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The integration tests' way to show that a change made by another writer between
/// flatline's read and its rename is detected (debug builds only).
/// `FLATLINE_TEST_INTERFERE=<file name>:<count>` makes the first `<count>` checked replaces
/// of that file in this process rewrite it in place first, with a top-level
/// `"test_interference": k` (k counting from 1).
#[cfg(debug_assertions)]
mod test_hook {
    use super::*;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};

    pub(super) struct Interference {
        name: OsString,
        count: u32,
        done: AtomicU32,
    }

    pub(super) fn from_env() -> Option<&'static Interference> {
        static CONFIG: OnceLock<Option<Interference>> = OnceLock::new();
        CONFIG
            .get_or_init(|| {
                std::env::var_os("FLATLINE_TEST_INTERFERE").and_then(|value| parse(&value))
            })
            .as_ref()
    }

    /// `<file name>:<count>`, split at the last colon; anything malformed is ignored.
    pub(super) fn parse(value: &OsStr) -> Option<Interference> {
        let bytes = value.as_bytes();
        let colon = bytes.iter().rposition(|&b| b == b':')?;
        let (name, count) = (&bytes[..colon], &bytes[colon + 1..]);
        if name.is_empty() || count.is_empty() || !count.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let count = std::str::from_utf8(count).ok()?.parse().ok()?;
        Some(Interference {
            name: OsString::from_vec(name.to_vec()),
            count,
            done: AtomicU32::new(0),
        })
    }

    impl Interference {
        /// Plays the foreign writer: truncates and rewrites the original in place.
        pub(super) fn apply(&self, dir: &Dir, name: &OsStr) {
            if name != self.name {
                return;
            }
            let taken = self
                .done
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |done| {
                    (done < self.count).then_some(done + 1)
                });
            let Ok(before) = taken else {
                return;
            };
            let mut bytes = Vec::new();
            if dir
                .read_file(name, files::MAX_DOCUMENT_BYTES, &mut bytes)
                .is_err()
            {
                return;
            }
            let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(&bytes) else {
                return;
            };
            object.insert("test_interference".into(), (before + 1).into());
            let Ok(mut text) = serde_json::to_vec_pretty(&serde_json::Value::Object(object)) else {
                return;
            };
            text.push(b'\n');
            let Ok(cname) = entry_name(name) else {
                return;
            };
            let flags = libc::O_WRONLY | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            if let Ok(fd) = files::openat(dir.fd(), &cname, flags, 0) {
                let _ = File::from(fd).write_all(&text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, symlink};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "flatline-store-{}-{}-{name}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        fn dir(&self) -> Dir {
            Dir::open(&self.0).unwrap()
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }

        fn assert_no_temp(&self) {
            let names = self.names();
            assert!(
                names.iter().all(|name| !name.ends_with(".tmp")),
                "temp left behind: {names:?}"
            );
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn is_root() -> bool {
        files::effective_uid() == 0
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    fn mkfifo(path: &Path) {
        let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: test-only mkfifo on a fresh, NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) }, 0);
    }

    fn name(text: &str) -> &OsStr {
        OsStr::new(text)
    }

    #[test]
    fn replace_checked_writes_and_keeps_mode_and_owner() {
        let scratch = Scratch::new("replace");
        let file = scratch.path().join("d1.json");
        std::fs::write(&file, "old\n").unwrap();
        set_mode(&file, 0o640);
        if is_root() {
            std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
        }
        let before = std::fs::metadata(&file).unwrap();
        let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"old\n", b"new\n").unwrap();
        assert_eq!(outcome, Replaced::Written);
        assert_eq!(std::fs::read(&file).unwrap(), b"new\n");
        let after = std::fs::metadata(&file).unwrap();
        assert_ne!(
            after.ino(),
            before.ino(),
            "replaced by rename, not in place"
        );
        assert_eq!(after.mode() & 0o7777, 0o640);
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        if is_root() {
            assert_eq!((after.uid(), after.gid()), (65534, 65534));
        }
        assert_eq!(scratch.names(), ["d1.json"]);
    }

    #[test]
    fn replace_checked_keeps_set_id_bits_after_chown() {
        if !is_root() {
            return;
        }
        let scratch = Scratch::new("setid");
        let file = scratch.path().join("tool");
        std::fs::write(&file, "x").unwrap();
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
        set_mode(&file, 0o6750);
        let outcome = replace_checked(&scratch.dir(), name("tool"), b"x", b"y").unwrap();
        assert_eq!(outcome, Replaced::Written);
        assert_eq!(mode_of(&file), 0o6750);
    }

    #[test]
    fn replace_checked_detects_a_change_before_the_rename() {
        let scratch = Scratch::new("changed");
        let file = scratch.path().join("d1.json");
        std::fs::write(&file, "read by flatline").unwrap();
        let mut hook = || std::fs::write(&file, "written by someone else").unwrap();
        let outcome = replace_checked_with(
            &scratch.dir(),
            name("d1.json"),
            b"read by flatline",
            b"flatline's update",
            &mut hook,
        )
        .unwrap();
        assert_eq!(
            outcome,
            Replaced::Changed(b"written by someone else".to_vec())
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"written by someone else");
        scratch.assert_no_temp();
    }

    #[test]
    fn replace_checked_detects_a_replaced_inode_with_the_same_bytes() {
        let scratch = Scratch::new("inode");
        let file = scratch.path().join("d1.json");
        std::fs::write(&file, "same").unwrap();
        let other = scratch.path().join("other");
        let mut hook = || {
            std::fs::write(&other, "same").unwrap();
            std::fs::rename(&other, &file).unwrap();
        };
        let outcome =
            replace_checked_with(&scratch.dir(), name("d1.json"), b"same", b"new", &mut hook)
                .unwrap();
        assert_eq!(outcome, Replaced::Changed(b"same".to_vec()));
        assert_eq!(std::fs::read(&file).unwrap(), b"same");
        scratch.assert_no_temp();
    }

    #[test]
    fn replace_checked_reports_a_file_that_vanished() {
        let scratch = Scratch::new("vanished");
        let file = scratch.path().join("d1.json");
        std::fs::write(&file, "x").unwrap();
        let mut hook = || std::fs::remove_file(&file).unwrap();
        let outcome = replace_checked_with(&scratch.dir(), name("d1.json"), b"x", b"y", &mut hook);
        assert!(
            matches!(outcome, Err(StoreError::Io(ref e)) if e.kind() == io::ErrorKind::NotFound),
            "{outcome:?}"
        );
        assert!(scratch.names().is_empty(), "{:?}", scratch.names());
    }

    #[test]
    fn replace_checked_of_an_unexpected_original_writes_nothing() {
        let scratch = Scratch::new("unexpected");
        let file = scratch.path().join("d1.json");
        std::fs::write(&file, "current").unwrap();
        let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"stale", b"new").unwrap();
        assert_eq!(outcome, Replaced::Changed(b"current".to_vec()));
        assert_eq!(std::fs::read(&file).unwrap(), b"current");
        scratch.assert_no_temp();
    }

    #[test]
    fn replace_checked_refuses_symlinks_hard_links_and_fifos() {
        let scratch = Scratch::new("refuse");
        let target = scratch.path().join("target");
        std::fs::write(&target, "secret").unwrap();
        symlink(&target, scratch.path().join("link.json")).unwrap();
        std::fs::write(scratch.path().join("linked.json"), "x").unwrap();
        std::fs::hard_link(
            scratch.path().join("linked.json"),
            scratch.path().join("second"),
        )
        .unwrap();
        mkfifo(&scratch.path().join("fifo.json"));
        let dir = scratch.dir();

        let symlinked = replace_checked(&dir, name("link.json"), b"secret", b"owned");
        assert!(
            matches!(symlinked, Err(StoreError::Symlink)),
            "{symlinked:?}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        assert!(
            std::fs::symlink_metadata(scratch.path().join("link.json"))
                .unwrap()
                .file_type()
                .is_symlink()
        );

        let linked = replace_checked(&dir, name("linked.json"), b"x", b"y");
        assert!(
            matches!(linked, Err(StoreError::MultipleLinks(2))),
            "{linked:?}"
        );
        assert_eq!(std::fs::read(scratch.path().join("second")).unwrap(), b"x");

        let fifo = replace_checked(&dir, name("fifo.json"), b"", b"y");
        assert!(
            matches!(fifo, Err(StoreError::NotRegular("a FIFO"))),
            "{fifo:?}"
        );
        assert_eq!(
            fifo.unwrap_err().to_string(),
            "is a FIFO, not a regular file, refused"
        );
        scratch.assert_no_temp();
    }

    #[test]
    fn replace_checked_refuses_names_that_leave_the_directory() {
        let scratch = Scratch::new("names");
        let dir = scratch.dir();
        for bad in ["", ".", "..", "a/b", "../x"] {
            let outcome = replace_checked(&dir, name(bad), b"", b"y");
            assert!(matches!(outcome, Err(StoreError::Io(_))), "{bad:?}");
        }
    }

    #[test]
    fn replace_checked_clears_a_leftover_temp_of_a_recycled_pid() {
        let scratch = Scratch::new("leftover");
        std::fs::write(scratch.path().join("d1.json"), "a").unwrap();
        let leftover = scratch.path().join(temp_name(name("d1.json")));
        std::fs::write(&leftover, "crashed").unwrap();
        let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"a", b"b").unwrap();
        assert_eq!(outcome, Replaced::Written);
        assert_eq!(scratch.names(), ["d1.json"]);
    }

    #[test]
    fn keep_ownership_failure_is_reported_and_cleaned_up() {
        // As root every owner can be kept; without root, a file of another user cannot.
        if is_root() {
            return;
        }
        let Ok(meta) = std::fs::metadata("/etc/passwd") else {
            return;
        };
        let scratch = Scratch::new("ownership");
        std::fs::write(scratch.path().join("f"), "x").unwrap();
        let dir = scratch.dir();
        let temp = TempFile::create(&dir, name("f")).unwrap();
        let foreign = FileMeta {
            uid: meta.uid(),
            gid: meta.gid(),
            ..files::lstatat(dir.fd(), name("f")).unwrap()
        };
        assert!(matches!(
            temp.keep_ownership(&foreign),
            Err(StoreError::KeepOwnership(_))
        ));
        drop(temp);
        assert_eq!(scratch.names(), ["f"]);
    }

    #[test]
    fn write_atomic_creates_replaces_and_refuses_symlinks() {
        let scratch = Scratch::new("atomic");
        let dir = scratch.dir();
        let file = scratch.path().join("state.json");
        write_atomic(&dir, name("state.json"), b"one\n", 0o640).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"one\n");
        assert_eq!(mode_of(&file), 0o640);

        set_mode(&file, 0o604);
        write_atomic(&dir, name("state.json"), b"two\n", 0o600).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two\n");
        assert_eq!(mode_of(&file), 0o604, "the existing mode wins");

        let target = scratch.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        symlink(&target, scratch.path().join("link")).unwrap();
        let outcome = write_atomic(&dir, name("link"), b"x", 0o644);
        assert!(matches!(outcome, Err(StoreError::Symlink)), "{outcome:?}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");

        std::fs::hard_link(&target, scratch.path().join("second")).unwrap();
        let outcome = write_atomic(&dir, name("target"), b"x", 0o644);
        assert!(
            matches!(outcome, Err(StoreError::MultipleLinks(2))),
            "{outcome:?}"
        );
        scratch.assert_no_temp();
    }

    #[test]
    fn append_lines_appends_and_refuses_symlinks_and_hard_links() {
        let scratch = Scratch::new("append");
        let dir = scratch.dir();
        let file = scratch.path().join("events.jsonl");
        append_lines(&dir, name("events.jsonl"), &[b"{\"a\":1}\n".to_vec()]).unwrap();
        assert_eq!(mode_of(&file) & !0o022, 0o644 & !0o022);
        append_lines(
            &dir,
            name("events.jsonl"),
            &[b"{\"b\":2}\n".to_vec(), b"{\"c\":3}\n".to_vec()],
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
        );
        let partial = append_lines(&dir, name("events.jsonl"), &[b"no newline".to_vec()]);
        assert!(matches!(partial, Err(StoreError::Io(_))));

        let target = scratch.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        symlink(&target, scratch.path().join("link.jsonl")).unwrap();
        let outcome = append_lines(&dir, name("link.jsonl"), &[b"x\n".to_vec()]);
        assert!(matches!(outcome, Err(StoreError::Symlink)), "{outcome:?}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");

        symlink(
            scratch.path().join("missing"),
            scratch.path().join("dangling"),
        )
        .unwrap();
        let outcome = append_lines(&dir, name("dangling"), &[b"x\n".to_vec()]);
        assert!(matches!(outcome, Err(StoreError::Symlink)), "{outcome:?}");
        assert!(!scratch.path().join("missing").exists());

        std::fs::hard_link(&target, scratch.path().join("second")).unwrap();
        let outcome = append_lines(&dir, name("target"), &[b"x\n".to_vec()]);
        assert!(
            matches!(outcome, Err(StoreError::MultipleLinks(2))),
            "{outcome:?}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");

        mkfifo(&scratch.path().join("fifo"));
        let outcome = append_lines(&dir, name("fifo"), &[b"x\n".to_vec()]);
        assert!(
            matches!(outcome, Err(StoreError::NotRegular("a FIFO"))),
            "{outcome:?}"
        );
    }

    #[test]
    fn lock_run_creates_the_state_dir_and_excludes_a_second_holder() {
        let scratch = Scratch::new("lock");
        let run = scratch.dir();
        let never = || false;
        let first = lock_run(&run, None, &never).unwrap();
        assert_eq!(mode_of(&scratch.path().join(".flatline")), 0o700);
        assert_eq!(mode_of(&scratch.path().join(".flatline/lock")), 0o600);
        assert_eq!(
            first.state_dir().path(),
            scratch.path().join(".flatline").as_path()
        );

        let started = Instant::now();
        assert!(matches!(lock_run(&run, None, &never), Err(LockError::Busy)));
        assert!(started.elapsed() < Duration::from_millis(100));

        let waited = lock_run(&run, Some(Duration::from_millis(60)), &never);
        assert!(matches!(waited, Err(LockError::Busy)), "{waited:?}");

        let stop = || true;
        let stopped = lock_run(&run, Some(Duration::from_secs(10)), &stop);
        assert!(matches!(stopped, Err(LockError::Stopped)), "{stopped:?}");

        drop(first);
        let again = lock_run(&run, None, &never).unwrap();
        write_atomic(again.state_dir(), name("state.json"), b"{}\n", 0o600).unwrap();
        assert!(scratch.path().join(".flatline/state.json").exists());
    }

    #[test]
    fn lock_run_waits_for_a_release() {
        let scratch = Scratch::new("wait");
        let run = scratch.dir();
        let never = || false;
        let first = lock_run(&run, None, &never).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        let started = Instant::now();
        let second = lock_run(&run, Some(Duration::from_millis(300)), &never);
        assert!(second.is_ok(), "{second:?}");
        assert!(started.elapsed() >= Duration::from_millis(80));
        releaser.join().unwrap();
    }

    #[test]
    fn a_released_lock_is_taken_by_another_and_reacquired_after_it() {
        let scratch = Scratch::new("release");
        let run = scratch.dir();
        let never = || false;
        let mut waiting = lock_run(&run, None, &never).unwrap();
        assert!(matches!(lock_run(&run, None, &never), Err(LockError::Busy)));
        waiting.release().unwrap();
        let other = lock_run(&run, None, &never).expect("free while the first only waits");
        assert!(matches!(
            waiting.reacquire(Some(Duration::from_millis(50)), &never),
            Err(LockError::Busy)
        ));
        assert!(matches!(
            waiting.reacquire(Some(Duration::from_secs(10)), &|| true),
            Err(LockError::Stopped)
        ));
        drop(other);
        waiting
            .reacquire(Some(Duration::from_millis(50)), &never)
            .unwrap();
        assert!(matches!(lock_run(&run, None, &never), Err(LockError::Busy)));
    }

    #[test]
    fn lock_run_refuses_a_symlinked_state_dir() {
        let scratch = Scratch::new("locklink");
        let elsewhere = Scratch::new("locklink-target");
        set_mode(elsewhere.path(), 0o700);
        symlink(elsewhere.path(), scratch.path().join(".flatline")).unwrap();
        let outcome = lock_run(&scratch.dir(), None, &|| false);
        match outcome {
            Err(LockError::Unusable(what)) => assert_eq!(what, ".flatline is a symlink, refused"),
            other => panic!("{other:?}"),
        }
        assert!(!elsewhere.path().join("lock").exists());
    }

    #[test]
    fn lock_run_refuses_a_state_dir_that_is_a_file() {
        let scratch = Scratch::new("lockfile");
        std::fs::write(scratch.path().join(".flatline"), "").unwrap();
        let outcome = lock_run(&scratch.dir(), None, &|| false);
        assert!(
            matches!(outcome, Err(LockError::Unusable(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn lock_run_refuses_other_modes() {
        let scratch = Scratch::new("lockmode");
        let state = scratch.path().join(".flatline");
        std::fs::create_dir(&state).unwrap();
        set_mode(&state, 0o755);
        let outcome = lock_run(&scratch.dir(), None, &|| false);
        match outcome {
            Err(LockError::Unusable(what)) => {
                assert_eq!(what, ".flatline has mode 0755, not 0700")
            }
            other => panic!("{other:?}"),
        }

        set_mode(&state, 0o700);
        std::fs::write(state.join("lock"), "").unwrap();
        set_mode(&state.join("lock"), 0o644);
        let outcome = lock_run(&scratch.dir(), None, &|| false);
        assert!(
            matches!(outcome, Err(LockError::Unusable(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn lock_run_refuses_a_lock_of_another_owner_or_with_links() {
        let scratch = Scratch::new("lockowner");
        let state = scratch.path().join(".flatline");
        std::fs::create_dir(&state).unwrap();
        set_mode(&state, 0o700);
        let lock = state.join("lock");
        std::fs::write(&lock, "").unwrap();
        set_mode(&lock, 0o600);
        std::fs::hard_link(&lock, scratch.path().join("alias")).unwrap();
        let outcome = lock_run(&scratch.dir(), None, &|| false);
        match outcome {
            Err(LockError::Unusable(what)) => {
                assert_eq!(what, ".flatline/lock has 2 hard links, refused")
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(scratch.path().join("alias")).unwrap();

        if is_root() {
            std::os::unix::fs::chown(&lock, Some(65534), None).unwrap();
            let outcome = lock_run(&scratch.dir(), None, &|| false);
            match outcome {
                Err(LockError::Unusable(what)) => {
                    assert_eq!(what, ".flatline/lock is owned by uid 65534, not by uid 0")
                }
                other => panic!("{other:?}"),
            }
        }

        std::fs::remove_file(&lock).unwrap();
        symlink("/etc/passwd", &lock).unwrap();
        let outcome = lock_run(&scratch.dir(), None, &|| false);
        match outcome {
            Err(LockError::Unusable(what)) => {
                assert_eq!(what, ".flatline/lock is a symlink, refused")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn remove_stale_temps_removes_only_flatline_temps() {
        let scratch = Scratch::new("stale");
        for file in [
            ".d1.json.flatline.123.tmp",
            ".d1.json.tmp",
            ".other",
            "d1.json",
            ".d1.json.flatline..tmp",
            ".d1.json.flatline.12a.tmp",
        ] {
            std::fs::write(scratch.path().join(file), "x").unwrap();
        }
        std::fs::create_dir(scratch.path().join(".dir.flatline.7.tmp")).unwrap();
        let target = scratch.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        symlink(&target, scratch.path().join(".link.flatline.8.tmp")).unwrap();
        let dir = scratch.dir();
        let removed = remove_stale_temps(&dir, &dir.entries().unwrap()).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(
            scratch.names(),
            [
                ".d1.json.flatline..tmp",
                ".d1.json.flatline.12a.tmp",
                ".d1.json.tmp",
                ".dir.flatline.7.tmp",
                ".link.flatline.8.tmp",
                ".other",
                "d1.json",
                "target",
            ]
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn temp_names_round_trip() {
        let temp = temp_name(name("d1.json"));
        assert_eq!(
            temp,
            OsString::from(format!(".d1.json.flatline.{}.tmp", std::process::id()))
        );
        assert!(is_temp_name(&temp));
        assert!(is_temp_name(name(".a.flatline.1.tmp")));
        assert!(!is_temp_name(name("..flatline.1.tmp")));
        assert!(is_temp_name(name(".a.flatline.b.flatline.9.tmp")));
        assert!(!is_temp_name(name(".flatline.1.tmp")));
        assert!(!is_temp_name(name("d1.json.flatline.1.tmp")));
        assert!(!is_temp_name(name(".d1.json.flatline.1.tmp.x")));
    }

    #[test]
    fn errors_read_as_one_line_causes() {
        assert_eq!(StoreError::Symlink.to_string(), "is a symlink, refused");
        assert_eq!(
            StoreError::MultipleLinks(2).to_string(),
            "has 2 hard links, not replaced"
        );
        let denied = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(
            StoreError::KeepOwnership(denied).to_string(),
            "cannot keep its owner, group and mode (operation not permitted), not replaced"
        );
        let missing = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            StoreError::Io(missing).to_string(),
            "no such file or directory"
        );
    }

    #[cfg(debug_assertions)]
    #[test]
    fn the_test_hook_parses_its_variable() {
        let parsed = test_hook::parse(name("d1.json:2")).unwrap();
        let scratch = Scratch::new("hookparse");
        std::fs::write(scratch.path().join("d1.json"), "{}").unwrap();
        let dir = scratch.dir();
        for _ in 0..3 {
            parsed.apply(&dir, name("d1.json"));
        }
        let text = std::fs::read_to_string(scratch.path().join("d1.json")).unwrap();
        assert!(text.contains("\"test_interference\": 2"), "{text}");
        assert!(test_hook::parse(name("a:b:3")).is_some());
        for bad in [
            "d1.json",
            "d1.json:",
            ":3",
            "d1.json:x",
            "d1.json:-1",
            "d:99999999999",
        ] {
            assert!(test_hook::parse(name(bad)).is_none(), "{bad}");
        }
    }

    #[cfg(debug_assertions)]
    #[test]
    fn the_test_hook_forces_a_change_that_is_detected() {
        let scratch = Scratch::new("hook");
        let file = scratch.path().join("d1.json");
        let original = b"{\n  \"id\": \"d1\",\n  \"n\": 12345678901234567890\n}\n";
        std::fs::write(&file, original).unwrap();
        let interference = test_hook::parse(name("d1.json:1")).unwrap();
        let dir = scratch.dir();
        let mut hook = || interference.apply(&dir, name("d1.json"));
        let outcome =
            replace_checked_with(&dir, name("d1.json"), original, b"{}\n", &mut hook).unwrap();
        let Replaced::Changed(current) = outcome else {
            panic!("{outcome:?}");
        };
        let value: serde_json::Value = serde_json::from_slice(&current).unwrap();
        assert_eq!(value["test_interference"], 1);
        assert_eq!(value["n"].to_string(), "12345678901234567890");
        assert_eq!(std::fs::read(&file).unwrap(), current);
        scratch.assert_no_temp();

        // The count is spent: the retry with the new bytes goes through.
        let outcome =
            replace_checked_with(&dir, name("d1.json"), &current, b"{}\n", &mut hook).unwrap();
        assert_eq!(outcome, Replaced::Written);
        assert_eq!(std::fs::read(&file).unwrap(), b"{}\n");
    }
}
