//! scan: reading run directories once — which runs, which delegation files, in what order,
//! and the process facts of running workers.
//!
//! Every command starts here. A run directory named twice is scanned once (by device and
//! inode); `delegations/` is listed once and sorted by name; hidden files and
//! `*.result.json` are skipped; each document is read once into a reused buffer.

use crate::config::Config;
use crate::core::identity::{self, Host, Observation};
use crate::core::lifecycle::{
    self, ChildStatus, ProcessFacts, StreamFacts, StreamInode, Times, View,
};
use crate::core::time::Millis;
use crate::exit::Exit;
use crate::fs::{
    self, Dir, Entry, FileMeta, MAX_DOCUMENT_BYTES, NamedPathPolicy, ReadError, RunRoot,
};
use crate::model::{self, Delegation, DocError};
use crate::output::Diagnostics;
use crate::proc;
use crate::stop::Stop;
use std::cell::{OnceCell, RefCell};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One run directory, opened.
#[derive(Debug)]
pub struct Run {
    /// The path as the operator typed it (used in every message and record).
    pub path: PathBuf,
    pub root: RunRoot,
}

impl Run {
    pub fn dir(&self) -> &Dir {
        &self.root.dir
    }
}

/// Opens each RUN_DIR once. A missing or unreadable one is reported (exit 4) and left out.
pub fn open_runs(paths: &[PathBuf], diag: &mut Diagnostics) -> Vec<Run> {
    let mut seen = HashSet::new();
    let mut runs = Vec::new();
    for path in paths {
        let dir = match Dir::open(path) {
            Ok(dir) => dir,
            Err(error) => {
                let message = match error.raw_os_error() {
                    Some(libc::ENOTDIR) => "not a directory".to_string(),
                    Some(libc::ENOENT) => "no such run directory".to_string(),
                    _ => fs::io_message(&error),
                };
                diag.error(path, &message, Exit::RunUnusable);
                continue;
            }
        };
        let meta = match dir.meta() {
            Ok(meta) => meta,
            Err(error) => {
                diag.error(path, &fs::io_message(&error), Exit::RunUnusable);
                continue;
            }
        };
        if !seen.insert((meta.dev, meta.ino)) {
            continue;
        }
        if !is_run_directory(&dir) {
            diag.error(path, NOT_A_RUN_DIRECTORY, Exit::RunUnusable);
            continue;
        }
        let real_path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        runs.push(Run {
            path: path.clone(),
            root: RunRoot { dir, real_path },
        });
    }
    runs
}

/// The entries one of which makes a directory a run directory (SPEC §6).
pub const RUN_SUBDIRS: [&str; 3] = ["delegations", "workers", "task-cards"];

pub const NOT_A_RUN_DIRECTORY: &str =
    "not a run directory (no delegations/, workers/ or task-cards/)";

/// Whether `dir` has one of `RUN_SUBDIRS`. Only the name is looked at (without following a
/// symlink): a `delegations` that is a symlink or a file is a run directory whose
/// `delegations/` is refused later, with its own message. Pointing a command at the parent
/// of the runs, or at `delegations/` itself, must never pass as an empty run.
pub fn is_run_directory(dir: &Dir) -> bool {
    RUN_SUBDIRS
        .iter()
        .any(|name| match fs::lstatat(dir.fd(), OsStr::new(name)) {
            Ok(_) => true,
            // Present but not looked at (EACCES): let the listing report it.
            Err(error) => error.raw_os_error() != Some(libc::ENOENT),
        })
}

/// A subdirectory of a run, listed.
#[derive(Debug)]
pub struct Listing {
    pub dir: Dir,
    pub entries: Vec<Entry>,
}

/// Opens and lists `RUN_DIR/<name>/` without following a symlink. `None` when it does not
/// exist (an empty run) or cannot be used (reported, exit 3).
pub fn list_child(run: &Run, name: &str, diag: &mut Diagnostics) -> Option<Listing> {
    let path = run.path.join(name);
    let dir = match run.dir().open_child(OsStr::new(name)) {
        Ok(Some(dir)) => dir,
        Ok(None) => return None,
        Err(error) => {
            let message = match error.raw_os_error() {
                Some(libc::ELOOP) => "is a symlink, refused".to_string(),
                Some(libc::ENOTDIR) => "not a directory".to_string(),
                _ => fs::io_message(&error),
            };
            diag.error(&path, &message, Exit::FileProblem);
            return None;
        }
    };
    match dir.entries() {
        Ok(entries) => Some(Listing { dir, entries }),
        Err(error) => {
            diag.error(&path, &fs::io_message(&error), Exit::FileProblem);
            None
        }
    }
}

/// `list_child` for a command about to write there: flatline's own leftover temp files are
/// removed (the run lock is held), unless this is a dry run, which changes nothing.
pub fn list_for_writing(
    run: &Run,
    name: &str,
    config: &Config,
    diag: &mut Diagnostics,
) -> Option<Listing> {
    let listing = list_child(run, name, diag)?;
    if !config.dry_run {
        crate::shell::commit::clean_temps(&listing.dir, &listing.entries, diag);
    }
    Some(listing)
}

/// `<name>.json` that is neither hidden nor a `*.result.json`.
pub fn is_document_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.starts_with(b".") && bytes.ends_with(b".json") && !bytes.ends_with(b".result.json")
}

/// The host facts, read on first use: a run without running workers never reads them. It
/// also carries what the identity decision knows about the run being scanned (`RunIdentity`).
#[derive(Debug, Default)]
pub struct LazyHost(OnceCell<Host>, RefCell<RunIdentity>);

impl LazyHost {
    pub fn get(&self) -> &Host {
        self.0.get_or_init(Host::read)
    }
}

/// What the identity decision knows about the run being scanned (SPEC §3.1), set once per
/// run by `for_each_in_listing`, and the document being inspected (for stating its stream as
/// its owner).
#[derive(Debug, Default)]
struct RunIdentity {
    /// The run (device, inode) this is about.
    run: Option<(u64, u64)>,
    /// When a step of the wall clock was last seen (real time, ms).
    clock_step_at: Option<crate::core::time::Millis>,
    /// flatline runs in another pid namespace than the one recorded for this run, or than
    /// the one a running delegation's fingerprint names.
    foreign_pid_ns: bool,
    /// A fingerprint just showed the namespace is foreign: to be said once.
    newly_foreign: bool,
    /// The run root (a duplicate descriptor) and the path policy, to stat worker streams.
    root: Option<RunRoot>,
    allow_outside: bool,
    /// The owner the document being inspected speaks for (`fs::guard_owner`); `None`
    /// outside the first inspection of a listed file: then no stream is stated.
    owner: Option<u32>,
}

/// The `.flatline/state.json` section of the clock (SPEC §3.1).
pub const CLOCK_SECTION: &str = "clock";
/// The `.flatline/state.json` section of flatline's own pid namespace (SPEC §3.1).
pub const PID_NS_SECTION: &str = "pid_ns";

/// Sets the identity facts of `run` in `host` once per run: reads the clock offset and pid
/// namespace recorded in `state.json`, compares them with flatline's own, and, for a writing
/// command (the lock is held), records them.
fn prepare_identity(run: &Run, config: &Config, host: &LazyHost, diag: &mut Diagnostics) {
    let Ok(meta) = run.dir().meta() else {
        return;
    };
    let key = (meta.dev, meta.ino);
    if host.1.borrow().run == Some(key) {
        return;
    }
    let root = run
        .root
        .dir
        .fd()
        .try_clone_to_owned()
        .ok()
        .map(|fd| RunRoot {
            dir: Dir::from_fd(fd, run.root.dir.path().to_path_buf()),
            real_path: run.root.real_path.clone(),
        });
    let state_dir = run.dir().open_child(OsStr::new(".flatline")).ok().flatten();
    // A state that cannot be read is reported by its other readers and never rewritten
    // here: a fresh object would erase the other concerns' sections.
    let (mut state, readable) = match state_dir.as_ref().map(crate::runstate::RunState::read) {
        Some(Ok(state)) => (state, true),
        Some(Err(_)) | None => (crate::runstate::RunState::default(), false),
    };
    let real_now = crate::proc::now_ms();
    let clock = identity::note_clock(
        state.section(CLOCK_SECTION),
        proc::boot_epoch_ms(),
        real_now,
        config.identity.slack,
    );
    let own_ns = proc::own_pid_ns();
    let (ns_section, foreign_pid_ns) = identity::note_pid_ns(state.section(PID_NS_SECTION), own_ns);
    if foreign_pid_ns {
        diag.warning(
            &run.path,
            "flatline runs in another pid namespace than the one recorded for this run: \
             workers without a process_fingerprint are unverifiable (never gone or reused)",
        );
    }
    let writing = !config.dry_run
        && matches!(
            config.command,
            crate::cli::Command::Refresh
                | crate::cli::Command::Reclaim
                | crate::cli::Command::Sweep
                | crate::cli::Command::FanIn
        );
    if writing
        && readable
        && let Some(dir) = &state_dir
    {
        state.set_section(CLOCK_SECTION, clock.section.clone());
        if let Some(section) = ns_section {
            state.set_section(PID_NS_SECTION, section);
        }
        if let Err(error) = state.write_if_changed(dir) {
            diag.error(
                &crate::runstate::path_of(&run.path),
                &error.to_string(),
                Exit::FileProblem,
            );
        }
    }
    *host.1.borrow_mut() = RunIdentity {
        run: Some(key),
        clock_step_at: clock.stepped_at,
        foreign_pid_ns,
        newly_foreign: false,
        root,
        allow_outside: config.allow_outside_paths,
        owner: None,
    };
}

/// The mtime of the worker's stream, stated (never opened for reading) as the document's
/// owner, when the document being inspected is known; `None` when there is none.
fn stream_mtime(doc: &Delegation<'_>, host: &LazyHost) -> Option<crate::core::time::Millis> {
    let context = host.1.borrow();
    let owner = context.owner?;
    let root = context.root.as_ref()?;
    let path = crate::model::stream_path(doc)?;
    let policy = fs::NamedPathPolicy {
        allow_outside: context.allow_outside,
        owner,
    };
    fs::open_named(root, &path, policy)
        .ok()
        .map(|named| named.meta.mtime_ms)
}

/// What the process of a delegation looks like now (SPEC §3.1). Only running, unreclaimed
/// delegations are looked at; the others get `NotChecked`.
pub fn process_facts(
    lifecycle: Option<&crate::model::Lifecycle<'_>>,
    child_status: ChildStatus,
    reclaimed: bool,
    evidence: &mut dyn FnMut(Observation) -> identity::Evidence,
    policy: identity::WindowPolicy,
    host: &LazyHost,
    want_uid: bool,
) -> ProcessFacts {
    if child_status != ChildStatus::Running || reclaimed {
        return ProcessFacts::NotChecked;
    }
    let raw = match lifecycle {
        Some(lifecycle) => &lifecycle.process_id,
        None => return ProcessFacts::NoPid,
    };
    let host = match raw {
        crate::model::Field::Absent | crate::model::Field::Null => return ProcessFacts::NoPid,
        _ => host.get(),
    };
    let pid = match identity::validate(raw, host) {
        None => return ProcessFacts::NoPid,
        Some(Err(invalid)) => return ProcessFacts::Invalid(invalid),
        Some(Ok(pid)) => pid,
    };
    let observation = proc::observe(pid, host, want_uid);
    match observation {
        Observation::NotThreadGroupLeader => {
            return ProcessFacts::Invalid(identity::InvalidPid::NotThreadGroupLeader);
        }
        Observation::KernelThread => {
            return ProcessFacts::Invalid(identity::InvalidPid::KernelThread);
        }
        _ => {}
    }
    let fingerprint = crate::core::lifecycle::recorded_fingerprint(lifecycle)
        .ok()
        .flatten();
    let evidence = evidence(observation);
    let identity = identity::identify(observation, evidence, fingerprint.as_ref(), host, policy);
    ProcessFacts::Checked {
        pid,
        observation,
        identity,
    }
}

/// One delegation file, read, parsed and looked at: what every command decides on.
pub struct Item<'a> {
    /// The `delegations/` directory (for writes through its descriptor).
    pub dir: &'a Dir,
    pub name: &'a OsStr,
    pub path: &'a Path,
    pub meta: FileMeta,
    /// The bytes as read: what a write must find unchanged before it replaces the file.
    pub bytes: &'a [u8],
    pub doc: &'a Delegation<'a>,
    pub times: &'a Times,
    pub facts: &'a ProcessFacts,
    pub view: &'a View<'a>,
}

/// Parses `bytes` and computes the view, then hands everything to `f`. Used for the first
/// read and again after a write conflict (the re-read bytes are inspected afresh). This view
/// does not look at the worker's stream (see `inspect_in`).
pub fn inspect<R>(
    bytes: &[u8],
    config: &Config,
    host: &LazyHost,
    f: impl FnOnce(&Delegation<'_>, &Times, &ProcessFacts, &View<'_>) -> R,
) -> Result<R, DocError> {
    inspect_with(bytes, config, host, |_, _| StreamFacts::NotLooked, f)
}

/// `inspect` with the evidence of the worker's stream: for a running delegation the stream
/// is stat'ed (never read) as the document's `owner`, so the view never lags the files.
pub fn inspect_in<R>(
    run: &Run,
    owner: u32,
    bytes: &[u8],
    config: &Config,
    host: &LazyHost,
    f: impl FnOnce(&Delegation<'_>, &Times, &ProcessFacts, &View<'_>) -> R,
) -> Result<R, DocError> {
    inspect_ahead(run, owner, bytes, None, config, host, f)
}

/// `inspect_in` with the stream facts already looked at (by the read-ahead thread), when
/// `ahead` has them.
fn inspect_ahead<R>(
    run: &Run,
    owner: u32,
    bytes: &[u8],
    ahead: Option<StreamFacts>,
    config: &Config,
    host: &LazyHost,
    f: impl FnOnce(&Delegation<'_>, &Times, &ProcessFacts, &View<'_>) -> R,
) -> Result<R, DocError> {
    inspect_with(
        bytes,
        config,
        host,
        |doc, facts| match (ahead, facts) {
            (_, ProcessFacts::NotChecked) => StreamFacts::NotLooked,
            (Some(ahead), _) => ahead,
            (None, _) => stream_facts(run, doc, owner, config, facts),
        },
        f,
    )
}

fn inspect_with<R>(
    bytes: &[u8],
    config: &Config,
    host: &LazyHost,
    stream: impl FnOnce(&Delegation<'_>, &ProcessFacts) -> StreamFacts,
    f: impl FnOnce(&Delegation<'_>, &Times, &ProcessFacts, &View<'_>) -> R,
) -> Result<R, DocError> {
    let delegation = model::parse_delegation(bytes)?;
    let lifecycle = delegation.worker_lifecycle.value();
    let times = Times::of(lifecycle);
    let policy = config.identity;
    // A running worker fingerprinted in another pid namespace than flatline's shows that this
    // run's pids are not flatline's to judge: from here on, no window verdict either.
    if lifecycle::child_status(&delegation) == ChildStatus::Running
        && !lifecycle::is_reclaimed(&delegation)
        && let Ok(Some(fingerprint)) = lifecycle::recorded_fingerprint(lifecycle)
        && host
            .get()
            .pid_ns
            .is_some_and(|own| own != fingerprint.pid_ns)
    {
        let mut context = host.1.borrow_mut();
        if !context.foreign_pid_ns {
            context.foreign_pid_ns = true;
            context.newly_foreign = true;
        }
    }
    let mut used: Option<identity::Evidence> = None;
    let mut evidence = |observation: Observation| {
        let mut evidence = times.evidence(lifecycle);
        {
            let context = host.1.borrow();
            evidence.clock_stepped = match (context.clock_step_at, evidence.anchor) {
                (Some(step), Some(anchor)) => step >= anchor,
                _ => false,
            };
            let own_ns = host.get().pid_ns;
            let recorded_ns = lifecycle
                .and_then(|l| l.pid_ns.value())
                .and_then(|ns| u64::try_from(*ns).ok());
            evidence.foreign_pid_ns =
                context.foreign_pid_ns || recorded_ns.is_some_and(|ns| own_ns != Some(ns));
        }
        // The stream is stated only when it can decide: a live process that started well
        // after the window (`reused` needs the stream written before that start).
        if let (Observation::Alive { start_ms, .. }, Some(window)) =
            (observation, identity::window(&evidence, policy))
            && start_ms > window.upper.saturating_add(identity::REUSE_MARGIN_MS)
        {
            evidence.stream_mtime = stream_mtime(&delegation, host);
        }
        used = Some(evidence);
        evidence
    };
    let facts = process_facts(
        lifecycle,
        lifecycle::child_status(&delegation),
        lifecycle::is_reclaimed(&delegation),
        &mut evidence,
        policy,
        host,
        // The uid guard of the commands that signal needs the process's real uid.
        matches!(
            config.command,
            crate::cli::Command::Reclaim | crate::cli::Command::Sweep
        ),
    );
    let stream = stream(&delegation, &facts);
    let mut view = lifecycle::view_with_stream(
        &delegation,
        &times,
        config.now,
        &config.thresholds,
        &facts,
        &stream,
    );
    // The window's own warnings, when the window was what decided (no fingerprint).
    let fingerprinted = matches!(
        crate::core::lifecycle::recorded_fingerprint(lifecycle),
        Ok(Some(_))
    );
    if let (Some(evidence), false) = (used, fingerprinted) {
        if evidence.clock_stepped && !view.warnings.contains(&lifecycle::Warning::ClockStep) {
            view.warnings.push(lifecycle::Warning::ClockStep);
        }
        if identity::window(&evidence, policy).is_some_and(|w| w.launch_after_start) {
            view.warnings.push(lifecycle::Warning::LaunchAfterStart);
        }
    }
    Ok(f(&delegation, &times, &facts, &view))
}

/// What a stat of a running worker's stream shows (SPEC §2): one `open_named` (`O_PATH`
/// and `fstat`, as the document's owner), never a read. Delegations that are not running
/// (or are reclaimed) are not looked at.
pub fn stream_facts(
    run: &Run,
    doc: &Delegation<'_>,
    owner: u32,
    config: &Config,
    facts: &ProcessFacts,
) -> StreamFacts {
    if matches!(facts, ProcessFacts::NotChecked) {
        return StreamFacts::NotLooked;
    }
    let Some(path) = crate::model::stream_path(doc) else {
        return StreamFacts::NotLooked;
    };
    let policy = NamedPathPolicy {
        allow_outside: config.allow_outside_paths,
        owner,
    };
    facts_of(fs::stat_named(&run.root, &path, policy))
}

/// The stream to stat for a delegation's view, when it has one and is running.
fn stream_to_stat(doc: &Delegation<'_>) -> Option<PathBuf> {
    if lifecycle::child_status(doc) != ChildStatus::Running || lifecycle::is_reclaimed(doc) {
        return None;
    }
    crate::model::stream_path(doc)
}

fn facts_of(stat: Result<FileMeta, ReadError>) -> StreamFacts {
    match stat {
        Ok(meta) => StreamFacts::Present {
            inode: StreamInode {
                dev: meta.dev,
                ino: meta.ino,
            },
            mtime_ms: meta.mtime_ms,
        },
        Err(ReadError::NotFound) => StreamFacts::Missing,
        Err(error) => StreamFacts::Unusable {
            not_readable_by_owner: matches!(error, ReadError::NotReadableByOwner(_)),
        },
    }
}

/// Reads every delegation of `run` once, in file-name order, and calls `visit` for each
/// one that parsed and passes `--task-card`. File problems are reported here. Stops early
/// when `stop` fires or `visit` returns an exit status.
pub fn for_each_delegation(
    run: &Run,
    config: &Config,
    host: &LazyHost,
    diag: &mut Diagnostics,
    stop: &Stop,
    mut visit: impl FnMut(Item<'_>, &mut Diagnostics) -> Result<(), Exit>,
) -> Result<(), Exit> {
    let Some(listing) = list_child(run, "delegations", diag) else {
        return Ok(());
    };
    for_each_in_listing(run, &listing, config, host, diag, stop, &mut visit)
}

/// Listings with at least this many documents are read with a reader thread ahead of the
/// parser (`prefetch`); smaller ones one file at a time.
const PREFETCH_FROM: usize = 32;

/// `for_each_delegation` over a listing the caller already holds.
pub fn for_each_in_listing(
    run: &Run,
    listing: &Listing,
    config: &Config,
    host: &LazyHost,
    diag: &mut Diagnostics,
    stop: &Stop,
    visit: &mut dyn FnMut(Item<'_>, &mut Diagnostics) -> Result<(), Exit>,
) -> Result<(), Exit> {
    let mut resume = Resume::default();
    for_each_in_listing_from(run, listing, config, host, diag, stop, &mut resume, visit)
}

/// Where a scan of `delegations/` starts and where a stop ended it (SPEC §4, `--deadline`):
/// a run cut short records the file it stopped before, and the next starts there and wraps
/// around, so one slow file cannot starve the files after it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resume {
    /// Start at the first document whose name is not below this one; `None`: file-name order.
    pub start: Option<std::ffi::OsString>,
    /// The document a signal or the deadline stopped the scan before.
    pub stopped_at: Option<std::ffi::OsString>,
}

/// Where in the sorted `names` a scan resuming at `start` begins: the first name not below
/// it (0 without one, or when every name is below it: the scan wraps around).
pub fn resume_point(names: &[&OsStr], start: Option<&OsStr>) -> usize {
    let Some(start) = start else {
        return 0;
    };
    match names.partition_point(|name| *name < start) {
        at if at == names.len() => 0,
        at => at,
    }
}

/// `for_each_in_listing`, starting where `resume` says and recording where a stop ended it.
/// A deadline that stops the scan is said on stderr with how far it got.
#[allow(clippy::too_many_arguments)]
pub fn for_each_in_listing_from(
    run: &Run,
    listing: &Listing,
    config: &Config,
    host: &LazyHost,
    diag: &mut Diagnostics,
    stop: &Stop,
    resume: &mut Resume,
    visit: &mut dyn FnMut(Item<'_>, &mut Diagnostics) -> Result<(), Exit>,
) -> Result<(), Exit> {
    prepare_identity(run, config, host, diag);
    let mut documents: Vec<&Entry> = listing
        .entries
        .iter()
        .filter(|entry| is_document_name(&entry.name) && config.delegation_selected(&entry.name))
        .collect();
    if resume.start.is_some() {
        // The listing is sorted by the bytes of the names, as `OsStr` compares them.
        let names: Vec<&OsStr> = documents
            .iter()
            .map(|entry| entry.name.as_os_str())
            .collect();
        let at = resume_point(&names, resume.start.as_deref());
        documents.rotate_left(at);
    }
    let total = documents.len();
    let mut done = 0usize;
    let mut path = run.path.join("delegations");
    let each = |entry: &Entry, read: Read, ahead: Option<StreamFacts>| {
        if let Some(exit) = stop.check() {
            resume.stopped_at = Some(entry.name.clone());
            if exit == Exit::Deadline {
                deadline_passed(&run.path, config, done, total, diag);
            }
            return Err(exit);
        }
        done += 1;
        path.push(&entry.name);
        let result = match read {
            Ok((meta, bytes)) => visit_bytes(
                run, listing, entry, &path, meta, bytes, ahead, config, host, diag, visit,
            ),
            Err(error) => {
                diag.error(&path, &error.to_string(), Exit::FileProblem);
                Ok(())
            }
        };
        path.pop();
        result
    };
    if documents.len() < PREFETCH_FROM {
        return one_at_a_time(&listing.dir, &documents, each);
    }
    prefetch::run(
        &listing.dir,
        &documents,
        Some((&run.root, config.allow_outside_paths)),
        each,
    )
}

/// Says on stderr that the deadline stopped a run, and how far it got (SPEC §4).
pub fn deadline_passed(
    run: &Path,
    config: &Config,
    done: usize,
    total: usize,
    diag: &mut Diagnostics,
) {
    let deadline = config
        .deadline
        .map(|d| crate::core::time::format_duration(Millis::try_from(d.as_millis()).unwrap_or(0)))
        .unwrap_or_default();
    diag.error(
        run,
        &format!(
            "deadline {deadline} passed after {done} of {total} delegations; the rest waits for the next run"
        ),
        Exit::Deadline,
    );
}

/// Reads the documents one after the other, each into the same buffer.
fn one_at_a_time(
    dir: &Dir,
    documents: &[&Entry],
    mut each: impl FnMut(&Entry, Read<'_>, Option<StreamFacts>) -> Result<(), Exit>,
) -> Result<(), Exit> {
    let mut buf = Vec::with_capacity(16 * 1024);
    for entry in documents {
        let read = dir
            .read_entry(entry, MAX_DOCUMENT_BYTES, &mut buf)
            .map(|meta| (meta, buf.as_slice()));
        each(entry, read, None)?;
    }
    Ok(())
}

/// The stream facts of a batch of documents read ahead, stat'ed together: the streams of
/// documents whose owners flatline does not speak for cost one round trip to the owners'
/// reader thread per batch, not one per document. `None` for a document not looked at here
/// (unparsable, too large to have been read ahead): the caller looks itself.
fn stream_facts_ahead(
    root: &RunRoot,
    allow_outside: bool,
    documents: &[Option<(FileMeta, &[u8])>],
) -> Vec<Option<StreamFacts>> {
    let mut wanted = Vec::new();
    let mut plan: Vec<Option<Option<usize>>> = Vec::with_capacity(documents.len());
    for document in documents {
        let Some((meta, bytes)) = document else {
            plan.push(None);
            continue;
        };
        let Ok(doc) = model::parse_delegation(bytes) else {
            plan.push(None);
            continue;
        };
        match stream_to_stat(&doc) {
            None => plan.push(Some(None)),
            Some(path) => {
                let policy = NamedPathPolicy {
                    allow_outside,
                    owner: fs::guard_owner(meta),
                };
                plan.push(Some(Some(wanted.len())));
                wanted.push((path, policy));
            }
        }
    }
    let mut stats: Vec<Option<Result<FileMeta, ReadError>>> = fs::stat_named_many(root, &wanted)
        .into_iter()
        .map(Some)
        .collect();
    plan.into_iter()
        .map(|step| match step? {
            None => Some(StreamFacts::NotLooked),
            Some(index) => stats.get_mut(index)?.take().map(facts_of),
        })
        .collect()
}

/// A file as read: its metadata and bytes, or why it could not be read.
type Read<'b> = Result<(FileMeta, &'b [u8]), fs::ReadError>;

/// Reading ahead: one thread opens and reads the next files of the listing while the caller
/// parses and prints the current one, so the kernel's time per file and flatline's own
/// overlap on two cores. Order, checks and messages are those of reading one file at a
/// time; memory stays bounded: at most `DEPTH` small files wait, and a file larger than
/// `SMALL` is handed over open, to be read by the caller into its own buffer.
mod prefetch {
    use super::Read;
    use crate::core::lifecycle::StreamFacts;
    use crate::exit::Exit;
    use crate::fs::{self, Dir, Entry, FileMeta, MAX_DOCUMENT_BYTES, ReadError, RunRoot};
    use std::fs::File;
    use std::io::{Seek, SeekFrom};
    use std::sync::mpsc;

    const DEPTH: usize = 32;
    const SMALL: usize = 64 * 1024;

    enum Fetched {
        Read(FileMeta, Vec<u8>),
        Open(File, FileMeta),
        Failed(ReadError),
    }

    /// What the reader does with one entry.
    fn fetch(dir: &Dir, entry: &Entry, mut buf: Vec<u8>) -> Fetched {
        let (mut file, meta) = match dir.open_entry(entry) {
            Ok(opened) => opened,
            Err(error) => return Fetched::Failed(error),
        };
        if meta.size > SMALL as u64 {
            return Fetched::Open(file, meta);
        }
        match fs::read_bounded(&mut file, meta.size, SMALL, &mut buf) {
            Ok(()) => Fetched::Read(meta, buf),
            // It grew past SMALL while being read: the caller reads it, from its start,
            // through the same descriptor.
            Err(ReadError::TooLarge(_)) => match file.seek(SeekFrom::Start(0)) {
                Ok(_) => Fetched::Open(file, meta),
                Err(error) => Fetched::Failed(ReadError::Io(error)),
            },
            Err(error) => Fetched::Failed(error),
        }
    }

    /// Documents fetched together, whose streams are stat'ed together.
    const BATCH: usize = 32;

    /// `streams`: where to stat the streams of running delegations ahead (their run and
    /// `--allow-outside-paths`), or `None` to leave that to the caller.
    pub fn run(
        dir: &Dir,
        documents: &[&Entry],
        streams: Option<(&RunRoot, bool)>,
        mut each: impl FnMut(&Entry, Read<'_>, Option<StreamFacts>) -> Result<(), Exit>,
    ) -> Result<(), Exit> {
        let (sender, receiver) = mpsc::sync_channel::<(Fetched, Option<StreamFacts>)>(DEPTH);
        let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
        std::thread::scope(|scope| {
            // Owned here, so an early return drops it and a reader blocked on a full queue
            // wakes (its send fails) before the scope waits for it.
            let receiver = receiver;
            let reader = std::thread::Builder::new()
                .name("flatline-reader".into())
                .spawn_scoped(scope, move || {
                    for chunk in documents.chunks(BATCH) {
                        let fetched: Vec<Fetched> = chunk
                            .iter()
                            .map(|entry| fetch(dir, entry, recycled.try_recv().unwrap_or_default()))
                            .collect();
                        let ahead = match streams {
                            Some((root, allow_outside)) => {
                                let read: Vec<Option<(FileMeta, &[u8])>> = fetched
                                    .iter()
                                    .map(|f| match f {
                                        Fetched::Read(meta, buf) => Some((*meta, buf.as_slice())),
                                        _ => None,
                                    })
                                    .collect();
                                super::stream_facts_ahead(root, allow_outside, &read)
                            }
                            None => vec![None; fetched.len()],
                        };
                        for item in fetched.into_iter().zip(ahead) {
                            // The caller stopped early (signal, deadline, exit status): so
                            // do we.
                            if sender.send(item).is_err() {
                                return;
                            }
                        }
                    }
                });
            // No thread to be had (a pids limit in a container): one file at a time.
            if reader.is_err() {
                return super::one_at_a_time(dir, documents, &mut each);
            }
            let mut large = Vec::new();
            for entry in documents {
                // One message per entry; none means the reader panicked, which the scope
                // passes on when it ends.
                let Ok((fetched, ahead)) = receiver.recv() else {
                    break;
                };
                match fetched {
                    Fetched::Read(meta, buf) => {
                        each(entry, Ok((meta, &buf)), ahead)?;
                        let _ = recycle.send(buf);
                    }
                    Fetched::Open(mut file, meta) => {
                        let read =
                            fs::read_bounded(&mut file, meta.size, MAX_DOCUMENT_BYTES, &mut large)
                                .map(|()| (meta, large.as_slice()));
                        each(entry, read, None)?;
                    }
                    Fetched::Failed(error) => each(entry, Err(error), None)?,
                }
            }
            Ok(())
        })
    }
}

/// Inspects and visits one file's bytes.
#[allow(clippy::too_many_arguments)]
fn visit_bytes(
    run: &Run,
    listing: &Listing,
    entry: &Entry,
    path: &Path,
    meta: FileMeta,
    bytes: &[u8],
    ahead: Option<StreamFacts>,
    config: &Config,
    host: &LazyHost,
    diag: &mut Diagnostics,
    visit: &mut dyn FnMut(Item<'_>, &mut Diagnostics) -> Result<(), Exit>,
) -> Result<(), Exit> {
    // The stream of this document is stated as its owner while it is inspected.
    let owner = fs::guard_owner(&meta);
    host.1.borrow_mut().owner = Some(owner);
    let result = inspect_ahead(
        run,
        owner,
        bytes,
        ahead,
        config,
        host,
        |doc, times, facts, view| {
            host.1.borrow_mut().owner = None;
            if !config.card_selected(doc.task_card_id.str()) {
                return Ok(());
            }
            if !view.malformed.is_empty() {
                diag.error(path, &view.malformed.join("; "), Exit::FileProblem);
            }
            let item = Item {
                dir: &listing.dir,
                name: &entry.name,
                path,
                meta,
                bytes,
                doc,
                times,
                facts,
                view,
            };
            visit(item, diag)
        },
    );
    host.1.borrow_mut().owner = None;
    if std::mem::take(&mut host.1.borrow_mut().newly_foreign) {
        diag.warning(
            path,
            "its process_fingerprint names another pid namespace than flatline's: workers \
             without a fingerprint are unverifiable for the rest of this run",
        );
    }
    match result {
        Ok(outcome) => outcome,
        Err(error) => {
            diag.error(path, &error.to_string(), Exit::FileProblem);
            Ok(())
        }
    }
}

/// The path of a file in a listing, for messages and records.
pub fn entry_path(run: &Run, subdir: &str, name: &OsStr) -> PathBuf {
    run.path.join(subdir).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of `n` small documents, listed.
    fn listed(tag: &str, n: usize) -> (std::path::PathBuf, Dir, Vec<Entry>) {
        let path = std::env::temp_dir().join(format!("flatline-scan-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        for i in 0..n {
            std::fs::write(path.join(format!("d{i:04}.json")), format!("{{\"i\":{i}}}")).unwrap();
        }
        let dir = Dir::open(&path).unwrap();
        let entries = dir.entries().unwrap();
        (path, dir, entries)
    }

    #[test]
    fn read_ahead_gives_every_file_in_order() {
        let (path, dir, entries) = listed("order", 300);
        let documents: Vec<&Entry> = entries.iter().collect();
        let mut seen = Vec::new();
        prefetch::run(&dir, &documents, None, |entry, read, _| {
            let (_, bytes) = read.unwrap();
            seen.push((entry.name.clone(), bytes.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 300);
        for (i, (name, bytes)) in seen.iter().enumerate() {
            assert_eq!(name, &std::ffi::OsString::from(format!("d{i:04}.json")));
            assert_eq!(bytes, format!("{{\"i\":{i}}}").as_bytes());
        }
        std::fs::remove_dir_all(path).unwrap();
    }

    #[test]
    fn read_ahead_ends_when_the_caller_stops_or_panics() {
        // The reader fills its queue long before the caller's first answer: it must be told
        // to stop, not waited for. Run on a thread of its own, so that a hang fails the test
        // instead of blocking it.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (path, dir, entries) = listed("stop", 300);
            let documents: Vec<&Entry> = entries.iter().collect();
            let mut calls = 0;
            let stopped = prefetch::run(&dir, &documents, None, |_, _, _| {
                calls += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
                Err(Exit::Deadline)
            });
            let panicked = std::panic::catch_unwind(|| {
                prefetch::run(&dir, &documents, None, |_, _, _| {
                    panic!("the caller panics")
                })
            })
            .is_err();
            std::fs::remove_dir_all(path).unwrap();
            let _ = done.send((stopped, calls, panicked));
        });
        let outcome = finished.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(
            outcome,
            Ok((Err(Exit::Deadline), 1, true)),
            "the read-ahead did not end"
        );
    }

    #[test]
    fn a_resumed_scan_starts_at_the_stored_name_and_wraps_around() {
        let names: Vec<&OsStr> = ["a.json", "b.json", "d.json"]
            .into_iter()
            .map(OsStr::new)
            .collect();
        assert_eq!(resume_point(&names, None), 0);
        assert_eq!(resume_point(&names, Some(OsStr::new("a.json"))), 0);
        assert_eq!(resume_point(&names, Some(OsStr::new("b.json"))), 1);
        // A file removed since: the next one after it.
        assert_eq!(resume_point(&names, Some(OsStr::new("c.json"))), 2);
        assert_eq!(resume_point(&names, Some(OsStr::new("d.json"))), 2);
        // Past the end: from the start.
        assert_eq!(resume_point(&names, Some(OsStr::new("z.json"))), 0);
        assert_eq!(resume_point(&[], Some(OsStr::new("a.json"))), 0);
    }

    #[test]
    fn document_names() {
        assert!(is_document_name(OsStr::new("d1.json")));
        assert!(!is_document_name(OsStr::new("d1.result.json")));
        assert!(!is_document_name(OsStr::new(".d1.json.flatline.1.tmp")));
        assert!(!is_document_name(OsStr::new(".hidden.json")));
        assert!(!is_document_name(OsStr::new("notes.txt")));
        assert!(!is_document_name(OsStr::new("json")));
    }

    #[test]
    fn read_ahead_stats_streams_as_each_documents_owner() {
        if fs::effective_uid() != 0 {
            eprintln!("SKIPPED: needs root (chown, another identity)");
            return;
        }
        use std::os::unix::fs::{PermissionsExt, chown};
        let path = std::env::temp_dir().join(format!("flatline-scan-ahead-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("delegations")).unwrap();
        std::fs::create_dir_all(path.join("raw-events")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(path.join("secret"), "root's").unwrap();
        std::fs::set_permissions(path.join("secret"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        // 40 documents of uid 65534 (more than a batch): running ones with their own
        // stream, one naming root's secret, finished ones that are not looked at.
        for i in 0..40 {
            let id = format!("d{i:02}");
            let (status, stream) = match i {
                7 => ("running", "secret".to_string()),
                _ if i % 3 == 0 => ("completed", format!("raw-events/{id}.jsonl")),
                _ => ("running", format!("raw-events/{id}.jsonl")),
            };
            let doc = path.join(format!("delegations/{id}.json"));
            std::fs::write(
                &doc,
                format!(
                    r#"{{"delegation_id":"{id}","child_agent":{{"status":"{status}"}},"worker_launch_evidence":{{"raw_events_file":"{stream}"}}}}"#
                ),
            )
            .unwrap();
            chown(&doc, Some(65534), Some(65534)).unwrap();
            if i % 5 != 0 {
                let file = path.join(format!("raw-events/{id}.jsonl"));
                std::fs::write(&file, "{}\n").unwrap();
                chown(&file, Some(65534), Some(65534)).unwrap();
            }
        }
        let root = RunRoot {
            dir: Dir::open(&path).unwrap(),
            real_path: std::fs::canonicalize(&path).unwrap(),
        };
        let dir = Dir::open(&path.join("delegations")).unwrap();
        let entries = dir.entries().unwrap();
        let documents: Vec<&Entry> = entries.iter().collect();
        let mut seen = Vec::new();
        prefetch::run(&dir, &documents, Some((&root, false)), |_, _, ahead| {
            seen.push(ahead);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 40);
        for (i, ahead) in seen.iter().enumerate() {
            let expected = match i {
                7 => "refused",
                _ if i % 3 == 0 => "not looked at",
                _ if i % 5 == 0 => "missing",
                _ => "present",
            };
            let got = match ahead {
                Some(StreamFacts::Unusable {
                    not_readable_by_owner: true,
                }) => "refused",
                Some(StreamFacts::NotLooked) => "not looked at",
                Some(StreamFacts::Missing) => "missing",
                Some(StreamFacts::Present { .. }) => "present",
                other => panic!("d{i:02}: {other:?}"),
            };
            assert_eq!(got, expected, "d{i:02}");
        }
        std::fs::remove_dir_all(path).unwrap();
    }
}
