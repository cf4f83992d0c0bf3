//! beat: writes a worker's heartbeat file atomically, once or on an interval (SPEC §5).
//!
//! Shell-script workers cannot rename atomically by hand; half-written heartbeats made the
//! seed watchdog flap workers to stalled. `flatline beat` writes through the store (temp,
//! fsync, rename, directory fsync) so a reader sees the old heartbeat or the new one, never
//! a mix.

use crate::cli::config::Config;
use crate::core::time;
use crate::exit::Exit;
use crate::fs::{self, Dir};
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use crate::proc::Watch;
use serde_json::json;
use std::path::Path;

/// The heartbeat document: `{"status", "name", "ts"}`.
pub fn render(status: &str, name: &str, now: time::Millis) -> Vec<u8> {
    crate::model::render(&json!({
        "status": status,
        "name": name,
        "ts": time::format_rfc3339(now),
    }))
}

/// `flatline beat`.
pub fn run(config: &Config, diag: &mut Diagnostics, stop: &Stop) -> Exit {
    let path = &config.run_dirs[0];
    let Some(file_name) = path.file_name() else {
        diag.error(path, "not a file name", Exit::Usage);
        return diag.exit;
    };
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let dir = match Dir::open(parent) {
        Ok(dir) => dir,
        Err(error) => {
            diag.error(parent, &fs::io_message(&error), Exit::FileProblem);
            return diag.exit;
        }
    };
    let name = config.beat.name.clone().unwrap_or_else(|| {
        std::fs::canonicalize(parent)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "worker".to_string())
    });
    let status = config.beat.status.as_deref().unwrap_or("alive");
    let write = |status: &str, diag: &mut Diagnostics| -> bool {
        let bytes = render(status, &name, crate::proc::now_ms());
        match crate::fs::write_atomic(&dir, file_name, &bytes, 0o644) {
            Ok(()) => true,
            Err(error) => {
                diag.error(path, &error.to_string(), Exit::FileProblem);
                false
            }
        }
    };
    let Some(every) = config.beat.every else {
        write(status, diag);
        return diag.exit;
    };
    let watch = match config.beat.while_pid {
        Some(pid) => match Watch::new(pid) {
            Some(watch) => Some(watch),
            None => {
                // A pid that names no process is a mistake on the command line (a typo, a
                // `$!` of a job that never started), not a worker that stopped (SPEC §5).
                diag.notice_usage(&format!(
                    "--while-pid {pid}: no such process; nothing written"
                ));
                return Exit::Usage;
            }
        },
        None => None,
    };
    loop {
        if !write(status, diag) {
            return diag.exit;
        }
        let due = std::time::Instant::now() + every;
        let ended = loop {
            if let Some(exit) = stop.check() {
                break Some(exit);
            }
            let now = std::time::Instant::now();
            if now >= due {
                break None;
            }
            let exited = match &watch {
                Some(watch) => watch.wait_exit(due - now),
                None => {
                    // Sleep in short steps so a signal ends the loop promptly.
                    std::thread::sleep((due - now).min(std::time::Duration::from_millis(100)));
                    false
                }
            };
            if exited {
                break Some(Exit::Ok);
            }
        };
        if let Some(exit) = ended {
            write("stopped", diag);
            diag.raise(exit);
            return diag.exit;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document() {
        assert_eq!(
            String::from_utf8(render("alive", "w1", 1_795_334_400_000)).unwrap(),
            "{\n  \"status\": \"alive\",\n  \"name\": \"w1\",\n  \"ts\": \"2026-11-22T08:00:00.000Z\"\n}\n"
        );
    }
}
