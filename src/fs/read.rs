//! read: directory descriptors and bounded reads that never follow a symlink.
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

    /// Why a document is not its owner's word (SPEC §1.3), or `None` when it is.
    pub fn foreign_reason(&self) -> Option<String> {
        let permissions = self.mode & 0o7777;
        if self.nlink != 1 {
            Some(format!("has {} hard links", self.nlink))
        } else if self.mode & 0o002 != 0 {
            Some(format!("is writable by others (mode {permissions:04o})"))
        } else if self.uid == 0 && self.mode & 0o020 != 0 {
            Some(format!(
                "is root's but writable by its group (mode {permissions:04o})"
            ))
        } else {
            None
        }
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

/// The uid a document (delegation, task card, worker spec) speaks for, from its `fstat`
/// (SPEC §1.3): its owner's only when the file has one link and is not writable by "other",
/// and, when root owns it, not by its group either. `None`: the document is foreign for every
/// owner check (the §3.1 uid guard, §3.4 fan-in membership) and is never replaced. A root-owned
/// 0666 file renamed into `delegations/`, or a hard link to a root file, is not root's word.
pub fn document_owner(meta: &FileMeta) -> Option<u32> {
    match meta.foreign_reason() {
        None => Some(meta.uid),
        Some(_) => None,
    }
}

/// The owner the uid guard compares a process with: the document's owner, or for a foreign
/// document `FOREIGN_OWNER`, which no process can have as its real uid (`(uid_t) -1` is not
/// a uid), so only `--allow-foreign-uid` lets a foreign document's process be signalled.
pub fn guard_owner(meta: &FileMeta) -> u32 {
    document_owner(meta).unwrap_or(FOREIGN_OWNER)
}

/// See `guard_owner`.
pub const FOREIGN_OWNER: u32 = u32::MAX;

/// Why a file could not be read. The `Display` text is the "what is wrong" of an error line.
#[derive(Debug)]
pub enum ReadError {
    NotFound,
    Symlink,
    NotRegular(&'static str),
    TooLarge(usize),
    MultipleLinks(u64),
    ForeignOwner {
        uid: u32,
        expected: u32,
    },
    /// Named by a document that is not its owner's word (`document_owner` is `None`).
    ForeignDocument,
    /// The document's owner (this uid) could not have opened the file itself (SPEC §1.3).
    NotReadableByOwner(u32),
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
                "hard_linked: has {n} hard links (it may be a link to a file outside the run), refused"
            ),
            ReadError::ForeignOwner { uid, expected } => write!(
                f,
                "owned by uid {uid}, not by the delegation's owner (uid {expected}) or root, refused"
            ),
            ReadError::ForeignDocument => f.write_str(
                "named by a document that is not its owner's word (several links, or writable \
                 by others), not read",
            ),
            ReadError::NotReadableByOwner(uid) => write!(
                f,
                "not_readable_by_owner: the document's owner (uid {uid}) could not read it, refused"
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

/// One piece of a file as `read_range` walks it.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes read from the file.
    Data(&'a [u8]),
    /// A hole of this many bytes (it reads as NUL bytes), skipped without reading.
    Hole(u64),
}

/// Walks the bytes `start..end` of `file` in order, skipping holes: data is read through
/// `buf` (`pread`, the file position is not used) and handed over piece by piece, a hole
/// only by its length, so a sparse file of terabytes costs its data, not its size. Where the
/// file system cannot tell data from holes, everything is read (the range still bounds it).
/// Stops early, without error, where the file ends (it may shrink meanwhile). Returns the
/// bytes handed over (data and holes).
pub fn read_range(
    file: &File,
    start: u64,
    end: u64,
    buf: &mut [u8],
    mut piece: impl FnMut(Piece<'_>),
) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let offset = |at: u64| i64::try_from(at).unwrap_or(i64::MAX);
    let mut pos = start;
    let mut dense = false;
    while pos < end {
        let data_end = if dense {
            end
        } else {
            match seek_to(file, Seek::Data, offset(pos)) {
                Ok(Some(data)) => {
                    let data = u64::try_from(data).unwrap_or(end).clamp(pos, end);
                    if data > pos {
                        piece(Piece::Hole(data - pos));
                        pos = data;
                        continue;
                    }
                    match seek_to(file, Seek::Hole, offset(pos)) {
                        Ok(Some(hole)) => u64::try_from(hole).unwrap_or(end).clamp(pos, end),
                        // Cut short between the two calls: the end is here.
                        Ok(None) => break,
                        Err(_) => end,
                    }
                }
                // No data at or after `pos`: a hole up to the end of the file, or the end.
                Ok(None) => {
                    let len = fstat(file.as_fd())?.size.min(end);
                    if len > pos {
                        piece(Piece::Hole(len - pos));
                        pos = len;
                    }
                    break;
                }
                Err(_) => {
                    dense = true;
                    continue;
                }
            }
        };
        if data_end == pos {
            // A data segment the file system reports as empty: never loop on it.
            dense = true;
            continue;
        }
        while pos < data_end {
            let want = usize::try_from(data_end - pos)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let read = match file.read_at(&mut buf[..want], pos) {
                // Shrunk under us: the end is here.
                Ok(0) => return Ok(pos - start),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            piece(Piece::Data(&buf[..read]));
            pos += read as u64;
        }
    }
    Ok(pos - start)
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
        // A document with several links is reported from its fstat and never read: one file
        // hard-linked 100,000 times costs a stat each, not a read and a parse each.
        if meta.nlink > 1 {
            return Err(ReadError::MultipleLinks(meta.nlink));
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

/// A file named by a document, opened `O_PATH` and checked, not yet readable; or, when it
/// was opened as the document's owner (SPEC §1.3), already open for reading.
#[derive(Debug)]
pub struct NamedFile {
    fd: OwnedFd,
    pub meta: FileMeta,
    /// `fd` was opened for reading by the owner's reader thread: the kernel already said
    /// that the owner may read it.
    opened: bool,
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

fn reopen_for_read(
    named: &NamedFile,
    dir: BorrowedFd<'_>,
    real_path: &Path,
    path: &Path,
    policy: NamedPathPolicy,
) -> Result<OwnedFd, ReadError> {
    let proc_path = format!("/proc/self/fd/{}\0", named.fd.as_raw_fd());
    let cproc = CStr::from_bytes_with_nul(proc_path.as_bytes())
        .map_err(|_| ReadError::Io(io::Error::other("bad descriptor path")))?;
    // SAFETY: NUL-terminated path; the kernel returns a new descriptor or -1.
    let fd = unsafe { libc::open(cproc.as_ptr(), REOPEN_FLAGS) };
    let fd = if fd >= 0 {
        // SAFETY: `fd` was just returned by open.
        unsafe { OwnedFd::from_raw_fd(fd) }
    } else {
        // No /proc: resolve again (the inode is compared below).
        resolve_at(dir, real_path, path, policy, REOPEN_FLAGS)?
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

fn open_named_at(
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

/// Whether the kernel lets flatline call `openat2` (Linux 5.6, and no seccomp filter
/// refusing it); without it named paths are resolved by a component walk (doctor says so).
pub fn openat2_available() -> bool {
    // SAFETY: open_how is plain old data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    // SAFETY: openat2 takes AT_FDCWD, a NUL-terminated path and a pointer to an open_how of
    // the given size; it returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c"/".as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: the kernel returned a new descriptor that nobody else owns; dropping closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    true
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

/// Reading as a document's owner (SPEC §1.3). One long-lived helper thread wears the
/// owner's fsuid, fsgid and supplementary groups, set with the raw per-thread system calls
/// (glibc's wrappers would change every thread of the process), and no effective
/// capability, so that directory search bits, ACLs, hidepid and LSMs decide as they would
/// for the owner. The thread resolves, stats and opens the file and hands the descriptor
/// back (descriptors are process-wide), so reading stays on the caller's thread. It changes
/// identity only when the owner changes: the documents of one owner cost one switch, and a
/// round trip per file. The main thread never changes identity.
mod as_owner {
    use super::{
        BorrowedFd, Dir, MAX_DOCUMENT_BYTES, NamedFile, NamedPathPolicy, OsStr, Path, PathBuf,
        RawFd, ReadError, RunRoot, io, open_named_at, reopen_for_read,
    };
    use std::os::fd::AsRawFd;
    use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
    use std::sync::{Mutex, OnceLock};

    /// The group flatline gives an owner that `/etc/passwd` does not know (the kernel's
    /// overflow gid): such an owner is given no group it cannot be shown to have.
    const UNKNOWN_GID: u32 = 65534;

    /// Files to open as their owners, all beneath one run directory.
    struct Request {
        dir: RawFd,
        real_path: PathBuf,
        files: Vec<(PathBuf, NamedPathPolicy)>,
    }

    type Reply = Result<NamedFile, ReadError>;

    struct Helper {
        requests: Sender<Request>,
        replies: Receiver<Vec<Reply>>,
    }

    static HELPER: Mutex<Option<Helper>> = Mutex::new(None);

    /// `open_named` done by the helper thread as `policy.owner`. A helper that cannot be
    /// started or cannot take the owner's identity refuses (`not_readable_by_owner`).
    pub fn open(root: &RunRoot, path: &Path, policy: NamedPathPolicy) -> Reply {
        let mut replies = open_many(root, vec![(path.to_path_buf(), policy)]);
        replies
            .pop()
            .unwrap_or(Err(ReadError::NotReadableByOwner(policy.owner)))
    }

    /// `open` for many files in one round trip: one answer per file, in order.
    pub fn open_many(root: &RunRoot, files: Vec<(PathBuf, NamedPathPolicy)>) -> Vec<Reply> {
        let refused = |files: &[(PathBuf, NamedPathPolicy)]| -> Vec<Reply> {
            files
                .iter()
                .map(|(_, policy)| Err(ReadError::NotReadableByOwner(policy.owner)))
                .collect()
        };
        if files.is_empty() {
            return Vec::new();
        }
        let Ok(mut helper) = HELPER.lock() else {
            return refused(&files);
        };
        if helper.is_none() {
            *helper = start();
        }
        let owners: Vec<(PathBuf, NamedPathPolicy)> = files.clone();
        let request = Request {
            dir: root.dir.fd().as_raw_fd(),
            real_path: root.real_path.clone(),
            files,
        };
        let reply = match helper.as_ref() {
            None => return refused(&owners),
            Some(h) => match h.requests.send(request) {
                // Wait for the answer whatever happens: the helper uses `root`'s descriptor
                // until it replies.
                Ok(()) => h.replies.recv().ok(),
                Err(_) => None,
            },
        };
        match reply {
            Some(replies) if replies.len() == owners.len() => replies,
            _ => {
                // The thread is gone (it panicked): the next call starts another one.
                *helper = None;
                refused(&owners)
            }
        }
    }

    fn start() -> Option<Helper> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let (outgoing, replies) = mpsc::sync_channel::<Vec<Reply>>(1);
        std::thread::Builder::new()
            .name("flatline-as-owner".into())
            .stack_size(256 * 1024)
            .spawn(move || serve(incoming, outgoing))
            .ok()?;
        Some(Helper { requests, replies })
    }

    fn serve(incoming: Receiver<Request>, outgoing: SyncSender<Vec<Reply>>) {
        let mut identity = Identity::start();
        for request in incoming {
            // SAFETY: the requester keeps the run directory's descriptor open and blocks
            // until this reply arrives, so `dir` is valid for as long as it is used here.
            let dir = unsafe { BorrowedFd::borrow_raw(request.dir) };
            let replies = request
                .files
                .iter()
                .map(|(path, policy)| {
                    if identity.wear(policy.owner) {
                        open_as_owner(dir, &request.real_path, path, *policy)
                    } else {
                        Err(ReadError::NotReadableByOwner(policy.owner))
                    }
                })
                .collect();
            if outgoing.send(replies).is_err() {
                break;
            }
        }
    }

    /// Resolve and stat (`O_PATH`), then open for reading: the open is where the kernel
    /// checks the file's own read permission, which a stat alone never does.
    fn open_as_owner(
        dir: BorrowedFd<'_>,
        real_path: &Path,
        path: &Path,
        policy: NamedPathPolicy,
    ) -> Reply {
        let refused = |error: ReadError| match &error {
            ReadError::Io(cause)
                if matches!(cause.raw_os_error(), Some(libc::EACCES | libc::EPERM)) =>
            {
                ReadError::NotReadableByOwner(policy.owner)
            }
            _ => error,
        };
        let named = open_named_at(dir, real_path, path, policy).map_err(refused)?;
        let fd = reopen_for_read(&named, dir, real_path, path, policy).map_err(refused)?;
        Ok(NamedFile {
            fd,
            meta: named.meta,
            opened: true,
        })
    }

    /// The identity the helper thread wears.
    struct Identity {
        /// The thread's capabilities at its start, raised again for each switch.
        start: Option<[CapData; 2]>,
        /// Its supplementary groups now.
        groups: Vec<libc::gid_t>,
        /// The owner whose identity it wears completely, if any.
        wearing: Option<u32>,
        /// `/etc/passwd` and `/etc/group`, read once.
        accounts: Option<Accounts>,
    }

    impl Identity {
        fn start() -> Identity {
            Identity {
                start: capget().ok(),
                groups: own_groups(),
                wearing: None,
                accounts: None,
            }
        }

        /// Takes `owner`'s fsuid, fsgid and groups and drops every effective capability;
        /// false when any step fails (then nothing is read for that owner).
        fn wear(&mut self, owner: u32) -> bool {
            if self.wearing == Some(owner) {
                return true;
            }
            self.wearing = None;
            let (gid, groups) = if owner == super::effective_uid() {
                // flatline's own user: its own groups.
                // SAFETY: getegid cannot fail.
                (unsafe { libc::getegid() }, own_groups())
            } else {
                self.accounts
                    .get_or_insert_with(Accounts::read)
                    .groups_of(owner)
            };
            if let Some(start) = self.start
                && capset(&start).is_err()
            {
                return false;
            }
            if groups != self.groups {
                if set_groups(&groups).is_err() {
                    return false;
                }
                self.groups = groups;
            }
            if !set_fsgid(gid) || !set_fsuid(owner) {
                return false;
            }
            let mut none = self.start.unwrap_or_default();
            for half in &mut none {
                half.effective = 0;
            }
            if capset(&none).is_err() {
                return false;
            }
            self.wearing = Some(owner);
            true
        }
    }

    /// Users and groups as the files under `/etc` list them. Owners known only to another
    /// name service get the overflow gid and no supplementary group: flatline refuses what
    /// it cannot show the owner may read, rather than guess.
    #[derive(Default)]
    struct Accounts {
        passwd: Vec<u8>,
        group: Vec<u8>,
    }

    impl Accounts {
        fn read() -> Accounts {
            let mut accounts = Accounts::default();
            if let Ok(etc) = Dir::open(Path::new("/etc")) {
                let _ = etc.read_file(
                    OsStr::new("passwd"),
                    MAX_DOCUMENT_BYTES,
                    &mut accounts.passwd,
                );
                let _ = etc.read_file(OsStr::new("group"), MAX_DOCUMENT_BYTES, &mut accounts.group);
            }
            accounts
        }

        fn groups_of(&self, uid: u32) -> (libc::gid_t, Vec<libc::gid_t>) {
            groups_of(&self.passwd, &self.group, uid)
        }
    }

    /// The primary gid and the sorted supplementary groups of `uid`, from the text of
    /// `/etc/passwd` and `/etc/group`.
    pub(super) fn groups_of(
        passwd: &[u8],
        group: &[u8],
        uid: u32,
    ) -> (libc::gid_t, Vec<libc::gid_t>) {
        let fields = |line: &'_ [u8]| -> Vec<Vec<u8>> {
            line.split(|&b| b == b':').map(<[u8]>::to_vec).collect()
        };
        let number = |field: &[u8]| std::str::from_utf8(field).ok()?.parse::<u32>().ok();
        let user = passwd
            .split(|&b| b == b'\n')
            .map(fields)
            .find(|f| f.len() >= 4 && number(&f[2]) == Some(uid));
        let Some(user) = user else {
            return (UNKNOWN_GID, Vec::new());
        };
        let Some(gid) = number(&user[3]) else {
            return (UNKNOWN_GID, Vec::new());
        };
        let name = &user[0];
        let mut groups: Vec<libc::gid_t> = group
            .split(|&b| b == b'\n')
            .map(fields)
            .filter(|f| {
                f.len() >= 4
                    && f[3]
                        .split(|&b| b == b',')
                        .any(|member| member == name.as_slice())
            })
            .filter_map(|f| number(&f[2]))
            .collect();
        groups.push(gid);
        groups.sort_unstable();
        groups.dedup();
        (gid, groups)
    }

    /// The calling thread's supplementary groups, sorted.
    fn own_groups() -> Vec<libc::gid_t> {
        // SAFETY: a count query writes nothing.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        let mut groups = vec![0; usize::try_from(n).unwrap_or(0)];
        // SAFETY: `groups` has room for `n` entries.
        let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
        groups.truncate(usize::try_from(got).unwrap_or(0));
        groups.sort_unstable();
        groups
    }

    fn set_groups(groups: &[libc::gid_t]) -> io::Result<()> {
        // SAFETY: the raw system call changes only the calling thread's groups (glibc's
        // wrapper would change every thread's); `groups` is a valid array of that length.
        let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn set_fsuid(uid: u32) -> bool {
        // SAFETY: setfsuid changes only the calling thread's fs uid and touches no memory.
        unsafe { libc::syscall(libc::SYS_setfsuid, uid) };
        // An invalid id changes nothing and returns the current one: the switch's check.
        // SAFETY: as above.
        let now = unsafe { libc::syscall(libc::SYS_setfsuid, u32::MAX) };
        now as u32 == uid
    }

    fn set_fsgid(gid: libc::gid_t) -> bool {
        // SAFETY: setfsgid changes only the calling thread's fs gid and touches no memory.
        unsafe { libc::syscall(libc::SYS_setfsgid, gid) };
        // SAFETY: as above.
        let now = unsafe { libc::syscall(libc::SYS_setfsgid, u32::MAX) };
        now as u32 == gid
    }

    /// `struct __user_cap_header_struct`.
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }

    /// `struct __user_cap_data_struct`: two of them hold the 64 bits of version 3.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

    /// The calling thread's capabilities.
    fn capget() -> io::Result<[CapData; 2]> {
        let mut header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // SAFETY: a version-3 header and room for the two data structs it fills.
        let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(data)
    }

    /// Sets the calling thread's capabilities (pid 0: this thread only).
    fn capset(data: &[CapData; 2]) -> io::Result<()> {
        let mut header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        // SAFETY: a version-3 header and the two data structs it reads.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether flatline holds any effective capability (read once, on the first call, before
    /// any helper changes its own).
    pub fn has_effective_capabilities() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| match capget() {
            Ok(data) => data.iter().any(|half| half.effective != 0),
            // Unknown: assume the worst, and read through the helper.
            Err(_) => true,
        })
    }
}

/// The uid flatline runs as (effective).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Renders a path for a one-line message: lossy UTF-8 with control characters escaped.
pub fn display_path(path: &Path) -> String {
    crate::core::text::escape_control(&path.to_string_lossy()).into_owned()
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

    fn meta(uid: u32, mode: u32, nlink: u64) -> FileMeta {
        FileMeta {
            dev: 1,
            ino: 2,
            mode: libc::S_IFREG | mode,
            uid,
            gid: 0,
            nlink,
            size: 0,
            mtime_ms: 0,
        }
    }

    #[test]
    fn a_document_is_its_owners_word_only_with_one_link_and_safe_bits() {
        assert_eq!(document_owner(&meta(0, 0o644, 1)), Some(0));
        assert_eq!(document_owner(&meta(0, 0o600, 1)), Some(0));
        assert_eq!(document_owner(&meta(1000, 0o664, 1)), Some(1000));
        assert_eq!(document_owner(&meta(1000, 0o640, 1)), Some(1000));
        // Writable by others: nobody's word.
        assert_eq!(document_owner(&meta(0, 0o666, 1)), None);
        assert_eq!(document_owner(&meta(0, 0o602, 1)), None);
        assert_eq!(document_owner(&meta(1000, 0o646, 1)), None);
        // Root's must not be group-writable either.
        assert_eq!(document_owner(&meta(0, 0o664, 1)), None);
        assert_eq!(document_owner(&meta(0, 0o620, 1)), None);
        // More than one link: anyone may have made it.
        assert_eq!(document_owner(&meta(0, 0o644, 2)), None);
        assert_eq!(document_owner(&meta(1000, 0o644, 100_000)), None);
        assert_eq!(guard_owner(&meta(0, 0o666, 1)), FOREIGN_OWNER);
        assert_eq!(guard_owner(&meta(1000, 0o644, 1)), 1000);
    }

    #[test]
    fn a_document_with_several_links_is_never_read() {
        let dir = scratch("linked");
        std::fs::write(dir.join("a.json"), b"{}").unwrap();
        std::fs::hard_link(dir.join("a.json"), dir.join("b.json")).unwrap();
        let opened = Dir::open(&dir).unwrap();
        let mut buf = Vec::new();
        assert!(matches!(
            opened.read_file(OsStr::new("a.json"), 1024, &mut buf),
            Err(ReadError::MultipleLinks(2))
        ));
        assert!(buf.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn read_range_hands_over_data_and_only_the_length_of_holes() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = scratch("range");
        let path = dir.join("sparse");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"head\n").unwrap();
        file.seek(SeekFrom::Start(1 << 30)).unwrap();
        file.write_all(b"tail\n").unwrap();
        file.set_len((1 << 30) + 5 + (1 << 20)).unwrap();
        drop(file);
        let file = File::open(&path).unwrap();
        let walk = |start: u64, end: u64| {
            let mut bytes = Vec::new();
            let mut holes = 0u64;
            let total = read_range(&file, start, end, &mut [0u8; 4096], |piece| match piece {
                Piece::Data(data) => bytes.extend_from_slice(data),
                Piece::Hole(len) => holes += len,
            })
            .unwrap();
            (bytes, holes, total)
        };
        // Where holes are known, they are not read: what was read is the data, with the
        // hole's NUL bytes only where the file system stores data blocks.
        let (bytes, holes, total) = walk(0, u64::MAX);
        assert_eq!(
            total,
            (1 << 30) + 5 + (1 << 20),
            "up to the end, holes counted"
        );
        assert_eq!(bytes.len() as u64 + holes, total);
        assert!(bytes.starts_with(b"head\n"));
        assert!(bytes.windows(5).any(|w| w == b"tail\n"));
        assert!(
            bytes.len() < 1 << 20,
            "{} bytes read of a 1 GiB file",
            bytes.len()
        );
        // A range: exactly its bytes.
        let (bytes, holes, total) = walk(2, 4);
        assert_eq!((bytes, holes, total), (b"ad".to_vec(), 0, 2));
        let (bytes, holes, total) = walk(1 << 30, (1 << 30) + 4);
        assert_eq!((bytes, holes, total), (b"tail".to_vec(), 0, 4));
        let (bytes, _, total) = walk(1 << 29, 1 << 29 | 8);
        assert_eq!(total, 8);
        assert!(bytes.iter().all(|b| *b == 0));
        std::fs::remove_dir_all(&dir).unwrap();
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

    #[test]
    fn named_files_are_read_as_the_documents_owner() {
        if effective_uid() != 0 {
            eprintln!("SKIPPED: needs root (to wear another identity)");
            return;
        }
        use std::os::unix::fs::{PermissionsExt, chown};
        let dir = scratch("as-owner");
        let mode = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        mode(&dir, 0o755);
        std::fs::write(dir.join("secret"), "root's secret").unwrap();
        mode(&dir.join("secret"), 0o600);
        std::fs::create_dir(dir.join("closed")).unwrap();
        mode(&dir.join("closed"), 0o700);
        std::fs::write(dir.join("closed/open"), "behind a closed door").unwrap();
        mode(&dir.join("closed/open"), 0o644);
        std::fs::write(dir.join("public"), "for everyone").unwrap();
        mode(&dir.join("public"), 0o644);
        std::fs::write(dir.join("own"), "the agent's own").unwrap();
        mode(&dir.join("own"), 0o600);
        chown(dir.join("own"), Some(65534), Some(65534)).unwrap();
        let root = RunRoot {
            dir: Dir::open(&dir).unwrap(),
            real_path: std::fs::canonicalize(&dir).unwrap(),
        };
        let agent = NamedPathPolicy {
            allow_outside: false,
            owner: 65534,
        };
        let read = |name: &str, policy: NamedPathPolicy| -> Result<String, ReadError> {
            let named = open_named(&root, Path::new(name), policy)?;
            let mut text = String::new();
            named
                .open_for_read(&root, Path::new(name), policy)?
                .read_to_string(&mut text)
                .map_err(ReadError::Io)?;
            Ok(text)
        };
        for refused in ["secret", "closed/open"] {
            assert!(
                matches!(
                    read(refused, agent),
                    Err(ReadError::NotReadableByOwner(65534))
                ),
                "{refused} was read for uid 65534"
            );
            assert!(matches!(
                stat_named(&root, Path::new(refused), agent),
                Err(ReadError::NotReadableByOwner(65534))
            ));
        }
        assert_eq!(read("public", agent).unwrap(), "for everyone");
        assert_eq!(read("own", agent).unwrap(), "the agent's own");
        // Read twice from one opened file: each read starts at the beginning.
        let named = open_named(&root, Path::new("own"), agent).unwrap();
        for _ in 0..2 {
            let mut text = String::new();
            let mut file = named.open_for_read(&root, Path::new("own"), agent).unwrap();
            file.read_to_string(&mut text).unwrap();
            assert_eq!(text, "the agent's own");
        }
        // The main thread kept its own identity and capabilities.
        let root_policy = NamedPathPolicy {
            allow_outside: false,
            owner: 0,
        };
        assert_eq!(read("secret", root_policy).unwrap(), "root's secret");
        assert_eq!(
            read("closed/open", root_policy).unwrap(),
            "behind a closed door"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn owners_groups_come_from_etc() {
        let passwd = b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/sbin/nologin\nagent:x:1000:1000::/home/agent:/bin/sh\nbad:x:1001:notanumber::/:/bin/sh";
        let group = b"root:x:0:\nagents:x:2000:agent,other\nwheel:x:10:root\nnogroup:x:65534:\nsolo:x:3000:agentx";
        assert_eq!(
            as_owner::groups_of(passwd, group, 1000),
            (1000, vec![1000, 2000])
        );
        assert_eq!(
            as_owner::groups_of(passwd, group, 65534),
            (65534, vec![65534])
        );
        assert_eq!(as_owner::groups_of(passwd, group, 0), (0, vec![0, 10]));
        assert_eq!(as_owner::groups_of(passwd, group, 4242), (65534, vec![]));
        assert_eq!(as_owner::groups_of(passwd, group, 1001), (65534, vec![]));
    }

    #[test]
    fn a_hard_linked_named_file_is_only_the_non_root_owners_own() {
        if effective_uid() != 0 {
            eprintln!("SKIPPED: needs root (chown)");
            return;
        }
        use std::os::unix::fs::chown;
        let dir = scratch("linked");
        std::fs::write(dir.join("root"), "x").unwrap();
        std::fs::hard_link(dir.join("root"), dir.join("root2")).unwrap();
        std::fs::write(dir.join("agent"), "y").unwrap();
        chown(dir.join("agent"), Some(65534), Some(65534)).unwrap();
        std::fs::hard_link(dir.join("agent"), dir.join("agent2")).unwrap();
        let root = RunRoot {
            dir: Dir::open(&dir).unwrap(),
            real_path: std::fs::canonicalize(&dir).unwrap(),
        };
        let policy = |owner| NamedPathPolicy {
            allow_outside: false,
            owner,
        };
        for owner in [0, 65534] {
            let refused = open_named(&root, Path::new("root"), policy(owner));
            assert!(
                matches!(refused, Err(ReadError::MultipleLinks(2))),
                "{owner}"
            );
            assert!(
                refused
                    .unwrap_err()
                    .to_string()
                    .starts_with("hard_linked: ")
            );
        }
        assert!(open_named(&root, Path::new("agent"), policy(65534)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
