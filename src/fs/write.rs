//! write: atomic, checked, durable writes beneath a run directory (the temp files are in
//! `temp`, the run lock in `lock` and `state_dir`).
//!
//! Every write goes through a directory descriptor and a single file name, never a path
//! string, and never through a symlink (SPEC §4). A replaced file gets a temp file
//! `.<name>.flatline.<pid>.tmp` in the same directory carrying the original's owner, group
//! and mode; it is fsynced, the original is read again and compared with what the caller
//! read, and only then renamed over it. A failed call never leaves its temp file behind.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;

use super::read::Dir;
use crate::fs as files;
use crate::sys;
use temp::{TempFile, check_replaceable, entry_name, lstat_settled, open_error, open_existing};

pub(in crate::fs) mod temp;

pub use temp::*;

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
pub(super) const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
pub(super) const TEMP_FLAGS: libc::c_int =
    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
pub(super) const TEMP_MODE: u32 = 0o600;
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
pub(super) const PERMISSION_BITS: u32 = 0o7777;

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
    // Still no link after settling: other writers are renaming files over this one right
    // now. That is a change, never a hard-link refusal: the caller recomputes from what the
    // entry holds, and reports a conflict if it keeps changing.
    if meta.nlink == 0 {
        return read_current(dir, name, &cname).map(Replaced::Changed);
    }
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
    // No link left on the file just read: a new one was renamed over it after the open.
    let replaced = now.nlink == 0;
    if too_long || replaced || now.dev != meta.dev || now.ino != meta.ino || bytes != expected {
        return Ok(Replaced::Changed(bytes));
    }
    temp.rename_over(&cname)?;
    Ok(Replaced::Written)
}

/// What the entry `name` holds now (at most one byte past the document limit), for a
/// `Replaced::Changed`.
fn read_current(dir: &Dir, name: &OsStr, cname: &std::ffi::CStr) -> Result<Vec<u8>, StoreError> {
    let (current, _) = open_existing(dir, name, cname)?;
    let mut bytes = Vec::new();
    File::from(current)
        .take(files::MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
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
pub(super) fn write_atomic_with(
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
    sys::fd::fsync(dir.fd()).map_err(StoreError::Io)
}

/// The integration tests' way to show that a change made by another writer between
/// flatline's read and its rename is detected (debug builds only).
/// `FLATLINE_TEST_INTERFERE=<file name>:<count>` makes the first `<count>` checked replaces
/// of that file in this process rewrite it in place first, with a top-level
/// `"test_interference": k` (k counting from 1).
#[cfg(debug_assertions)]
mod test_hook {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
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
/// this user may give it), fsync, `renameat2(RENAME_NOREPLACE)` onto the name. A name
/// already taken (whatever it is) is `Io(AlreadyExists)` and nothing changes; a reader never
/// sees half a document, and a power loss leaves the whole document or none. The directory
/// is not fsynced here: the caller does it once for its batch (`sync_dir`).
pub fn create_new(
    dir: &Dir,
    name: &OsStr,
    content: &[u8],
    mode: u32,
    group: Option<u32>,
) -> Result<(), StoreError> {
    let cname = entry_name(name)?;
    let temp = TempFile::create(dir, name)?;
    if let Some(gid) = group.filter(|gid| super::group::in_group(*gid)) {
        std::os::unix::fs::fchown(&temp.file, None, Some(gid))?;
    }
    temp.file
        .set_permissions(Permissions::from_mode(mode & PERMISSION_BITS))?;
    temp.fill(content)?;
    temp.rename_new(&cname)
}

/// Removes `name` from `dir` if it is still the file `created` (same device and inode, and
/// still empty): what a command made and must not leave behind when it stops before using
/// it. `Ok(false)` when something else has the name now (it is left alone).
pub fn remove_created(dir: &Dir, name: &OsStr, created: &files::FileMeta) -> io::Result<bool> {
    let cname = entry_name(name)?;
    let now = files::lstatat(dir.fd(), name)?;
    if (now.dev, now.ino) != (created.dev, created.ino) || now.size != 0 {
        return Ok(false);
    }
    sys::fd::unlinkat(dir.fd(), &cname)?;
    Ok(true)
}

/// Creates the directory `name` of `dir` with `mode` when it is missing, then opens it
/// without following a symlink (a symlink or a non-directory there is an error).
pub fn ensure_dir(dir: &Dir, name: &OsStr, mode: u32) -> io::Result<Dir> {
    let cname = entry_name(name)?;
    match sys::fd::mkdirat(dir.fd(), &cname, mode) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    dir.open_child(name)?
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
}

#[cfg(test)]
mod tests;
