//! Credentials: the effective ids, supplementary groups, and the per-thread fsuid, fsgid,
//! groups and capabilities of the reader thread (raw system calls: glibc's wrappers would
//! change every thread of the process).

use std::ffi::CStr;
use std::io;

/// `geteuid()`.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// `getegid()`.
pub fn getegid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

/// `getuid()`.
#[cfg(test)]
pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// `getgroups(groups.len(), groups)`: how many groups the calling thread has (an empty
/// slice only asks for the count), or `EINVAL` when `groups` is too short.
pub fn getgroups(groups: &mut [libc::gid_t]) -> io::Result<usize> {
    let len = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
    let list = if groups.is_empty() {
        std::ptr::null_mut()
    } else {
        groups.as_mut_ptr()
    };
    // SAFETY: `list` is null for a count query, or has room for `len` gids.
    let n = unsafe { libc::getgroups(len, list) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `setgroups(2)` for the calling thread only (the raw system call).
pub fn set_thread_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the raw system call changes only the calling thread's groups; `groups` is a
    // valid array of that length.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setfsuid(uid)` for the calling thread: the fs uid it had before (an invalid `uid`, such
/// as `u32::MAX`, changes nothing and only asks).
pub fn setfsuid(uid: u32) -> u32 {
    // SAFETY: setfsuid changes only the calling thread's fs uid and touches no memory.
    (unsafe { libc::syscall(libc::SYS_setfsuid, uid) }) as u32
}

/// `setfsgid(gid)` for the calling thread: the fs gid it had before (see `setfsuid`).
pub fn setfsgid(gid: u32) -> u32 {
    // SAFETY: setfsgid changes only the calling thread's fs gid and touches no memory.
    (unsafe { libc::syscall(libc::SYS_setfsgid, gid) }) as u32
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
pub struct CapData {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The calling thread's capabilities.
pub fn capget() -> io::Result<[CapData; 2]> {
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
pub fn capset(data: &[CapData; 2]) -> io::Result<()> {
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

/// `getgrnam_r(name)` with `buf` for the group's strings: the gid, `Ok(None)` when no such
/// group exists, `ERANGE` when `buf` is too small.
pub fn getgrnam_r(name: &CStr, buf: &mut [libc::c_char]) -> io::Result<Option<u32>> {
    // SAFETY: all-zero bytes are a valid `group` (null pointers, zero gid); it is only read
    // after getgrnam_r reports success.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: a NUL-terminated name, a `group` to fill,
    // a buffer of `buf.len()` bytes for its strings, and the result pointer.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok((!found.is_null()).then_some(group.gr_gid))
}
