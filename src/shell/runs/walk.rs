//! The walk over a listing: every delegation once, in file-name order (or from where a
//! stopped run ended), read one at a time or ahead of the parser.

use super::documents::Documents;
use super::process::{Item, LazyHost, inspect_ahead, prepare_identity};
use super::stream::stream_facts_ahead;
use super::{Listing, Run, is_document_name, list_child};
use crate::cli::config::Config;
use crate::core::lifecycle::StreamFacts;
use crate::core::time::Millis;
use crate::exit::Exit;
use crate::fs::{self, Dir, Entry, FileMeta, MAX_DOCUMENT_BYTES};
use crate::interrupt::Stop;
use crate::output::Diagnostics;
use std::path::Path;

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
pub(super) const PREFETCH_FROM: usize = 32;

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
    host.2
        .borrow_mut()
        .begin_run(&run.path, run.dir(), config, diag);
    let left_out = leave_duplicates(run, listing, config, diag);
    let mut documents = Documents::select(&listing.entries, |entry| {
        is_document_name(entry.name)
            && config.delegation_selected(entry.name)
            && !super::duplicates::is_duplicated(&left_out, entry.name)
    });
    // The listing is sorted by the bytes of the names, as `OsStr` compares them.
    documents.rotate_to(resume.start.as_deref());
    let total = documents.len();
    let mut done = 0usize;
    let mut path = run.path.join("delegations");
    let each = |entry: &Entry, read: Read, ahead: Option<StreamFacts>| {
        if let Some(exit) = stop.check() {
            resume.stopped_at = Some(entry.name.to_os_string());
            if exit == Exit::Deadline {
                deadline_passed(&run.path, config, done, total, diag);
            }
            return Err(exit);
        }
        done += 1;
        if host.2.borrow().window_passed(config) {
            second_look(run, listing, config, host, diag, stop, false, visit)?;
        }
        path.push(entry.name);
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
    let result = if documents.len() < PREFETCH_FROM {
        one_at_a_time(&listing.dir, &documents, each)
    } else {
        prefetch::run(
            &listing.dir,
            &documents,
            Some((&run.root, config.allow_outside_paths)),
            each,
        )
    };
    let result =
        result.and_then(|()| second_look(run, listing, config, host, diag, stop, true, visit));
    host.2.borrow_mut().finish_run(
        &run.path,
        run.dir(),
        documents.iter().map(|e| e.name),
        config,
        diag,
    );
    result
}

/// `--delegation ID` names `ID.json`; another document claiming its delegation_id is a
/// problem (SPEC §13), said here for every command. A writing command acts on neither file
/// (the other is not selected); `status` still shows the selected one.
fn leave_duplicates(
    run: &Run,
    listing: &Listing,
    config: &Config,
    diag: &mut Diagnostics,
) -> Vec<super::duplicates::Duplicate> {
    if config.delegations.is_empty() {
        return Vec::new();
    }
    let duplicates = super::duplicates::find(listing, &config.delegations);
    for duplicate in &duplicates {
        duplicate.report(run, diag);
    }
    // status still shows the named one; the others act on neither file.
    if config.command == crate::cli::Command::Status {
        return Vec::new();
    }
    duplicates
}

/// The second look of SPEC §11: the workers about to be judged stale without a usable
/// activity sample were left aside by the scan; once `--activity-window` has passed since
/// their first sample (checked between files, or waited for at the end of the scan, the one
/// wait of this invocation) they are sampled again and visited, compared with their first
/// sample, from the bytes they were read with.
#[allow(clippy::too_many_arguments)]
fn second_look(
    run: &Run,
    listing: &Listing,
    config: &Config,
    host: &LazyHost,
    diag: &mut Diagnostics,
    stop: &Stop,
    wait: bool,
    visit: &mut dyn FnMut(Item<'_>, &mut Diagnostics) -> Result<(), Exit>,
) -> Result<(), Exit> {
    let deferred = host.2.borrow_mut().take_deferred();
    if deferred.is_empty() {
        return Ok(());
    }
    let looking = host
        .2
        .borrow_mut()
        .second_look(run.dir(), config, stop, wait, diag)?;
    for document in deferred.into_iter().filter(|_| looking) {
        if let Some(exit) = stop.check() {
            return Err(exit);
        }
        let Some(entry) = listing.entries.iter().find(|e| e.name == document.name) else {
            continue;
        };
        let path = run.path.join("delegations").join(entry.name);
        visit_bytes(
            run,
            listing,
            &entry,
            &path,
            document.meta,
            &document.bytes,
            None,
            config,
            host,
            diag,
            visit,
        )?;
    }
    host.2.borrow_mut().end_second_look();
    Ok(())
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
pub(super) fn one_at_a_time(
    dir: &Dir,
    documents: &Documents<'_>,
    mut each: impl FnMut(&Entry, Read<'_>, Option<StreamFacts>) -> Result<(), Exit>,
) -> Result<(), Exit> {
    let mut buf = Vec::with_capacity(16 * 1024);
    for entry in documents.iter() {
        let read = dir
            .read_entry(&entry, MAX_DOCUMENT_BYTES, &mut buf)
            .map(|meta| (meta, buf.as_slice()));
        each(&entry, read, None)?;
    }
    Ok(())
}

/// A file as read: its metadata and bytes, or why it could not be read.
pub(super) type Read<'b> = Result<(FileMeta, &'b [u8]), fs::ReadError>;

/// Reading ahead: one thread opens and reads the next files of the listing while the caller
/// parses and prints the current one, so the kernel's time per file and flatline's own
/// overlap on two cores. Order, checks and messages are those of reading one file at a
/// time; memory stays bounded: at most two batches of `BATCH` small files wait (the one the
/// caller works through, the one the reader has ready), and a file larger than `SMALL` is
/// handed over open, to be read by the caller into its own buffer. A batch is handed over
/// whole: one wake-up of the other thread per batch, not one per file.
pub(super) mod prefetch {
    use super::Read;
    use crate::core::lifecycle::StreamFacts;
    use crate::exit::Exit;
    use crate::fs::{self, Dir, Entry, FileMeta, MAX_DOCUMENT_BYTES, ReadError, RunRoot};
    use crate::shell::runs::documents::Documents;
    use std::fs::File;
    use std::io::{Seek, SeekFrom};
    use std::sync::mpsc;

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
        documents: &Documents<'_>,
        streams: Option<(&RunRoot, bool)>,
        mut each: impl FnMut(&Entry, Read<'_>, Option<StreamFacts>) -> Result<(), Exit>,
    ) -> Result<(), Exit> {
        // A rendezvous: the reader waits with its next batch until the caller takes it.
        let (sender, receiver) = mpsc::sync_channel::<Vec<(Fetched, Option<StreamFacts>)>>(0);
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
                        // The caller stopped early (signal, deadline, exit status): so do we.
                        if sender
                            .send(fetched.into_iter().zip(ahead).collect())
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            // No thread to be had (a pids limit in a container): one file at a time.
            if reader.is_err() {
                return super::one_at_a_time(dir, documents, &mut each);
            }
            let mut large = Vec::new();
            let mut batch = Vec::new().into_iter();
            for entry in documents.iter() {
                let entry = &entry;
                // One item per entry, in batches; none means the reader panicked, which the
                // scope passes on when it ends.
                let next = match batch.next() {
                    Some(item) => Some(item),
                    None => receiver.recv().ok().and_then(|next| {
                        batch = next.into_iter();
                        batch.next()
                    }),
                };
                let Some((fetched, ahead)) = next else {
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
pub(super) fn visit_bytes(
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
    host.2.borrow_mut().set_current(Some(entry.name));
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
            if host.2.borrow_mut().take_defer(entry.name, meta, bytes) {
                return Ok(());
            }
            if !view.malformed.is_empty() {
                diag.error(path, &view.malformed.join("; "), Exit::FileProblem);
            }
            let item = Item {
                dir: &listing.dir,
                name: entry.name,
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
    host.2.borrow_mut().set_current(None);
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
