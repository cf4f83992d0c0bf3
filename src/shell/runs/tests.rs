use super::documents::Documents;
use super::walk::prefetch;
use super::*;
use crate::core::lifecycle::StreamFacts;

/// A directory of `n` small documents, listed.
fn listed(tag: &str, n: usize) -> (std::path::PathBuf, Dir, Entries) {
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
    let documents = Documents::select(&entries, |_| true);
    let mut seen = Vec::new();
    prefetch::run(&dir, &documents, None, |entry, read, _| {
        let (_, bytes) = read.unwrap();
        seen.push((entry.name.to_os_string(), bytes.to_vec()));
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
        let documents = Documents::select(&entries, |_| true);
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
    let path = std::env::temp_dir().join(format!("flatline-scan-resume-{}", std::process::id()));
    std::fs::create_dir_all(&path).unwrap();
    for name in ["a.json", "b.json", "d.json"] {
        std::fs::write(path.join(name), "{}").unwrap();
    }
    let dir = Dir::open(&path).unwrap();
    let entries = dir.entries().unwrap();
    let order = |start: Option<&str>| -> Vec<String> {
        let mut documents = Documents::select(&entries, |_| true);
        documents.rotate_to(start.map(OsStr::new));
        documents
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(order(None), ["a.json", "b.json", "d.json"]);
    assert_eq!(order(Some("a.json")), ["a.json", "b.json", "d.json"]);
    assert_eq!(order(Some("b.json")), ["b.json", "d.json", "a.json"]);
    // A file removed since: the next one after it.
    assert_eq!(order(Some("c.json")), ["d.json", "a.json", "b.json"]);
    assert_eq!(order(Some("d.json")), ["d.json", "a.json", "b.json"]);
    // Past the end: from the start.
    assert_eq!(order(Some("z.json")), ["a.json", "b.json", "d.json"]);
    let empty = Entries::default();
    let mut none = Documents::select(&empty, |_| true);
    none.rotate_to(Some(OsStr::new("a.json")));
    assert_eq!(none.iter().count(), 0);
    std::fs::remove_dir_all(path).unwrap();
}

#[test]
fn the_documents_of_a_listing_are_its_selected_entries_from_the_resume_point() {
    let path = std::env::temp_dir().join(format!("flatline-scan-docs-{}", std::process::id()));
    std::fs::create_dir_all(&path).unwrap();
    for name in [
        "d.json",
        "a.json",
        "notes.txt",
        "b.json",
        ".a.json.flatline.1.tmp",
    ] {
        std::fs::write(path.join(name), "{}").unwrap();
    }
    let dir = Dir::open(&path).unwrap();
    let entries = dir.entries().unwrap();
    let names = |documents: &Documents<'_>| -> Vec<String> {
        documents
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect()
    };
    let mut documents = Documents::select(&entries, |e| is_document_name(e.name));
    assert_eq!(documents.len(), 3);
    assert_eq!(names(&documents), ["a.json", "b.json", "d.json"]);
    documents.rotate_to(Some(OsStr::new("c.json")));
    assert_eq!(names(&documents), ["d.json", "a.json", "b.json"]);
    let chunks: Vec<usize> = documents.chunks(2).map(|chunk| chunk.len()).collect();
    assert_eq!(chunks, [2, 1]);
    // Past the last document, before an entry that is not one: from the first document.
    documents.rotate_to(Some(OsStr::new("e")));
    assert_eq!(names(&documents), ["a.json", "b.json", "d.json"]);
    let mut all = Documents::select(&entries, |_| true);
    all.rotate_to(None);
    assert_eq!(all.len(), 5);
    assert_eq!(names(&all)[0], ".a.json.flatline.1.tmp");
    std::fs::remove_dir_all(path).unwrap();
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
    std::fs::set_permissions(path.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // 40 documents of uid 65534 (more than a batch): running ones with their own
    // stream, one naming root's secret, finished ones that the read-ahead does not even
    // parse (left to the caller, whose own parse finds them not running).
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
    let documents = Documents::select(&entries, |_| true);
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
            _ if i % 3 == 0 => "left to the caller",
            _ if i % 5 == 0 => "missing",
            _ => "present",
        };
        let got = match ahead {
            Some(StreamFacts::Unusable {
                not_readable_by_owner: true,
            }) => "refused",
            None => "left to the caller",
            Some(StreamFacts::Missing) => "missing",
            Some(StreamFacts::Present { .. }) => "present",
            other => panic!("d{i:02}: {other:?}"),
        };
        assert_eq!(got, expected, "d{i:02}");
    }
    std::fs::remove_dir_all(path).unwrap();
}
