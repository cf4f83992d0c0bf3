//! Reading as a document's owner (SPEC §1.3). One long-lived helper thread wears the
//! owner's fsuid, fsgid and supplementary groups, set with the raw per-thread system calls
//! (glibc's wrappers would change every thread of the process), and no effective
//! capability, so that directory search bits, ACLs, hidepid and LSMs decide as they would
//! for the owner. The thread resolves, stats and opens the file and hands the descriptor
//! back (descriptors are process-wide), so reading stays on the caller's thread. It changes
//! identity only when the owner changes: the documents of one owner cost one switch, and a
//! round trip per file. The main thread never changes identity.

use super::{NamedFile, NamedPathPolicy, RunRoot, open_named_at, reopen_for_read};
use crate::fs::meta::ReadError;
use crate::fs::read::{Dir, MAX_DOCUMENT_BYTES};
use crate::sys;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Mutex, OnceLock};

/// The group flatline gives an owner that `/etc/passwd` does not know (the kernel's
/// overflow gid): such an owner is given no group it cannot be shown to have.
const UNKNOWN_GID: u32 = 65534;

/// Files to open as their owners, all beneath one run directory.
struct Request {
    /// A duplicate of the run directory's descriptor, the helper's own while it works.
    dir: OwnedFd,
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
    let Ok(dir) = root.dir.fd().try_clone_to_owned() else {
        return refused(&owners);
    };
    let request = Request {
        dir,
        real_path: root.real_path.clone(),
        files,
    };
    let reply = match helper.as_ref() {
        None => return refused(&owners),
        Some(h) => match h.requests.send(request) {
            // Wait for the answer whatever happens: the replies are this call's.
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
        let dir = request.dir.as_fd();
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
    start: Option<[sys::ids::CapData; 2]>,
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
            start: sys::ids::capget().ok(),
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
            (sys::ids::getegid(), own_groups())
        } else {
            self.accounts
                .get_or_insert_with(Accounts::read)
                .groups_of(owner)
        };
        if let Some(start) = self.start
            && sys::ids::capset(&start).is_err()
        {
            return false;
        }
        if groups != self.groups {
            if sys::ids::set_thread_groups(&groups).is_err() {
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
        if sys::ids::capset(&none).is_err() {
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
pub(in crate::fs) fn groups_of(
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
    let n = sys::ids::getgroups(&mut []).unwrap_or(0);
    let mut groups = vec![0; n];
    let got = sys::ids::getgroups(&mut groups).unwrap_or(0);
    groups.truncate(got);
    groups.sort_unstable();
    groups
}

fn set_fsuid(uid: u32) -> bool {
    sys::ids::setfsuid(uid);
    // An invalid id changes nothing and returns the current one: the switch's check.
    sys::ids::setfsuid(u32::MAX) == uid
}

fn set_fsgid(gid: libc::gid_t) -> bool {
    sys::ids::setfsgid(gid);
    sys::ids::setfsgid(u32::MAX) == gid
}

/// Whether flatline holds any effective capability (read once, on the first call, before
/// any helper changes its own).
pub fn has_effective_capabilities() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| match sys::ids::capget() {
        Ok(data) => data.iter().any(|half| half.effective != 0),
        // Unknown: assume the worst, and read through the helper.
        Err(_) => true,
    })
}

/// The uid flatline runs as (effective).
pub fn effective_uid() -> u32 {
    sys::ids::geteuid()
}
