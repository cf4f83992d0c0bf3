//! lock: the run lock (`.flatline/lock`, SPEC §4), who holds it (`/proc/locks`) and for how
//! many runs in a row.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::group::write_in_dir_group;
use super::meta::FileMeta;
use super::read::Dir;
use super::write::temp::entry_name;
use crate::core::time::{self, Millis};
use crate::fs as files;
use crate::sys::fd::unlinkat;
use state_dir::{check_state_file, open_lock_file, open_state_dir};

mod pause;
mod state_dir;

pub use pause::unlocked_while;

/// Why the run lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock (exit 75): who, and how long flatline waited.
    Busy(Box<Busy>),
    /// `.flatline`, its `lock` or its `state.json` is not as flatline can trust it (another
    /// owner, a mode that lets others in, a symlink, several links, not a directory or
    /// regular file), or this user cannot write `.flatline`: the run is refused (exit 4).
    /// The message says what was found and how to repair it.
    Unusable(String),
    /// `stop()` returned true while waiting (a signal or the deadline arrived).
    Stopped,
    Io(io::Error),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Busy(busy) => write!(f, "{busy}"),
            LockError::Unusable(what) => f.write_str(what),
            LockError::Stopped => f.write_str("stopped while waiting for .flatline/lock"),
            LockError::Io(error) => f.write_str(&files::io_message(error)),
        }
    }
}

impl std::error::Error for LockError {}

impl From<io::Error> for LockError {
    fn from(error: io::Error) -> Self {
        LockError::Io(error)
    }
}

/// A lock that another process holds: who (from `/proc/locks`), how long flatline waited,
/// and how many runs in a row found that holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// `None` when `/proc/locks` shows no holder this pid namespace can name.
    pub holder: Option<LockHolder>,
    pub waited: Duration,
    /// The holder's streak, as this run recorded it (`None`: no pid to track, or the record
    /// could not be written; see `record_error`).
    pub streak: Option<HolderStreak>,
    /// Why the streak could not be recorded (a warning, never a reason to stop).
    pub record_error: Option<String>,
}

/// The process holding a lock, as this pid namespace sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: i32,
    /// Its real uid (`None`: gone or hidden by the time flatline looked).
    pub uid: Option<u32>,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.holder {
            Some(LockHolder {
                pid,
                uid: Some(uid),
            }) => write!(f, "held by pid {pid} (uid {uid})")?,
            Some(LockHolder { pid, uid: None }) => {
                write!(f, "held by pid {pid} (uid unknown: gone or hidden)")?
            }
            None => f.write_str("held by a process this pid namespace cannot name")?,
        }
        write!(f, "; flatline waited {} ms", self.waited.as_millis())?;
        if self.waited.is_zero() {
            f.write_str(" (use --wait DURATION to wait for it)")?;
        }
        if let Some(streak) = self.streak.as_ref().filter(|streak| streak.is_lock_held()) {
            write!(f, "; {streak}")?;
        }
        Ok(())
    }
}

/// How many runs in a row must find the same pid holding the lock before it is a
/// `lock_held` problem (SPEC §4).
pub const LOCK_HELD_RUNS: u64 = 3;

/// The same pid found holding the lock by consecutive runs that could not take it. Kept in
/// `.flatline/lock_holders.json`, not in `state.json`: the runs that see a holder are exactly
/// the runs that cannot take the lock `state.json` is written under, and a write to it then
/// could undo the holder's own (when the holder is a flatline). A run that takes the lock
/// removes the file: the streak is broken.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HolderStreak {
    pub pid: i32,
    pub uid: Option<u32>,
    /// Runs in a row that found `pid` holding the lock.
    pub runs: u64,
    /// When the first of them found it (RFC 3339).
    pub since: String,
    pub last_seen_at: String,
}

impl HolderStreak {
    /// The streak after one more run found `holder` holding the lock at `now`.
    pub fn next(previous: Option<HolderStreak>, holder: LockHolder, now: Millis) -> HolderStreak {
        let at = time::format_rfc3339(now);
        match previous {
            Some(previous) if previous.pid == holder.pid && previous.uid == holder.uid => {
                HolderStreak {
                    runs: previous.runs.saturating_add(1),
                    last_seen_at: at,
                    ..previous
                }
            }
            _ => HolderStreak {
                pid: holder.pid,
                uid: holder.uid,
                runs: 1,
                since: at.clone(),
                last_seen_at: at,
            },
        }
    }

    pub fn is_lock_held(&self) -> bool {
        self.runs >= LOCK_HELD_RUNS
    }
}

impl fmt::Display for HolderStreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lock_held: pid {} (uid ", self.pid)?;
        match self.uid {
            Some(uid) => write!(f, "{uid}")?,
            None => f.write_str("unknown")?,
        }
        write!(
            f,
            ") has held the run lock across {} runs since {}",
            self.runs, self.since
        )
    }
}

/// Holds `RUN_DIR/.flatline/lock` (exclusive flock) until dropped or released.
#[derive(Debug)]
pub struct RunLock {
    core: Arc<Core>,
    notices: Vec<(PathBuf, String)>,
}

/// The lock file and its `.flatline/`, shared with the registry of the locks this thread
/// holds (`pause`), which lets them all go while flatline only waits.
#[derive(Debug)]
pub(super) struct Core {
    state_dir: Dir,
    /// The flock, let go when the `RunLock` is dropped.
    lock: File,
    held: AtomicBool,
}

impl RunLock {
    /// The `.flatline` directory (for state.json), opened without following symlinks.
    pub fn state_dir(&self) -> &Dir {
        &self.core.state_dir
    }

    /// What the caller should say on stderr once (path, message): e.g. a creator outside
    /// the lock group that gave `.flatline` its own primary group.
    pub fn notices(&self) -> &[(PathBuf, String)] {
        &self.notices
    }

    /// Whether the lock is held now (false between `release` and `reacquire`, and after a
    /// `reacquire` that failed: nothing more may be written in the run then).
    pub fn is_held(&self) -> bool {
        self.core.held.load(Ordering::Relaxed)
    }

    /// Another descriptor of the locked open file description, as a child forked while the
    /// lock is held has one until it executes.
    #[cfg(test)]
    pub fn shared_descriptor(&self) -> io::Result<File> {
        self.core.lock.try_clone()
    }

    /// Lets go of the flock while flatline only waits (a grace, a kill wait), so that an
    /// orchestrator can write meanwhile. Documents must be read again before the next write.
    #[cfg(test)]
    pub fn release(&self) -> io::Result<()> {
        self.core.release()
    }

    /// Takes the flock again after `release`, as `lock_run` would (`Busy` at once without
    /// `wait`, else polling until it has passed or `stop()` says so). The lock excludes
    /// others only while `.flatline/lock` is still the file flatline locks: a lock file
    /// replaced meanwhile refuses the run.
    #[cfg(test)]
    pub fn reacquire(
        &self,
        wait: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), LockError> {
        self.core.reacquire(wait, stop)
    }
}

/// The flock belongs to the open file description, which a child forked meanwhile shares
/// until it executes (`flatline run` forks its worker while the queued record is written):
/// closing this descriptor alone would leave the lock held by that child, so it is let go
/// explicitly.
impl Drop for Core {
    fn drop(&mut self) {
        if self.held.load(Ordering::Relaxed) {
            let _ = self.lock.unlock();
        }
    }
}

impl Core {
    /// The `.flatline` directory's path.
    pub(super) fn path(&self) -> &std::path::Path {
        self.state_dir.path()
    }

    pub(super) fn is_held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    pub(super) fn release(&self) -> io::Result<()> {
        if self.held.load(Ordering::Relaxed) {
            self.lock.unlock()?;
            self.held.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(super) fn reacquire(
        &self,
        wait: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), LockError> {
        if self.held.load(Ordering::Relaxed) {
            return Ok(());
        }
        match acquire(&self.lock, wait, stop) {
            Ok(()) => {}
            Err(Acquire::Busy(waited)) => {
                let holder = files::fstat(self.lock.as_fd())
                    .ok()
                    .and_then(|meta| find_holder(&meta));
                return Err(LockError::Busy(Box::new(Busy {
                    holder,
                    waited,
                    streak: None,
                    record_error: None,
                })));
            }
            Err(Acquire::Stopped) => return Err(LockError::Stopped),
            Err(Acquire::Io(error)) => return Err(LockError::Io(error)),
        }
        let mine = files::fstat(self.lock.as_fd())?;
        let named = files::lstatat(self.state_dir.fd(), OsStr::new(LOCK_FILE));
        if !matches!(named, Ok(meta) if meta.dev == mine.dev && meta.ino == mine.ino) {
            self.lock.unlock()?;
            return Err(LockError::Unusable(
                ".flatline/lock was replaced while flatline waited without it, refused".into(),
            ));
        }
        self.held.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// What a writing command asks of `lock_run_as`.
pub struct LockRequest<'a> {
    /// `--lock-group`: the group a new `.flatline/`, `lock` and `state.json` get (`None`:
    /// the run directory's group).
    pub group: Option<u32>,
    /// `--wait`: how long to wait for another holder (`None`: not at all).
    pub wait: Option<Duration>,
    /// The run's `now`, for the holder streak's timestamps.
    pub now: Millis,
    /// Says when to stop waiting (a signal or the deadline).
    pub stop: &'a dyn Fn() -> bool,
}

pub(super) const STATE_DIR: &str = ".flatline";
pub(super) const LOCK_FILE: &str = "lock";
pub(super) const STATE_FILE: &str = "state.json";
const LOCK_HOLDERS_FILE: &str = "lock_holders.json";
/// The lock group may enter `.flatline/` and read (so lock) `lock` and read `state.json`.
pub(super) const STATE_DIR_MODE: u32 = 0o750;
pub(super) const SHARED_FILE_MODE: u32 = 0o640;
const LOCK_POLL_FIRST: Duration = Duration::from_millis(20);
const LOCK_POLL_STEP: Duration = Duration::from_millis(10);
const LOCK_POLL_MAX: Duration = Duration::from_millis(50);

/// `lock_run_as` with the run directory's group and the wall clock.
#[cfg(test)]
pub fn lock_run(
    run: &Dir,
    wait: Option<Duration>,
    stop: &dyn Fn() -> bool,
) -> Result<RunLock, LockError> {
    lock_run_as(
        run,
        &LockRequest {
            group: None,
            wait,
            now: crate::proc::now_ms(),
            stop,
        },
    )
}

/// Creates `RUN_DIR/.flatline/` (0750) and its `lock` (0640) in the lock group when
/// missing, refuses them when they exist in a shape flatline cannot trust (SPEC §4), then
/// takes an exclusive flock. Without `wait` a held lock is `Busy` at once; with `wait` it
/// polls every 20–50 ms until the wait has passed (`Busy`) or `stop()` says to stop
/// (`Stopped`). Never blocks forever. A `Busy` run records the holder's streak; a run that
/// gets the lock checks `state.json` and ends the streak.
pub fn lock_run_as(run: &Dir, request: &LockRequest<'_>) -> Result<RunLock, LockError> {
    let euid = files::effective_uid();
    let run_meta = run.meta()?;
    let mut notices = Vec::new();
    let state_dir = open_state_dir(run, &run_meta, request.group, euid, &mut notices)?;
    let lock = open_lock_file(&state_dir, &mut notices)?;
    match acquire(&lock, request.wait, request.stop) {
        Ok(()) => {}
        Err(Acquire::Busy(waited)) => {
            return Err(LockError::Busy(Box::new(record_busy(
                &state_dir,
                &lock,
                waited,
                request.now,
            ))));
        }
        Err(Acquire::Stopped) => return Err(LockError::Stopped),
        Err(Acquire::Io(error)) => return Err(LockError::Io(error)),
    }
    // Dropping `lock` on an error below releases the flock.
    check_state_file(&state_dir)?;
    match unlinkat(state_dir.fd(), &entry_name(OsStr::new(LOCK_HOLDERS_FILE))?) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => notices.push((
            state_dir.join(OsStr::new(LOCK_HOLDERS_FILE)),
            format!("cannot remove it: {}", files::io_message(&error)),
        )),
    }
    let core = Arc::new(Core {
        state_dir,
        lock,
        held: AtomicBool::new(true),
    });
    pause::register(&core);
    Ok(RunLock { core, notices })
}

/// Whether `run` has a `lock_held` problem now: a recorded streak of `LOCK_HELD_RUNS` or
/// more whose pid still holds the lock. Reads only; for `status`, which takes no lock.
pub fn lock_held(run: &Dir) -> Option<HolderStreak> {
    let state_dir = run.open_child(OsStr::new(STATE_DIR)).ok()??;
    let streak = read_streak(&state_dir)?;
    if !streak.is_lock_held() {
        return None;
    }
    let meta = files::lstatat(state_dir.fd(), OsStr::new(LOCK_FILE)).ok()?;
    if !meta.is_regular() {
        return None;
    }
    let holder = find_holder(&meta)?;
    (holder.pid == streak.pid).then_some(streak)
}

enum Acquire {
    Busy(Duration),
    Stopped,
    Io(io::Error),
}

fn acquire(lock: &File, wait: Option<Duration>, stop: &dyn Fn() -> bool) -> Result<(), Acquire> {
    let started = Instant::now();
    let deadline = wait.map(|wait| started + wait);
    let mut pause = LOCK_POLL_FIRST;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(error)) if error.kind() == io::ErrorKind::Interrupted => {
                continue;
            }
            Err(TryLockError::Error(error)) => return Err(Acquire::Io(error)),
        }
        let Some(deadline) = deadline else {
            return Err(Acquire::Busy(Duration::ZERO));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Acquire::Busy(started.elapsed()));
        }
        if stop() {
            return Err(Acquire::Stopped);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause + LOCK_POLL_STEP).min(LOCK_POLL_MAX);
    }
}

/// Names the holder and counts this run in its streak (best effort: a record that cannot
/// be written is a warning).
fn record_busy(state_dir: &Dir, lock: &File, waited: Duration, now: Millis) -> Busy {
    let holder = files::fstat(lock.as_fd())
        .ok()
        .and_then(|meta| find_holder(&meta));
    let mut busy = Busy {
        holder,
        waited,
        streak: None,
        record_error: None,
    };
    let Some(holder) = holder else {
        return busy;
    };
    let streak = HolderStreak::next(read_streak(state_dir), holder, now);
    let mut bytes = serde_json::to_vec_pretty(&streak).unwrap_or_default();
    bytes.push(b'\n');
    match write_in_dir_group(
        state_dir,
        OsStr::new(LOCK_HOLDERS_FILE),
        &bytes,
        SHARED_FILE_MODE,
    ) {
        Ok(()) => busy.streak = Some(streak),
        Err(error) => {
            busy.record_error = Some(format!(
                "{}: cannot record the lock's holder: {error}",
                files::display_path(&state_dir.join(OsStr::new(LOCK_HOLDERS_FILE)))
            ))
        }
    }
    busy
}

fn read_streak(state_dir: &Dir) -> Option<HolderStreak> {
    let mut buf = Vec::new();
    let meta = state_dir
        .read_file(OsStr::new(LOCK_HOLDERS_FILE), 64 * 1024, &mut buf)
        .ok()?;
    if meta.nlink != 1 {
        return None;
    }
    serde_json::from_slice(&buf).ok()
}

/// The holder of the flock on the file `meta` describes, from `/proc/locks`.
fn find_holder(meta: &FileMeta) -> Option<LockHolder> {
    let mut text = Vec::new();
    File::open("/proc/locks")
        .ok()?
        .take(16 << 20)
        .read_to_end(&mut text)
        .ok()?;
    let (major, minor) = dev_major_minor(meta.dev);
    let pid = lock_holder_pid(&text, major, minor, meta.ino)?;
    let mut status = Vec::new();
    let uid = File::open(format!("/proc/{pid}/status"))
        .and_then(|file| file.take(64 * 1024).read_to_end(&mut status))
        .ok()
        .and_then(|_| crate::core::identity::parse_status(&status))
        .map(|status| status.uid);
    Some(LockHolder { pid, uid })
}

/// The pid holding a lock on inode `ino` of device `major:minor`, from the text of
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF`; waiters, marked `->`,
/// are skipped). `None` when no line matches or the kernel could not map the holder's pid
/// into this namespace (it shows 0 or -1 then).
pub fn lock_holder_pid(text: &[u8], major: u64, minor: u64, ino: u64) -> Option<i32> {
    let text = String::from_utf8_lossy(text);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.get(1) == Some(&"->") || fields.len() < 6 {
            continue;
        }
        let mut id = fields[5].split(':');
        let (Some(maj), Some(min), Some(inode), None) =
            (id.next(), id.next(), id.next(), id.next())
        else {
            continue;
        };
        let matches = u64::from_str_radix(maj, 16) == Ok(major)
            && u64::from_str_radix(min, 16) == Ok(minor)
            && inode.parse::<u64>() == Ok(ino);
        if matches {
            return fields[4].parse::<i32>().ok().filter(|pid| *pid > 0);
        }
    }
    None
}

/// glibc's `major()` and `minor()` of an `st_dev`.
pub fn dev_major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev & 0x0000_0000_000f_ff00) >> 8) | ((dev & 0xffff_f000_0000_0000) >> 32);
    let minor = (dev & 0x0000_0000_0000_00ff) | ((dev & 0x0000_0fff_fff0_0000) >> 12);
    (major, minor)
}
