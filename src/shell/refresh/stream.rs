//! The event stream a delegation names, read for refresh (SPEC §1.3, §2): stat'ed, digested
//! within bounds, cached by inode and size.

use super::*;

/// Why the stream could not be used.
#[derive(Debug)]
pub struct StreamError {
    pub path: PathBuf,
    pub error: String,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event stream {}: {}",
            fs::display_path(&self.path),
            self.error
        )
    }
}

/// The head of a long stream that is always digested: format, thread and session ids
/// (SPEC §1.4).
pub const STREAM_HEAD_BYTES: u64 = 1 << 20;
pub use crate::cli::config::DEFAULT_MAX_STREAM_READ;
/// Memory the digests remembered in one run may take, roughly; past it streams are digested
/// again when named again (each read is still bounded).
pub(super) const DIGEST_CACHE_BYTES: usize = 64 << 20;

/// How streams are read in one run: the read bound, and the digests already made, so a
/// stream named by many delegations is digested once per (dev, inode, size, mtime).
#[derive(Debug)]
pub struct StreamReading {
    pub max_read: u64,
    digests: RefCell<HashMap<(u64, u64, u64, Millis), Digest>>,
    cached_bytes: Cell<usize>,
}

impl StreamReading {
    pub fn new(max_read: u64) -> StreamReading {
        StreamReading {
            max_read,
            digests: RefCell::new(HashMap::new()),
            cached_bytes: Cell::new(0),
        }
    }

    /// The digest of the stream `meta` describes: remembered, or made by `make`.
    pub(super) fn digest(
        &self,
        meta: &fs::FileMeta,
        make: impl FnOnce() -> Result<Digest, String>,
    ) -> Result<Digest, String> {
        let key = (meta.dev, meta.ino, meta.size, meta.mtime_ms);
        if let Some(digest) = self.digests.borrow().get(&key) {
            return Ok(digest.clone());
        }
        let digest = make()?;
        let cost = digest_cost(&digest);
        if self.cached_bytes.get() + cost <= DIGEST_CACHE_BYTES {
            self.cached_bytes.set(self.cached_bytes.get() + cost);
            self.digests.borrow_mut().insert(key, digest.clone());
        }
        Ok(digest)
    }
}

/// Roughly the memory a remembered digest takes.
pub(super) fn digest_cost(digest: &Digest) -> usize {
    let text = |text: &Option<String>| text.as_ref().map_or(0, String::len);
    256 + text(&digest.thread_id)
        + text(&digest.final_text)
        + digest.raw_preview.len()
        + digest
            .terminal
            .as_ref()
            .map_or(0, |terminal| text(&terminal.message))
        + digest
            .usage
            .as_ref()
            .map_or(0, |usage| usage.to_string().len() * 4)
}

/// Digests a stream of `size` bytes (its size when opened) reading at most `max_read` bytes
/// of it and none of its holes: a longer stream is read as its first `STREAM_HEAD_BYTES`
/// and its last `max_read - STREAM_HEAD_BYTES` (SPEC §1.4).
pub fn digest_bounded(file: &std::fs::File, size: u64, max_read: u64) -> std::io::Result<Digest> {
    use std::os::unix::fs::FileExt;
    let mut digest = events::StreamDigest::new(events::MAX_LINE_BYTES);
    let mut buf = vec![0u8; 64 * 1024];
    let feed = |piece: fs::Piece<'_>, digest: &mut events::StreamDigest| match piece {
        fs::Piece::Data(bytes) => digest.data(bytes),
        fs::Piece::Hole(len) => digest.hole(len),
    };
    if size <= max_read {
        fs::read_range(file, 0, size, &mut buf, |piece| feed(piece, &mut digest))?;
        return Ok(digest.finish());
    }
    let head = STREAM_HEAD_BYTES.min(max_read);
    let tail_start = size - (max_read - head);
    fs::read_range(file, 0, head, &mut buf, |piece| feed(piece, &mut digest))?;
    let mut before = [0u8; 1];
    let at_line_start =
        matches!(file.read_at(&mut before, tail_start - 1), Ok(1) if before[0] == b'\n');
    digest.gap(tail_start - head, at_line_start);
    fs::read_range(file, tail_start, size, &mut buf, |piece| {
        feed(piece, &mut digest)
    })?;
    Ok(digest.finish())
}

/// Stats (and, when `read`, digests) a delegation's stream under SPEC §1.3. `Ok(None)` when
/// there is no stream file.
pub fn look_at_stream(
    root: &RunRoot,
    path: &Path,
    policy: NamedPathPolicy,
    read: impl FnOnce(&Stream) -> bool,
) -> Result<Option<Stream>, StreamError> {
    look_at_stream_with(
        root,
        path,
        policy,
        &StreamReading::new(DEFAULT_MAX_STREAM_READ),
        read,
    )
}

/// `look_at_stream` with the run's read bound and the digests it already made.
pub fn look_at_stream_with(
    root: &RunRoot,
    path: &Path,
    policy: NamedPathPolicy,
    reading: &StreamReading,
    read: impl FnOnce(&Stream) -> bool,
) -> Result<Option<Stream>, StreamError> {
    let fail = |error: String| StreamError {
        path: path.to_path_buf(),
        error,
    };
    let named = match fs::open_named(root, path, policy) {
        Ok(named) => named,
        Err(ReadError::NotFound) => return Ok(None),
        Err(error) => return Err(fail(error.to_string())),
    };
    let mut stream = Stream {
        mtime_ms: named.meta.mtime_ms,
        size: named.meta.size,
        inode: StreamInode {
            dev: named.meta.dev,
            ino: named.meta.ino,
        },
        digest: None,
    };
    if read(&stream) {
        let digest = reading
            .digest(&named.meta, || {
                let file = named
                    .open_for_read(root, path, policy)
                    .map_err(|error| error.to_string())?;
                digest_bounded(&file, named.meta.size, reading.max_read)
                    .map_err(|error| fs::io_message(&error))
            })
            .map_err(fail)?;
        stream.digest = Some(digest);
    }
    Ok(Some(stream))
}
