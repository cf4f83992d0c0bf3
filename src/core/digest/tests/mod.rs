use super::lines::{LineSink, LineSplitter, READ_CHUNK, find_newline};
use super::stream::{THREAD_ID_MAX, USAGE_MAX_BYTES};
use super::*;
use crate::core::text::{ASSISTANT_PREVIEW_MAX, RAW_PREVIEW_MAX};
use std::io::{self, Read};
use std::path::Path;

mod fields;
mod formats;
mod reading;
mod verdicts;

fn digest_str(stream: &str) -> Digest {
    digest(stream.as_bytes()).unwrap()
}

fn lines(lines: &[&str]) -> String {
    let mut stream = lines.join("\n");
    stream.push('\n');
    stream
}

fn reason(d: &Digest) -> Option<&'static str> {
    verdict(d).reason
}

/// Checks every stream listed in a directory's EXPECTED.tsv, and that every stream there
/// is listed.
fn check_expected(dir: &Path) {
    let table = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut listed = Vec::new();
    for row in table
        .lines()
        .filter(|row| !row.starts_with('#') && !row.is_empty())
    {
        let columns: Vec<&str> = row.split('\t').collect();
        let [file, format, terminal, status, thread_id, has_text, reason] = columns[..] else {
            panic!("{}: bad row {row:?}", dir.display());
        };
        listed.push(file.to_owned());
        let file_digest = digest(std::fs::File::open(dir.join(file)).unwrap()).unwrap();
        let found_verdict = verdict(&file_digest);
        let found = [
            file_digest.format.map_or("-", Format::as_str),
            match &file_digest.terminal {
                None => "none",
                Some(t) if t.outcome == Outcome::Success => "success",
                Some(_) => "failure",
            },
            found_verdict.status_name(),
            file_digest.thread_id.as_deref().unwrap_or("-"),
            if file_digest.final_text.is_some() {
                "yes"
            } else {
                "no"
            },
            found_verdict.reason.unwrap_or("-"),
        ];
        assert_eq!(
            found,
            [format, terminal, status, thread_id, has_text, reason],
            "{file}: {file_digest:#?}"
        );
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let is_stream = name.ends_with(".jsonl") || name.ends_with(".log");
        assert!(
            !is_stream || listed.contains(&name),
            "{name} not in EXPECTED.tsv"
        );
    }
}
