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

/// In the secret outside every run: if it shows up anywhere, something leaked.
const MARKER: &str = "OUTSIDE-SECRET-4c1d2e9f";
const CLAUDE_SUCCESS: &str = include_str!("../fixtures/streams/claude-basic.jsonl");
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
                flatline::fs::display_path(Path::new(path))
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
            let escaped = flatline::fs::display_path(Path::new(item));
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

// ---------------------------------------------------------------------------------------
// Delegation files: syntax, encodings, sizes, nesting, file types, names.

#[test]
fn hostile_delegation_files() {
    let mut cases = Vec::new();
    let syntax: [(&str, &[u8], &str); 14] = [
        (
            "truncated",
            b"{\"delegation_id\": \"x\",",
            "invalid JSON at line 1",
        ),
        ("trailing-comma", b"{\"a\": 1,}", "invalid JSON at line 1"),
        ("single-quotes", b"{'a': 1}", "invalid JSON at line 1"),
        ("trailing-garbage", b"{} {}", "trailing characters"),
        ("empty", b"", "invalid JSON at line 1"),
        ("whitespace-only", b"  \n\t\n", "invalid JSON at line"),
        ("unquoted-key", b"{a: 1}", "invalid JSON at line 1"),
        ("nan", b"{\"a\": NaN}", "invalid JSON at line 1"),
        ("comment", b"{/* x */}", "invalid JSON at line 1"),
        ("bom", b"\xEF\xBB\xBF{\"a\": 1}", "byte order mark"),
        (
            "nul-in-string",
            b"{\"delegation_id\": \"a\0b\"}",
            "control character",
        ),
        ("nul-raw", b"{\"a\": 1}\0", "invalid JSON"),
        (
            "lone-surrogate",
            b"{\"delegation_id\": \"\\ud800\"}",
            "invalid JSON at line 1",
        ),
        (
            "bad-escape",
            b"{\"delegation_id\": \"\\x41\"}",
            "invalid JSON at line 1",
        ),
    ];
    for (name, bytes, fragment) in syntax {
        cases.push(case(format!("syntax-{name}"), move |env| {
            let path = env.put("m-bad.json", bytes);
            Some(Expect::both(line(3, path, fragment)))
        }));
    }
    let utf8: [(&str, &[u8]); 3] = [
        ("non-utf8-in-read-field", b"{\"delegation_id\": \"\xff\"}"),
        (
            "non-utf8-in-skipped-field",
            b"{\"prompt\": \"caf\xe9\", \"delegation_id\": \"x\"}",
        ),
        ("non-utf8-overlong", b"{\"delegation_id\": \"\xc0\xaf\"}"),
    ];
    for (name, bytes) in utf8 {
        cases.push(case(name, move |env| {
            let path = env.put("m-bad.json", bytes);
            Some(Expect::both(line(3, path, "invalid UTF-8 at byte")))
        }));
    }
    for (name, text, found) in [
        ("top-level-array", "[1, 2]", "an array"),
        ("top-level-null", "null", "null"),
        ("top-level-number", "42", "a number"),
        ("top-level-string", "\"{}\"", "a string"),
        ("top-level-bool", "true", "a boolean"),
    ] {
        cases.push(case(name, move |env| {
            let path = env.put("m-bad.json", text);
            Some(Expect::both(line(
                3,
                path,
                format!("not a JSON object (found {found})"),
            )))
        }));
    }
    cases.push(case("deep-array-100000-levels", |env| {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let path = env.put("m-deep.json", deep);
        Some(Expect::both(line(3, path, "(recursion limit exceeded)")))
    }));
    cases.push(case("deep-object-100000-levels", |env| {
        let deep = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        let path = env.put("m-deep.json", deep);
        // Only unread keys, but the write path could not parse them (SPEC §1.3).
        Some(Expect::both(line(3, path, "(recursion limit exceeded)")))
    }));
    cases.push(case("deep-nesting-in-an-unread-field", |env| {
        let deep = format!(
            "{{\"delegation_id\": \"m-deep\", \"x\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let path = env.put("m-deep.json", deep);
        Some(Expect::both(line(3, path, "(recursion limit exceeded)")))
    }));
    cases.push(case("deep-nesting-in-a-read-field", |env| {
        let deep = format!(
            "{{\"delegation_id\": \"m-deep\", \"child_agent\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let path = env.put("m-deep.json", deep);
        Some(Expect::both(line(3, path, "(recursion limit exceeded)")))
    }));
    cases.push(case(
        "deep-nesting-in-a-document-refresh-must-rewrite",
        |env| {
            // The rewrite could not keep 100,000 levels, so the read path refuses them too:
            // reported by every command, file left as it was (SPEC §1.3).
            let deep = format!(
                "{{\"delegation_id\": \"m-deep\", \"child_agent\": {{\"status\": \"running\"}}, \
             \"worker_lifecycle\": {{\"last_progress_at\": \"{}\"}}, \"x\": {}{}}}",
                at(-60_000),
                "[".repeat(100_000),
                "]".repeat(100_000)
            );
            let path = env.put("m-deep.json", &deep);
            set_mtime_ms(
                &env.run.write("raw-events/m-deep.jsonl", CLAUDE_SUCCESS),
                NOW_MS - 2_000,
            );
            Some(Expect::both(line(3, path, "(recursion limit exceeded)")))
        },
    ));
    cases.push(case("lone-surrogate-in-a-document-refresh-must-rewrite", |env| {
        let text = format!(
            "{{\"delegation_id\": \"m-sur\", \"x\": \"\\udc00\", \"child_agent\": {{\"status\": \"running\"}}, \
             \"worker_lifecycle\": {{\"last_progress_at\": \"{}\"}}}}",
            at(-60_000)
        );
        let path = env.put("m-sur.json", &text);
        set_mtime_ms(
            &env.run.write("raw-events/m-sur.jsonl", CLAUDE_SUCCESS),
            NOW_MS - 2_000,
        );
        Some(Expect::both(line(3, path, "surrogate in hex escape")))
    }));
    cases.push(case("duplicate-keys", |env| {
        let path = env.put(
            "m-dup.json",
            "{\"delegation_id\": \"a\", \"delegation_id\": \"m-dup\", \"child_agent\": {\"status\": \"queued\"}}",
        );
        // A rewrite would keep one of them: refused on read (SPEC §1.3).
        Some(Expect::both(line(3, path, "duplicate key \"delegation_id\"")))
    }));
    cases.push(case("document-of-16-MiB-plus-1-byte", |env| {
        let doc = br#"{"delegation_id": "m-big", "child_agent": {"status": "queued"}}"#;
        let mut bytes = doc.to_vec();
        bytes.resize(16 * 1024 * 1024 + 1, b' ');
        let path = env.put("m-big.json", bytes);
        Some(Expect::both(line(3, path, "larger than 16 MiB, not read")))
    }));
    cases.push(case("document-of-exactly-16-MiB", |env| {
        let doc = br#"{"delegation_id": "m-big", "child_agent": {"status": "queued"}}"#;
        let mut bytes = doc.to_vec();
        bytes.resize(16 * 1024 * 1024, b' ');
        env.put("m-big.json", bytes);
        Some(Expect::clean())
    }));
    cases.push(case("symlink-loop", |env| {
        let path = env.d("m-loop.json");
        std::os::unix::fs::symlink("m-loop.json", &path).unwrap();
        Some(Expect::both(line(3, path, "is a symlink")))
    }));
    cases.push(case("dangling-symlink", |env| {
        let path = env.d("m-dangling.json");
        std::os::unix::fs::symlink("nowhere.json", &path).unwrap();
        Some(Expect::both(line(3, path, "is a symlink")))
    }));
    cases.push(case("symlink-to-the-secret-outside", |env| {
        let path = env.d("m-link.json");
        std::os::unix::fs::symlink(&env.outside.secret, &path).unwrap();
        Some(Expect::both(line(3, path, "is a symlink")))
    }));
    cases.push(case("directory-as-delegation", |env| {
        let path = env.d("m-dir.json");
        std::fs::create_dir(&path).unwrap();
        Some(Expect::both(line(
            3,
            path,
            "is a directory, not a regular file",
        )))
    }));
    cases.push(case("fifo-as-delegation", |env| {
        let path = env.d("m-fifo.json");
        mkfifo(&path);
        Some(Expect::both(line(3, path, "is a FIFO, not a regular file")))
    }));
    cases.push(case("socket-as-delegation", |env| {
        let path = env.d("m-sock.json");
        socket_at(&path);
        Some(Expect::both(line(
            3,
            path,
            "is a socket, not a regular file",
        )))
    }));
    cases.push(case("char-device-as-delegation", |env| {
        let path = env.d("m-dev.json");
        mknod_null(&path)
            .then(|| Expect::both(line(3, &path, "is a character device, not a regular file")))
    }));
    cases.push(case("non-utf8-file-name", |env| {
        let name = std::ffi::OsStr::from_bytes(b"m-\xff\xfe.json");
        let path = env.run.path().join("delegations").join(name);
        write_json(&path, &delegation("m-nonutf8", "queued", json!({})));
        Some(Expect::clean())
    }));
    cases.push(case("non-utf8-file-name-with-bad-content", |env| {
        let name = std::ffi::OsStr::from_bytes(b"m-\xff\xfe.json");
        let path = env.run.path().join("delegations").join(name);
        std::fs::write(&path, "{").unwrap();
        Some(Expect::both(line(3, path, "invalid JSON")))
    }));
    cases.push(case("control-characters-in-the-file-name", |env| {
        // The name holds a newline and an escape sequence: still one escaped stderr line.
        let path = env.d("m-\n\u{1b}[2J.json");
        std::fs::write(&path, "{").unwrap();
        Some(Expect::both(line(3, path, "invalid JSON")))
    }));
    cases.push(case("hard-linked-delegation-to-a-file-outside", |env| {
        // A delegation hard-linked to a file outside the run: reported from its fstat,
        // never read, never replaced (SPEC §1.3).
        let victim = env.scratch.join("victim.json");
        std::fs::write(
            &victim,
            serde_json::to_vec(&delegation(
                "m-link",
                "running",
                json!({"last_progress_at": at(-60_000)}),
            ))
            .unwrap(),
        )
        .unwrap();
        let path = env.d("m-link.json");
        std::fs::hard_link(&victim, &path).unwrap();
        set_mtime_ms(
            &env.run.write("raw-events/m-link.jsonl", CLAUDE_SUCCESS),
            NOW_MS - 2_000,
        );
        Some(Expect::both(line(3, path, "has 2 hard links")))
    }));
    cases.push(case("delegation-owned-by-another-user", |env| {
        if !is_root() {
            return None;
        }
        let path = env
            .run
            .delegation("m-foreign", &delegation("m-foreign", "queued", json!({})));
        chown(&path, 65534);
        Some(Expect::clean())
    }));
    run_cases(cases);
}

// ---------------------------------------------------------------------------------------
// Paths that documents name: event streams.

#[test]
fn hostile_stream_paths() {
    let mut cases = Vec::new();
    let outside_line =
        "path_outside_run: lies outside the run directory (see --allow-outside-paths)";
    for (name, path) in [
        ("dev-zero", "/dev/zero"),
        ("proc-self-mem", "/proc/self/mem"),
        ("dev-watchdog", "/dev/watchdog"),
        ("etc-shadow", "/etc/shadow"),
    ] {
        cases.push(case(format!("stream-{name}"), move |env| {
            env.with_stream("s-bad", path);
            Some(Expect::refresh(env.stream_line(
                "s-bad",
                path,
                outside_line,
            )))
        }));
    }
    cases.push(case("stream-absolute-secret-outside", move |env| {
        let path = env.outside.secret.to_string_lossy().into_owned();
        env.with_stream("s-bad", &path);
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            &path,
            outside_line,
        )))
    }));
    cases.push(case("stream-dev-zero-allowed-outside", |env| {
        env.with_stream("s-bad", "/dev/zero");
        Some(
            Expect::refresh(env.stream_line(
                "s-bad",
                "/dev/zero",
                "is a character device, not a regular file, refused",
            ))
            .with_args(&["--allow-outside-paths"]),
        )
    }));
    cases.push(case("stream-proc-self-mem-allowed-outside", |env| {
        env.with_stream("s-bad", "/proc/self/mem");
        Some(
            Expect::refresh(env.stream_line("s-bad", "/proc/self/mem", "is a symlink"))
                .with_args(&["--allow-outside-paths"]),
        )
    }));
    cases.push(case("stream-proc-self-fd-allowed-outside", |env| {
        env.with_stream("s-bad", "/proc/self/fd/0");
        Some(
            Expect::refresh(env.stream_line("s-bad", "/proc/self/fd/0", "is a symlink"))
                .with_args(&["--allow-outside-paths"]),
        )
    }));
    cases.push(case("stream-dotdot-escape", |env| {
        let path = format!("../{}/secret.jsonl", env.outside.name());
        env.with_stream("s-bad", &path);
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            &path,
            "path_outside_run: escapes the run directory",
        )))
    }));
    cases.push(case("stream-dotdot-escape-from-a-subdirectory", |env| {
        std::fs::create_dir_all(env.root().join("raw-events")).unwrap();
        let path = format!("raw-events/../../{}/secret.jsonl", env.outside.name());
        env.with_stream("s-bad", &path);
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            &path,
            "path_outside_run: escapes the run directory",
        )))
    }));
    cases.push(case("stream-absolute-inside-then-dotdot-out", |env| {
        let path = format!(
            "{}/raw-events/../../{}/secret.jsonl",
            env.real.display(),
            env.outside.name()
        );
        env.with_stream("s-bad", &path);
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            &path,
            "path_outside_run: escapes the run directory",
        )))
    }));
    cases.push(case("stream-symlink-to-the-secret", |env| {
        std::os::unix::fs::symlink(&env.outside.secret, env.root().join("link.jsonl")).unwrap();
        env.with_stream("s-bad", "link.jsonl");
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            "link.jsonl",
            "is a symlink (or passes through one), refused",
        )))
    }));
    cases.push(case("stream-through-a-symlinked-directory", |env| {
        std::os::unix::fs::symlink(env.outside.dir.path(), env.root().join("linkdir")).unwrap();
        env.with_stream("s-bad", "linkdir/secret.jsonl");
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            "linkdir/secret.jsonl",
            "is a symlink (or passes through one), refused",
        )))
    }));
    cases.push(case(
        "stream-default-path-through-a-symlinked-raw-events",
        |env| {
            // No raw_events_file: the default raw-events/<id>.jsonl, with raw-events/ a symlink to
            // the outside directory that holds <id>.jsonl. (The good delegations name their
            // streams elsewhere in the run.)
            for id in ["a-good", "z-good"] {
                let stream = env
                    .run
                    .write(&format!("good-events/{id}.jsonl"), CLAUDE_SUCCESS);
                set_mtime_ms(&stream, NOW_MS - 2_000);
                let mut doc = env.run.read_json(&format!("delegations/{id}.json"));
                doc["worker_launch_evidence"] =
                    json!({"raw_events_file": format!("good-events/{id}.jsonl")});
                env.run.delegation(id, &doc);
            }
            std::fs::remove_dir_all(env.root().join("raw-events")).unwrap();
            let outside_events = env.scratch.join("events");
            std::fs::create_dir(&outside_events).unwrap();
            // A hard link: the leak check knows the secret's inode.
            std::fs::hard_link(&env.outside.secret, outside_events.join("s-bad.jsonl")).unwrap();
            std::os::unix::fs::symlink(&outside_events, env.root().join("raw-events")).unwrap();
            env.run.delegation(
                "s-bad",
                &delegation("s-bad", "running", json!({"last_progress_at": at(-60_000)})),
            );
            Some(Expect::refresh(env.stream_line(
                "s-bad",
                "raw-events/s-bad.jsonl",
                "is a symlink (or passes through one), refused",
            )))
        },
    ));
    cases.push(case("stream-symlink-loop", |env| {
        std::os::unix::fs::symlink("loop.jsonl", env.root().join("loop.jsonl")).unwrap();
        env.with_stream("s-bad", "loop.jsonl");
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            "loop.jsonl",
            "is a symlink (or passes through one), refused",
        )))
    }));
    cases.push(case("stream-dangling-symlink", |env| {
        std::os::unix::fs::symlink("nowhere.jsonl", env.root().join("dangling.jsonl")).unwrap();
        env.with_stream("s-bad", "dangling.jsonl");
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            "dangling.jsonl",
            "is a symlink (or passes through one), refused",
        )))
    }));
    cases.push(case("stream-fifo", |env| {
        mkfifo(&env.root().join("fifo.jsonl"));
        env.with_stream("s-bad", "fifo.jsonl");
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            "fifo.jsonl",
            "is a FIFO, not a regular file, refused",
        )))
    }));
    cases.push(case("stream-socket", |env| {
        socket_at(&env.root().join("sock.jsonl"));
        env.with_stream("s-bad", "sock.jsonl");
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            "sock.jsonl",
            "is a socket, not a regular file, refused",
        )))
    }));
    cases.push(case("stream-char-device-in-the-run", |env| {
        mknod_null(&env.root().join("null.jsonl")).then(|| {
            env.with_stream("s-bad", "null.jsonl");
            Expect::refresh(env.stream_line(
                "s-bad",
                "null.jsonl",
                "is a character device, not a regular file, refused",
            ))
        })
    }));
    cases.push(case("stream-directory", |env| {
        std::fs::create_dir(env.root().join("adir")).unwrap();
        env.with_stream("s-bad", "adir");
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            "adir",
            "is a directory, not a regular file, refused",
        )))
    }));
    cases.push(case("stream-the-run-directory-itself", |env| {
        let path = env.real.to_string_lossy().into_owned();
        env.with_stream("s-bad", &path);
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            &path,
            "is a directory, not a regular file, refused",
        )))
    }));
    cases.push(case("stream-owned-by-another-user", |env| {
        if !is_root() {
            return None;
        }
        let path = env.run.write("foreign.jsonl", CLAUDE_SUCCESS);
        chown(&path, 65534);
        env.with_stream("s-bad", "foreign.jsonl");
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            "foreign.jsonl",
            "owned by uid 65534, not by the delegation's owner (uid 0) or root, refused",
        )))
    }));
    cases.push(case("stream-nul-in-the-path", |env| {
        env.with_stream("s-bad", "raw\u{0}x.jsonl");
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            "raw\u{0}x.jsonl",
            "name contains a NUL byte",
        )))
    }));
    cases.push(case("stream-path-of-5000-bytes", |env| {
        let path = "a".repeat(5000);
        env.with_stream("s-bad", &path);
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            &path,
            "file name too long",
        )))
    }));
    cases.push(case("stream-control-characters-in-the-path", |env| {
        let name = "raw\n\u{1b}[2J.jsonl";
        mkfifo(&env.root().join(name));
        env.with_stream("s-bad", name);
        Some(Expect::refresh(env.stream_line(
            "s-bad",
            name,
            "is a FIFO, not a regular file, refused",
        )))
    }));
    cases.push(case("stream-empty-path-falls-back-to-the-default", |env| {
        env.with_stream("s-none", "");
        Some(Expect::clean())
    }));
    cases.push(case("delegation-id-escaping-the-run-is-no-default-path", |env| {
        // An exited worker whose id would make the default path point at the secret: the
        // default path is built only from a safe id, so the worker finalizes as "no stream".
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let id = format!("../{}/secret", env.outside.name());
        let old = real_now_ms() - 3_600_000;
        env.run.delegation(
            "s-escape",
            &delegation(
                &id,
                "running",
                json!({"process_id": pid, "started_at": rfc3339(old), "last_progress_at": rfc3339(old)}),
            ),
        );
        Some(Expect::clean())
    }));
    run_cases(cases);
}

// ---------------------------------------------------------------------------------------
// Run directories and the state directory.

#[test]
fn hostile_run_directories() {
    let mut cases = Vec::new();
    cases.push(case("run-dir-is-a-file", |env| {
        let file = env.scratch.join("run-file");
        std::fs::write(&file, "{}").unwrap();
        Some(Expect {
            run_arg: Some(file.clone()),
            ..Expect::run_refused(line(4, &file, "not a directory"))
        })
    }));
    cases.push(case("run-dir-is-a-fifo", |env| {
        let fifo = env.scratch.join("run-fifo");
        mkfifo(&fifo);
        Some(Expect {
            run_arg: Some(fifo.clone()),
            ..Expect::run_refused(line(4, &fifo, "not a directory"))
        })
    }));
    cases.push(case("run-dir-is-a-dangling-symlink", |env| {
        let link = env.scratch.join("run-link");
        std::os::unix::fs::symlink("/nonexistent/run", &link).unwrap();
        Some(Expect {
            run_arg: Some(link.clone()),
            ..Expect::run_refused(line(4, &link, "no such run directory"))
        })
    }));
    cases.push(case(
        "run-dir-named-through-a-symlink-is-the-operators-choice",
        |env| {
            let link = env.scratch.join("run-link");
            std::os::unix::fs::symlink(env.root(), &link).unwrap();
            Some(Expect {
                run_arg: Some(link),
                ..Expect::clean()
            })
        },
    ));
    cases.push(case("run-dir-with-a-non-utf8-name", |env| {
        let name = std::ffi::OsStr::from_bytes(b"run-\xff\xfe");
        let renamed = env.scratch.join(name);
        // A copy of the case run under a non-UTF-8 name.
        let status = Command::new("cp")
            .arg("-a")
            .arg(env.root())
            .arg(&renamed)
            .status()
            .unwrap();
        assert!(status.success());
        Some(Expect {
            run_arg: Some(renamed),
            // The records come from the copy; the case run itself is not named.
            refresh_others: false,
            ..Expect::clean()
        })
    }));
    cases.push(case("delegations-is-a-file", |env| {
        let dir = env.root().join("delegations");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, "{}").unwrap();
        Some(Expect::run_refused(line(3, dir, "not a directory")))
    }));
    cases.push(case("delegations-is-a-fifo", |env| {
        let dir = env.root().join("delegations");
        std::fs::remove_dir_all(&dir).unwrap();
        mkfifo(&dir);
        Some(Expect::run_refused(line(3, dir, "not a directory")))
    }));
    cases.push(case(
        "delegations-is-a-symlink-to-a-directory-outside",
        |env| {
            let dir = env.root().join("delegations");
            std::fs::remove_dir_all(&dir).unwrap();
            let real = env.scratch.join("real-delegations");
            std::fs::create_dir(&real).unwrap();
            write_json(
                &real.join("x.json"),
                &delegation("x", "running", json!({"last_progress_at": at(-60_000)})),
            );
            std::os::unix::fs::symlink(&real, &dir).unwrap();
            Some(Expect::run_refused(line(3, dir, "is a symlink, refused")))
        },
    ));
    cases.push(case("delegations-is-a-dangling-symlink", |env| {
        let dir = env.root().join("delegations");
        std::fs::remove_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/nonexistent/delegations", &dir).unwrap();
        Some(Expect::run_refused(line(3, dir, "is a symlink, refused")))
    }));
    cases.push(case("state-dir-is-a-symlink", |env| {
        let elsewhere = env.scratch.join("state");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, env.root().join(".flatline")).unwrap();
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline is a symlink, refused",
        )))
    }));
    cases.push(case("state-dir-owned-by-another-user", |env| {
        if !is_root() {
            return None;
        }
        let state = env.root().join(".flatline");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown(&state, 65534);
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline is owned by uid 65534, neither flatline's uid 0 nor the run directory's \
             owner uid 0, refused; repair: chown 0 ",
        )))
    }));
    cases.push(case("state-dir-with-mode-0777", |env| {
        let state = env.root().join(".flatline");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline has mode 0777, writable by its group or others, refused; repair: chmod \
             0750 ",
        )))
    }));
    cases.push(case("state-dir-is-a-file", |env| {
        std::fs::write(env.root().join(".flatline"), "").unwrap();
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline is a regular file, not a directory, refused",
        )))
    }));
    cases.push(case("state-dir-is-a-fifo", |env| {
        mkfifo(&env.root().join(".flatline"));
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline is a FIFO, not a directory, refused",
        )))
    }));
    /// A `.flatline/` as flatline makes it, for the lock cases.
    fn state_dir(env: &Env<'_>) -> PathBuf {
        let state = env.root().join(".flatline");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
        state
    }
    // (A lock of another owner in flatline's own `.flatline/` is accepted since SPEC §4 made
    // the lock shared by a group: only `.flatline/`'s owner can have put it there.)
    cases.push(case("state-json-is-hard-linked-outside", |env| {
        let state = state_dir(env).join("state.json");
        std::fs::write(&state, "{}\n").unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::hard_link(&state, env.scratch.join("state-link")).unwrap();
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline/state.json has 2 hard links, refused; repair: rm ",
        )))
    }));
    cases.push(case("state-json-is-a-symlink", |env| {
        let target = env.scratch.join("victim");
        std::fs::write(&target, "{}").unwrap();
        std::os::unix::fs::symlink(&target, state_dir(env).join("state.json")).unwrap();
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline/state.json is a symlink, refused",
        )))
    }));
    cases.push(case("lock-with-mode-0666", |env| {
        let lock = state_dir(env).join("lock");
        std::fs::write(&lock, "").unwrap();
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o666)).unwrap();
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline/lock has mode 0666, with permissions for others, refused; repair: chmod \
             0640 ",
        )))
    }));
    cases.push(case("lock-is-a-symlink-to-a-file-outside", |env| {
        let target = env.scratch.join("victim");
        std::fs::write(&target, "victim").unwrap();
        std::os::unix::fs::symlink(&target, state_dir(env).join("lock")).unwrap();
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline/lock is a symlink, refused",
        )))
    }));
    cases.push(case("lock-is-a-fifo", |env| {
        mkfifo(&state_dir(env).join("lock"));
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline/lock is a FIFO, not a regular file, refused",
        )))
    }));
    cases.push(case("lock-is-a-directory", |env| {
        std::fs::create_dir(state_dir(env).join("lock")).unwrap();
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline/lock is a directory, not a regular file, refused",
        )))
    }));
    cases.push(case("lock-is-hard-linked-outside", |env| {
        let lock = state_dir(env).join("lock");
        std::fs::write(&lock, "").unwrap();
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::hard_link(&lock, env.scratch.join("second-link")).unwrap();
        Some(Expect::lock_refused(line(
            4,
            env.root(),
            ".flatline/lock has 2 hard links, refused",
        )))
    }));
    run_cases(cases);
}

// ---------------------------------------------------------------------------------------
// Every field flatline reads, with every wrong type: one file each, all in one run.

/// The fields flatline reads (SPEC §1.1), with what each must be.
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

/// Sets a dotted path in `doc` to the placeholder string `@@VALUE@@`.
fn set_placeholder(doc: &mut Value, path: &str) {
    let mut current = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        current = current
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert_with(|| json!({}));
    }
    current[parts[parts.len() - 1]] = json!("@@VALUE@@");
}

#[test]
fn every_field_flatline_reads_with_every_wrong_type() {
    let run = Run::new();
    add_good(&run, "a-good");
    let base = json!({
        "delegation_id": "x", "child_agent": {"status": "queued"}, "executor": {"status": "queued"},
        "worker_request": {}, "worker_launch_evidence": {}, "worker_lifecycle": {"process_fingerprint": {}},
        "worker_result": {}
    });
    // (JSON text, what flatline says it found)
    let not_strings: &[(&str, &str)] = &[
        ("7", "a number"),
        ("-7", "a number"),
        ("1.5", "a number with a fraction or exponent"),
        ("1e3", "a number with a fraction or exponent"),
        ("true", "a boolean"),
        ("[\"x\"]", "an array"),
        ("{\"status\": \"x\"}", "an object"),
        (
            "123456789012345678901234567890123456789012345",
            "an integer out of range",
        ),
    ];
    let not_integers: &[(&str, &str)] = &[
        ("\"12\"", "a string"),
        ("12.0", "a number with a fraction or exponent"),
        ("1.2e1", "a number with a fraction or exponent"),
        ("-0.5", "a number with a fraction or exponent"),
        ("false", "a boolean"),
        ("[12]", "an array"),
        ("{\"pid\": 12}", "an object"),
        (
            "100000000000000000000000000000000000000000",
            "an integer out of range",
        ),
    ];
    let not_objects: &[(&str, &str)] = &[
        ("\"running\"", "a string"),
        ("7", "a number"),
        ("1.5", "a number"),
        ("true", "a boolean"),
        ("[{\"status\": \"running\"}]", "an array"),
    ];
    let mut expected = Vec::new();
    let groups = [
        (STRING_FIELDS, not_strings, "a string"),
        (INTEGER_FIELDS, not_integers, "an integer"),
        (OBJECT_FIELDS, not_objects, "an object"),
    ];
    let mut n = 0;
    for (fields, values, wanted) in groups {
        for field in fields.iter() {
            for (text, found) in values.iter() {
                n += 1;
                let mut doc = base.clone();
                set_placeholder(&mut doc, field);
                let body = serde_json::to_string_pretty(&doc)
                    .unwrap()
                    .replace("\"@@VALUE@@\"", text);
                let name = format!("t{n:04}.json");
                let path = run.write(&format!("delegations/{name}"), body);
                expected.push((
                    path,
                    format!("{field} is {found}, expected {wanted}"),
                    field.to_string(),
                ));
            }
        }
    }
    // null is absent, not wrong: no line.
    let mut nulls = base.clone();
    for field in STRING_FIELDS.iter().chain(INTEGER_FIELDS) {
        set_placeholder(&mut nulls, field);
        let text = serde_json::to_string(&nulls)
            .unwrap()
            .replace("\"@@VALUE@@\"", "null");
        nulls = serde_json::from_str(&text).unwrap();
    }
    run.delegation("u-all-null", &nulls);
    eprintln!("{} wrong-typed documents", expected.len());
    assert!(expected.len() > 250);

    for command in ["status", "refresh", "reclaim"] {
        let mut cmd = Command::new(bin());
        cmd.args([command, "--format=ndjson", "--now", NOW]);
        if command == "reclaim" {
            cmd.arg("--dry-run");
        }
        let out = run_command(cmd.arg(run.arg()), GUARD);
        assert_no_crash(&out);
        assert_eq!(out.code, 3, "{command}: {}", out.stderr);
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), expected.len(), "{command}: one line per file");
        for (path, what, field) in &expected {
            let line = format!("flatline: {}: {what}", path.display());
            assert!(
                lines.contains(&line.as_str()),
                "{command}: missing {line:?}; lines for the file: {:?}",
                lines
                    .iter()
                    .filter(|l| l.contains(&*path.to_string_lossy()))
                    .collect::<Vec<_>>()
            );
            let _ = field;
        }
        if command == "status" {
            // Every document still has its record; wrong types count as absent.
            let records = out.records();
            assert_eq!(records.len(), expected.len() + 2, "{}", out.stdout);
            for record in &records {
                let path = record["path"].as_str().unwrap();
                let warnings = record["warnings"].as_array().unwrap();
                if path.ends_with("/a-good.json") || path.ends_with("/u-all-null.json") {
                    assert!(
                        !warnings
                            .iter()
                            .any(|w| w.as_str().unwrap().starts_with("wrong_type")),
                        "{record}"
                    );
                    continue;
                }
                assert!(
                    warnings
                        .iter()
                        .any(|w| w.as_str().unwrap().starts_with("wrong_type:")),
                    "{record}"
                );
            }
        }
        if command == "refresh" {
            assert!(finalized(&out, "a-good"), "{}", out.stdout);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Process ids: every invalid shape, never looked up, never planned for a signal.

#[test]
fn invalid_process_ids_are_never_planned_for_a_signal() {
    let pid_max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A thread of this test: kill(tid, 0) answers, but it is not a process.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid cannot fail.
        tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = done_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let test_pid = std::process::id();
    let cases: Vec<(&str, String, bool)> = vec![
        // (id, JSON text of process_id, wrong type?)
        ("p-zero", "0".into(), false),
        ("p-one", "1".into(), false),
        ("p-minus-one", "-1".into(), false),
        ("p-i32-min", "-2147483648".into(), false),
        ("p-i32-max-plus-1", "2147483648".into(), false),
        ("p-u32-max", "4294967295".into(), false),
        ("p-u32-max-plus-1", "4294967296".into(), false),
        ("p-u32-max-plus-2", "4294967297".into(), false),
        ("p-u64-max-plus-2", "18446744073709551617".into(), false),
        ("p-pid-max-plus-1", (pid_max + 1).to_string(), false),
        ("p-test-process", test_pid.to_string(), false),
        ("p-thread", tid.to_string(), false),
        ("p-huge", "1".to_string() + &"0".repeat(45), true),
        ("p-float", "12.0".into(), true),
        ("p-exponent", "1e2".into(), true),
        ("p-string", "\"42\"".into(), true),
        ("p-bool", "true".into(), true),
        ("p-array", "[42]".into(), true),
        ("p-object", "{\"pid\": 42}".into(), true),
    ];
    let run = Run::new();
    for (id, text, _) in &cases {
        let doc = delegation(
            id,
            "running",
            json!({"process_id": "@@PID@@", "last_progress_at": at(-600_000)}),
        );
        let body = serde_json::to_string_pretty(&doc)
            .unwrap()
            .replace("\"@@PID@@\"", text);
        run.write(&format!("delegations/{id}.json"), body);
    }
    let status = status(&run, &[]);
    assert_no_crash(&status);
    assert_eq!(
        status.code, 3,
        "the wrongly typed ids make their files malformed"
    );
    for (id, _, wrong_type) in &cases {
        let record = status.by_id(id);
        assert_fields(
            &record,
            json!({"process_alive": null, "process_identity": null}),
        );
        let warnings = record["warnings"].as_array().unwrap();
        assert!(warnings.contains(&json!("invalid_process_id")), "{record}");
        if *wrong_type {
            assert!(
                warnings
                    .iter()
                    .any(|w| w == "wrong_type:worker_lifecycle.process_id"),
                "{record}"
            );
        }
    }
    let mut cmd = Command::new(bin());
    cmd.args(["reclaim", "--dry-run", "--format=ndjson", "--now", NOW])
        .arg(run.arg());
    let plan = run_command(&mut cmd, GUARD);
    assert_no_crash(&plan);
    done_tx.send(()).unwrap();
    thread.join().unwrap();
    assert_eq!(plan.code, 3, "{}", plan.stderr);
    let records = plan.records();
    assert_eq!(records.len(), cases.len());
    for record in &records {
        assert_fields(
            record,
            json!({"action": "skipped", "termination": "skipped_invalid_pid"}),
        );
        // Every dry-run target lists the pids it would signal: none here.
        assert_eq!(record["would_signal"], json!([]), "{record}");
    }
}

// ---------------------------------------------------------------------------------------
// Timestamps.

#[test]
fn timestamps_invalid_out_of_range_with_offsets_and_leap_seconds() {
    // (text, Some(what flatline reads it as) or None when it is not RFC 3339)
    let cases: &[(&str, Option<&str>)] = &[
        ("not a time", None),
        ("", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-02-30T00:00:00Z", None),
        ("2026-11-22T24:00:00Z", None),
        ("2026-11-22T07:59:60Z", None),
        ("2026-11-22T07:59:00", None),
        ("2026-11-22", None),
        ("07:59:00Z", None),
        (" 2026-11-22T07:59:00Z", None),
        ("2026-11-22T07:59:00Z ", None),
        ("+2026-11-22T07:59:00Z", None),
        ("-0001-01-01T00:00:00Z", None),
        ("10000-01-01T00:00:00Z", None),
        ("2026-11-22T07:59:00+24:00", None),
        (
            "2026-11-22T07:59:00.000000000000000000000000000000000000000000000000000Z",
            None,
        ),
        (
            "2026-11-22T07:59:00+01:00",
            Some("2026-11-22T06:59:00.000Z"),
        ),
        (
            "2026-11-22T08:59:00+01:00",
            Some("2026-11-22T07:59:00.000Z"),
        ),
        (
            "2026-11-22T02:29:00-05:30",
            Some("2026-11-22T07:59:00.000Z"),
        ),
        (
            "2026-11-22T07:59:00.123456789Z",
            Some("2026-11-22T07:59:00.123Z"),
        ),
        ("2026-11-22t07:59:00z", Some("2026-11-22T07:59:00.000Z")),
        ("2016-12-31T23:59:60Z", Some("2016-12-31T23:59:59.999Z")),
        ("9999-12-31T23:59:59Z", Some("9999-12-31T23:59:59.000Z")),
        ("0000-01-01T00:00:00Z", Some("0000-01-01T00:00:00.000Z")),
        ("1970-01-01T00:00:00Z", Some("1970-01-01T00:00:00.000Z")),
        ("1969-12-31T23:59:59.999Z", Some("1969-12-31T23:59:59.999Z")),
    ];
    let run = Run::new();
    for (i, (text, _)) in cases.iter().enumerate() {
        let id = format!("ts{i:02}");
        run.delegation(
            &id,
            &delegation(&id, "running", json!({"last_progress_at": text})),
        );
    }
    let out = status(&run, &[]);
    assert_no_crash(&out);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let mut invalid = 0;
    for (i, (text, read_as)) in cases.iter().enumerate() {
        let id = format!("ts{i:02}");
        let record = out.by_id(&id);
        let path = run.delegation_path(&format!("{id}.json"));
        let line = format!(
            "flatline: {}: worker_lifecycle.last_progress_at is not an RFC 3339 timestamp",
            path.display()
        );
        match read_as {
            None => {
                invalid += 1;
                assert_fields(
                    &record,
                    json!({"last_progress_at": null, "state": "unknown",
                           "warnings": ["invalid_timestamp:worker_lifecycle.last_progress_at", "no_progress_baseline"]}),
                );
                assert!(
                    out.stderr_lines().contains(&line.as_str()),
                    "{text:?}: {}",
                    out.stderr
                );
            }
            Some(expected) => {
                assert_eq!(record["last_progress_at"], *expected, "{text:?}: {record}");
                assert!(!out.stderr.contains(&*path.to_string_lossy()), "{text:?}");
            }
        }
    }
    assert_eq!(out.stderr_lines().len(), invalid);
    // The far-future one is not trusted; the ancient ones timed out.
    assert_fields(
        &out.by_id("ts22"),
        json!({"state": "unknown", "warnings": ["clock_skew"]}),
    );
    assert_fields(&out.by_id("ts23"), json!({"state": "timed_out"}));
}

#[test]
fn timestamps_pushed_out_of_range_by_an_offset_are_invalid() {
    let run = Run::new();
    // Both are RFC 3339 texts, but in UTC they fall in year -1 and year 10000.
    run.delegation(
        "before-year-0",
        &delegation(
            "before-year-0",
            "running",
            json!({"last_progress_at": "0000-01-01T00:00:00+00:01"}),
        ),
    );
    run.delegation(
        "after-year-9999",
        &delegation(
            "after-year-9999",
            "running",
            json!({"last_progress_at": "9999-12-31T23:59:59-23:59"}),
        ),
    );
    let out = status(&run, &[]);
    assert_no_crash(&out);
    assert_eq!(out.code, 3, "{}", out.stderr);
    for id in ["before-year-0", "after-year-9999"] {
        assert_fields(
            &out.by_id(id),
            json!({"last_progress_at": null, "state": "unknown",
                   "warnings": ["invalid_timestamp:worker_lifecycle.last_progress_at", "no_progress_baseline"]}),
        );
    }
    for record in out.records() {
        if let Some(text) = record["last_progress_at"].as_str() {
            assert!(
                flatline::core::time::parse_rfc3339(text).is_some(),
                "status printed a timestamp it cannot read back: {text}"
            );
        }
    }
    // Nothing to reclaim (no baseline): nothing is written, and every timestamp in the files
    // is still the orchestrator's own.
    let before = (
        run.read("delegations/before-year-0.json"),
        run.read("delegations/after-year-9999.json"),
    );
    let mut cmd = Command::new(bin());
    cmd.args(["reclaim", "--format=ndjson"]).arg(run.arg());
    let reclaim = run_command(&mut cmd, GUARD);
    assert_no_crash(&reclaim);
    assert_eq!(reclaim.stdout, "", "{}", reclaim.stderr);
    assert_eq!(
        before,
        (
            run.read("delegations/before-year-0.json"),
            run.read("delegations/after-year-9999.json"),
        )
    );
}

// ---------------------------------------------------------------------------------------
// Huge and negative numbers in thresholds and fingerprints.

#[test]
fn huge_and_negative_thresholds_and_fingerprints() {
    let run = Run::new();
    let cases = [
        (
            "huge",
            "\"stale_after_ms\": 123456789012345678901234567890, \"quiet_after_ms\": 170141183460469231731687303715884105727, \"timeout_after_ms\": 9223372036854775808",
        ),
        (
            "negative",
            "\"stale_after_ms\": -1, \"quiet_after_ms\": -170141183460469231731687303715884105728, \"timeout_after_ms\": -9223372036854775809",
        ),
        (
            "zero",
            "\"stale_after_ms\": 0, \"quiet_after_ms\": 0, \"timeout_after_ms\": 0",
        ),
        (
            "fingerprint",
            "\"process_id\": 999999999, \"exit_code\": -9223372036854775809, \"process_fingerprint\": {\"start_ticks\": -1, \"boot_id\": \"\", \"pid_ns\": 340282366920938463463374607431768211455}",
        ),
    ];
    for (id, fields) in cases {
        run.write(
            &format!("delegations/{id}.json"),
            format!(
                "{{\"delegation_id\": \"{id}\", \"child_agent\": {{\"status\": \"running\"}}, \
                 \"worker_lifecycle\": {{\"last_progress_at\": \"{}\", {fields}}}}}",
                at(-60_000)
            ),
        );
    }
    for extra in [
        &[][..],
        &["--stuck-after", "1ms"],
        &["--max-runtime", "1ms"],
    ] {
        let out = status(&run, extra);
        assert_no_crash(&out);
        for (id, _) in cases {
            let record = out.by_id(id);
            for field in ["quiet_after_ms", "stale_after_ms", "timeout_after_ms"] {
                let value = record[field].as_i64().unwrap_or_else(|| panic!("{record}"));
                assert!(value >= 1, "{field} must be a positive integer: {record}");
            }
            let (q, s, t) = (
                record["quiet_after_ms"].as_i64().unwrap(),
                record["stale_after_ms"].as_i64().unwrap(),
                record["timeout_after_ms"].as_i64().unwrap(),
            );
            assert!(q <= s && s <= t, "thresholds in order: {record}");
        }
        // Values below 1 are clamped with a warning (values past i64 saturate silently).
        for id in ["negative", "zero"] {
            assert!(
                out.by_id(id)["warnings"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("invalid_threshold")),
                "{}",
                out.by_id(id)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A 2 GB sparse stream: a live worker's stream is only stat'ed; a finished worker's stream
// is read once, in bounded memory (the address space is capped at 1 GiB).

fn sparse_stream(run: &Run, id: &str) -> PathBuf {
    let path = run.path().join(format!("raw-events/{id}.jsonl"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(2 * 1024 * 1024 * 1024).unwrap();
    path
}

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

/// Copies the run into a tmpfs mounted `strictatime` in a private mount namespace (every
/// read of a file updates its access time there, whatever the host's mount options), then
/// runs `refresh` on the copy with its address space capped at 1 GiB. Prints flatline's
/// stdout, then `ATIME <stream before> <stream after> <twin before> <twin after>`.
const STRICTATIME_REFRESH: &str = r#"set -e
src=$1 m=$2 bin=$3 mtime=$4
mount -t tmpfs -o strictatime,mode=0755 flatline-atime "$m"
cp -a --sparse=always "$src/delegations" "$src/raw-events" "$m/"
printf '{}\n' > "$m/twin.jsonl"
touch -d "@$mtime" "$m/raw-events/live.jsonl" "$m/twin.jsonl"
a0=$(stat -c %x "$m/raw-events/live.jsonl"); t0=$(stat -c %x "$m/twin.jsonl")
(ulimit -v 1048576; exec "$bin" refresh --format=ndjson "$m")
cat "$m/twin.jsonl" >/dev/null
a1=$(stat -c %x "$m/raw-events/live.jsonl"); t1=$(stat -c %x "$m/twin.jsonl")
echo "ATIME $a0|$a1|$t0|$t1"
"#;

#[test]
fn a_2_gb_sparse_stream_of_a_live_worker_is_only_stated() {
    if !is_root() || !have("unshare") {
        eprintln!("SKIPPED: needs root and unshare to mount a strictatime tmpfs");
        return;
    }
    let worker = Proc::sleep();
    let now = real_now_ms();
    let run = Run::new();
    let mut doc = delegation(
        "live",
        "running",
        json!({"process_id": worker.pid(), "launch_requested_at": rfc3339(now - 1_000),
               "started_at": rfc3339(now), "last_progress_at": rfc3339(now)}),
    );
    doc["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/live.jsonl"});
    run.delegation("live", &doc);
    sparse_stream(&run, "live");
    // The stream is newer than the recorded progress (whole seconds: `touch -d @S`), and in
    // the past when flatline runs (it is stamped after the worker started).
    let mtime_s = now / 1000 + 1;
    while real_now_ms() <= mtime_s * 1000 {
        std::thread::yield_now();
    }
    let mount = TempDir::new("strictatime");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "bash", "-c"])
        .arg(STRICTATIME_REFRESH)
        .arg("bash")
        .arg(run.path())
        .arg(mount.path())
        .arg(bin())
        .arg(mtime_s.to_string());
    let out = run_command(&mut cmd, HANG_GUARD);
    assert_no_crash(&out);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (records, atimes) = out
        .stdout
        .split_once("ATIME ")
        .expect("the script ran to its end");
    let record: Value = serde_json::from_str(records.trim()).unwrap();
    assert_fields(
        &record,
        json!({"action": "progressed", "last_progress_at": rfc3339(mtime_s * 1000)}),
    );
    let atimes: Vec<&str> = atimes.trim().split('|').collect();
    // strictatime: the twin, read once by cat, shows that every read moves the access time.
    assert_ne!(
        atimes[2], atimes[3],
        "the tmpfs keeps no access times: {atimes:?}"
    );
    assert_eq!(atimes[0], atimes[1], "a live worker's stream was read");
}

#[test]
fn a_2_gb_sparse_stream_of_a_finished_worker_is_read_in_bounded_memory() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let run = Run::new();
    let mut doc = delegation(
        "gone",
        "running",
        json!({"process_id": pid, "last_progress_at": at(-60_000)}),
    );
    doc["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/gone.jsonl"});
    run.delegation("gone", &doc);
    let stream = sparse_stream(&run, "gone");
    set_mtime_ms(&stream, NOW_MS - 30_000);
    let out = capped_at_now("refresh", &run);
    assert_no_crash(&out);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // One 2 GB line of NUL bytes: skipped, nothing usable; only its head and tail (32M in
    // all, --max-stream-read) are looked at.
    let read = 32u64 << 20;
    assert_fields(
        &out.by_action("gone"),
        json!({"action": "finalized", "status": "failed", "raw_events_bytes": read,
               "raw_output_truncated": true,
               "raw_output_skipped_bytes": 2u64 * 1024 * 1024 * 1024 - read}),
    );
}

// ---------------------------------------------------------------------------------------
// A root-owned secret hard-linked into the run.

#[test]
fn a_root_owned_secret_hard_linked_into_the_run_is_not_read() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    // Root's secret (mode 0600), outside the run; an agent (uid 65534) hard-links it in (with
    // fs.protected_hardlinks=0 it can) and names it as its exited worker's stream.
    let outside = TempDir::new("root-secret");
    let secret = outside.join("shadow");
    std::fs::write(&secret, format!("{MARKER} root:$6$hash\nsecond line\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    set_mtime_ms(&secret, NOW_MS - 60_000);
    let run = Run::new();
    std::fs::create_dir(run.path().join("raw-events")).unwrap();
    let link = run.path().join("raw-events/w.jsonl");
    std::fs::hard_link(&secret, &link).unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let mut doc = delegation(
        "w",
        "running",
        json!({"process_id": pid, "last_progress_at": at(-120_000)}),
    );
    doc["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/w.jsonl"});
    let path = run.delegation("w", &doc);
    chown(&path, 65534);
    let mut cmd = Command::new(bin());
    cmd.args(["refresh", "--format=ndjson", "--now", NOW])
        .arg(run.arg());
    let out = run_command(&mut cmd, GUARD);
    assert_no_crash(&out);
    let written = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
    assert!(
        !written.contains(MARKER) && !out.stdout.contains(MARKER),
        "root's secret was copied into a document its agent can read:\n{written}"
    );
}

// ---------------------------------------------------------------------------------------
// Kernel threads.

#[test]
fn kernel_threads_are_never_planned_for_a_signal() {
    let is_kthreadd = std::fs::read_to_string("/proc/2/comm")
        .map(|c| c.trim() == "kthreadd")
        .unwrap_or(false);
    if !is_kthreadd {
        eprintln!("SKIPPED: pid 2 is not kthreadd here");
        return;
    }
    // A root-owned delegation naming kthreadd, with a window wide enough for it (launch
    // requested in 1970, started ten minutes ago): only the kernel-thread rule stands between
    // this plan and every kernel thread of the machine.
    let ten_minutes_ago = rfc3339(real_now_ms() - 600_000);
    let run = Run::new();
    run.delegation(
        "k",
        &delegation(
            "k",
            "running",
            json!({"process_id": 2, "launch_requested_at": "1970-01-01T00:00:00Z",
                   "started_at": ten_minutes_ago, "last_progress_at": ten_minutes_ago}),
        ),
    );
    let mut cmd = Command::new(bin());
    cmd.args(["reclaim", "--dry-run", "--format=ndjson"])
        .arg(run.arg());
    let out = run_command(&mut cmd, GUARD);
    assert_no_crash(&out);
    let record = out.by_action("k");
    assert_eq!(
        record["would_signal"],
        json!([]),
        "kernel threads planned for SIGTERM/SIGKILL: {record}"
    );
    assert_fields(
        &record,
        json!({"action": "skipped", "termination": "skipped_invalid_pid",
               "reason": "process_id is a kernel thread"}),
    );
}

// ---------------------------------------------------------------------------------------
// Heartbeat, inbox and outbox paths named by a worker spec (SPEC §1.3, §5).

/// Every hostile target for each path a worker spec names: one stderr line naming the spec
/// and the path, the worker still reported (health unknown or a count of null), the good
/// worker unaffected, nothing outside the run read, in `status` and in `health-events`
/// (whose state file and event log must not carry an outside byte either).
#[test]
fn hostile_heartbeat_inbox_and_outbox_paths() {
    let outside = Outside::new();
    let run = Run::bare();
    let fifo = run.path().join("fifo");
    mkfifo(&fifo);
    std::fs::create_dir(run.path().join("a-dir")).unwrap();
    let sparse = std::fs::File::create(run.path().join("sparse")).unwrap();
    sparse.set_len(2 * 1024 * 1024 * 1024).unwrap();
    drop(sparse);
    let foreign = run.write("foreign.jsonl", "{\"m\":1}\n");
    let root = is_root();
    if root {
        chown(&foreign, 65534);
    }
    let secret = outside.secret.to_string_lossy().into_owned();
    let escape = format!("../{}/secret.jsonl", outside.name());
    // (case, path, fragment of the message): the same for the three fields.
    let mut targets: Vec<(&str, String, &str)> = vec![
        (
            "dev-zero",
            "/dev/zero".into(),
            "lies outside the run directory",
        ),
        (
            "proc-mem",
            "/proc/self/mem".into(),
            "lies outside the run directory",
        ),
        ("secret", secret.clone(), "lies outside the run directory"),
        (
            "escape",
            escape,
            "path_outside_run: escapes the run directory",
        ),
        (
            "fifo",
            "fifo".into(),
            "is a FIFO, not a regular file, refused",
        ),
        (
            "dir",
            "a-dir".into(),
            "is a directory, not a regular file, refused",
        ),
    ];
    if root {
        targets.push(("foreign", "foreign.jsonl".into(), "owned by uid 65534"));
    }
    let mut expected = Vec::new();
    for field in ["heartbeat", "inbox", "outbox"] {
        for (case, path, fragment) in &targets {
            let name = format!("{field}-{case}");
            // Relative paths resolve from the worker's directory (SPEC §5): these name the
            // same files, beneath the run, as `path` does from the run directory.
            let mut spec = json!({"name": name, "role": "coder"});
            spec[field] = if path.starts_with('/') {
                json!(path)
            } else {
                json!(format!("../../{path}"))
            };
            let spec_path = run.write(
                &format!("workers/{name}/worker-spec.json"),
                spec.to_string(),
            );
            set_mtime_ms(&spec_path, NOW_MS - 600_000);
            expected.push((name, field, spec_path, path.clone(), *fragment));
        }
    }
    // A 2 GB sparse heartbeat is over the document limit; 2 GB sparse queues are counted
    // streaming (one line of NUL bytes), in bounded memory.
    for field in ["heartbeat", "inbox", "outbox"] {
        let name = format!("{field}-sparse");
        let spec_path = run.write(
            &format!("workers/{name}/worker-spec.json"),
            json!({"name": name, field: "../../sparse"}).to_string(),
        );
        set_mtime_ms(&spec_path, NOW_MS - 600_000);
        if field == "heartbeat" {
            expected.push((
                name,
                field,
                spec_path,
                "sparse".into(),
                "larger than 16 MiB, not read",
            ));
        }
    }
    // Workers are read in name order.
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let good = run.write(
        "workers/zz-good/worker-spec.json",
        json!({"name": "zz-good", "heartbeat": "heartbeat.json",
               "inbox": "./inbox.jsonl"})
        .to_string(),
    );
    set_mtime_ms(&good, NOW_MS - 600_000);
    run.write(
        "workers/zz-good/heartbeat.json",
        json!({"status": "alive", "name": "zz-good", "ts": at(-1_000)}).to_string(),
    );
    run.write("workers/zz-good/inbox.jsonl", "{\"m\":1}\n{\"m\":2}\n");

    let status = capped_at_now("status", &run);
    assert_no_crash(&status);
    assert_eq!(status.code, 3, "{}", status.stderr);
    let lines = status.stderr_lines();
    assert_eq!(lines.len(), expected.len(), "{}", status.stderr);
    for (line, (name, field, spec_path, path, fragment)) in lines.iter().zip(&expected) {
        let head = format!("flatline: {}: {field} {path}: ", spec_path.display());
        assert!(
            line.starts_with(&head) && line.contains(fragment),
            "{name}: {line:?} should start {head:?} and say {fragment:?}"
        );
    }
    let workers: Vec<Value> = status
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "worker")
        .collect();
    assert_eq!(workers.len(), expected.len() + 3);
    for worker in &workers {
        let name = worker["worker_id"].as_str().unwrap();
        match name.split('-').next().unwrap() {
            "heartbeat" => assert_eq!(worker["health"], "unknown", "{worker}"),
            "inbox" if name == "inbox-sparse" => assert_eq!(worker["inbox_count"], 1),
            "outbox" if name == "outbox-sparse" => assert_eq!(worker["outbox_count"], 1),
            "inbox" => assert_eq!(worker["inbox_count"], Value::Null, "{worker}"),
            "outbox" => assert_eq!(worker["outbox_count"], Value::Null, "{worker}"),
            _ => assert_fields(worker, json!({"health": "healthy", "inbox_count": 2})),
        }
    }
    assert!(!status.stdout.contains(MARKER) && !status.stderr.contains(MARKER));

    let events = capped_at_now("health-events", &run);
    assert_no_crash(&events);
    assert_eq!(events.code, 3, "{}", events.stderr);
    assert_eq!(
        events.stderr_lines().len(),
        expected.len(),
        "{}",
        events.stderr
    );
    assert!(!events.stdout.contains(MARKER) && !events.stderr.contains(MARKER));
    let state = std::fs::read_to_string(run.path().join(".flatline/state.json")).unwrap();
    assert!(
        state.contains("zz-good") && !state.contains(MARKER),
        "{state}"
    );
    if let Ok(log) = std::fs::read_to_string(run.path().join("events.jsonl")) {
        assert!(!log.contains(MARKER));
    }
    // (The 2 GB sparse file is not one to read back whole.)
    std::fs::remove_file(run.path().join("sparse")).unwrap();
    assert_no_leak("worker paths", run.path(), &outside.secret);
}

/// Issue 12 class 1 (SPEC §1.3, §3.1): an agent (uid 65534) that can write `delegations/`
/// places there a root-owned 0666 file and a hard link of a root-owned file, each naming a
/// root process that looks stuck. Neither is root's word: the 0666 one is foreign for the uid
/// guard (`skipped_foreign`) and never replaced, the linked one is reported from its fstat and
/// never read. Both root processes are alive afterwards; a genuine root delegation in the same
/// run is reclaimed, so the machinery is shown to work, not merely to refuse. Signals only
/// inside a private pid namespace.
const FOREIGN_DOCS: &str = r##"
run=$1; bin=$2; scratch=$3
now() { local us=${EPOCHREALTIME/./}; local ms=$((us / 1000));
        printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000)); }
doc() { # id pid timestamp
  printf '{"delegation_id":"%s","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"launch_requested_at":"%s","started_at":"%s","process_started_at":"%s","last_progress_at":"%s","stale_after_ms":1000}}\n' \
    "$1" "$2" "$3" "$3" "$3" "$3"; }
as_agent() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
now; t=$REPLY
sleep 300 & renamed=$!
sleep 300 & linked=$!
sleep 300 & genuine=$!
# Root's files that the agent may write (an orchestrator's sloppy 0666 scratch files).
install -m 0666 /dev/null "$scratch/open.json"
install -m 0666 /dev/null "$scratch/shared.json"
doc genuine "$genuine" "$t" > "$run/delegations/genuine.json"
as_agent bash -c "$(declare -f doc); doc renamed $renamed $t > $scratch/open.json && mv $scratch/open.json $run/delegations/renamed.json" || echo "#agent rename failed"
as_agent bash -c "$(declare -f doc); doc linked $linked $t > $scratch/shared.json && ln $scratch/shared.json $run/delegations/linked.json" || echo "#agent link failed"
# The linked file no longer writable by anyone but root: only its second link is left.
chmod 0644 "$scratch/shared.json"
cp "$run/delegations/renamed.json" "$scratch/renamed.before"
sleep 1.5
"$bin" reclaim --format=ndjson --grace 1s "$run"; echo "#exit $?"
kill -0 "$renamed" 2>/dev/null && echo "#renamed alive"
kill -0 "$linked" 2>/dev/null && echo "#linked alive"
kill -0 "$genuine" 2>/dev/null && echo "#genuine alive"
cmp -s "$scratch/renamed.before" "$run/delegations/renamed.json" && echo "#renamed unchanged"
echo "#done"
"##;

#[test]
fn renamed_and_hard_linked_root_documents_are_not_roots_word() {
    if !have("unshare") || !have("setpriv") || !is_root() {
        eprintln!("SKIPPED: needs root, unshare and setpriv");
        return;
    }
    let run = Run::new();
    let scratch = TempDir::new("scratch");
    for dir in [run.path().join("delegations"), scratch.path().to_path_buf()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mut command = pid_namespace_bash(FOREIGN_DOCS);
    command
        .arg(run.path())
        .arg(bin())
        .arg(scratch.path())
        .env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let notes: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .collect();
    assert_eq!(notes.last(), Some(&"done"), "{}", out.stdout);
    assert!(
        notes.contains(&"renamed alive"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        notes.contains(&"linked alive"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        !notes.contains(&"genuine alive"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(notes.contains(&"renamed unchanged"), "{}", out.stdout);
    assert!(notes.contains(&"exit 3"), "{}\n{}", out.stdout, out.stderr);
    let records: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |id: &str| {
        records
            .iter()
            .find(|r| r["delegation_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no record for {id}: {}", out.stdout))
    };
    assert_eq!(by("renamed")["termination"], "skipped_foreign");
    assert_eq!(by("genuine")["termination"], "terminated");
    assert!(
        !records.iter().any(|r| r["delegation_id"] == "linked"),
        "a document with two links was read: {}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("delegations/linked.json: hard_linked: has 2 hard links"),
        "{}",
        out.stderr
    );
}

/// Issue 12 class 14 (SPEC §3.1): a sandboxed process of the agent's own uid, in a nested
/// pid namespace, named by the agent's delegation, is not signalled (`skipped_nested`) unless
/// `--allow-nested-pidns` is given. Inside a private pid namespace.
const NESTED_WORKER: &str = r##"
run=$1; bin=$2
now() { local us=${EPOCHREALTIME/./}; local ms=$((us / 1000));
        printf -v REPLY '%(%Y-%m-%dT%H:%M:%S)T.%03dZ' $((ms / 1000)) $((ms % 1000)); }
now; t=$REPLY
unshare --pid --fork setpriv --reuid=65534 --regid=65534 --clear-groups sleep 300 &
outer=$!
# The sandboxed sleep is unshare's child.
for _ in $(seq 100); do sandboxed=$(cat /proc/$outer/task/$outer/children 2>/dev/null); [ -n "$sandboxed" ] && break; sleep 0.02; done
sandboxed=${sandboxed% }
grep NSpid /proc/$sandboxed/status | sed 's/^/#/'
printf '{"delegation_id":"n","child_agent":{"status":"running"},"worker_lifecycle":{"process_id":%s,"launch_requested_at":"%s","started_at":"%s","process_started_at":"%s","last_progress_at":"%s","stale_after_ms":1000}}\n' \
  "$sandboxed" "$t" "$t" "$t" "$t" > "$run/delegations/n.json"
chown 65534:65534 "$run/delegations/n.json"
sleep 1.2
"$bin" reclaim --format=ndjson --grace 1s "$run"; echo "#exit $?"
kill -0 "$sandboxed" 2>/dev/null && echo "#sandboxed alive after the first run"
"$bin" reclaim --format=ndjson --grace 1s --allow-nested-pidns "$run"; echo "#exit $?"
kill -0 "$sandboxed" 2>/dev/null && echo "#sandboxed alive after the second run"
echo "#done"
"##;

#[test]
fn a_nested_namespace_worker_of_an_agents_delegation_is_skipped() {
    if !have("unshare") || !have("setpriv") || !is_root() {
        eprintln!("SKIPPED: needs root, unshare and setpriv");
        return;
    }
    let run = Run::new();
    let mut command = pid_namespace_bash(NESTED_WORKER);
    command.arg(run.path()).arg(bin()).env("TZ", "UTC");
    let out = run_command(&mut command, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let notes: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .collect();
    assert_eq!(
        notes.last(),
        Some(&"done"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let nspid = notes
        .iter()
        .find(|n| n.starts_with("NSpid:"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(nspid.split_whitespace().count(), 3, "not nested: {nspid}");
    let records: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records[0]["termination"], "skipped_nested",
        "{}",
        out.stdout
    );
    assert!(
        notes.contains(&"sandboxed alive after the first run"),
        "{}",
        out.stdout
    );
    assert_eq!(notes[1], "exit 1", "{}", out.stdout);
    // The flag lifts the guard: the same worker is then reclaimed (the machinery works).
    let second = &records[1];
    assert!(
        second["termination"] == "terminated" || second["termination"] == "killed",
        "{}",
        out.stdout
    );
    assert!(!notes.contains(&"sandboxed alive after the second run"));
}
