//! Paths that documents name: event streams.

use super::*;

#[test]
fn hostile_stream_paths() {
    let mut cases = outside_path_cases();
    cases.extend(escape_cases());
    cases.extend(symlink_cases());
    cases.extend(file_type_cases());
    cases.extend(name_and_owner_cases());
    run_cases(cases);
}

/// Streams outside the run: refused, or with --allow-outside-paths refused for what they are.
fn outside_path_cases() -> Vec<Case> {
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
    cases
}

/// Relative paths that climb out of the run.
fn escape_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}

/// Symlinked streams, directories on the way, and raw-events/ itself.
fn symlink_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}

/// FIFOs, sockets, devices and directories named as streams.
fn file_type_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}

/// Foreign owners, hostile names, empty paths, and ids that would escape the run.
fn name_and_owner_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}
