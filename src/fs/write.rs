//! write: atomic, checked, durable writes beneath a run directory, and the run lock.
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
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::read::{self as files, Dir, FileMeta};
use crate::core::time::{self, Millis};

/// What went wrong with a write; `Display` gives the "what is wrong" part of
/// `flatline: PATH: what is wrong` (no path inside).
#[derive(Debug)]
pub enum StoreError {
    Symlink,
    NotRegular(&'static str),
    MultipleLinks(u64),
    KeepOwnership(io::Error),
    /// A document that is not its owner's word (SPEC §1.3): why.
    Foreign(String),
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
            StoreError::Foreign(reason) => {
                write!(f, "{reason}: not its owner's word, not replaced")
            }
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
    // A document that is not its owner's word (SPEC §1.3) is never replaced.
    if let Some(reason) = meta.foreign_reason() {
        return Err(StoreError::Foreign(reason));
    }
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
    write_atomic_with(dir, name, content, mode_if_new, None)
}

/// `write_atomic`, giving a new file the group `group_if_new` when one is given.
fn write_atomic_with(
    dir: &Dir,
    name: &OsStr,
    content: &[u8],
    mode_if_new: u32,
    group_if_new: Option<u32>,
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
        None => {
            if let Some(gid) = group_if_new {
                std::os::unix::fs::fchown(&temp.file, None, Some(gid))?;
            }
            temp.file
                .set_permissions(Permissions::from_mode(mode_if_new & PERMISSION_BITS))?
        }
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
    // Read-write, to look at the last byte; a file flatline may only write is appended to
    // without that look.
    let fd = match files::openat(
        dir.fd(),
        &cname,
        (APPEND_FLAGS & !libc::O_WRONLY) | libc::O_RDWR,
        APPEND_MODE,
    ) {
        Err(error) if error.raw_os_error() == Some(libc::EACCES) => {
            files::openat(dir.fd(), &cname, APPEND_FLAGS, APPEND_MODE)
        }
        other => other,
    }
    .map_err(open_error)?;
    let meta = files::fstat(fd.as_fd())?;
    check_replaceable(&meta)?;
    let mut file = File::from(fd);
    let first = ends_mid_line(&file, meta.size).then(|| {
        let mut line = Vec::with_capacity(lines[0].len() + 1);
        line.push(b'\n');
        line.extend_from_slice(&lines[0]);
        line
    });
    for (index, line) in lines.iter().enumerate() {
        let line = match (index, &first) {
            (0, Some(first)) => first,
            _ => line,
        };
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

/// Whether a log of `size` bytes ends without its final newline (a writer died mid-line, or
/// wrote its last event without one). A file that cannot be read is taken as ending well.
fn ends_mid_line(file: &File, size: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let Some(last) = size.checked_sub(1) else {
        return false;
    };
    let mut byte = [0u8; 1];
    loop {
        match file.read_at(&mut byte, last) {
            Ok(1) => return byte[0] != b'\n',
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
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

/// The temp name with a random part, when `temp_name` is taken (see `TempFile::create`).
fn random_temp_name(name: &OsStr, random: &str) -> OsString {
    let mut temp = Vec::with_capacity(name.len() + 48);
    temp.push(b'.');
    temp.extend_from_slice(name.as_bytes());
    temp.extend_from_slice(format!(".flatline.{}.{random}.tmp", std::process::id()).as_bytes());
    OsString::from_vec(temp)
}

/// Whether `name` has the shape of `temp_name` (or its random form) for some file name and
/// some pid.
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
    let tail = &inner[at + MARK.len()..];
    let (pid, random) = match tail.iter().position(|&b| b == b'.') {
        Some(dot) => (&tail[..dot], Some(&tail[dot + 1..])),
        None => (tail, None),
    };
    at > 0
        && !pid.is_empty()
        && pid.iter().all(u8::is_ascii_digit)
        && random.is_none_or(|r| r.len() == 16 && r.iter().all(u8::is_ascii_hexdigit))
}

/// Why the run lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock (exit 75): who, and how long flatline waited.
    Busy(Box<Busy>),
    /// `.flatline`, its `lock` or its `state.json` is not as flatline can trust it (another
    /// owner, a mode that lets others in, a symlink, several links, not a directory or
    /// regular file), or this user cannot write `.flatline`: the run is refused (exit 4).
    /// The message says what was found and how to repair it.
    Unusable(String),
    /// `stop()` returned true while waiting (a signal or the deadline arrived).
    Stopped,
    Io(io::Error),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Busy(busy) => write!(f, "{busy}"),
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

/// A lock that another process holds: who (from `/proc/locks`), how long flatline waited,
/// and how many runs in a row found that holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// `None` when `/proc/locks` shows no holder this pid namespace can name.
    pub holder: Option<LockHolder>,
    pub waited: Duration,
    /// The holder's streak, as this run recorded it (`None`: no pid to track, or the record
    /// could not be written; see `record_error`).
    pub streak: Option<HolderStreak>,
    /// Why the streak could not be recorded (a warning, never a reason to stop).
    pub record_error: Option<String>,
}

/// The process holding a lock, as this pid namespace sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: i32,
    /// Its real uid (`None`: gone or hidden by the time flatline looked).
    pub uid: Option<u32>,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.holder {
            Some(LockHolder {
                pid,
                uid: Some(uid),
            }) => write!(f, "held by pid {pid} (uid {uid})")?,
            Some(LockHolder { pid, uid: None }) => {
                write!(f, "held by pid {pid} (uid unknown: gone or hidden)")?
            }
            None => f.write_str("held by a process this pid namespace cannot name")?,
        }
        write!(f, "; flatline waited {} ms", self.waited.as_millis())?;
        if self.waited.is_zero() {
            f.write_str(" (use --wait DURATION to wait for it)")?;
        }
        if let Some(streak) = self.streak.as_ref().filter(|streak| streak.is_lock_held()) {
            write!(f, "; {streak}")?;
        }
        Ok(())
    }
}

/// How many runs in a row must find the same pid holding the lock before it is a
/// `lock_held` problem (SPEC §4).
pub const LOCK_HELD_RUNS: u64 = 3;

/// The same pid found holding the lock by consecutive runs that could not take it. Kept in
/// `.flatline/lock_holders.json`, not in `state.json`: the runs that see a holder are exactly
/// the runs that cannot take the lock `state.json` is written under, and a write to it then
/// could undo the holder's own (when the holder is a flatline). A run that takes the lock
/// removes the file: the streak is broken.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HolderStreak {
    pub pid: i32,
    pub uid: Option<u32>,
    /// Runs in a row that found `pid` holding the lock.
    pub runs: u64,
    /// When the first of them found it (RFC 3339).
    pub since: String,
    pub last_seen_at: String,
}

impl HolderStreak {
    /// The streak after one more run found `holder` holding the lock at `now`.
    pub fn next(previous: Option<HolderStreak>, holder: LockHolder, now: Millis) -> HolderStreak {
        let at = time::format_rfc3339(now);
        match previous {
            Some(previous) if previous.pid == holder.pid && previous.uid == holder.uid => {
                HolderStreak {
                    runs: previous.runs.saturating_add(1),
                    last_seen_at: at,
                    ..previous
                }
            }
            _ => HolderStreak {
                pid: holder.pid,
                uid: holder.uid,
                runs: 1,
                since: at.clone(),
                last_seen_at: at,
            },
        }
    }

    pub fn is_lock_held(&self) -> bool {
        self.runs >= LOCK_HELD_RUNS
    }
}

impl fmt::Display for HolderStreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lock_held: pid {} (uid ", self.pid)?;
        match self.uid {
            Some(uid) => write!(f, "{uid}")?,
            None => f.write_str("unknown")?,
        }
        write!(
            f,
            ") has held the run lock across {} runs since {}",
            self.runs, self.since
        )
    }
}

/// Holds `RUN_DIR/.flatline/lock` (exclusive flock) until dropped or released.
#[derive(Debug)]
pub struct RunLock {
    state_dir: Dir,
    /// Closing the descriptor (on drop) releases the flock.
    lock: File,
    held: bool,
    notices: Vec<(PathBuf, String)>,
}

impl RunLock {
    /// The `.flatline` directory (for state.json), opened without following symlinks.
    pub fn state_dir(&self) -> &Dir {
        &self.state_dir
    }

    /// What the caller should say on stderr once (path, message): e.g. a creator outside
    /// the lock group that gave `.flatline` its own primary group.
    pub fn notices(&self) -> &[(PathBuf, String)] {
        &self.notices
    }

    /// Whether the lock is held now (false between `release` and `reacquire`).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Lets go of the flock while flatline only waits (a grace, a kill wait), so that an
    /// orchestrator can write meanwhile. Documents must be read again before the next write.
    pub fn release(&mut self) -> io::Result<()> {
        if self.held {
            self.lock.unlock()?;
            self.held = false;
        }
        Ok(())
    }

    /// Takes the flock again after `release`, as `lock_run` would (`Busy` at once without
    /// `wait`, else polling until it has passed or `stop()` says so). The lock excludes
    /// others only while `.flatline/lock` is still the file flatline locks: a lock file
    /// replaced meanwhile refuses the run.
    pub fn reacquire(
        &mut self,
        wait: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), LockError> {
        if self.held {
            return Ok(());
        }
        match acquire(&self.lock, wait, stop) {
            Ok(()) => {}
            Err(Acquire::Busy(waited)) => {
                let holder = files::fstat(self.lock.as_fd())
                    .ok()
                    .and_then(|meta| find_holder(&meta));
                return Err(LockError::Busy(Box::new(Busy {
                    holder,
                    waited,
                    streak: None,
                    record_error: None,
                })));
            }
            Err(Acquire::Stopped) => return Err(LockError::Stopped),
            Err(Acquire::Io(error)) => return Err(LockError::Io(error)),
        }
        let mine = files::fstat(self.lock.as_fd())?;
        let named = files::lstatat(self.state_dir.fd(), OsStr::new(LOCK_FILE));
        if !matches!(named, Ok(meta) if meta.dev == mine.dev && meta.ino == mine.ino) {
            self.lock.unlock()?;
            return Err(LockError::Unusable(
                ".flatline/lock was replaced while flatline waited without it, refused".into(),
            ));
        }
        self.held = true;
        Ok(())
    }
}

/// What a writing command asks of `lock_run_as`.
pub struct LockRequest<'a> {
    /// `--lock-group`: the group a new `.flatline/`, `lock` and `state.json` get (`None`:
    /// the run directory's group).
    pub group: Option<u32>,
    /// `--wait`: how long to wait for another holder (`None`: not at all).
    pub wait: Option<Duration>,
    /// The run's `now`, for the holder streak's timestamps.
    pub now: Millis,
    /// Says when to stop waiting (a signal or the deadline).
    pub stop: &'a dyn Fn() -> bool,
}

const STATE_DIR: &str = ".flatline";
const LOCK_FILE: &str = "lock";
const STATE_FILE: &str = "state.json";
const LOCK_HOLDERS_FILE: &str = "lock_holders.json";
/// The lock group may enter `.flatline/` and read (so lock) `lock` and read `state.json`.
const STATE_DIR_MODE: u32 = 0o750;
const SHARED_FILE_MODE: u32 = 0o640;
const LOCK_POLL_FIRST: Duration = Duration::from_millis(20);
const LOCK_POLL_STEP: Duration = Duration::from_millis(10);
const LOCK_POLL_MAX: Duration = Duration::from_millis(50);

/// `lock_run_as` with the run directory's group and the wall clock.
pub fn lock_run(
    run: &Dir,
    wait: Option<Duration>,
    stop: &dyn Fn() -> bool,
) -> Result<RunLock, LockError> {
    lock_run_as(
        run,
        &LockRequest {
            group: None,
            wait,
            now: crate::proc::now_ms(),
            stop,
        },
    )
}

/// Creates `RUN_DIR/.flatline/` (0750) and its `lock` (0640) in the lock group when
/// missing, refuses them when they exist in a shape flatline cannot trust (SPEC §4), then
/// takes an exclusive flock. Without `wait` a held lock is `Busy` at once; with `wait` it
/// polls every 20–50 ms until the wait has passed (`Busy`) or `stop()` says to stop
/// (`Stopped`). Never blocks forever. A `Busy` run records the holder's streak; a run that
/// gets the lock checks `state.json` and ends the streak.
pub fn lock_run_as(run: &Dir, request: &LockRequest<'_>) -> Result<RunLock, LockError> {
    let euid = files::effective_uid();
    let run_meta = run.meta()?;
    let mut notices = Vec::new();
    let state_dir = open_state_dir(run, &run_meta, request.group, euid, &mut notices)?;
    let lock = open_lock_file(&state_dir, &mut notices)?;
    match acquire(&lock, request.wait, request.stop) {
        Ok(()) => {}
        Err(Acquire::Busy(waited)) => {
            return Err(LockError::Busy(Box::new(record_busy(
                &state_dir,
                &lock,
                waited,
                request.now,
            ))));
        }
        Err(Acquire::Stopped) => return Err(LockError::Stopped),
        Err(Acquire::Io(error)) => return Err(LockError::Io(error)),
    }
    // Dropping `lock` on an error below releases the flock.
    check_state_file(&state_dir)?;
    match unlinkat(state_dir.fd(), &entry_name(OsStr::new(LOCK_HOLDERS_FILE))?) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => notices.push((
            state_dir.join(OsStr::new(LOCK_HOLDERS_FILE)),
            format!("cannot remove it: {}", files::io_message(&error)),
        )),
    }
    Ok(RunLock {
        state_dir,
        lock,
        held: true,
        notices,
    })
}

/// Whether `run` has a `lock_held` problem now: a recorded streak of `LOCK_HELD_RUNS` or
/// more whose pid still holds the lock. Reads only; for `status`, which takes no lock.
pub fn lock_held(run: &Dir) -> Option<HolderStreak> {
    let state_dir = run.open_child(OsStr::new(STATE_DIR)).ok()??;
    let streak = read_streak(&state_dir)?;
    if !streak.is_lock_held() {
        return None;
    }
    let meta = files::lstatat(state_dir.fd(), OsStr::new(LOCK_FILE)).ok()?;
    if !meta.is_regular() {
        return None;
    }
    let holder = find_holder(&meta)?;
    (holder.pid == streak.pid).then_some(streak)
}

enum Acquire {
    Busy(Duration),
    Stopped,
    Io(io::Error),
}

fn acquire(lock: &File, wait: Option<Duration>, stop: &dyn Fn() -> bool) -> Result<(), Acquire> {
    let started = Instant::now();
    let deadline = wait.map(|wait| started + wait);
    let mut pause = LOCK_POLL_FIRST;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(error)) if error.kind() == io::ErrorKind::Interrupted => {
                continue;
            }
            Err(TryLockError::Error(error)) => return Err(Acquire::Io(error)),
        }
        let Some(deadline) = deadline else {
            return Err(Acquire::Busy(Duration::ZERO));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Acquire::Busy(started.elapsed()));
        }
        if stop() {
            return Err(Acquire::Stopped);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause + LOCK_POLL_STEP).min(LOCK_POLL_MAX);
    }
}

/// Names the holder and counts this run in its streak (best effort: a record that cannot
/// be written is a warning).
fn record_busy(state_dir: &Dir, lock: &File, waited: Duration, now: Millis) -> Busy {
    let holder = files::fstat(lock.as_fd())
        .ok()
        .and_then(|meta| find_holder(&meta));
    let mut busy = Busy {
        holder,
        waited,
        streak: None,
        record_error: None,
    };
    let Some(holder) = holder else {
        return busy;
    };
    let streak = HolderStreak::next(read_streak(state_dir), holder, now);
    let mut bytes = serde_json::to_vec_pretty(&streak).unwrap_or_default();
    bytes.push(b'\n');
    match write_in_dir_group(
        state_dir,
        OsStr::new(LOCK_HOLDERS_FILE),
        &bytes,
        SHARED_FILE_MODE,
    ) {
        Ok(()) => busy.streak = Some(streak),
        Err(error) => {
            busy.record_error = Some(format!(
                "{}: cannot record the lock's holder: {error}",
                files::display_path(&state_dir.join(OsStr::new(LOCK_HOLDERS_FILE)))
            ))
        }
    }
    busy
}

fn read_streak(state_dir: &Dir) -> Option<HolderStreak> {
    let mut buf = Vec::new();
    let meta = state_dir
        .read_file(OsStr::new(LOCK_HOLDERS_FILE), 64 * 1024, &mut buf)
        .ok()?;
    if meta.nlink != 1 {
        return None;
    }
    serde_json::from_slice(&buf).ok()
}

/// The holder of the flock on the file `meta` describes, from `/proc/locks`.
fn find_holder(meta: &FileMeta) -> Option<LockHolder> {
    let mut text = Vec::new();
    File::open("/proc/locks")
        .ok()?
        .take(16 << 20)
        .read_to_end(&mut text)
        .ok()?;
    let (major, minor) = dev_major_minor(meta.dev);
    let pid = lock_holder_pid(&text, major, minor, meta.ino)?;
    let mut status = Vec::new();
    let uid = File::open(format!("/proc/{pid}/status"))
        .and_then(|file| file.take(64 * 1024).read_to_end(&mut status))
        .ok()
        .and_then(|_| crate::core::identity::parse_status(&status))
        .map(|status| status.uid);
    Some(LockHolder { pid, uid })
}

/// The pid holding a lock on inode `ino` of device `major:minor`, from the text of
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF`; waiters, marked `->`,
/// are skipped). `None` when no line matches or the kernel could not map the holder's pid
/// into this namespace (it shows 0 or -1 then).
pub fn lock_holder_pid(text: &[u8], major: u64, minor: u64, ino: u64) -> Option<i32> {
    let text = String::from_utf8_lossy(text);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.get(1) == Some(&"->") || fields.len() < 6 {
            continue;
        }
        let mut id = fields[5].split(':');
        let (Some(maj), Some(min), Some(inode), None) =
            (id.next(), id.next(), id.next(), id.next())
        else {
            continue;
        };
        let matches = u64::from_str_radix(maj, 16) == Ok(major)
            && u64::from_str_radix(min, 16) == Ok(minor)
            && inode.parse::<u64>() == Ok(ino);
        if matches {
            return fields[4].parse::<i32>().ok().filter(|pid| *pid > 0);
        }
    }
    None
}

/// glibc's `major()` and `minor()` of an `st_dev`.
pub fn dev_major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev & 0x0000_0000_000f_ff00) >> 8) | ((dev & 0xffff_f000_0000_0000) >> 32);
    let minor = (dev & 0x0000_0000_0000_00ff) | ((dev & 0x0000_0fff_fff0_0000) >> 12);
    (major, minor)
}

fn open_state_dir(
    run: &Dir,
    run_meta: &FileMeta,
    group: Option<u32>,
    euid: u32,
    notices: &mut Vec<(PathBuf, String)>,
) -> Result<Dir, LockError> {
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
                Ok(meta) => unusable_kind(STATE_DIR, &meta, "a directory", None),
                Err(_) => LockError::Io(error),
            });
        }
        Err(error) => return Err(LockError::Io(error)),
    };
    let path = run.join(OsStr::new(STATE_DIR));
    let mut meta = files::fstat(fd.as_fd())?;
    if !meta.is_dir() {
        return Err(unusable_kind(STATE_DIR, &meta, "a directory", None));
    }
    // Only a directory that is really the one just made gets a group and mode: a writer of
    // the run directory may have put its own there between the mkdir and the open.
    if created && meta.uid == euid {
        let wanted = match group {
            Some(gid) => (gid, "--lock-group"),
            None => (run_meta.gid, "the run directory's group"),
        };
        let dir = File::from(fd.try_clone()?);
        give_group(&dir, &path, wanted, notices)?;
        // The umask may have taken bits from mkdir's mode; set it exactly.
        dir.set_permissions(Permissions::from_mode(STATE_DIR_MODE))?;
        meta = files::fstat(fd.as_fd())?;
    }
    check_state_dir(&path, &meta, euid, run_meta.uid)?;
    if let Some(gid) = group.filter(|gid| *gid != meta.gid) {
        notices.push((
            path.clone(),
            format!(
                "has group {}, not --lock-group {gid}: an existing .flatline keeps its group \
                 (repair: chgrp -R {gid} {})",
                meta.gid,
                files::display_path(&path)
            ),
        ));
    }
    Ok(Dir::from_fd(fd, path))
}

/// An existing `.flatline/` is trusted when flatline's user or the run directory's owner
/// owns it and neither its group nor others may write it (S_ISGID ignored); this user must
/// be able to write it.
fn check_state_dir(
    path: &Path,
    meta: &FileMeta,
    euid: u32,
    run_owner: u32,
) -> Result<(), LockError> {
    let shown = files::display_path(path);
    let mode = meta.mode & PERMISSION_BITS;
    if meta.uid != euid && meta.uid != run_owner {
        return Err(LockError::Unusable(format!(
            "{STATE_DIR} is owned by uid {}, neither flatline's uid {euid} nor the run \
             directory's owner uid {run_owner}, refused; repair: chown {run_owner} {shown}",
            meta.uid
        )));
    }
    if mode & 0o022 != 0 {
        return Err(LockError::Unusable(format!(
            "{STATE_DIR} has mode {mode:04o}, writable by its group or others, refused; \
             repair: chmod {STATE_DIR_MODE:04o} {shown}"
        )));
    }
    if euid != 0 && !(meta.uid == euid && mode & 0o300 == 0o300) {
        let repair = if meta.uid == euid {
            format!("chmod {STATE_DIR_MODE:04o} {shown}")
        } else {
            format!("run this command as uid {} or root", meta.uid)
        };
        return Err(LockError::Unusable(format!(
            "{STATE_DIR} is owned by uid {} with mode {mode:04o}: uid {euid} cannot write it, \
             refused; repair: {repair}",
            meta.uid
        )));
    }
    Ok(())
}

fn open_lock_file(
    state_dir: &Dir,
    notices: &mut Vec<(PathBuf, String)>,
) -> Result<File, LockError> {
    let cname = entry_name(OsStr::new(LOCK_FILE))?;
    let path = state_dir.join(OsStr::new(LOCK_FILE));
    let created = files::openat(
        state_dir.fd(),
        &cname,
        READ_FLAGS | libc::O_CREAT | libc::O_EXCL,
        SHARED_FILE_MODE,
    );
    let (fd, created) = match created {
        Ok(fd) => (fd, true),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            (open_shared_file(state_dir, LOCK_FILE)?.0, false)
        }
        Err(error) => return Err(LockError::Io(error)),
    };
    let file = File::from(fd);
    if created {
        let gid = state_dir.meta()?.gid;
        give_group(&file, &path, (gid, "the group of .flatline"), notices)?;
        file.set_permissions(Permissions::from_mode(SHARED_FILE_MODE))?;
    }
    check_shared_file(LOCK_FILE, &path, &files::fstat(file.as_fd())?)?;
    Ok(file)
}

/// `state.json`, when it exists, must be a regular file with one link and no permission for
/// others, like `lock`.
fn check_state_file(state_dir: &Dir) -> Result<(), LockError> {
    let path = state_dir.join(OsStr::new(STATE_FILE));
    match files::lstatat(state_dir.fd(), OsStr::new(STATE_FILE)) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(LockError::Io(error)),
        Ok(_) => {}
    }
    let (_, meta) = open_shared_file(state_dir, STATE_FILE)?;
    check_shared_file(STATE_FILE, &path, &meta)
}

/// Opens an existing `lock` or `state.json` through `.flatline`'s descriptor with
/// `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`, refusing anything but a regular file before the
/// open (an open alone can have side effects on a device).
fn open_shared_file(state_dir: &Dir, name: &str) -> Result<(OwnedFd, FileMeta), LockError> {
    let path = state_dir.join(OsStr::new(name));
    let meta = files::lstatat(state_dir.fd(), OsStr::new(name))?;
    if !meta.is_regular() {
        return Err(unusable_kind(
            &format!("{STATE_DIR}/{name}"),
            &meta,
            "a regular file",
            Some(&path),
        ));
    }
    let fd = match files::openat(
        state_dir.fd(),
        &entry_name(OsStr::new(name))?,
        READ_FLAGS,
        0,
    ) {
        Ok(fd) => fd,
        Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
            return Err(LockError::Unusable(format!(
                "{STATE_DIR}/{name} is a symlink, refused; repair: rm {}",
                files::display_path(&path)
            )));
        }
        Err(error) => return Err(LockError::Io(error)),
    };
    let meta = files::fstat(fd.as_fd())?;
    Ok((fd, meta))
}

fn check_shared_file(name: &str, path: &Path, meta: &FileMeta) -> Result<(), LockError> {
    let what = format!("{STATE_DIR}/{name}");
    let shown = files::display_path(path);
    if !meta.is_regular() {
        return Err(unusable_kind(&what, meta, "a regular file", Some(path)));
    }
    if meta.nlink != 1 {
        return Err(LockError::Unusable(format!(
            "{what} has {} hard links, refused; repair: rm {shown} (flatline makes a new one)",
            meta.nlink
        )));
    }
    let mode = meta.mode & PERMISSION_BITS;
    if mode & 0o007 != 0 {
        return Err(LockError::Unusable(format!(
            "{what} has mode {mode:04o}, with permissions for others, refused; repair: chmod \
             {SHARED_FILE_MODE:04o} {shown}"
        )));
    }
    Ok(())
}

/// Gives a new entry the wanted group; a non-root creator outside it keeps its own primary
/// group, and says so.
fn give_group(
    file: &File,
    path: &Path,
    (gid, source): (u32, &str),
    notices: &mut Vec<(PathBuf, String)>,
) -> io::Result<()> {
    if in_group(gid) {
        return std::os::unix::fs::fchown(file, None, Some(gid));
    }
    let own = effective_gid();
    std::os::unix::fs::fchown(file, None, Some(own))?;
    let euid = files::effective_uid();
    notices.push((
        path.to_path_buf(),
        format!(
            "uid {euid} is not in group {gid} ({source}): created with uid {euid}'s primary \
             group {own} instead, so only that group's members can take the lock"
        ),
    ));
    Ok(())
}

fn unusable_kind(what: &str, meta: &FileMeta, wanted: &str, path: Option<&Path>) -> LockError {
    let repair = path
        .map(|path| format!("; repair: rm {}", files::display_path(path)))
        .unwrap_or_default();
    if meta.mode & libc::S_IFMT == libc::S_IFLNK {
        LockError::Unusable(format!("{what} is a symlink, refused{repair}"))
    } else {
        LockError::Unusable(format!(
            "{what} is {}, not {wanted}, refused{repair}",
            meta.kind()
        ))
    }
}

/// Writes a file of `.flatline/` atomically (as `write_atomic`); a new one gets the
/// directory's group, which is the lock group, when this user may give it.
pub fn write_in_dir_group(
    dir: &Dir,
    name: &OsStr,
    content: &[u8],
    mode_if_new: u32,
) -> Result<(), StoreError> {
    let gid = dir.meta()?.gid;
    write_atomic_with(
        dir,
        name,
        content,
        mode_if_new,
        in_group(gid).then_some(gid),
    )
}

/// The group a gid-or-name names: digits are a gid as they are; a name is looked up
/// (`/etc/group`, NSS). `Ok(None)` when no such group exists.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return name
            .parse()
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "gid out of range"));
    }
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: all-zero bytes are a valid `group` (null pointers, zero gid); it is only
        // read after getgrnam_r reports success.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: a NUL-terminated name, a `group` to
        // fill, a buffer of `buf.len()` bytes for its strings, and the result pointer.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut group,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!found.is_null()).then_some(group.gr_gid));
    }
}

fn effective_gid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

/// Whether this process may give a file group `gid`: root may give any; others only their
/// own groups.
fn in_group(gid: u32) -> bool {
    if files::effective_uid() == 0 || effective_gid() == gid {
        return true;
    }
    let mut groups: Vec<libc::gid_t> = vec![0; 256];
    loop {
        let len = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `groups` has room for `len` gids; getgroups writes at most that many.
        let n = unsafe { libc::getgroups(len, groups.as_mut_ptr()) };
        if n >= 0 {
            groups.truncate(n as usize);
            return groups.contains(&gid);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) || groups.len() > 1 << 16
        {
            return false;
        }
        groups.resize(groups.len() * 4, 0);
    }
}

/// A temp file beside its target, unlinked on drop unless it was renamed over the target.
struct TempFile<'a> {
    dir: &'a Dir,
    name: CString,
    file: File,
    renamed: bool,
}

impl<'a> TempFile<'a> {
    /// Creates `.<name>.flatline.<pid>.tmp` with O_EXCL. A file already there is a leftover
    /// of a crashed flatline whose pid was recycled, or a trap: the name is predictable, and a
    /// writer of the directory may plant a directory or a FIFO there to make every write fail
    /// (a reclaim record that never lands). A regular file is removed once; whatever cannot
    /// be removed is left alone, and a name with a random part is taken instead.
    fn create(dir: &'a Dir, name: &OsStr) -> Result<TempFile<'a>, StoreError> {
        let temp = entry_name(&temp_name(name))?;
        let first = match files::openat(dir.fd(), &temp, TEMP_FLAGS, TEMP_MODE) {
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                match unlinkat(dir.fd(), &temp) {
                    Ok(()) => files::openat(dir.fd(), &temp, TEMP_FLAGS, TEMP_MODE),
                    Err(_) => Err(error),
                }
            }
            other => other,
        };
        let (temp, fd) = match first {
            Ok(fd) => (temp, fd),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                Self::create_random(dir, name)?
            }
            Err(error) => return Err(error.into()),
        };
        Ok(TempFile {
            dir,
            name: temp,
            file: File::from(fd),
            renamed: false,
        })
    }

    /// `.<name>.flatline.<pid>.<random>.tmp`, for when the plain temp name is taken by
    /// something flatline cannot remove.
    fn create_random(dir: &Dir, name: &OsStr) -> Result<(CString, OwnedFd), StoreError> {
        let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
        for _ in 0..8 {
            let random: String = crate::proc::random_bytes()[..8]
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            let temp = entry_name(&random_temp_name(name, &random))?;
            match files::openat(dir.fd(), &temp, TEMP_FLAGS, TEMP_MODE) {
                Ok(fd) => return Ok((temp, fd)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = error,
                Err(error) => return Err(error.into()),
            }
        }
        Err(last.into())
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

/// Places a new file `name` in `dir` holding `content`, never replacing anything (SPEC §12,
/// `flatline run`'s queued delegation): a temp file with `mode` (and the group `group` when
/// this user may give it), fsync, `renameat2(RENAME_NOREPLACE)` onto the name, directory
/// fsync. A name already taken (whatever it is) is `Io(AlreadyExists)` and nothing changes;
/// a reader never sees half a document.
pub fn create_new(
    dir: &Dir,
    name: &OsStr,
    content: &[u8],
    mode: u32,
    group: Option<u32>,
) -> Result<(), StoreError> {
    let cname = entry_name(name)?;
    let mut temp = TempFile::create(dir, name)?;
    if let Some(gid) = group.filter(|gid| in_group(*gid)) {
        std::os::unix::fs::fchown(&temp.file, None, Some(gid))?;
    }
    temp.file
        .set_permissions(Permissions::from_mode(mode & PERMISSION_BITS))?;
    temp.fill(content)?;
    rename_noreplace(dir.fd(), &temp.name, &cname)?;
    temp.renamed = true;
    sync_dir(dir)
}

/// Creates the directory `name` of `dir` with `mode` when it is missing, then opens it
/// without following a symlink (a symlink or a non-directory there is an error).
pub fn ensure_dir(dir: &Dir, name: &OsStr, mode: u32) -> io::Result<Dir> {
    let cname = entry_name(name)?;
    match mkdirat(dir.fd(), &cname, mode) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    dir.open_child(name)?
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
}

/// `renameat2(from, to, RENAME_NOREPLACE)` within one directory; where the kernel or the
/// file system lacks it (ENOSYS, EINVAL), `linkat` + `unlinkat`, which never replaces either.
fn rename_noreplace(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is a live descriptor and both names are NUL-terminated single entries of
    // it; renameat2 with RENAME_NOREPLACE fails with EEXIST rather than replace `to`, and
    // never follows a symlink at either name.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if !matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL)) {
        return Err(error);
    }
    // SAFETY: as above; linkat with flags 0 does not follow `from` and fails with EEXIST
    // when `to` exists.
    let rc = unsafe {
        libc::linkat(
            dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    unlinkat(dir, from)
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
    fn a_document_writable_by_others_is_never_replaced() {
        let scratch = Scratch::new("foreign");
        let file = scratch.path().join("d1.json");
        for mode in [0o666, 0o646] {
            std::fs::write(&file, "old\n").unwrap();
            set_mode(&file, mode);
            let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"old\n", b"new\n");
            assert!(
                matches!(outcome, Err(StoreError::Foreign(_))),
                "{mode:o}: {outcome:?}"
            );
            assert_eq!(std::fs::read(&file).unwrap(), b"old\n");
        }
        if is_root() {
            // Root's document must not be group-writable either.
            set_mode(&file, 0o664);
            let outcome = replace_checked(&scratch.dir(), name("d1.json"), b"old\n", b"new\n");
            assert!(
                matches!(outcome, Err(StoreError::Foreign(_))),
                "{outcome:?}"
            );
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

    fn gid_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().gid()
    }

    fn refused(outcome: Result<RunLock, LockError>) -> String {
        match outcome {
            Err(LockError::Unusable(what)) => what,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn append_lines_never_glues_onto_a_line_without_its_newline() {
        let scratch = Scratch::new("append-mid-line");
        let dir = scratch.dir();
        let file = scratch.path().join("events.jsonl");
        // A writer that died mid-line, or wrote its last event without a newline.
        std::fs::write(&file, b"{\"a\":1}\n{\"b\":2}").unwrap();
        append_lines(
            &dir,
            name("events.jsonl"),
            &[b"{\"c\":3}\n".to_vec(), b"{\"d\":4}\n".to_vec()],
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n"
        );
        // A log that ends well, or is empty, gets no blank line.
        append_lines(&dir, name("events.jsonl"), &[b"{\"e\":5}\n".to_vec()]).unwrap();
        assert!(
            std::fs::read(&file)
                .unwrap()
                .ends_with(b"{\"d\":4}\n{\"e\":5}\n")
        );
        std::fs::write(scratch.path().join("empty.jsonl"), b"").unwrap();
        append_lines(&dir, name("empty.jsonl"), &[b"x\n".to_vec()]).unwrap();
        assert_eq!(
            std::fs::read(scratch.path().join("empty.jsonl")).unwrap(),
            b"x\n"
        );
    }

    #[test]
    fn lock_run_creates_the_state_dir_and_excludes_a_second_holder() {
        let scratch = Scratch::new("lock");
        let run = scratch.dir();
        let never = || false;
        let first = lock_run(&run, None, &never).unwrap();
        assert_eq!(mode_of(&scratch.path().join(".flatline")), 0o750);
        assert_eq!(mode_of(&scratch.path().join(".flatline/lock")), 0o640);
        assert_eq!(
            first.state_dir().path(),
            scratch.path().join(".flatline").as_path()
        );

        let started = Instant::now();
        let busy = lock_run(&run, None, &never);
        assert!(started.elapsed() < Duration::from_millis(100));
        let Err(LockError::Busy(busy)) = busy else {
            panic!("{busy:?}");
        };
        // This process holds it (through another descriptor): /proc/locks names it.
        let me = std::process::id() as i32;
        assert_eq!(busy.holder.map(|h| h.pid), Some(me));
        assert_eq!(busy.waited, Duration::ZERO);
        let text = busy.to_string();
        assert!(
            text.starts_with(&format!(
                "held by pid {me} (uid {})",
                files::effective_uid()
            )),
            "{text}"
        );
        assert!(
            text.contains("flatline waited 0 ms (use --wait DURATION"),
            "{text}"
        );

        let waited = lock_run(&run, Some(Duration::from_millis(60)), &never);
        let Err(LockError::Busy(busy)) = waited else {
            panic!("{waited:?}");
        };
        assert!(busy.waited >= Duration::from_millis(60), "{busy:?}");
        assert!(!busy.to_string().contains("use --wait"));

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
    fn release_lets_another_holder_in_and_reacquire_takes_it_back() {
        let scratch = Scratch::new("release");
        let run = scratch.dir();
        let never = || false;
        let mut lock = lock_run(&run, None, &never).unwrap();
        assert!(lock.is_held());
        lock.release().unwrap();
        assert!(!lock.is_held());
        lock.release().unwrap();

        // Someone else takes it meanwhile: reacquire is Busy, at once or after the wait.
        let other = lock_run(&run, None, &never).unwrap();
        assert!(matches!(
            lock.reacquire(None, &never),
            Err(LockError::Busy(_))
        ));
        match lock.reacquire(Some(Duration::from_millis(40)), &never) {
            Err(LockError::Busy(busy)) => assert!(busy.waited >= Duration::from_millis(40)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            lock.reacquire(Some(Duration::from_secs(10)), &|| true),
            Err(LockError::Stopped)
        ));
        assert!(!lock.is_held());

        // Released by the other: taken back, and it excludes a third again.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(60));
            drop(other);
        });
        lock.reacquire(Some(Duration::from_secs(5)), &never)
            .unwrap();
        releaser.join().unwrap();
        assert!(lock.is_held());
        lock.reacquire(None, &never).unwrap();
        assert!(matches!(
            lock_run(&run, None, &never),
            Err(LockError::Busy(_))
        ));

        // A lock file replaced while flatline let go excludes nobody: refused.
        lock.release().unwrap();
        let path = scratch.path().join(".flatline/lock");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "").unwrap();
        set_mode(&path, 0o640);
        match lock.reacquire(None, &never) {
            Err(LockError::Unusable(what)) => assert_eq!(
                what,
                ".flatline/lock was replaced while flatline waited without it, refused"
            ),
            other => panic!("{other:?}"),
        }
        assert!(!lock.is_held());
        drop(lock_run(&run, None, &never).unwrap());
    }

    #[test]
    fn lock_run_refuses_a_symlinked_state_dir() {
        let scratch = Scratch::new("locklink");
        let elsewhere = Scratch::new("locklink-target");
        set_mode(elsewhere.path(), 0o750);
        symlink(elsewhere.path(), scratch.path().join(".flatline")).unwrap();
        let what = refused(lock_run(&scratch.dir(), None, &|| false));
        assert_eq!(what, ".flatline is a symlink, refused");
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
    fn lock_run_accepts_private_modes_and_refuses_writable_or_open_ones() {
        let scratch = Scratch::new("lockmode");
        let state = scratch.path().join(".flatline");
        std::fs::create_dir(&state).unwrap();
        let shown = state.display().to_string();
        for bad in [0o770, 0o757, 0o2775] {
            set_mode(&state, bad);
            assert_eq!(
                refused(lock_run(&scratch.dir(), None, &|| false)),
                format!(
                    ".flatline has mode {bad:04o}, writable by its group or others, refused; \
                     repair: chmod 0750 {shown}"
                )
            );
        }
        // What an earlier flatline made (0700), a set-gid directory, a read-only group: fine.
        for good in [0o700, 0o2750, 0o750, 0o755] {
            set_mode(&state, good);
            drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
        }

        let lock = state.join("lock");
        for good in [0o600, 0o640, 0o660, 0o400] {
            set_mode(&lock, good);
            drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
        }
        set_mode(&lock, 0o644);
        assert_eq!(
            refused(lock_run(&scratch.dir(), None, &|| false)),
            format!(
                ".flatline/lock has mode 0644, with permissions for others, refused; \
                 repair: chmod 0640 {}",
                lock.display()
            )
        );
        set_mode(&lock, 0o640);

        let state_file = state.join("state.json");
        std::fs::write(&state_file, "{}\n").unwrap();
        set_mode(&state_file, 0o604);
        assert_eq!(
            refused(lock_run(&scratch.dir(), None, &|| false)),
            format!(
                ".flatline/state.json has mode 0604, with permissions for others, refused; \
                 repair: chmod 0640 {}",
                state_file.display()
            )
        );
        // Refused after the flock was taken: it is let go again.
        set_mode(&state_file, 0o600);
        drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
    }

    #[test]
    fn lock_run_refuses_links_symlinks_and_other_kinds_for_lock_and_state() {
        let scratch = Scratch::new("lockowner");
        let state = scratch.path().join(".flatline");
        std::fs::create_dir(&state).unwrap();
        set_mode(&state, 0o750);
        for file in ["lock", "state.json"] {
            let path = state.join(file);
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, "{}\n").unwrap();
            set_mode(&path, 0o640);
            std::fs::hard_link(&path, scratch.path().join("alias")).unwrap();
            assert_eq!(
                refused(lock_run(&scratch.dir(), None, &|| false)),
                format!(
                    ".flatline/{file} has 2 hard links, refused; repair: rm {} (flatline makes \
                     a new one)",
                    path.display()
                )
            );
            std::fs::remove_file(scratch.path().join("alias")).unwrap();

            std::fs::remove_file(&path).unwrap();
            symlink("/etc/passwd", &path).unwrap();
            assert_eq!(
                refused(lock_run(&scratch.dir(), None, &|| false)),
                format!(
                    ".flatline/{file} is a symlink, refused; repair: rm {}",
                    path.display()
                )
            );
            std::fs::remove_file(&path).unwrap();
            mkfifo(&path);
            assert_eq!(
                refused(lock_run(&scratch.dir(), None, &|| false)),
                format!(
                    ".flatline/{file} is a FIFO, not a regular file, refused; repair: rm {}",
                    path.display()
                )
            );
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn lock_run_trusts_a_state_dir_of_the_run_directory_owner_only() {
        if !is_root() {
            return;
        }
        let scratch = Scratch::new("lockowners");
        let state = scratch.path().join(".flatline");
        std::fs::create_dir(&state).unwrap();
        set_mode(&state, 0o750);
        std::os::unix::fs::chown(&state, Some(65534), None).unwrap();
        // Neither root's nor the run directory owner's (root's): refused.
        assert_eq!(
            refused(lock_run(&scratch.dir(), None, &|| false)),
            format!(
                ".flatline is owned by uid 65534, neither flatline's uid 0 nor the run \
                 directory's owner uid 0, refused; repair: chown 0 {}",
                state.display()
            )
        );
        // The run directory's owner's: root accepts it, and its lock (root's) too.
        std::os::unix::fs::chown(scratch.path(), Some(65534), None).unwrap();
        drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
        std::os::unix::fs::chown(state.join("lock"), Some(65534), None).unwrap();
        drop(lock_run(&scratch.dir(), None, &|| false).unwrap());
    }

    #[test]
    fn new_state_files_get_the_lock_group() {
        if !is_root() {
            return;
        }
        let scratch = Scratch::new("lockgroup");
        std::os::unix::fs::chown(scratch.path(), None, Some(4321)).unwrap();
        // By default the run directory's group.
        let lock = lock_run(&scratch.dir(), None, &|| false).unwrap();
        assert!(lock.notices().is_empty());
        let state = scratch.path().join(".flatline");
        assert_eq!(gid_of(&state), 4321);
        assert_eq!(gid_of(&state.join("lock")), 4321);
        write_in_dir_group(lock.state_dir(), name("state.json"), b"{}\n", 0o640).unwrap();
        assert_eq!(gid_of(&state.join("state.json")), 4321);
        assert_eq!(mode_of(&state.join("state.json")), 0o640);
        drop(lock);

        // --lock-group wins over the run directory's group.
        let other = Scratch::new("lockgroup2");
        std::os::unix::fs::chown(other.path(), None, Some(4321)).unwrap();
        let request = LockRequest {
            group: Some(5432),
            wait: None,
            now: 0,
            stop: &|| false,
        };
        drop(lock_run_as(&other.dir(), &request).unwrap());
        assert_eq!(gid_of(&other.path().join(".flatline")), 5432);
        assert_eq!(gid_of(&other.path().join(".flatline/lock")), 5432);
    }

    #[test]
    fn a_busy_run_counts_the_holders_streak_and_a_taken_lock_ends_it() {
        let scratch = Scratch::new("streak");
        let run = scratch.dir();
        let first = lock_run(&run, None, &|| false).unwrap();
        let me = std::process::id() as i32;
        let mut runs = Vec::new();
        for now in [1_000, 2_000, 3_000] {
            let request = LockRequest {
                group: None,
                wait: None,
                now,
                stop: &|| false,
            };
            let Err(LockError::Busy(busy)) = lock_run_as(&run, &request) else {
                panic!("not busy");
            };
            let streak = busy.streak.clone().unwrap();
            assert_eq!(
                (streak.pid, streak.since.as_str()),
                (me, "1970-01-01T00:00:01.000Z")
            );
            runs.push(streak.runs);
            if streak.runs < 3 {
                assert!(lock_held(&run).is_none());
                assert!(!busy.to_string().contains("lock_held"));
            } else {
                assert!(busy.to_string().ends_with(&format!(
                    "; lock_held: pid {me} (uid {}) has held the run lock across 3 runs since \
                     1970-01-01T00:00:01.000Z",
                    files::effective_uid()
                )));
            }
        }
        assert_eq!(runs, [1, 2, 3]);
        assert_eq!(lock_held(&run).map(|s| s.runs), Some(3));
        let record = scratch.path().join(".flatline/lock_holders.json");
        assert_eq!(mode_of(&record), 0o640);
        drop(first);
        // No one holds it now: not a problem, even before a run clears the record.
        assert!(lock_held(&run).is_none());
        drop(lock_run(&run, None, &|| false).unwrap());
        assert!(!record.exists());
    }

    #[test]
    fn a_streak_continues_only_with_the_same_pid_and_uid() {
        let holder = LockHolder {
            pid: 42,
            uid: Some(7),
        };
        let one = HolderStreak::next(None, holder, 1_000);
        assert_eq!(one.runs, 1);
        let two = HolderStreak::next(Some(one.clone()), holder, 2_000);
        assert_eq!((two.runs, two.since.as_str()), (2, one.since.as_str()));
        assert_eq!(two.last_seen_at, "1970-01-01T00:00:02.000Z");
        assert!(!two.is_lock_held());
        let three = HolderStreak::next(Some(two.clone()), holder, 3_000);
        assert!(three.is_lock_held());
        let other_pid = LockHolder { pid: 43, ..holder };
        assert_eq!(
            HolderStreak::next(Some(three.clone()), other_pid, 4_000).runs,
            1
        );
        let other_uid = LockHolder {
            uid: Some(8),
            ..holder
        };
        assert_eq!(HolderStreak::next(Some(three), other_uid, 4_000).runs, 1);
    }

    #[test]
    fn proc_locks_names_the_holder_of_one_inode() {
        let text = b"1: POSIX  ADVISORY  WRITE 900 fe:00:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fe:00:10011875 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5151 fe:00:10011875 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 0 103:02:55 0 EOF\n\
                     4: OFDLCK ADVISORY  READ -1 103:02:56 0 EOF\n\
                     garbage\n";
        assert_eq!(lock_holder_pid(text, 0xfe, 0, 10011875), Some(4242));
        assert_eq!(lock_holder_pid(text, 0xfe, 0, 77), Some(900));
        assert_eq!(lock_holder_pid(text, 0xfe, 1, 10011875), None);
        assert_eq!(
            lock_holder_pid(text, 0x103, 2, 55),
            None,
            "pid 0: not mapped here"
        );
        assert_eq!(lock_holder_pid(text, 0x103, 2, 56), None);
        assert_eq!(lock_holder_pid(b"", 1, 1, 1), None);
        // A waiter alone is no holder.
        let waiting = b"2: -> FLOCK  ADVISORY  WRITE 5151 fe:00:9 0 EOF\n";
        assert_eq!(lock_holder_pid(waiting, 0xfe, 0, 9), None);
    }

    #[test]
    fn devices_split_as_glibc_does() {
        assert_eq!(dev_major_minor(0xfe00), (0xfe, 0));
        assert_eq!(dev_major_minor(0x10302), (0x103, 2));
        // glibc's makedev, for devices with big numbers.
        let makedev = |major: u64, minor: u64| {
            (minor & 0xff)
                | ((major & 0xfff) << 8)
                | ((minor & !0xff) << 12)
                | ((major & !0xfff) << 32)
        };
        assert_eq!(
            dev_major_minor(makedev(0x12345, 0x6789a)),
            (0x12345, 0x6789a)
        );
    }

    #[test]
    fn groups_resolve_by_number_or_name() {
        assert_eq!(group_id("4321").unwrap(), Some(4321));
        assert_eq!(group_id("root").unwrap(), Some(0));
        assert_eq!(group_id("no-such-group-flatline").unwrap(), None);
        assert!(group_id("99999999999").is_err());
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
        let random = random_temp_name(name("d1.json"), "0123456789abcdef");
        assert!(is_temp_name(&random));
        assert!(!is_temp_name(name(".d1.json.flatline.1.xyz.tmp")));
    }

    /// A writer of the directory plants what flatline cannot remove (a non-empty directory,
    /// a FIFO) at the predictable temp name: the write still lands, through a random name,
    /// and the trap is left as it was.
    #[test]
    fn a_trap_at_the_temp_name_does_not_stop_the_write() {
        let scratch = Scratch::new("trap");
        let dir = scratch.dir();
        std::fs::write(scratch.path().join("d.json"), b"{}\n").unwrap();
        let trap = scratch.path().join(temp_name(name("d.json")));
        std::fs::create_dir(&trap).unwrap();
        std::fs::write(trap.join("inside"), b"x").unwrap();
        write_atomic(&dir, name("d.json"), b"{\"a\":1}\n", 0o644).unwrap();
        assert_eq!(
            std::fs::read(scratch.path().join("d.json")).unwrap(),
            b"{\"a\":1}\n"
        );
        assert!(trap.join("inside").exists(), "the trap is left alone");
        let temps: Vec<String> = scratch
            .names()
            .into_iter()
            .filter(|n| {
                is_temp_name(OsStr::new(n)) && *n != trap.file_name().unwrap().to_string_lossy()
            })
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
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
