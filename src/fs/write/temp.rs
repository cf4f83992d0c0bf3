//! temp: the temp file a write fills beside its target (`.<name>.flatline.<pid>.tmp`), its
//! names, and the removal of leftovers.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;

use super::{PERMISSION_BITS, READ_FLAGS, StoreError, TEMP_FLAGS, TEMP_MODE};
use crate::fs as files;
use crate::fs::meta::FileMeta;
use crate::fs::race;
use crate::fs::read::Dir;
use crate::sys::fd::{renameat, unlinkat};

/// Removes flatline's own leftover temp files (`.<name>.flatline.<pid>.tmp`) among
/// `entries` of `dir`. Only called while the run lock is held, when no other flatline can be
/// writing there. Anything that is not a regular file is left alone; nothing is followed.
pub fn remove_stale_temps(dir: &Dir, entries: &files::Entries) -> Result<usize, StoreError> {
    let mut removed = 0;
    for entry in entries {
        if !is_temp_name(entry.name) {
            continue;
        }
        match files::lstatat(dir.fd(), entry.name) {
            Ok(meta) if meta.is_regular() => {}
            Ok(_) => continue,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(StoreError::Io(error)),
        }
        let cname = entry_name(entry.name)?;
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
pub(in crate::fs) fn random_temp_name(name: &OsStr, random: &str) -> OsString {
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

/// A temp file beside its target, unlinked on drop unless it was renamed over the target.
pub(in crate::fs) struct TempFile<'a> {
    dir: &'a Dir,
    name: CString,
    pub(in crate::fs) file: File,
    renamed: bool,
}

impl<'a> TempFile<'a> {
    /// Creates `.<name>.flatline.<pid>.tmp` with O_EXCL. A file already there is a leftover
    /// of a crashed flatline whose pid was recycled, or a trap: the name is predictable, and a
    /// writer of the directory may plant a directory or a FIFO there to make every write fail
    /// (a reclaim record that never lands). A regular file is removed once; whatever cannot
    /// be removed is left alone, and a name with a random part is taken instead.
    pub(in crate::fs) fn create(dir: &'a Dir, name: &OsStr) -> Result<TempFile<'a>, StoreError> {
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
    pub(in crate::fs) fn keep_ownership(&self, original: &FileMeta) -> Result<(), StoreError> {
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

    pub(in crate::fs) fn fill(&self, content: &[u8]) -> Result<(), StoreError> {
        (&self.file).write_all(content)?;
        self.file.sync_all()?;
        Ok(())
    }

    /// Renames the temp file to `target` only if nothing has that name (SPEC §12): never
    /// replaces anything; a name taken is `Io(AlreadyExists)`.
    pub(in crate::fs) fn rename_new(mut self, target: &CStr) -> Result<(), StoreError> {
        crate::sys::fd::rename_noreplace(self.dir.fd(), &self.name, target)?;
        self.renamed = true;
        Ok(())
    }

    pub(in crate::fs) fn rename_over(mut self, target: &CStr) -> Result<(), StoreError> {
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
pub(in crate::fs) fn lstat_settled(dir: &Dir, name: &OsStr) -> Result<FileMeta, StoreError> {
    let mut attempts = 0;
    loop {
        let mut meta =
            files::lstatat(dir.fd(), name).map_err(|error| match error.raw_os_error() {
                Some(libc::ENOENT) => StoreError::Io(error),
                _ => open_error(error),
            })?;
        race::after_stat(&mut meta);
        if meta.nlink == 0 && attempts < race::SETTLE_ATTEMPTS {
            attempts += 1;
            std::thread::yield_now();
            continue;
        }
        return Ok(meta);
    }
}

pub(in crate::fs) fn open_existing(
    dir: &Dir,
    name: &OsStr,
    cname: &CStr,
) -> Result<(OwnedFd, FileMeta), StoreError> {
    let mut attempts = 0;
    loop {
        // Refuse devices before opening them: an open alone can have side effects. An entry
        // still being replaced (no link after settling) is checked for its kind only: the
        // file opened next is looked at again.
        check_settled(&lstat_settled(dir, name)?)?;
        let fd = files::openat(dir.fd(), cname, READ_FLAGS, 0).map_err(open_error)?;
        race::after_open();
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

/// `check_replaceable` for a stat that may show no link at all: a file another writer
/// renamed a new one over while it was stat'ed. Its kind is checked; its link count says
/// nothing about the entry's current file.
pub(in crate::fs) fn check_settled(meta: &FileMeta) -> Result<(), StoreError> {
    if meta.nlink == 0 {
        return check_replaceable(&FileMeta { nlink: 1, ..*meta });
    }
    check_replaceable(meta)
}

pub(in crate::fs) fn check_replaceable(meta: &FileMeta) -> Result<(), StoreError> {
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

pub(in crate::fs) fn open_error(error: io::Error) -> StoreError {
    match error.raw_os_error() {
        Some(libc::ELOOP) => StoreError::Symlink,
        _ => StoreError::Io(error),
    }
}

/// A single directory entry name as a C string: no NUL, no '/', not empty, not `.` or `..`,
/// so that every `*at` call stays inside the directory it is given.
pub(in crate::fs) fn entry_name(name: &OsStr) -> io::Result<CString> {
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
