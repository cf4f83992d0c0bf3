//! sys: every `unsafe` block and libc call of flatline, as thin wrappers that return
//! `io::Result` (or the kernel's plain answer) and decide nothing. What an errno means
//! (`ESRCH` ⇒ gone, `ELOOP` ⇒ symlink) is said one level up, in `fs/` and `proc/`.
//!
//! `fd`: descriptors and files (open, openat2, stat, readdir, rename …); `gate`: a child held
//! between fork and exec; `pid`: processes
//! (kill, pidfds, poll); `ids`: the thread's credentials (uids, groups, fsuid, capabilities);
//! `host`: clocks, limits and random bytes.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod fd;
pub mod gate;
pub mod host;
pub mod ids;
pub mod pid;
