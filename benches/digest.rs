//! The event-digest benchmark (SPEC §8: ≥ 500 MB/s on a Codex stream).
//!
//! Writes a deterministic Codex `exec --json` stream of about 200 MB to the temp directory,
//! digests it several times from a `File` (page cache warm after the first read) and prints
//! one greppable summary line:
//!
//! `digest: 200.0 MB in 0.61 s median (min 0.60, max 0.63) = 327 MB/s`
//!
//! `cargo bench --bench digest` runs it in full; `FLATLINE_BENCH_MB` changes the size. Run
//! without `--bench` (as `cargo test --all-targets` does), it only checks a small stream once.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use flatline::core::digest::{self as events, Digest};

const TARGET_MB_PER_S: f64 = 500.0;
const FULL_MB: u64 = 200;
const SMOKE_MB: u64 = 2;
const RUNS: usize = 31;

fn main() {
    if let Err(err) = run() {
        eprintln!("digest bench: {err}");
        std::process::exit(1);
    }
}

fn run() -> io::Result<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let megabytes = match std::env::var("FLATLINE_BENCH_MB") {
        Ok(value) => value.parse().map_err(|_| {
            io::Error::other(format!("FLATLINE_BENCH_MB={value:?} is not a number"))
        })?,
        Err(_) if full => FULL_MB,
        Err(_) => SMOKE_MB,
    };
    let runs = if full { RUNS } else { 1 };

    let stream = TempStream::new()?;
    let started = Instant::now();
    let bytes = write_codex_stream(&stream.path, megabytes * 1_000_000)?;
    eprintln!(
        "wrote {} ({:.1} MB) in {:.2} s",
        stream.path.display(),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let file = File::open(&stream.path)?;
        let started = Instant::now();
        let digest = events::digest(file)?;
        times.push(started.elapsed());
        check(&digest, bytes)?;
        last = Some(digest);
    }
    times.sort();
    let seconds = |time: Duration| time.as_secs_f64();
    let median = seconds(times[times.len() / 2]);
    let megabytes = bytes as f64 / 1e6;
    let rate = megabytes / median;
    println!(
        "digest: {megabytes:.1} MB in {median:.2} s median (min {:.2}, max {:.2}) = {rate:.0} MB/s",
        seconds(times[0]),
        seconds(times[times.len() - 1]),
    );
    if let Some(digest) = last {
        let verdict = events::verdict(&digest);
        println!(
            "verdict: {} (format {}, terminal {}, {} lines, {} JSON); p90 {:.0} MB/s; min {:.0} MB/s; target {TARGET_MB_PER_S:.0} MB/s {}",
            verdict.status_name(),
            digest.format.map_or("-", |format| format.as_str()),
            digest
                .terminal
                .as_ref()
                .map_or("-", |terminal| terminal.event),
            digest.lines,
            digest.json_lines,
            // The 90th percentile of the times (nearest rank) is the 10th of the rates.
            megabytes / seconds(times[(times.len() * 9).div_ceil(10) - 1]),
            megabytes / seconds(times[times.len() - 1]),
            if rate >= TARGET_MB_PER_S {
                "met"
            } else {
                "NOT met"
            },
        );
    }
    Ok(())
}

/// A digest that does not describe the generated stream means the benchmark measured
/// something else.
fn check(digest: &Digest, bytes: u64) -> io::Result<()> {
    let terminal = digest.terminal.as_ref().map(|terminal| terminal.event);
    let sound = digest.bytes == bytes
        && digest.lines == digest.json_lines
        && digest.skipped_lines == 0
        && terminal == Some("turn.completed")
        && digest.final_text.is_some()
        && digest.usage.is_some()
        && !digest.failure_observed;
    if sound {
        Ok(())
    } else {
        Err(io::Error::other(format!("unexpected digest: {digest:#?}")))
    }
}

/// The stream's file, removed however the benchmark ends.
struct TempStream {
    path: PathBuf,
}

impl TempStream {
    fn new() -> io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "flatline-digest-bench-{}.jsonl",
            std::process::id()
        ));
        Ok(TempStream { path })
    }
}

impl Drop for TempStream {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A fixed-seed xorshift generator: the same stream on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[self.below(choices.len() as u64) as usize]
    }
}

const WORDS: [&str; 16] = [
    "parser",
    "config",
    "worker",
    "delegation",
    "heartbeat",
    "fixture",
    "stream",
    "lock",
    "store",
    "output",
    "signal",
    "timeout",
    "reclaim",
    "fan-in",
    "digest",
    "manifest",
];

/// Writes one long Codex turn: reasoning, command executions with outputs of varied length,
/// agent messages, and `turn.completed` with usage at the end.
fn write_codex_stream(path: &PathBuf, target: u64) -> io::Result<u64> {
    let mut out = Counting {
        inner: BufWriter::with_capacity(1 << 20, File::create(path)?),
        written: 0,
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    writeln!(
        out,
        r#"{{"type":"thread.started","thread_id":"019a2d7a-6455-7170-a661-c6d8b94c630a"}}"#
    )?;
    writeln!(out, r#"{{"type":"turn.started"}}"#)?;
    let mut item = 0u64;
    while out.written < target {
        let word = rng.pick(&WORDS);
        writeln!(
            out,
            r#"{{"type":"item.completed","item":{{"id":"item_{item}","type":"reasoning","text":{}}}}}"#,
            json_string(&format!("**Checking the {word} before changing it**"))
        )?;
        item += 1;

        let command = json_string(&format!(
            "bash -lc 'rg -n \"{word}\" src/ && cargo test {word}'"
        ));
        writeln!(
            out,
            r#"{{"type":"item.started","item":{{"id":"item_{item}","type":"command_execution","command":{command},"aggregated_output":"","status":"in_progress"}}}}"#
        )?;
        let output = command_output(&mut rng);
        let exit_code = if rng.below(10) == 0 { 101 } else { 0 };
        writeln!(
            out,
            r#"{{"type":"item.completed","item":{{"id":"item_{item}","type":"command_execution","command":{command},"aggregated_output":{},"exit_code":{exit_code},"status":"completed"}}}}"#,
            json_string(&output)
        )?;
        item += 1;

        if rng.below(4) == 0 {
            let text = format!(
                "Updated the {word} handling in `src/{word}.rs` and re-ran the tests: {} passed, {} failed. Next I will look at \"{}\" → edge cases.",
                rng.below(200),
                rng.below(3),
                rng.pick(&WORDS)
            );
            writeln!(
                out,
                r#"{{"type":"item.completed","item":{{"id":"item_{item}","type":"agent_message","text":{}}}}}"#,
                json_string(&text)
            )?;
            item += 1;
        }
    }
    writeln!(
        out,
        r#"{{"type":"item.completed","item":{{"id":"item_{item}","type":"agent_message","text":"All done: the tests pass."}}}}"#
    )?;
    writeln!(
        out,
        r#"{{"type":"turn.completed","usage":{{"input_tokens":{},"cached_input_tokens":{},"output_tokens":{}}}}}"#,
        out.written / 3,
        out.written / 4,
        item * 40
    )?;
    out.inner.flush()?;
    Ok(out.written)
}

/// Tool output of realistic variety: mostly short, sometimes tens of kilobytes, with the
/// quotes, tabs, newlines and non-ASCII text that make JSON strings escape-heavy.
fn command_output(rng: &mut Rng) -> String {
    let target = match rng.below(20) {
        0 => 0,
        1..=12 => 100 + rng.below(1_500),
        13..=18 => 1_500 + rng.below(8_000),
        _ => 10_000 + rng.below(60_000),
    } as usize;
    let mut output = String::with_capacity(target + 200);
    while output.len() < target {
        let word = rng.pick(&WORDS);
        let line = rng.below(900) + 1;
        match rng.below(6) {
            0 => output.push_str(&format!("src/{word}.rs:{line}:\tlet {word} = \"{word}\";\n")),
            1 => output.push_str(&format!(
                "warning: unused variable: `{word}`\n  --> src/{word}.rs:{line}:9\n   |\n{line} |     let {word} = load()?;\n   |         ^^^^ help: prefix it with an underscore\n\n"
            )),
            2 => output.push_str(&format!("test {word}::tests::case_{line} ... ok\n")),
            3 => output.push_str(&format!(
                "-rw-r--r--  1 worker staff {:>8} Feb  2 17:21 {word}_{line}.json\n",
                rng.below(100_000)
            )),
            4 => output.push_str(&format!("{{\"{word}\": {line}, \"ok\": true}}\n")),
            _ => output.push_str(&format!("→ résumé of {word} #{line}: naïve café ✓\n")),
        }
    }
    output
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Counts what is written, to stop at the target size.
struct Counting<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
