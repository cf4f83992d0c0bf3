//! Reading lines: non-objects, empty streams, over-long lines, joins across reads, nesting,
//! line endings, invalid UTF-8, the newline scan.

use super::*;

#[test]
fn json_values_that_are_not_objects_are_raw_lines() {
    let d = digest_str("[1,2]\n\"text\"\n42\n");
    assert_eq!(d.json_lines, 0);
    assert_eq!(d.raw_preview, "[1,2] \"text\" 42");
}

#[test]
fn empty_stream_is_unknown() {
    let d = digest_str("");
    assert_eq!(d, Digest::default());
    assert_eq!(
        verdict(&d),
        Verdict {
            status: Outcome::Failure,
            reason: Some("unknown")
        }
    );
    let blank = digest_str("\n \r\n\t\n");
    assert_eq!(blank.lines, 0);
    assert_eq!(blank.bytes, 6);
    assert_eq!(reason(&blank), Some("invalid_output"));
}

#[test]
fn over_long_line_is_skipped_and_following_lines_are_read() {
    let long = format!(
        r#"{{"type":"item.completed","item":{{"text":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let d = digest_with_limit(
        lines(&[
            r#"{"type":"thread.started","thread_id":"t-4"}"#,
            &long,
            r#"{"type":"turn.completed"}"#,
        ])
        .as_bytes(),
        100,
    )
    .unwrap();
    assert_eq!(d.skipped_lines, 1);
    assert_eq!(d.lines, 3);
    assert_eq!(d.json_lines, 2);
    assert_eq!(d.thread_id.as_deref(), Some("t-4"));
    assert_eq!(d.terminal.unwrap().event, "turn.completed");
    assert_eq!(d.raw_preview, "");
}

#[test]
fn line_of_exactly_the_limit_is_read() {
    let line = r#"{"type":"turn.completed"}"#;
    let d = digest_with_limit(line.as_bytes(), line.len()).unwrap();
    assert_eq!(d.skipped_lines, 0);
    assert!(d.terminal.is_some());
    let d = digest_with_limit(line.as_bytes(), line.len() - 1).unwrap();
    assert_eq!(d.skipped_lines, 1);
    assert!(d.terminal.is_none());
}

/// A stream of one enormous line, produced on the fly so that the test itself holds
/// none of it.
struct HugeLine {
    left: u64,
}

impl Read for HugeLine {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].fill(b'a');
        self.left -= n as u64;
        if self.left == 0 {
            buf[n - 1] = b'\n';
        }
        Ok(n)
    }
}

/// Counts what the splitter hands over, and watches its line buffer.
#[derive(Default)]
struct Recorder {
    lines: Vec<usize>,
    skipped: usize,
}

impl LineSink for Recorder {
    fn line(&mut self, line: &[u8]) {
        self.lines.push(line.len());
    }

    fn skipped_line(&mut self) {
        self.skipped += 1;
    }
}

#[test]
fn over_long_line_is_never_held() {
    let max_line = 4096;
    let mut splitter = LineSplitter::new(max_line);
    let mut recorder = Recorder::default();
    let mut source = HugeLine { left: 64 << 20 };
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = source.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        // Small pieces make the start of the line wait in the buffer up to the limit.
        for piece in chunk[..n].chunks(1000) {
            splitter.feed(piece, &mut recorder);
            assert!(splitter.pending.capacity() <= 2 * max_line);
        }
    }
    splitter.feed(b"short\n", &mut recorder);
    splitter.finish(&mut recorder);
    assert_eq!(recorder.skipped, 1);
    assert_eq!(recorder.lines, vec![5]);

    let d = digest_with_limit(HugeLine { left: 64 << 20 }, max_line).unwrap();
    assert_eq!((d.bytes, d.lines, d.skipped_lines), (64 << 20, 1, 1));
}

#[test]
fn lines_straddling_reads_are_joined() {
    // A reader that returns one byte at a time puts every line across reads.
    struct ByteAtATime<'a>(&'a [u8]);
    impl Read for ByteAtATime<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }
    let stream = lines(&[
        r#"{"type":"thread.started","thread_id":"t-5"}"#,
        r#"{"type":"turn.completed"}"#,
    ]);
    let d = digest_with_limit(ByteAtATime(stream.as_bytes()), 100).unwrap();
    assert_eq!(d.thread_id.as_deref(), Some("t-5"));
    assert_eq!(d.json_lines, 2);
    let d = digest_with_limit(ByteAtATime(stream.as_bytes()), 30).unwrap();
    assert_eq!((d.skipped_lines, d.json_lines), (1, 1));
}

#[test]
fn deep_nesting_does_not_crash() {
    let brackets = "[".repeat(100_000);
    let d = digest_str(&lines(&[
        &brackets,
        &format!(r#"{{"type":{brackets}"#),
        &format!(r#"{{"x":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000)),
        r#"{"type":"turn.completed"}"#,
    ]));
    assert_eq!(d.lines, 4);
    assert!(d.json_lines >= 1);
    assert_eq!(d.terminal.unwrap().event, "turn.completed");
    assert!(d.raw_preview.starts_with("[[[["));
}

#[test]
fn last_line_without_newline_and_crlf_are_read() {
    let d = digest_str(
        "{\"type\":\"thread.started\",\"thread_id\":\"t-7\"}\r\n{\"type\":\"turn.completed\"}",
    );
    assert_eq!(d.thread_id.as_deref(), Some("t-7"));
    assert_eq!(d.terminal.unwrap().event, "turn.completed");
    assert_eq!(d.json_lines, 2);
    let raw = digest_str("plain\r\nline\r");
    assert_eq!(raw.raw_preview, "plain line");
}

#[test]
fn invalid_utf8_is_a_raw_line_previewed_lossily() {
    let mut stream = b"{\"type\":\"turn.completed\",\"x\":\"\xff\"}\n".to_vec();
    stream.extend_from_slice(b"bad \xc3\x28 byte\n");
    let d = digest(&stream[..]).unwrap();
    assert_eq!(d.json_lines, 0);
    assert!(d.terminal.is_none());
    assert_eq!(d.lines, 2);
    assert!(d.raw_preview.contains('\u{fffd}'));
    assert!(d.raw_preview.ends_with("bad \u{fffd}( byte"));
}

#[test]
fn find_newline_matches_a_plain_scan() {
    let mut haystack = vec![b'x'; 100];
    assert_eq!(find_newline(&haystack), None);
    for index in [0, 7, 8, 9, 63, 64, 99] {
        haystack.fill(b'x');
        haystack[index] = b'\n';
        if index + 5 < haystack.len() {
            haystack[index + 5] = b'\n';
        }
        assert_eq!(find_newline(&haystack), Some(index));
        assert_eq!(find_newline(&haystack[..index]), None);
    }
    // Bytes next to '\n' in value must not confuse the word test.
    let near = [0x0b, 0x09, 0x8a, 0x0a];
    assert_eq!(find_newline(&near), Some(3));
    let near: Vec<u8> = (0u8..=255).filter(|b| *b != b'\n').collect();
    assert_eq!(find_newline(&near), None);
}
