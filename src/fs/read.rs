//! read: directory descriptors and bounded reads that never follow a symlink.
//!
//! Everything flatline reads beneath a run directory goes through a `Dir` (a descriptor, not
//! a path string), so a symlink swapped in by an agent cannot redirect a read. Two kinds of
//! reads exist: directory entries (`read_entry`: delegations, task cards, specs), and paths
//! that a document names (`open_named`: event streams, heartbeats, inboxes), which are
//! resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and only reopened for reading
//! once `fstat` has shown a regular file owned by the expected user.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::meta::{FileMeta, ReadError};
use crate::sys;

/// Largest document flatline reads (delegations, task cards, specs, heartbeats).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// A directory opened by descriptor. `path` is only for messages.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
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

impl EntryKind {
    fn from_d_type(d_type: u8) -> EntryKind {
        match d_type {
            libc::DT_REG => EntryKind::Regular,
            libc::DT_DIR => EntryKind::Dir,
            libc::DT_LNK => EntryKind::Symlink,
            libc::DT_FIFO => EntryKind::Other("a FIFO"),
            libc::DT_SOCK => EntryKind::Other("a socket"),
            libc::DT_CHR => EntryKind::Other("a character device"),
            libc::DT_BLK => EntryKind::Other("a block device"),
            _ => EntryKind::Unknown,
        }
    }
}

/// One entry of a listing (`Entries`), borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub name: &'a OsStr,
    pub kind: EntryKind,
    /// The name as the NUL-terminated string `openat` takes.
    c_name: &'a CStr,
}

/// A directory's entries but `.` and `..`, sorted by the bytes of their names. Every name
/// lives in one buffer: a listing costs its names and 6 bytes an entry (SPEC §8: memory
/// flat in the number of files), not a heap block and a 48-byte slot each.
#[derive(Debug, Clone, Default)]
pub struct Entries {
    /// Each entry as its `d_type` byte, its name and a NUL, in the file system's order.
    packed: Vec<u8>,
    /// Where each entry starts in `packed`, in the order of the names.
    sorted: Vec<u32>,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The entry at `index` in name order.
    pub fn get(&self, index: usize) -> Option<Entry<'_>> {
        self.sorted.get(index).map(|&at| self.at(at))
    }

    /// Every entry in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            entries: self,
            sorted: self.sorted.iter(),
        }
    }

    /// The number of entries, from the first, for which `below` holds (a binary search:
    /// `below` must hold for a first part of the listing only).
    pub fn partition_point(&self, below: impl Fn(&Entry<'_>) -> bool) -> usize {
        self.sorted.partition_point(|&at| below(&self.at(at)))
    }

    /// The entry named `name` (a binary search: the entries are sorted).
    pub fn find(&self, name: &OsStr) -> Option<Entry<'_>> {
        let index = self
            .sorted
            .binary_search_by(|&at| self.at(at).name.cmp(name))
            .ok()?;
        self.get(index)
    }

    fn at(&self, at: u32) -> Entry<'_> {
        let start = at as usize;
        let kind = EntryKind::from_d_type(self.packed[start]);
        // Every name was stored with its NUL; the fallback is never taken.
        let c_name = CStr::from_bytes_until_nul(&self.packed[start + 1..]).unwrap_or_default();
        Entry {
            name: OsStr::from_bytes(c_name.to_bytes()),
            kind,
            c_name,
        }
    }

    /// Adds an entry as readdir gave it.
    fn push(&mut self, name: &CStr, d_type: u8) -> io::Result<()> {
        let at = u32::try_from(self.packed.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "more than 4 GiB of names in one directory",
            )
        })?;
        self.packed.push(d_type);
        self.packed.extend_from_slice(name.to_bytes_with_nul());
        self.sorted.push(at);
        Ok(())
    }

    fn sort(&mut self) {
        let packed = &self.packed;
        // Comparing from each name to the end of the buffer orders the names by their bytes:
        // the first difference comes at the latest at the shorter name's NUL, which sorts it
        // first, as a shorter prefix sorts first. (The file system gives each name once.)
        self.sorted
            .sort_unstable_by(|&a, &b| packed[a as usize + 1..].cmp(&packed[b as usize + 1..]));
    }
}

/// The entries of a listing in name order (`Entries::iter`).
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    entries: &'a Entries,
    sorted: std::slice::Iter<'a, u32>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        self.sorted.next().map(|&at| self.entries.at(at))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.sorted.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.sorted.next_back().map(|&at| self.entries.at(at))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Entries {
    type Item = Entry<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

pub(super) fn cstring(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// `openat` relative to a directory descriptor; returns an owned descriptor.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    sys::fd::openat(dir, name, flags, mode)
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileMeta> {
    sys::fd::fstat(fd).map(|st| FileMeta::from_stat(&st))
}

/// `fstatat` without following a final symlink.
pub fn lstatat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<FileMeta> {
    let cname = cstring(name)?;
    sys::fd::fstatat_nofollow(dir, &cname).map(|st| FileMeta::from_stat(&st))
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

impl Dir {
    /// Opens a directory the operator named on the command line. Symlinks in that path are
    /// the operator's own choice and are followed; nothing beneath it is.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let cpath = cstring(path.as_os_str())?;
        let fd = sys::fd::open(&cpath, DIR_FLAGS)?;
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
        fstat(self.fd.as_fd())
    }

    /// Every entry but `.` and `..`, sorted by the bytes of the name so that output is
    /// deterministic whatever order the file system returns.
    pub fn entries(&self) -> io::Result<Entries> {
        let mut entries = Entries::default();
        sys::fd::read_dir(self.fd.as_fd(), |name, d_type| {
            if matches!(name.to_bytes(), b"." | b"..") {
                return Ok(());
            }
            entries.push(name, d_type)
        })?;
        entries.sort();
        Ok(entries)
    }

    /// Reads the regular file `entry` of this directory into `buf` (cleared first), at most
    /// `limit` bytes. Never follows a symlink, never blocks on a FIFO, and never opens a
    /// device: the entry's type is checked before the open and the descriptor's after it.
    pub fn read_entry(
        &self,
        entry: &Entry<'_>,
        limit: usize,
        buf: &mut Vec<u8>,
    ) -> Result<FileMeta, ReadError> {
        let (mut file, meta) = self.open_entry(entry)?;
        read_bounded(&mut file, meta.size, limit, buf)?;
        Ok(meta)
    }

    /// Opens the regular file `entry` of this directory for reading, with the checks of
    /// `read_entry`, and gives the descriptor with what `fstat` said of it.
    pub fn open_entry(&self, entry: &Entry<'_>) -> Result<(File, FileMeta), ReadError> {
        match entry.kind {
            EntryKind::Regular => {}
            EntryKind::Symlink => return Err(ReadError::Symlink),
            EntryKind::Dir => return Err(ReadError::NotRegular("a directory")),
            EntryKind::Other(kind) => return Err(ReadError::NotRegular(kind)),
            EntryKind::Unknown => {
                let meta = sys::fd::fstatat_nofollow(self.fd(), entry.c_name)
                    .map(|st| FileMeta::from_stat(&st))?;
                if !meta.is_regular() {
                    return Err(ReadError::NotRegular(meta.kind()));
                }
            }
        }
        self.open_c_name(entry.c_name)
    }

    /// Whether flatline may create and rename files here, by its effective ids (a
    /// read-only filesystem, or a directory another user owns without write access, says
    /// no): a document there cannot be recorded.
    pub fn writable(&self) -> bool {
        sys::fd::faccessat_effective(self.fd.as_fd(), c".", libc::W_OK | libc::X_OK).is_ok()
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
        self.open_c_name(&cstring(name)?)
    }

    fn open_c_name(&self, cname: &CStr) -> Result<(File, FileMeta), ReadError> {
        let mut attempts = 0;
        let (fd, meta) = loop {
            let fd = openat(self.fd(), cname, READ_FLAGS, 0)?;
            super::race::after_open();
            let meta = fstat(fd.as_fd())?;
            // No link left: another writer renamed a new file over this one between the open
            // and the fstat. Its owner's word is the new file's: open the name again.
            if meta.nlink != 0 {
                break (fd, meta);
            }
            attempts += 1;
            if attempts >= super::race::SETTLE_ATTEMPTS {
                return Err(ReadError::Io(io::Error::other(
                    "was replaced again and again while it was opened, not read",
                )));
            }
        };
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

#[cfg(test)]
mod tests;
