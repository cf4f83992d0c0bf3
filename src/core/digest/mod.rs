//! digest: the digest of an agent event stream, read in one bounded streaming pass.
//!
//! A worker's stream is untrusted and unbounded: it may be gigabytes long, hold a single
//! line of hundreds of megabytes, mix the shapes of several agent CLIs, or not be JSON at
//! all. The digest reads it once through a fixed buffer, keeps only what finalizing needs
//! (the shape, the last terminal event, ids, short previews, the last usage object) and
//! never holds more than one line of at most `max_line` bytes.
//!
//! Each line is parsed into a small borrowed struct whose fields are all lenient: a field of
//! an unexpected JSON type is read and dropped instead of failing the line, so one odd field
//! never hides a terminal event.

mod claude;
mod codex;
mod codex_legacy;
mod format;
mod gemini;
mod generic;
mod kimi;
mod line;
mod lines;
mod stream;
mod transport;
mod verdict;

pub use format::Format;
pub use stream::{Digest, MAX_LINE_BYTES, StreamDigest, digest, digest_with_limit};
pub use transport::has_transport_failure;
pub use verdict::{Outcome, Terminal, Verdict, verdict, verdict_with_exit};

#[cfg(test)]
mod tests;
