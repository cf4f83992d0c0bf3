//! Run directories and the state directory.

use super::*;

#[test]
fn hostile_run_directories() {
    let mut cases = run_dir_cases();
    cases.extend(delegations_dir_cases());
    cases.extend(state_dir_cases());
    cases.extend(state_file_cases());
    run_cases(cases);
}

/// The RUN_DIR argument is no usable directory (or a symlink the operator chose).
fn run_dir_cases() -> Vec<Case> {
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
    cases
}

/// delegations/ is a file, a FIFO or a symlink.
fn delegations_dir_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}

/// A .flatline/ that flatline did not make.
fn state_dir_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}

/// state.json and the lock inside .flatline/.
fn state_file_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}
