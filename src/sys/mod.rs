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

// The unwinder (libgcc_eh), linked into the binary instead of `libgcc_s.so` loaded at every
// start: loading that library and running its constructor (CPU feature probes, trapped on a
// VM) took 0.12 ms of each start here (BENCHMARKS.md). The whole archive is linked, so every
// `_Unwind_*` symbol std needs is defined before std's own `-lgcc_s`, which `--as-needed`
// then drops; not bundled, so `cc` finds `libgcc_eh.a` in its own directory at the final
// link. A static build (crt-static) links it already.
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(target_feature = "crt-static")
))]
#[link(name = "gcc_eh", kind = "static", modifiers = "+whole-archive,-bundle")]
unsafe extern "C" {}
