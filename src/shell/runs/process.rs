//! The process facts of the delegations of a run: the host, the identity of the run, and
//! the view of one delegation file (`inspect`).

use super::Run;
use super::stream::stream_facts;
use crate::cli::config::Config;
use crate::core::identity::{self, Host, Observation};
use crate::core::lifecycle::{self, ChildStatus, ProcessFacts, StreamFacts, Times, View};
use crate::exit::Exit;
use crate::fs::{self, Dir, FileMeta, RunRoot};
use crate::model::{self, Delegation, DocError};
use crate::output::Diagnostics;
use crate::proc;
use std::cell::{OnceCell, RefCell};
use std::ffi::OsStr;
use std::path::Path;

/// The host facts, read on first use: a run without running workers never reads them. It
/// also carries what the identity decision knows about the run being scanned (`RunIdentity`).
#[derive(Debug, Default)]
pub struct LazyHost(OnceCell<Host>, pub(super) RefCell<RunIdentity>);

impl LazyHost {
    pub fn get(&self) -> &Host {
        self.0.get_or_init(Host::read)
    }
}

/// What the identity decision knows about the run being scanned (SPEC §3.1), set once per
/// run by `for_each_in_listing`, and the document being inspected (for stating its stream as
/// its owner).
#[derive(Debug, Default)]
pub(super) struct RunIdentity {
    /// The run (device, inode) this is about.
    run: Option<(u64, u64)>,
    /// When a step of the wall clock was last seen (real time, ms).
    clock_step_at: Option<crate::core::time::Millis>,
    /// flatline runs in another pid namespace than the one recorded for this run, or than
    /// the one a running delegation's fingerprint names.
    foreign_pid_ns: bool,
    /// A fingerprint just showed the namespace is foreign: to be said once.
    pub(super) newly_foreign: bool,
    /// The run root (a duplicate descriptor) and the path policy, to stat worker streams.
    root: Option<RunRoot>,
    allow_outside: bool,
    /// The owner the document being inspected speaks for (`fs::guard_owner`); `None`
    /// outside the first inspection of a listed file: then no stream is stated.
    pub(super) owner: Option<u32>,
}

/// The `.flatline/state.json` section of the clock (SPEC §3.1).
pub const CLOCK_SECTION: &str = "clock";
/// The `.flatline/state.json` section of flatline's own pid namespace (SPEC §3.1).
pub const PID_NS_SECTION: &str = "pid_ns";

/// Sets the identity facts of `run` in `host` once per run: reads the clock offset and pid
/// namespace recorded in `state.json`, compares them with flatline's own, and, for a writing
/// command (the lock is held), records them.
pub(super) fn prepare_identity(
    run: &Run,
    config: &Config,
    host: &LazyHost,
    diag: &mut Diagnostics,
) {
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
    let (mut state, readable) = match state_dir.as_ref().map(crate::shell::state::RunState::read) {
        Some(Ok(state)) => (state, true),
        Some(Err(_)) | None => (crate::shell::state::RunState::default(), false),
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
    let writing = config.writes_runs();
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
                &crate::shell::state::path_of(&run.path),
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
pub(super) fn stream_mtime(
    doc: &Delegation<'_>,
    host: &LazyHost,
) -> Option<crate::core::time::Millis> {
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
pub(super) fn inspect_ahead<R>(
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

pub(super) fn inspect_with<R>(
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
        config.signals_workers(),
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
