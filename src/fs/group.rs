//! group: the lock group, given to new files of `.flatline/` when this user may give it.

use std::ffi::{CString, OsStr};
use std::io;

use super::read::Dir;
use super::write::{StoreError, write_atomic_with};
use crate::fs as files;
use crate::sys;

/// Writes a file of `.flatline/` atomically (as `write_atomic`); a new one gets the
/// directory's group, which is the lock group, when this user may give it.
pub fn write_in_dir_group(
    dir: &Dir,
    name: &OsStr,
    content: &[u8],
    mode_if_new: u32,
) -> Result<(), StoreError> {
    let gid = dir.meta()?.gid;
    write_atomic_with(
        dir,
        name,
        content,
        mode_if_new,
        in_group(gid).then_some(gid),
    )
}

/// The group a gid-or-name names: digits are a gid as they are; a name is looked up
/// (`/etc/group`, NSS). `Ok(None)` when no such group exists.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return name
            .parse()
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "gid out of range"));
    }
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        match sys::ids::getgrnam_r(&cname, &mut buf) {
            Err(error) if error.raw_os_error() == Some(libc::ERANGE) && buf.len() < 1 << 20 => {
                buf.resize(buf.len() * 4, 0);
            }
            found => return found,
        }
    }
}

pub(super) fn effective_gid() -> u32 {
    sys::ids::getegid()
}

/// Whether this process may give a file group `gid`: root may give any; others only their
/// own groups.
pub(super) fn in_group(gid: u32) -> bool {
    if files::effective_uid() == 0 || effective_gid() == gid {
        return true;
    }
    let mut groups: Vec<libc::gid_t> = vec![0; 256];
    loop {
        let error = match sys::ids::getgroups(&mut groups) {
            Ok(n) => {
                groups.truncate(n);
                return groups.contains(&gid);
            }
            Err(error) => error,
        };
        if error.raw_os_error() != Some(libc::EINVAL) || groups.len() > 1 << 16 {
            return false;
        }
        groups.resize(groups.len() * 4, 0);
    }
}
