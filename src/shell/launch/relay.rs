//! `--tee`: one thread copies the worker's stdout pipe to its stream and to run's stdout
//! (SPEC §12). A closed stdout stops only the copy to it; the stream gets everything.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::process::ChildStdout;
use std::sync::mpsc;
use std::time::Duration;

#[derive(Debug)]
pub struct Relay {
    done: mpsc::Receiver<()>,
}

/// The worker's stdout pipe is given this capacity, and the relay copies in steps of it:
/// the worker blocks less often, and each step costs three system calls where a 64 KiB pipe
/// needed twelve (BENCHMARKS.md, `flatline run`: 0.71 × the splice rate before, 0.89–0.99 ×
/// with this; 1 MiB measured no better). An unprivileged user's pipes count against
/// `/proc/sys/fs/pipe-user-pages-soft` (64 MiB by default, 256 such workers); a user held to
/// a smaller `pipe-max-size` keeps the default pipe.
const STEP: usize = 256 << 10;

impl Relay {
    pub fn start(mut pipe: ChildStdout, mut stream: File) -> Relay {
        let _ = crate::sys::fd::set_pipe_size(pipe.as_fd(), STEP as libc::c_int);
        // run's stdout as a descriptor of its own: no line buffer between the worker's
        // bytes and the reader (run prints nothing else there).
        let mut stdout = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .ok();
        let (sender, done) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("flatline-relay".into())
            .spawn(move || {
                let mut buf = vec![0u8; STEP];
                loop {
                    let n = match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    // The stream first: it is the record.
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    // A closed stdout stops only the copy to it.
                    if let Some(out) = stdout.as_mut()
                        && out.write_all(&buf[..n]).is_err()
                    {
                        stdout = None;
                    }
                }
                let _ = sender.send(());
            });
        if spawned.is_err() {
            // No thread: nothing copies, and the worker gets EPIPE on its first write.
            let (_, done) = mpsc::channel();
            return Relay { done };
        }
        Relay { done }
    }

    /// Waits up to `wait` for the copy to reach the end of the pipe (a grandchild may hold
    /// it open long after the worker exited; then the rest is not waited for).
    pub fn finish(self, wait: Duration) {
        let _ = self.done.recv_timeout(wait);
    }
}
