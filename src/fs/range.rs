//! range: reading a range of a file piece by piece, skipping holes (`SEEK_DATA`,
//! `SEEK_HOLE`), so that a sparse file costs its data, not its size.

use super::read::fstat;
use crate::sys;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;

/// What `seek_to` looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// The next byte of data (`SEEK_DATA`).
    Data,
    /// The next hole, or the end of the file (`SEEK_HOLE`).
    Hole,
}

/// Where the next data or hole of `file` begins at or after `offset` (and moves the file
/// position there); `Ok(None)` when there is none (`ENXIO`: `offset` is at or past the end).
pub fn seek_to(file: &File, what: Seek, offset: i64) -> io::Result<Option<i64>> {
    let whence = match what {
        Seek::Data => libc::SEEK_DATA,
        Seek::Hole => libc::SEEK_HOLE,
    };
    match sys::fd::lseek(file.as_fd(), offset, whence) {
        Ok(at) => Ok(Some(at)),
        Err(error) if error.raw_os_error() == Some(libc::ENXIO) => Ok(None),
        Err(error) => Err(error),
    }
}

/// One piece of a file as `read_range` walks it.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes read from the file.
    Data(&'a [u8]),
    /// A hole of this many bytes (it reads as NUL bytes), skipped without reading.
    Hole(u64),
}

/// Walks the bytes `start..end` of `file` in order, skipping holes: data is read through
/// `buf` (`pread`, the file position is not used) and handed over piece by piece, a hole
/// only by its length, so a sparse file of terabytes costs its data, not its size. Where the
/// file system cannot tell data from holes, everything is read (the range still bounds it).
/// Stops early, without error, where the file ends (it may shrink meanwhile). Returns the
/// bytes handed over (data and holes).
pub fn read_range(
    file: &File,
    start: u64,
    end: u64,
    buf: &mut [u8],
    mut piece: impl FnMut(Piece<'_>),
) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let offset = |at: u64| i64::try_from(at).unwrap_or(i64::MAX);
    let mut pos = start;
    let mut dense = false;
    while pos < end {
        let data_end = if dense {
            end
        } else {
            match seek_to(file, Seek::Data, offset(pos)) {
                Ok(Some(data)) => {
                    let data = u64::try_from(data).unwrap_or(end).clamp(pos, end);
                    if data > pos {
                        piece(Piece::Hole(data - pos));
                        pos = data;
                        continue;
                    }
                    match seek_to(file, Seek::Hole, offset(pos)) {
                        Ok(Some(hole)) => u64::try_from(hole).unwrap_or(end).clamp(pos, end),
                        // Cut short between the two calls: the end is here.
                        Ok(None) => break,
                        Err(_) => end,
                    }
                }
                // No data at or after `pos`: a hole up to the end of the file, or the end.
                Ok(None) => {
                    let len = fstat(file.as_fd())?.size.min(end);
                    if len > pos {
                        piece(Piece::Hole(len - pos));
                        pos = len;
                    }
                    break;
                }
                Err(_) => {
                    dense = true;
                    continue;
                }
            }
        };
        if data_end == pos {
            // A data segment the file system reports as empty: never loop on it.
            dense = true;
            continue;
        }
        while pos < data_end {
            let want = usize::try_from(data_end - pos)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let read = match file.read_at(&mut buf[..want], pos) {
                // Shrunk under us: the end is here.
                Ok(0) => return Ok(pos - start),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            piece(Piece::Data(&buf[..read]));
            pos += read as u64;
        }
    }
    Ok(pos - start)
}
