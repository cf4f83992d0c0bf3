//! Test support: temporary run directories that clean up after themselves, the real binary
//! run with a hang guard, ndjson parsing, and child processes that are killed on drop.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The instant most tests take as "now" (`--now`).
pub const NOW: &str = "2026-11-22T08:00:00Z";
pub const NOW_MS: i64 = 1_795_334_400_000;

/// `NOW` shifted by `offset_ms`, as flatline writes timestamps.
pub fn at(offset_ms: i64) -> String {
    rfc3339(NOW_MS + offset_ms)
}

/// The real wall clock in milliseconds (for process identity, which never uses `--now`).
pub fn real_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn rfc3339(ms: i64) -> String {
    flatline::core::time::format_rfc3339(ms)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary directory, removed when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = base.join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A run directory under construction.
pub struct Run {
    pub dir: TempDir,
}

impl Run {
    pub fn new() -> Run {
        let dir = TempDir::new("run");
        std::fs::create_dir(dir.join("delegations")).unwrap();
        Run { dir }
    }

    /// A run directory without `delegations/`.
    pub fn bare() -> Run {
        Run {
            dir: TempDir::new("run"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(&self) -> &OsStr {
        self.dir.path().as_os_str()
    }

    pub fn delegation_path(&self, name: &str) -> PathBuf {
        self.dir.join("delegations").join(name)
    }

    /// Writes `delegations/<id>.json` pretty-printed.
    pub fn delegation(&self, id: &str, doc: &Value) -> PathBuf {
        let path = self.delegation_path(&format!("{id}.json"));
        write_json(&path, doc);
        path
    }

    /// Writes raw bytes to a path relative to the run directory (parents created).
    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(rel)).unwrap()
    }

    pub fn read_json(&self, rel: &str) -> Value {
        serde_json::from_slice(&self.read(rel)).unwrap()
    }
}

pub fn write_json(path: &Path, doc: &Value) {
    let mut bytes = serde_json::to_vec_pretty(doc).unwrap();
    bytes.push(b'\n');
    std::fs::write(path, bytes).unwrap();
}

/// A delegation with the given child status and lifecycle fields.
pub fn delegation(id: &str, status: &str, lifecycle: Value) -> Value {
    json!({
        "delegation_id": id,
        "task_card_id": "card-1",
        "child_agent": {"status": status},
        "executor": {"status": status},
        "worker_lifecycle": lifecycle,
    })
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stdout as ndjson records.
    /// Every record must carry `schema_version: 1` and fit the strict schema (SPEC §7),
    /// checked here. Output's records
    /// end with it, and it is taken out of them so that tests comparing whole records compare
    /// the record's own fields (`explain` objects, written elsewhere, keep it in place).
    pub fn records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                let mut record: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad ndjson line {line:?}: {e}"));
                assert_eq!(
                    record["schema_version"], 1,
                    "a record without schema_version 1: {line}"
                );
                // Every record a test reads fits the published schema exactly (SPEC §7).
                crate::strict::check(&record);
                if let Some(map) = record.as_object_mut()
                    && map
                        .keys()
                        .next_back()
                        .is_some_and(|key| key == "schema_version")
                {
                    map.shift_remove("schema_version");
                }
                record
            })
            .collect()
    }

    /// The delegation records, by delegation_id.
    pub fn by_id(&self, id: &str) -> Value {
        self.records()
            .into_iter()
            .find(|r| r["kind"] == "delegation" && r["delegation_id"] == id)
            .unwrap_or_else(|| panic!("no record for {id} in {}", self.stdout))
    }

    /// The action record about one delegation.
    pub fn by_action(&self, id: &str) -> Value {
        self.records()
            .into_iter()
            .find(|r| r["kind"] == "action" && r["delegation_id"] == id)
            .unwrap_or_else(|| panic!("no action for {id} in {}", self.stdout))
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_flatline")
}

/// The default limit for one run of the binary: long enough for a loaded machine, short
/// enough that a hang fails the test instead of blocking CI.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// Runs the binary with `args`, stdin closed, stdout and stderr captured.
pub fn flatline<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_command(Command::new(bin()).args(args), HANG_GUARD)
}

/// Runs a prepared command with a hang guard: past `limit` it is killed and the test fails.
pub fn run_command(command: &mut Command, limit: Duration) -> Outcome {
    finish(start(command), limit)
}

/// Starts a prepared command with stdin closed and stdout/stderr captured.
pub fn start(command: &mut Command) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("spawn flatline")
}

/// Waits for a started command (hang guard `limit`) and collects what it printed.
pub fn finish(mut child: Child, limit: Duration) -> Outcome {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || read_all(stdout));
    let err_reader = std::thread::spawn(move || read_all(stderr));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("flatline did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn read_all(mut reader: impl std::io::Read) -> String {
    let mut bytes = Vec::new();
    let _ = reader.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `flatline status --now NOW --format ndjson RUN...` plus extra args.
pub fn status(run: &Run, extra: &[&str]) -> Outcome {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("status"),
        OsStr::new("--now"),
        OsStr::new(NOW),
        OsStr::new("--format"),
        OsStr::new("ndjson"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.push(run.arg());
    flatline(args)
}

/// Asserts that `record` has exactly these values for these fields.
#[track_caller]
pub fn assert_fields(record: &Value, expected: Value) {
    let Value::Object(expected) = expected else {
        panic!("expected an object");
    };
    for (key, value) in expected {
        assert_eq!(
            record.get(&key),
            Some(&value),
            "field {key} of {}",
            serde_json::to_string_pretty(record).unwrap()
        );
    }
}

/// A child process (of the test) that is killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(program: &str, args: &[&str]) -> Proc {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        Proc { child }
    }

    pub fn sleep() -> Proc {
        Proc::spawn("sleep", &["300"])
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child and waits until it has exited WITHOUT reaping it: it stays a zombie
    /// until dropped.
    pub fn make_zombie(&mut self) {
        let _ = self.child.kill();
        // SAFETY: waitid on our own child with WNOWAIT leaves it unreaped.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(rc, 0, "waitid");
    }

    /// The start time in clock ticks since boot (field 22 of /proc/PID/stat).
    pub fn start_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 1..];
        after.split_whitespace().nth(19).unwrap().parse().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until process `pid` has `path` open: an event, not a guess at timing.
pub fn wait_until_open(pid: u32, path: &Path) {
    let start = Instant::now();
    loop {
        if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for entry in entries.flatten() {
                if std::fs::read_link(entry.path()).ok().as_deref() == Some(path) {
                    return;
                }
            }
        }
        assert!(
            start.elapsed() < HANG_GUARD,
            "process {pid} never opened {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

pub fn pid_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").unwrap().ino()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a tool is on PATH; under CI a missing tool is a failure, elsewhere a skip.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required under CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

// ---- Helpers for the reliability and security suites (adversarial, crash, concurrency,
// ---- pid_reuse, random_input).

/// A small seeded xorshift64* generator: reproducible randomness without a dependency.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The seed of a randomized test: `FLATLINE_TEST_SEED` when set (to replay a failure),
/// else `default`. Printed, so a failing run can be replayed.
pub fn test_seed(default: u64) -> u64 {
    let seed = std::env::var("FLATLINE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("seed {seed} (replay with FLATLINE_TEST_SEED={seed})");
    seed
}

/// Sets a file's modification (and access) time to `ms` since the epoch.
pub fn set_mtime_ms(path: &Path, ms: i64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
    file.set_times(std::fs::FileTimes::new().set_modified(at).set_accessed(at))
        .unwrap();
}

/// Fails the test when flatline panicked or died of a signal (a panic exits 101).
#[track_caller]
pub fn assert_no_crash(out: &Outcome) {
    assert!(
        !out.stderr.contains("panicked") && out.code != 101 && out.code >= 0,
        "flatline crashed (exit {}): {}",
        out.code,
        out.stderr
    );
}

/// Names of flatline's temp files (`.<name>.flatline.<pid>.tmp`) in `dir`.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".flatline.") && n.ends_with(".tmp"))
        .collect()
}

/// Creates a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {path:?}"
    );
}

/// The ids of the processes from the test up to (excluding) pid 1.
pub fn ancestors_of_test() -> Vec<i64> {
    let mut chain = vec![i64::from(std::process::id())];
    let mut current = std::process::id().to_string();
    for _ in 0..256 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{current}/stat")) else {
            break;
        };
        let ppid: i64 = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        if ppid <= 1 {
            break;
        }
        chain.push(ppid);
        current = ppid.to_string();
    }
    chain
}

/// `unshare --pid --fork --mount-proc bash -c SCRIPT init …`: a bash script as the init of a
/// private pid namespace, for every test that may send a signal (the arguments after the
/// script's `$0` are added by the caller). Nothing it signals can be a process of the host.
pub fn pid_namespace_bash(script: &str) -> Command {
    let mut command = Command::new("unshare");
    command.args([
        "--pid",
        "--fork",
        "--mount-proc",
        "bash",
        "-c",
        script,
        "init",
    ]);
    command
}
