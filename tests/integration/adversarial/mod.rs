//! The adversarial corpus (SPEC §1.3, §4, §7; issue 8 item 1): tiny run directories whose
//! files were written by a hostile agent. For every case: the documented exit status, ONE
//! stderr line naming the item, the other items still processed (two good delegations in the
//! same run, one in a second run), no panic, no hang (every run under a hang guard), and no
//! byte of a secret outside the run in any document or output.
//!
//! Every case runs `status` and `refresh` (and `reclaim` where the run lock is the point)
//! over `[CASE_RUN, GOOD_RUN]`. Nothing here records a live pid, so `reclaim` signals nothing;
//! forbidden pids only go through `status` and `reclaim --dry-run`.

use crate::support::*;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod delegation_files;
mod fields;
mod processes;
mod run_dirs;
mod stream_paths;
mod streams;
mod values;
mod worker_paths;

/// In the secret outside every run: if it shows up anywhere, something leaked.
const MARKER: &str = "OUTSIDE-SECRET-4c1d2e9f";
const CLAUDE_SUCCESS: &str = include_str!("../../fixtures/streams/claude-basic.jsonl");
/// The hang guard of one run in this corpus.
const GUARD: Duration = Duration::from_secs(45);

/// A directory outside every run with a readable secret: a stream that, if read, would
/// finalize a delegation with the marker as its final text, thread id and raw preview.
struct Outside {
    dir: TempDir,
    secret: PathBuf,
}

impl Outside {
    fn new() -> Outside {
        let dir = TempDir::new("outside");
        let secret = dir.join("secret.jsonl");
        std::fs::write(
            &secret,
            format!(
                "{MARKER} plain text line\n{{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"{MARKER}\"}}\n\
                 {{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"{MARKER}\",\"session_id\":\"{MARKER}\"}}\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        set_mtime_ms(&secret, NOW_MS - 10_000);
        Outside { dir, secret }
    }

    fn name(&self) -> String {
        self.dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

/// What one command must do in a case.
#[derive(Clone, Debug)]
enum V {
    /// Exit 0, nothing on stderr.
    Clean,
    /// Exactly one stderr line `flatline: ITEM: …FRAGMENT…` and this exit status.
    Line {
        code: i32,
        item: String,
        fragment: String,
    },
}

fn line(code: i32, item: impl AsRef<Path>, fragment: impl Into<String>) -> V {
    V::Line {
        code,
        item: item.as_ref().to_string_lossy().into_owned(),
        fragment: fragment.into(),
    }
}

/// What a case expects.
struct Expect {
    /// The RUN_DIR argument, when it is not the case's run directory.
    run_arg: Option<PathBuf>,
    /// Extra arguments for every command.
    args: Vec<&'static str>,
    status: V,
    refresh: V,
    /// `reclaim` (real clock) too, when the lock is what the case is about.
    reclaim: Option<V>,
    /// The case run's own good delegations are processed by status / by refresh.
    status_others: bool,
    refresh_others: bool,
}

impl Expect {
    /// The same verdict from status and refresh, the rest processed.
    fn both(v: V) -> Expect {
        Expect {
            run_arg: None,
            args: Vec::new(),
            status: v.clone(),
            refresh: v,
            reclaim: None,
            status_others: true,
            refresh_others: true,
        }
    }

    fn clean() -> Expect {
        Expect::both(V::Clean)
    }

    /// Only refresh (which reads streams and writes) has something to say.
    fn refresh(v: V) -> Expect {
        Expect {
            refresh: v,
            ..Expect::clean()
        }
    }

    /// The run cannot be used by the writing commands (exit 4); status still reads it.
    fn lock_refused(v: V) -> Expect {
        Expect {
            refresh: v.clone(),
            reclaim: Some(v),
            refresh_others: false,
            ..Expect::clean()
        }
    }

    /// The whole run is unusable for every command.
    fn run_refused(v: V) -> Expect {
        Expect {
            status_others: false,
            refresh_others: false,
            ..Expect::both(v)
        }
    }

    fn with_args(mut self, args: &[&'static str]) -> Expect {
        self.args = args.to_vec();
        self
    }
}

/// Where a case builds its run directory.
struct Env<'a> {
    run: &'a Run,
    /// The canonical path of the run (what absolute paths inside documents are compared with).
    real: PathBuf,
    outside: &'a Outside,
    /// A scratch directory of the case, outside the run.
    scratch: &'a TempDir,
}

impl Env<'_> {
    fn root(&self) -> &Path {
        self.run.path()
    }

    /// `RUN/delegations/NAME`.
    fn d(&self, name: &str) -> PathBuf {
        self.run.delegation_path(name)
    }

    fn put(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.d(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A running delegation without a pid whose stream is `path`; `refresh` stats it.
    fn with_stream(&self, id: &str, path: &str) -> PathBuf {
        let mut doc = delegation(id, "running", json!({"last_progress_at": at(-60_000)}));
        doc["worker_launch_evidence"] = json!({ "raw_events_file": path });
        self.run.delegation(id, &doc)
    }

    /// The stderr fragment of a stream problem.
    fn stream_line(&self, id: &str, path: &str, what: &str) -> V {
        line(
            3,
            self.d(&format!("{id}.json")),
            format!(
                "event stream {}: {what}",
                flatline::display_path(Path::new(path))
            ),
        )
    }
}

type Builder = Box<dyn Fn(&Env<'_>) -> Option<Expect>>;

struct Case {
    name: String,
    build: Builder,
}

fn case(name: impl Into<String>, build: impl Fn(&Env<'_>) -> Option<Expect> + 'static) -> Case {
    Case {
        name: name.into(),
        build: Box::new(build),
    }
}

/// A running delegation without a pid whose default stream holds a Claude success: status
/// reports it, refresh finalizes it.
fn add_good(run: &Run, id: &str) {
    run.delegation(
        id,
        &delegation(id, "running", json!({"last_progress_at": at(-60_000)})),
    );
    let stream = run.write(&format!("raw-events/{id}.jsonl"), CLAUDE_SUCCESS);
    set_mtime_ms(&stream, NOW_MS - 2_000);
}

fn run_cmd(command: &str, expect: &Expect, case_arg: &Path, good: &Run, now: bool) -> Outcome {
    let mut cmd = Command::new(bin());
    cmd.arg(command).arg("--format=ndjson");
    if now {
        cmd.args(["--now", NOW]);
    }
    cmd.args(&expect.args).arg(case_arg).arg(good.arg());
    run_command(&mut cmd, GUARD)
}

#[track_caller]
fn check(name: &str, command: &str, out: &Outcome, v: &V) {
    assert_no_crash(out);
    let ctx = format!("case {name}, {command}");
    match v {
        V::Clean => assert_eq!(
            (out.code, out.stderr.as_str()),
            (0, ""),
            "{ctx}: expected a clean run"
        ),
        V::Line {
            code,
            item,
            fragment,
        } => {
            assert_eq!(
                out.code, *code,
                "{ctx}: exit status; stderr: {}",
                out.stderr
            );
            let lines = out.stderr_lines();
            assert_eq!(lines.len(), 1, "{ctx}: ONE stderr line: {}", out.stderr);
            let escaped = flatline::display_path(Path::new(item));
            assert!(
                lines[0].starts_with(&format!("flatline: {escaped}: ")),
                "{ctx}: the line names the item {escaped:?}: {}",
                lines[0]
            );
            assert!(
                lines[0].contains(fragment.as_str()),
                "{ctx}: {fragment:?} in {}",
                lines[0]
            );
        }
    }
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(MARKER), "{ctx}: the outside secret leaked");
    }
}

/// Every regular file beneath `dir` (not following symlinks), except the secret itself when it
/// was hard-linked in.
fn assert_no_leak(name: &str, dir: &Path, secret: &Path) {
    let secret_ino = std::fs::metadata(secret).map(|m| (m.dev(), m.ino())).ok();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let meta = entry.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && Some((meta.dev(), meta.ino())) != secret_ino {
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(
                    !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                    "case {name}: the outside secret leaked into {}",
                    entry.path().display()
                );
            }
        }
    }
}

fn ids(out: &Outcome) -> Vec<String> {
    out.records()
        .iter()
        .filter_map(|r| r["delegation_id"].as_str().map(str::to_string))
        .collect()
}

fn finalized(out: &Outcome, id: &str) -> bool {
    out.records().iter().any(|r| {
        r["kind"] == "action"
            && r["delegation_id"] == id
            && r["action"] == "finalized"
            && r["outcome"] == "written"
    })
}

/// Runs every case: builds it, runs the commands, checks each verdict and what else must hold.
fn run_cases(cases: Vec<Case>) {
    assert!(!cases.is_empty());
    let outside = Outside::new();
    let secret_before = std::fs::read(&outside.secret).unwrap();
    let mut ran = 0;
    for case in cases {
        let name = case.name.as_str();
        let run = Run::new();
        add_good(&run, "a-good");
        add_good(&run, "z-good");
        let good = Run::new();
        add_good(&good, "other-run");
        let scratch = TempDir::new("scratch");
        let env = Env {
            run: &run,
            real: std::fs::canonicalize(run.path()).unwrap(),
            outside: &outside,
            scratch: &scratch,
        };
        let Some(expect) = (case.build)(&env) else {
            eprintln!("SKIPPED case {name}: needs root");
            continue;
        };
        ran += 1;
        let arg = expect
            .run_arg
            .clone()
            .unwrap_or_else(|| run.path().to_path_buf());

        let status = run_cmd("status", &expect, &arg, &good, true);
        check(name, "status", &status, &expect.status);
        let seen = ids(&status);
        assert!(
            seen.iter().any(|id| id == "other-run"),
            "case {name}: the other run is reported: {}",
            status.stdout
        );
        if expect.status_others {
            for id in ["a-good", "z-good"] {
                assert!(
                    seen.iter().any(|s| s == id),
                    "case {name}: status reports {id}: {}",
                    status.stdout
                );
            }
        }

        let refresh = run_cmd("refresh", &expect, &arg, &good, true);
        check(name, "refresh", &refresh, &expect.refresh);
        assert!(
            finalized(&refresh, "other-run"),
            "case {name}: refresh finalized the other run: {}",
            refresh.stdout
        );
        if expect.refresh_others {
            for id in ["a-good", "z-good"] {
                assert!(
                    finalized(&refresh, id),
                    "case {name}: refresh finalized {id}: {}",
                    refresh.stdout
                );
                assert_eq!(
                    run.read_json(&format!("delegations/{id}.json"))["child_agent"]["status"],
                    "completed",
                    "case {name}: {id} written"
                );
            }
        }

        if let Some(v) = &expect.reclaim {
            let reclaim = run_cmd("reclaim", &expect, &arg, &good, false);
            check(name, "reclaim", &reclaim, v);
        }
        assert_no_leak(name, run.path(), &outside.secret);
        assert_no_leak(name, scratch.path(), &outside.secret);
        assert_eq!(
            std::fs::read(&outside.secret).unwrap(),
            secret_before,
            "case {name}: the outside secret was written"
        );
    }
    eprintln!("{ran} adversarial cases passed");
}

/// `mknod` a character device with /dev/null's numbers (root only).
fn mknod_null(path: &Path) -> bool {
    if !is_root() {
        return false;
    }
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let rdev = std::fs::metadata("/dev/null").unwrap().rdev();
    // SAFETY: mknod on a NUL-terminated path in our temp dir.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, rdev as libc::dev_t) };
    assert_eq!(rc, 0, "mknod {}", path.display());
    true
}

/// Leaves a unix socket file at `path`.
fn socket_at(path: &Path) {
    drop(std::os::unix::net::UnixListener::bind(path).unwrap());
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

/// The fields flatline reads (SPEC §1.1), with what each must be (`fields` gives each every
/// wrong type; `random_input` uses them too).
pub(crate) const STRING_FIELDS: &[&str] = &[
    "delegation_id",
    "task_card_id",
    "work_kind",
    "child_agent.status",
    "executor.status",
    "worker_request.work_kind",
    "worker_launch_evidence.work_kind",
    "worker_launch_evidence.raw_events_file",
    "worker_lifecycle.state",
    "worker_lifecycle.reclaim_state",
    "worker_lifecycle.queued_at",
    "worker_lifecycle.launch_requested_at",
    "worker_lifecycle.started_at",
    "worker_lifecycle.process_started_at",
    "worker_lifecycle.process_last_seen_at",
    "worker_lifecycle.last_progress_at",
    "worker_lifecycle.returned_at",
    "worker_lifecycle.stale_at",
    "worker_lifecycle.timed_out_at",
    "worker_lifecycle.process_fingerprint.boot_id",
    "worker_result.status",
    "worker_result.thread_id",
    "fan_in_collapsed_at",
];
pub(crate) const INTEGER_FIELDS: &[&str] = &[
    "worker_lifecycle.process_id",
    "worker_lifecycle.exit_code",
    "worker_lifecycle.quiet_after_ms",
    "worker_lifecycle.stale_after_ms",
    "worker_lifecycle.timeout_after_ms",
    "worker_lifecycle.process_fingerprint.start_ticks",
    "worker_lifecycle.process_fingerprint.pid_ns",
];
pub(crate) const OBJECT_FIELDS: &[&str] = &[
    "child_agent",
    "executor",
    "worker_request",
    "worker_launch_evidence",
    "worker_lifecycle",
    "worker_lifecycle.process_fingerprint",
    "worker_result",
];

/// Runs flatline with its address space capped at 1 GiB: reading a 2 GB file into memory
/// would fail (and abort), streaming it does not.
fn capped(args: &[&OsStr]) -> Outcome {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin());
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe and only touches the child.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_command(&mut cmd, HANG_GUARD)
}

/// `capped` for `VERB --format=ndjson --now NOW RUN`.
fn capped_at_now(verb: &str, run: &Run) -> Outcome {
    capped(&[
        OsStr::new(verb),
        OsStr::new("--format=ndjson"),
        OsStr::new("--now"),
        OsStr::new(NOW),
        run.arg(),
    ])
}
