//! Fuzz replay in `make test` (no nightly, no new crates): the event digest, the delegation
//! parser and the worker-spec reader run over a corpus (the stream fixtures and a few
//! documents) and a fixed number of deterministic mutations of it from a seeded PRNG,
//! asserting no panic and each parser's invariants. The coverage-guided targets in fuzz/
//! are for longer runs. A failure prints the seed, the iteration and the input; set
//! FLATLINE_FUZZ_SEED to replay another sequence.

use flatline::core::digest;
use flatline::core::lifecycle::{self, ProcessFacts, Thresholds, Times};
use flatline::model::{self, WorkerSpec};
use serde_json::Value;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

const ITERATIONS: usize = 10_000;
const NOW: i64 = 1_795_334_400_000;

/// xorshift64*: a fixed sequence from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seed() -> u64 {
    std::env::var("FLATLINE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f1a7_11e0)
        .max(1)
}

/// Tokens that reach the parsers' edges.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\n",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"-1e-999",
    b"18446744073709551616",
    b"0.5",
    b"\"\"",
    b"{}",
    b"[]",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc3",
    b"\r\n",
    b"\"pid\":",
    b"\"status\":\"running\"",
    b"\"type\":\"turn.completed\"",
    b"\"type\":\"result\"",
    b"\"last_progress_at\":",
    b"\"2026-01-01T00:00:00Z\"",
    b"\"9999-12-31T23:59:59.999+23:59\"",
    b"\"0000-01-01T00:00:00-23:59\"",
];

/// One deterministic mutation of `input`, sometimes splicing in a piece of `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.next() as u8),
            2 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(64)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            5 if !out.is_empty() => {
                let from = rng.below(out.len());
                let end = (from + 1 + rng.below(32)).min(out.len());
                let piece = out[from..end].to_vec();
                out.splice(at..at, piece);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Runs `check` over the corpus, then over ITERATIONS mutations; a panic names the seed,
/// the iteration and the input.
fn replay(name: &str, corpus: &[Vec<u8>], check: fn(&[u8])) {
    let seed = seed();
    let mut rng = Rng(seed);
    let run = |i: usize, input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            panic!(
                "{name}: failed at iteration {i} of seed {seed} (FLATLINE_FUZZ_SEED={seed}); \
                 input: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    };
    for (i, input) in corpus.iter().enumerate() {
        run(i, input);
    }
    // Mutations stack: a mutant goes back into the pool now and then.
    let mut pool = corpus.to_vec();
    for i in 0..ITERATIONS {
        let base = &pool[rng.below(pool.len())];
        let other = &pool[rng.below(pool.len())];
        let input = mutate(&mut rng, base, other);
        run(corpus.len() + i, &input);
        if rng.below(8) == 0 && input.len() < 64 * 1024 {
            let slot = rng.below(pool.len());
            if slot >= corpus.len() {
                pool[slot] = input;
            } else {
                pool.push(input);
            }
        }
    }
}

fn stream_corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/streams");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl" || e == "log"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

/// Reads one byte per call: the digest must not depend on how its input arrives.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((byte, rest)), Some(slot)) => {
                *slot = *byte;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

fn check_digest(data: &[u8]) {
    let d = digest::digest(data).expect("reading a slice cannot fail");
    assert_eq!(d.bytes, data.len() as u64);
    assert!(d.skipped_lines <= d.lines);
    assert!(d.json_lines <= d.lines);
    if let Some(text) = &d.final_text {
        assert!(text.chars().count() <= 183, "{text:?}");
    }
    assert!(d.raw_preview.chars().count() <= 223);
    if let Some(usage) = &d.usage {
        assert!(usage.is_object());
    }
    let _ = digest::verdict_with_exit(&d, None);
    let _ = digest::verdict_with_exit(&d, Some(1));
    assert_eq!(
        digest::digest(Trickle(data)).expect("slice"),
        d,
        "the same bytes one at a time"
    );
    let small = digest::digest_with_limit(data, 16).expect("slice");
    assert_eq!(small.bytes, data.len() as u64);
    assert!(small.skipped_lines <= small.lines);
}

#[test]
fn the_digest_survives_its_corpus_and_mutations() {
    replay("digest", &stream_corpus(), check_digest);
}

/// What both document parsers promise: a document they accept is one JSON object that
/// serde_json reads and flatline can write back and read again.
fn check_whole_document(data: &[u8]) {
    let value: Value = serde_json::from_slice(data).expect("accepted, so JSON");
    assert!(value.is_object(), "accepted, so an object");
    let rendered = model::render(&value);
    model::check_document(&rendered).expect("what flatline writes it reads");
    model::check_document(data).expect("the read path's check agrees");
}

fn check_delegation(data: &[u8]) {
    let Ok(doc) = model::parse_delegation(data) else {
        return;
    };
    check_whole_document(data);
    let mut wrong = Vec::new();
    doc.wrong_types(&mut String::new(), &mut wrong);
    let times = Times::of(doc.worker_lifecycle.value());
    for facts in [ProcessFacts::NotChecked, ProcessFacts::NoPid] {
        let view = lifecycle::view(&doc, &times, NOW, &Thresholds::default(), &facts);
        let _ = format!("{view:?}");
    }
    let _ = lifecycle::recorded_fingerprint(doc.worker_lifecycle.value());
    let _ = model::stream_path(&doc);
    for ms in [times.last_progress_at, times.started_at, times.queued_at]
        .into_iter()
        .flatten()
    {
        let text = flatline::core::time::format_rfc3339(ms);
        assert!(
            flatline::core::time::parse_rfc3339(&text).is_some(),
            "{ms} formats as {text}, which does not parse"
        );
    }
}

fn delegation_corpus() -> Vec<Vec<u8>> {
    let full = serde_json::json!({
        "delegation_id": "d1", "task_card_id": "c1", "role": "worker",
        "child_agent": {"status": "running", "pid": 4242, "engine": "codex"},
        "executor": {"status": "running"},
        "worker_request": {"prompt": "p"},
        "worker_launch_evidence": {"raw_events_file": "raw-events/d1.jsonl", "pid": 4242},
        "worker_lifecycle": {"last_progress_at": "2026-11-22T00:00:00Z",
            "started_at": "2026-11-21T23:00:00.5+01:00", "queued_at": "2026-11-21T22:00:00Z",
            "stale_after_ms": 600000, "reclaim_state": "none",
            "process_fingerprint": {"pid": 4242, "start_time": 99, "boot_id": "b"}},
        "worker_result": {"status": "completed", "exit_code": 0},
        "fan_in_collapsed_at": "2026-11-22T01:00:00Z"
    });
    let wrong = serde_json::json!({
        "delegation_id": 7, "child_agent": "running", "worker_lifecycle": [1, 2],
        "worker_result": {"status": null, "exit_code": "0"}, "executor": {"status": {}}
    });
    [full, wrong, serde_json::json!({})]
        .iter()
        .map(model::render)
        .chain([
            b"[]".to_vec(),
            b"{\"a\":1e999}".to_vec(),
            b"\xef\xbb\xbf{}".to_vec(),
        ])
        .collect()
}

#[test]
fn the_delegation_parser_survives_its_corpus_and_mutations() {
    replay("delegation", &delegation_corpus(), check_delegation);
}

fn check_worker_spec(data: &[u8]) {
    let Ok(spec) = model::parse_object::<WorkerSpec<'_>>(data) else {
        return;
    };
    check_whole_document(data);
    let mut wrong = Vec::new();
    spec.wrong_types(&mut String::new(), &mut wrong);
    // A field read as text is the document's string, exactly.
    let value: Value = serde_json::from_slice(data).expect("checked above");
    if let (Some(name), Some(Value::String(text))) = (spec.name.str(), value.get("name")) {
        assert_eq!(name, text);
    }
}

fn worker_spec_corpus() -> Vec<Vec<u8>> {
    [
        serde_json::json!({"name": "w1", "role": "worker", "inbox": "workers/w1/inbox",
            "outbox": "workers/w1/outbox", "heartbeat": "workers/w1/heartbeat.json"}),
        serde_json::json!({"name": 1, "role": ["x"], "inbox": null, "heartbeat": "/etc/shadow"}),
        serde_json::json!({"name": "é\u{0}", "extra": {"deep": [[[[]]]]}}),
    ]
    .iter()
    .map(model::render)
    .collect()
}

#[test]
fn the_worker_spec_reader_survives_its_corpus_and_mutations() {
    replay("worker-spec", &worker_spec_corpus(), check_worker_spec);
}
