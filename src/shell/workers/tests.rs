use super::*;
use crate::core::health::Health;

#[test]
fn counts_non_blank_lines_streaming() {
    assert_eq!(count_lines(&b""[..]).unwrap(), 0);
    assert_eq!(count_lines(&b"a\n\n  \nb\n"[..]).unwrap(), 2);
    assert_eq!(count_lines(&b"a\r\n\t\r\nlast"[..]).unwrap(), 2);
    assert_eq!(count_lines(&b"\n\n\n"[..]).unwrap(), 0);
    let big = "{\"m\":1}\n".repeat(100_000);
    assert_eq!(count_lines(big.as_bytes()).unwrap(), 100_000);
}

#[test]
fn sparse_files_count_their_holes_as_content_without_reading_them() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = std::env::temp_dir().join(format!("flatline-count-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let count = |name: &str, build: &dyn Fn(&mut std::fs::File)| {
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path).unwrap();
        build(&mut file);
        drop(file);
        let plain = count_lines(std::fs::File::open(&path).unwrap()).unwrap();
        let sparse = count_file_lines(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(sparse, plain, "{name}");
        sparse
    };
    let mib = 1u64 << 20;
    assert_eq!(count("empty", &|_| {}), 0);
    assert_eq!(count("dense", &|f| f.write_all(b"a\n\n b\nc").unwrap()), 3);
    // A hole, then "x\n": the NUL bytes and x are one line.
    assert_eq!(
        count("hole-first", &|f| {
            f.seek(SeekFrom::Start(mib)).unwrap();
            f.write_all(b"x\n").unwrap();
        }),
        1
    );
    // Lines, a hole in the middle (a line of NUL bytes ended by the next newline),
    // lines, and a hole at the end (a last line without newline).
    assert_eq!(
        count("holes", &|f| {
            f.write_all(b"a\nb\n").unwrap();
            f.seek(SeekFrom::Start(mib)).unwrap();
            f.write_all(b"\nc\n\n").unwrap();
            f.set_len(2 * mib).unwrap();
        }),
        5
    );
    // The holes are not read: this thread's read(2) byte count (rchar) barely moves over
    // a 1 GiB hole.
    let rchar = || {
        std::fs::read_to_string("/proc/thread-self/io")
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|line| line.strip_prefix("rchar: "))
                    .and_then(|n| n.parse::<u64>().ok())
            })
    };
    let path = dir.join("huge-hole");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(1 << 30).unwrap();
    drop(file);
    let file = std::fs::File::open(&path).unwrap();
    if let Some(before) = rchar() {
        assert_eq!(count_file_lines(file).unwrap(), 1);
        let read = rchar().unwrap() - before;
        assert!(read < 1 << 20, "{read} bytes read for a 1 GiB hole");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn spec_paths_resolve_from_the_worker_directory() {
    let dir = Path::new("workers/w");
    let at = |named: &str| spec_path_in_run(dir, Path::new(named));
    assert_eq!(at("heartbeat.json"), Path::new("workers/w/heartbeat.json"));
    assert_eq!(at("./state/hb.json"), Path::new("workers/w/state/hb.json"));
    assert_eq!(
        at("../shared/in.jsonl"),
        Path::new("workers/shared/in.jsonl")
    );
    assert_eq!(at("../../queues/out.jsonl"), Path::new("queues/out.jsonl"));
    // Above the run directory stays above it: the confined open refuses it.
    assert_eq!(at("../../../etc/passwd"), Path::new("../etc/passwd"));
    assert_eq!(at("a/../../../../x"), Path::new("../x"));
    // Absolute paths are taken as they are (SPEC §1.3 decides).
    assert_eq!(at("/srv/run/hb.json"), Path::new("/srv/run/hb.json"));
}

#[test]
fn a_queue_is_counted_over_its_first_bytes_only() {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("flatline-queue-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("inbox.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(b"a\nb\n\nc\nd\n").unwrap();
    drop(file);
    let file = std::fs::File::open(&path).unwrap();
    assert_eq!(count_file_lines_bounded(&file, 100).unwrap(), (4, false));
    assert_eq!(count_file_lines_bounded(&file, 9).unwrap(), (4, false));
    assert_eq!(count_file_lines_bounded(&file, 5).unwrap(), (2, true));
    assert_eq!(count_file_lines_bounded(&file, 7).unwrap(), (3, true));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn worker_tally_counts_by_health() {
    let mut tally = WorkerTally::default();
    for health in [
        Health::Healthy,
        Health::Stalled,
        Health::Stalled,
        Health::Dead,
    ] {
        tally.add(health);
    }
    assert_eq!(
        tally.fields(),
        vec![
            ("total", 4),
            ("healthy", 1),
            ("stalled", 2),
            ("dead", 1),
            ("stopped", 0),
            ("starting", 0),
            ("unknown", 0)
        ]
    );
}
