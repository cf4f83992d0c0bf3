//! state_dir: opening and checking `.flatline/` and its shared files (lock, state,
//! lock holders) before the run lock is taken.

use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::io::{self};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{LOCK_FILE, LockError, SHARED_FILE_MODE, STATE_DIR, STATE_DIR_MODE, STATE_FILE};
use crate::fs as files;
use crate::fs::group::{effective_gid, in_group};
use crate::fs::meta::FileMeta;
use crate::fs::read::Dir;
use crate::fs::write::temp::entry_name;
use crate::fs::write::{PERMISSION_BITS, READ_FLAGS};
use crate::sys::fd::mkdirat;

pub(super) fn open_state_dir(
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

pub(super) fn open_lock_file(
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
pub(super) fn check_state_file(state_dir: &Dir) -> Result<(), LockError> {
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
