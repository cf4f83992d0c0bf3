//! Cutting a stream into lines through a fixed buffer, never holding more than one line.

/// The read buffer. Lines that fit inside one chunk are parsed where they lie; only a line
/// that straddles two reads is copied.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// A line buffer grown by one long line is given back once it exceeds this.
pub(super) const LINE_BUFFER_KEEP: usize = 1024 * 1024;

/// Where the lines of a stream go.
pub(super) trait LineSink {
    fn line(&mut self, line: &[u8]);
    fn skipped_line(&mut self);
}

/// Cuts chunks into lines. A line that lies inside one chunk is handed over in place; the
/// start of a line that straddles chunks waits in `pending`, which never grows past
/// `max_line`: once a line is known to be too long, the rest of it is discarded unread.
pub(super) struct LineSplitter {
    max_line: usize,
    pub(super) pending: Vec<u8>,
    /// Inside a line already known to be too long: drop bytes through the next '\n'.
    pub(super) skipping: bool,
}

impl LineSplitter {
    pub(super) fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line,
            pending: Vec::new(),
            skipping: false,
        }
    }

    pub(super) fn feed(&mut self, chunk: &[u8], sink: &mut impl LineSink) {
        let mut rest = chunk;
        while let Some(end) = find_newline(rest) {
            let piece = &rest[..end];
            rest = &rest[end + 1..];
            if self.skipping {
                self.skipping = false;
            } else if self.pending.is_empty() {
                if piece.len() > self.max_line {
                    sink.skipped_line();
                } else {
                    sink.line(piece);
                }
            } else if self.pending.len() + piece.len() > self.max_line {
                self.release_pending();
                sink.skipped_line();
            } else {
                self.pending.extend_from_slice(piece);
                sink.line(&self.pending);
                self.release_pending();
            }
        }
        if rest.is_empty() || self.skipping {
            return;
        }
        if self.pending.len() + rest.len() > self.max_line {
            self.release_pending();
            self.skipping = true;
            sink.skipped_line();
        } else {
            self.pending.extend_from_slice(rest);
        }
    }

    /// `len` NUL bytes: line content without a newline, kept only while the line fits.
    pub(super) fn feed_hole(&mut self, len: u64, sink: &mut impl LineSink) {
        if self.skipping {
            return;
        }
        let fits = usize::try_from(len)
            .ok()
            .and_then(|len| self.pending.len().checked_add(len))
            .filter(|total| *total <= self.max_line);
        match fits {
            Some(total) => self.pending.resize(total, 0),
            _ => {
                self.release_pending();
                self.skipping = true;
                sink.skipped_line();
            }
        }
    }

    /// The last line may lack its '\n'.
    pub(super) fn finish(&mut self, sink: &mut impl LineSink) {
        if !self.skipping && !self.pending.is_empty() {
            sink.line(&self.pending);
        }
        self.release_pending();
        self.skipping = false;
    }

    pub(super) fn release_pending(&mut self) {
        self.pending.clear();
        if self.pending.capacity() > LINE_BUFFER_KEEP {
            self.pending.shrink_to(READ_CHUNK);
        }
    }
}

/// The index of the first '\n', eight bytes at a time: the scan touches every byte of the
/// stream, so it must not be the bottleneck.
pub(super) fn find_newline(haystack: &[u8]) -> Option<usize> {
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let value = u64::from_ne_bytes(bytes) ^ NEWLINES;
        // A zero byte in `value` is a newline in the word (the classic has-zero-byte test).
        if value.wrapping_sub(LOW) & !value & HIGH != 0
            && let Some(index) = word.iter().position(|&byte| byte == b'\n')
        {
            return Some(offset + index);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&byte| byte == b'\n')
        .map(|index| offset + index)
}
