use super::*;
use crate::fs::named::owner as as_owner;
use crate::fs::named::walk_beneath;
use crate::fs::*;
use std::os::unix::fs::symlink;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flatline-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn meta(uid: u32, mode: u32, nlink: u64) -> FileMeta {
    FileMeta {
        dev: 1,
        ino: 2,
        mode: libc::S_IFREG | mode,
        uid,
        gid: 0,
        nlink,
        size: 0,
        mtime_ms: 0,
    }
}

#[test]
fn a_document_is_its_owners_word_only_with_one_link_and_safe_bits() {
    assert_eq!(document_owner(&meta(0, 0o644, 1)), Some(0));
    assert_eq!(document_owner(&meta(0, 0o600, 1)), Some(0));
    assert_eq!(document_owner(&meta(1000, 0o664, 1)), Some(1000));
    assert_eq!(document_owner(&meta(1000, 0o640, 1)), Some(1000));
    // Writable by others: nobody's word.
    assert_eq!(document_owner(&meta(0, 0o666, 1)), None);
    assert_eq!(document_owner(&meta(0, 0o602, 1)), None);
    assert_eq!(document_owner(&meta(1000, 0o646, 1)), None);
    // Root's must not be group-writable either.
    assert_eq!(document_owner(&meta(0, 0o664, 1)), None);
    assert_eq!(document_owner(&meta(0, 0o620, 1)), None);
    // More than one link: anyone may have made it.
    assert_eq!(document_owner(&meta(0, 0o644, 2)), None);
    assert_eq!(document_owner(&meta(1000, 0o644, 100_000)), None);
    assert_eq!(guard_owner(&meta(0, 0o666, 1)), FOREIGN_OWNER);
    assert_eq!(guard_owner(&meta(1000, 0o644, 1)), 1000);
}

#[test]
fn a_document_with_several_links_is_never_read() {
    let dir = scratch("linked");
    std::fs::write(dir.join("a.json"), b"{}").unwrap();
    std::fs::hard_link(dir.join("a.json"), dir.join("b.json")).unwrap();
    let opened = Dir::open(&dir).unwrap();
    let mut buf = Vec::new();
    assert!(matches!(
        opened.read_file(OsStr::new("a.json"), 1024, &mut buf),
        Err(ReadError::MultipleLinks(2))
    ));
    assert!(buf.is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn read_range_hands_over_data_and_only_the_length_of_holes() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = scratch("range");
    let path = dir.join("sparse");
    let mut file = File::create(&path).unwrap();
    file.write_all(b"head\n").unwrap();
    file.seek(SeekFrom::Start(1 << 30)).unwrap();
    file.write_all(b"tail\n").unwrap();
    file.set_len((1 << 30) + 5 + (1 << 20)).unwrap();
    drop(file);
    let file = File::open(&path).unwrap();
    let walk = |start: u64, end: u64| {
        let mut bytes = Vec::new();
        let mut holes = 0u64;
        let total = read_range(&file, start, end, &mut [0u8; 4096], |piece| match piece {
            Piece::Data(data) => bytes.extend_from_slice(data),
            Piece::Hole(len) => holes += len,
        })
        .unwrap();
        (bytes, holes, total)
    };
    // Where holes are known, they are not read: what was read is the data, with the
    // hole's NUL bytes only where the file system stores data blocks.
    let (bytes, holes, total) = walk(0, u64::MAX);
    assert_eq!(
        total,
        (1 << 30) + 5 + (1 << 20),
        "up to the end, holes counted"
    );
    assert_eq!(bytes.len() as u64 + holes, total);
    assert!(bytes.starts_with(b"head\n"));
    assert!(bytes.windows(5).any(|w| w == b"tail\n"));
    assert!(
        bytes.len() < 1 << 20,
        "{} bytes read of a 1 GiB file",
        bytes.len()
    );
    // A range: exactly its bytes.
    let (bytes, holes, total) = walk(2, 4);
    assert_eq!((bytes, holes, total), (b"ad".to_vec(), 0, 2));
    let (bytes, holes, total) = walk(1 << 30, (1 << 30) + 4);
    assert_eq!((bytes, holes, total), (b"tail".to_vec(), 0, 4));
    let (bytes, _, total) = walk(1 << 29, 1 << 29 | 8);
    assert_eq!(total, 8);
    assert!(bytes.iter().all(|b| *b == 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn entries_are_sorted_and_typed() {
    let dir = scratch("entries");
    std::fs::write(dir.join("b.json"), "{}").unwrap();
    std::fs::write(dir.join("a.json"), "{}").unwrap();
    std::fs::create_dir(dir.join("c")).unwrap();
    symlink("a.json", dir.join("d.json")).unwrap();
    let handle = Dir::open(&dir).unwrap();
    let entries = handle.entries().unwrap();
    let names: Vec<_> = entries
        .iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.json", "b.json", "c", "d.json"]);
    assert_eq!(entries.get(2).map(|e| e.kind), Some(EntryKind::Dir));
    assert_eq!(entries.get(3).map(|e| e.kind), Some(EntryKind::Symlink));
    assert_eq!(entries.get(4).map(|e| e.name), None);
    // Found by name, and only by its whole name.
    assert_eq!(
        entries.find(OsStr::new("b.json")).map(|e| e.kind),
        Some(EntryKind::Regular)
    );
    assert!(entries.find(OsStr::new("b.jso")).is_none());
    assert!(entries.find(OsStr::new("e")).is_none());
    // A second listing works too (the shared offset is rewound).
    assert_eq!(handle.entries().unwrap().len(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reads_are_bounded_and_refuse_symlinks_and_fifos() {
    let dir = scratch("reads");
    std::fs::write(dir.join("small"), "hello").unwrap();
    std::fs::write(dir.join("big"), vec![b'x'; 100]).unwrap();
    symlink("small", dir.join("link")).unwrap();
    let fifo = CString::new(dir.join("fifo").as_os_str().as_bytes()).unwrap();
    crate::sys::fd::mkfifo(&fifo, 0o600).unwrap();
    let handle = Dir::open(&dir).unwrap();
    let mut buf = Vec::new();
    handle.read_file(OsStr::new("small"), 10, &mut buf).unwrap();
    assert_eq!(buf, b"hello");
    assert!(matches!(
        handle.read_file(OsStr::new("big"), 10, &mut buf),
        Err(ReadError::TooLarge(10))
    ));
    assert!(matches!(
        handle.read_file(OsStr::new("link"), 10, &mut buf),
        Err(ReadError::Symlink)
    ));
    assert!(matches!(
        handle.read_file(OsStr::new("fifo"), 10, &mut buf),
        Err(ReadError::NotRegular("a FIFO"))
    ));
    assert!(matches!(
        handle.read_file(OsStr::new("none"), 10, &mut buf),
        Err(ReadError::NotFound)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn named_paths_stay_beneath_the_run() {
    let dir = scratch("named");
    std::fs::create_dir(dir.join("raw")).unwrap();
    std::fs::write(dir.join("raw/s.jsonl"), "x").unwrap();
    symlink("raw", dir.join("rawlink")).unwrap();
    let outside = scratch("named-outside");
    std::fs::write(outside.join("secret"), "secret").unwrap();
    let root = RunRoot {
        dir: Dir::open(&dir).unwrap(),
        real_path: std::fs::canonicalize(&dir).unwrap(),
    };
    let policy = NamedPathPolicy {
        allow_outside: false,
        owner: effective_uid(),
    };
    let ok = open_named(&root, Path::new("raw/s.jsonl"), policy).unwrap();
    let mut text = String::new();
    ok.open_for_read(&root, Path::new("raw/s.jsonl"), policy)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "x");
    let absolute = root.real_path.join("raw/s.jsonl");
    assert!(open_named(&root, &absolute, policy).is_ok());
    assert!(matches!(
        open_named(&root, Path::new("rawlink/s.jsonl"), policy),
        Err(ReadError::Symlink)
    ));
    assert!(matches!(
        open_named(&root, Path::new("../named-outside/secret"), policy),
        Err(ReadError::Escapes)
    ));
    assert!(matches!(
        open_named(&root, &outside.join("secret"), policy),
        Err(ReadError::OutsideRun)
    ));
    assert!(matches!(
        open_named(&root, Path::new("/dev/zero"), policy),
        Err(ReadError::OutsideRun)
    ));
    let allow = NamedPathPolicy {
        allow_outside: true,
        ..policy
    };
    assert!(matches!(
        open_named(&root, Path::new("/dev/zero"), allow),
        Err(ReadError::NotRegular("a character device"))
    ));
    assert!(matches!(
        open_named(&root, Path::new("raw"), policy),
        Err(ReadError::NotRegular("a directory"))
    ));
    let other = NamedPathPolicy {
        allow_outside: false,
        owner: 4242,
    };
    if effective_uid() != 0 {
        assert!(matches!(
            open_named(&root, Path::new("raw/s.jsonl"), other),
            Err(ReadError::ForeignOwner { .. })
        ));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn the_walk_fallback_refuses_dotdot_and_symlinks() {
    let dir = scratch("walk");
    std::fs::create_dir(dir.join("raw")).unwrap();
    std::fs::write(dir.join("raw/s.jsonl"), "x").unwrap();
    symlink("raw", dir.join("rawlink")).unwrap();
    let handle = Dir::open(&dir).unwrap();
    let flags = libc::O_PATH | libc::O_CLOEXEC;
    assert!(walk_beneath(handle.fd(), Path::new("raw/s.jsonl"), flags).is_ok());
    assert!(walk_beneath(handle.fd(), Path::new("./raw/s.jsonl"), flags).is_ok());
    assert!(matches!(
        walk_beneath(handle.fd(), Path::new("raw/../raw/s.jsonl"), flags),
        Err(ReadError::Escapes)
    ));
    assert!(matches!(
        walk_beneath(handle.fd(), Path::new("rawlink/s.jsonl"), flags),
        Err(ReadError::Symlink)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn named_files_are_read_as_the_documents_owner() {
    if effective_uid() != 0 {
        eprintln!("SKIPPED: needs root (to wear another identity)");
        return;
    }
    use std::os::unix::fs::{PermissionsExt, chown};
    let dir = scratch("as-owner");
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode(&dir, 0o755);
    std::fs::write(dir.join("secret"), "root's secret").unwrap();
    mode(&dir.join("secret"), 0o600);
    std::fs::create_dir(dir.join("closed")).unwrap();
    mode(&dir.join("closed"), 0o700);
    std::fs::write(dir.join("closed/open"), "behind a closed door").unwrap();
    mode(&dir.join("closed/open"), 0o644);
    std::fs::write(dir.join("public"), "for everyone").unwrap();
    mode(&dir.join("public"), 0o644);
    std::fs::write(dir.join("own"), "the agent's own").unwrap();
    mode(&dir.join("own"), 0o600);
    chown(dir.join("own"), Some(65534), Some(65534)).unwrap();
    let root = RunRoot {
        dir: Dir::open(&dir).unwrap(),
        real_path: std::fs::canonicalize(&dir).unwrap(),
    };
    let agent = NamedPathPolicy {
        allow_outside: false,
        owner: 65534,
    };
    let read = |name: &str, policy: NamedPathPolicy| -> Result<String, ReadError> {
        let named = open_named(&root, Path::new(name), policy)?;
        let mut text = String::new();
        named
            .open_for_read(&root, Path::new(name), policy)?
            .read_to_string(&mut text)
            .map_err(ReadError::Io)?;
        Ok(text)
    };
    for refused in ["secret", "closed/open"] {
        assert!(
            matches!(
                read(refused, agent),
                Err(ReadError::NotReadableByOwner(65534))
            ),
            "{refused} was read for uid 65534"
        );
        assert!(matches!(
            stat_named(&root, Path::new(refused), agent),
            Err(ReadError::NotReadableByOwner(65534))
        ));
    }
    assert_eq!(read("public", agent).unwrap(), "for everyone");
    assert_eq!(read("own", agent).unwrap(), "the agent's own");
    // Read twice from one opened file: each read starts at the beginning.
    let named = open_named(&root, Path::new("own"), agent).unwrap();
    for _ in 0..2 {
        let mut text = String::new();
        let mut file = named.open_for_read(&root, Path::new("own"), agent).unwrap();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "the agent's own");
    }
    // The main thread kept its own identity and capabilities.
    let root_policy = NamedPathPolicy {
        allow_outside: false,
        owner: 0,
    };
    assert_eq!(read("secret", root_policy).unwrap(), "root's secret");
    assert_eq!(
        read("closed/open", root_policy).unwrap(),
        "behind a closed door"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn owners_groups_come_from_etc() {
    let passwd = b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/sbin/nologin\nagent:x:1000:1000::/home/agent:/bin/sh\nbad:x:1001:notanumber::/:/bin/sh";
    let group = b"root:x:0:\nagents:x:2000:agent,other\nwheel:x:10:root\nnogroup:x:65534:\nsolo:x:3000:agentx";
    assert_eq!(
        as_owner::groups_of(passwd, group, 1000),
        (1000, vec![1000, 2000])
    );
    assert_eq!(
        as_owner::groups_of(passwd, group, 65534),
        (65534, vec![65534])
    );
    assert_eq!(as_owner::groups_of(passwd, group, 0), (0, vec![0, 10]));
    assert_eq!(as_owner::groups_of(passwd, group, 4242), (65534, vec![]));
    assert_eq!(as_owner::groups_of(passwd, group, 1001), (65534, vec![]));
}

#[test]
fn a_hard_linked_named_file_is_only_the_non_root_owners_own() {
    if effective_uid() != 0 {
        eprintln!("SKIPPED: needs root (chown)");
        return;
    }
    use std::os::unix::fs::chown;
    let dir = scratch("linked");
    std::fs::write(dir.join("root"), "x").unwrap();
    std::fs::hard_link(dir.join("root"), dir.join("root2")).unwrap();
    std::fs::write(dir.join("agent"), "y").unwrap();
    chown(dir.join("agent"), Some(65534), Some(65534)).unwrap();
    std::fs::hard_link(dir.join("agent"), dir.join("agent2")).unwrap();
    let root = RunRoot {
        dir: Dir::open(&dir).unwrap(),
        real_path: std::fs::canonicalize(&dir).unwrap(),
    };
    let policy = |owner| NamedPathPolicy {
        allow_outside: false,
        owner,
    };
    for owner in [0, 65534] {
        let refused = open_named(&root, Path::new("root"), policy(owner));
        assert!(
            matches!(refused, Err(ReadError::MultipleLinks(2))),
            "{owner}"
        );
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .starts_with("hard_linked: ")
        );
    }
    assert!(open_named(&root, Path::new("agent"), policy(65534)).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
