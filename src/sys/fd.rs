//! Descriptors and files: `open`, `openat`, `openat2`, `fstat`, `fstatat`, `lseek`,
//! `readdir`, `faccessat`, `fsync`, `unlinkat`, `renameat`, `mkdirat`, `fstatfs`, and a
//! pipe's capacity (`F_SETPIPE_SZ`).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// Takes ownership of a descriptor the kernel has just returned (or of its error).
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(last_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("descriptor out of range"))?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open(path, flags)`.
pub fn open(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: NUL-terminated path; the kernel returns a new descriptor or -1.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    owned(libc::c_long::from(fd))
}

/// `openat(dir, name, flags, mode)`.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and `dir` is a live descriptor; the kernel returns a
    // new descriptor or -1.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) };
    owned(libc::c_long::from(fd))
}

/// `openat2(dir, path, {flags, resolve})`.
pub fn openat2(dir: BorrowedFd<'_>, path: &CStr, flags: u64, resolve: u64) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain old data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags;
    how.resolve = resolve;
    // SAFETY: openat2 takes a live directory descriptor, a NUL-terminated path and a pointer
    // to an open_how of the given size; it returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    owned(fd)
}

/// `fstat(fd)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is a live descriptor and `st` is a valid out-pointer.
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(last_error());
    }
    // SAFETY: fstat succeeded, so it initialized `st`.
    Ok(unsafe { st.assume_init() })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn fstatat_nofollow(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid descriptor, NUL-terminated name, valid out-pointer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(last_error());
    }
    // SAFETY: fstatat succeeded, so it initialized `st`.
    Ok(unsafe { st.assume_init() })
}

/// `fstatfs(fd)`.
pub fn fstatfs(fd: BorrowedFd<'_>) -> io::Result<libc::statfs> {
    let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `fd` is a live descriptor and `fs` a valid out-pointer.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), fs.as_mut_ptr()) } != 0 {
        return Err(last_error());
    }
    // SAFETY: fstatfs succeeded, so it initialized `fs`.
    Ok(unsafe { fs.assume_init() })
}

/// `lseek(fd, offset, whence)`: the new offset.
pub fn lseek(fd: BorrowedFd<'_>, offset: i64, whence: libc::c_int) -> io::Result<i64> {
    // SAFETY: lseek on a live descriptor; no memory is passed.
    let at = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    if at < 0 {
        return Err(last_error());
    }
    Ok(at)
}

/// `fcntl(F_SETPIPE_SZ)`: asks the kernel for a pipe buffer of `bytes` (rounded up to a
/// power of two pages; an unprivileged user is held to `/proc/sys/fs/pipe-max-size`). The
/// capacity granted.
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: libc::c_int) -> io::Result<usize> {
    // SAFETY: fcntl on a live descriptor with an integer argument; no memory is passed.
    let granted = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
    usize::try_from(granted).map_err(|_| last_error())
}

/// Calls `each` with every entry of the directory `dir` as readdir gives it (`.` and `..`
/// included): the name and `d_type`, in the file system's order, read from the top. Nothing
/// is kept here, so a listing costs what the caller keeps of it. An error from `each` ends
/// the listing and is returned.
pub fn read_dir(
    dir: BorrowedFd<'_>,
    mut each: impl FnMut(&CStr, u8) -> io::Result<()>,
) -> io::Result<()> {
    // SAFETY: dup of a live descriptor; fdopendir takes ownership of the duplicate, and
    // closedir below releases it.
    let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
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
    // The duplicate shares the file offset with the caller's descriptor: start from the top.
    // SAFETY: `stream` is a valid DIR*.
    unsafe { libc::rewinddir(stream) };
    let result = loop {
        // SAFETY: errno is thread-local; reset it to tell end-of-directory from failure.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR*; the returned entry stays valid until the next
        // readdir or closedir on it, and is copied out before either.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            // SAFETY: errno is thread-local and readable at any time.
            let errno = unsafe { *libc::__errno_location() };
            break if errno == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(errno))
            };
        }
        // SAFETY: d_name is a NUL-terminated array inside the entry, which stays valid
        // until the next readdir on `stream`: `each` only borrows it for its call.
        let (name, d_type) = unsafe { (CStr::from_ptr((*entry).d_name.as_ptr()), (*entry).d_type) };
        if let Err(error) = each(name, d_type) {
            break Err(error);
        }
    };
    // SAFETY: `stream` is valid and closed exactly once.
    unsafe { libc::closedir(stream) };
    result
}

/// `faccessat(dir, path, mode, AT_EACCESS)`: by the effective ids.
pub fn faccessat_effective(dir: BorrowedFd<'_>, path: &CStr, mode: libc::c_int) -> io::Result<()> {
    // SAFETY: faccessat on a live descriptor with a NUL-terminated path and no pointers kept.
    let rc = unsafe { libc::faccessat(dir.as_raw_fd(), path.as_ptr(), mode, libc::AT_EACCESS) };
    if rc != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `fsync(fd)`.
pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor borrowed for the duration of the call.
    let rc = unsafe { libc::fsync(fd.as_raw_fd()) };
    if rc != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `unlinkat(dir, name, 0)`: removes a non-directory entry without following it.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is a live descriptor and `name` is NUL-terminated.
    let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    if rc != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `renameat(dir, from, dir, to)`: within one directory; never follows a symlink at either
/// name.
pub fn renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is a live descriptor and both names are NUL-terminated.
    let rc =
        unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
    if rc != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `renameat2(dir, from, dir, to, RENAME_NOREPLACE)`: within one directory, never replacing
/// `to` (EEXIST); where the kernel or the file system lacks it (ENOSYS, EINVAL), `linkat` +
/// `unlinkat`, which never replaces either.
pub fn rename_noreplace(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: `dir` is a live descriptor and both names are NUL-terminated; renameat2 with
    // RENAME_NOREPLACE fails with EEXIST rather than replace `to`, and follows no symlink.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let error = last_error();
    if !matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL)) {
        return Err(error);
    }
    // SAFETY: as above; linkat with flags 0 does not follow `from` and fails with EEXIST when
    // `to` exists.
    let rc = unsafe {
        libc::linkat(
            dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            0,
        )
    };
    if rc != 0 {
        return Err(last_error());
    }
    unlinkat(dir, from)
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `dir` is a live descriptor and `name` is NUL-terminated.
    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) };
    if rc != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `mkfifo(path, mode)`, for tests that need a FIFO where a file is expected.
#[cfg(test)]
pub fn mkfifo(path: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: NUL-terminated path; no memory is kept.
    if unsafe { libc::mkfifo(path.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(last_error());
    }
    Ok(())
}
