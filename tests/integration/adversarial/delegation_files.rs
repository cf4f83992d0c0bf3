//! Delegation files: syntax, encodings, sizes, nesting, file types, names.

use super::*;

#[test]
fn hostile_delegation_files() {
    let mut cases = syntax_cases();
    cases.extend(nesting_and_size_cases());
    cases.extend(file_type_cases());
    cases.extend(file_name_and_owner_cases());
    run_cases(cases);
}

/// Broken JSON, bad encodings, documents that are no JSON object.
fn syntax_cases() -> Vec<Case> {
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
    cases
}

/// Deep nesting, lone surrogates, duplicate keys, documents around the 16 MiB bound.
fn nesting_and_size_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}

/// Symlinks, directories, FIFOs, sockets and devices where a delegation file should be.
fn file_type_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}

/// Hostile file names, hard links and foreign owners.
fn file_name_and_owner_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
}
