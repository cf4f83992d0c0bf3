//! JSON out: timestamps and paths as JSON, hand-written compact records, and the
//! serde_json formatter that escapes every dangerous character (SPEC §7).

use crate::core::time::{self, Millis};
use serde::ser::{Serialize, Serializer};
use std::io::{self, Write};
use std::path::Path;

/// A timestamp that serializes as RFC 3339 (or null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ts(pub Option<Millis>);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(ms) => serializer.serialize_str(&time::format_rfc3339(ms)),
            None => serializer.serialize_none(),
        }
    }
}

/// A path that serializes as (lossy) UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct PathText<'a>(pub &'a Path);

impl Serialize for PathText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_string_lossy())
    }
}

/// A record that writes its own compact JSON, byte for byte what serde_json writes for its
/// `Serialize` form (a test in each implementing module compares the two).
pub trait WriteJson {
    fn write_json(&self, out: &mut JsonWriter<'_>);
}

/// Compact JSON into a byte buffer, for `WriteJson` records: keys are literals the caller
/// knows need no escaping; text is copied as it is when no byte needs an escape, else written
/// by serde_json so the escapes are its own.
pub struct JsonWriter<'a>(pub &'a mut Vec<u8>);

impl JsonWriter<'_> {
    /// `{"key":` or `,"key":`: the first key opens the object.
    pub fn key(&mut self, first: bool, key: &str) {
        let open: &[u8] = if first { b"{\"" } else { b",\"" };
        self.0.reserve(key.len() + 4);
        self.0.extend_from_slice(open);
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    pub fn end(&mut self) {
        self.0.push(b'}');
    }

    pub fn str(&mut self, text: &str) {
        if needs_escape(text.as_bytes()) {
            // Writing into a Vec cannot fail.
            let _ = to_writer_safe(&mut *self.0, text);
        } else {
            self.0.push(b'"');
            self.0.extend_from_slice(text.as_bytes());
            self.0.push(b'"');
        }
    }

    pub fn opt_str(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.str(text),
            None => self.null(),
        }
    }

    pub fn path(&mut self, path: &Path) {
        match path.to_str() {
            Some(text) => self.str(text),
            None => self.str(&path.to_string_lossy()),
        }
    }

    pub fn int(&mut self, value: impl Into<i128>) {
        let value = value.into();
        // Digit by digit for the common case; 128-bit formatting is slow.
        match u64::try_from(value.unsigned_abs()) {
            Ok(mut magnitude) => {
                if value < 0 {
                    self.0.push(b'-');
                }
                let mut digits = [0u8; 20];
                let mut at = digits.len();
                loop {
                    at -= 1;
                    digits[at] = b'0' + (magnitude % 10) as u8;
                    magnitude /= 10;
                    if magnitude == 0 {
                        break;
                    }
                }
                self.0.extend_from_slice(&digits[at..]);
            }
            // Writing into a Vec cannot fail.
            Err(_) => {
                let _ = write!(self.0, "{value}");
            }
        }
    }

    pub fn opt_int(&mut self, value: Option<impl Into<i128>>) {
        match value {
            Some(value) => self.int(value),
            None => self.null(),
        }
    }

    pub fn bool(&mut self, value: bool) {
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    pub fn opt_bool(&mut self, value: Option<bool>) {
        match value {
            Some(value) => self.bool(value),
            None => self.null(),
        }
    }

    pub fn ts(&mut self, ts: Ts) {
        match ts.0 {
            Some(ms) => {
                self.0.push(b'"');
                time::write_rfc3339_bytes(self.0, ms);
                self.0.push(b'"');
            }
            None => self.null(),
        }
    }

    pub fn strs<S: AsRef<str>>(&mut self, items: &[S]) {
        self.0.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.str(item.as_ref());
        }
        self.0.push(b']');
    }

    pub fn null(&mut self) {
        self.0.extend_from_slice(b"null");
    }
}

/// serde_json's compact output with every dangerous character (`text::is_dangerous`)
/// written as a `\uXXXX` escape: serde_json escapes only C0 controls by itself, and DEL, C1
/// controls or a bidi override must not reach a terminal through `jq -r` or a log viewer
/// (SPEC §7). The same bytes as serde_json for every other text.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if !crate::core::text::may_hold_dangerous_beyond_c0(fragment.as_bytes()) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (at, ch) in fragment.char_indices() {
            if crate::core::text::is_dangerous(ch) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                write!(writer, "\\u{:04x}", ch as u32)?;
                start = at + ch.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Compact JSON through `SafeFormatter`: what every record on stdout is written with.
pub fn to_writer_safe<W: Write, T: ?Sized + Serialize>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, SafeFormatter);
    value.serialize(&mut serializer)
}

/// `to_writer_safe` into a new string.
pub fn to_string_safe<T: ?Sized + Serialize>(value: &T) -> serde_json::Result<String> {
    let mut bytes = Vec::with_capacity(128);
    to_writer_safe(&mut bytes, value)?;
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether JSON text needs an escape: a `"`, a `\\`, a control character (below 0x20), or
/// possibly another dangerous character (`text::may_hold_dangerous_beyond_c0`: a DEL or the
/// lead byte of one). Eight bytes at a time (the classic "has a zero byte" and "has a byte
/// less than n" tests).
pub(super) fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        // Bytes below 0x20: (x - 0x20 per byte) borrows into the high bit, bytes >= 0x80 excluded.
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let beyond_c0 = zero_in(x ^ (ONES * 0x7f))
            | zero_in(x ^ (ONES * 0xc2))
            | zero_in(x ^ (ONES * 0xd8))
            | zero_in(x ^ (ONES * 0xe2));
        if zero_in(quote) | zero_in(backslash) | control | beyond_c0 != 0 {
            return true;
        }
    }
    let rest = chunks.remainder();
    rest.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
        || crate::core::text::may_hold_dangerous_beyond_c0(rest)
}
