//! meta: what `fstat` says of a file, whose word a document is (SPEC §1.3), and why a read
//! was refused.

use std::fmt;
use std::io;
use std::path::Path;

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
    pub(super) fn from_stat(st: &libc::stat) -> FileMeta {
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

/// Renders a path for a one-line message: lossy UTF-8 with control characters escaped.
pub fn display_path(path: &Path) -> String {
    crate::core::text::escape_control(&path.to_string_lossy()).into_owned()
}
