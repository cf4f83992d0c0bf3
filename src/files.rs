//! files: directory descriptors and bounded reads that never follow a symlink.
//!
//! Everything flatline reads beneath a run directory goes through a `Dir` (a descriptor, not
//! a path string), so a symlink swapped in by an agent cannot redirect a read. Two kinds of
//! reads exist: directory entries (`read_entry`: delegations, task cards, specs), and paths
//! that a document names (`open_named`: event streams, heartbeats, inboxes), which are
//! resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and only reopened for reading
//! once `fstat` has shown a regular file owned by the expected user.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Largest document flatline reads (delegations, task cards, specs, heartbeats).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// A directory opened by descriptor. `path` is only for messages.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What `fstat` said about a file, in the units flatline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub size: u64,
    /// Modification time, truncated to whole milliseconds since the Unix epoch.
    pub mtime_ms: i64,
}

impl FileMeta {
    fn from_stat(st: &libc::stat) -> FileMeta {
        FileMeta {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: st.st_nlink,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ms: st
                .st_mtime
                .saturating_mul(1000)
                .saturating_add(st.st_mtime_nsec / 1_000_000),
        }
    }

    pub fn is_regular(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// The file type in words, for messages.
    pub fn kind(&self) -> &'static str {
        kind_of_mode(self.mode)
    }
}

fn kind_of_mode(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "not a regular file",
    }
}

/// Why a file could not be read. The `Display` text is the "what is wrong" of an error line.
#[derive(Debug)]
pub enum ReadError {
    NotFound,
    Symlink,
    NotRegular(&'static str),
    TooLarge(usize),
    MultipleLinks(u64),
    ForeignOwner { uid: u32, expected: u32 },
    OutsideRun,
    Escapes,
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("no such file"),
            ReadError::Symlink => f.write_str("is a symlink (or passes through one), refused"),
            ReadError::NotRegular(kind) => write!(f, "is {kind}, not a regular file, refused"),
            ReadError::TooLarge(limit) => {
                write!(f, "larger than {} MiB, not read", limit / (1024 * 1024))
            }
            ReadError::MultipleLinks(n) => write!(
                f,
                "has {n} hard links (it may be a link to a file outside the run), refused"
            ),
            ReadError::ForeignOwner { uid, expected } => write!(
                f,
                "owned by uid {uid}, not by the delegation's owner (uid {expected}) or root, refused"
            ),
            ReadError::OutsideRun => f.write_str(
                "path_outside_run: lies outside the run directory (see --allow-outside-paths)",
            ),
            ReadError::Escapes => f.write_str("path_outside_run: escapes the run directory"),
            ReadError::Io(error) => write!(f, "{}", io_message(error)),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        match error.raw_os_error() {
            Some(libc::ENOENT) => ReadError::NotFound,
            Some(libc::ELOOP) => ReadError::Symlink,
            Some(libc::EXDEV) => ReadError::Escapes,
            _ => ReadError::Io(error),
        }
    }
}

/// An `io::Error` without Rust's " (os error N)" suffix, for one-line messages.
pub fn io_message(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(index) => text[..index].to_lowercase(),
        None => text,
    }
}

/// The type of a directory entry as readdir reported it (without a stat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Regular,
    Dir,
    Symlink,
    Other(&'static str),
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: OsString,
    pub kind: EntryKind,
}

fn cstring(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn fstat_fd(fd: RawFd) -> io::Result<FileMeta> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is an open descriptor owned by the caller and `st` is a valid out-pointer.
    let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if rc != 0 {
        return Err(last_error());
    }
    // SAFETY: fstat succeeded, so it initialized `st`.
    let st = unsafe { st.assume_init() };
    Ok(FileMeta::from_stat(&st))
}

/// What `seek_to` looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// The next byte of data (`SEEK_DATA`).
    Data,
    /// The next hole, or the end of the file (`SEEK_HOLE`).
    Hole,
}

/// Where the next data or hole of `file` begins at or after `offset` (and moves the file
/// position there); `Ok(None)` when there is none (`ENXIO`: `offset` is at or past the end).
pub fn seek_to(file: &File, what: Seek, offset: i64) -> io::Result<Option<i64>> {
    let whence = match what {
        Seek::Data => libc::SEEK_DATA,
        Seek::Hole => libc::SEEK_HOLE,
    };
    // SAFETY: lseek on a live descriptor borrowed from `file`; no memory is passed.
    let at = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if at >= 0 {
        return Ok(Some(at));
    }
    let error = last_error();
    match error.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        _ => Err(error),
    }
}

/// `openat` relative to a directory descriptor; returns an owned descriptor.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and `dir` is a live descriptor; the kernel returns a
    // new descriptor or -1.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) };
    if fd < 0 {
        return Err(last_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileMeta> {
    fstat_fd(fd.as_raw_fd())
}

/// `fstatat` without following a final symlink.
pub fn lstatat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<FileMeta> {
    let cname = cstring(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid descriptor, NUL-terminated name, valid out-pointer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(last_error());
    }
    // SAFETY: fstatat succeeded, so it initialized `st`.
    let st = unsafe { st.assume_init() };
    Ok(FileMeta::from_stat(&st))
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

impl Dir {
    /// Opens a directory the operator named on the command line. Symlinks in that path are
    /// the operator's own choice and are followed; nothing beneath it is.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let cpath = cstring(path.as_os_str())?;
        // SAFETY: NUL-terminated path; the kernel returns a new descriptor or -1.
        let fd = unsafe { libc::open(cpath.as_ptr(), DIR_FLAGS) };
        if fd < 0 {
            return Err(last_error());
        }
        // SAFETY: `fd` was just returned by open.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the subdirectory `name` without following a symlink. `Ok(None)` when it does
    /// not exist; an error (ELOOP/ENOTDIR) when it is a symlink or not a directory.
    pub fn open_child(&self, name: &OsStr) -> io::Result<Option<Dir>> {
        let cname = cstring(name)?;
        match openat(self.fd.as_fd(), &cname, DIR_FLAGS | libc::O_NOFOLLOW, 0) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.path.join(name),
            })),
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            // O_DIRECTORY wins over O_NOFOLLOW: a symlink fails with ENOTDIR. Say ELOOP.
            Err(error) if error.raw_os_error() == Some(libc::ENOTDIR) => {
                match lstatat(self.fd(), name) {
                    Ok(meta) if meta.mode & libc::S_IFMT == libc::S_IFLNK => {
                        Err(io::Error::from_raw_os_error(libc::ELOOP))
                    }
                    _ => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Wraps a descriptor already known to be a directory.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir { fd, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of an entry of this directory, for messages and records.
    pub fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn meta(&self) -> io::Result<FileMeta> {
        fstat_fd(self.fd.as_raw_fd())
    }

    /// Every entry but `.` and `..`, sorted by the bytes of the name so that output is
    /// deterministic whatever order the file system returns.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        // SAFETY: dup of a live descriptor; fdopendir takes ownership of the duplicate, and
        // closedir below releases it.
        let dup = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(last_error());
        }
        // SAFETY: `dup` is a fresh descriptor of a directory.
        let stream = unsafe { libc::fdopendir(dup) };
        if stream.is_null() {
            let error = last_error();
            // SAFETY: fdopendir failed, so `dup` is still ours to close.
            unsafe { libc::close(dup) };
            return Err(error);
        }
        // The duplicate shares the file offset with our descriptor: start from the top.
        // SAFETY: `stream` is a valid DIR*.
        unsafe { libc::rewinddir(stream) };
        let mut entries = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; reset it to tell end-of-directory from failure.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `stream` is a valid DIR*; the returned entry stays valid until the next
            // readdir or closedir on it, and is copied out before either.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                let errno = unsafe { *libc::__errno_location() };
                break if errno == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(errno))
                };
            }
            // SAFETY: d_name is a NUL-terminated array inside the entry.
            let (name, d_type) = unsafe {
                (
                    CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes().to_vec(),
                    (*entry).d_type,
                )
            };
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match d_type {
                libc::DT_REG => EntryKind::Regular,
                libc::DT_DIR => EntryKind::Dir,
                libc::DT_LNK => EntryKind::Symlink,
                libc::DT_FIFO => EntryKind::Other("a FIFO"),
                libc::DT_SOCK => EntryKind::Other("a socket"),
                libc::DT_CHR => EntryKind::Other("a character device"),
                libc::DT_BLK => EntryKind::Other("a block device"),
                _ => EntryKind::Unknown,
            };
            entries.push(Entry {
                name: OsString::from_vec(name),
                kind,
            });
        };
        // SAFETY: `stream` is valid and closed exactly once.
        unsafe { libc::closedir(stream) };
        result?;
        entries.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Ok(entries)
    }

    /// Reads the regular file `entry` of this directory into `buf` (cleared first), at most
    /// `limit` bytes. Never follows a symlink, never blocks on a FIFO, and never opens a
    /// device: the entry's type is checked before the open and the descriptor's after it.
    pub fn read_entry(
        &self,
        entry: &Entry,
        limit: usize,
        buf: &mut Vec<u8>,
    ) -> Result<FileMeta, ReadError> {
        let (mut file, meta) = self.open_entry(entry)?;
        read_bounded(&mut file, meta.size, limit, buf)?;
        Ok(meta)
    }

    /// Opens the regular file `entry` of this directory for reading, with the checks of
    /// `read_entry`, and gives the descriptor with what `fstat` said of it.
    pub fn open_entry(&self, entry: &Entry) -> Result<(File, FileMeta), ReadError> {
        match entry.kind {
            EntryKind::Regular => {}
            EntryKind::Symlink => return Err(ReadError::Symlink),
            EntryKind::Dir => return Err(ReadError::NotRegular("a directory")),
            EntryKind::Other(kind) => return Err(ReadError::NotRegular(kind)),
            EntryKind::Unknown => {
                let meta = lstatat(self.fd(), &entry.name)?;
                if !meta.is_regular() {
                    return Err(ReadError::NotRegular(meta.kind()));
                }
            }
        }
        self.open_file(&entry.name)
    }

    /// Whether flatline may create and rename files here, by its effective ids (a
    /// read-only filesystem, or a directory another user owns without write access, says
    /// no): a document there cannot be recorded.
    pub fn writable(&self) -> bool {
        // SAFETY: faccessat on our directory descriptor with a NUL-terminated "." and no
        // pointers kept.
        unsafe {
            libc::faccessat(
                self.fd.as_raw_fd(),
                c".".as_ptr(),
                libc::W_OK | libc::X_OK,
                libc::AT_EACCESS,
            ) == 0
        }
    }

    /// Reads the regular file `name` of this directory (see `read_entry`).
    pub fn read_file(
        &self,
        name: &OsStr,
        limit: usize,
        buf: &mut Vec<u8>,
    ) -> Result<FileMeta, ReadError> {
        let (mut file, meta) = self.open_file(name)?;
        read_bounded(&mut file, meta.size, limit, buf)?;
        Ok(meta)
    }

    /// Opens the regular file `name` of this directory (see `open_entry`).
    fn open_file(&self, name: &OsStr) -> Result<(File, FileMeta), ReadError> {
        let cname = cstring(name)?;
        let fd = openat(self.fd(), &cname, READ_FLAGS, 0)?;
        let meta = fstat(fd.as_fd())?;
        if !meta.is_regular() {
            return Err(ReadError::NotRegular(meta.kind()));
        }
        Ok((File::from(fd), meta))
    }
}

/// Reads a whole file into `buf`, failing with `TooLarge` past `limit` bytes. The size from
/// `fstat` is only a hint: the file may grow while it is read.
pub fn read_bounded(
    file: &mut File,
    size_hint: u64,
    limit: usize,
    buf: &mut Vec<u8>,
) -> Result<(), ReadError> {
    if size_hint > limit as u64 {
        buf.clear();
        return Err(ReadError::TooLarge(limit));
    }
    let size = usize::try_from(size_hint).unwrap_or(limit);
    // One read usually does it: a regular file gives what fstat said it holds, and stopping
    // there saves the read that would only confirm the end of the file. The buffer keeps the
    // previous file's bytes as its initialized length, so only growth is zeroed.
    buf.resize(size.saturating_add(1), 0);
    let first = loop {
        match file.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                buf.clear();
                return Err(ReadError::Io(error));
            }
            Ok(n) => break n,
        }
    };
    buf.truncate(first);
    if first == size && size > 0 {
        return Ok(());
    }
    let mut taken = file
        .by_ref()
        .take((limit as u64 + 1).saturating_sub(first as u64));
    taken.read_to_end(buf).map_err(ReadError::Io)?;
    if buf.len() > limit {
        buf.clear();
        return Err(ReadError::TooLarge(limit));
    }
    Ok(())
}

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

/// A file named by a document, opened `O_PATH` and checked, not yet readable.
#[derive(Debug)]
pub struct NamedFile {
    fd: OwnedFd,
    pub meta: FileMeta,
}

impl NamedFile {
    /// Reopens the checked descriptor for reading. Through `/proc/self/fd` when it is
    /// mounted (the same inode, no second lookup); otherwise the path is resolved again under
    /// the same rules and must lead to the same inode.
    pub fn open_for_read(
        &self,
        root: &RunRoot,
        path: &Path,
        policy: NamedPathPolicy,
    ) -> Result<File, ReadError> {
        let proc_path = format!("/proc/self/fd/{}\0", self.fd.as_raw_fd());
        let cproc = CStr::from_bytes_with_nul(proc_path.as_bytes())
            .map_err(|_| ReadError::Io(io::Error::other("bad descriptor path")))?;
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: NUL-terminated path; the kernel returns a new descriptor or -1.
        let fd = unsafe { libc::open(cproc.as_ptr(), flags) };
        let fd = if fd >= 0 {
            // SAFETY: `fd` was just returned by open.
            unsafe { OwnedFd::from_raw_fd(fd) }
        } else {
            resolve(root, path, policy, flags)?
        };
        let meta = fstat(fd.as_fd())?;
        if meta.dev != self.meta.dev || meta.ino != self.meta.ino || !meta.is_regular() {
            return Err(ReadError::Io(io::Error::other(
                "the file changed while it was opened",
            )));
        }
        Ok(File::from(fd))
    }
}

/// Resolves a path named inside a document under SPEC §1.3: relative paths beneath the run
/// directory, absolute ones only when they lie beneath it (or `allow_outside`), no symlink in
/// any component, and only a regular file owned by `policy.owner` or root.
pub fn open_named(
    root: &RunRoot,
    path: &Path,
    policy: NamedPathPolicy,
) -> Result<NamedFile, ReadError> {
    let fd = resolve(root, path, policy, libc::O_PATH | libc::O_CLOEXEC)?;
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
    // A root-owned file with a second name may be a hard link an agent made to a secret
    // elsewhere on the file system (possible where fs.protected_hardlinks is off).
    if meta.uid == 0 && meta.nlink > 1 {
        return Err(ReadError::MultipleLinks(meta.nlink));
    }
    Ok(NamedFile { fd, meta })
}

fn resolve(
    root: &RunRoot,
    path: &Path,
    policy: NamedPathPolicy,
    flags: libc::c_int,
) -> Result<OwnedFd, ReadError> {
    if path.as_os_str().is_empty() {
        return Err(ReadError::NotFound);
    }
    if path.is_absolute() {
        if let Ok(relative) = path.strip_prefix(&root.real_path) {
            if relative.as_os_str().is_empty() {
                return Err(ReadError::NotRegular("a directory"));
            }
            return resolve_beneath(root.dir.fd(), relative, flags);
        }
        if !policy.allow_outside {
            return Err(ReadError::OutsideRun);
        }
        let slash = Dir::open(Path::new("/")).map_err(ReadError::Io)?;
        let relative = path.strip_prefix("/").unwrap_or(path);
        return resolve_beneath(slash.fd(), relative, flags);
    }
    resolve_beneath(root.dir.fd(), path, flags)
}

/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, or, on kernels
/// without it, a walk that opens each component with `O_NOFOLLOW` and refuses `..`.
fn resolve_beneath(
    dir: BorrowedFd<'_>,
    relative: &Path,
    flags: libc::c_int,
) -> Result<OwnedFd, ReadError> {
    let cpath = cstring(relative.as_os_str())?;
    // SAFETY: open_how is plain old data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 takes a live directory descriptor, a NUL-terminated path and a pointer
    // to an open_how of the given size; it returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            cpath.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd >= 0 {
        // SAFETY: the kernel returned a new descriptor that nobody else owns.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    }
    let error = last_error();
    match error.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) => walk_beneath(dir, relative, flags),
        _ => Err(error.into()),
    }
}

fn walk_beneath(
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

/// The uid flatline runs as (effective).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Renders a path for a one-line message: lossy UTF-8 with control characters escaped.
pub fn display_path(path: &Path) -> String {
    crate::text::escape_control(&path.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flatline-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn entries_are_sorted_and_typed() {
        let dir = scratch("entries");
        std::fs::write(dir.join("b.json"), "{}").unwrap();
        std::fs::write(dir.join("a.json"), "{}").unwrap();
        std::fs::create_dir(dir.join("c")).unwrap();
        symlink("a.json", dir.join("d.json")).unwrap();
        let handle = Dir::open(&dir).unwrap();
        let entries = handle.entries().unwrap();
        let names: Vec<_> = entries
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.json", "b.json", "c", "d.json"]);
        assert_eq!(entries[2].kind, EntryKind::Dir);
        assert_eq!(entries[3].kind, EntryKind::Symlink);
        // A second listing works too (the shared offset is rewound).
        assert_eq!(handle.entries().unwrap().len(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_are_bounded_and_refuse_symlinks_and_fifos() {
        let dir = scratch("reads");
        std::fs::write(dir.join("small"), "hello").unwrap();
        std::fs::write(dir.join("big"), vec![b'x'; 100]).unwrap();
        symlink("small", dir.join("link")).unwrap();
        let fifo = CString::new(dir.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: test-only mkfifo on a fresh path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let handle = Dir::open(&dir).unwrap();
        let mut buf = Vec::new();
        handle.read_file(OsStr::new("small"), 10, &mut buf).unwrap();
        assert_eq!(buf, b"hello");
        assert!(matches!(
            handle.read_file(OsStr::new("big"), 10, &mut buf),
            Err(ReadError::TooLarge(10))
        ));
        assert!(matches!(
            handle.read_file(OsStr::new("link"), 10, &mut buf),
            Err(ReadError::Symlink)
        ));
        assert!(matches!(
            handle.read_file(OsStr::new("fifo"), 10, &mut buf),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            handle.read_file(OsStr::new("none"), 10, &mut buf),
            Err(ReadError::NotFound)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn named_paths_stay_beneath_the_run() {
        let dir = scratch("named");
        std::fs::create_dir(dir.join("raw")).unwrap();
        std::fs::write(dir.join("raw/s.jsonl"), "x").unwrap();
        symlink("raw", dir.join("rawlink")).unwrap();
        let outside = scratch("named-outside");
        std::fs::write(outside.join("secret"), "secret").unwrap();
        let root = RunRoot {
            dir: Dir::open(&dir).unwrap(),
            real_path: std::fs::canonicalize(&dir).unwrap(),
        };
        let policy = NamedPathPolicy {
            allow_outside: false,
            owner: effective_uid(),
        };
        let ok = open_named(&root, Path::new("raw/s.jsonl"), policy).unwrap();
        let mut text = String::new();
        ok.open_for_read(&root, Path::new("raw/s.jsonl"), policy)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "x");
        let absolute = root.real_path.join("raw/s.jsonl");
        assert!(open_named(&root, &absolute, policy).is_ok());
        assert!(matches!(
            open_named(&root, Path::new("rawlink/s.jsonl"), policy),
            Err(ReadError::Symlink)
        ));
        assert!(matches!(
            open_named(&root, Path::new("../named-outside/secret"), policy),
            Err(ReadError::Escapes)
        ));
        assert!(matches!(
            open_named(&root, &outside.join("secret"), policy),
            Err(ReadError::OutsideRun)
        ));
        assert!(matches!(
            open_named(&root, Path::new("/dev/zero"), policy),
            Err(ReadError::OutsideRun)
        ));
        let allow = NamedPathPolicy {
            allow_outside: true,
            ..policy
        };
        assert!(matches!(
            open_named(&root, Path::new("/dev/zero"), allow),
            Err(ReadError::NotRegular("a character device"))
        ));
        assert!(matches!(
            open_named(&root, Path::new("raw"), policy),
            Err(ReadError::NotRegular("a directory"))
        ));
        let other = NamedPathPolicy {
            allow_outside: false,
            owner: 4242,
        };
        if effective_uid() != 0 {
            assert!(matches!(
                open_named(&root, Path::new("raw/s.jsonl"), other),
                Err(ReadError::ForeignOwner { .. })
            ));
        }
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn the_walk_fallback_refuses_dotdot_and_symlinks() {
        let dir = scratch("walk");
        std::fs::create_dir(dir.join("raw")).unwrap();
        std::fs::write(dir.join("raw/s.jsonl"), "x").unwrap();
        symlink("raw", dir.join("rawlink")).unwrap();
        let handle = Dir::open(&dir).unwrap();
        let flags = libc::O_PATH | libc::O_CLOEXEC;
        assert!(walk_beneath(handle.fd(), Path::new("raw/s.jsonl"), flags).is_ok());
        assert!(walk_beneath(handle.fd(), Path::new("./raw/s.jsonl"), flags).is_ok());
        assert!(matches!(
            walk_beneath(handle.fd(), Path::new("raw/../raw/s.jsonl"), flags),
            Err(ReadError::Escapes)
        ));
        assert!(matches!(
            walk_beneath(handle.fd(), Path::new("rawlink/s.jsonl"), flags),
            Err(ReadError::Symlink)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
