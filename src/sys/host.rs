//! The host: clocks, `sysconf`, resource limits and random bytes.

use std::io;

/// `clock_gettime(clock)`.
pub fn clock_gettime(clock: libc::clockid_t) -> io::Result<libc::timespec> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ts)
}

/// `sysconf(name)`: -1 when the name is unknown or has no limit.
pub fn sysconf(name: libc::c_int) -> libc::c_long {
    // SAFETY: sysconf takes an integer and has no preconditions.
    unsafe { libc::sysconf(name) }
}

/// `getrlimit(resource)`.
pub fn getrlimit(resource: libc::__rlimit_resource_t) -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// `setrlimit(resource, limit)`.
pub fn setrlimit(resource: libc::__rlimit_resource_t, limit: &libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit reads one rlimit we own.
    if unsafe { libc::setrlimit(resource, limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getrandom(buf, 0)`: how many bytes it filled.
pub fn getrandom(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: getrandom writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Whether `signal`'s disposition is "ignore" (`sigaction` read without a change).
pub fn is_ignored(signal: libc::c_int) -> io::Result<bool> {
    // SAFETY: an all-zero sigaction is a valid value for the kernel to overwrite.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the disposition into `old`, which we own.
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old.sa_sigaction == libc::SIG_IGN)
}
