//! doctor's facts about the file system beneath a run directory and the host's user
//! database, read without following a symlink and without opening anything but directories
//! (SPEC §13: doctor creates nothing, takes no lock and writes nothing).

use super::{Dir, EntryKind, FileMeta, lstatat};
use crate::core::doctor::{DirFacts, StateDirFacts};
use std::ffi::OsStr;
use std::io::Read;
use std::path::PathBuf;

/// At most this many directories are looked at beneath one run directory.
pub const MAX_WALKED_DIRS: usize = 10_000;
/// And at most this deep.
const MAX_DEPTH: usize = 16;

/// Every directory beneath `root` (itself included), breadth first, through descriptors and
/// never through a symlink; with whether the walk stopped at `MAX_WALKED_DIRS`.
pub fn walk_dirs(root: &Dir) -> (Vec<(PathBuf, DirFacts)>, bool) {
    let mut out = Vec::new();
    let mut queue: std::collections::VecDeque<(Dir, usize)> = std::collections::VecDeque::new();
    if let Ok(meta) = root.meta() {
        out.push((root.path().to_path_buf(), dir_facts(&meta)));
    }
    let Ok(Some(first)) = root.open_child(OsStr::new(".")) else {
        return (out, false);
    };
    queue.push_back((first, 0));
    while let Some((dir, depth)) = queue.pop_front() {
        let Ok(entries) = dir.entries() else {
            continue;
        };
        for entry in &entries {
            if !matches!(entry.kind, EntryKind::Dir | EntryKind::Unknown) {
                continue;
            }
            let Ok(Some(child)) = dir.open_child(entry.name) else {
                continue;
            };
            let Ok(meta) = child.meta() else {
                continue;
            };
            if out.len() >= MAX_WALKED_DIRS {
                return (out, true);
            }
            out.push((
                root.path().join(relative(&dir, root, entry.name)),
                dir_facts(&meta),
            ));
            if depth + 1 < MAX_DEPTH {
                queue.push_back((child, depth + 1));
            }
        }
    }
    (out, false)
}

/// The path of `name` in `dir`, relative to `root` (both opened from `root`'s path).
fn relative(dir: &Dir, root: &Dir, name: &OsStr) -> PathBuf {
    let base = dir.path().strip_prefix(root.path()).unwrap_or(dir.path());
    let base: PathBuf = base
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    base.join(name)
}

pub fn dir_facts(meta: &FileMeta) -> DirFacts {
    DirFacts {
        uid: meta.uid,
        gid: meta.gid,
        mode: meta.mode,
    }
}

/// `RUN_DIR/.flatline/`, its `lock` and its `state.json`, as `lstat` shows them.
pub fn state_dir_facts(run: &Dir) -> StateDirFacts {
    let mut facts = StateDirFacts::default();
    let dir = match run.open_child(OsStr::new(".flatline")) {
        Ok(None) => return facts,
        Ok(Some(dir)) => dir,
        Err(error) => {
            facts.dir = Some(Err(format!(
                "cannot be used: {}",
                super::io_message(&error)
            )));
            return facts;
        }
    };
    facts.dir = Some(
        dir.meta()
            .map(|m| dir_facts(&m))
            .map_err(|e| super::io_message(&e)),
    );
    for name in ["lock", "state.json"] {
        match lstatat(dir.fd(), OsStr::new(name)) {
            Ok(meta) if meta.is_regular() => {
                facts
                    .files
                    .push((name, Ok((meta.uid, meta.gid, meta.mode, meta.nlink))));
            }
            Ok(meta) => facts
                .files
                .push((name, Err(format!("is {}, not a regular file", meta.kind())))),
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(error) => facts.files.push((name, Err(super::io_message(&error)))),
        }
    }
    facts
}

/// The gid of `RUN_DIR/.flatline/lock`, when it exists.
pub fn lock_gid(run: &Dir) -> Option<u32> {
    let dir = run.open_child(OsStr::new(".flatline")).ok()??;
    lstatat(dir.fd(), OsStr::new("lock"))
        .ok()
        .map(|meta| meta.gid)
}

/// The host's user and group files, read once (bounded).
#[derive(Debug, Default, Clone)]
pub struct Accounts {
    /// `(name, uid, primary gid)`.
    pub users: Vec<(String, u32, u32)>,
    /// `(name, gid, member names)`.
    pub groups: Vec<(String, u32, Vec<String>)>,
}

fn read_small(path: &str) -> String {
    let mut text = String::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(16 << 20).read_to_string(&mut text);
    }
    text
}

impl Accounts {
    pub fn read() -> Accounts {
        let users = read_small("/etc/passwd")
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let uid = fields.nth(1)?.parse().ok()?;
                let gid = fields.next()?.parse().ok()?;
                Some((name.to_string(), uid, gid))
            })
            .collect();
        let groups = read_small("/etc/group")
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let gid = fields.nth(1)?.parse().ok()?;
                let members = fields
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect();
                Some((name.to_string(), gid, members))
            })
            .collect();
        Accounts { users, groups }
    }

    /// A user name's uid (a number is taken as it is).
    pub fn uid(&self, user: &str) -> Option<u32> {
        if let Ok(uid) = user.parse() {
            return Some(uid);
        }
        self.users.iter().find(|u| u.0 == user).map(|u| u.1)
    }

    /// The uids in group `gid`: its listed members and the users whose primary group it is.
    pub fn members(&self, gid: u32) -> Vec<u32> {
        let mut uids: Vec<u32> = self
            .users
            .iter()
            .filter(|u| u.2 == gid)
            .map(|u| u.1)
            .collect();
        for (_, _, names) in self.groups.iter().filter(|g| g.1 == gid) {
            uids.extend(names.iter().filter_map(|name| self.uid(name)));
        }
        uids.sort_unstable();
        uids.dedup();
        uids
    }
}

/// Whether the kernel lets flatline call `openat2` (Linux 5.6, and no seccomp filter
/// refusing it); without it named paths are resolved by a component walk (doctor says so).
pub fn openat2_available() -> bool {
    let Ok(root) = Dir::open(std::path::Path::new("/")) else {
        return false;
    };
    let flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    crate::sys::fd::openat2(root.fd(), c".", flags, 0).is_ok()
}
