//! `--tee`: one thread copies the worker's stdout pipe to its stream and to run's stdout
//! (SPEC §12). A closed stdout stops only the copy to it; the stream gets everything.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::process::ChildStdout;
use std::sync::mpsc;
use std::time::Duration;

#[derive(Debug)]
pub struct Relay {
    done: mpsc::Receiver<()>,
}

const BUFFER: usize = 64 * 1024;

impl Relay {
    pub fn start(mut pipe: ChildStdout, mut stream: File) -> Relay {
        let (sender, done) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("flatline-relay".into())
            .spawn(move || {
                let mut buf = vec![0u8; BUFFER];
                let mut stdout_open = true;
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
                    if stdout_open {
                        let mut out = std::io::stdout().lock();
                        stdout_open = out.write_all(&buf[..n]).and_then(|()| out.flush()).is_ok();
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
