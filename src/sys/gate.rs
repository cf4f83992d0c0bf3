//! gate: holds a spawned child between fork and exec until its parent lets it go. The
//! child writes its pid on one pipe and waits for one byte on another; end of file instead
//! (the parent died) makes it exit without running the command. `flatline run` records the
//! worker before the command runs this way (SPEC §12): a `run` killed in between leaves no
//! worker running unrecorded.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The parent's ends of a gate, and the child's (which the parent closes once the child
/// exists).
#[derive(Debug)]
pub struct Gate {
    /// The child's pid arrives here (4 bytes, native order).
    pub pid: OwnedFd,
    /// One byte here lets the child exec; closing it without one stops it.
    pub go: OwnedFd,
    /// The child's ends (pid writer, go reader): the parent drops them after the fork.
    pub child_ends: (OwnedFd, OwnedFd),
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Installs the gate in `command`: between fork and exec its child closes the parent's
/// ends, writes its pid, and waits for the go byte; end of file makes it `_exit(125)`
/// without executing anything (the spawn fails with an end of file then). Every end is `O_CLOEXEC`: the
/// command inherits none of them.
pub fn install(command: &mut Command) -> io::Result<Gate> {
    let (pid_read, pid_write) = pipe()?;
    let (go_read, go_write) = pipe()?;
    let ends: [RawFd; 4] = [
        pid_read.as_raw_fd(),
        pid_write.as_raw_fd(),
        go_read.as_raw_fd(),
        go_write.as_raw_fd(),
    ];
    let hook = move || child_side(ends);
    // SAFETY: the hook runs in the forked child before exec and only makes the
    // async-signal-safe calls close, getpid, write and read on descriptors it was given; it
    // allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(hook);
    }
    Ok(Gate {
        pid: pid_read,
        go: go_write,
        child_ends: (pid_write, go_read),
    })
}

/// The exit status of a child whose parent died before letting it go.
pub const CANCELLED: libc::c_int = 125;

/// The child's side of the gate (async-signal-safe calls only).
fn child_side([pid_read, pid_write, go_read, go_write]: [RawFd; 4]) -> io::Result<()> {
    // SAFETY: closing the child's copies of the parent's ends touches no memory; without it
    // the parent's death would never be an end of file here.
    unsafe {
        libc::close(pid_read);
        libc::close(go_write);
    }
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() }.to_ne_bytes();
    loop {
        // SAFETY: writes the 4 bytes of `pid`, which lives across the call.
        let wrote = unsafe { libc::write(pid_write, pid.as_ptr().cast(), pid.len()) };
        if wrote == 4 {
            break;
        }
        let error = io::Error::last_os_error();
        if wrote >= 0 || error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into `byte`, which lives across the call.
        let read = unsafe { libc::read(go_read, (&raw mut byte).cast(), 1) };
        match read {
            1 => return Ok(()),
            // The parent died before letting it go: exit at once, quietly (the parent's
            // error pipe is gone, and stderr may be the worker's stream).
            // SAFETY: _exit ends this forked child without running any Rust code.
            0 => unsafe { libc::_exit(CANCELLED) },
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}
