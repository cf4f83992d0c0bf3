//! The run lock across users (SPEC §4): flatline as root and an orchestrator of another uid
//! in the run's group share `RUN/.flatline/lock`; what flatline refuses, and what it says.
//!
//! The other users are numeric uids and gids that need no account: `setpriv --reuid=1234
//! --regid=4321 --clear-groups` runs the orchestrator. Nothing here sends a signal.

use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

const CODEX_NO_TERMINAL: &str = include_str!("../fixtures/streams/codex-exec-no-terminal.jsonl");
/// The orchestrator's user and the run's group.
const ORCHESTRATOR: u32 = 1234;
const RUN_GROUP: u32 = 4321;

fn ready() -> bool {
    if !is_root() || !have("setpriv") || !have("flock") {
        eprintln!("SKIPPED: needs root, setpriv and flock");
        return false;
    }
    true
}

fn my_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// `setpriv` arguments that run a command as `uid` with only group `gid`.
fn as_user(uid: u32, gid: u32) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups");
    cmd
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// A running delegation whose stream was written 5 s before NOW, its document saying 60 s:
/// a refresh at NOW moves `last_progress_at` to the stream's mtime.
fn progressing_run() -> Run {
    let run = Run::new();
    run.delegation("d", &running_doc());
    let stream = run.write("raw-events/d.jsonl", CODEX_NO_TERMINAL);
    set_mtime_ms(&stream, NOW_MS - 5_000);
    run
}

fn running_doc() -> Value {
    let mut doc = delegation("d", "running", json!({"last_progress_at": at(-60_000)}));
    doc["worker_launch_evidence"] = json!({"raw_events_file": "raw-events/d.jsonl"});
    doc
}

fn refresh_args(run: &Run, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["refresh".into(), "--format=ndjson".into()];
    args.extend(extra.iter().map(Into::into));
    args.push(run.arg().to_owned());
    args
}

fn refresh(run: &Run, extra: &[&str]) -> Outcome {
    flatline(refresh_args(run, extra))
}

fn refresh_as(uid: u32, gid: u32, run: &Run, extra: &[&str]) -> Outcome {
    run_command(
        as_user(uid, gid).arg(bin()).args(refresh_args(run, extra)),
        HANG_GUARD,
    )
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn owner_of(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

/// An orchestrator holding the lock with `flock LOCK sh -c …` as `uid`/`gid`: it says
/// "locked", and on a line on its stdin runs `then` and exits (releasing the lock).
pub(crate) struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Holder {
    pub(crate) fn start(mut cmd: Command, lock: &Path, then: &str) -> Holder {
        let script = format!("echo locked; read go; {then}");
        let mut child = cmd
            .arg("flock")
            .arg(lock)
            .args(["sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "locked\n", "the holder did not get the lock");
        let stdin = child.stdin.take();
        Holder { child, stdin }
    }

    /// flock(1) execs nothing: the process that holds the lock is the one spawned.
    fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn finish(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            stdin.write_all(b"go\n").unwrap();
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the holder failed: {status:?}");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn root_flatline_and_an_orchestrator_of_the_run_group_share_the_lock() {
    if !ready() {
        return;
    }
    let run = progressing_run();
    // The orchestrator's run directory: its user, the run's group.
    chown_tree(run.path(), ORCHESTRATOR, RUN_GROUP);
    let (lock, state) = (
        run.path().join(".flatline/lock"),
        run.path().join(".flatline"),
    );
    // Root's first run creates .flatline/ 0750 and lock 0640 in the run directory's group.
    let out = refresh(&run, &["--now", &at(-30_000)]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!((mode_of(&state), owner_of(&state)), (0o750, (0, RUN_GROUP)));
    assert_eq!((mode_of(&lock), owner_of(&lock)), (0o640, (0, RUN_GROUP)));

    // The orchestrator, a member of that group only, holds it while it rewrites the
    // delegation (mv of a prepared document: an atomic write of its own).
    let mut next = running_doc();
    next["orchestrator_note"] = json!("written under the lock");
    let prepared = run.path().join("next.json");
    write_json(&prepared, &next);
    chown_tree(&prepared, ORCHESTRATOR, RUN_GROUP);
    let holder = Holder::start(
        as_user(ORCHESTRATOR, RUN_GROUP),
        &lock,
        &format!(
            "mv {} {}",
            prepared.display(),
            run.delegation_path("d.json").display()
        ),
    );

    // Without --wait: exit 75 at once, naming the holder's pid and uid.
    let busy = refresh(&run, &["--now", NOW]);
    assert_eq!(
        (busy.code, busy.stderr.clone()),
        (
            75,
            format!(
                "flatline: {}: held by pid {} (uid {ORCHESTRATOR}); flatline waited 0 ms (use \
                 --wait DURATION to wait for it)\n",
                lock.display(),
                holder.pid()
            )
        )
    );
    assert_eq!(busy.stdout, "");

    // With --wait: flatline waits, then reads what the orchestrator wrote and adds its own
    // update to it; neither is lost.
    let waiter = start(
        Command::new(bin())
            .args(refresh_args(&run, &["--now", NOW, "--wait", "30s"]))
            .env_remove("JOURNAL_STREAM"),
    );
    wait_until_open(waiter.id(), &std::fs::canonicalize(&lock).unwrap());
    holder.finish();
    let out = finish(waiter, HANG_GUARD);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{}", out.stdout);
    assert_fields(
        &out.records()[0],
        json!({"action": "progressed", "outcome": "written", "last_progress_at": at(-5_000)}),
    );
    let doc = run.read_json("delegations/d.json");
    assert_eq!(doc["orchestrator_note"], "written under the lock", "{doc}");
    assert_eq!(
        doc["worker_lifecycle"]["last_progress_at"],
        at(-5_000),
        "{doc}"
    );
    // The document keeps the orchestrator as its owner.
    assert_eq!(
        owner_of(&run.delegation_path("d.json")),
        (ORCHESTRATOR, RUN_GROUP)
    );
}

#[test]
fn the_orchestrators_user_ran_flatline_first_then_roots_run_accepts_its_state_dir() {
    if !ready() {
        return;
    }
    let run = progressing_run();
    chown_tree(run.path(), ORCHESTRATOR, RUN_GROUP);
    let state = run.path().join(".flatline");
    let lock = state.join("lock");
    // The orchestrator's user runs flatline first: .flatline/ and lock are its own.
    let out = refresh_as(ORCHESTRATOR, RUN_GROUP, &run, &["--now", &at(-30_000)]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{}", out.stdout);
    assert_eq!(
        (mode_of(&state), owner_of(&state)),
        (0o750, (ORCHESTRATOR, RUN_GROUP))
    );
    assert_eq!(
        (mode_of(&lock), owner_of(&lock)),
        (0o640, (ORCHESTRATOR, RUN_GROUP))
    );

    // Root's timer then accepts it: it is owned by the run directory's owner and not
    // writable by group or others.
    let stream = run.path().join("raw-events/d.jsonl");
    set_mtime_ms(&stream, NOW_MS - 1_000);
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{}", out.stdout);
    assert_fields(
        &out.records()[0],
        json!({"action": "progressed", "last_progress_at": at(-1_000)}),
    );
    // A user that is neither root nor the owner of .flatline/ cannot write it: exit 4,
    // naming the owner.
    let out = refresh_as(5555, RUN_GROUP, &run, &["--now", NOW]);
    assert_eq!(
        (out.code, out.stderr.clone()),
        (
            4,
            format!(
                "flatline: {}: .flatline is owned by uid {ORCHESTRATOR} with mode 0750: uid 5555 \
                 cannot write it, refused; repair: run this command as uid {ORCHESTRATOR} or \
                 root\n",
                run.path().display()
            )
        )
    );
}

#[test]
fn lock_group_names_the_group_and_a_creator_outside_it_says_so() {
    if !ready() {
        return;
    }
    // --lock-group by number, over the run directory's group.
    let run = progressing_run();
    chown_tree(run.path(), 0, RUN_GROUP);
    let out = refresh(&run, &["--now", NOW, "--lock-group", "5432"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    let state = run.path().join(".flatline");
    assert_eq!(owner_of(&state), (0, 5432));
    assert_eq!(owner_of(&state.join("lock")), (0, 5432));
    // An existing .flatline/ keeps its group.
    set_mtime_ms(&run.path().join("raw-events/d.jsonl"), NOW_MS - 1_000);
    let out = refresh(&run, &["--now", NOW, "--lock-group", "root"]);
    assert_eq!(
        (out.code, out.stderr.clone()),
        (
            0,
            format!(
                "flatline: {0}: has group 5432, not --lock-group 0: an existing .flatline keeps \
                 its group (repair: chgrp -R 0 {0})\n",
                state.display()
            )
        )
    );
    assert_eq!(owner_of(&state), (0, 5432));
    // An unknown group name is a usage error.
    let out = refresh(
        &run,
        &["--now", NOW, "--lock-group", "no-such-group-flatline"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);

    // A non-root creator outside the run directory's group uses its own primary group.
    let run = progressing_run();
    chown_tree(run.path(), ORCHESTRATOR, ORCHESTRATOR);
    std::os::unix::fs::chown(run.path(), None, Some(RUN_GROUP)).unwrap();
    let out = refresh_as(ORCHESTRATOR, ORCHESTRATOR, &run, &["--now", NOW]);
    let state = run.path().join(".flatline");
    assert_eq!(
        (out.code, out.stderr.clone()),
        (
            0,
            format!(
                "flatline: {}: uid {ORCHESTRATOR} is not in group {RUN_GROUP} (the run \
                 directory's group): created with uid {ORCHESTRATOR}'s primary group \
                 {ORCHESTRATOR} instead, so only that group's members can take the lock\n",
                state.display()
            )
        )
    );
    assert_eq!(owner_of(&state), (ORCHESTRATOR, ORCHESTRATOR));
    assert_eq!(owner_of(&state.join("lock")), (ORCHESTRATOR, ORCHESTRATOR));
}

#[test]
fn state_dirs_and_files_flatline_cannot_trust_are_refused_with_a_repair() {
    let before = running_doc();
    let check = |prepare: &dyn Fn(&Path), expected: &dyn Fn(&Path) -> String| {
        let run = progressing_run();
        let state = run.path().join(".flatline");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::write(state.join("lock"), "").unwrap();
        std::fs::set_permissions(state.join("lock"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        prepare(&state);
        let out = refresh(&run, &["--now", NOW]);
        assert_eq!(
            (out.code, out.stderr.clone(), out.stdout.clone()),
            (
                4,
                format!("flatline: {}: {}\n", run.path().display(), expected(&state)),
                String::new()
            )
        );
        // Nothing was written.
        assert_eq!(run.read_json("delegations/d.json"), before);
    };
    // A group-writable .flatline/.
    check(
        &|state| {
            std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o770)).unwrap();
        },
        &|state| {
            format!(
                ".flatline has mode 0770, writable by its group or others, refused; repair: \
                 chmod 0750 {}",
                state.display()
            )
        },
    );
    // A lock with permissions for others.
    check(
        &|state| {
            std::fs::set_permissions(state.join("lock"), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        },
        &|state| {
            format!(
                ".flatline/lock has mode 0644, with permissions for others, refused; repair: \
                 chmod 0640 {}",
                state.join("lock").display()
            )
        },
    );
    // A hard-linked state.json (a link elsewhere would let a write land there).
    let elsewhere = TempDir::new("state-link");
    check(
        &|state| {
            let file = state.join("state.json");
            std::fs::write(&file, "{}\n").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
            std::fs::hard_link(&file, elsewhere.join("second")).unwrap();
        },
        &|state| {
            format!(
                ".flatline/state.json has 2 hard links, refused; repair: rm {} (flatline makes \
                 a new one)",
                state.join("state.json").display()
            )
        },
    );
    // A symlinked lock: never followed, never created through.
    let victim = elsewhere.join("victim");
    std::fs::write(&victim, "").unwrap();
    check(
        &|state| {
            std::fs::remove_file(state.join("lock")).unwrap();
            std::os::unix::fs::symlink(&victim, state.join("lock")).unwrap();
        },
        &|state| {
            format!(
                ".flatline/lock is a symlink, refused; repair: rm {}",
                state.join("lock").display()
            )
        },
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"");
}

#[test]
fn a_lock_held_by_one_pid_across_three_runs_is_lock_held() {
    if !have("flock") {
        return;
    }
    // No delegation: whatever --check finds is the lock.
    let run = Run::new();
    assert_eq!(refresh(&run, &["--now", &at(-30_000)]).code, 0);
    let lock = run.path().join(".flatline/lock");
    let holder = Holder::start(Command::new("env"), &lock, "true");
    let me = my_uid();
    let check = || status(&run, &["--check"]);
    for (n, now) in [at(-3_000), at(-2_000), at(-1_000)].iter().enumerate() {
        let out = refresh(&run, &["--now", now]);
        assert_eq!(out.code, 75, "{}", out.stderr);
        let named = format!("held by pid {} (uid {me})", holder.pid());
        assert!(out.stderr.contains(&named), "{}", out.stderr);
        if n < 2 {
            assert!(!out.stderr.contains("lock_held"), "{}", out.stderr);
            // Not yet a problem.
            let out = check();
            assert_eq!((out.code, out.stderr.as_str()), (0, ""));
        } else {
            assert!(
                out.stderr.ends_with(&format!(
                    "; lock_held: pid {} (uid {me}) has held the run lock across 3 runs since \
                     {}\n",
                    holder.pid(),
                    at(-3_000)
                )),
                "{}",
                out.stderr
            );
        }
    }
    // status (which takes no lock and writes nothing) counts it under --check.
    let record = run.path().join(".flatline/lock_holders.json");
    let recorded = std::fs::read(&record).unwrap();
    let out = status(&run, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = check();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: lock_held: pid {} (uid {me}) has held the run lock across 3 runs",
            lock.display(),
            holder.pid()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&record).unwrap(), recorded, "status wrote");

    // Once it lets go, the next run takes the lock and the streak is over.
    holder.finish();
    let out = check();
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    let out = refresh(&run, &["--now", NOW]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert!(!record.exists());
}
