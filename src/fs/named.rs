//! named: paths a document names (event streams, heartbeats, inboxes), resolved beneath the
//! run directory without a symlink (`openat2`) and checked before they are read.

use super::meta::{FOREIGN_OWNER, FileMeta, ReadError};
use super::read::{Dir, cstring, fstat, lstatat, openat};
use crate::sys;
use owner as as_owner;
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

pub(in crate::fs) mod owner;

pub use owner::effective_uid;

/// Where a path named inside a document may lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedPathPolicy {
    /// `--allow-outside-paths`: absolute paths outside the run directory are accepted (still
    /// without symlinks and only regular files).
    pub allow_outside: bool,
    /// The uid that must own the file (the delegation's owner); root-owned files are always
    /// accepted.
    pub owner: u32,
}

/// A run directory together with its canonical absolute path, which is what absolute paths
/// inside its documents are compared with.
#[derive(Debug)]
pub struct RunRoot {
    pub dir: Dir,
    pub real_path: PathBuf,
}

/// A file named by a document, opened `O_PATH` and checked, not yet readable; or, when it
/// was opened as the document's owner (SPEC §1.3), already open for reading.
#[derive(Debug)]
pub struct NamedFile {
    pub(super) fd: OwnedFd,
    pub meta: FileMeta,
    /// `fd` was opened for reading by the owner's reader thread: the kernel already said
    /// that the owner may read it.
    pub(super) opened: bool,
}

impl NamedFile {
    /// Reopens the checked descriptor for reading. Through `/proc/self/fd` when it is
    /// mounted (the same inode, no second lookup); otherwise the path is resolved again under
    /// the same rules and must lead to the same inode. A file the owner's reader thread
    /// opened is handed over as is (a duplicate, rewound to its start).
    pub fn open_for_read(
        &self,
        root: &RunRoot,
        path: &Path,
        policy: NamedPathPolicy,
    ) -> Result<File, ReadError> {
        if self.opened {
            let mut file = File::from(self.fd.try_clone()?);
            std::io::Seek::rewind(&mut file)?;
            return Ok(file);
        }
        let fd = reopen_for_read(self, root.dir.fd(), &root.real_path, path, policy)?;
        Ok(File::from(fd))
    }
}

/// Flags of a descriptor reopened for reading.
const REOPEN_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

pub(super) fn reopen_for_read(
    named: &NamedFile,
    dir: BorrowedFd<'_>,
    real_path: &Path,
    path: &Path,
    policy: NamedPathPolicy,
) -> Result<OwnedFd, ReadError> {
    let proc_path = format!("/proc/self/fd/{}\0", named.fd.as_raw_fd());
    let cproc = CStr::from_bytes_with_nul(proc_path.as_bytes())
        .map_err(|_| ReadError::Io(io::Error::other("bad descriptor path")))?;
    let fd = match sys::fd::open(cproc, REOPEN_FLAGS) {
        Ok(fd) => fd,
        // No /proc: resolve again (the inode is compared below).
        Err(_) => resolve_at(dir, real_path, path, policy, REOPEN_FLAGS)?,
    };
    let meta = fstat(fd.as_fd())?;
    if meta.dev != named.meta.dev || meta.ino != named.meta.ino || !meta.is_regular() {
        return Err(ReadError::Io(io::Error::other(
            "the file changed while it was opened",
        )));
    }
    Ok(fd)
}

/// Resolves a path named inside a document under SPEC §1.3: relative paths beneath the run
/// directory, absolute ones only when they lie beneath it (or `allow_outside`), no symlink in
/// any component, only a regular file owned by `policy.owner` or root, with one link unless
/// the (non-root) owner's own; and, for a document flatline's own identity does not speak
/// for, resolved and opened by a reader thread that wears the owner's identity
/// (`as_owner`), so that the kernel refuses what the owner could not read.
pub fn open_named(
    root: &RunRoot,
    path: &Path,
    policy: NamedPathPolicy,
) -> Result<NamedFile, ReadError> {
    // A foreign document (SPEC §1.3) speaks for nobody: nothing is read on its behalf,
    // and FOREIGN_OWNER must never reach setfsuid (-1 only queries).
    if policy.owner == FOREIGN_OWNER {
        return Err(ReadError::ForeignDocument);
    }
    if reads_here(policy.owner) {
        return open_named_at(root.dir.fd(), &root.real_path, path, policy);
    }
    as_owner::open(root, path, policy)
}

/// What a stat of a named file shows, under the rules of `open_named` (as the owner).
pub fn stat_named(
    root: &RunRoot,
    path: &Path,
    policy: NamedPathPolicy,
) -> Result<FileMeta, ReadError> {
    open_named(root, path, policy).map(|named| named.meta)
}

/// `stat_named` for many files of one run: those flatline reads for on its own thread
/// are stat'ed there, the others in one round trip to the owners' reader thread. One answer
/// per file, in order.
pub fn stat_named_many(
    root: &RunRoot,
    files: &[(PathBuf, NamedPathPolicy)],
) -> Vec<Result<FileMeta, ReadError>> {
    let mut answers: Vec<Option<Result<FileMeta, ReadError>>> = files
        .iter()
        .map(|(path, policy)| {
            if policy.owner == FOREIGN_OWNER {
                return Some(Err(ReadError::ForeignDocument));
            }
            reads_here(policy.owner).then(|| {
                open_named_at(root.dir.fd(), &root.real_path, path, *policy).map(|named| named.meta)
            })
        })
        .collect();
    let remote: Vec<(PathBuf, NamedPathPolicy)> = files
        .iter()
        .zip(&answers)
        .filter(|(_, answer)| answer.is_none())
        .map(|(file, _)| file.clone())
        .collect();
    let mut replies = as_owner::open_many(root, remote).into_iter();
    answers
        .iter_mut()
        .map(|answer| match answer.take() {
            Some(answer) => answer,
            None => replies
                .next()
                .unwrap_or_else(|| Err(ReadError::Io(io::Error::other("no answer"))))
                .map(|named| named.meta),
        })
        .collect()
}

/// Whether flatline's own thread may read for a document of `owner`: root's documents when
/// flatline is root, and its own user's when it holds no effective capability (which would
/// let it read what that user could not). Everything else goes through `as_owner`.
fn reads_here(owner: u32) -> bool {
    let euid = effective_uid();
    owner == euid && (euid == 0 || !as_owner::has_effective_capabilities())
}

pub(super) fn open_named_at(
    dir: BorrowedFd<'_>,
    real_path: &Path,
    path: &Path,
    policy: NamedPathPolicy,
) -> Result<NamedFile, ReadError> {
    let fd = resolve_at(dir, real_path, path, policy, libc::O_PATH | libc::O_CLOEXEC)?;
    let meta = fstat(fd.as_fd())?;
    if meta.mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(ReadError::Symlink);
    }
    if !meta.is_regular() {
        return Err(ReadError::NotRegular(meta.kind()));
    }
    if meta.uid != policy.owner && meta.uid != 0 {
        return Err(ReadError::ForeignOwner {
            uid: meta.uid,
            expected: policy.owner,
        });
    }
    // A file with a second name may be a hard link an agent made to a secret elsewhere on
    // the file system (possible where fs.protected_hardlinks is off); only a non-root
    // owner's own file may have several.
    if meta.nlink > 1 && !(meta.uid == policy.owner && policy.owner != 0) {
        return Err(ReadError::MultipleLinks(meta.nlink));
    }
    Ok(NamedFile {
        fd,
        meta,
        opened: false,
    })
}

fn resolve_at(
    dir: BorrowedFd<'_>,
    real_path: &Path,
    path: &Path,
    policy: NamedPathPolicy,
    flags: libc::c_int,
) -> Result<OwnedFd, ReadError> {
    if path.as_os_str().is_empty() {
        return Err(ReadError::NotFound);
    }
    if path.is_absolute() {
        if let Ok(relative) = path.strip_prefix(real_path) {
            if relative.as_os_str().is_empty() {
                return Err(ReadError::NotRegular("a directory"));
            }
            return resolve_beneath(dir, relative, flags);
        }
        if !policy.allow_outside {
            return Err(ReadError::OutsideRun);
        }
        let slash = Dir::open(Path::new("/")).map_err(ReadError::Io)?;
        let relative = path.strip_prefix("/").unwrap_or(path);
        return resolve_beneath(slash.fd(), relative, flags);
    }
    resolve_beneath(dir, path, flags)
}

/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, or, on kernels
/// without it, a walk that opens each component with `O_NOFOLLOW` and refuses `..`.
fn resolve_beneath(
    dir: BorrowedFd<'_>,
    relative: &Path,
    flags: libc::c_int,
) -> Result<OwnedFd, ReadError> {
    let cpath = cstring(relative.as_os_str())?;
    let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    match sys::fd::openat2(dir, &cpath, flags as u64, resolve) {
        Ok(fd) => Ok(fd),
        Err(error) => match error.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) => walk_beneath(dir, relative, flags),
            _ => Err(error.into()),
        },
    }
}

pub(super) fn walk_beneath(
    dir: BorrowedFd<'_>,
    relative: &Path,
    flags: libc::c_int,
) -> Result<OwnedFd, ReadError> {
    let components: Vec<&OsStr> = relative
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(Ok(name)),
            Component::CurDir => None,
            _ => Some(Err(())),
        })
        .collect::<Result<_, _>>()
        .map_err(|()| ReadError::Escapes)?;
    let Some((last, parents)) = components.split_last() else {
        return Err(ReadError::NotRegular("a directory"));
    };
    let mut current: Option<OwnedFd> = None;
    for name in parents {
        let cname = cstring(name)?;
        let base = current.as_ref().map_or(dir, |fd| fd.as_fd());
        let next = openat(
            base,
            &cname,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        );
        match next {
            Ok(fd) => current = Some(fd),
            // O_PATH | O_NOFOLLOW on a symlink with O_DIRECTORY fails with ENOTDIR: say why.
            Err(error) if error.raw_os_error() == Some(libc::ENOTDIR) => {
                return match lstatat(base, name) {
                    Ok(meta) if meta.mode & libc::S_IFMT == libc::S_IFLNK => {
                        Err(ReadError::Symlink)
                    }
                    _ => Err(ReadError::NotRegular("not a directory on the way")),
                };
            }
            Err(error) => return Err(error.into()),
        }
    }
    let cname = cstring(last)?;
    let base = current.as_ref().map_or(dir, |fd| fd.as_fd());
    Ok(openat(base, &cname, flags | libc::O_NOFOLLOW, 0)?)
}
